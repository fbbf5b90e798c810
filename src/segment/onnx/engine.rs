// SPDX-License-Identifier: Apache-2.0
//! The two ONNX Runtime sessions of a model and the raw calls into them.
//!
//! [`Engine::load`] resolves and validates the model files and gets the
//! sessions from [`sessions`](crate::segment::onnx::sessions): those another
//! engine of the process already runs for the same files and options, or
//! new ones on the requested execution provider (falling back to the CPU
//! with a warning when the loaded ONNX Runtime does not have it or it
//! fails). What is per stream stays per engine: the run options (so a
//! cancel stops only this engine), the zero mask input, the embeddings.
//! The engine is `Send`: it can move to a worker thread, and so can the
//! [`ImageEmbedding`]s it produces.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use ndarray::{Array1, Array2, Array3, Array4};
use ort::ep::{self, ExecutionProvider as _, ExecutionProviderDispatch};
use ort::session::{OutputSelector, SessionOutputs};
use ort::value::TensorRef;

use crate::segment::error::Error;
use crate::segment::image::preprocess::Geometry;
use crate::segment::limits::MAX_THREADS;
use crate::segment::onnx::cancel::Canceller;
use crate::segment::onnx::model::{self, DecoderLayout, ModelInfo, ModelSource};
use crate::segment::onnx::runtime;
use crate::segment::onnx::sessions::{self, ModelSessions};
use crate::segment::onnx::split_decoder::{self, ImageSideTensors, MASK_ROWS, SplitDecoder};

/// Where ONNX Runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExecutionProviderKind {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// NVIDIA CUDA.
    Cuda,
    /// NVIDIA TensorRT, with CUDA for what TensorRT does not take.
    TensorRt,
    /// Intel OpenVINO.
    OpenVino,
}

impl ExecutionProviderKind {
    /// The name used in properties and messages.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProviderKind::Cpu => "cpu",
            ExecutionProviderKind::Cuda => "cuda",
            ExecutionProviderKind::TensorRt => "tensorrt",
            ExecutionProviderKind::OpenVino => "openvino",
        }
    }

    /// ONNX Runtime's dispatchers for this choice, most preferred first,
    /// with their availability in the loaded library. `n_threads` is the
    /// sessions' intra-op thread count (0: the provider chooses), for the
    /// providers that run their own thread pools.
    pub(crate) fn dispatchers(
        self,
        n_threads: usize,
    ) -> Vec<(
        &'static str,
        Result<bool, String>,
        ExecutionProviderDispatch,
    )> {
        let available = |r: ort::Result<bool>| r.map_err(|e| e.to_string());
        let cuda = || {
            (
                "CUDA",
                available(ep::CUDA::is_available()),
                ep::CUDA::default().build().error_on_failure(),
            )
        };
        match self {
            ExecutionProviderKind::Cpu => Vec::new(),
            ExecutionProviderKind::Cuda => vec![cuda()],
            ExecutionProviderKind::TensorRt => vec![
                (
                    "TensorRT",
                    available(ep::TensorRT::is_available()),
                    ep::TensorRT::default().build().error_on_failure(),
                ),
                cuda(),
            ],
            ExecutionProviderKind::OpenVino => {
                // FP32 inference precision, so that OpenVINO does not pick
                // BF16 on CPUs that have it (the masks would then differ
                // from SAM's); threads as the CPU sessions get them, since
                // OpenVINO runs its own pool instead of ONNX Runtime's.
                let mut openvino = ep::OpenVINO::default().with_precision("FP32");
                if n_threads > 0 {
                    openvino = openvino.with_num_threads(n_threads);
                }
                vec![(
                    "OpenVINO",
                    available(ep::OpenVINO::is_available()),
                    openvino.build().error_on_failure(),
                )]
            }
        }
    }
}

impl fmt::Display for ExecutionProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExecutionProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(ExecutionProviderKind::Cpu),
            "cuda" => Ok(ExecutionProviderKind::Cuda),
            "tensorrt" | "trt" => Ok(ExecutionProviderKind::TensorRt),
            "openvino" => Ok(ExecutionProviderKind::OpenVino),
            other => Err(format!(
                "unknown execution provider `{other}` (expected cpu, cuda, tensorrt or openvino)"
            )),
        }
    }
}

/// How to run the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Intra-op threads per session; 0 lets ONNX Runtime choose.
    pub n_threads: usize,
    /// The requested execution provider.
    pub execution_provider: ExecutionProviderKind,
    /// Run on the sessions (weights, thread pools) of any other engine of
    /// the process with the same model files and options, taking turns,
    /// instead of loading the model again (default: true). Engines of their
    /// own run in parallel, each with its threads and its copy of the model.
    pub share_sessions: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            n_threads: 0,
            execution_provider: ExecutionProviderKind::Cpu,
            share_sessions: true,
        }
    }
}

/// An image's embedding and how its frame maps into the model.
///
/// Owned and `Send`: it can be computed on one thread and decoded on
/// another, or kept to decode more prompts later.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEmbedding {
    values: Array4<f32>,
    geometry: Geometry,
    /// The split decoder's image side, computed on first need.
    image_side: OnceLock<ImageSideTensors>,
}

impl ImageEmbedding {
    /// The embedding, `[1, C, h, w]`.
    pub fn values(&self) -> &Array4<f32> {
        &self.values
    }

    /// Frame and model sizes of the image it was computed from.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
}

/// Decoder inputs for one call (`B` prompts of `N` encoded points each).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecoderInputs {
    pub point_coords: Array3<f32>,
    pub point_labels: Array2<f32>,
    /// `None` when no prompt of the call has one: the engine then feeds
    /// zeros it keeps, instead of allocating them for every call.
    pub mask_input: Option<Array4<f32>>,
    pub has_mask_input: Array1<f32>,
}

/// Decoder outputs of one call, borrowed from ONNX Runtime's output tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DecoderOutputs<'a> {
    pub mask_count: usize,
    /// `[batch, mask_count]`, row major.
    pub ious: &'a [f32],
    /// `[rows, mask_count, low_h, low_w]`, row major.
    pub masks: &'a [f32],
    /// The prompts (indices into the batch, ascending) `masks` holds; `None`:
    /// every prompt, in order.
    pub mask_rows: Option<&'a [i64]>,
}

impl<'a> DecoderOutputs<'a> {
    /// Predicted IoUs and, if the run computed them, low-res logits of the
    /// prompt at `slot` of the batch (`cells` per mask).
    pub fn prompt(&self, slot: usize, cells: usize) -> Option<(&'a [f32], Option<&'a [f32]>)> {
        let m = self.mask_count;
        let ious = self.ious.get(slot * m..(slot + 1) * m)?;
        let row = match self.mask_rows {
            None => Some(slot),
            Some(rows) => rows.binary_search(&(slot as i64)).ok(),
        };
        let size = m * cells;
        let masks = match row {
            Some(r) => Some(self.masks.get(r * size..(r + 1) * size)?),
            None => None,
        };
        Some((ious, masks))
    }
}

/// The loaded model: its sessions and what the core knows about them.
pub struct Engine {
    /// Encoder and decoder, maybe shared with other engines.
    sessions: Arc<ModelSessions>,
    /// Used instead of the decoder for batches of several prompts.
    split: Option<SplitDecoder>,
    info: ModelInfo,
    provider: ExecutionProviderKind,
    /// The run options of every session run.
    cancel: Canceller,
    /// `mask_input` for calls without one, `[B, 1, low_h, low_w]` for the
    /// largest batch so far.
    zero_masks: Array4<f32>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

const IOU_OUTPUT: &str = "iou_predictions";
const LOW_RES_OUTPUT: &str = "low_res_masks";

impl Engine {
    /// Loads and validates the model of `source`. Returns warnings (no
    /// metadata, execution provider fallback) for the caller to report.
    pub fn load(
        source: &ModelSource,
        options: &EngineOptions,
    ) -> Result<(Engine, Vec<String>), Error> {
        if options.n_threads > MAX_THREADS {
            return Err(Error::Options(format!(
                "{} threads per session; at most {MAX_THREADS} are accepted (0 lets ONNX Runtime \
                 choose one per core)",
                options.n_threads
            )));
        }
        let (files, mut warnings) = model::resolve_files(source)?;
        runtime::ensure_loaded()?;
        let sessions = sessions::load(&files, options)?;
        warnings.extend(sessions.warnings.iter().cloned());
        let info = model::validate(&files, sessions.encoder.graph(), sessions.decoder.graph())?;
        let split = match (&files.split_decoder, &sessions.split) {
            (Some(split_files), Some((image, prompt))) => Some(SplitDecoder::new(
                split_files,
                Arc::clone(image),
                image.graph(),
                Arc::clone(prompt),
                prompt.graph(),
            )?),
            _ => None,
        };
        let selector = OutputSelector::no_default()
            .with(IOU_OUTPUT)
            .with(LOW_RES_OUTPUT);
        let cancel = Canceller::new(selector)?;
        let (low_h, low_w) = info.low_res_size;
        Ok((
            Engine {
                provider: sessions.provider,
                sessions,
                split,
                info,
                cancel,
                zero_masks: Array4::zeros((0, 1, low_h, low_w)),
            },
            warnings,
        ))
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// How many values [`Engine::decode`]'s `mask_iou_floor` takes (one per
    /// output mask, or one for all), when the model's split decoder can skip
    /// masks; `None` when every decoder call computes every mask.
    pub(crate) fn mask_iou_floor_len(&self) -> Option<usize> {
        self.split.as_ref().and_then(SplitDecoder::floor_len)
    }

    /// The handle that stops this engine's runs from another thread.
    pub fn canceller(&self) -> &Canceller {
        &self.cancel
    }

    /// The execution provider actually in use for the encoder.
    pub fn execution_provider(&self) -> ExecutionProviderKind {
        self.provider
    }

    /// Whether both run on the same ONNX Runtime sessions.
    pub fn shares_sessions_with(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.sessions, &other.sessions)
    }

    /// Runs the encoder on a pre-processed `[1, 3, S, S]` tensor.
    pub fn encode(
        &mut self,
        tensor: &Array4<f32>,
        geometry: Geometry,
    ) -> Result<ImageEmbedding, Error> {
        let stage = "image encoder";
        self.cancel.check()?;
        let cancel = &self.cancel;
        let fail = |e: ort::Error| cancel.run_error(stage, e);
        let input = TensorRef::from_array_view(tensor.view()).map_err(fail)?;
        let mut encoder = self.sessions.encoder.take(cancel)?;
        let outputs = cancel.finished(
            stage,
            encoder.run_with_options(
                ort::inputs![self.info.encoder_input.as_str() => input],
                cancel.plain(),
            ),
        )?;
        let value = outputs
            .get(self.info.encoder_output.as_str())
            .ok_or_else(|| Error::Output {
                stage,
                reason: format!("no output `{}`", self.info.encoder_output),
            })?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Output {
                stage,
                reason: e.to_string(),
            })?;
        let (c, h, w) = self.info.embedding;
        if shape.as_ref() != [1, c as i64, h as i64, w as i64] {
            return Err(Error::Output {
                stage,
                reason: format!("embedding shape {shape:?}, expected [1, {c}, {h}, {w}]"),
            });
        }
        let values =
            Array4::from_shape_vec((1, c, h, w), data.to_vec()).map_err(|e| Error::Output {
                stage,
                reason: e.to_string(),
            })?;
        Ok(ImageEmbedding {
            values,
            geometry,
            image_side: OnceLock::new(),
        })
    }

    /// Runs the decoder once on a batch of prompts: the split decoder when
    /// the model has one and the batch is large enough (or the image side is
    /// already computed for this embedding), else the plain decoder. The SAM
    /// layout also gets the frame size (height, width) as `orig_im_size`.
    /// `read` gets the outputs while ONNX Runtime still holds them, so they
    /// are never copied. `mask_iou_floor` (see [`Engine::mask_iou_floor_len`])
    /// lets a split decoder that takes it skip the masks of prompts whose
    /// every output is predicted at or below its floor; other decoders
    /// compute every mask.
    pub(crate) fn decode<T>(
        &mut self,
        embedding: &ImageEmbedding,
        inputs: &DecoderInputs,
        mask_iou_floor: Option<&[f32]>,
        read: impl FnOnce(DecoderOutputs<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let batch = inputs.point_coords.shape().first().copied().unwrap_or(0);
        self.cancel.check()?;
        if inputs.mask_input.is_none() && self.zero_masks.shape()[0] < batch {
            let (h, w) = self.info.low_res_size;
            self.zero_masks = Array4::zeros((batch, 1, h, w));
        }
        let mask_input = match &inputs.mask_input {
            Some(masks) => masks.view(),
            None => self.zero_masks.slice(ndarray::s![..batch, .., .., ..]),
        };
        let cancel = &self.cancel;
        if let Some(split) = self.split.as_mut() {
            if embedding.image_side.get().is_none() && batch >= split_decoder::MIN_BATCH {
                let side = split.image_side(embedding.values(), cancel)?;
                // Another caller cannot have set it: decoding needs `&mut self`.
                let _ = embedding.image_side.set(side);
            }
            if let Some(side) = embedding.image_side.get() {
                let info = &self.info;
                return split.run_prompts(
                    side,
                    inputs,
                    mask_input,
                    mask_iou_floor,
                    cancel,
                    |outputs| read(read_decoder_outputs(outputs, batch, info)?),
                );
            }
        }
        let stage = "mask decoder";
        let fail = |e: ort::Error| cancel.run_error(stage, e);
        let g = embedding.geometry();
        let orig_size = Array1::from(vec![g.frame_height as f32, g.frame_width as f32]);
        let mut feed = ort::inputs![
            "image_embeddings" => TensorRef::from_array_view(embedding.values().view()).map_err(fail)?,
            "point_coords" => TensorRef::from_array_view(inputs.point_coords.view()).map_err(fail)?,
            "point_labels" => TensorRef::from_array_view(inputs.point_labels.view()).map_err(fail)?,
            "mask_input" => TensorRef::from_array_view(mask_input).map_err(fail)?,
            "has_mask_input" => TensorRef::from_array_view(inputs.has_mask_input.view()).map_err(fail)?,
        ];
        if self.info.decoder_layout == DecoderLayout::Sam {
            feed.push((
                "orig_im_size".into(),
                TensorRef::from_array_view(orig_size.view())
                    .map_err(fail)?
                    .into(),
            ));
        }
        let mut decoder = self.sessions.decoder.take(cancel)?;
        let outputs = cancel.finished(stage, decoder.run_with_options(feed, cancel.decoder()))?;
        read(read_decoder_outputs(&outputs, batch, &self.info)?)
    }
}

/// Reads and checks `iou_predictions` and `low_res_masks` of a decoder run
/// on `batch` prompts, and `mask_rows` where the run has it.
fn read_decoder_outputs<'a>(
    outputs: &'a SessionOutputs<'_>,
    batch: usize,
    info: &ModelInfo,
) -> Result<DecoderOutputs<'a>, Error> {
    let stage = "mask decoder";
    let extract = |name: &str| -> Result<(Vec<i64>, &'a [f32]), Error> {
        let value = outputs.get(name).ok_or_else(|| Error::Output {
            stage,
            reason: format!("no output `{name}`"),
        })?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Output {
                stage,
                reason: format!("`{name}`: {e}"),
            })?;
        Ok((shape.to_vec(), data))
    };
    let (iou_shape, ious) = extract(IOU_OUTPUT)?;
    let (mask_shape, masks) = extract(LOW_RES_OUTPUT)?;
    let (lh, lw) = info.low_res_size;
    let mask_count = iou_shape
        .get(1)
        .and_then(|&m| usize::try_from(m).ok())
        .unwrap_or(0);
    let batch_i = batch as i64;
    let m = mask_count as i64;
    let mask_rows = match outputs.get(MASK_ROWS) {
        None => None,
        Some(value) => {
            let (rows_shape, rows) =
                value
                    .try_extract_tensor::<i64>()
                    .map_err(|e| Error::Output {
                        stage,
                        reason: format!("`{MASK_ROWS}`: {e}"),
                    })?;
            let ascending = rows.windows(2).all(|w| w[0] < w[1]);
            let in_batch = rows.iter().all(|&r| (0..batch_i).contains(&r));
            let k = rows.len() as i64;
            if rows_shape.to_vec() != [k] || !ascending || !in_batch {
                return Err(Error::Output {
                    stage,
                    reason: format!(
                        "`{MASK_ROWS}` {rows_shape:?} must list distinct prompts of the batch \
                         of {batch} in ascending order"
                    ),
                });
            }
            Some(rows)
        }
    };
    let rows = mask_rows.map_or(batch_i, |r| r.len() as i64);
    if iou_shape != [batch_i, m] || mask_shape != [rows, m, lh as i64, lw as i64] || mask_count == 0
    {
        return Err(Error::Output {
            stage,
            reason: format!(
                "{IOU_OUTPUT} {iou_shape:?} and {LOW_RES_OUTPUT} {mask_shape:?} do not fit \
                 {batch} prompt(s) with [{batch}, M] and [{rows}, M, {lh}, {lw}]"
            ),
        });
    }
    Ok(DecoderOutputs {
        mask_count,
        ious,
        masks,
        mask_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse() {
        for kind in [
            ExecutionProviderKind::Cpu,
            ExecutionProviderKind::Cuda,
            ExecutionProviderKind::TensorRt,
            ExecutionProviderKind::OpenVino,
        ] {
            assert_eq!(kind.name().parse::<ExecutionProviderKind>(), Ok(kind));
        }
        assert!("gpu".parse::<ExecutionProviderKind>().is_err());
    }

    fn assert_send<T: Send>() {}

    #[test]
    fn engine_and_embedding_can_move_between_threads() {
        assert_send::<Engine>();
        assert_send::<ImageEmbedding>();
    }
}
