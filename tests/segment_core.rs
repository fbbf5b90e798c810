// SPDX-License-Identifier: Apache-2.0
//! The segmentation core against real ONNX models.
//!
//! `tests/data/tiny*` are random-init TinySAM networks with tiny widths
//! (written by `tests/data/make_test_models.py`): they check loading,
//! layouts, shapes, determinism and error paths, not mask quality. The
//! trained fixture (`models/tinysam-fixture`, or the directory named by
//! `TINYSAM_TEST_MODEL`) is exercised too when present.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gsttinysam::segment::{
    BitMask, CoordMode, DecoderLayout, EngineOptions, Error, ExecutionProviderKind, FrameView,
    MaskSelection, ModelSource, PixelFormat, Prompt, SegmentOptions, SegmentedObject, Segmenter,
    YuvColorimetry,
};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tinysam-segment-core-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options() -> EngineOptions {
    EngineOptions {
        n_threads: 1,
        ..EngineOptions::default()
    }
}

fn load(source: &ModelSource) -> Segmenter {
    let (segmenter, _warnings) =
        Segmenter::load(source, &options()).unwrap_or_else(|e| panic!("{e}"));
    segmenter
}

/// Which object each pixel of [`scene`] shows: 0 background, 1 the disc,
/// 2 the rectangle.
fn scene_labels(w: u32, h: u32) -> Vec<u8> {
    let (wi, hi) = (i64::from(w), i64::from(h));
    let mut labels = Vec::with_capacity((w * h) as usize);
    for y in 0..hi {
        for x in 0..wi {
            let (dx, dy) = (10 * x - 3 * wi, 10 * y - 4 * hi);
            let in_disc = dx * dx * hi * hi + dy * dy * wi * wi < 4 * wi * wi * hi * hi;
            let in_rect =
                (6 * wi..9 * wi).contains(&(10 * x)) && (10 * hi..17 * hi).contains(&(20 * y));
            labels.push(if in_disc {
                1
            } else if in_rect {
                2
            } else {
                0
            });
        }
    }
    labels
}

/// A `w x h` RGB scene: a gradient background with a red disc and a blue
/// rectangle. Integer arithmetic only, so that `make_test_models.py` draws
/// exactly the same pixels for the reference results.
fn scene(w: u32, h: u32) -> Vec<u8> {
    let labels = scene_labels(w, h);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for (i, label) in labels.iter().enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        rgb.extend(match label {
            1 => [220, 30, 40],
            2 => [20, 40, 210],
            _ => [(80 + 60 * x / w) as u8, (90 + 50 * y / h) as u8, 100],
        });
    }
    rgb
}

fn prompts(w: f32, h: f32) -> Vec<Prompt> {
    vec![
        Prompt::new().with_point(0.3 * w, 0.4 * h),
        Prompt::new().with_box(0.6 * w, 0.5 * h, 0.9 * w, 0.85 * h),
        Prompt::new()
            .with_point(0.75 * w, 0.7 * h)
            .with_negative(0.3 * w, 0.4 * h),
        Prompt::new()
            .with_box(0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h)
            .with_point(0.3 * w, 0.4 * h),
        Prompt::new().with_point(0.1 * w, 0.1 * h),
    ]
}

/// What holds for any model: one object per prompt, masks inside the
/// frame, consistent boxes, areas and logits.
fn check_objects(segmenter: &Segmenter, objects: &[SegmentedObject], count: usize, w: u32, h: u32) {
    let info = segmenter.info();
    assert_eq!(objects.len(), count);
    for (i, object) in objects.iter().enumerate() {
        assert_eq!(object.prompt_index, i);
        assert_eq!(object.id, i);
        let (x, y, bw, bh) = object.bbox();
        assert!(
            x + bw <= w && y + bh <= h,
            "box {:?} outside {w}x{h}",
            object.bbox()
        );
        assert_eq!(object.area, object.mask.count_ones());
        assert_eq!(object.mask.bits().len(), ((bw * bh) as usize).div_ceil(8));
        if object.area > 0 {
            // The box is tight: every edge row and column has a set pixel.
            let m = &object.mask;
            assert!((0..bw).any(|c| m.get(c, 0)) && (0..bw).any(|c| m.get(c, bh - 1)));
            assert!((0..bh).any(|r| m.get(0, r)) && (0..bh).any(|r| m.get(bw - 1, r)));
        }
        assert!(object.iou.is_finite());
        assert!((0.0..=1.0).contains(&object.stability));
        assert_eq!(
            (object.low_res.height(), object.low_res.width()),
            info.low_res_size
        );
        assert!(object.mask_index < info.mask_count.unwrap_or(usize::MAX));
    }
}

#[test]
fn segmenter_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Segmenter>();
    assert_send::<gsttinysam::segment::ImageEmbedding>();
}

#[test]
fn tiny_model_loads_with_its_metadata() {
    let segmenter = load(&ModelSource::directory(data("tiny")));
    let info = segmenter.info();
    assert_eq!(info.input_size, 128);
    assert_eq!(info.embedding, (32, 8, 8));
    assert_eq!(info.low_res_size, (32, 32));
    assert_eq!(info.mask_count, Some(4));
    assert_eq!(info.decoder_layout, DecoderLayout::Batched);
    assert_eq!(info.max_batch, None);
    assert_eq!(info.mask_selection, MaskSelection::TinySam);
    assert_eq!(info.name, "random-tiny");
    assert!(info.has_metadata);
    assert_eq!(segmenter.execution_provider(), ExecutionProviderKind::Cpu);
}

#[test]
fn segmenting_is_deterministic_and_well_formed() {
    let (w, h) = (200, 150);
    let rgb = scene(w, h);
    let frame = FrameView::packed(PixelFormat::Rgb, w, h, &rgb, w as usize * 3).unwrap();
    let mut segmenter = load(&ModelSource::directory(data("tiny")));
    let embedding = segmenter.embed(&frame).unwrap();
    assert_eq!(embedding.values().shape(), &[1, 32, 8, 8]);
    let g = embedding.geometry();
    assert_eq!(
        (
            g.frame_width,
            g.frame_height,
            g.resized_width,
            g.resized_height
        ),
        (200, 150, 128, 96)
    );

    let prompts = prompts(w as f32, h as f32);
    let options = SegmentOptions::default();
    let first = segmenter.segment(&embedding, &prompts, &options).unwrap();
    assert!(first.warnings.is_empty());
    check_objects(&segmenter, &first.objects, prompts.len(), w, h);
    assert!(
        first.objects.iter().any(|o| o.area > 0),
        "random model produced no mask at all"
    );
    // Grouped by point count (2, 2, 3, 3, 2): two decoder calls.
    assert_eq!(segmenter.timings().decoder_calls, 2);
    assert_eq!(segmenter.timings().prompts, 5);

    let again = segmenter.embed(&frame).unwrap();
    assert_eq!(again, embedding);
    let second = segmenter.segment(&again, &prompts, &options).unwrap();
    assert_eq!(second, first);

    // The same frame as BGRx with padded rows gives the same embedding.
    let stride = w as usize * 4 + 12;
    let mut bgrx = vec![0u8; stride * h as usize];
    for (i, p) in rgb.chunks(3).enumerate() {
        let at = (i / w as usize) * stride + (i % w as usize) * 4;
        bgrx[at..at + 4].copy_from_slice(&[p[2], p[1], p[0], 0]);
    }
    let bgrx_frame = FrameView::packed(PixelFormat::Bgrx, w, h, &bgrx, stride).unwrap();
    assert_eq!(segmenter.embed(&bgrx_frame).unwrap(), embedding);
}

#[test]
fn batched_calls_match_one_prompt_at_a_time() {
    let (w, h) = (160, 120);
    let rgb = scene(w, h);
    let frame = FrameView::packed(PixelFormat::Rgb, w, h, &rgb, w as usize * 3).unwrap();
    let mut segmenter = load(&ModelSource::directory(data("tiny")));
    let embedding = segmenter.embed(&frame).unwrap();
    let prompts = prompts(w as f32, h as f32);
    let batched = segmenter
        .segment(&embedding, &prompts, &SegmentOptions::default())
        .unwrap();
    let single = SegmentOptions {
        max_batch: 1,
        ..SegmentOptions::default()
    };
    for (i, prompt) in prompts.iter().enumerate() {
        let alone = segmenter
            .segment(&embedding, std::slice::from_ref(prompt), &single)
            .unwrap();
        let (a, b) = (&alone.objects[0], &batched.objects[i]);
        assert_eq!(a.mask_index, b.mask_index, "prompt {i}");
        assert!(
            (a.iou - b.iou).abs() < 1e-4,
            "prompt {i}: {} vs {}",
            a.iou,
            b.iou
        );
        assert_masks_close(&a.mask, &b.mask, i);
    }
    assert_eq!(segmenter.timings().decoder_calls, 1);
}

/// Masks from runs that may differ in float rounding: equal but for a few
/// pixels where a logit sits on the threshold.
fn assert_masks_close(a: &BitMask, b: &BitMask, what: impl std::fmt::Debug) {
    let x_end = (a.x() + a.width()).max(b.x() + b.width());
    let y_end = (a.y() + a.height()).max(b.y() + b.height());
    let mut differ = 0;
    for y in 0..y_end {
        for x in 0..x_end {
            differ += usize::from(a.contains(x, y) != b.contains(x, y));
        }
    }
    let area = a.count_ones().max(b.count_ones()) as usize;
    assert!(
        differ <= 2 + area / 1000,
        "{what:?}: {differ} pixels differ (area {area})"
    );
}

#[test]
fn sam_layout_decoder_matches_the_batched_one() {
    let (w, h) = (150, 200);
    let rgb = scene(w, h);
    let frame = FrameView::packed(PixelFormat::Rgb, w, h, &rgb, w as usize * 3).unwrap();
    let mut batched = load(&ModelSource::directory(data("tiny")));
    let mut sam = load(
        &ModelSource::directory(data("tiny")).with_decoder(data("tiny-sam-layout/decoder.onnx")),
    );
    assert_eq!(sam.info().decoder_layout, DecoderLayout::Sam);
    assert_eq!(sam.info().max_batch, Some(1));
    assert_eq!(sam.info().mask_count, Some(4));

    let prompts = prompts(w as f32, h as f32);
    let options = SegmentOptions::default();
    let embedding = batched.embed(&frame).unwrap();
    let a = batched.segment(&embedding, &prompts, &options).unwrap();
    let b = sam.segment(&embedding, &prompts, &options).unwrap();
    assert_eq!(sam.timings().decoder_calls, prompts.len());
    check_objects(&sam, &b.objects, prompts.len(), w, h);
    for (i, (x, y)) in a.objects.iter().zip(&b.objects).enumerate() {
        assert_eq!(x.mask_index, y.mask_index);
        assert!((x.iou - y.iou).abs() < 1e-4, "prompt {i}");
        assert_masks_close(&x.mask, &y.mask, i);
    }

    // A single-mask export: the only output is kept whatever the rule.
    let mut single = load(
        &ModelSource::directory(data("tiny")).with_decoder(data("tiny-sam-single/decoder.onnx")),
    );
    assert_eq!(single.info().mask_count, Some(1));
    let c = single.segment(&embedding, &prompts, &options).unwrap();
    check_objects(&single, &c.objects, prompts.len(), w, h);
    assert!(c.objects.iter().all(|o| o.mask_index == 0));
    let forced = SegmentOptions {
        selection: Some(MaskSelection::Output(0)),
        ..options
    };
    let d = batched.segment(&embedding, &prompts, &forced).unwrap();
    for (i, (x, y)) in c.objects.iter().zip(&d.objects).enumerate() {
        assert_masks_close(&x.mask, &y.mask, i);
    }
}

#[test]
fn files_without_metadata_use_sam_defaults() {
    let source = ModelSource::files(data("tiny/encoder.onnx"), data("tiny/decoder.onnx"));
    let (segmenter, warnings) = Segmenter::load(&source, &options()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let info = segmenter.info();
    assert!(!info.has_metadata);
    assert_eq!(info.input_size, 128);
    assert_eq!(info.mask_selection, MaskSelection::Sam);
    assert_eq!(info.name, "encoder");

    // A directory without model.json loads with a warning.
    let dir = scratch("no-metadata");
    std::fs::copy(data("tiny/encoder.onnx"), dir.join("encoder.onnx")).unwrap();
    std::fs::copy(data("tiny/decoder.onnx"), dir.join("decoder.onnx")).unwrap();
    let (_, warnings) = Segmenter::load(&ModelSource::directory(&dir), &options()).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("no model.json"), "{warnings:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn yuv_frames_and_refinement() {
    let (w, h) = (161u32, 121u32);
    let rgb = scene(w, h);
    // I420 from the RGB scene (BT.601 limited), odd size.
    let c = YuvColorimetry::BT601_LIMITED;
    let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
    let mut y_plane = vec![0u8; (w * h) as usize];
    let (mut u_plane, mut v_plane) = (vec![0u8; cw * ch], vec![0u8; cw * ch]);
    for (i, p) in rgb.chunks(3).enumerate() {
        let [y, u, v] = c.rgb_to_yuv([p[0], p[1], p[2]]);
        y_plane[i] = y;
        let (x, row) = (i % w as usize, i / w as usize);
        if x % 2 == 0 && row % 2 == 0 {
            u_plane[(row / 2) * cw + x / 2] = u;
            v_plane[(row / 2) * cw + x / 2] = v;
        }
    }
    let frame = FrameView::new(
        PixelFormat::I420,
        w,
        h,
        &[&y_plane, &u_plane, &v_plane],
        &[w as usize, cw, cw],
    )
    .unwrap()
    .with_colorimetry(c);
    let mut segmenter = load(&ModelSource::directory(data("tiny")));
    let embedding = segmenter.embed(&frame).unwrap();
    let prompts = [Prompt::new().with_point(0.3, 0.4)];
    let options = SegmentOptions {
        coord_mode: CoordMode::Normalized,
        ..SegmentOptions::default()
    };
    let first = segmenter.segment(&embedding, &prompts, &options).unwrap();
    check_objects(&segmenter, &first.objects, 1, w, h);

    // Feed the low-res logits back as mask input.
    let refined_prompt = prompts[0]
        .clone()
        .with_mask_input(Arc::clone(&first.objects[0].low_res));
    let refined = segmenter
        .segment(&embedding, &[refined_prompt], &options)
        .unwrap();
    check_objects(&segmenter, &refined.objects, 1, w, h);
    assert_ne!(refined.objects[0].low_res, first.objects[0].low_res);

    // Out-of-frame prompts are clamped and reported.
    let outside = [Prompt::new().with_point(1.5, 0.5)];
    let clamped = segmenter.segment(&embedding, &outside, &options).unwrap();
    assert_eq!(clamped.warnings.len(), 1);
    assert!(
        clamped.warnings[0].contains("clamped"),
        "{:?}",
        clamped.warnings
    );
}

#[test]
fn prompt_errors_are_reported_per_prompt() {
    let (w, h) = (64, 64);
    let rgb = scene(w, h);
    let frame = FrameView::packed(PixelFormat::Rgb, w, h, &rgb, w as usize * 3).unwrap();
    let mut segmenter = load(&ModelSource::directory(data("tiny")));
    let embedding = segmenter.embed(&frame).unwrap();
    let options = SegmentOptions::default();

    let wrong_mask = Arc::new(gsttinysam::segment::LowResLogits::new(8, 8, vec![0.0; 64]).unwrap());
    let prompts = [
        Prompt::new().with_point(1.0, 1.0),
        Prompt::new()
            .with_point(2.0, 2.0)
            .with_mask_input(wrong_mask),
    ];
    let err = segmenter
        .segment(&embedding, &prompts, &options)
        .unwrap_err();
    assert!(matches!(err, Error::Prompt { index: 1, .. }), "{err}");
    assert!(err.to_string().contains("8x8"), "{err}");

    let err = segmenter
        .segment(&embedding, &[Prompt::new()], &options)
        .unwrap_err();
    assert!(matches!(err, Error::Prompt { index: 0, .. }), "{err}");

    let bad_index = SegmentOptions {
        selection: Some(MaskSelection::Output(7)),
        ..options
    };
    let err = segmenter
        .segment(
            &embedding,
            &[Prompt::new().with_point(1.0, 1.0)],
            &bad_index,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not fit the decoder's 4 output(s)"),
        "{err}"
    );

    assert!(
        segmenter
            .segment(&embedding, &[], &options)
            .unwrap()
            .objects
            .is_empty()
    );
}

#[test]
fn unavailable_execution_provider_falls_back_to_cpu() {
    let options = EngineOptions {
        n_threads: 1,
        execution_provider: ExecutionProviderKind::OpenVino,
        ..EngineOptions::default()
    };
    let (segmenter, warnings) =
        Segmenter::load(&ModelSource::directory(data("tiny")), &options).unwrap();
    // The CPU build of ONNX Runtime has no OpenVINO: a warning, then CPU.
    if segmenter.execution_provider() == ExecutionProviderKind::Cpu {
        assert!(
            warnings.iter().any(|w| w.contains("OpenVINO")),
            "{warnings:?}"
        );
    }
}

#[test]
fn missing_files_are_named() {
    let dir = scratch("missing");
    let err = Segmenter::load(&ModelSource::directory(&dir), &options()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "encoder model {}: no such file",
            dir.join("encoder.onnx").display()
        )
    );

    let source = ModelSource::directory(data("tiny")).with_decoder(dir.join("nope.onnx"));
    let err = Segmenter::load(&source, &options()).unwrap_err();
    assert!(err.to_string().contains(&format!(
        "decoder model {}: no such file",
        dir.join("nope.onnx").display()
    )));

    let err = Segmenter::load(&ModelSource::directory(dir.join("absent")), &options()).unwrap_err();
    assert!(
        err.to_string().contains("absent: no such directory"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn corrupt_model_files_are_named() {
    let dir = scratch("corrupt");
    std::fs::write(
        dir.join("garbage.onnx"),
        b"this is not an ONNX protobuf at all",
    )
    .unwrap();
    let source = ModelSource::directory(data("tiny")).with_encoder(dir.join("garbage.onnx"));
    let err = Segmenter::load(&source, &options()).unwrap_err();
    assert!(matches!(err, Error::Onnx { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "encoder model {}: ONNX Runtime cannot load it",
            dir.join("garbage.onnx").display()
        )),
        "{text}"
    );

    // A truncated copy of a real model.
    let bytes = std::fs::read(data("tiny/decoder.onnx")).unwrap();
    std::fs::write(dir.join("truncated.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    let source = ModelSource::directory(data("tiny")).with_decoder(dir.join("truncated.onnx"));
    let err = Segmenter::load(&source, &options()).unwrap_err();
    assert!(err.to_string().contains("truncated.onnx"), "{err}");

    // Corrupt metadata.
    let meta_dir = scratch("corrupt-meta");
    std::fs::write(
        meta_dir.join("model.json"),
        b"{\"format\": \"tinysam-model\", \"format_version\": ",
    )
    .unwrap();
    let err = Segmenter::load(&ModelSource::directory(&meta_dir), &options()).unwrap_err();
    assert!(
        err.to_string()
            .contains("model.json: not valid model metadata"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(meta_dir).unwrap();
}

#[test]
fn wrong_models_list_expected_and_found_inputs() {
    let source = ModelSource::directory(data("tiny")).with_decoder(data("wrong_inputs.onnx"));
    let err = Segmenter::load(&source, &options()).unwrap_err();
    let Error::Layout(mismatch) = &err else {
        panic!("expected a layout error, got {err}");
    };
    assert_eq!(mismatch.what, "decoder");
    let text = err.to_string();
    for needle in [
        "wrong_inputs.onnx does not have the expected inputs and outputs",
        "missing input `image_embeddings`",
        "unexpected input `embeddings`",
        "expected:",
        "image_embeddings f32[1,C,h,w], point_coords f32[B,N,2]",
        "inputs:  embeddings f32[1,32,8,8], point_coords f32[batch,points,2]",
        "outputs: scores f32[1,32,8,8], coords_copy f32[batch,points,2]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    // A decoder given as the encoder.
    let source = ModelSource::files(data("tiny/decoder.onnx"), data("tiny/decoder.onnx"));
    let err = Segmenter::load(&source, &options()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("encoder model") && text.contains("the encoder has 5 inputs"),
        "{text}"
    );
}

/// The trained fixture, when present: same checks, plus masks that should
/// cover the prompted point.
#[test]
fn trained_fixture_when_present() {
    let dir = std::env::var_os("TINYSAM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tinysam-fixture"));
    if !dir.join("model.json").exists() {
        println!(
            "skipped: no model at {} (set TINYSAM_TEST_MODEL or create models/tinysam-fixture)",
            dir.display()
        );
        return;
    }
    let mut segmenter = load(&ModelSource::directory(&dir));
    let (w, h) = (320, 240);
    let rgb = scene(w, h);
    let frame = FrameView::packed(PixelFormat::Rgb, w, h, &rgb, w as usize * 3).unwrap();
    let embedding = segmenter.embed(&frame).unwrap();
    let prompts = prompts(w as f32, h as f32);
    let result = segmenter
        .segment(&embedding, &prompts, &SegmentOptions::default())
        .unwrap();
    check_objects(&segmenter, &result.objects, prompts.len(), w, h);
    let embedding = segmenter.embed(&frame).unwrap();
    let again = segmenter
        .segment(&embedding, &prompts, &SegmentOptions::default())
        .unwrap();
    assert_eq!(again, result);
    println!(
        "fixture {}: {:?}",
        segmenter.info().name,
        result
            .objects
            .iter()
            .map(|o| (o.bbox(), o.area, o.iou))
            .collect::<Vec<_>>()
    );

    // A trained model finds the disc (prompts 0 and 3) and the rectangle
    // (prompts 1 and 2) of the scene.
    let labels = scene_labels(w, h);
    for (i, want) in [(0, 1u8), (1, 2), (2, 2), (3, 1)] {
        let mask = &result.objects[i].mask;
        let (mut inter, mut union) = (0u32, 0u32);
        for (p, &label) in labels.iter().enumerate() {
            let (x, y) = (p as u32 % w, p as u32 / w);
            let (a, b) = (mask.contains(x, y), label == want);
            inter += u32::from(a && b);
            union += u32::from(a || b);
        }
        let iou = f64::from(inter) / f64::from(union.max(1));
        println!("prompt {i}: mask IoU with the scene's object {iou:.3}");
        assert!(
            iou > 0.85,
            "prompt {i}: mask IoU {iou:.3} with the scene's object"
        );
    }
}

/// End to end against SAM's reference pipeline (Pillow resize, torch
/// interpolation, one prompt per decoder call), computed in Python by
/// `make_test_models.py` on the same scene and prompts.
#[test]
fn matches_the_python_reference_pipeline() {
    let text = std::fs::read_to_string(data("tiny_reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (w, h) = (
        reference["frame"][0].as_u64().unwrap() as u32,
        reference["frame"][1].as_u64().unwrap() as u32,
    );
    let prompts =
        gsttinysam::segment::parse_prompts(reference["prompts"].as_str().unwrap()).unwrap();
    let rgb = scene(w, h);
    let frame = FrameView::packed(PixelFormat::Rgb, w, h, &rgb, w as usize * 3).unwrap();
    let mut segmenter = load(&ModelSource::directory(data("tiny")));
    let embedding = segmenter.embed(&frame).unwrap();
    let result = segmenter
        .segment(&embedding, &prompts, &SegmentOptions::default())
        .unwrap();
    let expected = reference["objects"].as_array().unwrap();
    assert_eq!(result.objects.len(), expected.len());
    for (i, (got, want)) in result.objects.iter().zip(expected).enumerate() {
        let bbox: Vec<u32> = want["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let hex = want["bits"].as_str().unwrap();
        let bits: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap())
            .collect();
        let want_mask = BitMask::from_packed(bbox[0], bbox[1], bbox[2], bbox[3], bits).unwrap();
        let (area, want_area) = (got.area as f64, want["area"].as_f64().unwrap());
        println!(
            "prompt {i}: index {} vs {}, iou {} vs {}, area {area} vs {want_area}, stability {} vs {}, box {:?} vs {bbox:?}",
            got.mask_index,
            want["mask_index"],
            got.iou,
            want["iou"],
            got.stability,
            want["stability"],
            got.bbox()
        );
        assert_eq!(
            got.mask_index as u64,
            want["mask_index"].as_u64().unwrap(),
            "prompt {i}"
        );
        assert!(
            (f64::from(got.iou) - want["iou"].as_f64().unwrap()).abs() < 1e-3,
            "prompt {i}"
        );
        assert!(
            (f64::from(got.stability) - want["stability"].as_f64().unwrap()).abs() < 0.01,
            "prompt {i}"
        );
        let mut differ = 0u64;
        for y in 0..h {
            for x in 0..w {
                differ += u64::from(got.mask.contains(x, y) != want_mask.contains(x, y));
            }
        }
        println!("prompt {i}: {differ} of {} pixels differ", w * h);
        assert!(
            differ as f64 <= 0.002 * f64::from(w * h),
            "prompt {i}: {differ} pixels differ"
        );
    }
}
