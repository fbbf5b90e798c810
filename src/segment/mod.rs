// SPDX-License-Identifier: Apache-2.0
//! The segmentation core: ONNX Runtime sessions, SAM pre-processing, prompts,
//! decoding and post-processing. Knows nothing of GStreamer.

pub mod runtime;
