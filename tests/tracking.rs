// SPDX-License-Identifier: Apache-2.0
//! Objects over time (`segment::video`) with the trained fixture on
//! synthetic videos with exact masks (`tests/common`): prompted objects
//! followed from one prompt on the first frame, identities in everything
//! mode, loss and re-acquisition, and what each costs per frame.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Scene, interior_point, iou_with_truth, movers, moving_shapes, render, truth_box};

use gsttinysam::segment::video::{
    IdCounter, MaskInput, ObjectPrompt, PromptOrigin, RepromptOptions, TrackState, TrackerSettings,
    VideoFrame, VideoOptions, VideoSegmenter,
};
use gsttinysam::segment::{
    CoordMode, EngineOptions, EverythingOptions, ImageEmbedding, ModelSource, Prompt, Segmenter,
};

/// Frames of the moving-shapes video.
const FRAMES: usize = 36;

fn fixture() -> Segmenter {
    let dir = std::env::var_os("TINYSAM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tinysam-fixture"));
    Segmenter::load(&ModelSource::directory(dir), &EngineOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// Embeds every frame once; returns the embeddings and the mean encoder
/// time (pre-processing included).
fn embed_all(segmenter: &mut Segmenter, scenes: &[Scene]) -> (Vec<ImageEmbedding>, Duration) {
    let start = Instant::now();
    let embeddings = scenes
        .iter()
        .map(|s| {
            segmenter
                .embed(&s.frame())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    (embeddings, start.elapsed() / scenes.len().max(1) as u32)
}

/// Everything mode on a 16x16 grid at the default filters (SAM's 0.88 /
/// 0.95, as tests/everything.rs runs it).
fn everything_options() -> EverythingOptions {
    EverythingOptions {
        points_per_side: 16,
        ..EverythingOptions::default()
    }
}

fn prompted_options(tracking: bool) -> VideoOptions {
    VideoOptions {
        tracking,
        everything: None,
        ..VideoOptions::default()
    }
}

/// A box around each object of `scene`, grown by 2 px as a user would
/// draw it.
fn box_prompts(scene: &Scene) -> Vec<Prompt> {
    scene
        .masks
        .iter()
        .map(|m| {
            let (x0, y0, x1, y1) = truth_box(m, scene.width).expect("a visible object");
            Prompt::new().with_box(
                x0 as f32 - 2.0,
                y0 as f32 - 2.0,
                x1 as f32 + 2.0,
                y1 as f32 + 2.0,
            )
        })
        .collect()
}

/// One point on each object of `scene`, well inside it.
fn point_prompts(scene: &Scene) -> Vec<Prompt> {
    scene
        .masks
        .iter()
        .map(|m| {
            let (x, y) = interior_point(m, scene.width).expect("a visible object");
            Prompt::new().with_point(x, y)
        })
        .collect()
}

/// How well prompted objects followed the truth.
#[derive(Debug, Default)]
struct Score {
    /// Mean IoU over objects and frames (a lost object counts 0).
    mean_iou: f64,
    /// Per object.
    per_object: Vec<f64>,
    /// Object-frames whose mask best matches another true object.
    swaps: usize,
    /// Losses reported, and object-frames in state Lost.
    losses: usize,
    lost_frames: usize,
    /// Mean `process` time per frame (decoding and tracking, no encoder).
    per_frame: Duration,
}

fn follow(
    video: &mut VideoSegmenter,
    scenes: &[Scene],
    embeddings: &[ImageEmbedding],
    prompts: &[Prompt],
    options: &VideoOptions,
) -> (Score, Vec<VideoFrame>) {
    video.reset();
    let n = prompts.len();
    let mut sums = vec![0.0; n];
    let mut score = Score::default();
    let mut frames = Vec::new();
    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    for (t, (scene, embedding)) in scenes.iter().zip(embeddings).enumerate() {
        let begin = Instant::now();
        let frame = video
            .process(embedding, prompts, options)
            .unwrap_or_else(|e| panic!("frame {t}: {e}"));
        elapsed += begin.elapsed();
        assert_eq!(frame.objects.len(), n, "frame {t}");
        score.losses += frame.lost.len();
        for (i, o) in frame.objects.iter().enumerate() {
            assert_eq!(o.id, i as u64, "frame {t}: prompted ids are prompt indices");
            assert_eq!(o.prompt_index, Some(i));
            assert_eq!(o.object.id, i);
            if o.state == TrackState::Lost {
                score.lost_frames += 1;
                assert!(o.object.mask.is_empty());
                continue;
            }
            let ious: Vec<f64> = scene
                .masks
                .iter()
                .map(|truth| iou_with_truth(&o.object.mask, truth, scene.width))
                .collect();
            sums[i] += ious[i];
            let best = (0..ious.len())
                .max_by(|&a, &b| ious[a].total_cmp(&ious[b]))
                .unwrap_or(i);
            if best != i && ious[best] > 0.0 {
                score.swaps += 1;
            }
        }
        frames.push(frame);
    }
    let _ = start;
    let count = scenes.len() as f64;
    score.per_object = sums.iter().map(|s| s / count).collect();
    score.mean_iou = sums.iter().sum::<f64>() / (count * n as f64);
    score.per_frame = elapsed / scenes.len().max(1) as u32;
    (score, frames)
}

fn settings(reprompt: RepromptOptions) -> TrackerSettings {
    TrackerSettings {
        reprompt,
        ..TrackerSettings::default()
    }
}

/// The re-prompt strategies compared: the default and what each of its
/// ingredients is worth (`all`: also margins, first-frame and second-attempt
/// variants, for `reprompt_strategies_at_other_speeds`).
fn strategies(all: bool) -> Vec<(&'static str, RepromptOptions)> {
    let base = RepromptOptions::default();
    let boxed = |margin: f32| RepromptOptions {
        box_margin: Some(margin),
        move_points: false,
        mask_input: MaskInput::Off,
        predict_motion: true,
        unknown_motion_margin: 0.0,
        recovery_margin: None,
    };
    let moved = RepromptOptions {
        box_margin: None,
        move_points: true,
        ..boxed(0.0)
    };
    let with = |o: RepromptOptions, m: MaskInput| RepromptOptions { mask_input: m, ..o };
    let search = |o: RepromptOptions, m: f32| RepromptOptions {
        unknown_motion_margin: m,
        ..o
    };
    let mut list = vec![
        ("default", base),
        (
            "default without second attempt",
            RepromptOptions {
                recovery_margin: None,
                ..base
            },
        ),
        ("box", boxed(0.0)),
        ("box 10%", boxed(0.1)),
        (
            "box, no motion prediction",
            RepromptOptions {
                predict_motion: false,
                ..boxed(0.0)
            },
        ),
        ("box + mask input", with(boxed(0.0), MaskInput::Previous)),
        (
            "box + shifted mask input",
            with(boxed(0.0), MaskInput::Shifted),
        ),
        ("original prompt moved", moved),
        (
            "original prompt moved + shifted mask input",
            with(moved, MaskInput::Shifted),
        ),
    ];
    if all {
        list.extend([
            (
                "default, second attempt 25%",
                RepromptOptions {
                    recovery_margin: Some(0.25),
                    ..base
                },
            ),
            ("box 5%", boxed(0.05)),
            (
                "box 10% + mask input",
                with(boxed(0.1), MaskInput::Previous),
            ),
            (
                "box 10% + shifted mask input",
                with(boxed(0.1), MaskInput::Shifted),
            ),
            (
                "box + shifted mask input, first 10%",
                search(with(boxed(0.0), MaskInput::Shifted), 0.1),
            ),
            (
                "box + shifted mask input, first 50%",
                search(with(boxed(0.0), MaskInput::Shifted), 0.5),
            ),
            (
                "box + points moved",
                RepromptOptions {
                    move_points: true,
                    ..boxed(0.0)
                },
            ),
        ]);
    }
    list
}

/// Follows `prompts` with each strategy and prints the table; returns the
/// default's score.
fn compare(
    label: &str,
    video: &mut VideoSegmenter,
    scenes: &[Scene],
    embeddings: &[ImageEmbedding],
    prompts: &[Prompt],
    all: bool,
) -> Score {
    let (off, _) = follow(video, scenes, embeddings, prompts, &prompted_options(false));
    println!(
        "{label:10} {:44} IoU {:.3} {:.2?} swaps {:2} losses {:2}",
        "tracking off", off.mean_iou, off.per_object, off.swaps, off.losses
    );
    let mut default = None;
    for (name, reprompt) in strategies(all) {
        video.set_settings(settings(reprompt));
        let (s, frames) = follow(video, scenes, embeddings, prompts, &prompted_options(true));
        println!(
            "{label:10} {name:44} IoU {:.3} {:.2?} swaps {:2} losses {:2} lost frames {:3} \
             {:.1} ms/frame",
            s.mean_iou,
            s.per_object,
            s.swaps,
            s.losses,
            s.lost_frames,
            s.per_frame.as_secs_f64() * 1e3
        );
        if std::env::var("TRACE").is_ok_and(|t| t == name) {
            for (t, f) in frames.iter().enumerate() {
                let row: Vec<String> = f
                    .objects
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        let truth = &scenes[t].masks[i];
                        format!(
                            "{} {}/{} px iou {:.2} truth {:.2}",
                            o.state,
                            o.object.area,
                            truth.iter().filter(|&&v| v).count(),
                            o.object.iou,
                            iou_with_truth(&o.object.mask, truth, scenes[t].width)
                        )
                    })
                    .collect();
                println!("  {t:2} {}", row.join(" | "));
            }
        }
        if default.is_none() {
            default = Some(s);
        }
    }
    video.set_settings(TrackerSettings::default());
    let default = default.unwrap_or_default();
    println!(
        "{label}: mean IoU tracking on {:.3}, off {:.3} (drop without tracking {:.3})",
        default.mean_iou,
        off.mean_iou,
        default.mean_iou - off.mean_iou
    );
    default
}

#[test]
fn the_video_moves_crosses_and_stays_visible() {
    let movers = movers();
    let scenes = moving_shapes(FRAMES);
    let mut occluded = 0;
    for (t, scene) in scenes.iter().enumerate() {
        for (k, (m, truth)) in movers.iter().zip(&scene.masks).enumerate() {
            let shape = m.shape_at(t, scene.width, scene.height);
            let full = (0..scene.width * scene.height)
                .filter(|i| {
                    shape.contains(
                        (i % scene.width) as f32 + 0.5,
                        (i / scene.width) as f32 + 0.5,
                    )
                })
                .count();
            let visible = truth.iter().filter(|&&v| v).count();
            assert!(full > 500, "frame {t} object {k}: {full} px");
            assert!(
                visible * 10 >= full * 4,
                "frame {t} object {k}: {visible} of {full} visible"
            );
            if visible * 100 < full * 95 {
                occluded += 1;
            }
        }
    }
    let speeds: Vec<f32> = movers
        .iter()
        .map(|m| m.velocity.0.hypot(m.velocity.1))
        .collect();
    println!("speeds {speeds:?} px/frame; {occluded} object-frames partly hidden");
    assert!(occluded >= 5, "some objects cross");
    assert!(speeds.iter().any(|&s| s <= 4.0) && speeds.iter().any(|&s| s >= 13.0));
}

/// Prompted once on frame 0 (a box, or one point, per object), every
/// object is followed through crossings and speeds up to 14 px/frame.
#[test]
fn prompted_objects_are_followed_without_swaps() {
    let scenes = moving_shapes(FRAMES);
    let mut segmenter = fixture();
    let (embeddings, encoder) = embed_all(&mut segmenter, &scenes);
    let mut video = VideoSegmenter::new(segmenter);
    println!("encoder {:.1} ms per frame", encoder.as_secs_f64() * 1e3);
    let boxes = box_prompts(&scenes[0]);
    let points = point_prompts(&scenes[0]);
    let by_box = compare("box", &mut video, &scenes, &embeddings, &boxes, false);
    let by_point = compare("point", &mut video, &scenes, &embeddings, &points, false);
    for (kind, score) in [("box", by_box), ("point", by_point)] {
        assert!(
            score.mean_iou >= 0.80,
            "{kind}: mean IoU {:.3}",
            score.mean_iou
        );
        assert_eq!(score.swaps, 0, "{kind}: identity swaps");
        assert_eq!(score.losses, 0, "{kind}: losses");
    }
}

/// An object that leaves is reported lost once, stays lost with an empty
/// mask, and is found again from its prompt when it comes back; the other
/// object is unaffected.
#[test]
fn a_vanished_object_is_lost_once_and_reacquired() {
    let all = movers();
    let (ellipse, rect) = (
        common::Mover {
            velocity: (0.0, 0.0),
            ..all[0]
        },
        common::Mover {
            velocity: (0.0, 0.0),
            ..all[1]
        },
    );
    let present = common::render_movers(&[ellipse, rect], 0, 320, 240);
    let absent = common::render_movers(&[rect], 0, 320, 240);
    let scenes: Vec<&Scene> = (0..12)
        .map(|t| {
            if (4..8).contains(&t) {
                &absent
            } else {
                &present
            }
        })
        .collect();
    let mut segmenter = fixture();
    let embeddings: Vec<ImageEmbedding> = scenes
        .iter()
        .map(|s| segmenter.embed(&s.frame()).unwrap())
        .collect();
    let mut video = VideoSegmenter::new(segmenter);
    let prompts = box_prompts(&present);
    let options = prompted_options(true);
    let mut states = Vec::new();
    for (t, (scene, embedding)) in scenes.iter().zip(&embeddings).enumerate() {
        let frame = video.process(embedding, &prompts, &options).unwrap();
        let [e, r] = &frame.objects[..] else {
            panic!("frame {t}: {} objects", frame.objects.len())
        };
        states.push(e.state);
        assert_eq!(
            frame.lost,
            if t == 4 { vec![0] } else { vec![] },
            "frame {t}"
        );
        assert_ne!(r.state, TrackState::Lost, "frame {t}");
        assert!(iou_with_truth(&r.object.mask, &scene.masks[scene.masks.len() - 1], 320) >= 0.8);
        if e.state == TrackState::Lost {
            assert!(e.object.mask.is_empty() && e.object.area == 0);
        } else {
            assert!(
                iou_with_truth(&e.object.mask, &scene.masks[0], 320) >= 0.8,
                "frame {t}"
            );
        }
    }
    use TrackState::{Acquired, Lost, Tracked};
    assert_eq!(
        states,
        [
            Acquired, Tracked, Tracked, Tracked, Lost, Lost, Lost, Lost, Acquired, Tracked,
            Tracked, Tracked
        ]
    );
}

/// Objects followed by id: one removed or added leaves the others' tracks
/// alone, a changed prompt restarts only that object (keeping its id), and
/// a prompt that gains a point corrects the followed object.
#[test]
fn objects_are_followed_by_id_through_prompt_edits() {
    let scenes = moving_shapes(6);
    let mut segmenter = fixture();
    let (embeddings, _) = embed_all(&mut segmenter, &scenes);
    let mut video = VideoSegmenter::new(segmenter);
    let options = prompted_options(true);
    let boxes = box_prompts(&scenes[0]);
    let object = |id: u64, prompt: &Prompt| ObjectPrompt {
        id,
        prompt: prompt.clone(),
        coord_mode: CoordMode::Pixels,
        origin: PromptOrigin::Event,
    };
    let summary = |f: &VideoFrame| {
        f.objects
            .iter()
            .map(|o| (o.id, o.state))
            .collect::<Vec<_>>()
    };
    let two = [object(10, &boxes[0]), object(20, &boxes[1])];
    let f0 = video
        .process_objects(&embeddings[0], &two, &options)
        .unwrap();
    assert_eq!(
        summary(&f0),
        [(10, TrackState::Acquired), (20, TrackState::Acquired)]
    );
    // 10 removed, 30 added (prompted on this frame): 20 keeps its track.
    let boxes_1 = box_prompts(&scenes[1]);
    let next = [object(20, &boxes[1]), object(30, &boxes_1[2])];
    let f1 = video
        .process_objects(&embeddings[1], &next, &options)
        .unwrap();
    assert_eq!(
        summary(&f1),
        [(20, TrackState::Tracked), (30, TrackState::Acquired)]
    );
    assert_eq!(f1.objects[1].prompt_index, Some(1));
    for (o, truth) in f1
        .objects
        .iter()
        .zip([&scenes[1].masks[1], &scenes[1].masks[2]])
    {
        let score = iou_with_truth(&o.object.mask, truth, 320);
        assert!(score >= 0.8, "object {}: IoU {score:.3}", o.id);
    }
    // 30's prompt gains a negative point far outside it: a correction, so
    // acquired again from its prompt moved with it, keeping its track.
    let corrected = boxes_1[2].clone().with_negative(2.0, 2.0);
    let next = [object(20, &boxes[1]), object(30, &corrected)];
    let f2 = video
        .process_objects(&embeddings[2], &next, &options)
        .unwrap();
    assert_eq!(
        summary(&f2),
        [(20, TrackState::Tracked), (30, TrackState::Acquired)]
    );
    // Its motion is not measured yet (one sighting): the prompt of frame 1
    // on frame 2, where the shape moved on.
    let score = iou_with_truth(&f2.objects[1].object.mask, &scenes[2].masks[2], 320);
    assert!(score >= 0.7, "corrected object: IoU {score:.3}");
    // 20 gets another prompt (another shape): acquired again, same id.
    let next = [object(20, &boxes[3]), object(30, &corrected)];
    let f3 = video
        .process_objects(&embeddings[3], &next, &options)
        .unwrap();
    assert_eq!(
        summary(&f3),
        [(20, TrackState::Acquired), (30, TrackState::Tracked)]
    );
    // Everything-mode ids drawn from a shared counter skip prompted ones.
    let ids = IdCounter::new();
    let mut video = VideoSegmenter::new(fixture()).with_id_counter(ids.clone());
    video
        .process_objects(&embeddings[0], &[object(41, &boxes[0])], &options)
        .unwrap();
    assert!(ids.next_id() >= 42);
}

/// New prompts (or a new coordinate mode) replace the objects; a reset
/// forgets them; a new frame size acquires them again from their prompts.
#[test]
fn prompts_changes_resets_and_frame_sizes() {
    let scenes = moving_shapes(4);
    let big = {
        // Frame 0 at twice the size, for the size change.
        let movers: Vec<common::Mover> = movers()
            .into_iter()
            .map(|m| {
                let shape = match m.shape {
                    common::Shape::Ellipse(x, y, rx, ry, a) => {
                        common::Shape::Ellipse(2.0 * x, 2.0 * y, 2.0 * rx, 2.0 * ry, a)
                    }
                    common::Shape::Rect(x, y, rx, ry, a) => {
                        common::Shape::Rect(2.0 * x, 2.0 * y, 2.0 * rx, 2.0 * ry, a)
                    }
                    common::Shape::Triangle(p) => {
                        common::Shape::Triangle(p.map(|(x, y)| (2.0 * x, 2.0 * y)))
                    }
                };
                common::Mover {
                    shape,
                    centre: (2.0 * m.centre.0, 2.0 * m.centre.1),
                    velocity: (2.0 * m.velocity.0, 2.0 * m.velocity.1),
                    reach: 2.0 * m.reach,
                }
            })
            .collect();
        common::render_movers(&movers, 0, 640, 480)
    };
    let mut segmenter = fixture();
    let (embeddings, _) = embed_all(&mut segmenter, &scenes);
    let big_embedding = segmenter.embed(&big.frame()).unwrap();
    let mut video = VideoSegmenter::new(segmenter);
    let options = prompted_options(true);
    let states = |f: &VideoFrame| f.objects.iter().map(|o| o.state).collect::<Vec<_>>();
    let boxes = box_prompts(&scenes[0]);
    let f0 = video.process(&embeddings[0], &boxes, &options).unwrap();
    let f1 = video.process(&embeddings[1], &boxes, &options).unwrap();
    assert_eq!(states(&f0), [TrackState::Acquired; 4]);
    assert_eq!(states(&f1), [TrackState::Tracked; 4]);
    assert_eq!(video.tracks(), 4);
    // Other prompts: replaced, numbered from 0.
    let one = [boxes[2].clone()];
    let f2 = video.process(&embeddings[2], &one, &options).unwrap();
    assert_eq!(states(&f2), [TrackState::Acquired]);
    assert_eq!((f2.objects[0].id, f2.objects[0].prompt_index), (0, Some(0)));
    assert!(f2.lost.is_empty());
    assert_eq!(video.tracks(), 1);
    // The same prompts again: followed.
    let f3 = video.process(&embeddings[3], &one, &options).unwrap();
    assert_eq!(states(&f3), [TrackState::Tracked]);
    // The same prompts in normalized coordinates are other prompts.
    let normalized: Vec<Prompt> = one
        .iter()
        .map(|p| {
            let b = p.bbox().unwrap();
            Prompt::new().with_box(b.x0 / 320.0, b.y0 / 240.0, b.x1 / 320.0, b.y1 / 240.0)
        })
        .collect();
    let mut norm_options = options;
    norm_options.segment.coord_mode = gsttinysam::segment::CoordMode::Normalized;
    let f4 = video
        .process(&embeddings[0], &normalized, &norm_options)
        .unwrap();
    assert_eq!(states(&f4), [TrackState::Acquired]);
    assert!(iou_with_truth(&f4.objects[0].object.mask, &scenes[0].masks[2], 320) >= 0.8);
    // A new frame size: acquired again from the prompt, resolved for it.
    let f5 = video
        .process(&big_embedding, &normalized, &norm_options)
        .unwrap();
    assert_eq!(states(&f5), [TrackState::Acquired]);
    assert!(
        f5.warnings.iter().any(|w| w.contains("frame size changed")),
        "{:?}",
        f5.warnings
    );
    let f6 = video
        .process(&big_embedding, &normalized, &norm_options)
        .unwrap();
    assert_eq!(states(&f6), [TrackState::Tracked]);
    // Reset: acquired again.
    video.reset();
    assert_eq!(video.tracks(), 0);
    let f7 = video.process(&embeddings[0], &boxes, &options).unwrap();
    assert_eq!(states(&f7), [TrackState::Acquired; 4]);
    // No prompts and no everything mode: nothing.
    let none = VideoOptions {
        everything: None,
        ..options
    };
    let f8 = video.process(&embeddings[1], &[], &none).unwrap();
    assert!(f8.objects.is_empty() && f8.lost.is_empty() && !f8.grid);
    assert_eq!(video.tracks(), 0);
    // Tracking off: every frame from the prompts.
    let off = prompted_options(false);
    for e in &embeddings[..2] {
        let f = video.process(e, &boxes, &off).unwrap();
        assert_eq!(states(&f), [TrackState::Acquired; 4]);
    }
}

/// Everything mode with the fixture's options.
fn everything_video(tracking: bool, interval: usize) -> VideoOptions {
    VideoOptions {
        everything: Some(everything_options()),
        tracking,
        everything_interval: interval,
        ..VideoOptions::default()
    }
}

/// For each true object, the id of the output object that matches it best
/// (mask IoU at least 0.5), if any.
fn best_ids(frame: &VideoFrame, scene: &Scene) -> Vec<Option<u64>> {
    scene
        .masks
        .iter()
        .map(|truth| {
            frame
                .objects
                .iter()
                .map(|o| (o.id, iou_with_truth(&o.object.mask, truth, scene.width)))
                .filter(|&(_, iou)| iou >= 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(id, _)| id)
        })
        .collect()
}

/// Identity persistence: over the object-frames from the second frame on,
/// the fraction where the object is matched (IoU >= 0.5) by an output
/// object whose id is the one that matched it on the previous frame.
fn persistence(ids: &[Vec<Option<u64>>]) -> (usize, usize) {
    let (mut kept, mut total) = (0, 0);
    for pair in ids.windows(2) {
        for (before, now) in pair[0].iter().zip(&pair[1]) {
            total += 1;
            kept += usize::from(now.is_some() && now == before);
        }
    }
    (kept, total)
}

/// Runs everything mode over `scenes`; returns the best-matching ids per
/// frame, the frames and the mean `process` time per frame.
fn run_everything(
    video: &mut VideoSegmenter,
    scenes: &[Scene],
    embeddings: &[ImageEmbedding],
    options: &VideoOptions,
) -> (Vec<Vec<Option<u64>>>, Vec<VideoFrame>, Duration) {
    video.reset();
    let mut ids = Vec::new();
    let mut frames = Vec::new();
    let mut elapsed = Duration::ZERO;
    for (t, (scene, embedding)) in scenes.iter().zip(embeddings).enumerate() {
        let start = Instant::now();
        let frame = video
            .process(embedding, &[], options)
            .unwrap_or_else(|e| panic!("frame {t}: {e}"));
        elapsed += start.elapsed();
        // Ids are unique within a frame, objects come by id.
        assert!(
            frame.objects.windows(2).all(|p| p[0].id < p[1].id),
            "frame {t}"
        );
        assert!(
            frame
                .objects
                .iter()
                .all(|o| o.prompt_index.is_none() && !o.object.mask.is_empty())
        );
        ids.push(best_ids(&frame, scene));
        if std::env::var("TRACE_EVERYTHING").is_ok() {
            let row: Vec<String> = frame
                .objects
                .iter()
                .map(|o| {
                    format!(
                        "{}:{} {} {:?} {:.2}",
                        o.id,
                        o.state,
                        o.object.area,
                        o.object.bbox(),
                        o.object.iou
                    )
                })
                .collect();
            println!(
                "  {t:2} grid {} lost {:?} ids {:?}\n     {}",
                frame.grid,
                frame.lost,
                ids[t],
                row.join(" | ")
            );
        }
        frames.push(frame);
    }
    (ids, frames, elapsed / scenes.len().max(1) as u32)
}

fn describe(frames: &[VideoFrame]) -> String {
    let grids = frames.iter().filter(|f| f.grid).count();
    let prompts: usize = frames.iter().map(|f| f.prompts_decoded).sum();
    let lost: usize = frames.iter().map(|f| f.lost.len()).sum();
    let mut ids: Vec<u64> = frames
        .iter()
        .flat_map(|f| f.objects.iter().map(|o| o.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    format!(
        "{grids} grid frames of {}, {:.0} prompts/frame, {lost} losses, {} distinct ids",
        frames.len(),
        prompts as f64 / frames.len().max(1) as f64,
        ids.len()
    )
}

#[test]
fn everything_ids_stay_on_a_static_video() {
    let scene = render(77, 320, 240, 5);
    let scenes: Vec<Scene> = (0..10).map(|_| render(77, 320, 240, 5)).collect();
    let mut segmenter = fixture();
    let (embeddings, _) = embed_all(&mut segmenter, &scenes);
    let mut video = VideoSegmenter::new(segmenter);
    let mut before: Option<u64> = None;
    for (name, options) in [
        ("grid every 3 + tracking", everything_video(true, 3)),
        ("grid every frame", everything_video(false, 1)),
    ] {
        let (ids, frames, per_frame) = run_everything(&mut video, &scenes, &embeddings, &options);
        println!(
            "static, {name}: {}, {:.0} ms/frame; ids per object {:?}",
            describe(&frames),
            per_frame.as_secs_f64() * 1e3,
            ids[0]
        );
        let found = ids[0].iter().flatten().count();
        assert!(
            found + 1 >= scene.masks.len(),
            "{name}: {found} of {} found",
            scene.masks.len()
        );
        for (t, frame_ids) in ids.iter().enumerate() {
            assert_eq!(frame_ids, &ids[0], "{name}: frame {t}");
        }
        // Nothing comes or goes on a static video.
        let first: Vec<u64> = frames[0].objects.iter().map(|o| o.id).collect();
        for (t, frame) in frames.iter().enumerate() {
            let now: Vec<u64> = frame.objects.iter().map(|o| o.id).collect();
            assert_eq!(now, first, "{name}: frame {t}");
            assert!(frame.lost.is_empty(), "{name}: frame {t}");
        }
        // After a reset (run_everything starts with one) ids are not reused.
        if let (Some(max), Some(min)) = (before, first.iter().min()) {
            assert!(*min > max, "ids {first:?} after {max}");
        }
        before = first.iter().max().copied();
    }
}

#[test]
fn everything_ids_persist_on_moving_shapes() {
    let scenes = moving_shapes(FRAMES);
    let mut segmenter = fixture();
    let (embeddings, encoder) = embed_all(&mut segmenter, &scenes);
    let mut video = VideoSegmenter::new(segmenter);
    let interval = VideoOptions::default().everything_interval;
    let (ids, frames, tracked) = run_everything(
        &mut video,
        &scenes,
        &embeddings,
        &everything_video(true, interval),
    );
    let (kept, total) = persistence(&ids);
    let found = ids.iter().flatten().filter(|i| i.is_some()).count();
    println!(
        "moving, grid every {interval} + tracking: ids kept {kept}/{total} ({:.3}), objects found in \
         {found}/{} object-frames; {}",
        kept as f64 / total as f64,
        ids.len() * 4,
        describe(&frames)
    );
    // The grid on every inference, on the first frames only (it is slow).
    let few = 6;
    let (grid_ids, grid_frames, every) = run_everything(
        &mut video,
        &scenes[..few],
        &embeddings[..few],
        &everything_video(false, 1),
    );
    let (gk, gt) = persistence(&grid_ids);
    println!(
        "moving, grid every frame (first {few} frames): ids kept {gk}/{gt}; {}",
        describe(&grid_frames)
    );
    println!(
        "everything mode, ms per frame (decoding only; the encoder adds {:.0}): grid every frame \
         {:.0}, grid every {interval} + tracking {:.0}",
        encoder.as_secs_f64() * 1e3,
        every.as_secs_f64() * 1e3,
        tracked.as_secs_f64() * 1e3
    );
    assert!(kept * 10 >= total * 9, "ids kept {kept}/{total}");
    let max_id = frames
        .iter()
        .flat_map(|f| f.objects.iter().map(|o| o.id))
        .max();
    println!("ids handed out: {max_id:?}");
}

/// The strategy table at other speeds (`SPEED=2`: up to 28 px/frame) and
/// everything mode's grid interval, for choosing the defaults:
/// `SPEED=1.5 cargo test --release --test tracking -- --ignored --nocapture`.
#[test]
#[ignore]
fn reprompt_strategies_at_other_speeds() {
    let factor: f32 = std::env::var("SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let movers: Vec<common::Mover> = movers()
        .into_iter()
        .map(|m| common::Mover {
            velocity: (m.velocity.0 * factor, m.velocity.1 * factor),
            ..m
        })
        .collect();
    let scenes: Vec<Scene> = (0..FRAMES)
        .map(|t| common::render_movers(&movers, t, 320, 240))
        .collect();
    let mut segmenter = fixture();
    let (embeddings, _) = embed_all(&mut segmenter, &scenes);
    let mut video = VideoSegmenter::new(segmenter);
    let label = |kind: &str| format!("{kind} x{factor}");
    compare(
        &label("box"),
        &mut video,
        &scenes,
        &embeddings,
        &box_prompts(&scenes[0]),
        true,
    );
    compare(
        &label("point"),
        &mut video,
        &scenes,
        &embeddings,
        &point_prompts(&scenes[0]),
        true,
    );
    // Everything mode's re-prompt: the grid point that found the object,
    // a box, or both.
    let boxed = RepromptOptions::default();
    let point = RepromptOptions {
        box_margin: None,
        move_points: true,
        ..boxed
    };
    let both = RepromptOptions {
        move_points: true,
        ..boxed
    };
    let still: Vec<Scene> = (0..10).map(|_| render(77, 320, 240, 5)).collect();
    let (still_embeddings, _) = embed_all(video.segmenter_mut(), &still);
    for (name, reprompt) in [
        ("box", boxed),
        ("grid point moved", point),
        ("box + grid point moved", both),
        (
            "grid point moved, no mask input",
            RepromptOptions {
                mask_input: MaskInput::Off,
                ..point
            },
        ),
    ] {
        video.set_settings(TrackerSettings {
            everything_reprompt: reprompt,
            ..TrackerSettings::default()
        });
        let (ids, frames, _) = run_everything(
            &mut video,
            &scenes,
            &embeddings,
            &everything_video(true, 10),
        );
        let (kept, total) = persistence(&ids);
        println!(
            "x{factor} everything re-prompt {name}, moving: ids kept {kept}/{total}; {}",
            describe(&frames)
        );
        let (ids, frames, _) = run_everything(
            &mut video,
            &still,
            &still_embeddings,
            &everything_video(true, 3),
        );
        let (kept, total) = persistence(&ids);
        println!(
            "x{factor} everything re-prompt {name}, static: ids kept {kept}/{total}; {}",
            describe(&frames)
        );
    }
    video.set_settings(TrackerSettings::default());
    for interval in [3, 5, 10, 20] {
        let (ids, frames, per_frame) = run_everything(
            &mut video,
            &scenes,
            &embeddings,
            &everything_video(true, interval),
        );
        let (kept, total) = persistence(&ids);
        println!(
            "x{factor} everything, grid every {interval:2} + tracking: ids kept {kept}/{total}, \
             {:.0} ms/frame; {}",
            per_frame.as_secs_f64() * 1e3,
            describe(&frames)
        );
    }
}
