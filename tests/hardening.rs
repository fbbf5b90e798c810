// SPDX-License-Identifier: Apache-2.0
//! Regression tests for input that once crashed, hung or exhausted a host
//! process (issue #9): huge prompts, thread counts, state changes and
//! flushes during a long frame, everything-mode memory, error domains, and
//! the element's smaller contracts (passthrough, chained instances, the
//! model's mask threshold, one-pixel frames).

mod common;

use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_base::prelude::*;
use gst_check::Harness;
use gsttinysam::segment::limits::{MAX_EVERYTHING_CANDIDATES, MAX_POINTS_PER_PROMPT, MAX_THREADS};
use gsttinysam::segment::{
    EngineOptions, Error, EverythingOptions, EverythingStrategy, FrameView, ModelSource,
    PixelFormat, Prompt, SegmentOptions, Segmenter,
};

use common::element::*;

/// Peak and current resident memory of this process, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn fixture_segmenter() -> Segmenter {
    init();
    Segmenter::load(
        &ModelSource::directory(model_dir()),
        &EngineOptions::default(),
    )
    .expect("the fixture loads")
    .0
}

/// `points` positive points along the ellipse's axis, as prompt text.
fn many_points(points: usize) -> String {
    (0..points)
        .map(|i| format!("point={},120", 100 + i % 120))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn huge_prompts_are_refused_and_the_previous_ones_kept() {
    let sam = tinysam(&[("prompts", BOX_PROMPT)]);
    // 40,000 points in one object: 490 KB of text, which once took ONNX
    // Runtime's decoder to tens of GB and the process down with it.
    let huge = many_points(40_000);
    sam.set_property("prompts", &huge);
    assert_eq!(sam.property::<String>("prompts"), BOX_PROMPT);
    let (text, debug) = pop_warning(&sam);
    assert!(
        text.contains(&format!("at most {MAX_POINTS_PER_PROMPT}")),
        "{text}"
    );
    assert!(text.len() < 600, "the warning echoes {} bytes", text.len());
    assert!(
        debug.len() < 600,
        "the debug text echoes {} bytes",
        debug.len()
    );

    let numbers: Vec<f64> = (0..80_000).map(|i| f64::from(100 + i % 120)).collect();
    let list = gst::Array::new([prompt_structure("points", &numbers)]);
    sam.set_property("prompt-list", &list);
    assert_eq!(sam.property::<String>("prompts"), BOX_PROMPT);
    let (text, _) = pop_warning(&sam);
    assert!(text.contains("40000 points") && text.len() < 600, "{text}");

    // Too many objects, and coordinates no frame has.
    sam.set_property("prompts", "point=1,1; ".repeat(1025));
    assert!(pop_warning(&sam).0.contains("at most 1024"));
    let list = gst::Array::new([prompt_structure("box", &[1e300, 0.0, 10.0, 10.0])]);
    sam.set_property("prompt-list", &list);
    assert!(pop_warning(&sam).0.contains("out of range"));
    assert_eq!(sam.property::<String>("prompts"), BOX_PROMPT);

    // Nothing was lost: the box still segments the ellipse.
    let mut h = harness(&sam, "RGBA");
    let objects = custom_meta_objects(&push(&mut h, &rgba_frame(), 0));
    assert_eq!(objects.len(), 1);
    assert!(iou(&objects[0].mask, &exact_mask()) >= 0.85);

    // The core refuses them too, before running anything.
    let mut segmenter = fixture_segmenter();
    let frame = rgba_frame();
    let view = FrameView::packed(PixelFormat::Rgba, WIDTH, HEIGHT, &frame, WIDTH as usize * 4)
        .expect("an RGBA frame");
    let embedding = segmenter.embed(&view).expect("embedding");
    let prompt = (0..40_000).fold(Prompt::new(), |p, i| p.with_point(i as f32 % 320.0, 120.0));
    let err = segmenter
        .segment(&embedding, &[prompt], &SegmentOptions::default())
        .expect_err("a 40,000-point prompt");
    assert!(matches!(err, Error::Prompt { index: 0, .. }), "{err}");
}

#[test]
fn thread_counts_are_bounded() {
    init();
    let sam = gst::ElementFactory::make("tinysam").build().unwrap();
    let pspec = sam
        .find_property("n-threads")
        .and_then(|p| p.downcast::<glib::ParamSpecUInt>().ok())
        .expect("n-threads is a uint");
    assert_eq!(pspec.maximum() as usize, MAX_THREADS);

    let options = EngineOptions {
        n_threads: 1024,
        ..EngineOptions::default()
    };
    let err = Segmenter::load(&ModelSource::directory(model_dir()), &options)
        .expect_err("1024 threads per session");
    assert!(
        matches!(err, Error::Options(_)) && err.to_string().contains("at most 64"),
        "{err}"
    );
}

/// A pipeline whose one frame takes tens of seconds: everything mode on a
/// 256 x 256 grid with every filter off.
fn long_frame_pipeline() -> gst::Pipeline {
    init();
    let description = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGBA,width=320,height=240 \
         ! tinysam name=sam model=\"{}\" everything-mode=dense points-per-side=256 \
           pred-iou-thresh=0 stability-score-thresh=0 ! fakesink",
        model_dir().display()
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    // The model loads, then the frame starts.
    std::thread::sleep(Duration::from_millis(1500));
    pipeline
}

fn assert_no_error(pipeline: &gst::Pipeline) {
    let bus = pipeline.bus().unwrap();
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("unexpected error: {msg:?}");
    }
}

#[test]
fn stopping_during_a_long_frame_returns_at_once() {
    let pipeline = long_frame_pipeline();
    let started = Instant::now();
    pipeline.set_state(gst::State::Null).expect("NULL");
    let took = started.elapsed();
    println!("PLAYING -> NULL during an everything-mode frame: {took:?}");
    // Without cancellation this waits for the whole frame (tens of seconds).
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_no_error(&pipeline);
}

#[test]
fn flushing_seek_cancels_the_frame_in_progress() {
    let pipeline = long_frame_pipeline();
    let started = Instant::now();
    pipeline
        .seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO)
        .expect("a flushing seek");
    let took = started.elapsed();
    println!("flushing seek during an everything-mode frame: {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let started = Instant::now();
    pipeline.set_state(gst::State::Null).expect("NULL");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_no_error(&pipeline);
}

#[test]
fn everything_memory_is_bounded_by_the_candidate_cap() {
    let mut segmenter = fixture_segmenter();
    let frame = rgba_frame();
    let view = FrameView::packed(PixelFormat::Rgba, WIDTH, HEIGHT, &frame, WIDTH as usize * 4)
        .expect("an RGBA frame");
    let embedding = segmenter.embed(&view).expect("embedding");
    let before = memory_mib();
    // 4096 prompts with every filter off: 12,288 candidates.
    let options = EverythingOptions {
        strategy: EverythingStrategy::Dense,
        points_per_side: 64,
        pred_iou_thresh: 0.0,
        stability_score_thresh: 0.0,
        ..EverythingOptions::default()
    };
    let result = segmenter
        .segment_everything(&embedding, &options)
        .expect("everything mode");
    let after = memory_mib();
    println!(
        "everything mode, 4096 prompts, filters off: {} objects; peak RSS {:.0} -> {:.0} MiB",
        result.objects.len(),
        before.0,
        after.0
    );
    assert!(!result.objects.is_empty());
    assert!(result.objects.len() <= MAX_EVERYTHING_CANDIDATES);
    assert!(
        result.warnings.iter().any(|w| w.contains("were dropped")),
        "{:?}",
        result.warnings
    );
}

#[test]
fn errors_have_fitting_domains_and_say_what_to_fix() {
    let (error, _) = start_failure("model=/nonexistent/tinysam");
    assert!(error.matches(gst::ResourceError::NotFound), "{error}");
    // The message itself names the file and the fix, not only the debug text.
    let text = error.message();
    assert!(
        text.contains("/nonexistent/tinysam") && text.contains("Set `model`"),
        "{text}"
    );

    let (error, _) = start_failure("");
    assert!(error.matches(gst::ResourceError::NotFound), "{error}");
    assert!(error.message().contains("set the `model` property"));

    let data = root().join("tests/data");
    let (error, _) = start_failure(&format!(
        "model=\"{}\" decoder-model=\"{}\"",
        data.join("tiny").display(),
        data.join("wrong_inputs.onnx").display()
    ));
    assert!(error.matches(gst::ResourceError::Settings), "{error}");
    assert!(error.message().contains("missing input `image_embeddings`"));

    // A file that is not ONNX at all.
    let garbage = std::env::temp_dir().join(format!("tinysam-garbage-{}.onnx", std::process::id()));
    std::fs::write(&garbage, b"not a model").unwrap();
    let (error, _) = start_failure(&format!(
        "model=\"{}\" encoder-model=\"{}\"",
        data.join("tiny").display(),
        garbage.display()
    ));
    let _ = std::fs::remove_file(&garbage);
    assert!(error.matches(gst::ResourceError::OpenRead), "{error}");
    assert!(
        error.message().contains("tools/export.py"),
        "{}",
        error.message()
    );
}

#[test]
fn an_idle_element_passes_buffers_through_untouched() {
    let sam = tinysam(&[("everything-mode", "none")]);
    let mut h = harness(&sam, "RGBA");
    let transform = sam.clone().downcast::<gst_base::BaseTransform>().unwrap();
    assert!(transform.is_passthrough());
    let buffer = gst::Buffer::from_slice(rgba_frame());
    let pointer = buffer.as_ptr();
    let out = h.push_and_pull(buffer).expect("a buffer out");
    assert_eq!(out.as_ptr(), pointer, "the very same buffer, not a copy");

    sam.set_property("prompts", BOX_PROMPT);
    assert!(!transform.is_passthrough());
    assert_eq!(
        custom_meta_objects(&push(&mut h, &rgba_frame(), 1)).len(),
        1
    );
}

/// Custom metas holding `tinysam/objects` on `buffer`.
fn tinysam_metas(buffer: &gst::BufferRef) -> usize {
    let mut count = 0;
    buffer.foreach_meta(|meta| {
        if meta
            .try_as_custom_meta()
            .is_some_and(|custom| custom.structure().name() == "tinysam/objects")
        {
            count += 1;
        }
        std::ops::ControlFlow::Continue(())
    });
    count
}

#[test]
fn a_second_instance_replaces_the_first_ones_metadata() {
    init();
    let model = model_dir().display().to_string();
    let mut h = Harness::new_parse(&format!(
        "tinysam model=\"{model}\" processing=sync prompts=\"{BOX_PROMPT}\" \
         ! tinysam model=\"{model}\" processing=sync prompts=\"point=20,20\""
    ));
    h.set_src_caps_str(&rgba_caps());
    let out = h
        .push_and_pull(gst::Buffer::from_slice(rgba_frame()))
        .expect("a buffer out");
    assert_eq!(tinysam_metas(&out), 1);
    assert_eq!(roi_masks(&out).len(), 1);
    // The objects are the downstream instance's: a background point, not
    // the upstream box around the ellipse.
    let objects = custom_meta_objects(&out);
    assert_eq!(objects.len(), 1);
    assert!(iou(&objects[0].mask, &exact_mask()) < 0.5);
}

/// A copy of the fixture, in a folder named after `what`, whose model.json
/// `edit` changes.
fn fixture_with(what: &str, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tinysam-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let path = dir.join("model.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, meta.to_string()).unwrap();
    dir
}

#[test]
fn the_models_mask_threshold_applies_until_the_property_is_set() {
    let dir = fixture_with("threshold", |meta| meta["mask_threshold"] = 6.0.into());
    let area = |sam: &gst::Element| {
        let mut h = harness(sam, "RGBA");
        let objects = custom_meta_objects(&push(&mut h, &rgba_frame(), 0));
        (objects[0].area, sam.property::<f64>("mask-threshold"))
    };
    let sam = tinysam(&[("prompts", BOX_PROMPT)]);
    let (plain, plain_threshold) = area(&sam);

    let sam = tinysam(&[("prompts", BOX_PROMPT)]);
    sam.set_property("model", dir.display().to_string());
    let (from_model, threshold) = area(&sam);
    assert_eq!(plain_threshold, 0.0);
    assert_eq!(threshold, 6.0, "the property reads the model's threshold");
    assert!(
        from_model < plain,
        "threshold 6 keeps fewer pixels: {from_model} vs {plain}"
    );

    let sam = tinysam(&[("prompts", BOX_PROMPT), ("mask-threshold", "0")]);
    sam.set_property("model", dir.display().to_string());
    assert_eq!(area(&sam).0, plain, "a set property overrides model.json");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether this CPU has VNNI, read from /proc/cpuinfo rather than asked of
/// the element's own check.
fn cpu_has_vnni() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|line| line.starts_with("flags"))
            .is_some_and(|flags| {
                flags
                    .split_whitespace()
                    .any(|f| f == "avx512_vnni" || f == "avx_vnni")
            })
    })
}

/// An INT8 model with full 8-bit weights computes wrong masks where ONNX
/// Runtime's int8 products saturate (CPUs without VNNI); the element says
/// so on the bus there, and only there, and still segments.
#[test]
fn full_range_int8_weights_are_warned_about_without_vnni() {
    let full = fixture_with("int8-full-range", |meta| {
        meta["precision"] = "int8".into();
        meta["quantization"] = serde_json::json!({"encoder": "dynamic"});
    });
    let reduced = fixture_with("int8-reduce-range", |meta| {
        meta["precision"] = "int8".into();
        meta["quantization"] = serde_json::json!({"encoder": "dynamic", "reduce_range": true});
    });
    let warnings = |dir: &std::path::Path| {
        let sam = tinysam(&[("prompts", BOX_PROMPT)]);
        sam.set_property("model", dir.display().to_string());
        let mut h = harness(&sam, "RGBA");
        assert_eq!(
            custom_meta_objects(&push(&mut h, &rgba_frame(), 0)).len(),
            1
        );
        bus_warnings(&sam)
            .into_iter()
            .map(|error| {
                assert!(error.matches(gst::LibraryError::Settings), "{error:?}");
                error.to_string()
            })
            .collect::<Vec<_>>()
    };
    let vnni = cpu_has_vnni();
    let full_warnings = warnings(&full);
    println!("VNNI: {vnni}; warnings for full-range INT8 weights: {full_warnings:?}");
    if vnni {
        assert!(full_warnings.is_empty(), "{full_warnings:?}");
    } else {
        assert_eq!(full_warnings.len(), 1, "{full_warnings:?}");
        assert!(
            full_warnings[0].contains("no VNNI") && full_warnings[0].contains("--precision int8"),
            "{}",
            full_warnings[0]
        );
    }
    assert_eq!(
        warnings(&reduced),
        Vec::<String>::new(),
        "7-bit weights are exact everywhere"
    );
    for dir in [full, reduced] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_one_pixel_frame_gives_at_most_one_object() {
    let sam = tinysam(&[
        ("points-per-side", "16"),
        ("pred-iou-thresh", "0"),
        ("stability-score-thresh", "0"),
    ]);
    let mut h = Harness::with_element(&sam, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=RGBA,width=1,height=1,framerate=30/1");
    let out = h
        .push_and_pull(gst::Buffer::from_slice(vec![200u8, 100, 50, 255]))
        .expect("a buffer out");
    let meta = gst::meta::CustomMeta::from_buffer(&out, "GstTinySamMeta").expect("the meta");
    let count = meta.structure().get::<u32>("count").unwrap();
    assert!(count <= 1, "{count} objects in a 1x1 frame");
}

#[test]
fn property_enums_are_plugin_api() {
    init();
    let _ = gst::ElementFactory::make("tinysam").build().unwrap();
    for name in [
        "GstTinySamCoordinates",
        "GstTinySamMaskSelection",
        "GstTinySamEverythingMode",
        "GstTinySamExecutionProvider",
    ] {
        let t = glib::Type::from_name(name).expect(name);
        assert!(t.plugin_api_flags().is_some(), "{name} is not plugin API");
    }
}
