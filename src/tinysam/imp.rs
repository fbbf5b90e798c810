// SPDX-License-Identifier: Apache-2.0
//! `tinysam`: segments objects in raw video with TinySAM on ONNX Runtime.
//!
//! For now the element loads ONNX Runtime when it starts and passes video
//! through unchanged; segmentation arrives on top of this skeleton.
//!
//! ```text
//! gst-launch-1.0 videotestsrc num-buffers=30 ! tinysam ! videoconvert ! autovideosink
//! ```
//!
//! If ONNX Runtime cannot be found, the change to PAUSED fails with an error
//! message that lists where it was looked for and how to fix it.

use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;

use crate::segment::runtime;

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

/// Element properties; none yet.
#[derive(Debug, Clone, Default)]
struct Settings {}

/// What exists between `start()` and `stop()`.
#[derive(Debug)]
struct State {
    runtime: &'static runtime::Runtime,
    info: Option<gst_video::VideoInfo>,
}

#[derive(Default)]
pub struct TinySam {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl TinySam {
    /// Locks the state; a poisoned lock (a panic elsewhere) still yields the data.
    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The per-frame hook where segmentation will run; for now it only checks
    /// that the element is configured and logs the frame.
    fn inspect(&self, buf: &gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings();
        let size = self
            .state()
            .as_ref()
            .and_then(|s| s.info.as_ref())
            .map(|info| (info.width(), info.height()));
        // The lock is released before posting, so bus handlers cannot deadlock on it.
        let Some((width, height)) = size else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ["Received a buffer before caps were negotiated"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        gst::trace!(
            CAT,
            imp = self,
            "Frame pts {} {width}x{height} {settings:?}",
            buf.pts().display()
        );
        Ok(gst::FlowSuccess::Ok)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for TinySam {
    const NAME: &'static str = "GstTinySam";
    type Type = super::TinySam;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for TinySam {}

impl GstObjectImpl for TinySam {}

impl ElementImpl for TinySam {
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
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let runtime = runtime::ensure_loaded().map_err(|err| {
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
        *self.state() = Some(State {
            runtime,
            info: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state() = None;
        gst::debug!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Invalid caps {incaps}"))?;
        gst::debug!(CAT, imp = self, "Caps {incaps} -> {outcaps}");
        let mut state = self.state();
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "Caps set before start"))?;
        gst::trace!(
            CAT,
            imp = self,
            "Runtime {}",
            state.runtime.library().display()
        );
        state.info = Some(info);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Caps in and out are always equal, so buffers normally take the
        // passthrough path below; this one only exists for completeness.
        self.inspect(buf)
    }

    fn transform_ip_passthrough(
        &self,
        buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.inspect(buf)
    }
}
