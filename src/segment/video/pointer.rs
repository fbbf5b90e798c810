// SPDX-License-Identifier: Apache-2.0
//! Which object a click in the video means: the one under the pointer, or
//! the nearest one.

use crate::segment::video::{TrackState, TrackedObject};

/// The visible object whose mask holds the pixel at `(x, y)` (frame
/// pixels); the smallest one where masks overlap, as the one drawn on top
/// of a larger one is what a person points at.
pub fn object_under<'a>(
    objects: impl IntoIterator<Item = &'a TrackedObject>,
    (x, y): (f32, f32),
) -> Option<&'a TrackedObject> {
    if !(x >= 0.0 && y >= 0.0) {
        return None;
    }
    let (px, py) = (x as u32, y as u32);
    objects
        .into_iter()
        .filter(|o| o.state != TrackState::Lost && o.object.mask.contains(px, py))
        .min_by_key(|o| o.object.area)
}

/// The visible object whose mask box is nearest to `(x, y)` (0 inside it;
/// the smaller one of two at the same distance).
pub fn nearest_object<'a>(
    objects: impl IntoIterator<Item = &'a TrackedObject>,
    (x, y): (f32, f32),
) -> Option<&'a TrackedObject> {
    objects
        .into_iter()
        .filter(|o| o.state != TrackState::Lost && !o.object.mask.is_empty())
        .map(|o| {
            let m = &o.object.mask;
            let (x0, y0) = (m.x() as f32, m.y() as f32);
            let (x1, y1) = (x0 + m.width() as f32, y0 + m.height() as f32);
            let dx = (x0 - x).max(x - x1).max(0.0);
            let dy = (y0 - y).max(y - y1).max(0.0);
            (dx * dx + dy * dy, o.object.area, o)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, _, o)| o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::masks::mask::{BitMask, LowResLogits};
    use crate::segment::segmenter::{ObjectOrigin, SegmentedObject};
    use std::sync::Arc;

    fn object(id: u64, x: u32, y: u32, size: u32, state: TrackState) -> TrackedObject {
        let mask = BitMask::from_fn(x, y, size, size, |_, _| true);
        TrackedObject {
            id,
            object: SegmentedObject {
                id: id as usize,
                prompt_index: 0,
                area: mask.count_ones(),
                mask,
                iou: 0.9,
                stability: 0.9,
                mask_index: 0,
                low_res: Arc::new(LowResLogits::new(1, 1, vec![0.0]).unwrap()),
                origin: ObjectOrigin::Prompt { index: 0 },
            },
            state,
            prompt_index: Some(0),
        }
    }

    #[test]
    fn the_smallest_mask_under_the_pointer_wins() {
        let big = object(1, 0, 0, 100, TrackState::Tracked);
        let small = object(2, 10, 10, 20, TrackState::Acquired);
        let lost = object(3, 12, 12, 5, TrackState::Lost);
        let all = [big, small, lost];
        assert_eq!(object_under(&all, (15.0, 15.0)).map(|o| o.id), Some(2));
        assert_eq!(object_under(&all, (50.0, 50.0)).map(|o| o.id), Some(1));
        assert_eq!(object_under(&all, (150.0, 50.0)).map(|o| o.id), None);
        assert_eq!(object_under(&all, (-1.0, 5.0)).map(|o| o.id), None);
        assert_eq!(object_under(&all, (f32::NAN, 5.0)).map(|o| o.id), None);
    }

    #[test]
    fn the_nearest_box_is_found_outside_every_mask() {
        let left = object(1, 0, 0, 10, TrackState::Tracked);
        let right = object(2, 100, 0, 10, TrackState::Tracked);
        let all = [left, right];
        assert_eq!(nearest_object(&all, (30.0, 5.0)).map(|o| o.id), Some(1));
        assert_eq!(nearest_object(&all, (80.0, 5.0)).map(|o| o.id), Some(2));
        assert!(nearest_object(&[], (0.0, 0.0)).is_none());
    }
}
