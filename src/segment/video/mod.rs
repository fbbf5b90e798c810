// SPDX-License-Identifier: Apache-2.0
//! Video over time: objects followed from frame to frame with stable
//! identities, on top of [`Segmenter`]. Knows nothing of GStreamer.
//!
//! [`VideoSegmenter::process`] takes one inferred frame's embedding and the
//! user's current prompts:
//! - **prompted objects** ([`prompted`]): object `i` answers prompt `i` and
//!   has id `i` while the prompts stay the same. With tracking on, every
//!   inference after the first re-prompts each object from its own last
//!   result ([`reprompt`]: its box moved by its measured motion, and its
//!   low-res logits moved likewise as `mask_input`); a result that is empty,
//!   whose predicted IoU, stability or area collapses, or that becomes
//!   another object's makes the object [`TrackState::Lost`] (reported once
//!   in [`VideoFrame::lost`], output with an empty mask), and it is
//!   re-acquired from its original prompt when that finds something of its
//!   size and shape that no other object holds. Changing the prompts
//!   replaces the objects. Without tracking, every frame uses the prompts.
//! - **everything mode** ([`everything`], no prompts and
//!   [`VideoOptions::everything`] set): the point grid runs on the first
//!   inference, every [`VideoOptions::everything_interval`] inferences and
//!   when many followed objects are lost ([`schedule`]); in between only
//!   the known objects are followed. Each grid result is matched to the
//!   known objects by mask IoU ([`matching`]); matched ones keep their id,
//!   new ones get ids never used before in the stream (not even across
//!   [`VideoSegmenter::reset`]). A lost object is not output; it comes back
//!   with its id if the next grid finds it, and is dropped otherwise.
//!
//! Memory is bounded: one track per prompt (at most
//! [`MAX_PROMPTS`](crate::segment::limits::MAX_PROMPTS), which
//! [`Segmenter::segment`] enforces) and at most
//! [`TrackerSettings::max_tracks`] ([`MAX_TRACKS`], 256) in everything mode;
//! lost everything-mode objects waiting for the next grid count towards
//! it. A track holds one mask and one low-res logit grid (`4h x 4w`
//! floats: 256 KiB for a 1024 model, 36 KiB for the fixture), so 256
//! tracks of the full-size model hold at most about 64 MiB of logits.
//!
//! ```no_run
//! use gsttinysam::segment::video::{VideoOptions, VideoSegmenter};
//! use gsttinysam::segment::{EngineOptions, ModelSource, Prompt, Segmenter};
//! # fn frames() -> Vec<gsttinysam::segment::FrameView<'static>> { Vec::new() }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (segmenter, _warnings) =
//!     Segmenter::load(&ModelSource::directory("models/tinysam"), &EngineOptions::default())?;
//! let mut video = VideoSegmenter::new(segmenter);
//! let prompts = [Prompt::new().with_box(40.0, 60.0, 200.0, 220.0)];
//! for frame in frames() {
//!     let embedding = video.segmenter_mut().embed(&frame)?;
//!     let result = video.process(&embedding, &prompts, &VideoOptions::default())?;
//!     for object in &result.objects {
//!         println!("{} {} {:?}", object.id, object.state, object.object.bbox());
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod detections;
pub mod everything;
pub mod follow;
pub mod ids;
pub mod matching;
pub mod merge;
pub mod pointer;
pub mod prompt_set;
pub mod prompted;
pub mod reprompt;
pub mod schedule;
pub mod track;

use crate::segment::error::Error;
use crate::segment::everything::EverythingOptions;
use crate::segment::onnx::engine::ImageEmbedding;
use crate::segment::prompt::Prompt;
use crate::segment::segmenter::{SegmentOptions, SegmentedObject, Segmenter};

pub use detections::{Detection, DetectionIds};
pub use ids::IdCounter;
pub use matching::{Match, greedy_match, mask_iou};
pub use prompt_set::{EditError, ObjectPrompt, PromptOrigin, PromptSet};
pub use reprompt::{MaskInput, RepromptOptions};
pub use track::{LossCriteria, LossReason, TrackState};

use everything::EverythingTracker;
use prompted::PromptedTracker;

/// Everything mode: the grid runs on every this many inferences unless told
/// otherwise (see [`VideoOptions::everything_interval`]).
pub const DEFAULT_EVERYTHING_INTERVAL: usize = 10;
/// Most objects followed in everything mode.
pub const MAX_TRACKS: usize = 256;
/// Lowest mask IoU at which a grid result continues a known object.
pub const DEFAULT_MATCH_IOU: f32 = 0.5;
/// Lowest shape IoU at which a grid result continues a known object that
/// moved too far to overlap it.
pub const DEFAULT_SHAPE_MATCH_IOU: f32 = 0.7;
/// Mask IoU at which two followed objects count as merged into one.
pub const DEFAULT_MERGE_IOU: f32 = 0.7;
/// Everything mode: grid runs in a row that may miss a followed object
/// before it is dropped.
pub const DEFAULT_MAX_MISSED_GRIDS: u32 = 1;

/// Per-call choices for [`VideoSegmenter::process`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoOptions {
    /// Decoding options of prompted objects (and of following everything-mode
    /// objects).
    pub segment: SegmentOptions,
    /// Everything mode's options; `None`: frames without prompts give no
    /// objects.
    pub everything: Option<EverythingOptions>,
    /// Follow objects from frame to frame (default true). Off: prompted
    /// objects use the user's prompts on every frame, everything mode runs
    /// the grid on every inference (ids are still matched).
    pub tracking: bool,
    /// Everything mode with tracking: the grid runs every this many
    /// inferences (1: on every inference; 0 is taken as 1).
    pub everything_interval: usize,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            segment: SegmentOptions::default(),
            everything: Some(EverythingOptions::default()),
            tracking: true,
            everything_interval: DEFAULT_EVERYTHING_INTERVAL,
        }
    }
}

/// How objects are followed; the defaults are what measured best with the
/// fixture model (`tests/tracking.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerSettings {
    /// How a prompted object is re-prompted from its last result.
    pub reprompt: RepromptOptions,
    /// How an everything-mode object is re-prompted (its original prompt
    /// is the grid point that found it).
    pub everything_reprompt: RepromptOptions,
    /// When a result counts as losing the object.
    pub loss: LossCriteria,
    /// Lowest mask IoU at which a grid result continues a known object.
    pub match_iou: f32,
    /// Everything mode: a grid object that overlaps no known one enough
    /// still continues one of the same shape close by (see
    /// [`matching::match_by_shape`]) at this shape IoU.
    pub shape_match_iou: f32,
    /// Mask IoU at which two followed objects count as merged.
    pub merge_iou: f32,
    /// Most objects followed in everything mode (new grid objects past it
    /// are dropped, lowest predicted IoU first, with a warning).
    pub max_tracks: usize,
    /// Everything mode: grid runs in a row that may miss a followed object
    /// before it is dropped.
    pub max_missed_grids: u32,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        TrackerSettings {
            reprompt: RepromptOptions::default(),
            everything_reprompt: RepromptOptions {
                move_points: true,
                ..RepromptOptions::default()
            },
            loss: LossCriteria::default(),
            match_iou: DEFAULT_MATCH_IOU,
            shape_match_iou: DEFAULT_SHAPE_MATCH_IOU,
            merge_iou: DEFAULT_MERGE_IOU,
            max_tracks: MAX_TRACKS,
            max_missed_grids: DEFAULT_MAX_MISSED_GRIDS,
        }
    }
}

/// One object on one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedObject {
    /// Stable identity across frames: the [`ObjectPrompt::id`] of a prompted
    /// object (its index in a plain prompt list), a never-reused count in
    /// everything mode.
    pub id: u64,
    /// This frame's result (its `id` is set to the identity too, so
    /// [`draw_objects`](crate::segment::draw_objects) colours follow it). A
    /// [`TrackState::Lost`] object has an empty mask and area 0, with the
    /// predicted IoU and stability of the rejected attempt.
    pub object: SegmentedObject,
    pub state: TrackState,
    /// Index of the prompt it follows in this frame's prompts (`None` in
    /// everything mode).
    pub prompt_index: Option<usize>,
}

/// The result of one inferred frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoFrame {
    /// Prompted: one per prompted object, in prompt order (lost ones
    /// included).
    /// Everything mode: the objects found or followed on this frame, by id.
    pub objects: Vec<TrackedObject>,
    /// Ids of the objects that became lost on this frame (each reported
    /// once; in everything mode lost objects are dropped).
    pub lost: Vec<u64>,
    /// Prompt coordinates clamped when the prompts were taken, frame size
    /// changes, capped tracks, everything-mode warnings.
    pub warnings: Vec<String>,
    /// Whether everything mode ran its grid on this frame.
    pub grid: bool,
    /// Prompts decoded for this frame (grid points included).
    pub prompts_decoded: usize,
}

/// What is being followed.
#[derive(Debug)]
enum Mode {
    Idle,
    Prompted(PromptedTracker),
    Everything(EverythingTracker),
}

/// A [`Segmenter`] with the objects it follows from frame to frame.
#[derive(Debug)]
pub struct VideoSegmenter {
    segmenter: Segmenter,
    settings: TrackerSettings,
    mode: Mode,
    ids: IdCounter,
    /// Inferences since the stream started (or the last reset).
    inference: u64,
}

impl VideoSegmenter {
    pub fn new(segmenter: Segmenter) -> Self {
        Self::with_settings(segmenter, TrackerSettings::default())
    }

    pub fn with_settings(segmenter: Segmenter, settings: TrackerSettings) -> Self {
        VideoSegmenter {
            segmenter,
            settings,
            mode: Mode::Idle,
            ids: IdCounter::new(),
            inference: 0,
        }
    }

    /// Draws everything-mode ids from `ids`, which a [`PromptSet`] and
    /// [`DetectionIds`] may share, so no two objects get one id.
    #[must_use]
    pub fn with_id_counter(mut self, ids: IdCounter) -> Self {
        self.ids = ids;
        self
    }

    pub fn segmenter(&self) -> &Segmenter {
        &self.segmenter
    }

    pub fn segmenter_mut(&mut self) -> &mut Segmenter {
        &mut self.segmenter
    }

    pub fn settings(&self) -> &TrackerSettings {
        &self.settings
    }

    /// New settings apply from the next frame; the objects are kept.
    pub fn set_settings(&mut self, settings: TrackerSettings) {
        self.settings = settings;
    }

    /// Objects currently followed (lost prompted objects included).
    pub fn tracks(&self) -> usize {
        match &self.mode {
            Mode::Idle => 0,
            Mode::Prompted(t) => t.len(),
            Mode::Everything(t) => t.len(),
        }
    }

    /// One inferred frame with a plain prompt list: object `i` has id `i`,
    /// in `options.segment.coord_mode`. See [`Self::process_objects`].
    pub fn process(
        &mut self,
        embedding: &ImageEmbedding,
        prompts: &[Prompt],
        options: &VideoOptions,
    ) -> Result<VideoFrame, Error> {
        let objects =
            ObjectPrompt::indexed(prompts, options.segment.coord_mode, PromptOrigin::Property);
        self.process_objects(embedding, &objects, options)
    }

    /// One inferred frame. `prompts` are the current prompted objects: an
    /// object whose id and prompt are as in the previous call is followed,
    /// one whose prompt changed is acquired again from it (keeping its id;
    /// a prompt that only gained points re-acquires the followed object from
    /// its prompt moved with it plus those points), and
    /// objects whose ids are gone are dropped. Without prompts, everything
    /// mode runs when `options.everything` is set. On an error the followed
    /// objects are as before the call or as of this frame's finished part;
    /// [`reset`](Self::reset) starts afresh.
    pub fn process_objects(
        &mut self,
        embedding: &ImageEmbedding,
        prompts: &[ObjectPrompt],
        options: &VideoOptions,
    ) -> Result<VideoFrame, Error> {
        let inference = self.inference;
        // Counted even when the frame fails: its half-done work is of this
        // inference, the next frame is the next one.
        self.inference = self.inference.saturating_add(1);
        if !prompts.is_empty() {
            if let Some(max) = prompts.iter().map(|p| p.id).max() {
                self.ids.reserve_below(max.saturating_add(1));
            }
            match &mut self.mode {
                Mode::Prompted(t) => t.update(prompts),
                _ => self.mode = Mode::Prompted(PromptedTracker::new(prompts)),
            }
            match &mut self.mode {
                Mode::Prompted(t) => t.process(
                    &mut self.segmenter,
                    embedding,
                    options,
                    &self.settings,
                    inference,
                ),
                _ => Ok(VideoFrame::default()),
            }
        } else if let Some(everything) = &options.everything {
            if !matches!(self.mode, Mode::Everything(_)) {
                self.mode = Mode::Everything(EverythingTracker::new());
            }
            match &mut self.mode {
                Mode::Everything(t) => t.process(
                    &mut self.segmenter,
                    embedding,
                    options,
                    everything,
                    &self.settings,
                    &mut self.ids,
                    inference,
                ),
                _ => Ok(VideoFrame::default()),
            }
        } else {
            self.mode = Mode::Idle;
            Ok(VideoFrame::default())
        }
    }

    /// Forgets all objects (after a flushing seek or for a new stream).
    /// Ids are not reused: the everything-mode counter keeps counting.
    pub fn reset(&mut self) {
        self.mode = Mode::Idle;
        self.inference = 0;
    }
}

/// `options` for prompts already in frame pixels.
fn pixel_options(options: &SegmentOptions) -> SegmentOptions {
    SegmentOptions {
        coord_mode: crate::segment::prompt::CoordMode::Pixels,
        ..*options
    }
}

/// `object` as the result of a lost track: no mask, the attempt's scores.
fn lost_object(object: SegmentedObject) -> SegmentedObject {
    SegmentedObject {
        mask: Default::default(),
        area: 0,
        ..object
    }
}

/// The identity as `SegmentedObject::id`.
fn object_id(id: u64) -> usize {
    usize::try_from(id).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_video_segmenter_moves_to_a_worker_thread() {
        fn send<T: Send>() {}
        send::<VideoSegmenter>();
        send::<VideoFrame>();
    }

    #[test]
    fn defaults() {
        let o = VideoOptions::default();
        assert!(o.tracking && o.everything.is_some());
        assert_eq!(o.everything_interval, DEFAULT_EVERYTHING_INTERVAL);
        let s = TrackerSettings::default();
        assert_eq!(s.reprompt.mask_input, MaskInput::Shifted);
        assert!(s.everything_reprompt.move_points && !s.reprompt.move_points);
        assert_eq!(s.max_tracks, MAX_TRACKS);
    }

    #[test]
    fn lost_objects_have_no_mask() {
        let mask = crate::segment::masks::mask::BitMask::from_fn(1, 2, 3, 4, |_, _| true);
        let object = SegmentedObject {
            id: 7,
            prompt_index: 0,
            area: mask.count_ones(),
            mask,
            iou: 0.4,
            stability: 0.3,
            mask_index: 1,
            low_res: std::sync::Arc::new(
                crate::segment::masks::mask::LowResLogits::new(1, 1, vec![0.0]).unwrap(),
            ),
            origin: crate::segment::segmenter::ObjectOrigin::Prompt { index: 0 },
        };
        let lost = lost_object(object);
        assert!(lost.mask.is_empty() && lost.area == 0);
        assert_eq!((lost.id, lost.iou), (7, 0.4));
        assert_eq!(object_id(u64::MAX), usize::MAX);
    }
}
