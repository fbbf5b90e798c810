// SPDX-License-Identifier: Apache-2.0
//! The element's properties: their specs, the settings they hold, and what
//! the segmentation core makes of them.

use std::path::PathBuf;
use std::sync::Arc;

use gst::glib;
use gst::prelude::*;

use super::prompts::list as prompt_list;
use super::{
    Coordinates, EverythingMode, ExecutionProvider, InferenceRegion, MaskSelectionMode,
    OverlayMode, Processing,
};
use crate::segment::everything as defaults;
use crate::segment::limits::{MAX_POINTS_PER_SIDE, MAX_PROMPTS_PER_BATCH, MAX_THREADS};
use crate::segment::video::VideoOptions;
use crate::segment::{
    CoordMode, EverythingOptions, EverythingStrategy, MaskSelection, ModelSource, Prompt,
    SegmentOptions,
};

pub const DEFAULT_PROMPTS: &str = "";
pub const DEFAULT_COORDINATES: Coordinates = Coordinates::Pixels;
pub const DEFAULT_MASK_SELECTION: MaskSelectionMode = MaskSelectionMode::Model;
/// SAM's; a model directory's `model.json` may name another.
pub const DEFAULT_MASK_THRESHOLD: f64 = 0.0;
pub const DEFAULT_OVERLAY: bool = false;
pub const DEFAULT_OVERLAY_ALPHA: f64 = 0.5;
pub const DEFAULT_OVERLAY_OUTLINE: bool = true;
pub const DEFAULT_OVERLAY_MODE: OverlayMode = OverlayMode::Fill;
pub const DEFAULT_OVERLAY_BLUR_RADIUS: u32 = 16;
pub const DEFAULT_OVERLAY_PIXEL_SIZE: u32 = 16;
/// Larger blurs and blocks only cost more: a 256-pixel block is a blur.
pub const MAX_OVERLAY_EFFECT_SIZE: u32 = 256;
pub const DEFAULT_N_THREADS: u32 = 0;
pub const DEFAULT_EXECUTION_PROVIDER: ExecutionProvider = ExecutionProvider::Cpu;
/// One copy of a model and its threads for all the instances of a process.
pub const DEFAULT_SHARE_SESSIONS: bool = true;
pub const DEFAULT_EVERYTHING_MODE: EverythingMode = EverythingMode::Hierarchical;
pub const DEFAULT_PROCESSING: Processing = Processing::Auto;
/// DL Streamer's: every frame.
pub const DEFAULT_INFERENCE_INTERVAL: u32 = 1;
pub const DEFAULT_TRACKING: bool = true;
pub const DEFAULT_EVERYTHING_INTERVAL: u32 = 10;
pub const DEFAULT_INFERENCE_REGION: InferenceRegion = InferenceRegion::FullFrame;
/// Clicks cost nothing until someone clicks.
pub const DEFAULT_NAVIGATION_PROMPTS: bool = true;
/// Logit thresholds beyond this make every mask empty or full.
pub const MAX_MASK_THRESHOLD: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct Settings {
    pub model: Option<PathBuf>,
    pub encoder_model: Option<PathBuf>,
    pub decoder_model: Option<PathBuf>,
    /// The prompts as set through `prompts`, or their text form when set
    /// through `prompt-list`.
    pub prompts_text: Arc<str>,
    /// The current prompts; shared so copying the settings per buffer is cheap.
    pub prompts: Arc<Vec<Prompt>>,
    pub coordinates: Coordinates,
    pub mask_selection: MaskSelectionMode,
    /// Set through the property; `None` uses the model's.
    pub mask_threshold: Option<f64>,
    pub overlay: bool,
    pub overlay_alpha: f64,
    pub overlay_outline: bool,
    pub overlay_mode: OverlayMode,
    pub overlay_invert: bool,
    /// Object ids and ROI labels drawn (`overlay-objects`); empty: all.
    pub overlay_objects: Arc<[String]>,
    pub overlay_blur_radius: u32,
    pub overlay_pixel_size: u32,
    pub n_threads: u32,
    pub execution_provider: ExecutionProvider,
    pub share_sessions: bool,
    pub everything_mode: EverythingMode,
    /// Everything-mode options; `strategy` and `mask_threshold` follow
    /// `everything_mode` and `mask_threshold`.
    pub everything: EverythingOptions,
    pub processing: Processing,
    pub inference_interval: u32,
    pub tracking: bool,
    pub everything_interval: u32,
    pub inference_region: InferenceRegion,
    /// ROI types prompted in `roi-list` mode; empty: all.
    pub object_class: Arc<[String]>,
    pub navigation_prompts: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            encoder_model: None,
            decoder_model: None,
            prompts_text: Arc::from(DEFAULT_PROMPTS),
            prompts: Arc::new(Vec::new()),
            coordinates: DEFAULT_COORDINATES,
            mask_selection: DEFAULT_MASK_SELECTION,
            mask_threshold: None,
            overlay: DEFAULT_OVERLAY,
            overlay_alpha: DEFAULT_OVERLAY_ALPHA,
            overlay_outline: DEFAULT_OVERLAY_OUTLINE,
            overlay_mode: DEFAULT_OVERLAY_MODE,
            overlay_invert: false,
            overlay_objects: Arc::from([]),
            overlay_blur_radius: DEFAULT_OVERLAY_BLUR_RADIUS,
            overlay_pixel_size: DEFAULT_OVERLAY_PIXEL_SIZE,
            n_threads: DEFAULT_N_THREADS,
            execution_provider: DEFAULT_EXECUTION_PROVIDER,
            share_sessions: DEFAULT_SHARE_SESSIONS,
            everything_mode: DEFAULT_EVERYTHING_MODE,
            everything: EverythingOptions::default(),
            processing: DEFAULT_PROCESSING,
            inference_interval: DEFAULT_INFERENCE_INTERVAL,
            tracking: DEFAULT_TRACKING,
            everything_interval: DEFAULT_EVERYTHING_INTERVAL,
            inference_region: DEFAULT_INFERENCE_REGION,
            object_class: Arc::from([]),
            navigation_prompts: DEFAULT_NAVIGATION_PROMPTS,
        }
    }
}

impl Settings {
    /// The model files to load, or what to set when there are none.
    pub fn model_source(&self) -> Result<ModelSource, String> {
        match (&self.model, &self.encoder_model, &self.decoder_model) {
            (Some(dir), enc, dec) => {
                let mut source = ModelSource::directory(dir);
                if let Some(enc) = enc {
                    source = source.with_encoder(enc);
                }
                if let Some(dec) = dec {
                    source = source.with_decoder(dec);
                }
                Ok(source)
            }
            (None, Some(enc), Some(dec)) => Ok(ModelSource::files(enc, dec)),
            (None, Some(_), None) => Err(
                "No decoder model: set the `decoder-model` property (or `model` to a model directory)"
                    .to_owned(),
            ),
            (None, None, Some(_)) => Err(
                "No encoder model: set the `encoder-model` property (or `model` to a model directory)"
                    .to_owned(),
            ),
            (None, None, None) => Err(
                "No model configured: set the `model` property to a model directory \
                 (holding model.json, encoder.onnx and decoder.onnx), or both \
                 `encoder-model` and `decoder-model`"
                    .to_owned(),
            ),
        }
    }

    pub fn segment_options(&self) -> SegmentOptions {
        SegmentOptions {
            coord_mode: match self.coordinates {
                Coordinates::Pixels => CoordMode::Pixels,
                Coordinates::Normalized => CoordMode::Normalized,
            },
            selection: match self.mask_selection {
                MaskSelectionMode::Model => None,
                MaskSelectionMode::TinySam => Some(MaskSelection::TinySam),
                MaskSelectionMode::Sam => Some(MaskSelection::Sam),
            },
            threshold: self.mask_threshold.map(|t| t as f32),
            ..SegmentOptions::default()
        }
    }

    /// The everything-mode options, or `None` when unprompted frames pass
    /// through (or, with `roi-list`, carry no objects).
    pub fn everything_options(&self) -> Option<EverythingOptions> {
        if self.inference_region == InferenceRegion::RoiList {
            return None;
        }
        let strategy = match self.everything_mode {
            EverythingMode::None => return None,
            EverythingMode::Hierarchical => EverythingStrategy::Hierarchical,
            EverythingMode::Dense => EverythingStrategy::Dense,
        };
        Some(EverythingOptions {
            strategy,
            mask_threshold: self.mask_threshold.map(|t| t as f32),
            ..self.everything
        })
    }

    /// What the video layer needs for one inferred frame.
    pub fn video_options(&self) -> VideoOptions {
        VideoOptions {
            segment: self.segment_options(),
            everything: self.everything_options(),
            tracking: self.tracking,
            everything_interval: self.everything_interval.max(1) as usize,
        }
    }

    /// Whether frames pass through untouched when no object is prompted:
    /// no everything mode and no upstream regions to prompt.
    pub fn idle_without_prompts(&self) -> bool {
        self.everything_mode == EverythingMode::None
            && self.inference_region == InferenceRegion::FullFrame
    }

    /// Whether an ROI of this type is prompted (`object-class`).
    pub fn wants_class(&self, label: &str) -> bool {
        self.object_class.is_empty() || self.object_class.iter().any(|c| c == label)
    }
}

/// The items of a comma-separated string property, trimmed, without empty
/// ones.
fn comma_list(value: &glib::Value) -> Arc<[String]> {
    let text = value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .unwrap_or_default();
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The text form of prompts, as the `prompts` property reads back.
pub fn prompts_text(prompts: &[Prompt]) -> String {
    prompts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The element's property specs.
pub fn param_specs() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("model")
            .nick("Model directory")
            .blurb("Directory holding model.json, encoder.onnx and decoder.onnx")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("encoder-model")
            .nick("Encoder model")
            .blurb("Image encoder ONNX file (overrides the one in `model`)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("decoder-model")
            .nick("Decoder model")
            .blurb("Prompt/mask decoder ONNX file (overrides the one in `model`)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("prompts")
            .nick("Prompts")
            .blurb(
                "Objects to segment, `;`-separated, each of `box=x0,y0,x1,y1`, \
                 `point=x,y` (positive) and `neg=x,y` (negative); \
                 applies from the next frame",
            )
            .default_value(Some(DEFAULT_PROMPTS))
            .mutable_playing()
            .build(),
        gst::ParamSpecArray::builder("prompt-list")
            .nick("Prompt list")
            .blurb(
                "The prompts as structured values for applications (replaces `prompts`): \
                 an array of `tinysam/prompt` structures, one per object, with any of \
                 box=<x0,y0,x1,y1>, points=<x,y,...> (positive) and \
                 negatives=<x,y,...>; applies from the next frame",
            )
            .element_spec(
                &glib::ParamSpecBoxed::builder::<gst::Structure>("prompt").build(),
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default("coordinates", DEFAULT_COORDINATES)
            .nick("Coordinates")
            .blurb("How prompt coordinates relate to the frame")
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default("mask-selection", DEFAULT_MASK_SELECTION)
            .nick("Mask selection")
            .blurb("Which of the decoder's output masks to keep")
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("mask-threshold")
            .nick("Mask threshold")
            .blurb("Threshold on the mask logits (SAM: 0.0); until set, the model's (model.json `mask_threshold`)")
            .minimum(-MAX_MASK_THRESHOLD)
            .maximum(MAX_MASK_THRESHOLD)
            .default_value(DEFAULT_MASK_THRESHOLD)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("overlay")
            .nick("Overlay")
            .blurb("Draw the masks into the frames")
            .default_value(DEFAULT_OVERLAY)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("overlay-alpha")
            .nick("Overlay alpha")
            .blurb("Opacity of the mask fill")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(DEFAULT_OVERLAY_ALPHA)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("overlay-outline")
            .nick("Overlay outline")
            .blurb("Draw the mask boundaries opaque")
            .default_value(DEFAULT_OVERLAY_OUTLINE)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default("overlay-mode", DEFAULT_OVERLAY_MODE)
            .nick("Overlay mode")
            .blurb(
                "How overlay=true shows the objects: fill (colours), alpha (a cut-out in the \
                 alpha channel, for compositor), blur or pixelate (privacy)",
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("overlay-invert")
            .nick("Overlay invert")
            .blurb("Apply the overlay to everything but the objects (alpha: objects transparent)")
            .default_value(false)
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("overlay-objects")
            .nick("Overlay objects")
            .blurb("Draw only these comma-separated object ids and ROI labels (e.g. 0,3,face); empty = all")
            .default_value(Some(""))
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("overlay-blur-radius")
            .nick("Overlay blur radius")
            .blurb("overlay-mode=blur: box blur radius in pixels (applied twice)")
            .minimum(1)
            .maximum(MAX_OVERLAY_EFFECT_SIZE)
            .default_value(DEFAULT_OVERLAY_BLUR_RADIUS)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("overlay-pixel-size")
            .nick("Overlay pixel size")
            .blurb("overlay-mode=pixelate: block size in pixels")
            .minimum(1)
            .maximum(MAX_OVERLAY_EFFECT_SIZE)
            .default_value(DEFAULT_OVERLAY_PIXEL_SIZE)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default("everything-mode", DEFAULT_EVERYTHING_MODE)
            .nick("Everything mode")
            .blurb("What to do with frames without prompts: nothing, or segment everything")
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("points-per-side")
            .nick("Points per side")
            .blurb("Everything mode: dense grid points per side (the hierarchical sparse grid has a quarter)")
            .minimum(1)
            .maximum(MAX_POINTS_PER_SIDE as u32)
            .default_value(defaults::DEFAULT_POINTS_PER_SIDE as u32)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("pred-iou-thresh")
            .nick("Predicted IoU threshold")
            .blurb("Everything mode: keep masks whose predicted IoU is above this")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(f64::from(defaults::DEFAULT_PRED_IOU_THRESH))
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("stability-score-thresh")
            .nick("Stability score threshold")
            .blurb("Everything mode: keep masks whose stability score is at least this")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(f64::from(defaults::DEFAULT_STABILITY_SCORE_THRESH))
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("stability-score-offset")
            .nick("Stability score offset")
            .blurb("Everything mode: logit offset of the stability score")
            .minimum(0.0)
            .maximum(MAX_MASK_THRESHOLD)
            .default_value(f64::from(defaults::DEFAULT_STABILITY_SCORE_OFFSET))
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("high-score-thresh")
            .nick("High score threshold")
            .blurb("Hierarchical everything: logit above which a pixel counts as explained by the sparse round")
            .minimum(-MAX_MASK_THRESHOLD)
            .maximum(MAX_MASK_THRESHOLD)
            .default_value(f64::from(defaults::DEFAULT_HIGH_SCORE_THRESH))
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("box-nms-thresh")
            .nick("Box NMS threshold")
            .blurb("Everything mode: drop a mask whose box overlaps a better one's by more than this IoU")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(f64::from(defaults::DEFAULT_BOX_NMS_THRESH))
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt64::builder("min-mask-region-area")
            .nick("Minimum mask region area")
            .blurb("Everything mode: fill holes and remove islands smaller than this many pixels (0 = off)")
            .default_value(0)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("prompts-per-batch")
            .nick("Prompts per batch")
            .blurb("Everything mode: most grid points per decoder call (batch-1 decoders take one)")
            .minimum(1)
            .maximum(MAX_PROMPTS_PER_BATCH as u32)
            .default_value(defaults::DEFAULT_PROMPTS_PER_BATCH as u32)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default("processing", DEFAULT_PROCESSING)
            .nick("Processing")
            .blurb(
                "Where inference runs: on the streaming thread (sync: each frame leaves with its \
                 own masks), on a worker (async: frames leave at once with the newest masks), \
                 or auto (async for live sources)",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("inference-interval")
            .nick("Inference interval")
            .blurb("Run inference on every Nth frame (1 = every frame); the frames between carry the last masks")
            .minimum(1)
            .default_value(DEFAULT_INFERENCE_INTERVAL)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("tracking")
            .nick("Tracking")
            .blurb("Follow prompted objects: re-prompt each one from its previous mask")
            .default_value(DEFAULT_TRACKING)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("everything-interval")
            .nick("Everything interval")
            .blurb("Everything mode on video: run the full grid every N inferences and track the known objects in between (1 = grid every time)")
            .minimum(1)
            .maximum(10_000)
            .default_value(DEFAULT_EVERYTHING_INTERVAL)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default("inference-region", DEFAULT_INFERENCE_REGION)
            .nick("Inference region")
            .blurb(
                "full-frame: prompts from properties, events and clicks, everything mode on \
                 frames without; roi-list: also every upstream region of interest (a detector's \
                 box) as a box prompt, no everything mode",
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("object-class")
            .nick("Object class")
            .blurb("roi-list: prompt only regions of these comma-separated types (e.g. face,person); empty = all")
            .default_value(Some(""))
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("navigation-prompts")
            .nick("Navigation prompts")
            .blurb(
                "Clicks in the video window are prompts: left click adds an object, \
                 Shift+left click a negative point to the nearest one, right click removes \
                 the one under the pointer, Escape clears all",
            )
            .default_value(DEFAULT_NAVIGATION_PROMPTS)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("n-threads")
            .nick("Threads")
            .blurb("Intra-op threads per ONNX Runtime session (0 = ONNX Runtime's default, one per core)")
            .maximum(MAX_THREADS as u32)
            .default_value(DEFAULT_N_THREADS)
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default(
            "execution-provider",
            DEFAULT_EXECUTION_PROVIDER,
        )
        .nick("Execution provider")
        .blurb("Where ONNX Runtime runs the models; falls back to the CPU with a warning")
        .mutable_ready()
        .build(),
        glib::ParamSpecBoolean::builder("share-sessions")
            .nick("Share sessions")
            .blurb(
                "Run on the ONNX Runtime sessions (one copy of the model, one thread pool) of \
                 every other tinysam in the process with the same model files, n-threads and \
                 execution-provider, taking turns; false loads a copy of its own that runs in \
                 parallel",
            )
            .default_value(DEFAULT_SHARE_SESSIONS)
            .mutable_ready()
            .build(),
    ]
}

impl Settings {
    /// The value of property `name`; `model_mask_threshold` is the loaded
    /// model's, which `mask-threshold` reads back until set.
    pub fn property(
        &self,
        pspec: &glib::ParamSpec,
        model_mask_threshold: Option<f64>,
    ) -> glib::Value {
        let settings = self;
        let name = pspec.name();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match name {
            "model" => path(&settings.model).to_value(),
            "encoder-model" => path(&settings.encoder_model).to_value(),
            "decoder-model" => path(&settings.decoder_model).to_value(),
            "prompts" => settings.prompts_text.as_ref().to_value(),
            "prompt-list" => prompt_list::prompts_to_array(&settings.prompts).to_value(),
            "coordinates" => settings.coordinates.to_value(),
            "mask-selection" => settings.mask_selection.to_value(),
            "mask-threshold" => settings
                .mask_threshold
                .or(model_mask_threshold)
                .unwrap_or(DEFAULT_MASK_THRESHOLD)
                .to_value(),
            "overlay" => settings.overlay.to_value(),
            "overlay-alpha" => settings.overlay_alpha.to_value(),
            "overlay-outline" => settings.overlay_outline.to_value(),
            "overlay-mode" => settings.overlay_mode.to_value(),
            "overlay-invert" => settings.overlay_invert.to_value(),
            "overlay-objects" => settings.overlay_objects.join(",").to_value(),
            "overlay-blur-radius" => settings.overlay_blur_radius.to_value(),
            "overlay-pixel-size" => settings.overlay_pixel_size.to_value(),
            "n-threads" => settings.n_threads.to_value(),
            "everything-mode" => settings.everything_mode.to_value(),
            "points-per-side" => (settings.everything.points_per_side as u32).to_value(),
            "pred-iou-thresh" => f64::from(settings.everything.pred_iou_thresh).to_value(),
            "stability-score-thresh" => {
                f64::from(settings.everything.stability_score_thresh).to_value()
            }
            "stability-score-offset" => {
                f64::from(settings.everything.stability_score_offset).to_value()
            }
            "high-score-thresh" => f64::from(settings.everything.high_score_thresh).to_value(),
            "box-nms-thresh" => f64::from(settings.everything.box_nms_thresh).to_value(),
            "min-mask-region-area" => settings.everything.min_mask_region_area.to_value(),
            "prompts-per-batch" => (settings.everything.prompts_per_batch as u32).to_value(),
            "execution-provider" => settings.execution_provider.to_value(),
            "share-sessions" => settings.share_sessions.to_value(),
            "processing" => settings.processing.to_value(),
            "inference-interval" => settings.inference_interval.to_value(),
            "tracking" => settings.tracking.to_value(),
            "everything-interval" => settings.everything_interval.to_value(),
            "inference-region" => settings.inference_region.to_value(),
            "object-class" => settings.object_class.join(",").to_value(),
            "navigation-prompts" => settings.navigation_prompts.to_value(),
            // Only the properties above are installed.
            _ => pspec.default_value().clone(),
        }
    }
}

impl Settings {
    /// Sets a property that only needs storing; false for the others.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "coordinates" => {
                if let Ok(v) = value.get() {
                    self.coordinates = v;
                }
            }
            "mask-selection" => {
                if let Ok(v) = value.get() {
                    self.mask_selection = v;
                }
            }
            "mask-threshold" => {
                if let Ok(v) = value.get() {
                    self.mask_threshold = Some(v);
                }
            }
            "overlay" => {
                if let Ok(v) = value.get() {
                    self.overlay = v;
                }
            }
            "overlay-alpha" => {
                if let Ok(v) = value.get() {
                    self.overlay_alpha = v;
                }
            }
            "overlay-outline" => {
                if let Ok(v) = value.get() {
                    self.overlay_outline = v;
                }
            }
            "n-threads" => {
                if let Ok(v) = value.get() {
                    self.n_threads = v;
                }
            }
            "everything-mode" => {
                if let Ok(v) = value.get() {
                    self.everything_mode = v;
                }
            }
            "points-per-side" => {
                if let Ok(v) = value.get::<u32>() {
                    self.everything.points_per_side = v as usize;
                }
            }
            "pred-iou-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.everything.pred_iou_thresh = v as f32;
                }
            }
            "stability-score-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.everything.stability_score_thresh = v as f32;
                }
            }
            "stability-score-offset" => {
                if let Ok(v) = value.get::<f64>() {
                    self.everything.stability_score_offset = v as f32;
                }
            }
            "high-score-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.everything.high_score_thresh = v as f32;
                }
            }
            "box-nms-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.everything.box_nms_thresh = v as f32;
                }
            }
            "min-mask-region-area" => {
                if let Ok(v) = value.get() {
                    self.everything.min_mask_region_area = v;
                }
            }
            "prompts-per-batch" => {
                if let Ok(v) = value.get::<u32>() {
                    self.everything.prompts_per_batch = v as usize;
                }
            }
            "execution-provider" => {
                if let Ok(v) = value.get() {
                    self.execution_provider = v;
                }
            }
            "share-sessions" => {
                if let Ok(v) = value.get() {
                    self.share_sessions = v;
                }
            }
            "processing" => {
                if let Ok(v) = value.get() {
                    self.processing = v;
                }
            }
            "inference-interval" => {
                if let Ok(v) = value.get() {
                    self.inference_interval = v;
                }
            }
            "tracking" => {
                if let Ok(v) = value.get() {
                    self.tracking = v;
                }
            }
            "everything-interval" => {
                if let Ok(v) = value.get() {
                    self.everything_interval = v;
                }
            }
            "inference-region" => {
                if let Ok(v) = value.get() {
                    self.inference_region = v;
                }
            }
            "object-class" => self.object_class = comma_list(value),
            "overlay-objects" => self.overlay_objects = comma_list(value),
            "overlay-mode" => {
                if let Ok(v) = value.get() {
                    self.overlay_mode = v;
                }
            }
            "overlay-invert" => {
                if let Ok(v) = value.get() {
                    self.overlay_invert = v;
                }
            }
            "overlay-blur-radius" => {
                if let Ok(v) = value.get() {
                    self.overlay_blur_radius = v;
                }
            }
            "overlay-pixel-size" => {
                if let Ok(v) = value.get() {
                    self.overlay_pixel_size = v;
                }
            }
            "navigation-prompts" => {
                if let Ok(v) = value.get() {
                    self.navigation_prompts = v;
                }
            }
            _ => return false,
        }
        true
    }
}
