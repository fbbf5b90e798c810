// SPDX-License-Identifier: Apache-2.0
//! Stopping inference from another thread.
//!
//! A [`Canceller`] belongs to one engine. [`Canceller::cancel`] sets ONNX
//! Runtime's terminate flag on the run options every session run uses, so a
//! run in progress stops at its next node instead of finishing (an encoder
//! run takes up to a second at full size, an everything-mode frame tens of
//! seconds), and every later run and every step between runs fails with
//! [`Error::Cancelled`](crate::segment::Error::Cancelled) until
//! [`Canceller::reset`]. The element cancels on flush and on state changes
//! and resets when streaming resumes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions};

use crate::segment::error::Error;

/// Run options of the plain decoder: only two of its outputs are computed.
///
/// `ort` withholds `Sync` from run options with selected outputs because
/// pre-allocated outputs could then be written from two threads; these have
/// none, so the only state another thread touches is ONNX Runtime's
/// terminate flag, which ONNX Runtime documents as safe to set from any thread.
struct SelectedRunOptions(RunOptions<HasSelectedOutputs>);

// SAFETY: no pre-allocated outputs (see above); `terminate` and
// `unterminate` are ONNX Runtime's thread-safe flag setters.
unsafe impl Sync for SelectedRunOptions {}

struct Shared {
    cancelled: AtomicBool,
    plain: RunOptions,
    decoder: SelectedRunOptions,
}

/// Cancels an engine's runs; cheap to clone and `Send + Sync`.
#[derive(Clone)]
pub struct Canceller(Arc<Shared>);

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceller")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Canceller {
    /// Run options for every session; `decoder_outputs` selects the plain
    /// decoder's outputs.
    pub(crate) fn new(decoder_outputs: OutputSelector) -> Result<Self, Error> {
        let fail = |e: ort::Error| Error::Inference {
            stage: "creating run options",
            reason: e.to_string(),
        };
        Ok(Canceller(Arc::new(Shared {
            cancelled: AtomicBool::new(false),
            plain: RunOptions::new().map_err(fail)?,
            decoder: SelectedRunOptions(
                RunOptions::new()
                    .map_err(fail)?
                    .with_outputs(decoder_outputs),
            ),
        })))
    }

    /// Stops the run in progress, if any, and every later one until
    /// [`reset`](Self::reset).
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        // Only fails on an invalid pointer, which these cannot be.
        let _ = self.0.plain.terminate();
        let _ = self.0.decoder.0.terminate();
    }

    /// Lets runs go ahead again.
    pub fn reset(&self) {
        let _ = self.0.plain.unterminate();
        let _ = self.0.decoder.0.unterminate();
        self.0.cancelled.store(false, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled: for the steps between runs.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Run options for the encoder and the split decoder.
    pub(crate) fn plain(&self) -> &RunOptions {
        &self.0.plain
    }

    /// Run options for the plain decoder.
    pub(crate) fn decoder(&self) -> &RunOptions<HasSelectedOutputs> {
        &self.0.decoder.0
    }

    /// A session run's result: `Cancelled` when the run was cancelled, even
    /// if it finished. ONNX Runtime checks the flag between nodes, and a
    /// provider that runs the whole graph as one node (OpenVINO) finishes a
    /// cancelled run; its outputs are dropped all the same.
    pub(crate) fn finished<T>(&self, stage: &'static str, run: ort::Result<T>) -> Result<T, Error> {
        let outputs = run.map_err(|e| self.run_error(stage, e))?;
        self.check()?;
        Ok(outputs)
    }

    /// The error for a failed run: `Cancelled` when that is why it failed.
    pub(crate) fn run_error(&self, stage: &'static str, error: ort::Error) -> Error {
        if self.is_cancelled() {
            Error::Cancelled
        } else {
            Error::Inference {
                stage,
                reason: error.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn canceller_can_be_shared_between_threads() {
        assert_send_sync::<Canceller>();
    }
}
