// SPDX-License-Identifier: Apache-2.0
//! Prompted objects over time: one track per prompted object, followed by
//! its id.
//!
//! Per inference, each track is decoded from one prompt, all in one
//! [`Segmenter::segment`] call:
//! - its original prompt when it is new, lost, after a frame size change,
//!   with tracking off, or from a detector's box (state
//!   [`TrackState::Acquired`]);
//! - its original prompt moved with the object plus the points its prompt
//!   gained since the last inference (a click that corrects it; also
//!   [`TrackState::Acquired`], keeping the track);
//! - otherwise the re-prompt built from its last result
//!   ([`reprompt`](super::reprompt), state [`TrackState::Tracked`]).
//!
//! A re-prompted result must be a plausible continuation of the last
//! accepted one ([`assess`]), and must not have jumped onto another
//! object's mask ([`converged`]); a re-acquisition from the original prompt
//! must also not duplicate an object followed on this frame. Otherwise the
//! track is lost: reported once, output with an empty mask, and retried
//! from its original prompt on the next inferences.
//!
//! When the prompts change ([`PromptedTracker::update`]), an object whose
//! id and prompt stay keeps its track, one whose prompt changed starts a
//! new track with its id, and objects whose id is gone are dropped.

use crate::segment::error::Error;
use crate::segment::onnx::engine::ImageEmbedding;
use crate::segment::prompt::{PointLabel, Prompt, PromptPoint};
use crate::segment::segmenter::{SegmentedObject, Segmenter};
use crate::segment::video::follow::{Plan, Rules, decode};
use crate::segment::video::matching::intersection;
use crate::segment::video::merge::{Followed, converged};
use crate::segment::video::prompt_set::{ObjectPrompt, PromptOrigin};
use crate::segment::video::reprompt::{MaskInput, RepromptOptions, reprompt};
use crate::segment::video::track::{Event, LossReason, Track, TrackState, assess_reacquisition};

/// A re-acquired mask may share at most this fraction of its pixels with
/// objects followed on the same frame.
pub const REACQUIRE_MAX_OVERLAP: f64 = 0.2;

/// A corrected object's prompt: its original points and box moved with
/// it, without its old logits (they hold what the correction removes). (The
/// last mask's grown box, tried too, loses the bundled model's objects on
/// the next inference.)
fn correction_reprompt() -> RepromptOptions {
    RepromptOptions {
        move_points: true,
        box_margin: None,
        mask_input: MaskInput::Off,
        ..RepromptOptions::default()
    }
}
use crate::segment::video::{
    TrackedObject, TrackerSettings, VideoFrame, VideoOptions, lost_object, object_id, pixel_options,
};

/// One prompted object and its track.
#[derive(Debug)]
struct Slot {
    /// As given (any coordinate mode).
    object: ObjectPrompt,
    /// `None` until resolved for the frame size.
    track: Option<Track>,
    /// Points the prompt gained while the track was followed, in the
    /// prompt's units; added to its next re-prompt.
    correction: Vec<PromptPoint>,
}

/// The prompted objects and their tracks.
#[derive(Debug)]
pub(crate) struct PromptedTracker {
    slots: Vec<Slot>,
    /// Frame size the tracks' original prompts were resolved for.
    size: Option<(u32, u32)>,
}

/// Whether `object`'s prompt is new evidence on every frame (a detector's
/// box), so it is acquired from it each time rather than followed.
fn fresh(object: &ObjectPrompt) -> bool {
    matches!(object.origin, PromptOrigin::Region { .. })
}

/// `prompt` with `points` appended.
fn with_points(prompt: Prompt, points: &[PromptPoint]) -> Prompt {
    points
        .iter()
        .fold(prompt, |prompt, point| match point.label {
            PointLabel::Positive => prompt.with_point(point.x, point.y),
            PointLabel::Negative => prompt.with_negative(point.x, point.y),
        })
}

/// Whether `new` is `old` with points appended (same box, same units).
fn gained_points<'a>(old: &ObjectPrompt, new: &'a ObjectPrompt) -> Option<&'a [PromptPoint]> {
    let (o, n) = (old.prompt.points(), new.prompt.points());
    let extends = old.coord_mode == new.coord_mode
        && old.prompt.bbox() == new.prompt.bbox()
        && old.prompt.mask_input() == new.prompt.mask_input()
        && n.len() > o.len()
        && n.get(..o.len()) == Some(o);
    extends.then(|| n.get(o.len()..)).flatten()
}

impl PromptedTracker {
    pub fn new(prompts: &[ObjectPrompt]) -> Self {
        let mut tracker = PromptedTracker {
            slots: Vec::new(),
            size: None,
        };
        tracker.update(prompts);
        tracker
    }

    /// Takes the current prompts, keeping the tracks of unchanged objects.
    pub fn update(&mut self, prompts: &[ObjectPrompt]) {
        let unchanged = self.slots.len() == prompts.len()
            && self
                .slots
                .iter()
                .zip(prompts)
                .all(|(s, p)| s.object.id == p.id && s.object.same_prompt(p) && !fresh(p));
        if unchanged {
            for (slot, p) in self.slots.iter_mut().zip(prompts) {
                slot.object.origin = p.origin.clone();
            }
            return;
        }
        let mut old = std::mem::take(&mut self.slots);
        self.slots = prompts
            .iter()
            .map(|p| {
                let previous = old
                    .iter()
                    .position(|s| s.object.id == p.id)
                    .map(|i| old.swap_remove(i));
                match previous {
                    Some(s) if s.object.same_prompt(p) && !fresh(p) => Slot {
                        object: p.clone(),
                        ..s
                    },
                    Some(s) if s.track.is_some() && gained_points(&s.object, p).is_some() => {
                        let mut correction = s.correction;
                        correction.extend_from_slice(gained_points(&s.object, p).unwrap_or(&[]));
                        Slot {
                            object: p.clone(),
                            track: s.track,
                            correction,
                        }
                    }
                    _ => Slot {
                        object: p.clone(),
                        track: None,
                        correction: Vec::new(),
                    },
                }
            })
            .collect();
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn process(
        &mut self,
        segmenter: &mut Segmenter,
        embedding: &ImageEmbedding,
        options: &VideoOptions,
        settings: &TrackerSettings,
        inference: u64,
    ) -> Result<VideoFrame, Error> {
        let geometry = *embedding.geometry();
        let size = (geometry.frame_width, geometry.frame_height);
        let mut frame = VideoFrame::default();
        if self.size != Some(size) {
            if let Some((w, h)) = self.size {
                frame.warnings.push(format!(
                    "frame size changed from {w}x{h} to {}x{}: prompted objects are acquired \
                     again from their prompts",
                    size.0, size.1
                ));
            }
            for slot in &mut self.slots {
                slot.track = None;
                slot.correction.clear();
            }
            self.size = Some(size);
        }
        // Objects new or changed since the last inference: resolved now. A
        // corrected one keeps its track and is acquired again from its
        // prompt moved with it, plus the new points.
        let mut corrected: Vec<Option<Prompt>> = Vec::with_capacity(self.slots.len());
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let object = &slot.object;
            if slot.track.is_some() && slot.correction.is_empty() {
                corrected.push(None);
                continue;
            }
            let (resolved, warnings) =
                object
                    .prompt
                    .resolve(object.coord_mode, size.0, size.1, index);
            frame.warnings.extend(warnings);
            match &mut slot.track {
                Some(track) if options.tracking && track.followable(inference) => {
                    let added = with_points(Prompt::new(), &slot.correction);
                    let (added, _) = added.resolve(object.coord_mode, size.0, size.1, index);
                    let moved = reprompt(track, &geometry, &correction_reprompt());
                    let prompt = with_points(moved, added.points());
                    track.original = prompt.clone();
                    corrected.push(Some(prompt));
                    slot.correction.clear();
                }
                _ => {
                    slot.track = Some(Track::new(object.id, resolved));
                    slot.correction.clear();
                    corrected.push(None);
                }
            }
        }
        let tracks: Vec<&Track> = self.slots.iter().filter_map(|s| s.track.as_ref()).collect();

        // One prompt per track, and the state an accepted result gets.
        let plans: Vec<Plan> = tracks
            .iter()
            .zip(corrected)
            .map(|(t, corrected)| match corrected {
                Some(prompt) => Plan {
                    prompt,
                    via: TrackState::Acquired,
                },
                None if options.tracking && t.followable(inference) => Plan {
                    prompt: reprompt(t, &geometry, &settings.reprompt),
                    via: TrackState::Tracked,
                },
                None => Plan {
                    prompt: t.original.clone(),
                    via: TrackState::Acquired,
                },
            })
            .collect();
        // Tracking off: the prompt does not follow the object, so only the
        // absolute floors apply.
        let decoded = decode(
            segmenter,
            embedding,
            &tracks,
            &plans,
            &pixel_options(&options.segment),
            Rules::new(settings, &settings.reprompt, options.tracking),
        )?;
        frame.warnings.extend(decoded.warnings);
        frame.prompts_decoded = decoded.prompts;
        let vias: Vec<TrackState> = plans.iter().map(|p| p.via).collect();
        let mut verdicts = decoded.verdicts;
        let objects = decoded.objects;
        if options.tracking {
            reject_merges(&tracks, &objects, &vias, &mut verdicts, settings);
        }

        let tracks = self.slots.iter_mut().filter_map(|s| s.track.as_mut());
        for (index, (((track, object), via), verdict)) in
            tracks.zip(objects).zip(vias).zip(verdicts).enumerate()
        {
            let mut object = object;
            object.id = object_id(track.id);
            let event = track.observe(object.clone(), verdict, via, inference);
            let object = match event {
                Event::Accepted => object,
                Event::Lost(_) => {
                    frame.lost.push(track.id);
                    lost_object(object)
                }
                Event::StillLost => lost_object(object),
            };
            frame.objects.push(TrackedObject {
                id: track.id,
                object,
                state: track.state,
                prompt_index: Some(index),
            });
        }
        Ok(frame)
    }
}

/// Rejects results that converged onto another object's (re-prompts) or
/// that duplicate an object followed on this frame (re-acquisitions).
fn reject_merges(
    tracks: &[&Track],
    objects: &[SegmentedObject],
    vias: &[TrackState],
    verdicts: &mut [Result<(), LossReason>],
    settings: &TrackerSettings,
) {
    // Convergence among the accepted results that have a history.
    let accepted: Vec<usize> = (0..objects.len())
        .filter(|&i| verdicts.get(i).is_some_and(Result::is_ok))
        .collect();
    let followed: Vec<Followed<'_>> = accepted
        .iter()
        .filter_map(|&i| {
            let (t, o) = (tracks.get(i)?, objects.get(i)?);
            Some(Followed {
                new: &o.mask,
                previous: t.last.as_ref().map(|l| &l.mask),
            })
        })
        .collect();
    for k in converged(&followed, settings.merge_iou, true) {
        if let Some(v) = accepted.get(k).and_then(|&i| verdicts.get_mut(i)) {
            *v = Err(LossReason::Duplicate);
        }
    }
    // A re-acquisition of a lost object must find something of its size
    // and shape that no followed object holds any part of.
    for i in 0..objects.len() {
        let reacquiring = vias.get(i) == Some(&TrackState::Acquired)
            && tracks.get(i).is_some_and(|t| t.state == TrackState::Lost);
        if !reacquiring || !verdicts.get(i).is_some_and(Result::is_ok) {
            continue;
        }
        let (Some(mine), Some(track)) = (objects.get(i), tracks.get(i)) else {
            continue;
        };
        let alike = match &track.last {
            Some(last) => assess_reacquisition(mine, last, &settings.loss),
            None => Ok(()),
        };
        let taken = (0..objects.len()).any(|j| {
            j != i
                && vias.get(j) == Some(&TrackState::Tracked)
                && verdicts.get(j).is_some_and(Result::is_ok)
                && objects.get(j).is_some_and(|o| {
                    intersection(&o.mask, &mine.mask) as f64
                        > REACQUIRE_MAX_OVERLAP * mine.area.max(1) as f64
                })
        });
        if let Some(v) = verdicts.get_mut(i) {
            if let Err(reason) = alike {
                *v = Err(reason);
            } else if taken {
                *v = Err(LossReason::Duplicate);
            }
        }
    }
}
