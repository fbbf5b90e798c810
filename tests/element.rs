// SPDX-License-Identifier: Apache-2.0
//! The `tinysam` element through the check harness, and in real pipelines
//! where a whole pipeline is the point (plugin registered statically), with
//! the trained fixture model in models/tinysam-fixture
//! (or `TINYSAM_TEST_MODEL=dir`).

mod common;

use gst::prelude::*;
use gst_check::Harness;

use common::element::*;

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

#[test]
fn structured_prompts_give_the_same_masks_as_text() {
    // Without tracking, both frames are segmented from the prompts alone.
    let sam = tinysam(&[("tracking", "false")]);
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

/// Every writable property reads back a non-default value set on it (a
/// property missing from the getter would read back its default).
#[test]
fn every_property_reads_back_what_was_set() {
    init();
    let sam = gst::ElementFactory::make("tinysam").build().unwrap();
    let mut checked = 0;
    for pspec in sam.list_properties() {
        let name = pspec.name();
        if !pspec.flags().contains(glib::ParamFlags::WRITABLE)
            || ["name", "parent", "qos", "prompt-list"].contains(&name)
        {
            continue;
        }
        let text = match pspec.value_type() {
            t if t == bool::static_type() => {
                (!pspec.default_value().get::<bool>().unwrap()).to_string()
            }
            t if t == String::static_type() => match name {
                "prompts" => "point=1,2".to_owned(),
                "object-class" | "overlay-objects" => "face,3".to_owned(),
                _ => "/some/path".to_owned(),
            },
            t if t == u32::static_type() => {
                let p = pspec.downcast_ref::<glib::ParamSpecUInt>().unwrap();
                (if p.default_value() == p.maximum() {
                    p.minimum()
                } else {
                    p.maximum()
                })
                .to_string()
            }
            t if t == u64::static_type() => "12345".to_owned(),
            t if t == f64::static_type() => {
                let p = pspec.downcast_ref::<glib::ParamSpecDouble>().unwrap();
                (if p.default_value() == p.maximum() {
                    p.minimum()
                } else {
                    p.maximum()
                })
                .to_string()
            }
            _ => {
                let p = pspec.downcast_ref::<glib::ParamSpecEnum>().expect(name);
                let class = p.enum_class();
                let other = class
                    .values()
                    .iter()
                    .find(|v| v.value() != p.default_value_as_i32())
                    .unwrap();
                other.nick().to_owned()
            }
        };
        sam.set_property_from_str(name, &text);
        let value = sam.property_value(name);
        let read = value.serialize().map(|s| s.to_string()).unwrap_or_default();
        let default = pspec
            .default_value()
            .serialize()
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert_ne!(
            read, default,
            "`{name}` set to `{text}` reads back its default"
        );
        checked += 1;
    }
    assert!(checked >= 30, "{checked} properties checked");
}
