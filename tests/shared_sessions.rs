// SPDX-License-Identifier: Apache-2.0
//! Many streams in one process (issue #13): segmenters and `tinysam`
//! elements that load the same model with the same options share one set
//! of ONNX Runtime sessions, take turns at them, and still give exactly the
//! masks of one instance alone; one instance's cancel or stop leaves the
//! others alone.
//!
//! Every test holds [`serial`]: they count the sessions of the process.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;

use gst::prelude::*;
use gsttinysam::segment::onnx::sessions::live_sessions;
use gsttinysam::segment::{
    EngineOptions, Error, ExecutionProviderKind, ModelSource, Prompt, SegmentOptions,
    SegmentedObject, Segmenter,
};

use common::element::{self, custom_meta_objects, harness, model_dir, push, rgba_frame, tinysam};
use common::{Scene, render};

/// The fixture's encoder, decoder and the two parts of its split decoder.
const SESSIONS_PER_MODEL: usize = 4;

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn threads(n_threads: usize) -> EngineOptions {
    EngineOptions {
        n_threads,
        ..EngineOptions::default()
    }
}

fn load_from(dir: &Path, options: &EngineOptions) -> (Segmenter, Vec<String>) {
    Segmenter::load(&ModelSource::directory(dir), options).unwrap_or_else(|e| panic!("{e}"))
}

fn load(options: &EngineOptions) -> Segmenter {
    load_from(&model_dir(), options).0
}

fn scenes() -> Vec<Scene> {
    (0..4)
        .map(|i| render(1300 + i, 320, 240, 3 + i as usize))
        .collect()
}

/// A box around each object and a point in it: more than the split
/// decoder's smallest batch, so both decoders run.
fn prompts(scene: &Scene) -> Vec<Prompt> {
    let w = scene.width as usize;
    let mut prompts = Vec::new();
    for mask in &scene.masks {
        let pixels: Vec<(f32, f32)> = mask
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(i, _)| ((i % w) as f32, (i / w) as f32))
            .collect();
        let (x0, y0, x1, y1) = pixels.iter().fold(
            (f32::MAX, f32::MAX, 0.0f32, 0.0f32),
            |(x0, y0, x1, y1), &(x, y)| (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
        );
        prompts.push(Prompt::new().with_box(x0, y0, x1 + 1.0, y1 + 1.0));
        let (x, y) = pixels[pixels.len() / 2];
        prompts.push(Prompt::new().with_point(x + 0.5, y + 0.5));
    }
    prompts
}

fn segment(segmenter: &mut Segmenter, scene: &Scene) -> Result<Vec<SegmentedObject>, Error> {
    let embedding = segmenter.embed(&scene.frame())?;
    segmenter
        .segment(&embedding, &prompts(scene), &SegmentOptions::default())
        .map(|s| s.objects)
}

fn segment_all(segmenter: &mut Segmenter, scenes: &[Scene]) -> Vec<Vec<SegmentedObject>> {
    scenes
        .iter()
        .map(|scene| segment(segmenter, scene).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn instances_with_the_same_model_and_options_share_one_set_of_sessions() {
    let _serial = serial();
    let before = live_sessions();
    let a = load(&threads(1));
    let b = load(&threads(1));
    assert!(a.shares_sessions_with(&b));
    assert_eq!(live_sessions(), before + SESSIONS_PER_MODEL);

    let other_threads = load(&threads(2));
    assert!(!other_threads.shares_sessions_with(&a));
    let own = load(&EngineOptions {
        share_sessions: false,
        ..threads(1)
    });
    assert!(!own.shares_sessions_with(&a));
    assert_eq!(live_sessions(), before + 3 * SESSIONS_PER_MODEL);

    drop(a);
    assert_eq!(live_sessions(), before + 3 * SESSIONS_PER_MODEL);
    drop((b, other_threads, own));
    assert_eq!(live_sessions(), before, "sessions outlived their instances");
    let again = load(&threads(1));
    assert_eq!(live_sessions(), before + SESSIONS_PER_MODEL);
    drop(again);
}

#[test]
fn another_path_to_the_same_files_shares_and_an_overwritten_model_loads_again() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("tinysam-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let copy = dir.join("model");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let link: PathBuf = dir.join("link");
    std::os::unix::fs::symlink(&copy, &link).unwrap();

    let (first, _) = load_from(&copy, &threads(1));
    let (linked, _) = load_from(&link, &threads(1));
    assert!(first.shares_sessions_with(&linked));
    assert!(
        !first.shares_sessions_with(&load(&threads(1))),
        "another directory"
    );

    // Overwritten in place: the file's modification time changes.
    std::fs::File::options()
        .write(true)
        .open(copy.join("decoder.onnx"))
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400))
        .unwrap();
    let (reloaded, _) = load_from(&copy, &threads(1));
    assert!(!reloaded.shares_sessions_with(&first));
    drop((first, linked, reloaded));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_instance_gets_the_warnings_of_creating_the_sessions() {
    let _serial = serial();
    let options = EngineOptions {
        execution_provider: ExecutionProviderKind::OpenVino,
        ..threads(1)
    };
    let (first, first_warnings) = load_from(&model_dir(), &options);
    let (second, second_warnings) = load_from(&model_dir(), &options);
    assert!(first.shares_sessions_with(&second));
    assert_eq!(first.execution_provider(), second.execution_provider());
    // The CPU build of ONNX Runtime has no OpenVINO: a warning, then CPU.
    if first.execution_provider() == ExecutionProviderKind::Cpu {
        for warnings in [&first_warnings, &second_warnings] {
            assert!(
                warnings.iter().any(|w| w.contains("OpenVINO")),
                "{warnings:?}"
            );
        }
    }
    assert_eq!(first_warnings, second_warnings);
}

#[test]
fn instances_running_at_once_give_the_masks_of_one_alone() {
    let _serial = serial();
    let scenes = Arc::new(scenes());
    let mut alone = load(&threads(1));
    let expected = Arc::new(segment_all(&mut alone, &scenes));
    let shared = [load(&threads(1)), load(&threads(1))];
    assert!(shared.iter().all(|s| s.shares_sessions_with(&alone)));
    let own = load(&EngineOptions {
        share_sessions: false,
        ..threads(1)
    });
    let workers: Vec<_> = shared
        .into_iter()
        .chain([own, alone])
        .enumerate()
        .map(|(i, mut segmenter)| {
            let (scenes, expected) = (Arc::clone(&scenes), Arc::clone(&expected));
            thread::spawn(move || {
                for round in 0..3 {
                    // Each worker in its own order, so different scenes meet.
                    for k in 0..scenes.len() {
                        let k = (k + i + round) % scenes.len();
                        let objects = segment(&mut segmenter, &scenes[k]).unwrap();
                        assert!(objects == expected[k], "worker {i}, scene {k}");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

#[test]
fn cancelling_one_instance_leaves_the_others_results_intact() {
    let _serial = serial();
    let scenes = Arc::new(scenes());
    let mut running = load(&threads(1));
    let expected = segment_all(&mut running, &scenes);
    let mut cancelled = load(&threads(1));
    assert!(cancelled.shares_sessions_with(&running));
    let canceller = cancelled.canceller();
    let (started, first_done) = mpsc::channel();
    let theirs = Arc::clone(&scenes);
    let victim = thread::spawn(move || {
        let mut done = 0;
        let error = loop {
            match segment(&mut cancelled, &theirs[done % theirs.len()]) {
                Ok(_) => {
                    done += 1;
                    let _ = started.send(());
                }
                Err(error) => break error,
            }
        };
        (cancelled, error)
    });
    first_done.recv().unwrap();
    // From here both take turns at the sessions; cancel one in the middle.
    let results: Vec<_> = (0..2)
        .flat_map(|_| scenes.iter())
        .enumerate()
        .map(|(i, scene)| {
            if i == 1 {
                canceller.cancel();
            }
            segment(&mut running, scene).unwrap()
        })
        .collect();
    for (i, objects) in results.iter().enumerate() {
        assert!(*objects == expected[i % scenes.len()], "frame {i}");
    }
    let (mut cancelled, error) = victim.join().unwrap();
    assert!(matches!(error, Error::Cancelled), "{error}");
    canceller.reset();
    assert_eq!(segment_all(&mut cancelled, &scenes), expected);
}

/// Each frame's objects, as (id, mask).
type FrameMasks = Vec<Vec<(u32, Vec<bool>)>>;

/// The objects of `frames` frames through a started `tinysam`, as
/// (id, mask) per frame.
fn element_masks(h: &mut gst_check::Harness, frames: u64) -> FrameMasks {
    let frame = rgba_frame();
    (0..frames)
        .map(|i| {
            let buffer = push(h, &frame, i);
            custom_meta_objects(&buffer)
                .into_iter()
                .map(|o| (o.id, o.mask))
                .collect()
        })
        .collect()
}

#[test]
fn tinysam_elements_share_sessions_unless_told_not_to() {
    let _serial = serial();
    let before = live_sessions();
    let properties = [("prompts", element::BOX_PROMPT), ("n-threads", "1")];
    let first = tinysam(&properties);
    assert!(first.property::<bool>("share-sessions"));
    let mut h1 = harness(&first, "RGBA");
    let mut h2 = harness(&tinysam(&properties), "RGBA");
    let alone = element_masks(&mut h1, 3);
    assert!(!alone[0].is_empty());
    assert_eq!(live_sessions(), before + SESSIONS_PER_MODEL);
    assert_eq!(element_masks(&mut h2, 3), alone);

    let own = tinysam(&[
        ("prompts", element::BOX_PROMPT),
        ("n-threads", "1"),
        ("share-sessions", "false"),
    ]);
    let mut h3 = harness(&own, "RGBA");
    assert_eq!(element_masks(&mut h3, 3), alone);
    assert_eq!(live_sessions(), before + 2 * SESSIONS_PER_MODEL);
    drop((h1, h2, h3));
    assert_eq!(live_sessions(), before);
}

/// `videotestsrc ! tinysam ! fakesink` with a moving ball, and the masks
/// of every frame.
fn ball_pipeline(buffers: Option<u32>) -> (gst::Pipeline, Arc<Mutex<FrameMasks>>) {
    element::init();
    let limit = buffers.map_or(String::new(), |n| format!("num-buffers={n}"));
    let description = format!(
        "videotestsrc {limit} pattern=ball ! {} ! tinysam model=\"{}\" n-threads=1 \
         processing=sync prompts=\"point=160,120\" everything-mode=none \
         ! fakesink name=sink sync=false",
        element::rgba_caps(),
        model_dir().display()
    );
    let masks = Arc::new(Mutex::new(Vec::new()));
    let theirs = Arc::clone(&masks);
    let pipeline = element::launch_watching_sink(&description, move |buffer| {
        let objects = custom_meta_objects(buffer)
            .into_iter()
            .map(|o| (o.id, o.mask))
            .collect();
        theirs.lock().unwrap().push(objects);
    });
    (pipeline, masks)
}

fn run_to_eos(pipeline: &gst::Pipeline) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or an error");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_stream_stopping_leaves_the_other_streams_on_the_same_sessions_alone() {
    let _serial = serial();
    const FRAMES: u32 = 12;
    let (lone, lone_masks) = ball_pipeline(Some(FRAMES));
    run_to_eos(&lone);
    let expected = lone_masks.lock().unwrap().clone();
    assert_eq!(expected.len(), FRAMES as usize);

    let (endless, endless_masks) = ball_pipeline(None);
    let (other, other_masks) = ball_pipeline(Some(FRAMES));
    endless.set_state(gst::State::Playing).unwrap();
    let beside = thread::spawn(move || {
        run_to_eos(&other);
        other_masks.lock().unwrap().clone()
    });
    while endless_masks.lock().unwrap().len() < 3 {
        thread::yield_now();
    }
    // Stopped while the other stream runs on the same sessions.
    endless.set_state(gst::State::Null).unwrap();
    let masks = beside.join().unwrap();
    assert_eq!(masks, expected);
    let endless_frames = endless_masks.lock().unwrap();
    assert_eq!(endless_frames[..3], expected[..3]);
}
