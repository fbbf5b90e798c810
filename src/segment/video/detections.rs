// SPDX-License-Identifier: Apache-2.0
//! Stable object ids for a detector's boxes, which arrive afresh on every
//! frame.
//!
//! A detection continues the object of the previous frame's detection with
//! the same label and the same nonzero detector id; failing that, the one of
//! the same label whose box overlaps it most (greedily, box IoU at least
//! [`DetectionIds::min_iou`]). Other detections are new objects with fresh
//! ids. Only the previous frame's detections are remembered: an object the
//! detector stops reporting is gone, never a stale prompt.

use std::sync::Arc;

use crate::segment::prompt::PromptBox;
use crate::segment::video::ids::IdCounter;

/// Lowest box IoU at which a detection continues the previous frame's.
pub const DEFAULT_DETECTION_IOU: f32 = 0.3;

/// One detector box on one frame, in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub label: Arc<str>,
    /// The detector's own id for it (0: none).
    pub detection_id: i32,
    pub bbox: PromptBox,
}

/// Assigns object ids to each frame's detections.
#[derive(Debug, Clone)]
pub struct DetectionIds {
    ids: IdCounter,
    pub min_iou: f32,
    previous: Vec<(Detection, u64)>,
}

impl DetectionIds {
    pub fn new(ids: IdCounter) -> Self {
        DetectionIds {
            ids,
            min_iou: DEFAULT_DETECTION_IOU,
            previous: Vec::new(),
        }
    }

    /// The object id of each of this frame's detections, in order. An id
    /// for which `taken` holds (another source's object has it now) is not
    /// continued: that detection gets a fresh one.
    pub fn assign(&mut self, detections: &[Detection], taken: &dyn Fn(u64) -> bool) -> Vec<u64> {
        let mut assigned: Vec<Option<u64>> = vec![None; detections.len()];
        let mut used = vec![false; self.previous.len()];
        // The detector's own ids first.
        for (slot, d) in assigned.iter_mut().zip(detections) {
            if d.detection_id == 0 {
                continue;
            }
            let found = self.previous.iter().enumerate().find(|(k, (p, _))| {
                !used[*k] && p.detection_id == d.detection_id && p.label == d.label
            });
            if let Some((k, (_, id))) = found {
                used[k] = true;
                *slot = Some(*id);
            }
        }
        // Then overlap, best pairs first.
        let mut pairs = Vec::new();
        for (j, d) in detections.iter().enumerate() {
            if assigned[j].is_some() {
                continue;
            }
            for (k, (p, _)) in self.previous.iter().enumerate() {
                if used[k] || p.label != d.label {
                    continue;
                }
                let iou = box_iou(&p.bbox, &d.bbox);
                if iou >= self.min_iou && iou > 0.0 {
                    pairs.push((iou, j, k));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, j, k) in pairs {
            if assigned[j].is_none() && !used[k] {
                used[k] = true;
                assigned[j] = self.previous.get(k).map(|(_, id)| *id);
            }
        }
        let ids: Vec<u64> = assigned
            .into_iter()
            .map(|id| match id {
                Some(id) if !taken(id) => id,
                _ => self.ids.next_id(),
            })
            .collect();
        self.previous = detections
            .iter()
            .cloned()
            .zip(ids.iter().copied())
            .collect();
        ids
    }

    /// Forgets the previous frame (after a flush).
    pub fn reset(&mut self) {
        self.previous.clear();
    }
}

/// Intersection over union of two boxes (0 for empty ones).
pub fn box_iou(a: &PromptBox, b: &PromptBox) -> f32 {
    let w = (a.x1.min(b.x1) - a.x0.max(b.x0)).max(0.0);
    let h = (a.y1.min(b.y1) - a.y0.max(b.y0)).max(0.0);
    let inter = w * h;
    let area = |r: &PromptBox| (r.x1 - r.x0).max(0.0) * (r.y1 - r.y0).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &str, id: i32, x: f32) -> Detection {
        Detection {
            label: Arc::from(label),
            detection_id: id,
            bbox: PromptBox {
                x0: x,
                y0: 10.0,
                x1: x + 40.0,
                y1: 50.0,
            },
        }
    }

    fn none(_: u64) -> bool {
        false
    }

    #[test]
    fn ids_taken_by_other_objects_are_not_continued() {
        let mut ids = DetectionIds::new(IdCounter::new());
        assert_eq!(ids.assign(&[det("face", 0, 0.0)], &none), [0]);
        assert_eq!(ids.assign(&[det("face", 0, 0.0)], &|id| id == 0), [1]);
    }

    #[test]
    fn moving_boxes_keep_their_ids_and_vanished_ones_are_forgotten() {
        let counter = IdCounter::new();
        counter.reserve_below(3);
        let mut ids = DetectionIds::new(counter);
        let a = ids.assign(&[det("face", 0, 0.0), det("face", 0, 100.0)], &none);
        assert_eq!(a, [3, 4]);
        // Both moved a little, in the other order.
        let b = ids.assign(&[det("face", 0, 105.0), det("face", 0, 6.0)], &none);
        assert_eq!(b, [4, 3]);
        // One is gone for a frame: forgotten, a new id when it returns.
        let c = ids.assign(&[det("face", 0, 8.0)], &none);
        assert_eq!(c, [3]);
        let d = ids.assign(&[det("face", 0, 8.0), det("face", 0, 108.0)], &none);
        assert_eq!(d, [3, 5]);
        // Another label at the same place is another object.
        let e = ids.assign(&[det("car", 0, 8.0)], &none);
        assert_eq!(e, [6]);
    }

    #[test]
    fn detector_ids_win_over_overlap() {
        let mut ids = DetectionIds::new(IdCounter::new());
        let a = ids.assign(&[det("person", 7, 0.0), det("person", 8, 30.0)], &none);
        // Crossed: by overlap 8 would continue 7's object, by id it does not.
        let b = ids.assign(&[det("person", 8, 2.0), det("person", 7, 28.0)], &none);
        assert_eq!((b[0], b[1]), (a[1], a[0]));
        ids.reset();
        assert_eq!(ids.assign(&[det("person", 7, 0.0)], &none), [2]);
    }

    #[test]
    fn box_iou_of_disjoint_and_empty_boxes_is_zero() {
        let a = det("x", 0, 0.0).bbox;
        assert_eq!(box_iou(&a, &det("x", 0, 100.0).bbox), 0.0);
        assert!((box_iou(&a, &a) - 1.0).abs() < 1e-6);
        let empty = PromptBox {
            x0: 5.0,
            y0: 5.0,
            x1: 5.0,
            y1: 5.0,
        };
        assert_eq!(box_iou(&empty, &empty), 0.0);
    }
}
