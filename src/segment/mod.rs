// SPDX-License-Identifier: Apache-2.0
//! The segmentation core: ONNX Runtime sessions, SAM pre-processing, prompts,
//! decoding and post-processing. Knows nothing of GStreamer.
//!
//! - [`frame`]: borrowed views of video frames and their conversion to RGB;
//! - [`preprocess`]: frame -> normalised, padded model input;
//! - [`prompt`]: points and boxes, their text form and SAM encoding;
//! - [`model`]: model files, `model.json`, input/output validation;
//! - [`engine`]: the ONNX Runtime sessions and execution providers;
//! - `decode`: batching prompts into decoder calls;
//! - [`postprocess`]: mask selection, region-restricted upscaling, scores;
//! - [`everything`]: segment everything (SAM's dense grid, TinySAM's
//!   hierarchical strategy), with `nms` (box NMS) and `regions` (small-region
//!   clean-up);
//! - [`mask`]: the bit-packed mask and low-res logits handed out;
//! - [`overlay`]: drawing masks into frames;
//! - [`segmenter`]: the facade tying them together;
//! - `split_decoder`: the decoder as an image side run once per frame and a
//!   prompt side run per batch, when the model directory has one.
//!
//! See docs/segmentation-core.md for an overview.

pub mod runtime;

mod decode;
pub mod engine;
pub mod error;
pub mod everything;
pub mod frame;
pub mod mask;
pub mod model;
mod nms;
pub mod overlay;
pub mod postprocess;
pub mod preprocess;
pub mod prompt;
mod regions;
pub mod segmenter;
mod split_decoder;

pub use engine::{EngineOptions, ExecutionProviderKind, ImageEmbedding};
pub use error::{Error, LayoutMismatch};
pub use everything::{EverythingOptions, EverythingStrategy, GridRound};
pub use frame::{
    FrameError, FrameLayout, FrameView, FrameViewMut, PixelFormat, YuvColorimetry, YuvMatrix,
    YuvRange,
};
pub use mask::{BitMask, LowResLogits};
pub use model::{DecoderLayout, ModelInfo, ModelSource};
pub use overlay::{OverlayStyle, draw_mask, draw_objects, palette_color};
pub use postprocess::MaskSelection;
pub use preprocess::Geometry;
pub use prompt::{CoordMode, Prompt, PromptError, parse_prompts};
pub use segmenter::{
    ObjectOrigin, SegmentOptions, Segmentation, SegmentedObject, Segmenter, Timings,
};
