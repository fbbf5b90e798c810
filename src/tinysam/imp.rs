// SPDX-License-Identifier: Apache-2.0
//! `tinysam`: segments prompted objects in raw video with TinySAM on ONNX
//! Runtime.
//!
//! ```text
//! gst-launch-1.0 videotestsrc num-buffers=30 ! video/x-raw,format=RGBA \
//!     ! tinysam model=models/tinysam prompts="box=40,60,200,220; point=250,120" overlay=true \
//!     ! videoconvert ! autovideosink
//! ```
//!
//! The model is loaded when the element starts (READY -> PAUSED); a missing
//! or mismatched model makes that state change fail with a message naming the
//! file. Every frame with prompts is embedded and decoded; frames without
//! prompts are segmented in everything mode (TinySAM's hierarchical grid by
//! default, SAM's dense grid, or not at all: `everything-mode`). The objects
//! are attached as a `GstTinySamMeta` custom meta and as one
//! `GstVideoRegionOfInterestMeta` each (see docs/element.md).

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use gst_video::prelude::*;

use super::errors::{FrameFailure, load_error};
use super::latency::LatencyEstimate;
use super::meta::attach_meta;
use super::prompt_list;
use super::{Coordinates, EverythingMode, ExecutionProvider, MaskSelectionMode};
use crate::segment::everything as defaults;
use crate::segment::limits::{self, MAX_POINTS_PER_SIDE, MAX_PROMPTS_PER_BATCH, MAX_THREADS};
use crate::segment::onnx::cancel::Canceller;
use crate::segment::{
    self, CoordMode, EngineOptions, EverythingOptions, EverythingStrategy, ExecutionProviderKind,
    FrameView, FrameViewMut, MaskSelection, ModelSource, OverlayStyle, PixelFormat, Prompt,
    SegmentOptions, SegmentedObject, Segmenter, YuvColorimetry, YuvMatrix, YuvRange,
};

const DEFAULT_PROMPTS: &str = "";
const DEFAULT_COORDINATES: Coordinates = Coordinates::Pixels;
const DEFAULT_MASK_SELECTION: MaskSelectionMode = MaskSelectionMode::Model;
/// SAM's; a model directory's `model.json` may name another.
const DEFAULT_MASK_THRESHOLD: f64 = 0.0;
const DEFAULT_OVERLAY: bool = false;
const DEFAULT_OVERLAY_ALPHA: f64 = 0.5;
const DEFAULT_OVERLAY_OUTLINE: bool = true;
const DEFAULT_N_THREADS: u32 = 0;
const DEFAULT_EXECUTION_PROVIDER: ExecutionProvider = ExecutionProvider::Cpu;
const DEFAULT_EVERYTHING_MODE: EverythingMode = EverythingMode::Hierarchical;
/// Logit thresholds beyond this make every mask empty or full.
const MAX_MASK_THRESHOLD: f64 = 100.0;

/// Raw formats accepted; the element does not convert, so these pass through.
const FORMATS: [VideoFormat; 8] = [
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "tinysam",
        gst::DebugColorFlags::empty(),
        Some("TinySAM segmentation"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    encoder_model: Option<PathBuf>,
    decoder_model: Option<PathBuf>,
    /// The prompts as set through `prompts`, or their text form when set
    /// through `prompt-list`.
    prompts_text: String,
    /// The current prompts; shared so copying the settings per buffer is cheap.
    prompts: Arc<Vec<Prompt>>,
    coordinates: Coordinates,
    mask_selection: MaskSelectionMode,
    /// Set through the property; `None` uses the model's.
    mask_threshold: Option<f64>,
    overlay: bool,
    overlay_alpha: f64,
    overlay_outline: bool,
    n_threads: u32,
    execution_provider: ExecutionProvider,
    everything_mode: EverythingMode,
    /// Everything-mode options; `strategy` and `mask_threshold` follow
    /// `everything_mode` and `mask_threshold`.
    everything: EverythingOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            encoder_model: None,
            decoder_model: None,
            prompts_text: DEFAULT_PROMPTS.to_owned(),
            prompts: Arc::new(Vec::new()),
            coordinates: DEFAULT_COORDINATES,
            mask_selection: DEFAULT_MASK_SELECTION,
            mask_threshold: None,
            overlay: DEFAULT_OVERLAY,
            overlay_alpha: DEFAULT_OVERLAY_ALPHA,
            overlay_outline: DEFAULT_OVERLAY_OUTLINE,
            n_threads: DEFAULT_N_THREADS,
            execution_provider: DEFAULT_EXECUTION_PROVIDER,
            everything_mode: DEFAULT_EVERYTHING_MODE,
            everything: EverythingOptions::default(),
        }
    }
}

impl Settings {
    /// The model files to load, or what to set when there are none.
    fn model_source(&self) -> Result<ModelSource, String> {
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

    fn segment_options(&self) -> SegmentOptions {
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

    /// The everything-mode options, or `None` when unprompted frames pass through.
    fn everything_options(&self) -> Option<EverythingOptions> {
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

    /// Whether frames pass through untouched: nothing to segment.
    fn idle(&self) -> bool {
        self.prompts.is_empty() && self.everything_mode == EverythingMode::None
    }
}

/// What exists between `start()` and `stop()`.
#[derive(Debug)]
struct State {
    segmenter: Segmenter,
    info: Option<gst_video::VideoInfo>,
}

#[derive(Default)]
pub struct TinySam {
    settings: Mutex<Settings>,
    /// Held by the streaming thread for a whole frame.
    state: Mutex<Option<State>>,
    /// Stops the frame in progress; outside `state`, so flushes and state
    /// changes reach it while a frame holds `state`.
    canceller: Mutex<Option<Canceller>>,
    /// The latency this element adds; answers the LATENCY query.
    latency: Mutex<LatencyEstimate>,
    /// `model.json`'s mask threshold, for reading the property back.
    model_mask_threshold: Mutex<Option<f64>>,
}

fn pixel_format(format: VideoFormat) -> Option<PixelFormat> {
    Some(match format {
        VideoFormat::Rgba => PixelFormat::Rgba,
        VideoFormat::Bgra => PixelFormat::Bgra,
        VideoFormat::Rgbx => PixelFormat::Rgbx,
        VideoFormat::Bgrx => PixelFormat::Bgrx,
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::I420 => PixelFormat::I420,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        _ => return None,
    })
}

/// The YUV matrix and range from the caps; BT.601 for anything but BT.709.
fn colorimetry(info: &gst_video::VideoInfo) -> YuvColorimetry {
    let c = info.colorimetry();
    YuvColorimetry {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
            _ => YuvMatrix::Bt601,
        },
        range: match c.range() {
            gst_video::VideoColorRange::Range0_255 => YuvRange::Full,
            _ => YuvRange::Limited,
        },
    }
}

/// The text form of prompts, as the `prompts` property reads back.
fn prompts_text(prompts: &[Prompt]) -> String {
    prompts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl TinySam {
    /// Locks the state; a poisoned lock (a panic elsewhere) still yields the data.
    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> Settings {
        self.lock_settings().clone()
    }

    /// Replaces the prompts, or keeps the previous ones and warns on the bus
    /// when the new ones do not parse.
    fn set_prompts(&self, prompts: Result<Vec<Prompt>, String>, text: String) {
        match prompts {
            Ok(prompts) => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "Prompts `{text}`: {} objects",
                    prompts.len()
                );
                let mut settings = self.lock_settings();
                settings.prompts_text = text;
                settings.prompts = Arc::new(prompts);
            }
            Err(err) => {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("Invalid prompts: {}; keeping the previous prompts", err),
                    ["prompts were `{}`", limits::quote(&text)]
                );
            }
        }
        self.update_passthrough();
    }

    /// Frames pass through untouched (no writable copy) when there is
    /// nothing to segment.
    fn update_passthrough(&self) {
        let idle = self.lock_settings().idle();
        self.obj().set_passthrough(idle);
    }

    fn canceller(&self) -> Option<Canceller> {
        self.canceller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the frame in progress and every later one until [`Self::resume`].
    fn cancel(&self) {
        if let Some(canceller) = self.canceller() {
            gst::debug!(CAT, imp = self, "Cancelling inference");
            canceller.cancel();
        }
    }

    fn resume(&self) {
        if let Some(canceller) = self.canceller() {
            canceller.reset();
        }
    }

    /// Records how long a frame took; when the reported latency changes,
    /// asks the pipeline to recompute its latency.
    fn note_processing_time(&self, elapsed: std::time::Duration) {
        let changed = self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(elapsed);
        if let Some(latency) = changed {
            gst::info!(
                CAT,
                imp = self,
                "Frame took {elapsed:?}, reporting a latency of {latency:?}"
            );
            let obj = self.obj();
            let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
        }
    }

    /// Whether the model is loaded, so model properties can no longer change.
    fn started(&self) -> bool {
        self.obj().current_state() > gst::State::Ready
    }

    /// Embeds the frame, segments the prompts and draws the overlay.
    fn process(
        &self,
        state: &mut State,
        buf: &mut gst::BufferRef,
        settings: &Settings,
    ) -> Result<Vec<SegmentedObject>, FrameFailure> {
        let info = state.info.clone().ok_or_else(|| {
            FrameFailure::NotNegotiated("Received a buffer before caps were negotiated".to_owned())
        })?;
        let format = pixel_format(info.format()).ok_or_else(|| {
            FrameFailure::NotNegotiated(format!("Unsupported format {:?}", info.format()))
        })?;
        let yuv = colorimetry(&info);
        let (width, height) = (info.width(), info.height());
        let segmentation = {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&*buf, &info)
                .map_err(|e| FrameFailure::Buffer(format!("Cannot map the frame: {e}")))?;
            let n = frame.n_planes() as usize;
            let mut planes = Vec::with_capacity(n);
            for i in 0..n {
                planes.push(
                    frame
                        .plane_data(i as u32)
                        .map_err(|e| FrameFailure::Buffer(format!("Cannot map plane {i}: {e}")))?,
                );
            }
            let strides: Vec<usize> = frame.plane_stride()[..n]
                .iter()
                .map(|&s| s.max(0) as usize)
                .collect();
            let view = FrameView::new(format, width, height, &planes, &strides)
                .map_err(segment::Error::from)?
                .with_colorimetry(yuv);
            let embedding = state.segmenter.embed(&view)?;
            match settings.everything_options() {
                Some(options) if settings.prompts.is_empty() => {
                    state.segmenter.segment_everything(&embedding, &options)?
                }
                _ => state.segmenter.segment(
                    &embedding,
                    &settings.prompts,
                    &settings.segment_options(),
                )?,
            }
        };
        for warning in &segmentation.warnings {
            gst::debug!(CAT, imp = self, "{warning}");
        }
        let t = state.segmenter.timings();
        gst::trace!(
            CAT,
            imp = self,
            "encoder {:?}, decoder {:?} ({} calls), post-processing {:?}",
            t.encoder,
            t.decoder,
            t.decoder_calls,
            t.postprocess
        );

        if settings.overlay && !segmentation.objects.is_empty() {
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                .map_err(|e| FrameFailure::Buffer(format!("Cannot map the frame writable: {e}")))?;
            let n = frame.n_planes() as usize;
            let strides: Vec<usize> = frame.plane_stride()[..n]
                .iter()
                .map(|&s| s.max(0) as usize)
                .collect();
            let planes: Vec<&mut [u8]> = frame.planes_data_mut().into_iter().take(n).collect();
            let mut view = FrameViewMut::new(format, width, height, planes, &strides)
                .map_err(segment::Error::from)?
                .with_colorimetry(yuv);
            segment::draw_objects(
                &mut view,
                &segmentation.objects,
                &OverlayStyle {
                    alpha: settings.overlay_alpha as f32,
                    outline: settings.overlay_outline,
                },
            );
        }
        attach_meta(buf, width, height, &segmentation.objects)?;
        Ok(segmentation.objects)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for TinySam {
    const NAME: &'static str = "GstTinySam";
    type Type = super::TinySam;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for TinySam {
    fn constructed(&self) {
        self.parent_constructed();
        // Frames that are already late downstream are dropped before inference.
        self.obj().set_qos(true);
        // Nothing to segment until prompts or everything mode are set.
        self.update_passthrough();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
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
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        let model_property = matches!(
            name,
            "model" | "encoder-model" | "decoder-model" | "n-threads" | "execution-provider"
        );
        if model_property && self.started() {
            gst::warning!(
                CAT,
                imp = self,
                "`{name}` can only change in the NULL or READY state; ignored"
            );
            return;
        }
        let path = |value: &glib::Value| {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        match name {
            "model" => self.lock_settings().model = path(value),
            "encoder-model" => self.lock_settings().encoder_model = path(value),
            "decoder-model" => self.lock_settings().decoder_model = path(value),
            "prompts" => {
                let text = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let prompts = segment::parse_prompts(&text).map_err(|e| e.to_string());
                self.set_prompts(prompts, text);
            }
            "prompt-list" => match value.get::<gst::Array>() {
                Ok(array) => {
                    let prompts = prompt_list::prompts_from_array(&array);
                    let text = match &prompts {
                        Ok(prompts) => prompts_text(prompts),
                        Err(_) => array
                            .to_value()
                            .serialize()
                            .map(String::from)
                            .unwrap_or_default(),
                    };
                    self.set_prompts(prompts, text);
                }
                Err(err) => gst::warning!(CAT, imp = self, "Invalid prompt-list value: {err}"),
            },
            "coordinates" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().coordinates = v;
                }
            }
            "mask-selection" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().mask_selection = v;
                }
            }
            "mask-threshold" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().mask_threshold = Some(v);
                }
            }
            "overlay" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().overlay = v;
                }
            }
            "overlay-alpha" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().overlay_alpha = v;
                }
            }
            "overlay-outline" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().overlay_outline = v;
                }
            }
            "n-threads" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().n_threads = v;
                }
            }
            "everything-mode" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().everything_mode = v;
                }
                self.update_passthrough();
            }
            "points-per-side" => {
                if let Ok(v) = value.get::<u32>() {
                    self.lock_settings().everything.points_per_side = v as usize;
                }
            }
            "pred-iou-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.lock_settings().everything.pred_iou_thresh = v as f32;
                }
            }
            "stability-score-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.lock_settings().everything.stability_score_thresh = v as f32;
                }
            }
            "stability-score-offset" => {
                if let Ok(v) = value.get::<f64>() {
                    self.lock_settings().everything.stability_score_offset = v as f32;
                }
            }
            "high-score-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.lock_settings().everything.high_score_thresh = v as f32;
                }
            }
            "box-nms-thresh" => {
                if let Ok(v) = value.get::<f64>() {
                    self.lock_settings().everything.box_nms_thresh = v as f32;
                }
            }
            "min-mask-region-area" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().everything.min_mask_region_area = v;
                }
            }
            "prompts-per-batch" => {
                if let Ok(v) = value.get::<u32>() {
                    self.lock_settings().everything.prompts_per_batch = v as usize;
                }
            }
            "execution-provider" => {
                if let Ok(v) = value.get() {
                    self.lock_settings().execution_provider = v;
                }
            }
            other => gst::warning!(CAT, imp = self, "Unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let model_mask_threshold = *self
            .model_mask_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let settings = self.lock_settings();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match pspec.name() {
            "model" => path(&settings.model).to_value(),
            "encoder-model" => path(&settings.encoder_model).to_value(),
            "decoder-model" => path(&settings.decoder_model).to_value(),
            "prompts" => settings.prompts_text.to_value(),
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
            // Only the properties above are installed.
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for TinySam {}

impl ElementImpl for TinySam {
    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        // Deactivating the pads waits for the streaming thread: stop its
        // inference first, so the state change does not wait for a frame.
        if transition == gst::StateChange::PausedToReady {
            self.cancel();
        }
        self.parent_change_state(transition)
    }

    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "TinySAM segmentation",
                "Filter/Analyzer/Video",
                "Segments objects in video with TinySAM (Segment Anything) on ONNX Runtime",
                "gst-tinysam contributors",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .filter_map(|direction| {
                    let name = match direction {
                        gst::PadDirection::Src => "src",
                        _ => "sink",
                    };
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for TinySam {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    // Buffers get metadata (and maybe drawings), so they must be writable;
    // passthrough is switched on only while there is nothing to segment.
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings();
        let source = settings.model_source().map_err(|msg| {
            gst::error!(CAT, imp = self, "{msg}");
            gst::error_msg!(gst::ResourceError::NotFound, ("{msg}"))
        })?;
        let runtime = segment::onnx::runtime::ensure_loaded().map_err(|err| {
            gst::error!(CAT, imp = self, "{err}");
            gst::error_msg!(gst::LibraryError::Init, ("{err}"))
        })?;
        gst::info!(
            CAT,
            imp = self,
            "ONNX Runtime loaded from {} ({:?})",
            runtime.library().display(),
            runtime.source()
        );
        let requested = match settings.execution_provider {
            ExecutionProvider::Cpu => ExecutionProviderKind::Cpu,
            ExecutionProvider::Cuda => ExecutionProviderKind::Cuda,
            ExecutionProvider::TensorRt => ExecutionProviderKind::TensorRt,
            ExecutionProvider::OpenVino => ExecutionProviderKind::OpenVino,
        };
        let options = EngineOptions {
            n_threads: settings.n_threads as usize,
            execution_provider: requested,
        };
        let (segmenter, warnings) = Segmenter::load(&source, &options).map_err(|err| {
            gst::error!(CAT, imp = self, "{err}");
            load_error(&err)
        })?;
        for warning in &warnings {
            gst::warning!(CAT, imp = self, "{warning}");
        }
        let used = segmenter.execution_provider();
        if used != requested {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Init,
                [
                    "Execution provider {} is not available, running on {}: {}",
                    requested.name(),
                    used.name(),
                    warnings.join("; ")
                ]
            );
        }
        let model_info = segmenter.info();
        gst::info!(
            CAT,
            imp = self,
            "Model loaded: input {}, {:?} decoder, on {}",
            model_info.input_size,
            model_info.decoder_layout,
            used.name()
        );
        *self
            .model_mask_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(f64::from(model_info.mask_threshold));
        *self.canceller.lock().unwrap_or_else(|e| e.into_inner()) = Some(segmenter.canceller());
        *self.state() = Some(State {
            segmenter,
            info: None,
        });
        self.update_passthrough();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.canceller.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.state() = None;
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
        gst::debug!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            // Not serialized: arrives while a frame may be in progress.
            gst::EventView::FlushStart(_) => self.cancel(),
            gst::EventView::FlushStop(_) => self.resume(),
            _ => (),
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if !BaseTransformImplExt::parent_query(self, direction, query) {
            return false;
        }
        // Upstream's latency plus the time a frame spends here.
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            let reported = self
                .latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reported();
            let ours = gst::ClockTime::try_from(reported).unwrap_or(gst::ClockTime::MAX);
            let (live, min, max) = q.result();
            let min = min.saturating_add(ours);
            q.set(live, min, max.map(|max| max.saturating_add(ours)));
            gst::debug!(CAT, imp = self, "Latency: ours {ours}, total min {min}");
        }
        true
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Invalid caps {incaps}"))?;
        gst::debug!(CAT, imp = self, "Caps {incaps} -> {outcaps}");
        let mut state = self.state();
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "Caps set before start"))?;
        state.info = Some(info);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Copied out so property calls never wait for inference.
        let settings = self.settings();
        if settings.idle() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let started = Instant::now();
        let result = {
            let mut state = self.state();
            match state.as_mut() {
                Some(state) => self.process(state, buf, &settings),
                None => Err(FrameFailure::Flushing),
            }
        };
        // The lock is released before posting, so bus handlers cannot deadlock on it.
        match result {
            Ok(objects) => {
                self.note_processing_time(started.elapsed());
                gst::trace!(
                    CAT,
                    imp = self,
                    "Frame pts {}: {} objects",
                    buf.pts().display(),
                    objects.len()
                );
                Ok(gst::FlowSuccess::Ok)
            }
            Err(failure) => {
                let (flow, message) = failure.into_flow();
                match message {
                    Some(message) => self.post_error_message(message),
                    None => gst::debug!(CAT, imp = self, "Frame cancelled: {flow:?}"),
                }
                Err(flow)
            }
        }
    }
}
