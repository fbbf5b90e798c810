// SPDX-License-Identifier: Apache-2.0
//! Stage timings of the segmentation core, printed, never asserted (the
//! machines are shared and noisy). Run in release mode:
//!
//! ```text
//! cargo test --release --test segment_bench -- --ignored --nocapture
//! TINYSAM_BENCH_MODEL=/path/to/model-dir cargo test --release --test segment_bench -- --ignored --nocapture
//! ```
//!
//! Without `TINYSAM_BENCH_MODEL` the model part uses `models/tinysam-fixture`
//! when present, else the tiny random test model. `TINYSAM_BENCH_THREADS`
//! sets ONNX Runtime's threads; the everything bench also reads
//! `TINYSAM_BENCH_SCENES`, `TINYSAM_BENCH_RUNS` and `TINYSAM_BENCH_FRAME`
//! (e.g. `1280x720`; default: 12 small scenes, 3 runs each), and
//! `TINYSAM_BENCH_PRED_IOU` / `TINYSAM_BENCH_STABILITY` for the filters,
//! `TINYSAM_BENCH_BATCH` for the prompts per decoder call.
//! `TINYSAM_BENCH_PROVIDER` (`cpu`, `openvino`, ...) picks the execution
//! provider; `openvino` needs `ORT_DYLIB_PATH` set to ONNX Runtime's OpenVINO
//! build (docs/building.md).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gsttinysam::segment::image::preprocess::{Preprocessor, SAM_PIXEL_MEAN, SAM_PIXEL_STD};
use gsttinysam::segment::masks::mask::BitMask;
use gsttinysam::segment::masks::postprocess::MaskUpscaler;
use gsttinysam::segment::video::{TrackState, TrackedObject};
use gsttinysam::segment::{
    EngineOptions, EverythingOptions, EverythingStrategy, ExecutionProviderKind, FrameView,
    FrameViewMut, Geometry, MaskEffect, MaskPainter, ModelSource, OverlayStyle, PixelFormat,
    Prompt, SegmentOptions, Segmenter, draw_mask, draw_objects,
};
use gsttinysam::tinysam::meta::{FrameMasks, attach_meta};

const RUNS: usize = 15;

/// Time this thread has spent on a CPU (Linux), which unlike wall time
/// does not grow when other processes take the cores; `None` elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Runs `f` `RUNS` times; median wall time and mean on-CPU time (the
/// kernel updates the latter at scheduler ticks, so a mean, not a median).
fn measure(mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (start, start_cpu) = (Instant::now(), thread_cpu_time());
        f();
        wall.push(start.elapsed());
        if let (Some(a), Some(b)) = (start_cpu, thread_cpu_time()) {
            cpu.push(b.saturating_sub(a));
        }
    }
    let runs = u32::try_from(cpu.len()).unwrap_or(1).max(1);
    let cpu = (!cpu.is_empty()).then(|| cpu.iter().sum::<Duration>() / runs);
    (median(wall), cpu)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The process's peak resident memory (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak to the current resident memory (Linux's clear_refs "5")
/// and returns it, MiB.
fn reset_peak_rss() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    peak_rss_mib()
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1e3)
}

/// Plane sizes and bytes of a 1080p frame of `format` with a textured pattern.
fn frame_data(format: PixelFormat, w: u32, h: u32) -> (Vec<Vec<u8>>, Vec<usize>) {
    (0..format.plane_count())
        .map(|p| {
            let (row_bytes, rows) = format.plane_size(p, w, h).unwrap();
            let data = (0..row_bytes * rows)
                .map(|i| ((i * 31 + i / row_bytes * 17) % 251) as u8)
                .collect();
            (data, row_bytes)
        })
        .unzip()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn preprocessing_at_1080p() {
    let (w, h) = (1920, 1080);
    println!("pre-processing {w}x{h} -> 1024 (median of {RUNS}):");
    println!("  format   conversion      resize   normalise  total wall   total CPU");
    for format in [
        PixelFormat::Rgb,
        PixelFormat::Rgba,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ] {
        let (planes, strides) = frame_data(format, w, h);
        let slices: Vec<&[u8]> = planes.iter().map(Vec::as_slice).collect();
        let frame = FrameView::new(format, w, h, &slices, &strides).unwrap();
        let mut pre = Preprocessor::new(1024, SAM_PIXEL_MEAN, SAM_PIXEL_STD).unwrap();
        let (mut conv, mut resize, mut norm) = (vec![], vec![], vec![]);
        let (wall, cpu) = measure(|| {
            let (_, t) = pre.run(&frame).unwrap();
            conv.push(t.conversion);
            resize.push(t.resize);
            norm.push(t.normalise);
        });
        println!(
            "  {format:6} {} {} {} {} {}",
            ms(median(conv)),
            ms(median(resize)),
            ms(median(norm)),
            ms(wall),
            cpu.map_or("?".to_owned(), ms)
        );
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn mask_upscaling_at_1080p() {
    let g = Geometry::new(1920, 1080, 1024).unwrap();
    let (lh, lw) = (256usize, 256usize);
    println!("upscaling one 256x256 low-res mask to 1920x1080 (median of {RUNS}):");
    // Discs of growing radius (in low-res cells) on a strongly negative background.
    for radius in [8.0f32, 32.0, 90.0, 400.0] {
        let logits: Vec<f32> = (0..lh * lw)
            .map(|i| {
                let (x, y) = ((i % lw) as f32 - 128.0, (i / lw) as f32 - 72.0);
                (radius - (x * x + y * y).sqrt()).clamp(-12.0, 12.0)
            })
            .collect();
        let mut upscaler = MaskUpscaler::new();
        let mut area = 0;
        let (wall, cpu) =
            measure(|| area = upscaler.upscale(&logits, lh, lw, &g, 0.0).unwrap().area);
        println!(
            "  radius {radius:5} cells: area {area:8} px, wall {}, CPU {}",
            ms(wall),
            cpu.map_or("?".to_owned(), ms)
        );
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn overlay_modes_at_1080p() {
    let (w, h) = (1920u32, 1080u32);
    // A large object (a disc of radius 300 px, 15% of the frame) and a small one.
    let disc = |cx: u32, cy: u32, r: u32| {
        BitMask::from_fn(cx - r, cy - r, 2 * r, 2 * r, |c, row| {
            let (dx, dy) = (c as f32 - r as f32 + 0.5, row as f32 - r as f32 + 0.5);
            dx * dx + dy * dy <= (r * r) as f32
        })
    };
    let objects = [disc(700, 500, 300), disc(1500, 300, 60)];
    let masks: Vec<&BitMask> = objects.iter().collect();
    let area: u64 = objects.iter().map(BitMask::count_ones).sum();
    println!(
        "overlay modes, {w}x{h}, 2 objects ({area} px, {:.1}% of the frame), median of {RUNS}:",
        100.0 * area as f64 / f64::from(w * h)
    );
    println!("  format   fill       alpha      blur r16   pixel 16   blur inv.  pixel inv.");
    for format in [
        PixelFormat::Rgba,
        PixelFormat::Bgrx,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ] {
        let (mut planes, strides) = frame_data(format, w, h);
        let mut painter = MaskPainter::new();
        let mut time = |effect: Option<MaskEffect>, invert: bool| -> String {
            if effect == Some(MaskEffect::Alpha) && !format.has_alpha() {
                return "       -  ".to_owned();
            }
            let (wall, _) = measure(|| {
                let refs: Vec<&mut [u8]> = planes.iter_mut().map(|p| &mut p[..]).collect();
                let mut view = FrameViewMut::new(format, w, h, refs, &strides).unwrap();
                match effect {
                    None => {
                        for (i, mask) in objects.iter().enumerate() {
                            draw_mask(
                                &mut view,
                                mask,
                                [255, i as u8 * 100, 0],
                                &OverlayStyle::default(),
                            );
                        }
                    }
                    Some(effect) => painter.apply(&mut view, &masks, effect, invert).unwrap(),
                }
            });
            ms(wall)
        };
        let row = [
            time(None, false),
            time(Some(MaskEffect::Alpha), false),
            time(Some(MaskEffect::Blur { radius: 16 }), false),
            time(Some(MaskEffect::Pixelate { block: 16 }), false),
            time(Some(MaskEffect::Blur { radius: 16 }), true),
            time(Some(MaskEffect::Pixelate { block: 16 }), true),
        ];
        println!("  {format:6} {}", row.join(" "));
    }
}

/// `a` and `b`'s common pixels counted one pixel at a time: what
/// `matching::intersection` did before it counted words.
fn intersection_per_pixel(a: &BitMask, b: &BitMask) -> u64 {
    let (x0, y0) = (a.x().max(b.x()), a.y().max(b.y()));
    let x1 = (a.x() + a.width()).min(b.x() + b.width());
    let y1 = (a.y() + a.height()).min(b.y() + b.height());
    let mut count = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            count += u64::from(a.contains(x, y) && b.contains(x, y));
        }
    }
    count
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn many_followed_objects() {
    use gsttinysam::segment::video::{VideoOptions, VideoSegmenter, matching::intersection};
    let mut video = VideoSegmenter::new(bench_segmenter());
    let scene = common::render(5, 640, 480, 6);
    let embedding = video.segmenter_mut().embed(&scene.frame()).unwrap();
    println!("many prompted objects on a 640x480 scene (6 shapes), tracking on:");
    println!(
        "  objects   frame (acquire)   frame (track)   pairwise intersections: per pixel / per word"
    );
    for n in [64usize, 256] {
        // Points on a grid: many land on the background or on one shape,
        // so their masks overlap heavily (the worst case for the checks).
        let side = (n as f64).sqrt().ceil() as usize;
        let prompts: Vec<Prompt> = (0..n)
            .map(|i| {
                let (c, r) = (i % side, i / side);
                Prompt::new().with_point(
                    (c as f32 + 0.5) * 640.0 / side as f32,
                    (r as f32 + 0.5) * 480.0 / side as f32,
                )
            })
            .collect();
        let options = VideoOptions::default();
        video.reset();
        let start = Instant::now();
        let first = video.process(&embedding, &prompts, &options).unwrap();
        let acquire = start.elapsed();
        let start = Instant::now();
        video.process(&embedding, &prompts, &options).unwrap();
        let track = start.elapsed();
        let masks: Vec<&BitMask> = first.objects.iter().map(|o| &o.object.mask).collect();
        let pairs = |f: &dyn Fn(&BitMask, &BitMask) -> u64| {
            let start = Instant::now();
            let mut total = 0u64;
            for (i, a) in masks.iter().enumerate() {
                for b in &masks[i + 1..] {
                    total += f(a, b);
                }
            }
            (start.elapsed(), total)
        };
        let (pixel, t1) = pairs(&|a, b| intersection_per_pixel(a, b));
        let (word, t2) = pairs(&|a, b| intersection(a, b));
        assert_eq!(t1, t2);
        println!(
            "  {n:7} {} {} {} / {} ({:.0}x)",
            ms(acquire),
            ms(track),
            ms(pixel),
            ms(word),
            pixel.as_secs_f64() / word.as_secs_f64().max(1e-9)
        );
    }
}

/// The benchmark's model (see the module documentation), loaded.
fn bench_segmenter() -> Segmenter {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("TINYSAM_BENCH_MODEL")
        .map(PathBuf::from)
        .or_else(|| {
            Some(root.join("models/tinysam-fixture")).filter(|d| d.join("model.json").exists())
        })
        .unwrap_or_else(|| root.join("tests/data/tiny"));
    let threads = std::env::var("TINYSAM_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let provider = std::env::var("TINYSAM_BENCH_PROVIDER")
        .ok()
        .map(|p| p.parse::<ExecutionProviderKind>().unwrap())
        .unwrap_or_default();
    let options = EngineOptions {
        n_threads: threads,
        execution_provider: provider,
        ..EngineOptions::default()
    };
    let (segmenter, warnings) = Segmenter::load(&ModelSource::directory(&dir), &options).unwrap();
    println!(
        "model {} ({}), {threads} threads (0 = ORT default), on {} (asked: {provider}), \
         warnings {warnings:?}",
        dir.display(),
        segmenter.info().name,
        segmenter.execution_provider()
    );
    segmenter
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn frame_stages_at_720p_and_1080p() {
    // The plugin registers the custom meta.
    gst::init().unwrap();
    gsttinysam::plugin_register_static().unwrap();
    let mut segmenter = bench_segmenter();
    let runs = 5;
    println!(
        "one NV12 frame with 8 prompts (4 points, 4 boxes), median of {runs} runs, stages in ms:"
    );
    println!(
        "  frame      conv+resize  encoder  decoder     post  overlay     meta |    total  outside ORT"
    );
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let (mut planes, strides) = frame_data(PixelFormat::Nv12, w, h);
        let prompts: Vec<Prompt> = (0..8)
            .map(|i| {
                let x = w as f32 * (i as f32 + 0.5) / 8.0;
                let y = h as f32 / 2.0;
                if i % 2 == 0 {
                    Prompt::new().with_point(x, y)
                } else {
                    Prompt::new().with_box(x - 60.0, y - 150.0, x + 60.0, y + 150.0)
                }
            })
            .collect();
        let mut stages: [Vec<Duration>; 7] = Default::default();
        for _ in 0..runs {
            let start = Instant::now();
            let slices: Vec<&[u8]> = planes.iter().map(Vec::as_slice).collect();
            let frame = FrameView::new(PixelFormat::Nv12, w, h, &slices, &strides).unwrap();
            let embedding = segmenter.embed(&frame).unwrap();
            let result = segmenter
                .segment(&embedding, &prompts, &SegmentOptions::default())
                .unwrap();
            let t = *segmenter.timings();

            let overlay_start = Instant::now();
            let (y_plane, uv_plane) = planes.split_at_mut(1);
            let mut view = FrameViewMut::new(
                PixelFormat::Nv12,
                w,
                h,
                vec![&mut y_plane[0][..], &mut uv_plane[0][..]],
                &strides,
            )
            .unwrap();
            draw_objects(&mut view, &result.objects, &OverlayStyle::default());
            let overlay = overlay_start.elapsed();

            let mut buffer = gst::Buffer::new();
            let tracked: Vec<TrackedObject> = result
                .objects
                .iter()
                .map(|o| TrackedObject {
                    id: o.id as u64,
                    object: o.clone(),
                    state: TrackState::Acquired,
                    prompt_index: Some(o.prompt_index),
                })
                .collect();
            let shown: Vec<&TrackedObject> = tracked.iter().collect();
            let prompts = std::collections::HashMap::new();
            let masks = FrameMasks {
                objects: &shown,
                inference_pts: None,
                computed: true,
                prompts: &prompts,
                regions: &[],
            };
            let meta_start = Instant::now();
            attach_meta(buffer.get_mut().unwrap(), w, h, &masks).unwrap();
            let meta = meta_start.elapsed();

            let total = start.elapsed();
            for (stage, d) in stages.iter_mut().zip([
                t.conversion + t.resize + t.normalise,
                t.encoder,
                t.decoder,
                t.postprocess,
                overlay,
                meta,
                total,
            ]) {
                stage.push(d);
            }
        }
        let [pre, enc, dec, post, overlay, meta, total] = stages.map(median);
        let outside = total.saturating_sub(enc + dec);
        let f = |d: Duration| format!("{:8.1}", d.as_secs_f64() * 1e3);
        println!(
            "  {w}x{h} {}     {} {} {} {} {} | {} {:10.1}%",
            f(pre),
            f(enc),
            f(dec),
            f(post),
            f(overlay),
            f(meta),
            f(total),
            100.0 * outside.as_secs_f64() / total.as_secs_f64().max(1e-9)
        );
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn everything_dense_vs_hierarchical() {
    let mut segmenter = bench_segmenter();
    let env = |name: &str| std::env::var(name).ok();
    let count = env("TINYSAM_BENCH_SCENES").and_then(|n| n.parse().ok());
    let runs = env("TINYSAM_BENCH_RUNS")
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    // TINYSAM_BENCH_FRAME=1280x720 renders the scenes at that size.
    let frame = env("TINYSAM_BENCH_FRAME").and_then(|f| {
        let (w, h) = f.split_once('x')?;
        Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?))
    });
    let scenes: Vec<common::Scene> = match frame {
        Some((w, h)) => (0..count.unwrap_or(3))
            .map(|i| common::render(1000 + i as u64, w, h, 2 + i % 7))
            .collect(),
        None => common::scenes()
            .into_iter()
            .take(count.unwrap_or(usize::MAX))
            .collect(),
    };
    let defaults = EverythingOptions::default();
    let prompts_per_batch = env("TINYSAM_BENCH_BATCH")
        .and_then(|n| n.parse().ok())
        .unwrap_or(defaults.prompts_per_batch);
    println!(
        "everything mode on {} rendered scenes, {runs} runs each, at most {prompts_per_batch} \
         prompts per batch asked; medians per frame:",
        scenes.len()
    );
    let mut totals = Vec::new();
    for strategy in [EverythingStrategy::Dense, EverythingStrategy::Hierarchical] {
        let options = EverythingOptions {
            strategy,
            pred_iou_thresh: env("TINYSAM_BENCH_PRED_IOU")
                .and_then(|t| t.parse().ok())
                .unwrap_or(defaults.pred_iou_thresh),
            stability_score_thresh: env("TINYSAM_BENCH_STABILITY")
                .and_then(|t| t.parse().ok())
                .unwrap_or(defaults.stability_score_thresh),
            points_per_side: env("TINYSAM_BENCH_POINTS")
                .and_then(|n| n.parse().ok())
                .unwrap_or(defaults.points_per_side),
            prompts_per_batch,
            ..defaults
        };
        let rss_before = reset_peak_rss();
        let (mut encoder, mut decoder, mut post, mut total) = (vec![], vec![], vec![], vec![]);
        let (mut prompts, mut without_masks, mut objects) = (vec![], vec![], vec![]);
        for scene in &scenes {
            let frame = scene.frame();
            for _ in 0..runs {
                let start = Instant::now();
                let embedding = segmenter.embed(&frame).unwrap();
                let result = segmenter.segment_everything(&embedding, &options).unwrap();
                total.push(start.elapsed());
                let t = segmenter.timings();
                encoder.push(t.encoder);
                decoder.push(t.decoder);
                post.push(t.postprocess);
                prompts.push(t.prompts);
                without_masks.push(t.prompts_without_masks);
                objects.push(result.objects.len());
            }
        }
        prompts.sort_unstable();
        without_masks.sort_unstable();
        objects.sort_unstable();
        let total = median(total);
        println!(
            "  {strategy:12?}: encoder {} prompts {:5} (without masks {:5}) decoder {} post {} \
             total {} objects {} peak RSS {:.0} MiB (+{:.0} over the {:.0} MiB before)",
            ms(median(encoder)),
            prompts[prompts.len() / 2],
            without_masks[without_masks.len() / 2],
            ms(median(decoder)),
            ms(median(post)),
            ms(total),
            objects[objects.len() / 2],
            peak_rss_mib(),
            peak_rss_mib() - rss_before,
            rss_before,
        );
        totals.push(total);
    }
    if let [dense, hierarchical] = totals[..] {
        println!(
            "  dense / hierarchical total: {:.2}x",
            dense.as_secs_f64() / hierarchical.as_secs_f64().max(1e-9)
        );
    }
}
