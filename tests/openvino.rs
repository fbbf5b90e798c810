// SPDX-License-Identifier: Apache-2.0
//! The OpenVINO execution provider (issue #13), on ONNX Runtime's OpenVINO
//! build from PyPI (`onnxruntime-openvino`, which `make setup` installs into
//! `.venv-openvino`): the encoder runs on OpenVINO at FP32 and gives the CPU
//! provider's masks; a model part OpenVINO cannot read (OpenVINO 2025.4
//! fails on the split decoder's image part) falls back to the CPU inside a
//! GStreamer process, whose libunwind must not meet OpenVINO's C++
//! exceptions, without taking the stream down.
//!
//! One ONNX Runtime per process, chosen before anything loads it: this file
//! is its own test binary, and its one test sets `ORT_DYLIB_PATH` first.

mod common;

use std::path::PathBuf;

use gsttinysam::segment::onnx::runtime;
use gsttinysam::segment::video::matching::mask_iou;
use gsttinysam::segment::{
    EngineOptions, ExecutionProviderKind, ModelSource, Prompt, SegmentOptions, SegmentedObject,
    Segmenter,
};

use common::element::{
    self, BOX_PROMPT, bus_warnings, custom_meta_objects, exact_mask, harness, iou, model_dir, push,
    rgba_frame, tinysam,
};
use common::{Scene, render, truth_box};

/// `libonnxruntime.so.*` of the OpenVINO build in `.venv-openvino`.
fn openvino_runtime() -> PathBuf {
    let venv = element::root().join(".venv-openvino/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|pythons| {
        pythons.flatten().find_map(|python| {
            let capi = python.path().join("site-packages/onnxruntime/capi");
            std::fs::read_dir(capi).ok()?.flatten().find_map(|f| {
                let name = f.file_name().to_string_lossy().into_owned();
                name.starts_with("libonnxruntime.so.").then(|| f.path())
            })
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "no ONNX Runtime with OpenVINO under {}: run `make setup`",
            venv.display()
        )
    })
}

fn load(provider: ExecutionProviderKind) -> (Segmenter, Vec<String>) {
    let options = EngineOptions {
        n_threads: 2,
        execution_provider: provider,
        ..EngineOptions::default()
    };
    Segmenter::load(&ModelSource::directory(model_dir()), &options)
        .unwrap_or_else(|e| panic!("{provider}: {e}"))
}

/// A box prompt around each object of the scene.
fn box_prompts(scene: &Scene) -> Vec<Prompt> {
    scene
        .masks
        .iter()
        .filter_map(|truth| truth_box(truth, scene.width))
        .map(|(x0, y0, x1, y1)| Prompt::new().with_box(x0 as f32, y0 as f32, x1 as f32, y1 as f32))
        .collect()
}

fn segment(segmenter: &mut Segmenter, scene: &Scene) -> Vec<SegmentedObject> {
    let embedding = segmenter
        .embed(&scene.frame())
        .unwrap_or_else(|e| panic!("{e}"));
    segmenter
        .segment(&embedding, &box_prompts(scene), &SegmentOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .objects
}

#[test]
fn openvino_gives_the_cpu_masks_in_the_core_and_in_the_element() {
    let library = openvino_runtime();
    // SAFETY: the only test of this binary, before anything reads the
    // environment or loads ONNX Runtime.
    unsafe { std::env::set_var(runtime::ORT_DYLIB_PATH_VAR, &library) };
    // libgstreamer (and with it libunwind) in the process from the start.
    element::init();

    let (mut on_cpu, _) = load(ExecutionProviderKind::Cpu);
    let (mut on_openvino, warnings) = load(ExecutionProviderKind::OpenVino);
    println!("{}: warnings {warnings:#?}", library.display());
    assert_eq!(
        on_openvino.execution_provider(),
        ExecutionProviderKind::OpenVino,
        "the encoder fell back: {warnings:?}"
    );
    assert!(!on_cpu.shares_sessions_with(&on_openvino));

    let (mut objects, mut worst_iou, mut worst_score) = (0, 1.0f32, 0.0f32);
    for seed in 0..4 {
        let scene = render(1500 + seed, 320, 240, 3 + seed as usize);
        let cpu = segment(&mut on_cpu, &scene);
        let openvino = segment(&mut on_openvino, &scene);
        assert_eq!(cpu.len(), openvino.len(), "scene {seed}");
        for (c, o) in cpu.iter().zip(&openvino) {
            assert_eq!(
                (c.prompt_index, c.mask_index),
                (o.prompt_index, o.mask_index)
            );
            worst_iou = worst_iou.min(mask_iou(&c.mask, &o.mask));
            worst_score = worst_score.max((c.iou - o.iou).abs());
            objects += 1;
        }
    }
    println!(
        "{objects} objects: worst mask IoU OpenVINO vs CPU {worst_iou:.5}, \
         largest predicted-IoU difference {worst_score:.2e}"
    );
    assert!(objects >= 12);
    // FP32 on both: the logits agree to ~1e-5, so only pixels on the
    // threshold can flip.
    assert!(worst_iou >= 0.995, "mask IoU {worst_iou}");
    assert!(
        worst_score <= 1e-3,
        "predicted IoU differs by {worst_score}"
    );

    let sam = tinysam(&[
        ("prompts", BOX_PROMPT),
        ("execution-provider", "openvino"),
        ("n-threads", "2"),
    ]);
    let mut h = harness(&sam, "RGBA");
    let found = custom_meta_objects(&push(&mut h, &rgba_frame(), 0));
    assert!(
        bus_warnings(&sam).is_empty(),
        "the element did not run on OpenVINO"
    );
    assert_eq!(found.len(), 1);
    let score = iou(&found[0].mask, &exact_mask());
    println!("element on OpenVINO, box prompt: IoU {score:.4} with the exact mask");
    assert!(score >= 0.85, "IoU {score}");
}
