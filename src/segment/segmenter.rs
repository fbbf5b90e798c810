// SPDX-License-Identifier: Apache-2.0
//! The facade the element drives: load a model, embed frames, segment
//! prompts.
//!
//! ```no_run
//! use gsttinysam::segment::{
//!     CoordMode, EngineOptions, FrameView, ModelSource, PixelFormat, Prompt, SegmentOptions, Segmenter,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut segmenter, warnings) =
//!     Segmenter::load(&ModelSource::directory("models/tinysam"), &EngineOptions::default())?;
//! # let (pixels, width, height) = (vec![0u8; 640 * 480 * 3], 640, 480);
//! let frame = FrameView::packed(PixelFormat::Rgb, width, height, &pixels, width as usize * 3)?;
//! let embedding = segmenter.embed(&frame)?;
//! let prompts = [Prompt::new().with_point(320.0, 240.0)];
//! let result = segmenter.segment(&embedding, &prompts, &SegmentOptions::default())?;
//! for object in &result.objects {
//!     println!("{} {:?} iou {:.2}", object.id, object.bbox(), object.iou);
//! }
//! println!("{:?}", segmenter.timings());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array4;

use crate::segment::error::Error;
use crate::segment::everything::{EverythingOptions, GridRound, segment_everything};
use crate::segment::image::frame::FrameView;
use crate::segment::image::preprocess::{Geometry, Preprocessor};
use crate::segment::limits::{MAX_EVERYTHING_CANDIDATES, MAX_PROMPTS};
use crate::segment::masks::mask::{BitMask, LowResLogits};
use crate::segment::masks::postprocess::{MaskSelection, MaskUpscaler};
use crate::segment::onnx::cancel::Canceller;
use crate::segment::onnx::decode::decode_prompts;
use crate::segment::onnx::engine::{Engine, EngineOptions, ExecutionProviderKind, ImageEmbedding};
use crate::segment::onnx::model::{ModelInfo, ModelSource};
use crate::segment::prompt::{CoordMode, Prompt};

/// Prompts per decoder call unless told otherwise.
pub const DEFAULT_MAX_BATCH: usize = 16;

/// Per-call choices for [`Segmenter::segment`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentOptions {
    /// How prompt coordinates relate to the frame.
    pub coord_mode: CoordMode,
    /// Mask selection; `None` uses the model's rule.
    pub selection: Option<MaskSelection>,
    /// Mask threshold on logits; `None` uses the model's (SAM: 0.0).
    pub threshold: Option<f32>,
    /// Most prompts per decoder call (at least 1).
    pub max_batch: usize,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            coord_mode: CoordMode::Pixels,
            selection: None,
            threshold: None,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }
}

/// Where an object comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObjectOrigin {
    /// The answer to prompt `index` of [`Segmenter::segment`].
    Prompt { index: usize },
    /// Everything mode: the grid point (frame pixels) that produced it and
    /// the grid round.
    Everything { point: (f32, f32), round: GridRound },
}

/// One segmented object.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentedObject {
    /// Object number: the prompt's index in [`Segmenter::segment`], the rank
    /// by descending predicted IoU in [`Segmenter::segment_everything`]
    /// (trackers may renumber).
    pub id: usize,
    /// Index of the prompt it answers (everything mode: of the grid point,
    /// in decoding order, sparse round first).
    pub prompt_index: usize,
    /// The mask, cropped to its tight box in frame pixels (empty if no pixel
    /// is above the threshold).
    pub mask: BitMask,
    /// The decoder's predicted IoU of the kept mask.
    pub iou: f32,
    /// SAM's stability score of the kept mask.
    pub stability: f32,
    /// Mask pixels.
    pub area: u64,
    /// Which decoder output was kept (0: single-mask output).
    pub mask_index: usize,
    /// The kept mask's low-res logits, for refinement or tracking
    /// ([`Prompt::with_mask_input`]).
    pub low_res: Arc<LowResLogits>,
    /// What produced it.
    pub origin: ObjectOrigin,
}

impl SegmentedObject {
    /// Tight box in frame pixels: (x, y, width, height).
    pub fn bbox(&self) -> (u32, u32, u32, u32) {
        (
            self.mask.x(),
            self.mask.y(),
            self.mask.width(),
            self.mask.height(),
        )
    }
}

/// The result of [`Segmenter::segment`] and [`Segmenter::segment_everything`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Segmentation {
    /// One object per prompt, in prompt order (everything mode: the kept
    /// masks, by descending predicted IoU).
    pub objects: Vec<SegmentedObject>,
    /// Prompt coordinates that were clamped or corrected.
    pub warnings: Vec<String>,
}

/// Time spent in each stage by the last [`Segmenter::embed`] and
/// [`Segmenter::segment`] calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Frame -> packed RGB.
    pub conversion: Duration,
    /// Resizing to the model resolution.
    pub resize: Duration,
    /// Normalisation and padding.
    pub normalise: Duration,
    /// Image encoder.
    pub encoder: Duration,
    /// All decoder calls of the last `segment`.
    pub decoder: Duration,
    /// Mask selection, upscaling and packing of the last `segment`.
    pub postprocess: Duration,
    /// Decoder calls and prompts decoded by the last `segment` or
    /// `segment_everything` (there: grid points of all rounds).
    pub decoder_calls: usize,
    pub prompts: usize,
    /// Prompts of the last `segment_everything` whose masks the decoder did
    /// not compute: every output they would use failed `pred_iou_thresh`.
    pub prompts_without_masks: usize,
}

/// A loaded model with its pre- and post-processing state.
#[derive(Debug)]
pub struct Segmenter {
    engine: Engine,
    preprocessor: Preprocessor,
    upscaler: MaskUpscaler,
    timings: Timings,
}

impl Segmenter {
    /// Loads and validates a model. The warnings (missing metadata,
    /// execution-provider fallback) are for the caller to report.
    pub fn load(
        source: &ModelSource,
        options: &EngineOptions,
    ) -> Result<(Segmenter, Vec<String>), Error> {
        let (engine, warnings) = Engine::load(source, options)?;
        let info = engine.info();
        let preprocessor = Preprocessor::new(info.input_size, info.pixel_mean, info.pixel_std)?;
        Ok((
            Segmenter {
                engine,
                preprocessor,
                upscaler: MaskUpscaler::new(),
                timings: Timings::default(),
            },
            warnings,
        ))
    }

    /// What the model is: sizes, layout, defaults.
    pub fn info(&self) -> &ModelInfo {
        self.engine.info()
    }

    /// The execution provider in use.
    pub fn execution_provider(&self) -> ExecutionProviderKind {
        self.engine.execution_provider()
    }

    /// Whether both run on the same ONNX Runtime sessions: loaded from the
    /// same files with the same options and
    /// [`share_sessions`](EngineOptions::share_sessions).
    pub fn shares_sessions_with(&self, other: &Segmenter) -> bool {
        self.engine.shares_sessions_with(&other.engine)
    }

    /// Stage timings of the last calls.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Pre-processes `frame` and runs the image encoder.
    pub fn embed(&mut self, frame: &FrameView<'_>) -> Result<ImageEmbedding, Error> {
        let (geometry, pre) = self.preprocessor.run(frame)?;
        let start = Instant::now();
        let embedding = self.engine.encode(self.preprocessor.tensor(), geometry)?;
        self.timings.conversion = pre.conversion;
        self.timings.resize = pre.resize;
        self.timings.normalise = pre.normalise;
        self.timings.encoder = start.elapsed();
        Ok(embedding)
    }

    /// A pre-processor for this model, for a thread that sees the pixels
    /// while the encoder runs on another ([`Self::embed_tensor`]).
    pub fn new_preprocessor(&self) -> Result<Preprocessor, Error> {
        let info = self.engine.info();
        Ok(Preprocessor::new(
            info.input_size,
            info.pixel_mean,
            info.pixel_std,
        )?)
    }

    /// Runs the image encoder on a model input made by a
    /// [`new_preprocessor`](Self::new_preprocessor) of this model.
    pub fn embed_tensor(
        &mut self,
        tensor: &Array4<f32>,
        geometry: Geometry,
    ) -> Result<ImageEmbedding, Error> {
        let s = self.engine.info().input_size as usize;
        if tensor.shape() != [1, 3, s, s] || geometry.input_size as usize != s {
            return Err(Error::Embedding(format!(
                "model input of shape {:?} for input size {}, the model's is [1, 3, {s}, {s}]",
                tensor.shape(),
                geometry.input_size
            )));
        }
        let start = Instant::now();
        let embedding = self.engine.encode(tensor, geometry)?;
        self.timings.encoder = start.elapsed();
        Ok(embedding)
    }

    /// Segments one object per prompt in the frame `embedding` came from.
    pub fn segment(
        &mut self,
        embedding: &ImageEmbedding,
        prompts: &[Prompt],
        options: &SegmentOptions,
    ) -> Result<Segmentation, Error> {
        self.check_embedding(embedding)?;
        check_prompts(prompts)?;
        let info = self.engine.info();
        let threshold = options.threshold.unwrap_or(info.mask_threshold);
        if !threshold.is_finite() {
            return Err(Error::Options(format!(
                "mask threshold {threshold} is not finite"
            )));
        }
        let selection = options.selection.unwrap_or(info.mask_selection);
        let (low_h, low_w) = info.low_res_size;
        let geometry = *embedding.geometry();

        let mut warnings = Vec::new();
        let resolved: Vec<Prompt> = prompts
            .iter()
            .enumerate()
            .map(|(index, prompt)| {
                let (p, w) = prompt.resolve(
                    options.coord_mode,
                    geometry.frame_width,
                    geometry.frame_height,
                    index,
                );
                warnings.extend(w);
                p
            })
            .collect();

        let start = Instant::now();
        let mut postprocess = Duration::ZERO;
        let cells = low_h * low_w;
        let upscaler = &mut self.upscaler;
        let mut objects: Vec<Option<SegmentedObject>> = vec![None; resolved.len()];
        let calls = decode_prompts(
            &mut self.engine,
            embedding,
            &resolved,
            options.max_batch,
            None,
            |index, out| {
                let started = Instant::now();
                let single_point = resolved.get(index).is_some_and(Prompt::is_single_point);
                let chosen = selection.choose(out.ious, single_point).ok_or_else(|| {
                    Error::Options(format!(
                        "mask selection `{selection}` does not fit the decoder's {} output(s)",
                        out.ious.len()
                    ))
                })?;
                let logits = out.mask(chosen, cells).ok_or_else(|| Error::Output {
                    stage: "mask decoder",
                    reason: format!("no logits for output {chosen} of prompt {index}"),
                })?;
                let result = upscaler
                    .upscale(logits, low_h, low_w, &geometry, threshold)
                    .map_err(|e| Error::Output {
                        stage: "mask decoder",
                        reason: e.to_string(),
                    })?;
                let low_res =
                    LowResLogits::new(low_w, low_h, logits.to_vec()).ok_or_else(|| {
                        Error::Output {
                            stage: "mask decoder",
                            reason: "low-res logits of the wrong size".to_owned(),
                        }
                    })?;
                if let Some(slot) = objects.get_mut(index) {
                    *slot = Some(SegmentedObject {
                        id: index,
                        prompt_index: index,
                        mask: result.mask,
                        iou: out.ious.get(chosen).copied().unwrap_or(f32::NAN),
                        stability: result.stability,
                        area: result.area,
                        mask_index: chosen,
                        low_res: Arc::new(low_res),
                        origin: ObjectOrigin::Prompt { index },
                    });
                }
                postprocess += started.elapsed();
                Ok(())
            },
        )?;
        let objects = objects
            .into_iter()
            .enumerate()
            .map(|(index, object)| {
                object.ok_or_else(|| Error::Output {
                    stage: "mask decoder",
                    reason: format!("no result for prompt {index}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.timings.decoder = start.elapsed().saturating_sub(postprocess);
        self.timings.postprocess = postprocess;
        self.timings.decoder_calls = calls;
        self.timings.prompts = prompts.len();
        self.timings.prompts_without_masks = 0;
        Ok(Segmentation { objects, warnings })
    }

    /// Segments everything in the frame `embedding` came from: a grid of
    /// point prompts, filtered and de-duplicated as SAM's automatic mask
    /// generator, or with TinySAM's hierarchical strategy (see
    /// [`EverythingOptions`]). Objects are ordered and numbered by
    /// descending predicted IoU.
    pub fn segment_everything(
        &mut self,
        embedding: &ImageEmbedding,
        options: &EverythingOptions,
    ) -> Result<Segmentation, Error> {
        self.check_embedding(embedding)?;
        let run = segment_everything(&mut self.engine, &mut self.upscaler, embedding, options)?;
        self.timings.decoder = run.decoder;
        self.timings.postprocess = run.postprocess;
        self.timings.decoder_calls = run.calls;
        self.timings.prompts = run.prompts;
        self.timings.prompts_without_masks = run.masks_skipped;
        let mut warnings = Vec::new();
        if run.dropped_candidates > 0 {
            warnings.push(format!(
                "everything mode: {} candidate masks past the limit of {MAX_EVERYTHING_CANDIDATES} \
                 were dropped before NMS (those with the lowest predicted IoU); raise \
                 pred-iou-thresh or stability-score-thresh, or lower points-per-side",
                run.dropped_candidates
            ));
        }
        Ok(Segmentation {
            objects: run.objects,
            warnings,
        })
    }

    /// The handle that stops this segmenter's work from another thread: the
    /// call in progress and every later one fail with [`Error::Cancelled`]
    /// until [`Canceller::reset`].
    pub fn canceller(&self) -> Canceller {
        self.engine.canceller().clone()
    }

    fn check_embedding(&self, embedding: &ImageEmbedding) -> Result<(), Error> {
        let info = self.engine.info();
        let (c, h, w) = info.embedding;
        let shape = embedding.values().shape();
        if shape != [1, c, h, w] {
            return Err(Error::Embedding(format!(
                "shape {shape:?}, the model's is [1, {c}, {h}, {w}]"
            )));
        }
        let g = embedding.geometry();
        if g.input_size != info.input_size {
            return Err(Error::Embedding(format!(
                "computed for input size {}, the model's is {}",
                g.input_size, info.input_size
            )));
        }
        Ok(())
    }
}

/// Prompts beyond the limits are refused before any work is done.
fn check_prompts(prompts: &[Prompt]) -> Result<(), Error> {
    if prompts.len() > MAX_PROMPTS {
        return Err(Error::Prompt {
            index: MAX_PROMPTS,
            reason: format!(
                "{} prompts in one call; at most {MAX_PROMPTS} are accepted",
                prompts.len()
            ),
        });
    }
    for (index, prompt) in prompts.iter().enumerate() {
        prompt
            .validate()
            .map_err(|reason| Error::Prompt { index, reason })?;
    }
    Ok(())
}
