// SPDX-License-Identifier: Apache-2.0
//! Running the decoder for many prompts.
//!
//! Prompts share a decoder call only when they encode to the same number
//! of points: padding a prompt with extra padding points would change its
//! result relative to SAM's one-prompt-at-a-time reference. Within a group,
//! calls hold at most `max_batch` prompts, and no more than the embedding
//! size allows (`limits::MAX_DECODER_CALL_TOKEN_BYTES`). The SAM layout
//! takes one prompt per call. Prompts with and without `mask_input` can
//! share a call (`has_mask_input` is per prompt).

use ndarray::{Array1, Array2, Array3, Array4};

use crate::segment::error::Error;
use crate::segment::limits::prompts_per_call_for_embedding;
use crate::segment::onnx::engine::{DecoderInputs, Engine, ImageEmbedding};
use crate::segment::prompt::{LABEL_PADDING, Prompt};

/// The decoder's outputs for one prompt, borrowed from its call's outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DecodedPrompt<'a> {
    /// Predicted IoU per output mask.
    pub ious: &'a [f32],
    /// Low-res logits of every output mask, `[mask_count, low_h, low_w]`;
    /// empty when a `mask_iou_floor` skipped the prompt's masks.
    pub masks: &'a [f32],
}

impl<'a> DecodedPrompt<'a> {
    /// Logits of output mask `index`.
    pub fn mask(&self, index: usize, cells: usize) -> Option<&'a [f32]> {
        let start = index.checked_mul(cells)?;
        self.masks.get(start..start.checked_add(cells)?)
    }
}

/// Prompt indices per decoder call: grouped by encoded point count (groups
/// in order of first appearance, prompts in order within a group), each
/// group split into calls of at most `max_batch` prompts.
pub(crate) fn plan_batches(encoded_lens: &[usize], max_batch: usize) -> Vec<Vec<usize>> {
    let max_batch = max_batch.max(1);
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, &len) in encoded_lens.iter().enumerate() {
        match groups.iter_mut().find(|(n, _)| *n == len) {
            Some((_, members)) => members.push(index),
            None => groups.push((len, vec![index])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, members)| {
            members
                .chunks(max_batch)
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Decodes `prompts` (frame pixels) against `embedding`, handing each
/// prompt's outputs with its index to `each` while its call's outputs are
/// alive (so only one call's outputs exist at a time, and none is copied).
/// Prompts come in call order, not prompt order. With `mask_iou_floor`
/// (see [`Engine::decode`]) a prompt may come without masks. Returns the
/// number of decoder calls made.
pub(crate) fn decode_prompts(
    engine: &mut Engine,
    embedding: &ImageEmbedding,
    prompts: &[Prompt],
    max_batch: usize,
    mask_iou_floor: Option<&[f32]>,
    mut each: impl FnMut(usize, DecodedPrompt<'_>) -> Result<(), Error>,
) -> Result<usize, Error> {
    let info = engine.info();
    let (low_h, low_w) = info.low_res_size;
    let fixed_points = info.fixed_points;
    let (channels, height, width) = info.embedding;
    let max_batch = info
        .max_batch
        .map_or(max_batch, |m| m.min(max_batch))
        .min(prompts_per_call_for_embedding(channels, height, width))
        .max(1);

    // Point count per prompt as fed to the decoder.
    let mut lens = Vec::with_capacity(prompts.len());
    for (index, prompt) in prompts.iter().enumerate() {
        if prompt.is_empty() {
            return Err(Error::Prompt {
                index,
                reason: "it has neither a point nor a box".to_owned(),
            });
        }
        if let Some(mask) = prompt.mask_input()
            && (mask.height(), mask.width()) != (low_h, low_w)
        {
            return Err(Error::Prompt {
                index,
                reason: format!(
                    "its mask input is {}x{}, the model takes {low_h}x{low_w}",
                    mask.width(),
                    mask.height()
                ),
            });
        }
        let len = prompt.encoded_len();
        lens.push(match fixed_points {
            // A graph with a fixed point count gets padding points: the
            // only way to feed it.
            Some(fixed) if len <= fixed => fixed,
            Some(fixed) => {
                return Err(Error::Prompt {
                    index,
                    reason: format!(
                        "it encodes to {len} points; the decoder takes exactly {fixed}"
                    ),
                });
            }
            None => len,
        });
    }

    let batches = plan_batches(&lens, max_batch);
    let geometry = *embedding.geometry();
    for batch in &batches {
        let points = batch
            .first()
            .and_then(|&i| lens.get(i))
            .copied()
            .unwrap_or(1);
        let members: Vec<&Prompt> = batch.iter().filter_map(|&i| prompts.get(i)).collect();
        let inputs = build_inputs(&members, points, (low_h, low_w), &geometry);
        let cells = low_h * low_w;
        engine.decode(embedding, &inputs, mask_iou_floor, |out| {
            for (slot, &index) in batch.iter().enumerate() {
                let Some((ious, masks)) = out.prompt(slot, cells) else {
                    return Err(Error::Output {
                        stage: "mask decoder",
                        reason: format!("no result for prompt {index}"),
                    });
                };
                each(
                    index,
                    DecodedPrompt {
                        ious,
                        masks: masks.unwrap_or_default(),
                    },
                )?;
            }
            Ok(())
        })?;
    }
    Ok(batches.len())
}

/// The decoder inputs for `prompts`, each padded to `points` encoded points.
fn build_inputs(
    prompts: &[&Prompt],
    points: usize,
    (low_h, low_w): (usize, usize),
    geometry: &crate::segment::image::preprocess::Geometry,
) -> DecoderInputs {
    let batch = prompts.len();
    let mut point_coords = Array3::<f32>::zeros((batch, points, 2));
    let mut point_labels = Array2::<f32>::from_elem((batch, points), LABEL_PADDING);
    let mut mask_input = prompts
        .iter()
        .any(|p| p.mask_input().is_some())
        .then(|| Array4::<f32>::zeros((batch, 1, low_h, low_w)));
    let mut has_mask_input = Array1::<f32>::zeros(batch);
    for (b, prompt) in prompts.iter().enumerate() {
        let encoded = prompt.encode(geometry);
        for (p, (xy, label)) in encoded
            .coords
            .iter()
            .zip(&encoded.labels)
            .take(points)
            .enumerate()
        {
            if let Some(slot) = point_coords.get_mut([b, p, 0]) {
                *slot = xy[0];
            }
            if let Some(slot) = point_coords.get_mut([b, p, 1]) {
                *slot = xy[1];
            }
            if let Some(slot) = point_labels.get_mut([b, p]) {
                *slot = *label;
            }
        }
        if let (Some(mask), Some(mask_input)) = (prompt.mask_input(), mask_input.as_mut()) {
            let mut plane = mask_input.index_axis_mut(ndarray::Axis(0), b);
            for (dst, &src) in plane.iter_mut().zip(mask.values()) {
                *dst = src;
            }
            if let Some(flag) = has_mask_input.get_mut(b) {
                *flag = 1.0;
            }
        }
    }
    DecoderInputs {
        point_coords,
        point_labels,
        mask_input,
        has_mask_input,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::segment::image::preprocess::Geometry;
    use crate::segment::masks::mask::LowResLogits;

    #[test]
    fn batches_group_by_point_count_and_respect_the_limit() {
        // lens: 2 2 3 2 4 3 2
        let plan = plan_batches(&[2, 2, 3, 2, 4, 3, 2], 3);
        assert_eq!(plan, vec![vec![0, 1, 3], vec![6], vec![2, 5], vec![4]]);
        assert_eq!(plan_batches(&[2, 2], 0), vec![vec![0], vec![1]]);
        assert!(plan_batches(&[], 8).is_empty());
    }

    #[test]
    fn inputs_hold_encoded_prompts_and_mask_inputs() {
        let g = Geometry::new(200, 100, 64).unwrap(); // scale 0.32
        let logits =
            Arc::new(LowResLogits::new(4, 4, (0..16).map(|v| v as f32).collect()).unwrap());
        let a = Prompt::new().with_point(100.0, 50.0);
        let b = Prompt::new()
            .with_negative(0.0, 0.0)
            .with_box(10.0, 10.0, 20.0, 20.0)
            .with_mask_input(logits);
        let inputs = build_inputs(&[&a, &b], 3, (4, 4), &g);
        assert_eq!(inputs.point_coords.shape(), &[2, 3, 2]);
        assert_eq!(inputs.point_labels.row(0).to_vec(), vec![1.0, -1.0, -1.0]);
        assert_eq!(inputs.point_labels.row(1).to_vec(), vec![0.0, 2.0, 3.0]);
        assert!((inputs.point_coords[[0, 0, 0]] - 32.0).abs() < 1e-5);
        assert!((inputs.point_coords[[1, 2, 1]] - 6.4).abs() < 1e-5);
        assert_eq!(inputs.has_mask_input.to_vec(), vec![0.0, 1.0]);
        let masks = inputs.mask_input.expect("a mask input for the batch");
        assert_eq!(masks[[0, 0, 3, 3]], 0.0);
        assert_eq!(masks[[1, 0, 3, 3]], 15.0);
        // Without mask inputs, none is allocated.
        assert!(build_inputs(&[&a], 3, (4, 4), &g).mask_input.is_none());
    }
}
