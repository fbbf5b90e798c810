// SPDX-License-Identifier: Apache-2.0
//! The split decoder (image side once per frame, prompt side per batch)
//! gives the plain decoder's results, with the trained fixture
//! (`models/tinysam-fixture`, or `TINYSAM_TEST_MODEL`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gsttinysam::segment::{
    EngineOptions, Error, EverythingOptions, EverythingStrategy, ModelSource, Prompt,
    SegmentOptions, Segmentation, Segmenter,
};

fn fixture() -> PathBuf {
    std::env::var_os("TINYSAM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tinysam-fixture"))
}

fn load(source: &ModelSource) -> Result<Segmenter, Error> {
    let options = EngineOptions {
        n_threads: 1,
        ..EngineOptions::default()
    };
    Segmenter::load(source, &options).map(|(segmenter, _warnings)| segmenter)
}

/// Segments `prompts` on a rendered scene with `segmenter`.
fn run(segmenter: &mut Segmenter, prompts: &[Prompt]) -> Segmentation {
    let scene = common::render(7, 640, 480, 5);
    let embedding = segmenter.embed(&scene.frame()).unwrap();
    segmenter
        .segment(&embedding, prompts, &SegmentOptions::default())
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_same(split: &Segmentation, plain: &Segmentation) {
    assert_eq!(split.objects.len(), plain.objects.len());
    for (s, p) in split.objects.iter().zip(&plain.objects) {
        assert_eq!(s.mask_index, p.mask_index);
        assert!((s.iou - p.iou).abs() <= 1e-4, "iou {} vs {}", s.iou, p.iou);
        let diff = max_abs_diff(s.low_res.values(), p.low_res.values());
        assert!(diff <= 1e-4, "low-res logits differ by {diff}");
        assert_eq!(s.area, p.area);
    }
}

#[test]
fn split_decoder_matches_the_plain_decoder() {
    let dir = fixture();
    let mut split = load(&ModelSource::directory(&dir)).unwrap();
    assert!(
        split.info().split_decoder,
        "the fixture ships a split decoder"
    );
    // Naming the decoder file overrides the directory's split decoder.
    let mut plain =
        load(&ModelSource::directory(&dir).with_decoder(dir.join("decoder.onnx"))).unwrap();
    assert!(!plain.info().split_decoder);

    // Enough prompts for the split path; points, boxes, negatives, mixed sizes.
    let prompts: Vec<Prompt> = (0..6)
        .map(|i| {
            let x = 60.0 + 100.0 * i as f32;
            match i % 3 {
                0 => Prompt::new().with_point(x, 240.0),
                1 => Prompt::new().with_box(x - 50.0, 150.0, x + 50.0, 330.0),
                _ => Prompt::new()
                    .with_point(x, 200.0)
                    .with_negative(x + 20.0, 300.0),
            }
        })
        .collect();
    let from_split = run(&mut split, &prompts);
    let from_plain = run(&mut plain, &prompts);
    assert_eq!(from_split.objects.len(), prompts.len());
    assert_same(&from_split, &from_plain);

    // Refinement: prompts carrying mask inputs take the prompt side's
    // mask branch.
    let refined: Vec<Prompt> = prompts
        .iter()
        .zip(&from_plain.objects)
        .map(|(p, o)| p.clone().with_mask_input(Arc::clone(&o.low_res)))
        .collect();
    assert_same(&run(&mut split, &refined), &run(&mut plain, &refined));
}

#[test]
fn a_missing_split_file_is_named() {
    let dir = std::env::temp_dir().join(format!("tinysam-split-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in [
        "encoder.onnx",
        "decoder.onnx",
        "decoder_image.onnx",
        "model.json",
    ] {
        std::fs::copy(fixture().join(file), dir.join(file)).unwrap();
    }
    let err = load(&ModelSource::directory(&dir)).unwrap_err().to_string();
    assert!(err.contains("decoder_prompt.onnx"), "{err}");
    assert!(err.contains("split decoder prompt part"), "{err}");

    // Overriding the decoder drops the directory's split files.
    let plain = load(&ModelSource::directory(&dir).with_decoder(dir.join("decoder.onnx"))).unwrap();
    assert!(!plain.info().split_decoder);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything mode hands the prompt side `pred_iou_thresh` as its
/// `mask_iou_floor`: prompts whose every output fails it get no masks, and
/// what is kept is exactly what the plain decoder (which computes every mask)
/// keeps.
#[test]
fn everything_mode_skips_the_masks_of_failing_prompts_and_keeps_the_same_objects() {
    let dir = fixture();
    let mut split = load(&ModelSource::directory(&dir)).unwrap();
    let mut plain =
        load(&ModelSource::directory(&dir).with_decoder(dir.join("decoder.onnx"))).unwrap();
    let scene = common::render(11, 640, 480, 5);
    for strategy in [EverythingStrategy::Dense, EverythingStrategy::Hierarchical] {
        let options = EverythingOptions {
            points_per_side: 16,
            strategy,
            ..EverythingOptions::default()
        };
        let with_floor = {
            let embedding = split.embed(&scene.frame()).unwrap();
            split.segment_everything(&embedding, &options).unwrap()
        };
        let skipped = split.timings().prompts_without_masks;
        let decoded = split.timings().prompts;
        let every_mask = {
            let embedding = plain.embed(&scene.frame()).unwrap();
            plain.segment_everything(&embedding, &options).unwrap()
        };
        assert_eq!(plain.timings().prompts_without_masks, 0);
        assert_eq!(plain.timings().prompts, decoded, "{strategy:?}");
        assert!(
            skipped > 0 && skipped < decoded,
            "{strategy:?}: {skipped} of {decoded} prompts without masks"
        );
        assert!(!with_floor.objects.is_empty(), "{strategy:?}");
        assert_same(&with_floor, &every_mask);
        for (s, p) in with_floor.objects.iter().zip(&every_mask.objects) {
            assert_eq!(s.mask, p.mask, "{strategy:?}");
        }
    }
}
