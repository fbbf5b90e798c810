// SPDX-License-Identifier: Apache-2.0
//! Pixels: borrowed views of video frames and their conversion to RGB
//! ([`frame`]), the model input ([`preprocess`]), and drawing masks into
//! frames ([`overlay`]).

pub mod frame;
pub mod overlay;
pub mod preprocess;
