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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use gst_video::prelude::*;

use super::ExecutionProvider;
use super::drawing;
use super::errors::{FrameFailure, load_error};
use super::frames;
use super::inference::Inference;
use super::latency::LatencyEstimate;
use super::meta::{FrameMasks, attach_meta};
use super::prompts::event::{edit_from_structure, prompt_structure};
use super::prompts::list as prompt_list;
use super::prompts::navigation::{self, Navigation};
use super::prompts::{Edit, Notice, Prompts, regions};
use super::schedule;
use super::settings::{self, Settings, prompts_text};
use super::{Coordinates, InferenceRegion};
use crate::segment::limits;
use crate::segment::onnx::cancel::Canceller;
use crate::segment::video::{ObjectPrompt, PromptOrigin, TrackedObject, VideoSegmenter};
use crate::segment::{
    self, CoordMode, EngineOptions, ExecutionProviderKind, MaskPainter, Prompt, Segmenter,
};

/// Raw formats accepted; the element does not convert, so these pass through.
const FORMATS: [VideoFormat; 12] = [
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Xrgb,
    VideoFormat::Xbgr,
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// Element message posted when a tracked object is lost.
pub const OBJECT_LOST: &str = "tinysam/object-lost";

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "tinysam",
        gst::DebugColorFlags::empty(),
        Some("TinySAM segmentation"),
    )
});

/// What exists between `start()` and `stop()`.
struct State {
    inference: Inference,
    info: Option<gst_video::VideoInfo>,
    /// Scratch memory of the blur and pixelate overlays.
    painter: MaskPainter,
    /// The overlay was refused for these caps (warned once).
    overlay_refused: bool,
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
    /// The prompted objects and the edits waiting for the next buffer;
    /// locked briefly from any thread, after `state` when both are held.
    prompts: Mutex<Prompts>,
    /// The negotiated frame size, for clicks (outside `state`).
    frame_size: Mutex<Option<(u32, u32)>>,
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

    fn lock_prompts(&self) -> MutexGuard<'_, Prompts> {
        self.prompts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a prompt edit for the next buffer; a full queue is a warning.
    fn queue_edit(&self, edit: Edit) -> bool {
        let queued = self.lock_prompts().push(edit);
        match queued {
            Ok(()) => {
                self.update_passthrough();
                true
            }
            Err(reason) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("Prompt edit dropped: {}", reason)
                );
                false
            }
        }
    }

    /// An application's prompt event: queued, or a warning naming what is
    /// wrong with it (the prompts stay as they are).
    fn prompt_event(&self, structure: &gst::StructureRef) -> bool {
        match edit_from_structure(structure) {
            Ok(edit) => {
                gst::debug!(CAT, imp = self, "Prompt event {structure}");
                self.queue_edit(edit)
            }
            Err(reason) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    (
                        "Invalid prompt event: {}; the prompts stay as they were",
                        reason
                    ),
                    ["event was `{}`", limits::quote(&structure.to_string())]
                );
                false
            }
        }
    }

    /// Posts what applying prompt edits said.
    fn post_notices(&self, notices: Vec<Notice>) {
        for notice in notices {
            match notice {
                Notice::Info(text) => gst::debug!(CAT, imp = self, "{text}"),
                Notice::Warning(text) => {
                    gst::element_imp_warning!(self, gst::StreamError::Failed, ("{}", text))
                }
            }
        }
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
                {
                    let mut settings = self.lock_settings();
                    settings.prompts_text = text.into();
                    settings.prompts = Arc::new(prompts.clone());
                }
                // Follows `coordinates`, whenever that is set.
                self.queue_edit(Edit::Replace {
                    prompts,
                    coordinates: None,
                    origin: PromptOrigin::Property,
                });
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
        let idle = self.lock_settings().idle_without_prompts() && !self.lock_prompts().has_work();
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

    /// Forgets the masks, tracks and any result being computed.
    fn flush_inference(&self) {
        if let Some(state) = self.state().as_mut() {
            state.inference.flush();
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

    /// Whether upstream is live, as its LATENCY answer says.
    fn upstream_live(&self) -> bool {
        let mut query = gst::query::Latency::new();
        self.obj().sink_pad().peer_query(&mut query) && query.result().0
    }

    /// Applies the prompt edits since the last buffer, gathers this
    /// buffer's prompts (and regions), runs or starts inference as due,
    /// attaches the newest masks and draws them; returns the objects lost in
    /// masks that arrived with this frame. What the edits said goes to
    /// `notices`.
    fn process(
        &self,
        state: &mut State,
        buf: &mut gst::BufferRef,
        settings: &Settings,
        notices: &mut Vec<Notice>,
    ) -> Result<Vec<u64>, FrameFailure> {
        let info = state.info.clone().ok_or_else(|| {
            FrameFailure::NotNegotiated("Received a buffer before caps were negotiated".to_owned())
        })?;
        if state.inference.mode().is_none() {
            let mode = schedule::resolve(settings.processing, self.upstream_live());
            gst::info!(CAT, imp = self, "Inference runs {mode:?}");
            state.inference.set_mode(mode)?;
        }
        let size = (info.width(), info.height());
        let coordinates = match settings.coordinates {
            Coordinates::Pixels => CoordMode::Pixels,
            Coordinates::Normalized => CoordMode::Normalized,
        };
        let (objects, regions) = {
            // Clicks point at what the last buffer carried.
            let shown: Vec<&TrackedObject> = state
                .inference
                .latest()
                .map(|l| l.frame.objects.iter().collect())
                .unwrap_or_default();
            let mut prompts = self.lock_prompts();
            notices.extend(prompts.apply_pending(&shown, Some(size), coordinates));
            let regions = match settings.inference_region {
                InferenceRegion::FullFrame => Vec::new(),
                InferenceRegion::RoiList => {
                    let (regions, skipped) =
                        regions::read(buf, size, |label| settings.wants_class(label));
                    for reason in skipped {
                        gst::debug!(CAT, imp = self, "{reason}");
                    }
                    regions
                }
            };
            let frame = prompts.frame_prompts(regions);
            notices.extend(frame.notice);
            (frame.objects, frame.regions)
        };
        let options = settings.video_options();
        let pts = buf.pts();
        let inference = &mut state.inference;
        let result = frames::with_view(buf, &info, |view| {
            inference.frame(view, pts, &objects, &options, settings.inference_interval)
        })?;
        // The newest masks of the objects prompted now: an object removed
        // or a region gone since they were computed is not carried.
        let by_id: HashMap<u64, &ObjectPrompt> = objects.iter().map(|p| (p.id, p)).collect();
        let shown: Vec<&TrackedObject> = result
            .latest
            .map(|l| {
                l.frame
                    .objects
                    .iter()
                    .filter(|o| match o.prompt_index {
                        Some(_) => by_id.contains_key(&o.id),
                        None => objects.is_empty(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let masks = FrameMasks {
            objects: &shown,
            inference_pts: result.latest.and_then(|l| l.pts),
            computed: result.computed,
            prompts: &by_id,
            regions: &regions,
        };
        if settings.overlay {
            let painter = &mut state.painter;
            let drawn = frames::with_view_mut(buf, &info, |view| {
                drawing::draw(view, masks.objects, masks.prompts, settings, painter)
            })?;
            if let Err(err) = drawn
                && !state.overlay_refused
            {
                state.overlay_refused = true;
                notices.push(Notice::Warning(format!("Nothing drawn: {err}")));
            }
        }
        attach_meta(buf, info.width(), info.height(), &masks)?;
        Ok(result.lost)
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
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::param_specs);
        PROPERTIES.as_ref()
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let model_mask_threshold = *self
            .model_mask_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.lock_settings().property(pspec, model_mask_threshold)
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        let model_property = matches!(
            name,
            "model"
                | "encoder-model"
                | "decoder-model"
                | "n-threads"
                | "execution-provider"
                | "share-sessions"
                | "processing"
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
            "everything-mode" | "inference-region" => {
                self.lock_settings().set(name, value);
                self.update_passthrough();
            }
            _ if self.lock_settings().set(name, value) => (),
            other => gst::warning!(CAT, imp = self, "Unknown property {other}"),
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
            share_sessions: settings.share_sessions,
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
        if let Some(text) = &model_info.int8_saturation {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{text}"));
        }
        *self
            .model_mask_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(f64::from(model_info.mask_threshold));
        *self.canceller.lock().unwrap_or_else(|e| e.into_inner()) = Some(segmenter.canceller());
        // Everything mode's ids and the prompt sources' come from one count.
        let ids = self.lock_prompts().ids();
        let video = VideoSegmenter::new(segmenter).with_id_counter(ids);
        let inference = Inference::new(video).map_err(|err| load_error(&err))?;
        *self.state() = Some(State {
            inference,
            info: None,
            painter: MaskPainter::new(),
            overlay_refused: false,
        });
        self.update_passthrough();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // PAUSED -> READY cancelled the run in progress. A provider that
        // cannot stop mid-run finishes it on the worker's thread, which this
        // does not wait for (worker.rs).
        if let Some(state) = self.state().as_mut() {
            state.inference.stop();
        }
        *self.canceller.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.state() = None;
        *self.frame_size.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
        gst::debug!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // Applied from the next buffer; not forwarded, so a second
        // `tinysam` downstream does not take them as well.
        if let Some(structure) = prompt_structure(&event) {
            return self.prompt_event(structure);
        }
        match event.view() {
            // Not serialized: arrives while a frame may be in progress.
            gst::EventView::FlushStart(_) => self.cancel(),
            // Serialized: the streaming thread is here, not in a frame.
            gst::EventView::FlushStop(_) => {
                self.flush_inference();
                self.lock_prompts().flush();
                self.resume();
            }
            // Frames are never held, so there is nothing to drain; a result
            // still being computed is of no use.
            gst::EventView::Eos(_) => self.flush_inference(),
            _ => (),
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let Some(structure) = prompt_structure(&event) {
            return self.prompt_event(structure);
        }
        if event.type_() == gst::EventType::Navigation && self.lock_settings().navigation_prompts {
            let frame = *self.frame_size.lock().unwrap_or_else(|e| e.into_inner());
            match navigation::interpret(&event, frame) {
                Navigation::Edit(edit) => {
                    gst::debug!(CAT, imp = self, "Navigation prompt {edit:?}");
                    return self.queue_edit(edit);
                }
                Navigation::Ignored(reason) => gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("{}; ignored", reason)
                ),
                Navigation::Unused => (),
            }
        }
        self.parent_src_event(event)
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
        // Masks of another frame size do not fit the new caps.
        if state.info.as_ref().is_some_and(|old| old != &info) {
            state.inference.flush();
        }
        *self.frame_size.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((info.width(), info.height()));
        state.info = Some(info);
        state.overlay_refused = false;
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Copied out so property calls never wait for inference.
        let settings = self.settings();
        if settings.idle_without_prompts() && !self.lock_prompts().has_work() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let started = Instant::now();
        let mut notices = Vec::new();
        let result = {
            let mut state = self.state();
            match state.as_mut() {
                Some(state) => self.process(state, buf, &settings, &mut notices),
                None => Err(FrameFailure::Flushing),
            }
        };
        // The locks are released before posting, so bus handlers cannot
        // deadlock on them.
        if !notices.is_empty() {
            self.post_notices(notices);
            self.update_passthrough();
        }
        match result {
            Ok(lost) => {
                self.note_processing_time(started.elapsed());
                let obj = self.obj();
                for id in lost {
                    gst::debug!(CAT, imp = self, "Object {id} lost");
                    let structure = gst::Structure::builder(OBJECT_LOST)
                        .field("id", u32::try_from(id).unwrap_or(u32::MAX))
                        .field("pts", buf.pts())
                        .build();
                    let _ = obj
                        .post_message(gst::message::Element::builder(structure).src(&*obj).build());
                }
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
