// SPDX-License-Identifier: Apache-2.0
//! Greedy box non-maximum suppression, as `torchvision.ops.nms` which SAM's
//! automatic mask generator uses.

/// A box in frame pixels with inclusive corners `[x0, y0, x1, y1]`, as SAM's
/// `batched_mask_to_box` gives them.
pub(crate) type Corners = [f32; 4];

/// Box IoU as torchvision computes it: areas `(x1 - x0) * (y1 - y0)` on the
/// given corners (so a one-pixel-wide box has area 0, as in SAM). Two equal
/// boxes of area 0 count as the same box (IoU 1), where torchvision's 0/0
/// would keep every copy: a frame of one pixel gave one object per prompt.
pub(crate) fn box_iou(a: &Corners, b: &Corners) -> f32 {
    let area = |r: &Corners| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else if a == b {
        1.0
    } else {
        0.0
    }
}

/// Indices of the boxes kept, highest score first: a box is dropped when its
/// IoU with a kept, higher-scored box exceeds `iou_thresh`. Equal scores keep
/// the lower index first, so the result does not depend on sort stability;
/// NaN scores rank last.
pub(crate) fn box_nms(boxes: &[Corners], scores: &[f32], iou_thresh: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len().min(scores.len())).collect();
    let score = |i: usize| scores.get(i).copied().filter(|s| !s.is_nan());
    order.sort_by(|&a, &b| {
        score(b)
            .partial_cmp(&score(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let mut kept: Vec<usize> = Vec::new();
    for i in order {
        let Some(candidate) = boxes.get(i) else {
            continue;
        };
        let suppressed = kept
            .iter()
            .filter_map(|&k| boxes.get(k))
            .any(|k| box_iou(k, candidate) > iou_thresh);
        if !suppressed {
            kept.push(i);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(
            box_iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]),
            1.0
        );
        assert_eq!(
            box_iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]),
            50.0 / 150.0
        );
        assert_eq!(
            box_iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 20.0, 30.0, 30.0]),
            0.0
        );
        assert_eq!(box_iou(&[3.0, 3.0, 3.0, 3.0], &[3.0, 3.0, 3.0, 3.0]), 1.0);
        assert_eq!(box_iou(&[3.0, 3.0, 3.0, 9.0], &[3.0, 3.0, 3.0, 3.0]), 0.0);
        let point = [0.0; 4];
        assert_eq!(box_nms(&[point; 5], &[0.9; 5], 0.7), vec![0]);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 0.0, 11.0, 10.0],
            [50.0, 50.0, 60.0, 60.0],
            [0.0, 0.0, 10.0, 10.0],
        ];
        assert_eq!(box_nms(&boxes, &[0.8, 0.9, 0.5, 0.9], 0.7), vec![1, 2]);
        // Equal scores: the lower index wins.
        assert_eq!(box_nms(&boxes, &[0.9, 0.9, 0.9, 0.9], 0.7), vec![0, 2]);
        // IoU never exceeds 1: nothing is suppressed.
        assert_eq!(box_nms(&boxes, &[0.1, 0.2, 0.3, 0.4], 1.0).len(), 4);
        assert_eq!(box_nms(&boxes, &[f32::NAN, 0.1, 0.2, 0.0], 0.7), vec![2, 1]);
        assert!(box_nms(&[], &[], 0.7).is_empty());
    }
}
