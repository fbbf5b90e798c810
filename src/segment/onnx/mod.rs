// SPDX-License-Identifier: Apache-2.0
//! ONNX Runtime and the model: finding and loading the library
//! ([`runtime`]), the model files and their validation ([`model`]), the
//! raw calls ([`engine`]) on sessions shared by the engines of a process
//! ([`sessions`], taking turns at each), the split decoder, and batching
//! prompts into decoder calls, stopping runs from another thread
//! ([`cancel`]), and whether an INT8 model is exact on this CPU ([`int8`]).

pub mod cancel;
pub(crate) mod decode;
pub mod engine;
pub mod int8;
pub mod model;
pub mod runtime;
pub mod sessions;
mod split_decoder;
mod turns;
