// SPDX-License-Identifier: Apache-2.0
//! Masks: the bit-packed mask and low-res logits handed out ([`mask`]), and
//! the decoder's logits turned into them ([`postprocess`]: selection,
//! region-restricted upscaling, scores).

pub mod mask;
pub mod postprocess;
