// SPDX-License-Identifier: Apache-2.0
//! The element over time (issue #10) in real pipelines: `inference-interval`,
//! `processing=async` with a live source and a slow frame, flushing, EOS and
//! state cycles with the worker, and a moving disc followed from one point.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

use common::element::*;

/// How old a frame's masks are: the `tinysam/objects` fields.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Age {
    inference_pts: Option<gst::ClockTime>,
    computed: bool,
    count: u32,
}

fn age(buffer: &gst::BufferRef) -> Option<Age> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta").ok()?;
    let s = meta.structure();
    let pts = s.get::<u64>("inference-pts").ok()?;
    Some(Age {
        inference_pts: (pts != u64::MAX).then(|| gst::ClockTime::from_nseconds(pts)),
        computed: s.get("computed").ok()?,
        count: s.get("count").ok()?,
    })
}

#[test]
fn frames_between_inferences_carry_the_last_masks() {
    let sam = tinysam(&[
        ("prompts", BOX_PROMPT),
        ("inference-interval", "3"),
        ("processing", "sync"),
    ]);
    let mut h = harness(&sam, "RGBA");
    let frame = rgba_frame();
    let mut ages = Vec::new();
    for i in 0..7 {
        let out = push(&mut h, &frame, i);
        let a = age(&out).expect("every frame says how old its masks are");
        assert_eq!(a.count, 1, "frame {i} carries the object");
        let score = iou(&custom_meta_objects(&out)[0].mask, &exact_mask());
        assert!(score >= 0.85, "frame {i}: IoU {score:.3}");
        ages.push(a);
    }
    for (i, a) in ages.iter().enumerate() {
        let inferred = (i / 3) * 3;
        assert_eq!(a.computed, i % 3 == 0, "frame {i}");
        assert_eq!(
            a.inference_pts,
            Some(gst::ClockTime::from_mseconds(inferred as u64 * 33)),
            "frame {i} carries the masks of frame {inferred}"
        );
    }
}

/// Threads of this process named like the element's worker.
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|name| name.trim() == "tinysam-infer")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Worker threads once the stopped elements' runs end: a stop leaves a
/// thread in its (cancelled) run to finish it (src/tinysam/worker.rs), so
/// this waits for them, up to a limit far above a cancelled run's time.
fn worker_threads_after_their_runs() -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while worker_threads() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    worker_threads()
}

/// The live tests share the 2 cores with no other live test.
static LIVE: Mutex<()> = Mutex::new(());

/// A live 30 fps source through an async tinysam whose every inference takes
/// about 15 frame periods (everything mode, a dense 16 x 16 grid, on one
/// thread so the streaming thread keeps a core), into a synchronised sink
/// that drops late frames; `frames` buffers, then EOS.
fn live_async_pipeline(frames: u32) -> (gst::Pipeline, Arc<Mutex<Vec<Age>>>) {
    init();
    let description = format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=ball \
         ! video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT},framerate=30/1 \
         ! tinysam name=sam model=\"{}\" processing=auto everything-mode=dense \
           points-per-side=16 n-threads=1 \
         ! fakesink name=sink sync=true qos=true max-lateness=20000000",
        model_dir().display()
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let ages = Arc::new(Mutex::new(Vec::new()));
    let sink = pipeline.by_name("sink").unwrap();
    let theirs = Arc::clone(&ages);
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer()
                && let Some(a) = age(buffer)
            {
                theirs.lock().unwrap().push(a);
            }
            gst::PadProbeReturn::Ok
        });
    (pipeline, ages)
}

/// Waits for EOS (or an error, which fails) for at most `limit`.
fn wait_eos(pipeline: &gst::Pipeline, limit: Duration) {
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_nseconds(limit.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS in time");
    if let gst::MessageView::Error(err) = msg.view() {
        panic!("pipeline error: {} {:?}", err.error(), err.debug());
    }
}

#[test]
fn a_live_source_never_waits_for_inference() {
    let _alone = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let frames = 120;
    let (pipeline, ages) = live_async_pipeline(frames);
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    wait_eos(&pipeline, Duration::from_secs(30));
    let bus = pipeline.bus().unwrap();
    let late = std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Qos])).count();
    pipeline.set_state(gst::State::Null).expect("NULL");

    let ages = ages.lock().unwrap();
    let with_masks: Vec<&Age> = ages.iter().filter(|a| a.inference_pts.is_some()).collect();
    println!(
        "live async: {} of {frames} frames delivered, {late} late; {} carried masks, \
         none computed for their own frame: {}",
        ages.len(),
        with_masks.len(),
        ages.iter().all(|a| !a.computed)
    );
    assert_eq!(ages.len() as u32, frames, "every frame reaches the sink");
    assert_eq!(late, 0, "no frame arrives late");
    assert!(!with_masks.is_empty(), "masks appear");
    assert!(with_masks.iter().all(|a| a.count > 0 && !a.computed));
    assert_eq!(
        worker_threads_after_their_runs(),
        0,
        "the worker thread ended"
    );
}

#[test]
fn flushing_eos_and_state_cycles_leave_no_worker_behind() {
    let _alone = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for cycle in 0..3 {
        let (pipeline, ages) = live_async_pipeline(1_000);
        pipeline.set_state(gst::State::Playing).expect("PLAYING");
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(
            worker_threads(),
            1,
            "cycle {cycle}: one worker while playing"
        );
        // A flushing seek while the worker computes.
        let before = ages.lock().unwrap().len();
        assert!(
            pipeline
                .seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO)
                .is_ok()
        );
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            ages.lock().unwrap().len() > before,
            "frames flow after the seek"
        );
        // No masks from before the seek: they would be older than the stream.
        pipeline.set_state(gst::State::Paused).expect("PAUSED");
        pipeline.set_state(gst::State::Null).expect("NULL");
        assert_eq!(
            worker_threads_after_their_runs(),
            0,
            "cycle {cycle}: no worker after NULL"
        );
    }
    // EOS with a computation in progress.
    let (pipeline, _) = live_async_pipeline(15);
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    wait_eos(&pipeline, Duration::from_secs(30));
    pipeline.set_state(gst::State::Null).expect("NULL");
    assert_eq!(worker_threads_after_their_runs(), 0);
}

/// The bright disc of `videotestsrc pattern=ball` in an RGBA frame.
fn disc(frame: &[u8]) -> Vec<bool> {
    frame
        .chunks_exact(4)
        .map(|p| u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2]) > 384)
        .collect()
}

fn centroid(mask: &[bool]) -> (f64, f64) {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        sx += (i as u32 % WIDTH) as f64 + 0.5;
        sy += (i as u32 / WIDTH) as f64 + 0.5;
        n += 1.0;
    }
    (sx / n, sy / n)
}

/// Frames of `videotestsrc pattern=ball ! tinysam <properties>`, with the
/// frames' pixels.
fn ball_frames(properties: &str, frames: u32) -> Vec<gst::Buffer> {
    init();
    let description = format!(
        "videotestsrc num-buffers={frames} pattern=ball \
         ! video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT},framerate=30/1 \
         ! tinysam model=\"{}\" processing=sync {properties} ! appsink name=sink sync=false",
        model_dir().display()
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let mut out = Vec::new();
    while let Some(sample) =
        sink.emit_by_name::<Option<gst::Sample>>("try-pull-sample", &[&30_000_000_000u64])
    {
        out.push(sample.buffer_owned().unwrap());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn a_point_on_the_moving_ball_is_followed() {
    // Where the ball starts.
    let first = ball_frames("everything-mode=none", 1);
    let start = centroid(&disc(&first[0].map_readable().unwrap()));
    let frames = ball_frames(
        &format!("prompts=\"point={:.0},{:.0}\"", start.0, start.1),
        30,
    );
    assert_eq!(frames.len(), 30);
    let mut travelled: f64 = 0.0;
    for (i, buffer) in frames.iter().enumerate() {
        let truth = disc(&buffer.map_readable().unwrap());
        let objects = custom_meta_objects(buffer);
        assert_eq!(objects.len(), 1, "frame {i}");
        let score = iou(&objects[0].mask, &truth);
        let c = centroid(&truth);
        travelled = travelled.max(((c.0 - start.0).powi(2) + (c.1 - start.1).powi(2)).sqrt());
        assert!(score >= 0.7, "frame {i}: IoU {score:.3} with the disc");
    }
    println!("the ball moved up to {travelled:.0} px from the prompt; every frame IoU >= 0.7");
    assert!(travelled > 20.0, "the ball moved");
}
