// SPDX-License-Identifier: Apache-2.0
//! The core's error type.

use std::fmt;
use std::path::PathBuf;

use crate::segment::image::frame::FrameError;
use crate::segment::image::preprocess::PreprocessError;
use crate::segment::onnx::runtime::RuntimeError;

/// Everything that can go wrong in the segmentation core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// ONNX Runtime is not available.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model source names no usable files.
    #[error("model source: {0}")]
    Source(String),
    /// A model file is missing or unreadable.
    #[error("{what} {}: {reason}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// ONNX Runtime could not load a model file (corrupt or unsupported).
    #[error("{what} {}: ONNX Runtime cannot load it: {reason}", path.display())]
    Onnx {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// `model.json` is malformed or contradicts itself.
    #[error("model metadata {}: {reason}", path.display())]
    Metadata { path: PathBuf, reason: String },
    /// A model's inputs or outputs are not what the core can drive.
    #[error(transparent)]
    Layout(Box<LayoutMismatch>),
    /// The encoder, decoder and metadata disagree with each other.
    #[error("model files do not fit together: {0}")]
    Inconsistent(String),
    /// The frame's planes do not fit its format and size.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Pre-processing could not run.
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// A segmentation option does not fit the model.
    #[error("invalid option: {0}")]
    Options(String),
    /// A prompt cannot be decoded with this model.
    #[error("prompt {index}: {reason}")]
    Prompt { index: usize, reason: String },
    /// An image embedding does not come from this model.
    #[error("image embedding does not fit the model: {0}")]
    Embedding(String),
    /// ONNX Runtime failed while running a model.
    #[error("{stage} failed: {reason}")]
    Inference { stage: &'static str, reason: String },
    /// The work was cancelled ([`Canceller::cancel`](super::onnx::cancel::Canceller::cancel)).
    #[error("cancelled")]
    Cancelled,
    /// A model returned outputs of unexpected shape or type.
    #[error("{stage} returned unexpected output: {reason}")]
    Output { stage: &'static str, reason: String },
}

impl From<LayoutMismatch> for Error {
    fn from(mismatch: LayoutMismatch) -> Self {
        Error::Layout(Box::new(mismatch))
    }
}

/// A model whose inputs or outputs do not match what the core expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutMismatch {
    /// `"encoder"` or `"decoder"`.
    pub what: &'static str,
    pub path: PathBuf,
    /// What exactly is wrong, one line each.
    pub problems: Vec<String>,
    /// The expected inputs and outputs, one per line (may name several layouts).
    pub expected: Vec<String>,
    /// The model's inputs, as `name type[dims]`.
    pub found_inputs: Vec<String>,
    /// The model's outputs, as `name type[dims]`.
    pub found_outputs: Vec<String>,
}

impl fmt::Display for LayoutMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} model {} does not have the expected inputs and outputs:",
            self.what,
            self.path.display()
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        writeln!(f, "expected:")?;
        for line in &self.expected {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "found:")?;
        writeln!(f, "  inputs:  {}", list_or_none(&self.found_inputs))?;
        write!(f, "  outputs: {}", list_or_none(&self.found_outputs))
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

impl std::error::Error for LayoutMismatch {}
