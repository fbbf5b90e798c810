// SPDX-License-Identifier: Apache-2.0
//! Decoding the known objects on one frame: one prompt each in one
//! decoder batch, each result judged against the object's last one, and a
//! second attempt for the re-prompts that failed.

use crate::segment::error::Error;
use crate::segment::onnx::engine::ImageEmbedding;
use crate::segment::prompt::Prompt;
use crate::segment::segmenter::{SegmentOptions, SegmentedObject, Segmenter};
use crate::segment::video::TrackerSettings;
use crate::segment::video::reprompt::{RepromptOptions, recovery_prompt};
use crate::segment::video::track::{LossCriteria, LossReason, Track, TrackState, assess};

/// What to decode for one track, and the state an accepted result gets.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub prompt: Prompt,
    pub via: TrackState,
}

/// One result per track, with its verdict.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub objects: Vec<SegmentedObject>,
    pub verdicts: Vec<Result<(), LossReason>>,
    pub warnings: Vec<String>,
    /// Prompts decoded, second attempts included.
    pub prompts: usize,
}

/// How results are judged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    pub loss: &'a LossCriteria,
    /// Judge against the track's last result (otherwise only the absolute
    /// floors).
    pub with_reference: bool,
    /// Second attempts ([`RepromptOptions::recovery_margin`]).
    pub recovery_margin: Option<f32>,
}

impl<'a> Rules<'a> {
    pub fn new(
        settings: &'a TrackerSettings,
        reprompt: &RepromptOptions,
        with_reference: bool,
    ) -> Self {
        Rules {
            loss: &settings.loss,
            with_reference,
            recovery_margin: reprompt.recovery_margin,
        }
    }
}

/// Decodes `plans` (one per track, in frame pixels) and judges each result
/// by `rules`. A re-prompted ([`TrackState::Tracked`]) result that fails
/// gets a second attempt with [`recovery_prompt`] when the rules allow it;
/// the accepted one of the two is kept.
pub(crate) fn decode(
    segmenter: &mut Segmenter,
    embedding: &ImageEmbedding,
    tracks: &[&Track],
    plans: &[Plan],
    options: &SegmentOptions,
    rules: Rules<'_>,
) -> Result<Decoded, Error> {
    let prompts: Vec<Prompt> = plans.iter().map(|p| p.prompt.clone()).collect();
    let result = segmenter.segment(embedding, &prompts, options)?;
    let judge = |track: &Track, plan: &Plan, object: &SegmentedObject| {
        // The user's prompt as given, on its first frame or with tracking
        // off, is SAM's answer: kept whatever its scores, as a single frame
        // would keep it; only an empty mask is no object.
        let as_given =
            plan.via == TrackState::Acquired && (track.last.is_none() || !rules.with_reference);
        if as_given {
            return if object.area == 0 {
                Err(LossReason::Vanished)
            } else {
                Ok(())
            };
        }
        let reference = if rules.with_reference {
            track.last.as_ref()
        } else {
            None
        };
        assess(object, reference, rules.loss)
    };
    let verdicts: Vec<Result<(), LossReason>> = tracks
        .iter()
        .zip(plans)
        .zip(&result.objects)
        .map(|((t, p), o)| judge(t, p, o))
        .collect();
    let mut decoded = Decoded {
        objects: result.objects,
        verdicts,
        warnings: result.warnings,
        prompts: prompts.len(),
    };

    let Some(margin) = rules.recovery_margin else {
        return Ok(decoded);
    };
    let geometry = *embedding.geometry();
    let retry: Vec<(usize, Prompt)> = plans
        .iter()
        .enumerate()
        .filter(|(i, plan)| {
            plan.via == TrackState::Tracked && decoded.verdicts.get(*i).is_some_and(Result::is_err)
        })
        .filter_map(|(i, _)| Some((i, recovery_prompt(tracks.get(i)?, &geometry, margin)?)))
        .collect();
    if retry.is_empty() {
        return Ok(decoded);
    }
    let prompts: Vec<Prompt> = retry.iter().map(|(_, p)| p.clone()).collect();
    let second = segmenter.segment(embedding, &prompts, options)?;
    decoded.prompts += prompts.len();
    decoded.warnings.extend(second.warnings);
    for ((i, _), object) in retry.iter().zip(second.objects) {
        let (Some(track), Some(plan)) = (tracks.get(*i), plans.get(*i)) else {
            continue;
        };
        let verdict = judge(track, plan, &object);
        if verdict.is_ok()
            && let (Some(slot), Some(v)) =
                (decoded.objects.get_mut(*i), decoded.verdicts.get_mut(*i))
        {
            *slot = object;
            *v = verdict;
        }
    }
    Ok(decoded)
}
