// SPDX-License-Identifier: Apache-2.0
//! ONNX Runtime and the model: finding and loading the library
//! ([`runtime`]), the model files and their validation ([`model`]), the
//! sessions and raw calls ([`engine`]), the split decoder, and batching
//! prompts into decoder calls, and stopping runs from another thread
//! ([`cancel`]).

pub mod cancel;
pub(crate) mod decode;
pub mod engine;
pub mod model;
pub mod runtime;
mod split_decoder;
