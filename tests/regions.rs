// SPDX-License-Identifier: Apache-2.0
//! Upstream regions of interest as prompts (`inference-region=roi-list`,
//! `object-class`) through the element: a detector's
//! `GstVideoRegionOfInterestMeta` boxes around shapes of synthetic scenes
//! with exact masks get their masks in `GstTinySamMeta` and in their own
//! `tinysam/mask` parameter; class filtering beside property prompts;
//! invalid boxes; hundreds and more than 1024 boxes on one frame; object
//! ids over time (moving boxes, vanished boxes, the detector's ids when
//! boxes cross), also with `processing=async`; two instances in a chain;
//! and `facedetect` (gstreamer1.0-opencv) as a real producer on a drawn
//! face.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;

use common::element::*;
use common::{Scene, Shape, moving_shapes, render, truth_box};

/// A detector's region of interest on an input buffer.
#[derive(Debug, Clone)]
struct Roi {
    label: &'static str,
    /// x, y, width, height as `GstVideoRegionOfInterestMeta` has them.
    rect: (u32, u32, u32, u32),
    /// The detector's id (0: none).
    id: i32,
}

fn roi(label: &'static str, rect: (u32, u32, u32, u32), id: i32) -> Roi {
    Roi { label, rect, id }
}

/// The box around a truth mask grown by `grow` pixels (within the frame),
/// as a detector would report it: (x, y, width, height).
fn box_around(mask: &[bool], grow: u32) -> (u32, u32, u32, u32) {
    let (x0, y0, x1, y1) = truth_box(mask, WIDTH).expect("a visible object");
    let (x0, y0) = (x0.saturating_sub(grow), y0.saturating_sub(grow));
    let (x1, y1) = ((x1 + grow).min(WIDTH), (y1 + grow).min(HEIGHT));
    (x0, y0, x1 - x0, y1 - y0)
}

/// An RGBA frame as a buffer with `rois` attached, in order.
fn buffer_with_rois(frame: &[u8], index: u64, rois: &[Roi]) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_slice(frame.to_vec());
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(index * 33));
        b.set_duration(gst::ClockTime::from_mseconds(33));
        for r in rois {
            gst_video::VideoRegionOfInterestMeta::add(b, r.label, r.rect).set_id(r.id);
        }
    }
    buffer
}

/// Pushes `frame` with `rois` through the harness; the buffer out.
fn push_rois(h: &mut Harness, frame: &[u8], index: u64, rois: &[Roi]) -> gst::Buffer {
    if let Err(err) = h.push(buffer_with_rois(frame, index, rois)) {
        panic!("push: {err:?}, {}", posted_error(h));
    }
    h.pull()
        .unwrap_or_else(|_| panic!("no buffer out, {}", posted_error(h)))
}

/// An object of the custom meta with the fields saying where its prompt
/// came from.
#[derive(Debug)]
struct Found {
    object: Object,
    state: String,
    prompt_source: Option<String>,
    roi_id: Option<i32>,
    label: Option<String>,
}

fn found_objects(buffer: &gst::BufferRef) -> Vec<Found> {
    let objects = custom_meta_objects(buffer);
    let meta = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta").unwrap();
    let array = meta.structure().get::<gst::Array>("objects").unwrap();
    objects
        .into_iter()
        .zip(array.iter())
        .map(|(object, v)| {
            let s = v.get::<gst::Structure>().unwrap();
            Found {
                object,
                state: s.get("state").unwrap(),
                prompt_source: s.get("prompt-source").ok(),
                roi_id: s.get("roi-id").ok(),
                label: s.get("label").ok(),
            }
        })
        .collect()
}

/// The object prompted by the detector ROI with id `roi_id`.
fn by_roi(objects: &[Found], roi_id: i32) -> &Found {
    let mut matching = objects.iter().filter(|o| o.roi_id == Some(roi_id));
    let found = matching
        .next()
        .unwrap_or_else(|| panic!("no object for ROI {roi_id}"));
    assert!(matching.next().is_none(), "two objects for ROI {roi_id}");
    assert_eq!(found.object.source, "prompt");
    assert_eq!(found.prompt_source.as_deref(), Some("roi"));
    found
}

/// What `tinysam` wrote into a detector's ROI meta.
#[derive(Debug)]
struct RoiMask {
    id: u32,
    state: String,
    /// The clipped box's size.
    size: (u32, u32),
    iou: f64,
    /// The box-relative bits pasted into a frame-sized mask.
    mask: Vec<bool>,
}

/// A non-`tinysam` ROI meta of an output buffer.
#[derive(Debug)]
struct DetectorRoi {
    label: String,
    id: i32,
    rect: (u32, u32, u32, u32),
    mask: Option<RoiMask>,
}

fn detector_rois(buffer: &gst::BufferRef) -> Vec<DetectorRoi> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|r| r.roi_type() != "tinysam")
        .map(|r| {
            let rect = r.rect();
            let params: Vec<_> = r.params().filter(|p| p.name() == "tinysam/mask").collect();
            assert!(params.len() <= 1, "one tinysam/mask param at most");
            let mask = params.first().map(|p| {
                let w = p.get::<i32>("width").unwrap();
                let h = p.get::<i32>("height").unwrap();
                let bits = p.get::<glib::Bytes>("mask").unwrap();
                assert_eq!(bits.len(), ((w * h) as usize).div_ceil(8), "mask bytes");
                let mask = unpack(rect.0 as i32, rect.1 as i32, w, h, &bits);
                let area = p.get::<u64>("area").unwrap();
                assert_eq!(mask.iter().filter(|m| **m).count() as u64, area);
                let stability = p.get::<f64>("stability").unwrap();
                assert!((0.0..=1.0).contains(&stability));
                RoiMask {
                    id: p.get("id").unwrap(),
                    state: p.get("state").unwrap(),
                    size: (w as u32, h as u32),
                    iou: p.get("iou").unwrap(),
                    mask,
                }
            });
            DetectorRoi {
                label: r.roi_type().to_owned(),
                id: r.id(),
                rect,
                mask,
            }
        })
        .collect()
}

/// The element's own ROI metas: (object id, parent id).
fn own_rois(buffer: &gst::BufferRef) -> Vec<(i32, i32)> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|r| r.roi_type() == "tinysam")
        .map(|r| (r.id(), r.parent_id()))
        .collect()
}

/// `mask` inside the box `rect` (clipped to the frame), frame-sized.
fn crop(mask: &[bool], (x, y, w, h): (u32, u32, u32, u32)) -> Vec<bool> {
    let (x1, y1) = (
        (u64::from(x) + u64::from(w)).min(u64::from(WIDTH)) as u32,
        (u64::from(y) + u64::from(h)).min(u64::from(HEIGHT)) as u32,
    );
    mask.iter()
        .enumerate()
        .map(|(i, &m)| {
            let (c, r) = (i as u32 % WIDTH, i as u32 / WIDTH);
            m && (x..x1).contains(&c) && (y..y1).contains(&r)
        })
        .collect()
}

fn roi_list(extra: &[(&str, &str)]) -> gst::Element {
    let mut properties = vec![("inference-region", "roi-list")];
    properties.extend_from_slice(extra);
    tinysam(&properties)
}

/// Checks that each of `rois` (of `out`) has the object `objects` has for it
/// and the same mask in its `tinysam/mask` param, and returns the mask IoU
/// with each `truths` entry (its object, its param against the truth
/// inside the box).
fn check_roi_objects(
    out: &gst::BufferRef,
    objects: &[Found],
    rois: &[Roi],
    truths: &[&[bool]],
) -> Vec<(f64, f64)> {
    let detected = detector_rois(out);
    let own = own_rois(out);
    rois.iter()
        .zip(truths)
        .map(|(r, truth)| {
            let o = by_roi(objects, r.id);
            assert_eq!(o.label.as_deref(), Some(r.label));
            let d = detected
                .iter()
                .find(|d| d.id == r.id && d.label == r.label)
                .expect("the detector's ROI stays on the buffer");
            assert_eq!(d.rect, r.rect, "the detector's box is not changed");
            let m = d
                .mask
                .as_ref()
                .unwrap_or_else(|| panic!("ROI {} has no tinysam/mask param", r.id));
            assert_eq!(m.id, o.object.id);
            assert_eq!(m.state, o.state);
            assert_eq!(m.iou, o.object.iou);
            let (bw, bh) = (
                r.rect.2.min(WIDTH - r.rect.0),
                r.rect.3.min(HEIGHT - r.rect.1),
            );
            assert_eq!(m.size, (bw, bh));
            assert_eq!(
                m.mask,
                crop(&o.object.mask, r.rect),
                "ROI {}: the param's mask is the object's inside the box",
                r.id
            );
            assert!(
                own.contains(&(o.object.id as i32, r.id)),
                "a tinysam ROI for object {} with parent {}: {own:?}",
                o.object.id,
                r.id
            );
            (
                iou(&o.object.mask, truth),
                iou(&m.mask, &crop(truth, r.rect)),
            )
        })
        .collect()
}

/// A 320x240 scene of four shapes that the fixture segments well from
/// their boxes (IoU 0.96 to 0.98; of seeds 1 to 39 the worst shape of a
/// scene ranged from 0.77 to 0.96).
fn four_shapes() -> Scene {
    render(28, WIDTH, HEIGHT, 4)
}

#[test]
fn boxes_around_known_shapes_get_their_masks_in_both_metas() {
    let scene = four_shapes();
    assert_eq!(scene.masks.len(), 4);
    let rois: Vec<Roi> = scene
        .masks
        .iter()
        .enumerate()
        .map(|(k, m)| roi("shape", box_around(m, 2), 10 + k as i32))
        .collect();
    let sam = roi_list(&[]);
    let mut h = harness(&sam, "RGBA");
    let out = push_rois(&mut h, &scene_rgba(&scene), 0, &rois);
    let objects = found_objects(&out);
    assert_eq!(objects.len(), rois.len(), "one object per ROI: {objects:?}");
    let ids: HashSet<u32> = objects.iter().map(|o| o.object.id).collect();
    assert_eq!(ids.len(), objects.len(), "distinct ids");
    assert_eq!(own_rois(&out).len(), objects.len());
    for o in &objects {
        assert_eq!(o.state, "acquired");
        assert!(o.object.grid_point.is_none(), "no everything mode");
    }
    let truths: Vec<&[bool]> = scene.masks.iter().map(Vec::as_slice).collect();
    let scores = check_roi_objects(&out, &objects, &rois, &truths);
    for (r, (object, in_box)) in rois.iter().zip(&scores) {
        println!(
            "ROI {} {:?}: mask IoU {object:.3}, inside the box {in_box:.3}",
            r.id, r.rect
        );
        assert!(*object >= 0.85, "ROI {}: IoU {object:.3}", r.id);
        assert!(*in_box >= 0.85, "ROI {}: IoU in the box {in_box:.3}", r.id);
    }
    // `coordinates` is the properties' unit; ROI metas are in pixels.
    let sam = roi_list(&[("coordinates", "normalized")]);
    let mut h = harness(&sam, "RGBA");
    let again = found_objects(&push_rois(&mut h, &scene_rgba(&scene), 0, &rois));
    for r in &rois {
        let (a, b) = (by_roi(&again, r.id), by_roi(&objects, r.id));
        assert_eq!(a.object.mask, b.object.mask, "ROI {}", r.id);
    }
}

#[test]
fn full_frame_mode_ignores_rois() {
    let scene = four_shapes();
    let rois = [roi("shape", box_around(&scene.masks[0], 2), 1)];
    // Nothing to do: passthrough, the detector's meta untouched.
    let sam = tinysam(&[("everything-mode", "none")]);
    let mut h = harness(&sam, "RGBA");
    let out = push_rois(&mut h, &scene_rgba(&scene), 0, &rois);
    assert!(gst::meta::CustomMeta::from_buffer(&out, "GstTinySamMeta").is_err());
    let detected = detector_rois(&out);
    assert_eq!(detected.len(), 1);
    assert!(detected[0].mask.is_none());
    // With a property prompt, only that object.
    let (x, y, w, hh) = box_around(&scene.masks[1], 2);
    let prompt = format!("box={x},{y},{},{}", x + w, y + hh);
    let sam = tinysam(&[("everything-mode", "none"), ("prompts", &prompt)]);
    let mut h = harness(&sam, "RGBA");
    let out = push_rois(&mut h, &scene_rgba(&scene), 0, &rois);
    let objects = found_objects(&out);
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].prompt_source.as_deref(), Some("property"));
    assert!(objects[0].roi_id.is_none() && objects[0].label.is_none());
    assert!(detector_rois(&out)[0].mask.is_none());
}

#[test]
fn object_class_keeps_matching_rois_beside_property_prompts() {
    let scene = four_shapes();
    let rois = [
        roi("face", box_around(&scene.masks[0], 2), 1),
        roi("car", box_around(&scene.masks[1], 2), 2),
        roi("person", box_around(&scene.masks[2], 2), 3),
    ];
    let (x, y, w, hh) = box_around(&scene.masks[3], 2);
    let prompt = format!("box={x},{y},{},{}", x + w, y + hh);
    let sam = roi_list(&[("object-class", "face"), ("prompts", &prompt)]);
    let mut h = harness(&sam, "RGBA");
    let frame = scene_rgba(&scene);
    let mut face_id = None;
    // The class filter changes while playing, from the next buffer on.
    for (i, (classes, kept)) in [
        ("face", vec![0]),
        (" face , car", vec![0, 1]),
        ("", vec![0, 1, 2]),
        ("car", vec![1]),
        ("bicycle", vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            sam.set_property("object-class", classes);
        }
        let out = push_rois(&mut h, &frame, i as u64, &rois);
        let objects = found_objects(&out);
        assert_eq!(
            objects.len(),
            kept.len() + 1,
            "object-class `{classes}`: {objects:?}"
        );
        // The property's object: first, id 0, as without regions.
        let p = &objects[0];
        assert_eq!(p.prompt_source.as_deref(), Some("property"));
        assert_eq!((p.object.id, p.object.prompt_index), (0, 0));
        assert!(p.roi_id.is_none() && p.label.is_none());
        let score = iou(&p.object.mask, &scene.masks[3]);
        assert!(score >= 0.85, "property prompt: IoU {score:.3}");
        // The ROIs of the classes, and no other.
        let kept_rois: Vec<Roi> = kept.iter().map(|&k| rois[k].clone()).collect();
        let truths: Vec<&[bool]> = kept.iter().map(|&k| scene.masks[k].as_slice()).collect();
        for (r, (score, _)) in kept_rois
            .iter()
            .zip(check_roi_objects(&out, &objects, &kept_rois, &truths))
        {
            assert!(score >= 0.85, "`{classes}`: ROI {}: IoU {score:.3}", r.id);
        }
        for d in detector_rois(&out) {
            let wanted = kept_rois.iter().any(|r| r.id == d.id);
            assert_eq!(d.mask.is_some(), wanted, "`{classes}`: {d:?}");
        }
        let ids: HashSet<u32> = objects.iter().map(|o| o.object.id).collect();
        assert_eq!(ids.len(), objects.len(), "distinct ids");
        // The face is the same object on every frame that prompts it.
        if let Some(face) = objects.iter().find(|o| o.roi_id == Some(1)) {
            assert_eq!(*face_id.get_or_insert(face.object.id), face.object.id);
            assert_ne!(face.object.id, 0, "not the property object's id");
        }
    }
}

#[test]
fn rois_outside_the_frame_or_empty_are_skipped() {
    let scene = four_shapes();
    let good = [
        roi("shape", box_around(&scene.masks[0], 2), 1),
        roi("shape", box_around(&scene.masks[1], 2), 2),
    ];
    let (gx, gy, _, _) = box_around(&scene.masks[2], 2);
    // From the third shape's corner to far beyond the frame: clipped.
    let huge = roi("shape", (gx, gy, u32::MAX, u32::MAX), 3);
    let bad = [
        roi("shape", (WIDTH, 10, 20, 20), 101),
        roi("shape", (10, HEIGHT, 5, 5), 102),
        roi("shape", (u32::MAX, 0, 10, 10), 103),
        roi(
            "shape",
            (u32::MAX - 5, u32::MAX - 5, u32::MAX, u32::MAX),
            104,
        ),
        roi("shape", (50, 50, 0, 30), 105),
        roi("shape", (50, 50, 30, 0), 106),
        roi("shape", (0, 0, 0, 0), 107),
    ];
    // Good and bad interleaved, so each mask must find its own ROI.
    let mixed = vec![
        bad[0].clone(),
        good[0].clone(),
        bad[1].clone(),
        bad[2].clone(),
        huge.clone(),
        bad[3].clone(),
        bad[4].clone(),
        good[1].clone(),
        bad[5].clone(),
        bad[6].clone(),
    ];
    let sam = roi_list(&[]);
    let mut h = harness(&sam, "RGBA");
    let frame = scene_rgba(&scene);
    let mut ids_seen = Vec::new();
    for (i, rois) in [mixed.clone(), bad.to_vec(), mixed].iter().enumerate() {
        let out = push_rois(&mut h, &frame, i as u64, rois);
        let objects = found_objects(&out);
        let detected = detector_rois(&out);
        assert_eq!(detected.len(), rois.len(), "every ROI meta stays");
        for d in detected.iter().filter(|d| d.id > 100) {
            assert!(d.mask.is_none(), "frame {i}: skipped {d:?} got a mask");
        }
        if i == 1 {
            // Only invalid ROIs: an empty meta, no everything mode.
            assert!(objects.is_empty(), "{objects:?}");
            assert!(own_rois(&out).is_empty());
            continue;
        }
        assert_eq!(objects.len(), 3, "frame {i}: {objects:?}");
        let truths: Vec<&[bool]> = vec![&scene.masks[0], &scene.masks[1]];
        for (r, (score, _)) in good
            .iter()
            .zip(check_roi_objects(&out, &objects, &good, &truths))
        {
            assert!(score >= 0.85, "frame {i}: ROI {}: IoU {score:.3}", r.id);
        }
        // The huge one: prompted with its box clipped to the frame.
        let d = detected.iter().find(|d| d.id == 3).unwrap();
        let m = d.mask.as_ref().expect("the clipped ROI has a mask");
        assert_eq!(m.size, (WIDTH - gx, HEIGHT - gy));
        let o = by_roi(&objects, 3);
        assert_eq!(m.mask, crop(&o.object.mask, d.rect));
        ids_seen.push(
            objects
                .iter()
                .map(|o| o.object.id)
                .collect::<BTreeSet<u32>>(),
        );
    }
    // Regions absent on a frame are forgotten: new objects afterwards.
    assert!(
        ids_seen[0].is_disjoint(&ids_seen[1]),
        "ids {:?} then {:?}",
        ids_seen[0],
        ids_seen[1]
    );
    let bus = sam.bus().unwrap();
    assert!(
        bus.pop_filtered(&[gst::MessageType::Warning, gst::MessageType::Error])
            .is_none(),
        "skipped ROIs are only logged"
    );
}

#[test]
fn a_second_instance_replaces_the_first_ones_roi_masks() {
    init();
    let scene = four_shapes();
    let rois = [
        roi("face", box_around(&scene.masks[0], 2), 1),
        roi("car", box_around(&scene.masks[1], 2), 2),
    ];
    // The upstream instance segments both ROIs, the downstream one only
    // the car: the detector's ROIs must carry the downstream one's masks,
    // as its GstTinySamMeta does.
    let model = model_dir().display().to_string();
    let mut h = Harness::new_parse(&format!(
        "tinysam model=\"{model}\" processing=sync inference-region=roi-list \
         ! tinysam model=\"{model}\" processing=sync inference-region=roi-list object-class=car"
    ));
    h.set_src_caps_str(&rgba_caps());
    let out = push_rois(&mut h, &scene_rgba(&scene), 0, &rois);
    let objects = found_objects(&out);
    assert_eq!(objects.len(), 1, "{objects:?}");
    let car = by_roi(&objects, 2);
    assert_eq!(own_rois(&out), [(car.object.id as i32, 2)]);
    let wrong: Vec<String> = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|r| r.roi_type() != "tinysam")
        .filter_map(|r| {
            let ids: Vec<u32> = r
                .params()
                .filter(|p| p.name() == "tinysam/mask")
                .map(|p| p.get::<u32>("id").unwrap())
                .collect();
            let expected: Vec<u32> = objects
                .iter()
                .filter(|o| o.roi_id == Some(r.id()))
                .map(|o| o.object.id)
                .collect();
            (ids != expected).then(|| {
                format!(
                    "ROI {} `{}`: tinysam/mask params with ids {ids:?}, expected {expected:?}",
                    r.id(),
                    r.roi_type()
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `cols` x `rows` tiles of `size` pixels from the top-left, as ROIs
/// with ids 1.. (row-major); at most `count`.
fn tiles(size: u32, count: usize) -> Vec<Roi> {
    let (cols, rows) = (WIDTH / size, HEIGHT / size);
    (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (c * size, r * size)))
        .take(count)
        .enumerate()
        .map(|(i, (x, y))| roi("tile", (x, y, size, size), i as i32 + 1))
        .collect()
}

#[test]
fn hundreds_of_rois_on_one_frame() {
    let scene = four_shapes();
    let frame = scene_rgba(&scene);
    // 20 x 15 tiles of 16 px: more than one decoder call of 256.
    let rois = tiles(16, 300);
    assert_eq!(rois.len(), 300);
    let sam = roi_list(&[]);
    let mut h = harness(&sam, "RGBA");
    let out = push_rois(&mut h, &frame, 0, &rois);
    let objects = found_objects(&out);
    assert_eq!(objects.len(), 300);
    let ids: HashSet<u32> = objects.iter().map(|o| o.object.id).collect();
    assert_eq!(ids.len(), 300, "distinct ids");
    let detected = detector_rois(&out);
    assert_eq!(detected.len(), 300);
    assert_eq!(own_rois(&out).len(), 300);
    // Tiles wholly inside a shape: their masks lie in that shape.
    let mut inside = Vec::new();
    for (r, d) in rois.iter().zip(&detected) {
        let o = by_roi(&objects, r.id);
        let m = d.mask.as_ref().expect("every ROI has a mask");
        assert_eq!(m.id, o.object.id);
        assert_eq!(m.mask, crop(&o.object.mask, r.rect));
        let tile = crop(&vec![true; (WIDTH * HEIGHT) as usize], r.rect);
        if let Some(truth) = scene
            .masks
            .iter()
            .find(|t| tile.iter().zip(t.iter()).all(|(a, b)| !a || *b))
        {
            let area = o.object.area.max(1) as f64;
            let within = o
                .object
                .mask
                .iter()
                .zip(truth)
                .filter(|(m, t)| **m && **t)
                .count() as f64;
            inside.push((r.id, within / area, o.object.area));
        }
    }
    let mean = inside.iter().map(|(_, f, _)| f).sum::<f64>() / inside.len() as f64;
    let worst = inside.iter().map(|(_, f, _)| *f).fold(1.0, f64::min);
    println!(
        "{} tiles inside a shape: {mean:.3} of their masks inside it on average, worst {worst:.3}",
        inside.len()
    );
    assert!(inside.len() >= 20, "{inside:?}");
    assert!(mean >= 0.9, "{inside:?}");
    // The same tiles alone, in one decoder call of a fresh element (on the
    // same one they would be re-prompted from these results), give the
    // same masks: the batches of 256 put every mask back on its own ROI.
    let few: Vec<Roi> = [0usize, 1, 254, 255, 256, 257, 299]
        .iter()
        .map(|&k| rois[k].clone())
        .collect();
    let sam = roi_list(&[]);
    let mut h = harness(&sam, "RGBA");
    let alone = push_rois(&mut h, &frame, 0, &few);
    let alone_objects = found_objects(&alone);
    assert_eq!(alone_objects.len(), few.len());
    for r in &few {
        let a = by_roi(&alone_objects, r.id);
        let b = by_roi(&objects, r.id);
        let score = iou(&a.object.mask, &b.object.mask);
        assert!(
            score >= 0.98 || a.object.area + b.object.area == 0,
            "ROI {}: IoU {score:.3} between batched and alone",
            r.id
        );
    }
}

#[test]
fn more_than_1024_rois_warn_and_keep_1024_objects() {
    let scene = four_shapes();
    // 1100 of the 40 x 30 tiles of 8 px, and one property prompt.
    let rois = tiles(8, 1100);
    assert_eq!(rois.len(), 1100);
    let (x, y, w, hh) = box_around(&scene.masks[0], 2);
    let prompt = format!("box={x},{y},{},{}", x + w, y + hh);
    let sam = roi_list(&[("prompts", &prompt)]);
    let mut h = harness(&sam, "RGBA");
    let out = push_rois(&mut h, &scene_rgba(&scene), 0, &rois);
    let (text, debug) = pop_warning(&sam);
    println!("warning: {text} ({debug})");
    let message = format!("{text} {debug}");
    assert!(message.contains("1100"), "{message}");
    assert!(message.contains("1024"), "{message}");
    let objects = found_objects(&out);
    assert_eq!(objects.len(), 1024);
    assert_eq!(objects[0].prompt_source.as_deref(), Some("property"));
    let score = iou(&objects[0].object.mask, &scene.masks[0]);
    assert!(score >= 0.85, "the property prompt: IoU {score:.3}");
    // The first 1023 ROIs are prompted, the rest dropped.
    let detected = detector_rois(&out);
    assert_eq!(detected.len(), 1100);
    for (k, d) in detected.iter().enumerate() {
        assert_eq!(d.mask.is_some(), k < 1023, "ROI {}", d.id);
    }
    let roi_ids: HashSet<i32> = objects.iter().filter_map(|o| o.roi_id).collect();
    assert_eq!(roi_ids, (1..=1023).collect());
}

#[test]
fn moving_boxes_keep_their_ids_and_vanished_ones_are_not_carried() {
    const FRAMES: usize = 10;
    const GONE: usize = 5;
    let scenes = moving_shapes(FRAMES);
    let sam = roi_list(&[]);
    let mut h = harness(&sam, "RGBA");
    // Per mover: its object id on each frame.
    let mut ids: Vec<Vec<Option<u32>>> = vec![Vec::new(); 4];
    let mut worst: f64 = 1.0;
    for (t, scene) in scenes.iter().enumerate() {
        // No detector ids: matched by box overlap. The disc (mover 3) is
        // not detected on frame GONE.
        let movers: Vec<usize> = (0..4).filter(|&k| !(k == 3 && t == GONE)).collect();
        let rois: Vec<Roi> = movers
            .iter()
            .map(|&k| roi("shape", box_around(&scene.masks[k], 2), 0))
            .collect();
        let out = push_rois(&mut h, &scene_rgba(scene), t as u64, &rois);
        let objects = found_objects(&out);
        assert_eq!(objects.len(), rois.len(), "frame {t}: {objects:?}");
        let detected = detector_rois(&out);
        for (k, mover_ids) in ids.iter_mut().enumerate() {
            let Some(pos) = movers.iter().position(|&m| m == k) else {
                mover_ids.push(None);
                continue;
            };
            let m = detected[pos].mask.as_ref().expect("a mask param");
            let o = objects
                .iter()
                .find(|o| o.object.id == m.id)
                .expect("its object");
            assert_eq!(o.roi_id, Some(0));
            let score = iou(&o.object.mask, &scene.masks[k]);
            worst = worst.min(score);
            assert!(score >= 0.8, "frame {t} mover {k}: IoU {score:.3}");
            mover_ids.push(Some(o.object.id));
        }
    }
    println!("ids per mover over {FRAMES} frames: {ids:?}; worst IoU {worst:.3}");
    for (k, per_frame) in ids.iter().enumerate().take(3) {
        assert!(
            per_frame.iter().all(|id| *id == per_frame[0]),
            "mover {k}: {per_frame:?}"
        );
    }
    let disc = &ids[3];
    assert!(disc[..GONE].iter().all(|id| *id == disc[0]), "{disc:?}");
    assert_eq!(disc[GONE], None);
    // Back after a frame without it: a new object, never an id used before.
    let back = disc[GONE + 1].unwrap();
    let before: HashSet<u32> = ids
        .iter()
        .flat_map(|v| v[..=GONE].iter().flatten().copied())
        .collect();
    assert!(!before.contains(&back), "{ids:?}");
    assert!(
        disc[GONE + 1..].iter().all(|id| *id == Some(back)),
        "{disc:?}"
    );
}

/// Two discs of radius 28 on a plain background: one red, one blue, at
/// the given centres.
fn two_discs(red: (f32, f32), blue: (f32, f32)) -> Scene {
    let shapes = [
        (Shape::Ellipse(red.0, red.1, 28.0, 28.0, 0.0), [220, 40, 30]),
        (
            Shape::Ellipse(blue.0, blue.1, 28.0, 28.0, 0.0),
            [30, 60, 220],
        ),
    ];
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let inside = |s: &Shape, i: usize| s.contains((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
    let masks: Vec<Vec<bool>> = shapes
        .iter()
        .map(|(s, _)| (0..w * h).map(|i| inside(s, i)).collect())
        .collect();
    let rgb = (0..w * h)
        .flat_map(|i| {
            shapes
                .iter()
                .zip(&masks)
                .find(|(_, m)| m[i])
                .map_or([140, 150, 120], |((_, c), _)| *c)
        })
        .collect();
    Scene {
        width: WIDTH,
        height: HEIGHT,
        rgb,
        masks,
    }
}

#[test]
fn detector_ids_carry_object_ids_when_boxes_cross() {
    // The two discs swap places from one frame to the next (they crossed
    // between two detections): by box overlap each box would continue the
    // other's object; the detector's ids say which is which.
    let (left, right) = ((130.0, 120.0), (190.0, 120.0));
    let frames = [
        two_discs(left, right),
        two_discs(right, left),
        two_discs(left, right),
    ];
    let run = |red_id: i32, blue_id: i32| -> Vec<(u32, u32)> {
        let sam = roi_list(&[]);
        let mut h = harness(&sam, "RGBA");
        frames
            .iter()
            .enumerate()
            .map(|(t, scene)| {
                let rois = [
                    roi("ball", box_around(&scene.masks[0], 2), red_id),
                    roi("ball", box_around(&scene.masks[1], 2), blue_id),
                ];
                let out = push_rois(&mut h, &scene_rgba(scene), t as u64, &rois);
                let objects = found_objects(&out);
                assert_eq!(objects.len(), 2);
                let detected = detector_rois(&out);
                let ids: Vec<u32> = detected
                    .iter()
                    .zip(&scene.masks)
                    .map(|(d, truth)| {
                        let m = d.mask.as_ref().expect("a mask param");
                        let score = iou(&crop(truth, d.rect), &m.mask);
                        assert!(score >= 0.85, "frame {t}: ROI {}: IoU {score:.3}", d.id);
                        m.id
                    })
                    .collect();
                (ids[0], ids[1])
            })
            .collect()
    };
    let with_ids = run(7, 8);
    println!("red, blue ids with detector ids: {with_ids:?}");
    assert_ne!(with_ids[0].0, with_ids[0].1);
    assert!(
        with_ids.iter().all(|ids| *ids == with_ids[0]),
        "{with_ids:?}"
    );
    // Without them the object ids stay with the places instead.
    let without = run(0, 0);
    println!("red, blue ids without: {without:?}");
    assert_eq!(without[1], (without[0].1, without[0].0), "{without:?}");
    assert_eq!(without[2], without[0], "{without:?}");
}

/// The detector ids of the ROI objects of a buffer, and its `inference-pts`.
fn roi_ids_and_age(buffer: &gst::BufferRef) -> (BTreeSet<i32>, Option<u64>) {
    let ids = found_objects(buffer)
        .iter()
        .map(|o| o.roi_id.expect("an ROI object"))
        .collect();
    let meta = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta").unwrap();
    let pts = meta.structure().get::<u64>("inference-pts").unwrap();
    (ids, (pts != u64::MAX).then_some(pts))
}

#[test]
fn async_pipeline_never_carries_a_vanished_roi() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps={} \
         ! tinysam model=\"{}\" inference-region=roi-list processing=async \
         ! appsink name=sink sync=false",
        rgba_caps(),
        model_dir().display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let scene = four_shapes();
    let frame = scene_rgba(&scene);
    let all: Vec<Roi> = (0..3)
        .map(|k| roi("shape", box_around(&scene.masks[k], 2), k as i32 + 1))
        .collect();
    // Frames until one carries masks of a frame from `since` on (the
    // worker's result arrived); every frame carries only its own ROIs.
    let mut index = 0u64;
    let mut run = |rois: &[Roi], since: u64| -> (BTreeSet<i32>, u64) {
        let current: BTreeSet<i32> = rois.iter().map(|r| r.id).collect();
        for _ in 0..500 {
            let flow = src.emit_by_name::<gst::FlowReturn>(
                "push-buffer",
                &[&buffer_with_rois(&frame, index, rois)],
            );
            assert_eq!(flow, gst::FlowReturn::Ok);
            index += 1;
            let sample = sink
                .emit_by_name::<Option<gst::Sample>>("try-pull-sample", &[&10_000_000_000u64])
                .expect("a buffer out");
            let buffer = sample.buffer().unwrap();
            let (ids, pts) = roi_ids_and_age(buffer);
            assert!(
                ids.is_subset(&current),
                "frame {index}: {ids:?} not in {current:?}"
            );
            // The masks belong to the ROIs that prompted them.
            for d in detector_rois(buffer).iter().filter(|d| d.mask.is_some()) {
                assert!(ids.contains(&d.id), "{d:?}");
            }
            if pts.is_some_and(|p| p >= since * 33_000_000) {
                return (ids, index);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no result from frame {since} on within 500 frames");
    };
    let (ids, after) = run(&all, 0);
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    // ROI 2 vanishes from the next frame on.
    let fewer = [all[0].clone(), all[2].clone()];
    let (ids, end) = run(&fewer, after);
    assert_eq!(ids, BTreeSet::from([1, 3]));
    println!("async: all three from frame {after}, without ROI 2 from frame {end}");
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    pipeline.set_state(gst::State::Null).unwrap();
}

/// The drawn face's outline: centre and radii.
const FACE: (f64, f64, f64, f64) = (160.0, 120.0, 52.0, 68.0);

/// A cartoon face that OpenCV's frontal-face Haar cascades find: a
/// skin-coloured ellipse with white eyes and dark pupils, brows, a nose
/// shadow and a mouth, on a grey-blue background. Returns the RGBA frame
/// and the exact mask of the face's outline (features included).
fn drawn_face() -> (Vec<u8>, Vec<bool>) {
    let (cx, cy, rx, ry) = FACE;
    let ellipse = |x: u32, y: u32, (ex, ey, a, b): (f64, f64, f64, f64)| {
        let dx = (f64::from(x) + 0.5 - ex) / a;
        let dy = (f64::from(y) + 0.5 - ey) / b;
        dx * dx + dy * dy <= 1.0
    };
    let (eye_dx, eye_y) = (rx * 0.38, cy - ry * 0.18);
    let mut layers = vec![((cx, cy, rx, ry), [225, 180, 150])];
    for side in [-1.0, 1.0] {
        let x = cx + side * eye_dx;
        layers.push(((x, eye_y, rx * 0.2, ry * 0.07), [240, 240, 240]));
        layers.push(((x, eye_y, rx * 0.09, ry * 0.07), [40, 30, 30]));
        layers.push(((x, eye_y - ry * 0.17, rx * 0.24, ry * 0.035), [60, 40, 30]));
    }
    layers.push(((cx, cy + ry * 0.12, rx * 0.08, ry * 0.18), [190, 145, 120]));
    layers.push(((cx, cy + ry * 0.27, rx * 0.16, ry * 0.05), [160, 115, 95]));
    layers.push(((cx, cy + ry * 0.5, rx * 0.3, ry * 0.06), [150, 60, 60]));
    let mut frame = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
    let mut mask = Vec::with_capacity((WIDTH * HEIGHT) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let c = layers
                .iter()
                .rev()
                .find(|(e, _)| ellipse(x, y, *e))
                .map_or([70, 90, 120], |(_, c)| *c);
            frame.extend_from_slice(&[c[0], c[1], c[2], 255]);
            mask.push(ellipse(x, y, FACE));
        }
    }
    (frame, mask)
}

#[test]
fn facedetect_faces_get_masks() {
    init();
    // facedetect's default profile; opencv-data is only a recommendation of
    // gstreamer1.0-opencv.
    let cascade = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml";
    assert!(
        gst::ElementFactory::find("facedetect").is_some() && std::path::Path::new(cascade).exists(),
        "facedetect or {cascade} is missing: install gstreamer1.0-opencv and opencv-data"
    );
    // facedetect takes RGB; its ROI metas (type `face`) survive videoconvert.
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps={} ! videoconvert \
         ! facedetect display=false ! videoconvert ! video/x-raw,format=RGBA \
         ! tinysam model=\"{}\" processing=sync inference-region=roi-list object-class=face \
         ! appsink name=sink sync=false",
        rgba_caps(),
        model_dir().display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let (frame, face) = drawn_face();
    let mut ids = Vec::new();
    for i in 0..3 {
        let flow = src
            .emit_by_name::<gst::FlowReturn>("push-buffer", &[&buffer_with_rois(&frame, i, &[])]);
        assert_eq!(flow, gst::FlowReturn::Ok);
        let sample = sink
            .emit_by_name::<Option<gst::Sample>>("try-pull-sample", &[&30_000_000_000u64])
            .expect("a buffer out");
        let buffer = sample.buffer().unwrap();
        let faces = detector_rois(buffer);
        assert_eq!(
            faces.len(),
            1,
            "frame {i}: facedetect found one face: {faces:?}"
        );
        let d = &faces[0];
        assert_eq!(d.label, "face");
        let m = d
            .mask
            .as_ref()
            .expect("the face ROI has a tinysam/mask param");
        let objects = found_objects(buffer);
        assert_eq!(objects.len(), 1);
        let o = &objects[0];
        assert_eq!(o.label.as_deref(), Some("face"));
        assert_eq!(o.roi_id, Some(d.id));
        assert_eq!(m.id, o.object.id);
        assert_eq!(m.mask, crop(&o.object.mask, d.rect));
        // The detector's box is a square wider than the face: a mask of the
        // whole box would have an IoU of 0.57 with it. The mask follows the
        // skin (the eyes, nose and mouth are other regions to TinySAM, holes
        // in the mask), so its IoU with the outline is lower than its holes
        // filled.
        let score = iou(&o.object.mask, &face);
        let filled = iou(&fill_holes(&o.object.mask), &face);
        let outside = o
            .object
            .mask
            .iter()
            .zip(&face)
            .filter(|(m, f)| **m && !**f)
            .count();
        let precision = 1.0 - outside as f64 / o.object.area.max(1) as f64;
        println!(
            "frame {i}: face ROI {:?}, mask IoU {score:.3} with the drawn face, \
             {filled:.3} with its holes filled, {precision:.3} of it inside the face",
            d.rect
        );
        assert!(score >= 0.7, "frame {i}: IoU {score:.3}");
        assert!(
            filled >= 0.9,
            "frame {i}: IoU with its holes filled {filled:.3}"
        );
        assert!(
            precision >= 0.97,
            "frame {i}: {precision:.3} of the mask inside the face"
        );
        ids.push(o.object.id);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    pipeline.set_state(gst::State::Null).unwrap();
}

/// `mask` with its holes filled: every pixel not reachable from the frame's
/// border through pixels outside the mask.
fn fill_holes(mask: &[bool]) -> Vec<bool> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut outside = vec![false; mask.len()];
    let mut stack: Vec<usize> = (0..w * h)
        .filter(|&i| i % w == 0 || i % w == w - 1 || i / w == 0 || i / w == h - 1)
        .filter(|&i| !mask[i])
        .collect();
    while let Some(i) = stack.pop() {
        if outside[i] || mask[i] {
            continue;
        }
        outside[i] = true;
        let (x, y) = (i % w, i / w);
        if x > 0 {
            stack.push(i - 1);
        }
        if x + 1 < w {
            stack.push(i + 1);
        }
        if y > 0 {
            stack.push(i - w);
        }
        if y + 1 < h {
            stack.push(i + w);
        }
    }
    outside.iter().map(|o| !o).collect()
}
