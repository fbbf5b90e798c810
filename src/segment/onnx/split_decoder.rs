// SPDX-License-Identifier: Apache-2.0
//! The decoder split in two graphs (docs/model-format.md, "Split decoder"):
//! the image side turns an embedding into the tensors no prompt changes
//! (image tokens, their positional encoding, the first block's image-side
//! projections) once per image; the prompt side decodes a batch of prompts
//! against them. The plain decoder recomputes and copies that work for every
//! prompt. Both give the same logits (the exporter checks 1e-4).
//!
//! A prompt side that takes `mask_iou_floor` (one value per output mask)
//! upscales masks only for the prompts with an output predicted above its
//! floor and lists them in `mask_rows`: everything mode gives it
//! `pred-iou-thresh`, so candidates it would drop cost no mask upscaling.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use ort::value::TensorRef;

use crate::segment::error::Error;
use crate::segment::onnx::cancel::Canceller;
use crate::segment::onnx::engine::DecoderInputs;
use crate::segment::onnx::model::{GraphSpec, SplitDecoderFiles};
use crate::segment::onnx::sessions::SharedSession;

/// A batch of at least this many prompts computes the image side; smaller
/// ones use the plain decoder unless the image side is already there (one
/// prompt costs about the same either way, plus the image side once).
pub(crate) const MIN_BATCH: usize = 4;

/// The prompt inputs of the prompt side, besides the image side's outputs.
const PROMPT_INPUTS: [(&str, usize); 4] = [
    ("point_coords", 3),
    ("point_labels", 2),
    ("mask_input", 4),
    ("has_mask_input", 1),
];

/// The optional input that filters the prompts that get masks, and the
/// output listing them.
pub(crate) const MASK_IOU_FLOOR: &str = "mask_iou_floor";
pub(crate) const MASK_ROWS: &str = "mask_rows";

const EXPECTED: &[&str] = &[
    "image part:",
    "  inputs:  image_embeddings f32[1,C,h,w]",
    "  outputs: the tensors model.json lists in split_decoder.image_outputs (f32, batch 1)",
    "prompt part:",
    "  inputs:  those tensors, point_coords f32[B,N,2], point_labels f32[B,N], \
     mask_input f32[B,1,4h,4w], has_mask_input f32[B], optionally mask_iou_floor f32[M]",
    "  outputs: iou_predictions f32[B,M], low_res_masks f32[B,M,4h,4w] \
     (with mask_iou_floor: f32[K,M,4h,4w] and mask_rows i64[K])",
];

/// The image side's outputs for one embedding, in `image_outputs` order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSideTensors(Vec<ArrayD<f32>>);

/// The two sessions of a split decoder (shared, see `sessions`).
pub(crate) struct SplitDecoder {
    image: Arc<SharedSession>,
    prompt: Arc<SharedSession>,
    image_outputs: Vec<String>,
    /// The length of `mask_iou_floor` when the prompt side takes it (and
    /// lists `mask_rows`).
    floor_len: Option<usize>,
}

impl SplitDecoder {
    /// Checks the sessions' inputs and outputs against `files`.
    pub(crate) fn new(
        files: &SplitDecoderFiles,
        image: Arc<SharedSession>,
        image_graph: &GraphSpec,
        prompt: Arc<SharedSession>,
        prompt_graph: &GraphSpec,
    ) -> Result<Self, Error> {
        let names = &files.image_outputs;
        let mut problems = Vec::new();
        if image_graph.inputs.len() != 1 || image_graph.input("image_embeddings").is_none() {
            problems.push("the image part must take exactly `image_embeddings`".to_owned());
        }
        for name in names {
            if image_graph.output(name).is_none() {
                problems.push(format!("the image part has no output `{name}`"));
            }
        }
        if !problems.is_empty() {
            return Err(image_graph
                .mismatch("split decoder image part", &files.image, problems, EXPECTED)
                .into());
        }
        let floor_spec = prompt_graph.input(MASK_IOU_FLOOR);
        let filters_masks = floor_spec.is_some();
        let expected_inputs: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .chain(PROMPT_INPUTS.iter().map(|(name, _)| *name))
            .chain(filters_masks.then_some(MASK_IOU_FLOOR))
            .collect();
        for name in &expected_inputs {
            if prompt_graph.input(name).is_none() {
                problems.push(format!("missing input `{name}`"));
            }
        }
        for input in &prompt_graph.inputs {
            if !expected_inputs.contains(&input.name.as_str()) {
                problems.push(format!(
                    "unexpected input `{}` (the core cannot feed it)",
                    input.name
                ));
            }
        }
        for (name, rank) in PROMPT_INPUTS {
            if let Some(t) = prompt_graph.input(name)
                && t.dims.len() != rank
            {
                problems.push(format!(
                    "input `{name}` has rank {}, expected {rank}",
                    t.dims.len()
                ));
            }
        }
        for name in ["iou_predictions", "low_res_masks"] {
            if prompt_graph.output(name).is_none() {
                problems.push(format!("missing output `{name}`"));
            }
        }
        if filters_masks {
            if floor_spec.is_some_and(|t| t.dims.len() != 1) {
                problems.push(format!("input `{MASK_IOU_FLOOR}` must have rank 1"));
            }
            if prompt_graph.output(MASK_ROWS).is_none() {
                problems.push(format!(
                    "input `{MASK_IOU_FLOOR}` without output `{MASK_ROWS}`"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(prompt_graph
                .mismatch(
                    "split decoder prompt part",
                    &files.prompt,
                    problems,
                    EXPECTED,
                )
                .into());
        }
        Ok(SplitDecoder {
            image,
            prompt,
            image_outputs: names.clone(),
            // [M] when the graph fixes it; a dynamic length takes one value
            // for every output.
            floor_len: floor_spec.map(|t| {
                t.dims
                    .first()
                    .and_then(|&d| usize::try_from(d).ok())
                    .filter(|&d| d > 0)
                    .unwrap_or(1)
            }),
        })
    }

    /// The length of `mask_iou_floor` when the prompt side takes it.
    pub(crate) fn floor_len(&self) -> Option<usize> {
        self.floor_len
    }

    /// Runs the image side on a `[1, C, h, w]` embedding.
    pub(crate) fn image_side(
        &mut self,
        embedding: &ndarray::Array4<f32>,
        cancel: &Canceller,
    ) -> Result<ImageSideTensors, Error> {
        let stage = "split decoder image part";
        let fail = |e: ort::Error| cancel.run_error(stage, e);
        let input = TensorRef::from_array_view(embedding.view()).map_err(fail)?;
        let mut session = self.image.take(cancel)?;
        let outputs = cancel.finished(
            stage,
            session.run_with_options(ort::inputs!["image_embeddings" => input], cancel.plain()),
        )?;
        self.image_outputs
            .iter()
            .map(|name| {
                let output_error = |reason: String| Error::Output { stage, reason };
                let value = outputs
                    .get(name.as_str())
                    .ok_or_else(|| output_error(format!("no output `{name}`")))?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| output_error(format!("`{name}`: {e}")))?;
                let dims: Vec<usize> = shape
                    .iter()
                    .map(|&d| usize::try_from(d).unwrap_or(0))
                    .collect();
                ArrayD::from_shape_vec(IxDyn(&dims), data.to_vec())
                    .map_err(|e| output_error(format!("`{name}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ImageSideTensors)
    }

    /// Runs the prompt side; the outputs are read like the plain decoder's.
    /// `mask_iou_floor` (`[M]`) reaches a prompt side that takes it; without
    /// one it gets -inf, so every prompt gets its masks. A floor of another
    /// length than the graph's is an error of the caller's.
    pub(crate) fn run_prompts<T>(
        &mut self,
        image: &ImageSideTensors,
        inputs: &DecoderInputs,
        mask_input: ndarray::ArrayView4<'_, f32>,
        mask_iou_floor: Option<&[f32]>,
        cancel: &Canceller,
        read: impl FnOnce(&ort::session::SessionOutputs<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let stage = "split decoder prompt part";
        let fail = |e: ort::Error| cancel.run_error(stage, e);
        let floor = match (self.floor_len, mask_iou_floor) {
            (None, _) => None,
            (Some(len), Some(f)) if f.len() == len => Some(ndarray::Array1::from(f.to_vec())),
            (Some(len), Some(f)) => {
                return Err(Error::Output {
                    stage: "split decoder prompt part",
                    reason: format!(
                        "{} values for `{MASK_IOU_FLOOR}`, the graph takes {len}",
                        f.len()
                    ),
                });
            }
            (Some(len), None) => Some(ndarray::Array1::from_elem(len, f32::NEG_INFINITY)),
        };
        let mut feed = ort::inputs![
            "point_coords" => TensorRef::from_array_view(inputs.point_coords.view()).map_err(fail)?,
            "point_labels" => TensorRef::from_array_view(inputs.point_labels.view()).map_err(fail)?,
            "mask_input" => TensorRef::from_array_view(mask_input).map_err(fail)?,
            "has_mask_input" => TensorRef::from_array_view(inputs.has_mask_input.view()).map_err(fail)?,
        ];
        if let Some(floor) = &floor {
            feed.push((
                MASK_IOU_FLOOR.into(),
                TensorRef::from_array_view(floor.view())
                    .map_err(fail)?
                    .into(),
            ));
        }
        for (name, tensor) in self.image_outputs.iter().zip(&image.0) {
            feed.push((
                name.clone().into(),
                TensorRef::from_array_view(tensor.view())
                    .map_err(fail)?
                    .into(),
            ));
        }
        let mut session = self.prompt.take(cancel)?;
        let outputs = cancel.finished(stage, session.run_with_options(feed, cancel.plain()))?;
        read(&outputs)
    }
}
