// SPDX-License-Identifier: Apache-2.0
//! One followed object: its identity, its last accepted result, its motion,
//! and the state machine that says whether a new result continues it.
//!
//! ```text
//!              accepted (re-prompt)            rejected
//!  Acquired ─────────────────────────▶ Tracked ────────▶ Lost (reported once)
//!     ▲  │ rejected                      ▲  │               │
//!     │  └──────────────▶ Lost ◀─────────┼──┘               │
//!     │                                  │ grid match       │
//!     └─── accepted (original prompt) ───┼──────────────────┘
//!                                   Everything
//! ```
//!
//! A result is accepted when [`assess`] finds it plausible against the last
//! accepted one: not empty, predicted IoU and stability not collapsed, area
//! not jumped by more than [`LossCriteria::max_area_ratio`]. A rejected
//! result makes the track [`TrackState::Lost`]; the transition is reported
//! once ([`Event::Lost`]), later rejections are silent. Motion is the
//! displacement of the mask's centroid between consecutive inferences.

use std::fmt;

use crate::segment::masks::mask::BitMask;
use crate::segment::prompt::Prompt;
use crate::segment::segmenter::SegmentedObject;
use crate::segment::video::matching::shape_iou;

/// Where a tracked object's result on this frame comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackState {
    /// Found from the user's (original) prompt on this frame: the first
    /// frame after the prompts were set, a re-acquisition after being lost,
    /// or every frame when tracking is off.
    Acquired,
    /// Re-prompted from its own result on the previous inference.
    Tracked,
    /// Not found on this frame (its mask vanished, or the predicted IoU,
    /// stability or area collapsed): the object keeps its id and its mask is
    /// empty; it is re-acquired from its original prompt when possible.
    Lost,
    /// Everything mode: found by the point grid on this frame (matched to
    /// a known object, or new).
    Everything,
}

impl TrackState {
    /// Lower-case name, for metadata and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackState::Acquired => "acquired",
            TrackState::Tracked => "tracked",
            TrackState::Lost => "lost",
            TrackState::Everything => "everything",
        }
    }
}

impl fmt::Display for TrackState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a result was not taken as the continuation of its track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// The mask is empty.
    Vanished,
    /// Predicted IoU or stability fell below the floors.
    Collapsed,
    /// The area grew or shrank by more than the allowed factor.
    AreaJump,
    /// The mask became (nearly) the same as another object's.
    Duplicate,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossReason::Vanished => "mask vanished",
            LossReason::Collapsed => "predicted IoU or stability collapsed",
            LossReason::AreaJump => "area jumped",
            LossReason::Duplicate => "merged into another object",
        })
    }
}

/// When a result counts as a loss of its object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossCriteria {
    /// Lost below this predicted IoU.
    pub min_iou: f32,
    /// Lost below this fraction of the last accepted result's predicted IoU.
    pub relative_iou: f32,
    /// Lost below this stability score.
    pub min_stability: f32,
    /// Lost when the area changes by more than this factor from the last
    /// accepted result (either way).
    pub max_area_ratio: f32,
    /// Re-acquiring a lost object from its original prompt (which may now
    /// point at something else): the area must be within this factor of
    /// the last accepted one's...
    pub reacquire_area_ratio: f32,
    /// ...and the shape alike: mask IoU with the last accepted mask, the
    /// two centred on each other, at least this.
    pub reacquire_shape_iou: f32,
}

impl Default for LossCriteria {
    fn default() -> Self {
        LossCriteria {
            min_iou: 0.5,
            // A re-prompt whose predicted IoU falls by more than 30% has slid
            // off its object (0.88 -> 0.59 on a corrected one, tests/navigation.rs),
            // whatever its stability says: that depends on the logits' scale.
            relative_iou: 0.7,
            min_stability: 0.5,
            max_area_ratio: 3.0,
            reacquire_area_ratio: 1.5,
            reacquire_shape_iou: 0.6,
        }
    }
}

/// Whether `object` is a plausible continuation of `reference` (the track's
/// last accepted result; `None` checks only the absolute floors). NaN
/// scores count as collapsed.
pub fn assess(
    object: &SegmentedObject,
    reference: Option<&SegmentedObject>,
    criteria: &LossCriteria,
) -> Result<(), LossReason> {
    if object.area == 0 || object.mask.is_empty() {
        return Err(LossReason::Vanished);
    }
    let below = |value: f32, floor: f32| value.is_nan() || value < floor;
    if below(object.iou, criteria.min_iou) || below(object.stability, criteria.min_stability) {
        return Err(LossReason::Collapsed);
    }
    if let Some(reference) = reference {
        if reference.iou.is_finite() && below(object.iou, criteria.relative_iou * reference.iou) {
            return Err(LossReason::Collapsed);
        }
        if reference.area > 0 && criteria.max_area_ratio.is_finite() {
            let (a, b) = (object.area as f64, reference.area as f64);
            if a.max(b) > f64::from(criteria.max_area_ratio) * a.min(b) {
                return Err(LossReason::AreaJump);
            }
        }
    }
    Ok(())
}

/// Whether `object`, found by a lost track's original prompt, is plausibly
/// that object again: [`assess`] against `last`, plus the tighter area and
/// shape checks of re-acquisition.
pub fn assess_reacquisition(
    object: &SegmentedObject,
    last: &SegmentedObject,
    criteria: &LossCriteria,
) -> Result<(), LossReason> {
    assess(object, Some(last), criteria)?;
    let (a, b) = (object.area as f64, last.area as f64);
    if a.max(b) > f64::from(criteria.reacquire_area_ratio) * a.min(b) {
        return Err(LossReason::AreaJump);
    }
    if shape_iou(&object.mask, &last.mask) < criteria.reacquire_shape_iou {
        return Err(LossReason::Collapsed);
    }
    Ok(())
}

/// The mask's centroid in frame pixels (pixel centres); `None` when empty.
pub fn centroid(mask: &BitMask) -> Option<(f32, f32)> {
    // Summed 64 pixels at a time: this runs for every accepted result, and
    // a crowded frame has hundreds of large masks.
    let width = mask.width() as usize;
    let (mut sx, mut sy, mut n) = (0u64, 0u64, 0u64);
    for row in 0..mask.height() {
        let start = row as usize * width;
        let mut col = 0;
        while col < width {
            let len = (width - col).min(64);
            let word = mask.word_at(start + col, len);
            let ones = u64::from(word.count_ones());
            sx += ones * col as u64 + column_sum(word);
            sy += ones * u64::from(row);
            n += ones;
            col += len;
        }
    }
    (n > 0).then(|| {
        (
            (mask.x() as f64 + sx as f64 / n as f64 + 0.5) as f32,
            (mask.y() as f64 + sy as f64 / n as f64 + 0.5) as f32,
        )
    })
}

/// The sum of the set bits' places in `word`, counted from the most
/// significant bit (place 0) as [`BitMask::word_at`] lays out pixels.
/// Place k's bit j is set exactly where the bit's position from the least
/// significant end has bit j clear, so each of the six masks picks the
/// places that add 2^j.
fn column_sum(word: u64) -> u64 {
    const PLACE_BITS: [u64; 6] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
        0x0000_0000_FFFF_FFFF,
    ];
    PLACE_BITS
        .iter()
        .enumerate()
        .map(|(j, m)| u64::from((word & m).count_ones()) << j)
        .sum()
}

/// What one observation did to a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The result continues the track.
    Accepted,
    /// The track became lost on this observation (report it).
    Lost(LossReason),
    /// It was lost already and still is.
    StillLost,
}

/// A centroid at an inference.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sighting {
    inference: u64,
    at: (f32, f32),
}

/// One followed object.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    pub id: u64,
    pub state: TrackState,
    /// The prompt it was acquired from, in frame pixels (everything mode:
    /// its grid point).
    pub original: Prompt,
    /// The last accepted result.
    pub last: Option<SegmentedObject>,
    /// Grid runs in a row that did not find it (everything mode).
    pub missed_grids: u32,
    /// Inference of the last accepted result.
    pub accepted_at: Option<u64>,
    /// Centroid when acquired from `original`, to move its points.
    anchor: Option<(f32, f32)>,
    current: Option<Sighting>,
    previous: Option<Sighting>,
}

impl Track {
    pub fn new(id: u64, original: Prompt) -> Self {
        Track {
            id,
            state: TrackState::Acquired,
            original,
            last: None,
            missed_grids: 0,
            accepted_at: None,
            anchor: None,
            current: None,
            previous: None,
        }
    }

    /// Feeds this inference's result and its verdict. `via` is the state an
    /// accepted result gets ([`TrackState::Acquired`] for the original
    /// prompt, [`TrackState::Tracked`] for a re-prompt,
    /// [`TrackState::Everything`] for a grid match); a second accepted result
    /// at the same inference replaces the first one, keeping the motion
    /// measured from the inference before.
    pub fn observe(
        &mut self,
        object: SegmentedObject,
        verdict: Result<(), LossReason>,
        via: TrackState,
        inference: u64,
    ) -> Event {
        match verdict {
            Ok(()) => {
                if let Some(at) = centroid(&object.mask) {
                    let sighting = Sighting { inference, at };
                    match self.current {
                        Some(c) if c.inference == inference => {}
                        other => self.previous = other,
                    }
                    self.current = Some(sighting);
                    if via == TrackState::Acquired || self.anchor.is_none() {
                        // Re-acquired from the original prompt: the object is
                        // where that prompt points, and its old motion is
                        // meaningless.
                        self.anchor = Some(at);
                        if via == TrackState::Acquired {
                            self.previous = None;
                        }
                    }
                }
                self.state = via;
                if via == TrackState::Everything {
                    self.missed_grids = 0;
                }
                self.accepted_at = Some(inference);
                self.last = Some(object);
                Event::Accepted
            }
            Err(reason) => {
                if self.state == TrackState::Lost {
                    Event::StillLost
                } else {
                    self.state = TrackState::Lost;
                    self.previous = None;
                    Event::Lost(reason)
                }
            }
        }
    }

    /// Centroid displacement per inference between the last two accepted
    /// results; zero without two.
    pub fn velocity(&self) -> (f32, f32) {
        match (self.previous, self.current) {
            (Some(p), Some(c)) if c.inference > p.inference => {
                let gap = (c.inference - p.inference) as f32;
                ((c.at.0 - p.at.0) / gap, (c.at.1 - p.at.1) / gap)
            }
            _ => (0.0, 0.0),
        }
    }

    /// Whether the velocity is measured (two accepted results since the
    /// last acquisition or loss).
    pub fn motion_known(&self) -> bool {
        matches!((self.previous, self.current), (Some(p), Some(c)) if c.inference > p.inference)
    }

    /// Displacement of the object since it was acquired from its original
    /// prompt, as of its last accepted result.
    pub fn displacement(&self) -> (f32, f32) {
        match (self.anchor, self.current) {
            (Some(a), Some(c)) => (c.at.0 - a.0, c.at.1 - a.1),
            _ => (0.0, 0.0),
        }
    }

    /// Whether it can be re-prompted from its last result at `inference`:
    /// not lost, with an accepted result from before (normally the last
    /// inference; after a failed frame, an earlier one).
    pub fn followable(&self, inference: u64) -> bool {
        self.state != TrackState::Lost
            && self.last.is_some()
            && self.accepted_at.is_some_and(|at| at <= inference)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::segment::masks::mask::LowResLogits;
    use crate::segment::segmenter::ObjectOrigin;

    fn object(x: u32, y: u32, w: u32, h: u32, iou: f32, stability: f32) -> SegmentedObject {
        let mask = BitMask::from_fn(x, y, w, h, |_, _| true);
        SegmentedObject {
            id: 0,
            prompt_index: 0,
            area: mask.count_ones(),
            mask,
            iou,
            stability,
            mask_index: 1,
            low_res: Arc::new(LowResLogits::new(1, 1, vec![0.0]).unwrap()),
            origin: ObjectOrigin::Prompt { index: 0 },
        }
    }

    #[test]
    fn assessment() {
        let c = LossCriteria::default();
        let good = object(10, 10, 20, 20, 0.9, 0.95);
        assert_eq!(assess(&good, None, &c), Ok(()));
        assert_eq!(assess(&good, Some(&good), &c), Ok(()));
        let mut empty = object(0, 0, 0, 0, 0.9, 0.9);
        empty.area = 0;
        assert_eq!(assess(&empty, None, &c), Err(LossReason::Vanished));
        assert_eq!(
            assess(&object(0, 0, 5, 5, 0.3, 0.9), None, &c),
            Err(LossReason::Collapsed)
        );
        assert_eq!(
            assess(&object(0, 0, 5, 5, 0.9, 0.2), None, &c),
            Err(LossReason::Collapsed)
        );
        assert_eq!(
            assess(&object(0, 0, 5, 5, f32::NAN, 0.9), None, &c),
            Err(LossReason::Collapsed)
        );
        // Relative collapse: 0.52 passes the floor but not 0.7 * 0.9.
        assert_eq!(
            assess(&object(10, 10, 20, 20, 0.52, 0.9), Some(&good), &c),
            Err(LossReason::Collapsed)
        );
        // Area: 400 -> 100 is a factor of 4, 400 -> 144 of 2.8.
        assert_eq!(
            assess(&object(10, 10, 10, 10, 0.9, 0.9), Some(&good), &c),
            Err(LossReason::AreaJump)
        );
        assert_eq!(
            assess(&object(10, 10, 12, 12, 0.9, 0.9), Some(&good), &c),
            Ok(())
        );
        assert_eq!(
            assess(&object(0, 0, 40, 40, 0.9, 0.9), Some(&good), &c),
            Err(LossReason::AreaJump)
        );
    }

    #[test]
    fn reacquisition_wants_the_same_size_and_shape() {
        let c = LossCriteria::default();
        let last = object(10, 10, 20, 20, 0.9, 0.95);
        // The same square elsewhere.
        assert_eq!(
            assess_reacquisition(&object(100, 80, 20, 20, 0.9, 0.9), &last, &c),
            Ok(())
        );
        // 20x20 -> 20x30: area x1.5 passes; a 40x10 bar (same area) is
        // another shape.
        assert_eq!(
            assess_reacquisition(&object(0, 0, 20, 30, 0.9, 0.9), &last, &c),
            Ok(())
        );
        assert_eq!(
            assess_reacquisition(&object(0, 0, 20, 31, 0.9, 0.9), &last, &c),
            Err(LossReason::AreaJump)
        );
        assert_eq!(
            assess_reacquisition(&object(0, 0, 40, 10, 0.9, 0.9), &last, &c),
            Err(LossReason::Collapsed)
        );
    }

    #[test]
    fn centroids_equal_the_pixel_by_pixel_mean() {
        let mut next = crate::segment::testing::random_below(11);
        for _ in 0..200 {
            let (x, y, w, h) = (next(50), next(50), 1 + next(200), 1 + next(12));
            let density = next(11);
            let mask = BitMask::from_fn(x, y, w, h, |_, _| next(10) < density);
            let set: Vec<(u32, u32)> = (0..h)
                .flat_map(|r| (0..w).map(move |c| (c, r)))
                .filter(|&(c, r)| mask.get(c, r))
                .collect();
            let expected = (!set.is_empty()).then(|| {
                let n = set.len() as f64;
                let sx: u64 = set.iter().map(|&(c, _)| u64::from(c)).sum();
                let sy: u64 = set.iter().map(|&(_, r)| u64::from(r)).sum();
                (
                    (f64::from(x) + sx as f64 / n + 0.5) as f32,
                    (f64::from(y) + sy as f64 / n + 0.5) as f32,
                )
            });
            assert_eq!(centroid(&mask), expected, "{w}x{h} at {x},{y}");
        }
        for place in 0..64u64 {
            assert_eq!(column_sum(1u64 << (63 - place)), place);
        }
        assert_eq!(column_sum(u64::MAX), (0..64u64).sum::<u64>());
    }

    #[test]
    fn centroids() {
        assert_eq!(centroid(&BitMask::default()), None);
        assert_eq!(
            centroid(&BitMask::from_fn(10, 20, 4, 2, |_, _| true)),
            Some((12.0, 21.0))
        );
        // Only the set pixels count.
        let l = BitMask::from_fn(0, 0, 3, 3, |c, r| c == 0 || r == 2);
        let (x, y) = centroid(&l).unwrap();
        assert!((x - (0.5 * 3.0 + 1.5 + 2.5) / 5.0).abs() < 1e-5);
        assert!((y - (0.5 + 1.5 + 2.5 * 3.0) / 5.0).abs() < 1e-5);
    }

    #[test]
    fn state_machine_reports_a_loss_once_and_reacquires() {
        let mut t = Track::new(3, Prompt::new().with_point(15.0, 15.0));
        let at = |x| object(x, 10, 10, 10, 0.9, 0.9);
        assert_eq!(
            t.observe(at(10), Ok(()), TrackState::Acquired, 0),
            Event::Accepted
        );
        assert_eq!(t.state, TrackState::Acquired);
        assert_eq!(t.velocity(), (0.0, 0.0));
        assert!(t.followable(1) && !t.motion_known());
        assert_eq!(
            t.observe(at(14), Ok(()), TrackState::Tracked, 1),
            Event::Accepted
        );
        assert_eq!(t.state, TrackState::Tracked);
        assert_eq!(t.velocity(), (4.0, 0.0));
        assert!(t.motion_known());
        assert_eq!(t.displacement(), (4.0, 0.0));
        let e = t.observe(at(18), Err(LossReason::Vanished), TrackState::Tracked, 2);
        assert_eq!(e, Event::Lost(LossReason::Vanished));
        assert_eq!(t.state, TrackState::Lost);
        assert!(!t.followable(3));
        // The last accepted result stays as the reference.
        assert_eq!(t.last.as_ref().map(|o| o.mask.x()), Some(14));
        let e = t.observe(at(18), Err(LossReason::Collapsed), TrackState::Acquired, 3);
        assert_eq!(e, Event::StillLost);
        // Re-acquired from the original prompt: motion restarts there.
        assert_eq!(
            t.observe(at(10), Ok(()), TrackState::Acquired, 4),
            Event::Accepted
        );
        assert_eq!(t.state, TrackState::Acquired);
        assert_eq!((t.velocity(), t.displacement()), ((0.0, 0.0), (0.0, 0.0)));
        assert_eq!(
            t.observe(at(12), Ok(()), TrackState::Tracked, 5),
            Event::Accepted
        );
        assert_eq!(t.velocity(), (2.0, 0.0));
    }

    #[test]
    fn a_second_result_at_the_same_inference_replaces_the_first() {
        let mut t = Track::new(0, Prompt::new().with_point(0.0, 0.0));
        let at = |x| object(x, 0, 10, 10, 0.9, 0.9);
        t.observe(at(0), Ok(()), TrackState::Everything, 0);
        t.observe(at(5), Ok(()), TrackState::Tracked, 1);
        // The grid's mask for the same frame, a pixel further.
        t.observe(at(6), Ok(()), TrackState::Everything, 1);
        assert_eq!(t.state, TrackState::Everything);
        assert_eq!(t.velocity(), (6.0, 0.0));
        assert_eq!(t.last.as_ref().map(|o| o.mask.x()), Some(6));
        // Gaps divide the displacement.
        t.observe(at(12), Ok(()), TrackState::Tracked, 3);
        assert_eq!(t.velocity(), (3.0, 0.0));
        t.missed_grids = 2;
        t.observe(at(12), Ok(()), TrackState::Everything, 4);
        assert_eq!(t.missed_grids, 0);
    }

    #[test]
    fn names() {
        assert_eq!(TrackState::Lost.to_string(), "lost");
        assert_eq!(TrackState::Everything.as_str(), "everything");
        assert_eq!(LossReason::AreaJump.to_string(), "area jumped");
    }
}
