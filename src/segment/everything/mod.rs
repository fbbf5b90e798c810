// SPDX-License-Identifier: Apache-2.0
//! "Segment everything": prompt the decoder with a grid of points and keep
//! the good, distinct masks, as SAM's automatic mask generator, or with
//! TinySAM's hierarchical strategy that skips the points already explained.
//!
//! - [`EverythingStrategy::Dense`]: SAM's `points_per_side` x
//!   `points_per_side` grid, one positive point per prompt.
//! - [`EverythingStrategy::Hierarchical`]: TinySAM (section 3.3). First the
//!   sparse grid (`points_per_side / 4` per side); its masks that pass the
//!   filters mark every low-res cell whose logit exceeds
//!   `high_score_thresh` as covered; then only the dense-grid points on
//!   uncovered cells are decoded. Both rounds are merged before one NMS.
//!
//! Every prompt contributes all its multimask outputs (1..3) as candidates,
//! as SAM's generator (`multimask_output=True`) and TinySAM's, which reuses
//! it; a decoder with a single output contributes that one.
//!
//! Candidates are filtered on the decoder's **low-res** logits: predicted
//! IoU `> pred_iou_thresh` and stability (counted over the low-res cells
//! that show the frame, not the padding) `>= stability_score_thresh`. Only
//! candidates that pass are upscaled (exactly, within their box) to frame
//! masks, whose boxes go through box NMS by predicted IoU. An object's
//! `stability` is then the frame-resolution score (offset 1), as in
//! prompted mode. SAM scores
//! stability on the full-resolution masks instead; the low-res count is a
//! close, much cheaper estimate.

mod nms;
mod regions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::segment::error::Error;
use crate::segment::everything::nms::{Corners, box_nms};
use crate::segment::everything::regions::remove_small_regions;
use crate::segment::image::preprocess::Geometry;
use crate::segment::limits::MAX_EVERYTHING_CANDIDATES;
use crate::segment::masks::mask::{BitMask, LowResLogits};
use crate::segment::masks::postprocess::{MaskUpscaler, low_res_stability, low_res_valid_size};
use crate::segment::onnx::decode::decode_prompts;
use crate::segment::onnx::engine::{Engine, ImageEmbedding};
use crate::segment::prompt::Prompt;
use crate::segment::segmenter::{ObjectOrigin, SegmentedObject};

/// SAM's grid: 32 x 32 points.
pub const DEFAULT_POINTS_PER_SIDE: usize = 32;
/// SAM's predicted-IoU filter.
pub const DEFAULT_PRED_IOU_THRESH: f32 = 0.88;
/// SAM's stability filter.
pub const DEFAULT_STABILITY_SCORE_THRESH: f32 = 0.95;
/// SAM's stability offset.
pub const DEFAULT_STABILITY_SCORE_OFFSET: f32 = 1.0;
/// TinySAM's logit above which a pixel counts as explained.
pub const DEFAULT_HIGH_SCORE_THRESH: f32 = 8.5;
/// SAM's box NMS threshold.
pub const DEFAULT_BOX_NMS_THRESH: f32 = 0.7;
/// SAM's prompts per decoder call.
pub const DEFAULT_PROMPTS_PER_BATCH: usize = 64;
/// TinySAM's sparse grid has a quarter of the dense grid's points per side.
pub const SPARSE_GRID_DIVISOR: usize = 4;

/// How the prompt grid is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EverythingStrategy {
    /// TinySAM: a sparse grid first, then the dense points it left unexplained.
    #[default]
    Hierarchical,
    /// SAM: every point of the dense grid.
    Dense,
}

/// Which grid round an everything-mode object comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GridRound {
    /// The hierarchical strategy's sparse grid.
    Sparse,
    /// The dense grid (all of it for [`EverythingStrategy::Dense`]).
    Dense,
}

/// Choices for [`Segmenter::segment_everything`](super::Segmenter::segment_everything);
/// the defaults are SAM's and TinySAM's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EverythingOptions {
    pub strategy: EverythingStrategy,
    /// Dense grid points per side (at least 1).
    pub points_per_side: usize,
    /// Keep masks whose predicted IoU is above this (0 disables).
    pub pred_iou_thresh: f32,
    /// Keep masks whose stability is at least this (0 disables).
    pub stability_score_thresh: f32,
    /// Logit offset of the stability score (positive).
    pub stability_score_offset: f32,
    /// Hierarchical: logit above which a cell counts as explained.
    pub high_score_thresh: f32,
    /// Drop a mask whose box overlaps a better one's by more than this IoU.
    pub box_nms_thresh: f32,
    /// Fill holes and drop islands smaller than this many frame pixels
    /// (0 disables), then run NMS again, as SAM.
    pub min_mask_region_area: u64,
    /// Most prompts per decoder call (at least 1; batch-1 decoders get one).
    pub prompts_per_batch: usize,
    /// Mask threshold on logits; `None` uses the model's (SAM: 0.0).
    pub mask_threshold: Option<f32>,
}

impl Default for EverythingOptions {
    fn default() -> Self {
        EverythingOptions {
            strategy: EverythingStrategy::default(),
            points_per_side: DEFAULT_POINTS_PER_SIDE,
            pred_iou_thresh: DEFAULT_PRED_IOU_THRESH,
            stability_score_thresh: DEFAULT_STABILITY_SCORE_THRESH,
            stability_score_offset: DEFAULT_STABILITY_SCORE_OFFSET,
            high_score_thresh: DEFAULT_HIGH_SCORE_THRESH,
            box_nms_thresh: DEFAULT_BOX_NMS_THRESH,
            min_mask_region_area: 0,
            prompts_per_batch: DEFAULT_PROMPTS_PER_BATCH,
            mask_threshold: None,
        }
    }
}

impl EverythingOptions {
    /// Checks the values; the error names the offending option.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Options(what));
        if self.points_per_side == 0 {
            return bad("points_per_side must be at least 1".to_owned());
        }
        if self.prompts_per_batch == 0 {
            return bad("prompts_per_batch must be at least 1".to_owned());
        }
        for (name, value) in [
            ("pred_iou_thresh", self.pred_iou_thresh),
            ("stability_score_thresh", self.stability_score_thresh),
            ("high_score_thresh", self.high_score_thresh),
            ("box_nms_thresh", self.box_nms_thresh),
            ("stability_score_offset", self.stability_score_offset),
        ] {
            if !value.is_finite() {
                return bad(format!("{name} {value} is not finite"));
            }
        }
        if self.stability_score_offset <= 0.0 {
            return bad(format!(
                "stability_score_offset {} must be positive",
                self.stability_score_offset
            ));
        }
        if !(0.0..=1.0).contains(&self.box_nms_thresh) {
            return bad(format!(
                "box_nms_thresh {} must be within 0..=1",
                self.box_nms_thresh
            ));
        }
        if let Some(t) = self.mask_threshold
            && !t.is_finite()
        {
            return bad(format!("mask_threshold {t} is not finite"));
        }
        Ok(())
    }
}

/// SAM's point grid in frame pixels: `((i + 0.5) / n * width, (j + 0.5) /
/// n * height)`, row by row.
pub fn point_grid(n: usize, width: u32, height: u32) -> Vec<(f32, f32)> {
    let at = |i: usize, side: u32| ((i as f64 + 0.5) / n as f64 * f64::from(side)) as f32;
    (0..n)
        .flat_map(|j| (0..n).map(move |i| (at(i, width), at(j, height))))
        .collect()
}

/// What an everything-mode run produced and cost.
#[derive(Debug, Default)]
pub(crate) struct EverythingRun {
    pub objects: Vec<SegmentedObject>,
    /// Candidates past [`MAX_EVERYTHING_CANDIDATES`], dropped before NMS.
    pub dropped_candidates: usize,
    pub prompts: usize,
    pub calls: usize,
    pub decoder: Duration,
    pub postprocess: Duration,
    /// Prompts whose every output failed `pred_iou_thresh` inside the
    /// decoder, which then computed no masks for them.
    pub masks_skipped: usize,
}

/// The decoder's `mask_iou_floor` for everything mode: a prompt needs masks
/// only if an output it would use is predicted above `pred_iou_thresh`
/// (outputs 1.. when there are several, as in `Run::round`). `None` when the
/// filter is off or the decoder cannot skip masks.
fn mask_iou_floor(pred_iou_thresh: f32, floor_len: Option<usize>) -> Option<Vec<f32>> {
    let len = floor_len?;
    if pred_iou_thresh <= 0.0 || len == 0 {
        return None;
    }
    let mut floor = vec![pred_iou_thresh; len];
    if let (true, Some(first)) = (len > 1, floor.first_mut()) {
        *first = f32::INFINITY;
    }
    Some(floor)
}

/// A mask that passed the filters. Only its low-res logits are held: its
/// frame mask is upscaled for its box, dropped, and upscaled again if it
/// survives NMS, so memory follows the kept objects, not the candidates.
struct Candidate {
    point: (f32, f32),
    round: GridRound,
    prompt_index: usize,
    mask_index: usize,
    iou: f32,
    logits: LowResLogits,
    corners: Corners,
    /// Order of arrival, which NMS uses to break ties.
    sequence: usize,
}

/// The tight box of a mask, inclusive corners.
fn corners(mask: &BitMask) -> Corners {
    let (x, y) = (mask.x() as f32, mask.y() as f32);
    [
        x,
        y,
        x + mask.width().saturating_sub(1) as f32,
        y + mask.height().saturating_sub(1) as f32,
    ]
}

/// The candidates of a run, at most [`MAX_EVERYTHING_CANDIDATES`]: past that,
/// the ones with the lowest predicted IoU are dropped (NMS would rank them
/// last anyway).
#[derive(Default)]
struct Candidates {
    list: Vec<Candidate>,
    arrived: usize,
    dropped: usize,
}

impl Candidates {
    fn push(&mut self, mut candidate: Candidate) {
        candidate.sequence = self.arrived;
        self.arrived += 1;
        self.list.push(candidate);
        // Trimming at twice the cap keeps pushes amortised O(1).
        if self.list.len() >= 2 * MAX_EVERYTHING_CANDIDATES {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.list.len() <= MAX_EVERYTHING_CANDIDATES {
            return;
        }
        let by_iou = |a: &Candidate, b: &Candidate| {
            let score = |c: &Candidate| {
                if c.iou.is_nan() {
                    f32::NEG_INFINITY
                } else {
                    c.iou
                }
            };
            score(b)
                .total_cmp(&score(a))
                .then(a.sequence.cmp(&b.sequence))
        };
        self.list.sort_by(by_iou);
        self.dropped += self.list.len() - MAX_EVERYTHING_CANDIDATES;
        self.list.truncate(MAX_EVERYTHING_CANDIDATES);
        self.list.sort_by_key(|c| c.sequence);
    }

    fn into_list(mut self) -> (Vec<Candidate>, usize) {
        self.trim();
        (self.list, self.dropped)
    }
}

/// SAM's filters and TinySAM's coverage marking, on low-res logits.
struct Filter<'a> {
    options: &'a EverythingOptions,
    low_w: usize,
    /// Low-res rows and columns that show the frame (not the padding).
    valid: (usize, usize),
    threshold: f32,
}

impl Filter<'_> {
    /// Whether a mask passes (a threshold of 0 disables a filter).
    /// `pred_iou_thresh`; a NaN prediction fails, as in SAM.
    fn passes_iou(&self, iou: f32) -> bool {
        let o = self.options;
        o.pred_iou_thresh <= 0.0 || iou > o.pred_iou_thresh
    }

    /// `stability_score_thresh`, on the low-res logits.
    fn passes_stability(&self, logits: &[f32]) -> bool {
        let o = self.options;
        if o.stability_score_thresh > 0.0 {
            let stability = low_res_stability(
                logits,
                self.low_w,
                self.valid,
                self.threshold,
                o.stability_score_offset,
            );
            if stability < o.stability_score_thresh {
                return false;
            }
        }
        true
    }

    /// Marks the cells (showing the frame) above `high`.
    fn mark(&self, coverage: &mut [bool], logits: &[f32], high: f32) {
        let (rows, cols) = self.valid;
        for (r, (cov, row)) in coverage
            .chunks_exact_mut(self.low_w)
            .zip(logits.chunks_exact(self.low_w))
            .enumerate()
        {
            if r >= rows {
                break;
            }
            for (c, v) in cov.iter_mut().zip(row).take(cols) {
                *c |= *v > high;
            }
        }
    }
}

/// Shared state of one run.
struct Run<'a> {
    engine: &'a mut Engine,
    upscaler: &'a mut MaskUpscaler,
    embedding: &'a ImageEmbedding,
    options: &'a EverythingOptions,
    geometry: Geometry,
    low: (usize, usize),
    valid: (usize, usize),
    threshold: f32,
    mask_iou_floor: Option<Vec<f32>>,
    out: EverythingRun,
}

/// Runs everything mode (see the module documentation) on `embedding`.
pub(crate) fn segment_everything(
    engine: &mut Engine,
    upscaler: &mut MaskUpscaler,
    embedding: &ImageEmbedding,
    options: &EverythingOptions,
) -> Result<EverythingRun, Error> {
    options.validate()?;
    let info = engine.info();
    let low = info.low_res_size;
    let threshold = options.mask_threshold.unwrap_or(info.mask_threshold);
    let geometry = *embedding.geometry();
    let mask_iou_floor = mask_iou_floor(options.pred_iou_thresh, engine.mask_iou_floor_len());
    let mut run = Run {
        engine,
        upscaler,
        embedding,
        options,
        geometry,
        low,
        valid: low_res_valid_size(&geometry, low),
        threshold,
        mask_iou_floor,
        out: EverythingRun::default(),
    };
    let (w, h) = (geometry.frame_width, geometry.frame_height);
    let dense = point_grid(options.points_per_side, w, h);
    let mut candidates = Candidates::default();
    match options.strategy {
        EverythingStrategy::Dense => run.round(&dense, GridRound::Dense, None, &mut candidates)?,
        EverythingStrategy::Hierarchical => {
            let side = (options.points_per_side / SPARSE_GRID_DIVISOR).max(1);
            let sparse = point_grid(side, w, h);
            let mut covered = vec![false; low.0 * low.1];
            run.round(
                &sparse,
                GridRound::Sparse,
                Some(&mut covered),
                &mut candidates,
            )?;
            let rest: Vec<(f32, f32)> = dense
                .into_iter()
                .filter(|&p| !run.is_covered(&covered, p))
                .collect();
            run.round(&rest, GridRound::Dense, None, &mut candidates)?;
        }
    }
    let start = Instant::now();
    let (candidates, dropped) = candidates.into_list();
    run.out.dropped_candidates = dropped;
    let objects = run.select(candidates)?;
    run.out.postprocess += start.elapsed();
    run.out.objects = objects;
    Ok(run.out)
}

impl Run<'_> {
    /// Decodes one point per prompt at `points`, batch by batch (so only one
    /// batch of logits is held), and adds the masks that pass the filters to
    /// `candidates`. With `coverage`, marks their high-score cells.
    fn round(
        &mut self,
        points: &[(f32, f32)],
        round: GridRound,
        mut coverage: Option<&mut Vec<bool>>,
        candidates: &mut Candidates,
    ) -> Result<(), Error> {
        let o = *self.options;
        let (low_h, low_w) = self.low;
        let cells = low_h * low_w;
        for chunk in points.chunks(o.prompts_per_batch) {
            let prompts: Vec<Prompt> = chunk
                .iter()
                .map(|&(x, y)| Prompt::new().with_point(x, y))
                .collect();
            let first_index = self.out.prompts;
            let start = Instant::now();
            let mut postprocess = Duration::ZERO;
            let calls = {
                let Run {
                    engine,
                    upscaler,
                    embedding,
                    geometry,
                    threshold,
                    valid,
                    mask_iou_floor,
                    out: run_out,
                    ..
                } = self;
                let filter = Filter {
                    options: &o,
                    low_w,
                    valid: *valid,
                    threshold: *threshold,
                };
                decode_prompts(
                    engine,
                    embedding,
                    &prompts,
                    o.prompts_per_batch,
                    mask_iou_floor.as_deref(),
                    |slot, out| {
                        let started = Instant::now();
                        let point = chunk.get(slot).copied().unwrap_or_default();
                        if out.masks.is_empty() {
                            run_out.masks_skipped += 1;
                        }
                        let outputs = if out.ious.len() > 1 {
                            1..out.ious.len()
                        } else {
                            0..out.ious.len()
                        };
                        for mask_index in outputs {
                            let iou = out.ious.get(mask_index).copied().unwrap_or(f32::NAN);
                            if !filter.passes_iou(iou) {
                                continue;
                            }
                            // The decoder skips masks only of prompts with no output passing.
                            let Some(logits) = out.mask(mask_index, cells) else {
                                return Err(Error::Output {
                                    stage: "mask decoder",
                                    reason: format!("no logits for output {mask_index}"),
                                });
                            };
                            if !filter.passes_stability(logits) {
                                continue;
                            }
                            if let Some(coverage) = coverage.as_deref_mut() {
                                filter.mark(coverage, logits, o.high_score_thresh);
                            }
                            let result = upscaler
                                .upscale(logits, low_h, low_w, geometry, *threshold)
                                .map_err(|e| Error::Output {
                                    stage: "mask decoder",
                                    reason: e.to_string(),
                                })?;
                            // An empty mask is no object (SAM would keep a 0x0 box).
                            if result.area == 0 {
                                continue;
                            }
                            let logits = LowResLogits::new(low_w, low_h, logits.to_vec())
                                .ok_or_else(|| Error::Output {
                                    stage: "mask decoder",
                                    reason: "low-res logits of the wrong size".to_owned(),
                                })?;
                            candidates.push(Candidate {
                                point,
                                round,
                                prompt_index: first_index + slot,
                                mask_index,
                                iou,
                                logits,
                                corners: corners(&result.mask),
                                sequence: 0,
                            });
                        }
                        postprocess += started.elapsed();
                        Ok(())
                    },
                )?
            };
            self.out.prompts += chunk.len();
            self.out.decoder += start.elapsed().saturating_sub(postprocess);
            self.out.postprocess += postprocess;
            self.out.calls += calls;
        }
        Ok(())
    }

    /// Whether frame point `p` lies on a covered low-res cell.
    fn is_covered(&self, coverage: &[bool], (x, y): (f32, f32)) -> bool {
        let (low_h, low_w) = self.low;
        let s = self.geometry.input_size as f32;
        let cell = |model: f32, n: usize| {
            ((model / s * n as f32).floor().max(0.0) as usize).min(n.saturating_sub(1))
        };
        let (r, c) = (
            cell(self.geometry.to_model_y(y), low_h),
            cell(self.geometry.to_model_x(x), low_w),
        );
        coverage.get(r * low_w + c).copied().unwrap_or(false)
    }

    /// Box NMS, the survivors upscaled again, optional small-region clean-up
    /// (and NMS again), then the objects by descending predicted IoU.
    fn select(&mut self, candidates: Vec<Candidate>) -> Result<Vec<SegmentedObject>, Error> {
        let o = *self.options;
        let boxes: Vec<Corners> = candidates.iter().map(|c| c.corners).collect();
        let scores: Vec<f32> = candidates.iter().map(|c| c.iou).collect();
        let order = box_nms(&boxes, &scores, o.box_nms_thresh);
        let mut slots: Vec<Option<Candidate>> = candidates.into_iter().map(Some).collect();
        let (low_h, low_w) = self.low;
        let mut kept = Vec::with_capacity(order.len());
        for c in order
            .iter()
            .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        {
            let result = self
                .upscaler
                .upscale(
                    c.logits.values(),
                    low_h,
                    low_w,
                    &self.geometry,
                    self.threshold,
                )
                .map_err(|e| Error::Output {
                    stage: "mask decoder",
                    reason: e.to_string(),
                })?;
            kept.push(SegmentedObject {
                id: 0,
                prompt_index: c.prompt_index,
                mask: result.mask,
                iou: c.iou,
                stability: result.stability,
                area: result.area,
                mask_index: c.mask_index,
                low_res: Arc::new(c.logits),
                origin: ObjectOrigin::Everything {
                    point: c.point,
                    round: c.round,
                },
            });
        }
        drop(slots);

        if o.min_mask_region_area > 0 {
            let (w, h) = (self.geometry.frame_width, self.geometry.frame_height);
            let mut unchanged = Vec::with_capacity(kept.len());
            for object in &mut kept {
                let (mask, changed) =
                    remove_small_regions(&object.mask, o.min_mask_region_area, w, h);
                object.area = mask.count_ones();
                object.mask = mask;
                unchanged.push(if changed { 0.0 } else { 1.0 });
            }
            // SAM prefers masks the clean-up left alone.
            let boxes: Vec<Corners> = kept.iter().map(|object| corners(&object.mask)).collect();
            let order = box_nms(&boxes, &unchanged, o.box_nms_thresh);
            let mut slots: Vec<Option<SegmentedObject>> = kept.into_iter().map(Some).collect();
            kept = order
                .iter()
                .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
                .collect();
            // Ids by descending predicted IoU; NMS order breaks ties.
            kept.sort_by(|a, b| {
                b.iou
                    .partial_cmp(&a.iou)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        for (id, object) in kept.iter_mut().enumerate() {
            object.id = id;
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_points_are_cell_centres() {
        let g = point_grid(2, 100, 50);
        assert_eq!(
            g,
            vec![(25.0, 12.5), (75.0, 12.5), (25.0, 37.5), (75.0, 37.5)]
        );
        assert_eq!(point_grid(1, 7, 9), vec![(3.5, 4.5)]);
        assert_eq!(point_grid(32, 640, 480).len(), 1024);
    }

    #[test]
    fn options_are_validated() {
        assert!(EverythingOptions::default().validate().is_ok());
        let bad = [
            EverythingOptions {
                points_per_side: 0,
                ..Default::default()
            },
            EverythingOptions {
                prompts_per_batch: 0,
                ..Default::default()
            },
            EverythingOptions {
                box_nms_thresh: 1.5,
                ..Default::default()
            },
            EverythingOptions {
                stability_score_offset: 0.0,
                ..Default::default()
            },
            EverythingOptions {
                pred_iou_thresh: f32::NAN,
                ..Default::default()
            },
            EverythingOptions {
                mask_threshold: Some(f32::INFINITY),
                ..Default::default()
            },
        ];
        for options in bad {
            let err = options.validate().unwrap_err().to_string();
            assert!(err.starts_with("invalid option"), "{err}");
        }
    }
}
