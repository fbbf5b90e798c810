// SPDX-License-Identifier: Apache-2.0
//! How a followed object is prompted on the next inference, from its own
//! last result.
//!
//! The ingredients, each optional ([`RepromptOptions`]):
//! - the box of the previous mask, moved by the predicted motion and grown
//!   by a margin (a box tells SAM "the object in here");
//! - the original prompt's points (and, without a mask box, its box) moved
//!   by the object's displacement since it was acquired;
//! - the previous low-res logits as `mask_input` (SAM's refinement), as
//!   they are or moved by the predicted motion.
//!
//! Motion is predicted at constant velocity: the centroid displacement
//! between the last two accepted results. On the first re-prompt after an
//! acquisition the velocity is not known yet: the box is grown more and no
//! mask input is given. A re-prompt whose result is rejected gets one
//! second attempt on the same frame ([`recovery_prompt`]).
//!
//! The defaults are what measured best with the fixture model on the
//! moving-shapes video of `tests/tracking.rs` (4 objects, 3-14 px/frame,
//! crossings; mean mask IoU over 36 frames, prompted by boxes):
//!
//! | re-prompt | IoU |
//! | --- | --- |
//! | none (the user's prompt on every frame) | 0.14 |
//! | previous box | 0.83 |
//! | previous box grown 10% | 0.52 |
//! | previous box, no motion prediction | 0.61 |
//! | previous box + previous logits | 0.74 |
//! | previous box + logits moved by the motion (default) | 0.90 |
//! | original prompt moved | 0.90 (points: 0.76) |
//!
//! A loose box lets the mask spread onto a neighbour where objects cross;
//! the previous logits say which object is meant, but only when moved with
//! it (unmoved, they hold a fast object back). The fixture was trained with
//! a mask-input refinement round (tools/train_fixture.py), and SAM's
//! checkpoints with several. At 1.5x the speeds (up to 21 px/frame) the
//! second attempt is what keeps the objects (IoU 0.88 with it, 0.42
//! without); at 2x objects moving more than about their radius per
//! inference are lost.

use std::sync::Arc;

use crate::segment::image::preprocess::Geometry;
use crate::segment::masks::mask::LowResLogits;
use crate::segment::prompt::{PointLabel, Prompt};
use crate::segment::segmenter::SegmentedObject;
use crate::segment::video::track::Track;

/// Pixels added on each side of a grown box, whatever its size (so that
/// tiny objects get room to move).
pub const MIN_MARGIN_PX: f32 = 2.0;

/// Default growth of the previous mask's box, per side, as a fraction of
/// its size.
pub const DEFAULT_BOX_MARGIN: f32 = 0.0;

/// Default growth of the box of a second attempt, besides the speed.
pub const DEFAULT_RECOVERY_MARGIN: f32 = 0.1;

/// Default growth of the box while the motion is not measured yet.
pub const DEFAULT_UNKNOWN_MOTION_MARGIN: f32 = 0.25;

/// Whether and how the previous logits are fed back as `mask_input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MaskInput {
    /// No mask input.
    #[default]
    Off,
    /// The previous low-res logits as they are.
    Previous,
    /// The previous low-res logits moved by the predicted motion (whole
    /// low-res cells).
    Shifted,
}

/// How a followed object is re-prompted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepromptOptions {
    /// Prompt with the previous mask's box, grown on each side by this
    /// fraction of its width and height (plus [`MIN_MARGIN_PX`]); `None`: no
    /// box from the mask.
    pub box_margin: Option<f32>,
    /// Add the original prompt's points, moved with the object (and its
    /// box, when `box_margin` is `None`).
    pub move_points: bool,
    /// Feed the previous logits back.
    pub mask_input: MaskInput,
    /// Move boxes, points and mask inputs by the last measured velocity.
    pub predict_motion: bool,
    /// While the velocity is not measured yet (the first re-prompt after an
    /// acquisition), the box grows by at least this fraction per side and no
    /// mask input is given: an unmoved mask input holds the object back.
    pub unknown_motion_margin: f32,
    /// A re-prompted result that loses its object gets a second attempt on
    /// the same frame ([`recovery_prompt`]): the previous mask's box, not
    /// moved, grown by the measured speed plus this fraction per side,
    /// without mask input (for objects that turned or bounced). `None`: no
    /// second attempt.
    pub recovery_margin: Option<f32>,
}

impl Default for RepromptOptions {
    fn default() -> Self {
        RepromptOptions {
            box_margin: Some(DEFAULT_BOX_MARGIN),
            move_points: false,
            mask_input: MaskInput::Shifted,
            predict_motion: true,
            unknown_motion_margin: DEFAULT_UNKNOWN_MOTION_MARGIN,
            recovery_margin: Some(DEFAULT_RECOVERY_MARGIN),
        }
    }
}

/// The prompt that follows `track` on the next inference in a frame of
/// `geometry`, in frame pixels. Without an accepted result, its original
/// prompt; a combination that would select nothing (no box, no positive
/// point) falls back to the previous mask's box.
pub(crate) fn reprompt(track: &Track, geometry: &Geometry, options: &RepromptOptions) -> Prompt {
    let Some(last) = track.last.as_ref() else {
        return track.original.clone();
    };
    let (w, h) = (geometry.frame_width as f32, geometry.frame_height as f32);
    let clamp = |x: f32, y: f32| (x.clamp(0.0, w), y.clamp(0.0, h));
    let velocity = if options.predict_motion {
        track.velocity()
    } else {
        (0.0, 0.0)
    };
    // Without a measured velocity the object may be anywhere near: a wider
    // box, and no mask input that would hold it where it was.
    let searching = options.predict_motion && !track.motion_known();
    let (dx, dy) = track.displacement();
    let (dx, dy) = (dx + velocity.0, dy + velocity.1);

    let mut prompt = Prompt::new();
    if options.move_points {
        for p in track.original.points() {
            let (x, y) = clamp(p.x + dx, p.y + dy);
            prompt = match p.label {
                PointLabel::Positive => prompt.with_point(x, y),
                PointLabel::Negative => prompt.with_negative(x, y),
            };
        }
        if options.box_margin.is_none()
            && let Some(b) = track.original.bbox()
        {
            let (x0, y0) = clamp(b.x0 + dx, b.y0 + dy);
            let (x1, y1) = clamp(b.x1 + dx, b.y1 + dy);
            prompt = prompt.with_box(x0, y0, x1, y1);
        }
    }
    let selects = prompt.bbox().is_some() || prompt.positive_points().next().is_some();
    let margin = match options.box_margin {
        Some(m) if searching => Some(m.max(options.unknown_motion_margin)),
        Some(m) => Some(m),
        None if !selects => Some(DEFAULT_BOX_MARGIN),
        None => None,
    };
    if let Some(margin) = margin
        && let Some((x0, y0, x1, y1)) = grown_box(last, velocity, margin)
    {
        let (x0, y0) = clamp(x0, y0);
        let (x1, y1) = clamp(x1, y1);
        prompt = prompt.with_box(x0, y0, x1, y1);
    }
    if prompt.bbox().is_none() && prompt.positive_points().next().is_none() {
        // An empty previous mask (never accepted, but be safe).
        return track.original.clone();
    }
    match options.mask_input {
        _ if searching => prompt,
        MaskInput::Off => prompt,
        MaskInput::Previous => prompt.with_mask_input(Arc::clone(&last.low_res)),
        MaskInput::Shifted => {
            let (cx, cy) = low_res_cells(geometry, &last.low_res, velocity);
            if cx == 0 && cy == 0 {
                prompt.with_mask_input(Arc::clone(&last.low_res))
            } else {
                prompt.with_mask_input(Arc::new(shift_logits(&last.low_res, cx, cy)))
            }
        }
    }
}

/// The second attempt for `track` after its re-prompt failed: the box of
/// its last result grown on each side by `margin` of its size, the measured
/// speed and [`MIN_MARGIN_PX`]; `None` without a last result.
pub(crate) fn recovery_prompt(track: &Track, geometry: &Geometry, margin: f32) -> Option<Prompt> {
    let last = track.last.as_ref()?;
    let (vx, vy) = track.velocity();
    let (x0, y0, x1, y1) = grown_box(last, (0.0, 0.0), margin)?;
    let (sx, sy) = (vx.abs(), vy.abs());
    let (w, h) = (geometry.frame_width as f32, geometry.frame_height as f32);
    let (x0, x1) = ((x0 - sx).clamp(0.0, w), (x1 + sx).clamp(0.0, w));
    let (y0, y1) = ((y0 - sy).clamp(0.0, h), (y1 + sy).clamp(0.0, h));
    Some(Prompt::new().with_box(x0, y0, x1, y1))
}

/// The previous mask's box (x0, y0, x1, y1), moved by `velocity` and grown
/// by `margin` of its size plus [`MIN_MARGIN_PX`] on each side; `None` for
/// an empty mask.
fn grown_box(
    last: &SegmentedObject,
    velocity: (f32, f32),
    margin: f32,
) -> Option<(f32, f32, f32, f32)> {
    let (x, y, bw, bh) = last.bbox();
    if bw == 0 || bh == 0 {
        return None;
    }
    let margin = if margin.is_finite() {
        margin.max(0.0)
    } else {
        0.0
    };
    let (bw, bh) = (bw as f32, bh as f32);
    let (mx, my) = (margin * bw + MIN_MARGIN_PX, margin * bh + MIN_MARGIN_PX);
    let (x, y) = (x as f32 + velocity.0, y as f32 + velocity.1);
    Some((x - mx, y - my, x + bw + mx, y + bh + my))
}

/// A frame displacement in whole low-res cells (rounded).
fn low_res_cells(geometry: &Geometry, logits: &LowResLogits, d: (f32, f32)) -> (i64, i64) {
    // Frame pixel -> model pixel (scale) -> low-res cell (width / input size).
    let per_pixel =
        geometry.scale() * logits.width() as f64 / f64::from(geometry.input_size.max(1));
    let cells = |v: f32| {
        let c = (f64::from(v) * per_pixel).round();
        if c.is_finite() {
            c.clamp(-1e6, 1e6) as i64
        } else {
            0
        }
    };
    (cells(d.0), cells(d.1))
}

/// `logits` moved by (`dx`, `dy`) cells; cells moved in from outside get
/// the grid's lowest logit (background).
pub fn shift_logits(logits: &LowResLogits, dx: i64, dy: i64) -> LowResLogits {
    let (w, h) = (logits.width(), logits.height());
    let values = logits.values();
    let fill = values.iter().copied().fold(f32::INFINITY, f32::min);
    let fill = if fill.is_finite() { fill } else { -20.0 };
    let mut out = vec![fill; values.len()];
    // Each row's cells that stay on the grid, copied as one slice.
    let shift = |n: usize, d: i64| {
        let d = d.clamp(-(n as i64), n as i64);
        let to = d.max(0) as usize;
        let from = (-d).max(0) as usize;
        (from, to, n - to.max(from))
    };
    let (from_c, to_c, len) = shift(w, dx);
    let (from_r, to_r, rows) = shift(h, dy);
    for k in 0..rows {
        let (src, dst) = ((from_r + k) * w + from_c, (to_r + k) * w + to_c);
        if let (Some(src), Some(dst)) = (values.get(src..src + len), out.get_mut(dst..dst + len)) {
            dst.copy_from_slice(src);
        }
    }
    LowResLogits::new(w, h, out).unwrap_or_else(|| logits.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::masks::mask::BitMask;
    use crate::segment::segmenter::ObjectOrigin;
    use crate::segment::video::track::TrackState;

    fn object(x: u32, y: u32, w: u32, h: u32) -> SegmentedObject {
        let mask = BitMask::from_fn(x, y, w, h, |_, _| true);
        SegmentedObject {
            id: 0,
            prompt_index: 0,
            area: mask.count_ones(),
            mask,
            iou: 0.9,
            stability: 0.9,
            mask_index: 1,
            low_res: Arc::new(
                LowResLogits::new(4, 4, (0..16).map(|v| v as f32).collect()).unwrap(),
            ),
            origin: ObjectOrigin::Prompt { index: 0 },
        }
    }

    fn geometry() -> Geometry {
        Geometry::new(320, 240, 384).unwrap()
    }

    /// A track acquired at x = 100 that moved to x = 110.
    fn moving_track() -> Track {
        let original = Prompt::new()
            .with_point(120.0, 70.0)
            .with_negative(90.0, 70.0)
            .with_box(95.0, 45.0, 145.0, 95.0);
        let mut t = Track::new(0, original);
        t.observe(object(100, 50, 40, 40), Ok(()), TrackState::Acquired, 0);
        t.observe(object(110, 50, 40, 40), Ok(()), TrackState::Tracked, 1);
        t
    }

    #[test]
    fn box_of_the_previous_mask_moved_and_grown() {
        let t = moving_track();
        let p = reprompt(&t, &geometry(), &RepromptOptions::default());
        let b = *p.bbox().unwrap();
        // The default: box 110..150 moved by the velocity (10), grown by 2 px,
        // and the (shifted) logits.
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (118.0, 48.0, 162.0, 92.0));
        assert!(p.points().is_empty() && p.mask_input().is_some());
        let ten = RepromptOptions {
            box_margin: Some(0.1),
            mask_input: MaskInput::Off,
            ..RepromptOptions::default()
        };
        let p = reprompt(&t, &geometry(), &ten);
        let b = *p.bbox().unwrap();
        // Grown by 4 + 2.
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (114.0, 44.0, 166.0, 96.0));
        assert!(p.points().is_empty() && p.mask_input().is_none());
        let still = RepromptOptions {
            predict_motion: false,
            ..ten
        };
        let b = *reprompt(&t, &geometry(), &still).bbox().unwrap();
        assert_eq!((b.x0, b.x1), (104.0, 156.0));
    }

    #[test]
    fn original_points_move_with_the_object() {
        let t = moving_track();
        let options = RepromptOptions {
            box_margin: None,
            move_points: true,
            mask_input: MaskInput::Off,
            ..RepromptOptions::default()
        };
        let p = reprompt(&t, &geometry(), &options);
        assert!(p.mask_input().is_none());
        // Displacement 10 plus predicted 10.
        let pts: Vec<(f32, f32)> = p.points().iter().map(|p| (p.x, p.y)).collect();
        assert_eq!(pts, vec![(140.0, 70.0), (110.0, 70.0)]);
        assert_eq!(p.negative_points().count(), 1);
        let b = p.bbox().unwrap();
        assert_eq!((b.x0, b.x1), (115.0, 165.0));
        // With a mask box, the original box is not used.
        let both = RepromptOptions {
            move_points: true,
            ..RepromptOptions::default()
        };
        let p = reprompt(&t, &geometry(), &both);
        assert_eq!(p.points().len(), 2);
        assert_eq!(p.bbox().unwrap().x0, 118.0);
    }

    #[test]
    fn a_first_reprompt_searches_wider_without_mask_input() {
        let mut t = Track::new(0, Prompt::new().with_point(120.0, 70.0));
        t.observe(object(100, 50, 40, 40), Ok(()), TrackState::Acquired, 0);
        let p = reprompt(&t, &geometry(), &RepromptOptions::default());
        let b = *p.bbox().unwrap();
        // 25% of 40 plus 2 px on each side, not moved.
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (88.0, 38.0, 152.0, 102.0));
        assert!(p.mask_input().is_none());
    }

    #[test]
    fn recovery_boxes_cover_the_speed() {
        let t = moving_track();
        let p = recovery_prompt(&t, &geometry(), 0.1).unwrap();
        let b = *p.bbox().unwrap();
        // Box 110..150 x 50..90, grown by 4 + 2 px, and by the speed (10, 0).
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (94.0, 44.0, 166.0, 96.0));
        assert!(p.points().is_empty() && p.mask_input().is_none());
        assert!(recovery_prompt(&Track::new(1, Prompt::new()), &geometry(), 0.1).is_none());
    }

    #[test]
    fn nothing_selecting_falls_back_to_the_mask_box() {
        let t = moving_track();
        let options = RepromptOptions {
            box_margin: None,
            move_points: false,
            ..RepromptOptions::default()
        };
        assert!(reprompt(&t, &geometry(), &options).bbox().is_some());
        // Without any result, the original prompt.
        let fresh = Track::new(0, Prompt::new().with_point(1.0, 2.0));
        assert_eq!(reprompt(&fresh, &geometry(), &options), fresh.original);
    }

    #[test]
    fn boxes_and_points_stay_in_the_frame() {
        let mut t = Track::new(0, Prompt::new().with_point(5.0, 5.0));
        t.observe(object(20, 0, 10, 10), Ok(()), TrackState::Acquired, 0);
        t.observe(object(0, 0, 10, 10), Ok(()), TrackState::Tracked, 1);
        let options = RepromptOptions {
            move_points: true,
            ..RepromptOptions::default()
        };
        let p = reprompt(&t, &geometry(), &options);
        let b = p.bbox().unwrap();
        assert_eq!((b.x0, b.y0), (0.0, 0.0));
        assert!(p.points().iter().all(|p| p.x >= 0.0 && p.y >= 0.0));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn mask_inputs() {
        let t = moving_track();
        let prev = RepromptOptions {
            mask_input: MaskInput::Previous,
            ..RepromptOptions::default()
        };
        let p = reprompt(&t, &geometry(), &prev);
        assert!(Arc::ptr_eq(
            p.mask_input().unwrap(),
            &t.last.as_ref().unwrap().low_res
        ));
        // 10 px at 320 px -> 384 input -> 4 cells: 10 * 1.2 * 4 / 384 = 0.125 cell: none.
        let shifted = RepromptOptions {
            mask_input: MaskInput::Shifted,
            ..RepromptOptions::default()
        };
        let p = reprompt(&t, &geometry(), &shifted);
        assert_eq!(
            p.mask_input().unwrap().values(),
            t.last.as_ref().unwrap().low_res.values()
        );
        assert_eq!(
            low_res_cells(
                &geometry(),
                &LowResLogits::new(96, 96, vec![0.0; 96 * 96]).unwrap(),
                (10.0, -5.0)
            ),
            (3, -2)
        );
    }

    #[test]
    fn shifting_logits() {
        let l = LowResLogits::new(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(
            shift_logits(&l, 1, 0).values(),
            &[1.0, 1.0, 2.0, 1.0, 4.0, 5.0]
        );
        assert_eq!(
            shift_logits(&l, -1, 1).values(),
            &[1.0, 1.0, 1.0, 2.0, 3.0, 1.0]
        );
        assert_eq!(shift_logits(&l, 0, 0).values(), l.values());
        assert!(shift_logits(&l, 5, 0).values().iter().all(|&v| v == 1.0));
        assert!(
            shift_logits(&l, i64::MIN + 1, i64::MAX)
                .values()
                .iter()
                .all(|&v| v == 1.0)
        );
    }

    #[test]
    fn shifted_logits_equal_the_cell_by_cell_definition() {
        let mut next = crate::segment::testing::random_below(3);
        for _ in 0..200 {
            let (w, h) = (1 + next(12) as usize, 1 + next(9) as usize);
            let values: Vec<f32> = (0..w * h).map(|_| next(1000) as f32 - 500.0).collect();
            let fill = values.iter().copied().fold(f32::INFINITY, f32::min);
            let l = LowResLogits::new(w, h, values.clone()).unwrap();
            let (dx, dy) = (i64::from(next(31)) - 15, i64::from(next(21)) - 10);
            let expected: Vec<f32> = (0..h as i64)
                .flat_map(|r| (0..w as i64).map(move |c| (c - dx, r - dy)))
                .map(|(c, r)| {
                    let inside = (0..w as i64).contains(&c) && (0..h as i64).contains(&r);
                    if inside {
                        values[r as usize * w + c as usize]
                    } else {
                        fill
                    }
                })
                .collect();
            assert_eq!(
                shift_logits(&l, dx, dy).values(),
                &expected[..],
                "{w}x{h} by {dx},{dy}"
            );
        }
    }
}
