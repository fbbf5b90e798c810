// SPDX-License-Identifier: Apache-2.0
//! How the core's errors reach applications: a GStreamer error domain that
//! fits, a message that says what is wrong and how to fix it (applications
//! often show only the message, not the debug text), and the flow return
//! that fits on the streaming path.

use gst::glib;

use crate::segment::Error;

/// A new error message; `function` is the element's, for the debug log.
fn message<T: gst::MessageErrorDomain>(
    domain: T,
    text: &str,
    debug: Option<&str>,
) -> gst::ErrorMessage {
    gst::ErrorMessage::new(&domain, Some(text), debug, file!(), "tinysam", line!())
}

const REEXPORT: &str = "Re-export the model with tools/export.py, or see docs/model-format.md for \
                        what a model directory holds";

/// The error posted when the model cannot be loaded (READY -> PAUSED).
pub fn load_error(err: &Error) -> gst::ErrorMessage {
    match err {
        Error::Runtime(e) => message(gst::LibraryError::Init, &e.to_string(), None),
        Error::Source(_) | Error::File { .. } => message(
            gst::ResourceError::NotFound,
            &format!(
                "Cannot load the model: {err}. Set `model` to a model directory (model.json, \
                 encoder.onnx, decoder.onnx), or `encoder-model` and `decoder-model` to ONNX files"
            ),
            None,
        ),
        Error::Onnx { .. } => message(
            gst::ResourceError::OpenRead,
            &format!("Cannot load the model: {err}. {REEXPORT}"),
            None,
        ),
        Error::Metadata { .. } | Error::Layout(_) | Error::Inconsistent(_) => message(
            gst::ResourceError::Settings,
            &format!("Cannot use the model: {err}. {REEXPORT}"),
            None,
        ),
        Error::Options(_) => message(
            gst::LibraryError::Settings,
            &format!("Cannot start: {err}. Check the element's properties"),
            None,
        ),
        other => message(
            gst::LibraryError::Init,
            &format!("Cannot load the model: {other}"),
            None,
        ),
    }
}

/// Why a frame could not be processed.
#[derive(Debug)]
pub enum FrameFailure {
    /// Flushing or stopping: not an error.
    Flushing,
    /// A buffer before caps, or caps the element cannot read.
    NotNegotiated(String),
    /// The frame could not be mapped or its metadata not attached.
    Buffer(String),
    /// The segmentation core failed.
    Core(Error),
}

impl From<Error> for FrameFailure {
    fn from(err: Error) -> Self {
        match err {
            Error::Cancelled => FrameFailure::Flushing,
            other => FrameFailure::Core(other),
        }
    }
}

impl From<glib::BoolError> for FrameFailure {
    fn from(err: glib::BoolError) -> Self {
        FrameFailure::Buffer(err.to_string())
    }
}

impl FrameFailure {
    /// The flow return, and the error to post (none when flushing).
    pub fn into_flow(self) -> (gst::FlowError, Option<gst::ErrorMessage>) {
        match self {
            FrameFailure::Flushing => (gst::FlowError::Flushing, None),
            FrameFailure::NotNegotiated(why) => (
                gst::FlowError::NotNegotiated,
                Some(message(gst::CoreError::Negotiation, &why, None)),
            ),
            FrameFailure::Buffer(why) => (
                gst::FlowError::Error,
                Some(message(gst::StreamError::Failed, &why, None)),
            ),
            FrameFailure::Core(err) => {
                let text = format!("Segmentation failed: {err}");
                let msg = match err {
                    Error::Frame(_) | Error::Preprocess(_) => {
                        message(gst::StreamError::Format, &text, None)
                    }
                    Error::Options(_) | Error::Prompt { .. } => message(
                        gst::LibraryError::Settings,
                        &format!("{text}. Check the element's properties"),
                        None,
                    ),
                    _ => message(gst::LibraryError::Failed, &text, None),
                };
                (gst::FlowError::Error, Some(msg))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_work_is_flushing_without_a_message() {
        let (flow, msg) = FrameFailure::from(Error::Cancelled).into_flow();
        assert_eq!(flow, gst::FlowError::Flushing);
        assert!(msg.is_none());
    }

    #[test]
    fn missing_files_are_resource_errors() {
        gst::init().unwrap();
        let err = Error::File {
            what: "encoder model",
            path: "/nowhere/encoder.onnx".into(),
            reason: "no such file".into(),
        };
        let msg = load_error(&err);
        let text = format!("{msg:?}");
        assert!(
            text.contains("/nowhere/encoder.onnx") && text.contains("Set `model`"),
            "{text}"
        );
    }
}
