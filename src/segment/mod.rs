// SPDX-License-Identifier: Apache-2.0
//! The segmentation core: ONNX Runtime sessions, SAM pre-processing, prompts,
//! decoding and post-processing. Knows nothing of GStreamer.
//!
//! - [`onnx`]: ONNX Runtime ([`onnx::runtime`]), the model files
//!   ([`onnx::model`]), the sessions ([`onnx::engine`]), the split decoder
//!   and prompt batching;
//! - [`image`]: frame views and conversion, the model input, drawing;
//! - [`masks`]: the bit-packed mask and low-res logits, post-processing;
//! - [`everything`]: segment everything (SAM's dense grid, TinySAM's
//!   hierarchical strategy), with box NMS and small-region clean-up;
//! - [`prompt`]: points and boxes, their text form and SAM encoding;
//! - [`limits`]: what a prompt, a frame and a decoder call may ask for;
//! - [`segmenter`]: the facade tying them together.
//!
//! See docs/segmentation-core.md for an overview.

pub mod error;
pub mod everything;
pub mod image;
pub mod limits;
pub mod masks;
pub mod onnx;
pub mod prompt;
pub mod segmenter;
#[cfg(test)]
pub(crate) mod testing;
pub mod video;

pub use error::{Error, LayoutMismatch};
pub use everything::{EverythingOptions, EverythingStrategy, GridRound};
pub use image::effects::{EffectError, MaskEffect, MaskPainter};
pub use image::frame::{
    FrameError, FrameLayout, FrameView, FrameViewMut, PixelFormat, YuvColorimetry, YuvMatrix,
    YuvRange,
};
pub use image::overlay::{OverlayStyle, draw_mask, draw_objects, palette_color};
pub use image::preprocess::Geometry;
pub use masks::mask::{BitMask, LowResLogits};
pub use masks::postprocess::MaskSelection;
pub use onnx::engine::{EngineOptions, ExecutionProviderKind, ImageEmbedding};
pub use onnx::model::{DecoderLayout, ModelInfo, ModelSource};
pub use prompt::{CoordMode, Prompt, PromptError, parse_prompts};
pub use segmenter::{
    ObjectOrigin, SegmentOptions, Segmentation, SegmentedObject, Segmenter, Timings,
};
