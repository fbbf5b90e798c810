// SPDX-License-Identifier: Apache-2.0
//! Many streams in one process (issue #13): printed, never asserted.
//!
//! ```sh
//! TINYSAM_BENCH_MODEL=/tmp/tinysam-random-1024 \
//!     cargo test --release --test streams_bench -- --ignored --nocapture --test-threads=1
//! ```
//!
//! - `memory_of_many_streams`: VmRSS of a process running 1, 4 and 8
//!   `videotestsrc ! tinysam ! fakesink` pipelines after a warm-up, with
//!   shared sessions and with sessions of their own. Each figure comes from
//!   a fresh process (this binary again, `memory_child`), so memory freed by
//!   one configuration does not flatter the next.
//! - `frame_rate_of_many_streams`: frames inferred per second by 1 and 4
//!   streams, all streams together, `processing=sync` (a non-live source,
//!   every frame inferred, as fast as it goes) and `processing=async` (live
//!   30 fps sources for `TINYSAM_BENCH_SECONDS`, 10).
//!
//! The model is the fixture unless `TINYSAM_BENCH_MODEL` names another.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use gsttinysam::segment::onnx::sessions::live_sessions;

use common::element::{bench_model, cpu_description, inference_pts, init, launch_watching_sink};

const CHILD_STREAMS: &str = "TINYSAM_BENCH_CHILD_STREAMS";
const CHILD_SHARE: &str = "TINYSAM_BENCH_CHILD_SHARE";

/// VmRSS of this process, MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Distinct `inference-pts` values seen at a sink: the frames inferred.
type Inferred = Arc<Mutex<BTreeSet<u64>>>;

/// `videotestsrc ! tinysam ! fakesink`, and the inferences its sink sees.
fn stream(source: &str, processing: &str, share: bool) -> (gst::Pipeline, Inferred) {
    let description = format!(
        "videotestsrc {source} pattern=ball \
         ! video/x-raw,format=NV12,width=640,height=480,framerate=30/1 \
         ! tinysam model=\"{}\" processing={processing} share-sessions={share} \
           prompts=\"point=320,240\" everything-mode=none \
         ! fakesink name=sink sync={}",
        bench_model(),
        source.contains("is-live=true")
    );
    let inferred = Inferred::default();
    let theirs = Arc::clone(&inferred);
    let pipeline = launch_watching_sink(&description, move |buffer| {
        if let Some(from) = inference_pts(buffer) {
            theirs.lock().unwrap().insert(from);
        }
    });
    (pipeline, inferred)
}

/// Plays `pipelines` together until each posts EOS (or an error).
fn run_all(pipelines: &[gst::Pipeline], timeout_s: u64) {
    for p in pipelines {
        p.set_state(gst::State::Playing).unwrap();
    }
    for p in pipelines {
        let msg = p.bus().unwrap().timed_pop_filtered(
            gst::ClockTime::from_seconds(timeout_s),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        if let Some(msg) = msg
            && let gst::MessageView::Error(e) = msg.view()
        {
            panic!("{}: {:?}", e.error(), e.debug());
        }
    }
}

fn stop_all(pipelines: &[gst::Pipeline]) {
    for p in pipelines {
        p.set_state(gst::State::Null).unwrap();
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn memory_of_many_streams() {
    println!("CPU: {}", cpu_description());
    println!(
        "VmRSS after 5 frames per stream, 640x480 NV12, one point prompt, model {}:",
        bench_model()
    );
    println!("  streams   sessions          live sessions   RSS MiB   over the empty process MiB");
    let exe = std::env::current_exe().unwrap();
    for streams in [1, 4, 8] {
        for share in [true, false] {
            let out = Command::new(&exe)
                .args(["--ignored", "--exact", "memory_child", "--nocapture"])
                .env(CHILD_STREAMS, streams.to_string())
                .env(CHILD_SHARE, share.to_string())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("memory: "))
                .unwrap_or_else(|| panic!("no figures from the child: {text}"));
            let v: Vec<f64> = line
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            println!(
                "  {streams:7}   {:16}  {:13.0}   {:7.0}   {:7.0}",
                if share { "shared" } else { "one set each" },
                v[0],
                v[2],
                v[2] - v[1]
            );
        }
    }
}

/// One configuration of `memory_of_many_streams`, in a process of its own.
#[test]
#[ignore = "run by memory_of_many_streams"]
fn memory_child() {
    let Some(streams) = std::env::var(CHILD_STREAMS)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    else {
        return;
    };
    let share = std::env::var(CHILD_SHARE).is_ok_and(|s| s == "true");
    init();
    gsttinysam::segment::onnx::runtime::ensure_loaded().unwrap();
    let empty = rss_mib();
    let pipelines: Vec<_> = (0..streams)
        .map(|_| stream("num-buffers=5", "sync", share).0)
        .collect();
    run_all(&pipelines, 300);
    // After EOS the pipelines still hold their models.
    let live = live_sessions();
    let rss = rss_mib();
    println!("memory: {live} {empty:.1} {rss:.1}");
    stop_all(&pipelines);
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn frame_rate_of_many_streams() {
    init();
    let seconds: u64 = std::env::var("TINYSAM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let frames: u64 = std::env::var("TINYSAM_BENCH_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("CPU: {}", cpu_description());
    println!(
        "frames inferred per second, all streams together, 640x480 NV12, one point prompt, \
         n-threads=0, model {}:",
        bench_model()
    );
    println!("  processing   streams   sessions       inferred/s   per stream   vs 1 stream");
    for processing in ["sync", "async"] {
        let mut one = f64::NAN;
        for (streams, share) in [(1, true), (4, true), (4, false)] {
            let source = if processing == "sync" {
                format!("num-buffers={frames}")
            } else {
                format!("is-live=true num-buffers={}", seconds * 30)
            };
            let (pipelines, inferred): (Vec<_>, Vec<_>) = (0..streams)
                .map(|_| stream(&source, processing, share))
                .unzip();
            // Warm-up: every stream loads its model and infers a frame.
            for p in &pipelines {
                p.set_state(gst::State::Paused).unwrap();
            }
            for p in &pipelines {
                let _ = p.state(gst::ClockTime::from_seconds(120));
            }
            let started = Instant::now();
            run_all(&pipelines, seconds * 3 + 600);
            let wall = started.elapsed().as_secs_f64();
            stop_all(&pipelines);
            let total: usize = inferred.iter().map(|i| i.lock().unwrap().len()).sum();
            let rate = total as f64 / wall;
            if streams == 1 {
                one = rate;
            }
            println!(
                "  {processing:10}   {streams:7}   {:12}   {rate:10.1}   {:10.1}   {:10.2}",
                if share { "shared" } else { "one set each" },
                rate / streams as f64,
                rate / one
            );
        }
    }
}
