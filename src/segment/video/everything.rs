// SPDX-License-Identifier: Apache-2.0
//! Everything mode over time: the point grid now and then, the known
//! objects followed in between, identities kept by mask overlap.
//!
//! Per inference:
//! 1. with tracking, every known object seen on the last inference is
//!    re-prompted from its last result (one prompt each, one
//!    [`Segmenter::segment`] call; the box, the grid point that found it
//!    moved with it, and its moved logits); results that are implausible
//!    ([`assess`]) or that became another object's ([`converged`]) make
//!    their object lost: reported in [`VideoFrame::lost`] and no longer
//!    output;
//! 2. when the [`GridSchedule`] says so, the grid runs
//!    ([`Segmenter::segment_everything`]) and its objects are matched to the
//!    known ones by mask IoU ([`greedy_match_moved`]) against their masks of
//!    this frame, or their last masks moved by their velocity (lost
//!    objects, no tracking); what is left is matched by shape and distance
//!    ([`match_by_shape`]) for objects that moved more than half their
//!    size. A matched object keeps its id and takes the grid's mask (a lost
//!    one comes back with its id); an unmatched grid object is new and gets
//!    a fresh id, unless it repeats a known object's mask (the grid's box
//!    NMS lets such pairs through). A followed object the grid missed stays
//!    until [`TrackerSettings::max_missed_grids`] grids in a row missed it;
//!    a lost one is dropped at the first grid that does not find it
//!    (without tracking: the second).
//! 3. the objects seen on this frame are output by id.
//!
//! What it may miss between grid runs: objects that enter the frame or
//! appear from behind another, until the next grid; what it costs: one
//! decoder prompt per known object per inference (two for a failed one),
//! and the grid's hundreds of prompts once per interval.

use crate::segment::error::Error;
use crate::segment::everything::EverythingOptions;
use crate::segment::masks::mask::BitMask;
use crate::segment::onnx::engine::ImageEmbedding;
use crate::segment::prompt::Prompt;
use crate::segment::segmenter::{ObjectOrigin, SegmentOptions, SegmentedObject, Segmenter};
use crate::segment::video::follow::{Plan, Rules, decode};
use crate::segment::video::ids::IdCounter;
use crate::segment::video::matching::{Match, greedy_match_moved, iou_at_least, match_by_shape};
use crate::segment::video::merge::{Followed, converged};
use crate::segment::video::reprompt::reprompt;
use crate::segment::video::schedule::GridSchedule;
use crate::segment::video::track::{Event, LossReason, Track, TrackState};
use crate::segment::video::{
    TrackedObject, TrackerSettings, VideoFrame, VideoOptions, object_id, pixel_options,
};

/// The known objects of everything mode.
#[derive(Debug, Default)]
pub(crate) struct EverythingTracker {
    tracks: Vec<Track>,
    schedule: GridSchedule,
    size: Option<(u32, u32)>,
}

impl EverythingTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        segmenter: &mut Segmenter,
        embedding: &ImageEmbedding,
        options: &VideoOptions,
        everything: &EverythingOptions,
        settings: &TrackerSettings,
        ids: &mut IdCounter,
        inference: u64,
    ) -> Result<VideoFrame, Error> {
        let geometry = *embedding.geometry();
        let size = (geometry.frame_width, geometry.frame_height);
        let mut frame = VideoFrame::default();
        if self.size != Some(size) {
            if let Some((w, h)) = self.size
                && !self.tracks.is_empty()
            {
                frame.warnings.push(format!(
                    "frame size changed from {w}x{h} to {}x{}: everything-mode objects are \
                     found again by the grid",
                    size.0, size.1
                ));
            }
            frame.lost.extend(
                self.tracks
                    .drain(..)
                    .filter(|t| t.state != TrackState::Lost)
                    .map(|t| t.id),
            );
            self.schedule = GridSchedule::new();
            self.size = Some(size);
        }

        // 1. Follow the known objects that were seen on the last inference.
        let follow: Vec<usize> = if options.tracking {
            (0..self.tracks.len())
                .filter(|&i| self.tracks.get(i).is_some_and(|t| t.followable(inference)))
                .collect()
        } else {
            Vec::new()
        };
        let mut lost_now = 0;
        if !follow.is_empty() {
            let tracks: Vec<&Track> = follow.iter().filter_map(|&i| self.tracks.get(i)).collect();
            let plans: Vec<Plan> = tracks
                .iter()
                .map(|t| Plan {
                    prompt: reprompt(t, &geometry, &settings.everything_reprompt),
                    via: TrackState::Tracked,
                })
                .collect();
            let segment = SegmentOptions {
                threshold: everything.mask_threshold.or(options.segment.threshold),
                ..pixel_options(&options.segment)
            };
            let rules = Rules::new(settings, &settings.everything_reprompt, true);
            let decoded = decode(segmenter, embedding, &tracks, &plans, &segment, rules)?;
            frame.warnings.extend(decoded.warnings);
            frame.prompts_decoded += decoded.prompts;
            let mut verdicts = decoded.verdicts;
            let objects = decoded.objects;
            // Two objects with one mask are never wanted here.
            let followed: Vec<Followed<'_>> = tracks
                .iter()
                .zip(&objects)
                .map(|(t, o)| Followed {
                    new: &o.mask,
                    previous: t.last.as_ref().map(|l| &l.mask),
                })
                .collect();
            for k in converged(&followed, settings.merge_iou, false) {
                if let Some(v) = verdicts.get_mut(k) {
                    *v = Err(LossReason::Duplicate);
                }
            }
            for ((&i, object), verdict) in follow.iter().zip(objects).zip(verdicts) {
                let Some(track) = self.tracks.get_mut(i) else {
                    continue;
                };
                if let Event::Lost(_) =
                    track.observe(object, verdict, TrackState::Tracked, inference)
                {
                    lost_now += 1;
                    frame.lost.push(track.id);
                }
            }
        }

        // 2. The grid, matched to the known objects.
        let grid = self.schedule.due(
            options.everything_interval,
            options.tracking,
            follow.len(),
            lost_now,
        );
        if grid {
            let result = segmenter.segment_everything(embedding, everything)?;
            self.schedule.record(true);
            frame.grid = true;
            frame.warnings.extend(result.warnings);
            frame.prompts_decoded += segmenter.timings().prompts;
            self.match_grid(
                result.objects,
                options.tracking,
                settings,
                ids,
                inference,
                &mut frame,
            );
        } else {
            self.schedule.record(false);
        }

        // 3. Output what was seen on this frame.
        self.tracks.sort_by_key(|t| t.id);
        for track in &self.tracks {
            if track.state == TrackState::Lost || track.accepted_at != Some(inference) {
                continue;
            }
            if let Some(last) = &track.last {
                let mut object = last.clone();
                object.id = object_id(track.id);
                frame.objects.push(TrackedObject {
                    id: track.id,
                    object,
                    state: track.state,
                    prompt_index: None,
                });
            }
        }
        // Lost while followed but found again by this frame's grid: not lost.
        let shown: Vec<u64> = frame.objects.iter().map(|o| o.id).collect();
        frame.lost.retain(|id| !shown.contains(id));
        Ok(frame)
    }

    /// Matches the grid's objects to the known ones (their masks of this
    /// inference, or their last ones moved by their velocity), updates or
    /// drops the known ones and adds the new.
    fn match_grid(
        &mut self,
        found: Vec<SegmentedObject>,
        tracking: bool,
        settings: &TrackerSettings,
        ids: &mut IdCounter,
        inference: u64,
        frame: &mut VideoFrame,
    ) {
        // Every known object has a mask; an empty one would match nothing.
        let empty = BitMask::default();
        let known: Vec<(&BitMask, (i64, i64))> = self
            .tracks
            .iter()
            .map(|t| {
                let mask = t.last.as_ref().map_or(&empty, |l| &l.mask);
                (mask, predicted_offset(t, inference))
            })
            .collect();
        let masks: Vec<&BitMask> = found.iter().map(|o| &o.mask).collect();
        let mut matches = greedy_match_moved(&known, &masks, settings.match_iou);
        // What moved too far to overlap: the same shape close by.
        let (rest_known, rest_found) = unmatched(&known, &masks, &matches);
        let rest_k: Vec<(&BitMask, (i64, i64))> = rest_known
            .iter()
            .filter_map(|&i| known.get(i).copied())
            .collect();
        let rest_f: Vec<&BitMask> = rest_found
            .iter()
            .filter_map(|&j| masks.get(j).copied())
            .collect();
        for m in match_by_shape(&rest_k, &rest_f, settings.shape_match_iou) {
            if let (Some(&previous), Some(&current)) =
                (rest_known.get(m.previous), rest_found.get(m.current))
            {
                matches.push(Match {
                    previous,
                    current,
                    iou: m.iou,
                });
            }
        }
        let mut matched_track = vec![false; self.tracks.len()];
        let mut objects: Vec<Option<SegmentedObject>> = found.into_iter().map(Some).collect();
        for m in &matches {
            if let (Some(track), Some(object), Some(flag)) = (
                self.tracks.get_mut(m.previous),
                objects.get_mut(m.current).and_then(Option::take),
                matched_track.get_mut(m.previous),
            ) {
                *flag = true;
                track.observe(object, Ok(()), TrackState::Everything, inference);
            }
        }
        // Known objects the grid did not find: a followed one may be missed
        // `max_missed_grids` grids in a row; one that is not followed (lost
        // on this frame, or without tracking) waits for the next grid only
        // without tracking.
        for (track, matched) in self.tracks.iter_mut().zip(&matched_track) {
            if *matched {
                continue;
            }
            track.missed_grids = track.missed_grids.saturating_add(1);
            let seen_now = track.state != TrackState::Lost && track.accepted_at == Some(inference);
            let too_many = track.missed_grids > settings.max_missed_grids;
            if seen_now && !too_many {
                continue;
            }
            if track.state != TrackState::Lost {
                frame.lost.push(track.id);
                track.state = TrackState::Lost;
            }
            if seen_now || tracking || too_many {
                track.missed_grids = u32::MAX;
            }
        }
        self.tracks.retain(|t| t.missed_grids != u32::MAX);

        // New objects, best predicted IoU first (the grid's order), unless
        // they repeat an object already there (the grid's box NMS lets
        // masks through whose boxes differ more than their pixels).
        let mut capped = 0;
        for object in objects.into_iter().flatten() {
            let repeats = self.tracks.iter().any(|t| {
                t.state != TrackState::Lost
                    && t.accepted_at == Some(inference)
                    && t.last.as_ref().is_some_and(|l| {
                        let areas = (l.mask.count_ones(), object.mask.count_ones());
                        iou_at_least(&l.mask, (&object.mask, (0, 0)), areas, settings.merge_iou)
                            .is_some()
                    })
            });
            if repeats {
                continue;
            }
            if self.tracks.len() >= settings.max_tracks {
                capped += 1;
                continue;
            }
            let point = match object.origin {
                ObjectOrigin::Everything { point, .. } => point,
                ObjectOrigin::Prompt { .. } => {
                    let (x, y, w, h) = object.bbox();
                    (x as f32 + w as f32 / 2.0, y as f32 + h as f32 / 2.0)
                }
            };
            let mut track = Track::new(ids.next_id(), Prompt::new().with_point(point.0, point.1));
            track.observe(object, Ok(()), TrackState::Everything, inference);
            self.tracks.push(track);
        }
        if capped > 0 {
            frame.warnings.push(format!(
                "everything mode: {capped} new objects past the limit of {} followed objects were \
                 dropped",
                settings.max_tracks
            ));
        }
    }
}

/// Indices of the known and found masks that `matches` left out.
fn unmatched(
    known: &[(&BitMask, (i64, i64))],
    found: &[&BitMask],
    matches: &[Match],
) -> (Vec<usize>, Vec<usize>) {
    let k = (0..known.len())
        .filter(|i| !matches.iter().any(|m| m.previous == *i))
        .collect();
    let f = (0..found.len())
        .filter(|j| !matches.iter().any(|m| m.current == *j))
        .collect();
    (k, f)
}

/// Where a known object's last mask is expected now: its velocity times
/// the inferences since it was seen (whole pixels).
fn predicted_offset(track: &Track, inference: u64) -> (i64, i64) {
    let Some(at) = track.accepted_at else {
        return (0, 0);
    };
    let gap = inference.saturating_sub(at).min(1_000) as f32;
    let (vx, vy) = track.velocity();
    let px = |v: f32| {
        let p = (v * gap).round();
        if p.is_finite() {
            p.clamp(-1e6, 1e6) as i64
        } else {
            0
        }
    };
    (px(vx), px(vy))
}
