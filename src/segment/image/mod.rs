// SPDX-License-Identifier: Apache-2.0
//! Pixels: borrowed views of video frames and their conversion to RGB
//! ([`frame`]), the model input ([`preprocess`]), and drawing masks into
//! frames ([`overlay`]), and cut-outs, blurs and pixelation of the masked
//! pixels ([`effects`]).

pub mod effects;
pub mod frame;
pub mod overlay;
pub mod preprocess;
