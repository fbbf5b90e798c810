// SPDX-License-Identifier: Apache-2.0
//! The `tinysam` element through the check harness, and in real pipelines
//! where a whole pipeline is the point (plugin registered statically), with
//! the trained fixture model in models/tinysam-fixture
//! (or `TINYSAM_TEST_MODEL=dir`).

use std::path::PathBuf;
use std::sync::Once;

use gst::prelude::*;
use gst_check::Harness;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
/// The ellipse drawn into the test frame: centre and radii.
const ELLIPSE: (f64, f64, f64, f64) = (160.0, 120.0, 70.0, 50.0);
const BACKGROUND: [u8; 3] = [30, 40, 90];
const FOREGROUND: [u8; 3] = [230, 200, 40];
const BOX_PROMPT: &str = "box=86,66,234,174";
const POINT_PROMPT: &str = "point=160,120";

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gsttinysam::plugin_register_static().expect("register the tinysam plugin");
    });
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TINYSAM_TEST_MODEL") {
        return PathBuf::from(dir);
    }
    root().join("models/tinysam-fixture")
}

fn in_ellipse(x: u32, y: u32) -> bool {
    let (cx, cy, rx, ry) = ELLIPSE;
    let dx = (f64::from(x) + 0.5 - cx) / rx;
    let dy = (f64::from(y) + 0.5 - cy) / ry;
    dx * dx + dy * dy <= 1.0
}

/// The test frame as packed RGBA.
fn rgba_frame() -> Vec<u8> {
    let mut data = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let c = if in_ellipse(x, y) {
                FOREGROUND
            } else {
                BACKGROUND
            };
            data.extend_from_slice(&[c[0], c[1], c[2], 255]);
        }
    }
    data
}

fn exact_mask() -> Vec<bool> {
    (0..HEIGHT)
        .flat_map(|y| (0..WIDTH).map(move |x| in_ellipse(x, y)))
        .collect()
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(a, b)| **a && **b).count();
    let union = a.iter().zip(b).filter(|(a, b)| **a || **b).count();
    if union == 0 {
        return 0.0;
    }
    inter as f64 / union as f64
}

/// Pastes a box-cropped, bit-packed (MSB first, rows not padded) mask into
/// a frame-sized one.
fn unpack(x: i32, y: i32, w: i32, h: i32, bits: &[u8]) -> Vec<bool> {
    let mut mask = vec![false; (WIDTH * HEIGHT) as usize];
    for r in 0..h {
        for c in 0..w {
            let i = (r * w + c) as usize;
            if bits[i / 8] & (0x80 >> (i % 8)) != 0 {
                mask[((y + r) as u32 * WIDTH + (x + c) as u32) as usize] = true;
            }
        }
    }
    mask
}

#[derive(Debug)]
struct Object {
    id: u32,
    prompt_index: i32,
    /// "prompt" or "everything".
    source: String,
    /// Everything mode: the grid point, frame pixels.
    grid_point: Option<(f64, f64)>,
    iou: f64,
    area: u64,
    mask: Vec<bool>,
}

/// The objects of the custom meta.
fn custom_meta_objects(buffer: &gst::BufferRef) -> Vec<Object> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta").expect("custom meta");
    let s = meta.structure();
    assert_eq!(s.name(), "tinysam/objects");
    assert_eq!(s.get::<u32>("frame-width").unwrap(), WIDTH);
    assert_eq!(s.get::<u32>("frame-height").unwrap(), HEIGHT);
    let objects = s.get::<gst::Array>("objects").expect("objects");
    assert_eq!(s.get::<u32>("count").unwrap() as usize, objects.len());
    objects
        .iter()
        .map(|v| {
            let o = v.get::<gst::Structure>().expect("object structure");
            assert_eq!(o.name(), "tinysam/object");
            let source = o.get::<String>("source").unwrap();
            let grid_point = (source == "everything").then(|| {
                let round = o.get::<&str>("grid-round").unwrap();
                assert!(round == "sparse" || round == "dense", "{round}");
                (o.get("grid-x").unwrap(), o.get("grid-y").unwrap())
            });
            let bits = o.get::<glib::Bytes>("mask").unwrap();
            let mask = unpack(
                o.get("x").unwrap(),
                o.get("y").unwrap(),
                o.get("width").unwrap(),
                o.get("height").unwrap(),
                &bits,
            );
            let area = o.get::<u64>("area").unwrap();
            assert_eq!(mask.iter().filter(|m| **m).count() as u64, area);
            let stability = o.get::<f64>("stability").unwrap();
            assert!((0.0..=1.0).contains(&stability));
            Object {
                id: o.get("id").unwrap(),
                prompt_index: o.get("prompt-index").unwrap(),
                source,
                grid_point,
                iou: o.get("iou").unwrap(),
                area,
                mask,
            }
        })
        .collect()
}

/// The masks of the ROI metas, by object id.
fn roi_masks(buffer: &gst::BufferRef) -> Vec<(i32, Vec<bool>)> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|roi| {
            assert_eq!(roi.roi_type(), "tinysam");
            let (x, y, w, h) = roi.rect();
            let p = roi.param("tinysam/mask").expect("tinysam/mask param");
            let bits = p.get::<glib::Bytes>("mask").unwrap();
            assert_eq!(p.get::<u32>("id").unwrap() as i32, roi.id());
            (
                roi.id(),
                unpack(x as i32, y as i32, w as i32, h as i32, &bits),
            )
        })
        .collect()
}

/// The caps of the RGBA test frames.
fn rgba_caps() -> String {
    format!("video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT},framerate=30/1")
}

/// A tinysam element with the fixture model and `properties` (name and
/// value, as on a `gst-launch` line). Outside a pipeline an element has no
/// bus, so it gets one of its own for its warnings and messages.
fn tinysam(properties: &[(&str, &str)]) -> gst::Element {
    init();
    let model = model_dir().display().to_string();
    let sam = properties
        .iter()
        .fold(
            gst::ElementFactory::make("tinysam").property("model", model.as_str()),
            |builder, (name, value)| builder.property_from_str(name, value),
        )
        .build()
        .expect("a tinysam element");
    sam.set_bus(Some(&gst::Bus::new()));
    sam
}

/// A harness around `sam` (which it starts), fed the RGBA test frames; for
/// another `format` they go through videoconvert in a source harness first.
fn harness(sam: &gst::Element, format: &str) -> Harness {
    let mut h = Harness::with_element(sam, Some("sink"), Some("src"));
    if format == "RGBA" {
        h.set_src_caps_str(&rgba_caps());
    } else {
        h.add_src_parse(
            &format!("videoconvert ! capsfilter caps=video/x-raw,format={format}"),
            false,
        );
        h.src_harness_mut()
            .expect("the source harness")
            .set_src_caps_str(&rgba_caps());
    }
    h
}

/// The error tinysam posted, to explain a failed push.
fn posted_error(h: &Harness) -> String {
    h.element()
        .and_then(|sam| sam.bus())
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        .map_or_else(|| "no error message".to_owned(), |msg| format!("{msg:?}"))
}

/// Pushes `frame` (RGBA) and returns the buffer that comes out of tinysam.
fn push(h: &mut Harness, frame: &[u8], index: u64) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_slice(frame.to_vec());
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(index * 33));
        b.set_duration(gst::ClockTime::from_mseconds(33));
    }
    let pushed = if let Some(mut src) = h.src_harness_mut() {
        src.push(buffer).expect("push into videoconvert");
        h.push_from_src()
    } else {
        h.push(buffer)
    };
    if let Err(err) = pushed {
        panic!("push: {err:?}, {}", posted_error(h));
    }
    h.pull()
        .unwrap_or_else(|_| panic!("no buffer out, {}", posted_error(h)))
}

/// Segments the test frame converted to `format` and returns the custom meta's objects.
fn segment_in(format: &str, prompts: &str) -> Vec<Object> {
    let sam = tinysam(&[("prompts", prompts)]);
    let mut h = harness(&sam, format);
    custom_meta_objects(&push(&mut h, &rgba_frame(), 0))
}

#[test]
fn box_prompt_segments_the_ellipse() {
    let sam = tinysam(&[("prompts", BOX_PROMPT)]);
    let mut h = harness(&sam, "RGBA");
    let out = push(&mut h, &rgba_frame(), 0);
    let objects = custom_meta_objects(&out);
    assert_eq!(objects.len(), 1);
    let exact = exact_mask();
    let score = iou(&objects[0].mask, &exact);
    println!(
        "box prompt: IoU {score:.4} (predicted {:.3}, area {} vs {})",
        objects[0].iou,
        objects[0].area,
        exact.iter().filter(|m| **m).count()
    );
    assert!(score >= 0.85, "IoU {score}");
    assert_eq!(objects[0].prompt_index, 0);
    assert_eq!(objects[0].source, "prompt");
    assert!(objects[0].grid_point.is_none());

    let rois = roi_masks(&out);
    assert_eq!(rois.len(), 1);
    assert_eq!(rois[0].0 as u32, objects[0].id);
    assert_eq!(
        rois[0].1, objects[0].mask,
        "ROI mask differs from the custom meta's"
    );
}

#[test]
fn point_prompt_segments_the_ellipse() {
    let objects = segment_in("RGBA", POINT_PROMPT);
    assert_eq!(objects.len(), 1);
    let score = iou(&objects[0].mask, &exact_mask());
    println!("point prompt: IoU {score:.4}");
    assert!(score >= 0.70, "IoU {score}");
}

#[test]
fn formats_agree() {
    let reference = segment_in("RGBA", BOX_PROMPT);
    for format in ["BGRx", "I420", "NV12"] {
        let objects = segment_in(format, BOX_PROMPT);
        assert_eq!(objects.len(), 1, "{format}");
        let score = iou(&objects[0].mask, &reference[0].mask);
        println!("{format} vs RGBA: IoU {score:.4}");
        assert!(score >= 0.98, "{format}: IoU {score} with RGBA");
    }
}

#[test]
fn overlay_changes_only_pixels_inside_the_mask() {
    let sam = tinysam(&[("prompts", BOX_PROMPT), ("overlay", "true")]);
    let mut h = harness(&sam, "RGBA");
    let input = rgba_frame();
    let out = push(&mut h, &input, 0);
    let objects = custom_meta_objects(&out);
    assert_eq!(objects.len(), 1);
    let mask = &objects[0].mask;
    let map = out.map_readable().unwrap();
    let (mut inside, mut changed_inside) = (0usize, 0usize);
    for (i, m) in mask.iter().enumerate() {
        let changed = map[i * 4..i * 4 + 3] != input[i * 4..i * 4 + 3];
        if *m {
            inside += 1;
            changed_inside += usize::from(changed);
        } else {
            assert!(!changed, "pixel {} outside the mask changed", i);
        }
    }
    println!("overlay: {changed_inside} of {inside} mask pixels changed");
    assert!(inside > 0 && changed_inside * 100 >= inside * 95);

    // Without overlay the frame is untouched.
    let sam = tinysam(&[("prompts", BOX_PROMPT)]);
    let mut h = harness(&sam, "RGBA");
    let out = push(&mut h, &input, 0);
    assert_eq!(&*out.map_readable().unwrap(), &input[..]);
}

#[test]
fn prompts_change_while_playing() {
    let sam = tinysam(&[("everything-mode", "none")]);
    let mut h = harness(&sam, "RGBA");
    let frame = rgba_frame();
    let out = push(&mut h, &frame, 0);
    assert!(
        gst::meta::CustomMeta::from_buffer(&out, "GstTinySamMeta").is_err(),
        "no prompts, no metadata"
    );
    assert_eq!(&*out.map_readable().unwrap(), &frame[..]);

    sam.set_property("prompts", BOX_PROMPT);
    let objects = custom_meta_objects(&push(&mut h, &frame, 1));
    assert_eq!(objects.len(), 1);

    sam.set_property("prompts", format!("{BOX_PROMPT}; point=20,20"));
    let objects = custom_meta_objects(&push(&mut h, &frame, 2));
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1].prompt_index, 1);
    // The background point does not give the ellipse.
    assert!(iou(&objects[1].mask, &exact_mask()) < 0.5);
}

#[test]
fn everything_mode_segments_unprompted_frames() {
    // The fixture's predicted IoUs run lower than SAM's; tests/everything.rs
    // explains these thresholds.
    let sam = tinysam(&[
        ("points-per-side", "16"),
        ("pred-iou-thresh", "0.75"),
        ("stability-score-thresh", "0.9"),
    ]);
    let mut h = harness(&sam, "RGBA");
    let out = push(&mut h, &rgba_frame(), 0);
    let objects = custom_meta_objects(&out);
    assert!(!objects.is_empty());
    for o in &objects {
        assert_eq!(o.source, "everything");
        let (x, y) = o.grid_point.expect("a grid point");
        assert!((0.0..WIDTH as f64).contains(&x) && (0.0..HEIGHT as f64).contains(&y));
    }
    let best = objects
        .iter()
        .map(|o| iou(&o.mask, &exact_mask()))
        .fold(0.0, f64::max);
    assert!(best >= 0.85, "best IoU with the ellipse {best}");
    assert_eq!(roi_masks(&out).len(), objects.len());

    // Prompts take over from everything mode on the next frame.
    sam.set_property("prompts", BOX_PROMPT);
    let objects = custom_meta_objects(&push(&mut h, &rgba_frame(), 1));
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].source, "prompt");
}

#[test]
fn latency_includes_the_processing_time() {
    let sam = tinysam(&[("prompts", BOX_PROMPT)]);
    let mut h = harness(&sam, "RGBA");
    // The harness's upstream is live with no latency, so the minimum is tinysam's.
    let latency = |h: &Harness| h.query_latency().expect("a latency answer");
    assert_eq!(latency(&h), gst::ClockTime::ZERO, "nothing processed yet");
    assert!(sam.property::<bool>("qos"), "QoS is on by default");

    let started = std::time::Instant::now();
    push(&mut h, &rgba_frame(), 0);
    let frame_time = started.elapsed();
    let reported = latency(&h);
    assert!(reported > gst::ClockTime::ZERO);
    assert!(
        reported.nseconds() as u128 <= 2 * frame_time.as_nanos(),
        "reported {reported} for a frame that took {frame_time:?}"
    );
    // The element asks for the latency to be recomputed.
    let bus = sam.bus().unwrap();
    assert!(bus.pop_filtered(&[gst::MessageType::Latency]).is_some());
}

/// The text and debug text of the warning waiting on the element's bus.
fn pop_warning(element: &impl IsA<gst::Element>) -> (String, String) {
    let msg = element
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    let gst::MessageView::Warning(w) = msg.view() else {
        unreachable!()
    };
    let debug = w.debug().map(|d| d.to_string()).unwrap_or_default();
    (w.error().to_string(), debug)
}

fn prompt_structure(field: &str, numbers: &[f64]) -> gst::Structure {
    gst::Structure::builder("tinysam/prompt")
        .field(field, gst::Array::new(numbers.iter().copied()))
        .build()
}

#[test]
fn structured_prompts_give_the_same_masks_as_text() {
    let sam = tinysam(&[]);
    let mut h = harness(&sam, "RGBA");
    let frame = rgba_frame();
    sam.set_property("prompts", format!("{BOX_PROMPT}; {POINT_PROMPT}"));
    let from_text = custom_meta_objects(&push(&mut h, &frame, 0));

    let list = gst::Array::new([
        prompt_structure("box", &[86.0, 66.0, 234.0, 174.0]),
        prompt_structure("points", &[160.0, 120.0]),
    ]);
    sam.set_property("prompt-list", &list);
    // Both properties are views of the same prompts.
    assert_eq!(
        sam.property::<String>("prompts"),
        format!("{BOX_PROMPT}; {POINT_PROMPT}")
    );
    assert_eq!(sam.property::<gst::Array>("prompt-list").len(), 2);
    let from_list = custom_meta_objects(&push(&mut h, &frame, 1));

    assert_eq!(from_text.len(), 2);
    assert_eq!(from_list.len(), 2);
    for (a, b) in from_text.iter().zip(&from_list) {
        assert_eq!(a.mask, b.mask);
        assert_eq!(a.prompt_index, b.prompt_index);
    }

    // A bad list warns, names the object and keeps the previous prompts.
    let bad = gst::Array::new([
        prompt_structure("box", &[86.0, 66.0, 234.0, 174.0]),
        prompt_structure("points", &[160.0]),
    ]);
    sam.set_property("prompt-list", &bad);
    assert_eq!(sam.property::<gst::Array>("prompt-list").len(), 2);
    let (text, _) = pop_warning(&sam);
    assert!(
        text.contains("object 2") && text.contains("x,y pairs"),
        "{text}"
    );
}

/// Sets the pipeline to PAUSED, expects failure and returns the error text.
fn start_error(properties: &str) -> String {
    init();
    let description = format!("videotestsrc num-buffers=1 ! tinysam {properties} ! fakesink");
    let pipeline = gst::parse::launch(&description).expect("parse pipeline");
    let result = pipeline.set_state(gst::State::Paused);
    let bus = pipeline.bus().unwrap();
    let msg = bus.pop_filtered(&[gst::MessageType::Error]);
    let _ = pipeline.set_state(gst::State::Null);
    assert!(result.is_err(), "state change succeeded with {properties}");
    let Some(msg) = msg else {
        panic!("no error message with {properties}");
    };
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    format!(
        "{} {}",
        err.error(),
        err.debug().map(|d| d.to_string()).unwrap_or_default()
    )
}

#[test]
fn missing_model_is_reported() {
    let text = start_error("model=/nonexistent/tinysam");
    assert!(text.contains("/nonexistent/tinysam"), "{text}");
}

#[test]
fn wrong_decoder_inputs_are_listed() {
    let data = root().join("tests/data");
    let text = start_error(&format!(
        "model=\"{}\" decoder-model=\"{}\"",
        data.join("tiny").display(),
        data.join("wrong_inputs.onnx").display()
    ));
    for needle in [
        "wrong_inputs.onnx",
        "missing input `image_embeddings`",
        "expected:",
        "inputs:  embeddings",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
}

#[test]
fn no_model_is_an_actionable_error() {
    let text = start_error("");
    assert!(text.contains("set the `model` property"), "{text}");
}

#[test]
fn malformed_prompts_warn_and_keep_the_previous_ones() {
    init();
    let pipeline = gst::Pipeline::new();
    let sam = gst::ElementFactory::make("tinysam").build().unwrap();
    pipeline.add(&sam).unwrap();
    sam.set_property("prompts", BOX_PROMPT);
    sam.set_property("prompts", "box=1,2,3,4; point=3");
    assert_eq!(sam.property::<String>("prompts"), BOX_PROMPT);
    // The warning itself names the offending part; the debug text repeats the string.
    let (text, debug) = pop_warning(&pipeline);
    assert!(text.contains("point=3"), "{text}");
    assert!(text.contains("object 2"), "{text}");
    assert!(debug.contains("box=1,2,3,4; point=3"), "{debug}");
}

#[test]
fn properties_have_documented_defaults() {
    init();
    let sam = gst::ElementFactory::make("tinysam").build().unwrap();
    assert_eq!(sam.property::<Option<String>>("model"), None);
    assert_eq!(sam.property::<String>("prompts"), "");
    assert_eq!(sam.property::<f64>("mask-threshold"), 0.0);
    assert!(!sam.property::<bool>("overlay"));
    assert_eq!(sam.property::<f64>("overlay-alpha"), 0.5);
    assert!(sam.property::<bool>("overlay-outline"));
    assert_eq!(sam.property::<u32>("n-threads"), 0);
    sam.set_property_from_str("coordinates", "normalized");
    sam.set_property_from_str("mask-selection", "sam");
    sam.set_property_from_str("execution-provider", "cuda");
    let nick = |name: &str| {
        let v = sam.property_value(name);
        glib::EnumValue::from_value(&v).unwrap().1.nick().to_owned()
    };
    assert_eq!(nick("coordinates"), "normalized");
    assert_eq!(nick("mask-selection"), "sam");
    assert_eq!(nick("execution-provider"), "cuda");
}
