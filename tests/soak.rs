// SPDX-License-Identifier: Apache-2.0
//! Leak checks for long runs, ignored by default:
//!
//! ```text
//! cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! They print the resident memory (VmRSS) and the open file descriptors
//! before and after; they assert only that the pipelines work (no error on
//! the bus, every frame arrives), never on times or memory, which depend on
//! the machine. `TINYSAM_SOAK_CYCLES` (default 200) and
//! `TINYSAM_SOAK_FRAMES` (default 3000) set the sizes; `TINYSAM_TEST_MODEL`
//! another model folder.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;

const DEFAULT_CYCLES: u64 = 200;
const DEFAULT_FRAMES: u64 = 3000;
const REPORT_EVERY: u64 = 500;
const BOX_PROMPT: &str = "box=20,20,100,100";
/// Generous: a cycle is two small frames.
const CYCLE_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(30);

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gsttinysam::plugin_register_static().expect("register the tinysam plugin");
    });
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TINYSAM_TEST_MODEL") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tinysam-fixture")
}

/// Resident memory in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors (the one reading the folder not counted).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn growth(from: u64, to: u64) -> f64 {
    if from == 0 {
        return 0.0;
    }
    (to as f64 - from as f64) / from as f64 * 100.0
}

fn report(label: &str, base: Option<(u64, usize)>) -> (u64, usize) {
    let (rss, fds) = (rss_kib(), open_fds());
    match base {
        Some((base_rss, base_fds)) => println!(
            "{label:>28}: RSS {:8.1} MiB ({:+.1} % vs {:.1} MiB), {fds} open fds ({:+})",
            mib(rss),
            growth(base_rss, rss),
            mib(base_rss),
            fds as i64 - base_fds as i64
        ),
        None => println!("{label:>28}: RSS {:8.1} MiB, {fds} open fds", mib(rss)),
    }
    (rss, fds)
}

fn launch(description: &str) -> gst::Pipeline {
    gst::parse::launch(description)
        .expect("parse pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

fn tinysam(properties: &str) -> String {
    format!(
        "tinysam {properties} model=\"{}\" prompts=\"{BOX_PROMPT}\"",
        model_dir().display()
    )
    .replace("tinysam  ", "tinysam ")
}

/// The figures are per process: never run two soaks at once.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the pipeline to EOS once; the warnings seen on the way.
fn run_cycle(pipeline: &gst::Pipeline, cycle: u64) -> usize {
    let bus = pipeline.bus().unwrap();
    pipeline
        .set_state(gst::State::Playing)
        .unwrap_or_else(|e| panic!("cycle {cycle}: PLAYING failed: {e}"));
    let mut warnings = 0;
    loop {
        let msg = bus.timed_pop_filtered(
            CYCLE_TIMEOUT,
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
            ],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => break,
            Some(gst::MessageView::Error(e)) => panic!(
                "cycle {cycle}: error from {:?}: {} ({:?})",
                e.src().map(|s| s.path_string()),
                e.error(),
                e.debug()
            ),
            Some(gst::MessageView::Warning(w)) => {
                warnings += 1;
                println!("cycle {cycle}: warning: {}", w.error());
            }
            Some(_) => {}
            None => panic!("cycle {cycle}: no EOS within {CYCLE_TIMEOUT}"),
        }
    }
    pipeline
        .set_state(gst::State::Null)
        .unwrap_or_else(|e| panic!("cycle {cycle}: NULL failed: {e}"));
    warnings
}

/// NULL -> PLAYING -> EOS -> NULL, over and over: the model is loaded in
/// every start and dropped in every stop.
#[test]
#[ignore = "soak: run with --ignored --nocapture"]
fn state_cycles() {
    let _serial = serial();
    init();
    let cycles = env_or("TINYSAM_SOAK_CYCLES", DEFAULT_CYCLES);
    let description = format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=160,height=120 ! {} ! fakesink",
        tinysam("")
    );
    println!("state cycles: {cycles} x `{description}`");
    let start = report("before", None);
    let pipeline = launch(&description);
    let started = Instant::now();
    let mut warnings = run_cycle(&pipeline, 1);
    let warm = report("after cycle 1", Some(start));
    for cycle in 2..=cycles {
        warnings += run_cycle(&pipeline, cycle);
        if cycle % 50 == 0 || cycle == cycles {
            report(&format!("after cycle {cycle}"), Some(warm));
        }
    }
    let elapsed = started.elapsed();
    drop(pipeline);
    report("pipeline dropped", Some(warm));
    report("vs before", Some(start));
    println!(
        "state cycles: {cycles} in {elapsed:.2?} ({:.1} ms each), {warnings} warnings",
        elapsed.as_secs_f64() * 1000.0 / cycles as f64
    );
}

/// Checkpoints recorded by the probe: (frames, RSS KiB, fds).
type Checkpoints = Arc<Mutex<Vec<(u64, u64, usize)>>>;

/// Many frames through one running pipeline.
#[test]
#[ignore = "soak: run with --ignored --nocapture"]
fn many_frames() {
    let _serial = serial();
    init();
    let frames = env_or("TINYSAM_SOAK_FRAMES", DEFAULT_FRAMES);
    let description = format!(
        "videotestsrc name=src num-buffers={frames} pattern=ball \
         ! video/x-raw,width=160,height=120,framerate=30/1 \
         ! {} ! fakesink name=sink sync=false",
        tinysam("name=sam")
    );
    println!("soak: {frames} frames through `{description}`");
    let start = report("before", None);
    let pipeline = launch(&description);
    let sam = pipeline.by_name("sam").unwrap();

    let seen = Arc::new(AtomicU64::new(0));
    let without_meta = Arc::new(AtomicU64::new(0));
    let checkpoints: Checkpoints = Arc::default();
    let t0 = Instant::now();
    {
        let (seen, without_meta, checkpoints) =
            (seen.clone(), without_meta.clone(), checkpoints.clone());
        sam.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer()
                    && gst::meta::CustomMeta::from_buffer(buffer, gsttinysam::tinysam::META_NAME)
                        .is_err()
                {
                    without_meta.fetch_add(1, Ordering::Relaxed);
                }
                let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n % REPORT_EVERY == 0 {
                    let (rss, fds) = (rss_kib(), open_fds());
                    let mut c = checkpoints.lock().unwrap();
                    // Growth from the first checkpoint after warm-up.
                    let growth_text = match c.get(1).or(c.first()) {
                        Some(&(at, base, _)) => {
                            format!(" ({:+.1} % vs frame {at})", growth(base, rss))
                        }
                        None => String::new(),
                    };
                    println!(
                        "frame {n:>6} at {:>9.1?}: RSS {:8.1} MiB{growth_text}, {fds} open fds",
                        t0.elapsed(),
                        mib(rss),
                    );
                    c.push((n, rss, fds));
                }
                gst::PadProbeReturn::Ok
            });
    }

    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let bus = pipeline.bus().unwrap();
    // Allow a frame many seconds on a slow, shared machine before giving up.
    let mut last = (0, Instant::now());
    let mut warnings = 0;
    loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(1),
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
            ],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => break,
            Some(gst::MessageView::Error(e)) => {
                let _ = pipeline.set_state(gst::State::Null);
                panic!("error: {} ({:?})", e.error(), e.debug());
            }
            Some(gst::MessageView::Warning(w)) => {
                warnings += 1;
                println!("warning: {}", w.error());
            }
            _ => {}
        }
        let n = seen.load(Ordering::Relaxed);
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            let _ = pipeline.set_state(gst::State::Null);
            panic!("stalled after {n} frames");
        }
    }
    let elapsed = t0.elapsed();
    pipeline.set_state(gst::State::Null).expect("NULL");
    let stopped = report("stopped", Some(start));
    drop(pipeline);
    report("pipeline dropped", Some(stopped));

    let n = seen.load(Ordering::Relaxed);
    let c = checkpoints.lock().unwrap();
    if let (Some(first), Some(warm), Some(end)) = (c.first(), c.get(1), c.last()) {
        println!(
            "soak: RSS {:.1} MiB before, {:.1} at frame {}, {:.1} at frame {}, {:.1} at frame {} \
             ({:+.1} % from frame {} to {})",
            mib(start.0),
            mib(first.1),
            first.0,
            mib(warm.1),
            warm.0,
            mib(end.1),
            end.0,
            growth(warm.1, end.1),
            warm.0,
            end.0
        );
    }
    println!(
        "soak: {n} frames in {elapsed:.2?} ({:.1} frames/s), {warnings} warnings",
        n as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(n, frames, "every frame comes out");
    assert_eq!(
        without_meta.load(Ordering::Relaxed),
        0,
        "every frame has the objects meta"
    );
}
