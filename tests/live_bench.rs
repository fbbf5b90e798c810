// SPDX-License-Identifier: Apache-2.0
//! Benchmarks of the element on video (issue #10): printed, never asserted.
//!
//! ```sh
//! TINYSAM_BENCH_MODEL=/tmp/tinysam-random-1024 \
//!     cargo test --release --test live_bench -- --ignored --nocapture --test-threads=1
//! ```
//!
//! - `live_sync_vs_async`: a live 1280x720 30 fps source for
//!   `TINYSAM_BENCH_SECONDS` (20) seconds through `processing=sync` and then
//!   `processing=async`, into a `sync=true` sink: frames delivered out of
//!   frames produced, inferences per second, mean and max mask age.
//!   `TINYSAM_BENCH_SIZE` (`WIDTHxHEIGHT`) changes the frame size and
//!   `TINYSAM_BENCH_PROPERTIES` adds properties to `tinysam`, for example
//!   `overlay=true overlay-mode=blur overlay-invert=true` for a background
//!   blur drawn on every frame.
//! - `everything_grid_every_frame_vs_tracking`: everything mode on a moving
//!   scene, ms per frame with the grid on every inference against the grid
//!   every `everything-interval` inferences plus tracking.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use common::element::{
    bench_model, cpu_description, inference_pts, init, launch_watching_sink, model_dir,
};

#[derive(Debug, Default)]
struct Delivered {
    frames: u64,
    /// Age of each frame's masks (pts minus the pts they were computed from).
    ages: Vec<Duration>,
    inferences: std::collections::BTreeSet<u64>,
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn live_sync_vs_async() {
    init();
    let seconds: u64 = std::env::var("TINYSAM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let frames = seconds * 30;
    let size = std::env::var("TINYSAM_BENCH_SIZE").unwrap_or_else(|_| "1280x720".into());
    let (width, height) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .expect("TINYSAM_BENCH_SIZE is WIDTHxHEIGHT");
    let properties = std::env::var("TINYSAM_BENCH_PROPERTIES").unwrap_or_default();
    println!("CPU: {}", cpu_description());
    println!(
        "live {width}x{height} at 30 fps, {seconds} s ({frames} frames), model {}, one point \
         prompt, properties [{properties}]:",
        bench_model()
    );
    println!("  mode   delivered   inferences/s   mean age ms   max age ms   wall s");
    for mode in ["sync", "async"] {
        let description = format!(
            "videotestsrc is-live=true num-buffers={frames} pattern=ball \
             ! video/x-raw,format=NV12,width={width},height={height},framerate=30/1 \
             ! tinysam model=\"{}\" processing={mode} prompts=\"point={},{}\" everything-mode=none \
               {properties} \
             ! fakesink name=sink sync=true qos=true",
            bench_model(),
            width / 2,
            height / 2
        );
        let delivered = Arc::new(Mutex::new(Delivered::default()));
        let theirs = Arc::clone(&delivered);
        let pipeline = launch_watching_sink(&description, move |buffer| {
            let mut d = theirs.lock().unwrap();
            d.frames += 1;
            if let Some(from) = inference_pts(buffer)
                && let Some(pts) = buffer.pts()
            {
                d.ages
                    .push(Duration::from_nanos(pts.nseconds().saturating_sub(from)));
                d.inferences.insert(from);
            }
        });
        let started = Instant::now();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let _ = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(seconds * 3 + 60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let wall = started.elapsed();
        pipeline.set_state(gst::State::Null).unwrap();
        let d = delivered.lock().unwrap();
        let mean = d.ages.iter().sum::<Duration>().as_secs_f64() / d.ages.len().max(1) as f64;
        let max = d.ages.iter().max().copied().unwrap_or_default();
        println!(
            "  {mode:5}  {:4}/{frames} ({:5.1}%)   {:6.2}        {:8.0}     {:8.0}   {:5.1}",
            d.frames,
            100.0 * d.frames as f64 / frames as f64,
            d.inferences.len() as f64 / wall.as_secs_f64(),
            mean * 1e3,
            max.as_secs_f64() * 1e3,
            wall.as_secs_f64()
        );
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn everything_grid_every_frame_vs_tracking() {
    init();
    let frames = 20;
    println!("CPU: {}", cpu_description());
    println!(
        "everything mode on {frames} frames of videotestsrc pattern=ball 320x240, fixture model, \
         points-per-side 16, default thresholds (0.88 / 0.95):"
    );
    let mut per_frame = Vec::new();
    for interval in [1, 10] {
        let description = format!(
            "videotestsrc num-buffers={frames} pattern=ball \
             ! video/x-raw,format=RGBA,width=320,height=240,framerate=30/1 \
             ! tinysam model=\"{}\" processing=sync points-per-side=16 \
               everything-interval={interval} \
             ! fakesink sync=false",
            model_dir().display()
        );
        let pipeline = gst::parse::launch(&description).unwrap();
        let started = Instant::now();
        pipeline.set_state(gst::State::Playing).unwrap();
        let _ = pipeline.bus().unwrap().timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(frames);
        pipeline.set_state(gst::State::Null).unwrap();
        println!("  grid every {interval:2} inference(s): {ms:7.1} ms per frame");
        per_frame.push(ms);
    }
    println!("  ratio: {:.2}x", per_frame[0] / per_frame[1]);
}
