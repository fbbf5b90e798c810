// SPDX-License-Identifier: Apache-2.0
//! Prompted objects over time: one track per user prompt, id = its index.
//!
//! Per inference, each track is decoded from one prompt, all in one
//! [`Segmenter::segment`] call:
//! - its original prompt when it is new, lost, after a frame size change,
//!   or with tracking off (state [`TrackState::Acquired`]);
//! - otherwise the re-prompt built from its last result
//!   ([`reprompt`](super::reprompt), state [`TrackState::Tracked`]).
//!
//! A re-prompted result must be a plausible continuation of the last
//! accepted one ([`assess`]), and must not have jumped onto another
//! object's mask ([`converged`]); a re-acquisition from the original prompt
//! must also not duplicate an object followed on this frame. Otherwise the
//! track is lost: reported once, output with an empty mask, and retried
//! from its original prompt on the next inferences.

use crate::segment::error::Error;
use crate::segment::onnx::engine::ImageEmbedding;
use crate::segment::prompt::{CoordMode, Prompt};
use crate::segment::segmenter::{SegmentedObject, Segmenter};
use crate::segment::video::follow::{Plan, Rules, decode};
use crate::segment::video::matching::intersection;
use crate::segment::video::merge::{Followed, converged};
use crate::segment::video::reprompt::reprompt;
use crate::segment::video::track::{Event, LossReason, Track, TrackState, assess_reacquisition};

/// A re-acquired mask may share at most this fraction of its pixels with
/// objects followed on the same frame.
pub const REACQUIRE_MAX_OVERLAP: f64 = 0.2;
use crate::segment::video::{
    TrackedObject, TrackerSettings, VideoFrame, VideoOptions, lost_object, object_id, pixel_options,
};

/// The user's prompts and their tracks.
#[derive(Debug)]
pub(crate) struct PromptedTracker {
    /// As the user gave them (any coordinate mode).
    prompts: Vec<Prompt>,
    coord_mode: CoordMode,
    /// Frame size the tracks' original prompts were resolved for.
    size: Option<(u32, u32)>,
    tracks: Vec<Track>,
}

impl PromptedTracker {
    pub fn new(prompts: &[Prompt], coord_mode: CoordMode) -> Self {
        PromptedTracker {
            prompts: prompts.to_vec(),
            coord_mode,
            size: None,
            tracks: Vec::new(),
        }
    }

    /// Whether these are the prompts being followed.
    pub fn follows(&self, prompts: &[Prompt], coord_mode: CoordMode) -> bool {
        self.coord_mode == coord_mode && self.prompts == prompts
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
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
            let mut tracks = Vec::with_capacity(self.prompts.len());
            for (index, prompt) in self.prompts.iter().enumerate() {
                let (resolved, warnings) = prompt.resolve(self.coord_mode, size.0, size.1, index);
                frame.warnings.extend(warnings);
                let id = u64::try_from(index).unwrap_or(u64::MAX);
                tracks.push(Track::new(id, resolved));
            }
            self.tracks = tracks;
            self.size = Some(size);
        }

        // One prompt per track, and the state an accepted result gets.
        let plans: Vec<Plan> = self
            .tracks
            .iter()
            .map(|t| {
                if options.tracking && t.followable(inference) {
                    Plan {
                        prompt: reprompt(t, &geometry, &settings.reprompt),
                        via: TrackState::Tracked,
                    }
                } else {
                    Plan {
                        prompt: t.original.clone(),
                        via: TrackState::Acquired,
                    }
                }
            })
            .collect();
        // Tracking off: the prompt does not follow the object, so only the
        // absolute floors apply.
        let tracks: Vec<&Track> = self.tracks.iter().collect();
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
            reject_merges(&self.tracks, &objects, &vias, &mut verdicts, settings);
        }

        for (((track, object), via), verdict) in
            self.tracks.iter_mut().zip(objects).zip(vias).zip(verdicts)
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
                prompt_index: usize::try_from(track.id).ok(),
            });
        }
        Ok(frame)
    }
}

/// Rejects results that converged onto another object's (re-prompts) or
/// that duplicate an object followed on this frame (re-acquisitions).
fn reject_merges(
    tracks: &[Track],
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
