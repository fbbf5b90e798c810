// SPDX-License-Identifier: Apache-2.0
//! The `tinysam` element.

use gst::glib;
use gst::prelude::*;

mod drawing;
mod errors;
mod frames;
mod imp;
mod inference;
mod latency;
pub mod meta;
mod prompts;
mod schedule;
mod settings;
mod worker;

/// Name of the custom meta carrying all objects of a frame.
pub const META_NAME: &str = "GstTinySamMeta";

glib::wrapper! {
    pub struct TinySam(ObjectSubclass<imp::TinySam>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// How prompt coordinates relate to the frame.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstTinySamCoordinates")]
pub enum Coordinates {
    #[default]
    #[enum_value(name = "Frame pixels, (0,0) to (width,height)", nick = "pixels")]
    Pixels = 0,
    #[enum_value(name = "Fractions of the frame, (0,0) to (1,1)", nick = "normalized")]
    Normalized = 1,
}

/// Which of the decoder's output masks to keep.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstTinySamMaskSelection")]
pub enum MaskSelectionMode {
    #[default]
    #[enum_value(name = "The rule named in model.json", nick = "model")]
    Model = 0,
    #[enum_value(
        name = "TinySAM: best multimask output by predicted IoU",
        nick = "tinysam"
    )]
    TinySam = 1,
    #[enum_value(
        name = "SAM: best multimask output for a single point, output 0 otherwise",
        nick = "sam"
    )]
    Sam = 2,
}

/// What happens on frames without prompts.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstTinySamEverythingMode")]
pub enum EverythingMode {
    #[enum_value(name = "Pass frames through without inference", nick = "none")]
    None = 0,
    #[default]
    #[enum_value(
        name = "Segment everything with TinySAM's hierarchical grid",
        nick = "hierarchical"
    )]
    Hierarchical = 1,
    #[enum_value(name = "Segment everything with SAM's dense grid", nick = "dense")]
    Dense = 2,
}

/// Where ONNX Runtime runs the models.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstTinySamExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 0,
    #[enum_value(name = "NVIDIA CUDA", nick = "cuda")]
    Cuda = 1,
    #[enum_value(name = "NVIDIA TensorRT (CUDA for the rest)", nick = "tensorrt")]
    TensorRt = 2,
    #[enum_value(name = "Intel OpenVINO", nick = "openvino")]
    OpenVino = 3,
}

/// Where inference runs.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstTinySamProcessing")]
pub enum Processing {
    #[default]
    #[enum_value(name = "Async for live sources, sync otherwise", nick = "auto")]
    Auto = 0,
    #[enum_value(
        name = "On the streaming thread: each frame leaves with its own masks",
        nick = "sync"
    )]
    Sync = 1,
    #[enum_value(
        name = "On a worker thread: frames leave at once with the newest masks",
        nick = "async"
    )]
    Async = 2,
}

/// How `overlay=true` shows the objects.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstTinySamOverlayMode")]
pub enum OverlayMode {
    #[default]
    #[enum_value(
        name = "Each object in its colour (overlay-alpha), outlined (overlay-outline)",
        nick = "fill"
    )]
    Fill = 0,
    #[enum_value(
        name = "Cut-out: objects opaque, the rest transparent in the alpha channel (RGBA, BGRA, ARGB, ABGR)",
        nick = "alpha"
    )]
    Alpha = 1,
    #[enum_value(name = "Blur the objects (overlay-blur-radius)", nick = "blur")]
    Blur = 2,
    #[enum_value(name = "Pixelate the objects (overlay-pixel-size)", nick = "pixelate")]
    Pixelate = 3,
}

/// Where prompts come from besides the properties, events and clicks;
/// DL Streamer's `inference-region`.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstTinySamInferenceRegion")]
pub enum InferenceRegion {
    #[default]
    #[enum_value(
        name = "The whole frame: frames without prompts are segmented in everything mode",
        nick = "full-frame"
    )]
    FullFrame = 0,
    #[enum_value(
        name = "Each upstream region of interest (a detector's box) becomes a box prompt",
        nick = "roi-list"
    )]
    RoiList = 1,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // The property enums, so gst-inspect and documentation tools list them.
    for enum_type in [
        Coordinates::static_type(),
        MaskSelectionMode::static_type(),
        EverythingMode::static_type(),
        ExecutionProvider::static_type(),
        Processing::static_type(),
        InferenceRegion::static_type(),
        OverlayMode::static_type(),
    ] {
        enum_type.mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    if !gst::meta::CustomMeta::is_registered(META_NAME) {
        gst::meta::CustomMeta::register(META_NAME, &[]);
    }
    gst::Element::register(
        Some(plugin),
        "tinysam",
        gst::Rank::NONE,
        TinySam::static_type(),
    )
}
