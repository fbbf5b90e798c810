// SPDX-License-Identifier: Apache-2.0
//! Inference over a stream: which frames are inferred (`inference-interval`),
//! where (`processing`: on the streaming thread, or on the worker so that
//! live frames never wait), and the newest masks every frame carries.
//!
//! Only the pre-processing, which needs the frame's pixels, runs on the
//! streaming thread in async mode (a few ms); the encoder and decoder run on
//! the worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::Array4;

use super::errors::FrameFailure;
use super::schedule::{Interval, Mode};
use super::worker::Worker;
use crate::segment::image::preprocess::{PreprocessError, Preprocessor};
use crate::segment::video::{ObjectPrompt, VideoFrame, VideoOptions, VideoSegmenter};
use crate::segment::{self, FrameView, Geometry};

/// One frame's model input and what to segment in it.
struct Job {
    tensor: Array4<f32>,
    geometry: Geometry,
    pts: Option<gst::ClockTime>,
    prompts: Arc<Vec<ObjectPrompt>>,
    options: VideoOptions,
}

/// The masks of one inferred frame.
#[derive(Debug)]
pub struct Inferred {
    pub frame: VideoFrame,
    /// The pts of the frame whose pixels produced them.
    pub pts: Option<gst::ClockTime>,
}

type Outcome = Result<Inferred, segment::Error>;

/// The video segmenter, shared by the streaming thread (sync) and the worker
/// (async); `reset` asks whoever runs next to forget the tracks first.
#[derive(Clone)]
struct Shared {
    video: Arc<Mutex<VideoSegmenter>>,
    reset: Arc<AtomicBool>,
}

impl Shared {
    fn run(
        &self,
        tensor: &Array4<f32>,
        geometry: Geometry,
        pts: Option<gst::ClockTime>,
        prompts: &[ObjectPrompt],
        options: &VideoOptions,
    ) -> Outcome {
        let mut video = self.video.lock().unwrap_or_else(|e| e.into_inner());
        if self.reset.swap(false, Ordering::SeqCst) {
            video.reset();
        }
        let embedding = video.segmenter_mut().embed_tensor(tensor, geometry)?;
        let frame = video.process_objects(&embedding, prompts, options)?;
        Ok(Inferred { frame, pts })
    }
}

/// What a frame leaves with.
pub struct FrameResult<'a> {
    /// The newest masks, if any inference has finished since the last flush.
    pub latest: Option<&'a Inferred>,
    /// Whether they were computed from this frame's pixels.
    pub computed: bool,
    /// Objects that became lost in masks that arrived with this frame.
    pub lost: Vec<u64>,
}

/// Inference state of one stream (between start and stop).
pub struct Inference {
    shared: Shared,
    preprocessor: Preprocessor,
    mode: Option<Mode>,
    interval: Interval,
    worker: Option<Worker<Job, Outcome>>,
    latest: Option<Inferred>,
}

impl Inference {
    pub fn new(video: VideoSegmenter) -> Result<Self, segment::Error> {
        let preprocessor = video.segmenter().new_preprocessor()?;
        Ok(Inference {
            shared: Shared {
                video: Arc::new(Mutex::new(video)),
                reset: Arc::new(AtomicBool::new(false)),
            },
            preprocessor,
            mode: None,
            interval: Interval::default(),
            worker: None,
            latest: None,
        })
    }

    /// The newest masks, as the last frame carried them.
    pub fn latest(&self) -> Option<&Inferred> {
        self.latest.as_ref()
    }

    /// The mode, once the first frame has resolved it.
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Fixes the mode (on the first frame); async starts the worker.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), FrameFailure> {
        if mode == Mode::Async && self.worker.is_none() {
            let shared = self.shared.clone();
            let worker = Worker::spawn("tinysam-infer", move |job: Job| {
                shared.run(
                    &job.tensor,
                    job.geometry,
                    job.pts,
                    &job.prompts,
                    &job.options,
                )
            })
            .map_err(|e| FrameFailure::Buffer(format!("Cannot start the inference thread: {e}")))?;
            self.worker = Some(worker);
        }
        self.mode = Some(mode);
        Ok(())
    }

    /// Processes one frame: runs or starts inference when it is due (and
    /// there is something to segment), and returns the masks the frame
    /// carries.
    pub fn frame(
        &mut self,
        view: &FrameView<'_>,
        pts: Option<gst::ClockTime>,
        prompts: &Arc<Vec<ObjectPrompt>>,
        options: &VideoOptions,
        interval: u32,
    ) -> Result<FrameResult<'_>, FrameFailure> {
        let mut lost = Vec::new();
        let mut computed = false;
        // Results that finished since the last frame.
        if let Some(worker) = &self.worker {
            match worker.take_result() {
                Some(Ok(inferred)) => {
                    lost = inferred.frame.lost.clone();
                    self.latest = Some(inferred);
                }
                Some(Err(segment::Error::Cancelled)) | None => (),
                Some(Err(err)) => return Err(FrameFailure::Core(err)),
            }
        }
        // `roi-list` without regions: nothing to embed.
        let work = !prompts.is_empty() || options.everything.is_some();
        let due = self.interval.due(interval) && work;
        let worker_idle = self.worker.as_ref().map(|w| !w.is_busy());
        match (self.mode, worker_idle) {
            (Some(Mode::Async), Some(idle)) if due && idle => {
                let geometry = self.preprocess(view)?;
                let job = Job {
                    tensor: self.preprocessor.tensor().clone(),
                    geometry,
                    pts,
                    prompts: Arc::clone(prompts),
                    options: *options,
                };
                // The worker is only ever offered jobs from here, so it is
                // still idle; were it not, the frame would be skipped.
                if let Some(worker) = &self.worker {
                    let _ = worker.offer(job);
                }
            }
            // Async with a busy worker, or nothing due: the frame carries
            // the latest result.
            (Some(Mode::Async), Some(_)) => (),
            _ if due => {
                let geometry = self.preprocess(view)?;
                let tensor = self.preprocessor.tensor();
                let inferred = self.shared.run(tensor, geometry, pts, prompts, options)?;
                lost = inferred.frame.lost.clone();
                self.latest = Some(inferred);
                computed = true;
            }
            _ => (),
        }
        Ok(FrameResult {
            latest: self.latest.as_ref(),
            computed,
            lost,
        })
    }

    /// The frame into the pre-processor's model input.
    fn preprocess(&mut self, view: &FrameView<'_>) -> Result<Geometry, FrameFailure> {
        let (geometry, _) = self
            .preprocessor
            .run(view)
            .map_err(|e: PreprocessError| FrameFailure::Core(e.into()))?;
        Ok(geometry)
    }

    /// Forgets the masks and the tracks, and drops any result still being
    /// computed: after a flush, a caps change or new stream.
    pub fn flush(&mut self) {
        if let Some(worker) = &self.worker {
            worker.flush();
        }
        self.latest = None;
        self.interval.restart();
        self.shared.reset.store(true, Ordering::SeqCst);
    }

    /// Ends the worker (cancel its run first) without waiting for its job.
    pub fn stop(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            worker.stop();
        }
    }
}
