// SPDX-License-Identifier: Apache-2.0
//! Prompts from applications (`tinysam/prompts` custom events) in real
//! pipelines: each applies from the buffer after it, downstream through the
//! stream or upstream from the sink side; malformed ones warn and keep the
//! prompts; and the C and Rust snippets of docs/element.md, run as written
//! there (the Python one runs in tests/python/test_prompt_events_gi.py).

mod common;

use gst::prelude::*;

use common::element::*;
use common::snippets::{CProgram, doc_block};

/// The box around the test frame's ellipse, as numbers.
const ELLIPSE_BOX: [f64; 4] = [86.0, 66.0, 234.0, 174.0];

/// A `tinysam/prompts` event structure from its text form.
fn edit(text: &str) -> gst::Structure {
    text.parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a structure"))
}

fn downstream(text: &str) -> gst::Event {
    gst::event::CustomDownstream::new(edit(text))
}

/// `(id, prompt-source)` of a buffer's objects.
fn ids(buffer: &gst::BufferRef) -> Vec<(u32, String)> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta")
        .expect("every processed buffer has a GstTinySamMeta");
    let objects = meta.structure().get::<gst::Array>("objects").unwrap();
    objects
        .iter()
        .map(|v| {
            let o = v.get::<gst::Structure>().unwrap();
            (
                o.get::<u32>("id").unwrap(),
                o.get::<String>("prompt-source").unwrap_or_default(),
            )
        })
        .collect()
}

fn add_box_text(id: Option<u32>, corners: [f64; 4]) -> String {
    let id = id.map_or(String::new(), |id| format!("id=(uint){id}, "));
    let [x0, y0, x1, y1] = corners;
    format!(
        "tinysam/prompts, action=add, prompts=<[tinysam/prompt, {id}box=<(double){x0}, \
         (double){y0}, (double){x1}, (double){y1}>]>"
    )
}

#[test]
fn downstream_events_apply_from_the_next_buffer() {
    let sam = tinysam(&[("everything-mode", "none")]);
    let mut h = harness(&sam, "RGBA");
    let frame = rgba_frame();
    // Nothing to do yet: passthrough, no metadata.
    let out = push(&mut h, &frame, 0);
    assert!(gst::meta::CustomMeta::from_buffer(&out, "GstTinySamMeta").is_err());

    assert!(h.push_event(downstream(&add_box_text(Some(7), ELLIPSE_BOX))));
    let out = push(&mut h, &frame, 1);
    assert_eq!(ids(&out), [(7, "event".to_owned())]);
    let score = iou(&custom_meta_objects(&out)[0].mask, &exact_mask());
    assert!(score >= 0.85, "IoU {score:.3}");

    // Without an id: a fresh one, above every id used so far.
    assert!(h.push_event(downstream(
        "tinysam/prompts, action=add, prompts=<[tinysam/prompt, points=<(double)160, (double)120>]>"
    )));
    let out = push(&mut h, &frame, 2);
    let two = ids(&out);
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].0, 7);
    assert!(two[1].0 > 7, "{two:?}");

    assert!(h.push_event(downstream("tinysam/prompts, action=remove, ids=<7>")));
    let out = push(&mut h, &frame, 3);
    assert_eq!(ids(&out), [two[1].clone()]);

    // Two edits before one buffer apply in order.
    assert!(h.push_event(downstream("tinysam/prompts, action=clear")));
    assert!(h.push_event(downstream(
        "tinysam/prompts, action=replace, coordinates=normalized, prompts=<\
         [tinysam/prompt, box=<(double)0.26875, (double)0.275, (double)0.73125, (double)0.725>], \
         [tinysam/prompt, points=<(double)0.5, (double)0.5>]>"
    )));
    let out = push(&mut h, &frame, 4);
    assert_eq!(
        ids(&out),
        [(0, "event".to_owned()), (1, "event".to_owned())]
    );
    for object in custom_meta_objects(&out) {
        let score = iou(&object.mask, &exact_mask());
        assert!(score >= 0.85, "object {}: IoU {score:.3}", object.id);
    }
    assert!(h.push_event(downstream("tinysam/prompts, action=clear")));
    let out = push(&mut h, &frame, 5);
    assert!(ids(&out).is_empty());
    // The element is idle again: the next buffer passes through.
    let out = push(&mut h, &frame, 6);
    assert!(gst::meta::CustomMeta::from_buffer(&out, "GstTinySamMeta").is_err());
}

#[test]
fn upstream_events_from_the_sink_side_apply_from_the_next_buffer() {
    let sam = tinysam(&[("everything-mode", "none"), ("prompts", POINT_PROMPT)]);
    let mut h = harness(&sam, "RGBA");
    let frame = rgba_frame();
    assert_eq!(ids(&push(&mut h, &frame, 0)), [(0, "property".to_owned())]);
    assert!(
        h.push_upstream_event(gst::event::CustomUpstream::new(edit(&add_box_text(
            None,
            ELLIPSE_BOX
        ))))
    );
    // Taken by tinysam, not passed further upstream.
    while let Some(event) = h.try_pull_upstream_event() {
        assert_ne!(event.type_(), gst::EventType::CustomUpstream, "{event:?}");
    }
    let out = push(&mut h, &frame, 1);
    let objects = ids(&out);
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert_eq!(objects[1].1, "event");
    // A property set replaces everything, as a `replace` would.
    sam.set_property("prompts", BOX_PROMPT);
    assert_eq!(ids(&push(&mut h, &frame, 2)), [(0, "property".to_owned())]);
}

#[test]
fn malformed_events_warn_and_keep_the_prompts() {
    let sam = tinysam(&[("everything-mode", "none"), ("prompts", BOX_PROMPT)]);
    let mut h = harness(&sam, "RGBA");
    let frame = rgba_frame();
    let before = custom_meta_objects(&push(&mut h, &frame, 0));
    assert_eq!(before.len(), 1);
    let cases = [
        ("tinysam/prompts, ids=<1>", "needs a string field `action`"),
        (
            "tinysam/prompts, action=explode",
            "unknown action `explode`",
        ),
        ("tinysam/prompts, action=add", "needs a field `prompts`"),
        (
            "tinysam/prompts, action=add, prompts=<[tinysam/prompt, points=<(double)1>]>",
            "x,y pairs",
        ),
        (
            "tinysam/prompts, action=add, prompts=<[tinysam/prompt, negatives=<(double)1, (double)1>]>",
            "positive point or a box",
        ),
        (
            "tinysam/prompts, action=add, prompts=<[tinysam/prompt, box=<(double)1e300, (double)0, (double)5, (double)5>]>",
            "box",
        ),
        (
            "tinysam/prompts, action=remove, ids=<(string)a>",
            "not a non-negative integer id",
        ),
    ];
    for (i, (text, reason)) in cases.iter().enumerate() {
        assert!(!h.push_event(downstream(text)), "`{text}` was accepted");
        let (message, _) = pop_warning(&sam);
        assert!(
            message.contains("Invalid prompt event") && message.contains(reason),
            "`{text}`: `{message}` lacks `{reason}`"
        );
        let out = push(&mut h, &frame, 1 + i as u64);
        let after = custom_meta_objects(&out);
        assert_eq!(after.len(), 1, "`{text}` changed the objects");
        assert_eq!(after[0].id, before[0].id);
        let score = iou(&after[0].mask, &exact_mask());
        assert!(score >= 0.85, "`{text}`: IoU {score:.3}");
    }
    // Removing an id that is not there: a warning when it applies, the
    // other ids are removed all the same.
    assert!(h.push_event(downstream("tinysam/prompts, action=remove, ids=<0, 99>")));
    let out = push(&mut h, &frame, 20);
    assert!(ids(&out).is_empty());
    let (message, _) = pop_warning(&sam);
    assert!(message.contains("[99]"), "{message}");
}

#[test]
fn an_event_before_the_caps_applies_to_the_first_buffer() {
    let sam = tinysam(&[("everything-mode", "none")]);
    let mut h = gst_check::Harness::with_element(&sam, Some("sink"), Some("src"));
    h.play();
    assert!(h.push_event(gst::event::StreamStart::new("prompts-first")));
    assert!(h.push_event(downstream(&add_box_text(Some(3), ELLIPSE_BOX))));
    h.set_src_caps_str(&rgba_caps());
    let out = push(&mut h, &rgba_frame(), 0);
    assert_eq!(ids(&out), [(3, "event".to_owned())]);
}

#[test]
fn waiting_edits_stay_bounded() {
    let sam = tinysam(&[("everything-mode", "none")]);
    let mut h = harness(&sam, "RGBA");
    let frame = rgba_frame();
    let add = add_box_text(None, ELLIPSE_BOX);
    // 1024 edits may wait for a buffer; the rest are refused at once.
    let accepted = (0..1030).filter(|_| h.push_event(downstream(&add))).count();
    assert_eq!(accepted, 1024);
    for _ in accepted..1030 {
        let (message, _) = pop_warning(&sam);
        assert!(message.contains("already waiting"), "{message}");
    }
    // A clear drops what waits before it.
    assert!(h.push_event(downstream("tinysam/prompts, action=clear")));
    assert!(h.push_event(downstream(&add)));
    let out = push(&mut h, &frame, 0);
    assert_eq!(ids(&out).len(), 1);
}

// -- docs/element.md's snippets ---------------------------------------------

/// Adds a box prompt with the id `id` from the next buffer `appsrc` pushes.
fn add_box(appsrc: &gst::Element, id: u32, corners: [f64; 4]) -> bool {
    let prompt = gst::Structure::builder("tinysam/prompt")
        .field("id", id)
        .field("box", gst::Array::new(corners))
        .build();
    let edit = gst::Structure::builder("tinysam/prompts")
        .field("action", "add")
        .field("prompts", gst::Array::new([prompt]))
        .build();
    appsrc.send_event(gst::event::CustomDownstream::new(edit))
}

#[test]
fn the_documented_rust_snippet_is_this_one_and_is_frame_accurate() {
    let documented = doc_block("### Prompt events from applications", "rust");
    let source = include_str!("prompt_events.rs");
    assert!(
        source.contains(&documented),
        "docs/element.md's Rust snippet differs from `add_box` in tests/prompt_events.rs:\n{documented}"
    );

    init();
    let model = model_dir().display().to_string();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps={} ! tinysam model={model} everything-mode=none \
         ! appsink name=sink sync=false",
        rgba_caps()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let appsrc = pipeline.by_name("src").unwrap();
    let appsink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let frame = rgba_frame();
    let push_frame = |index: u64| {
        let mut buffer = gst::Buffer::from_slice(frame.clone());
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(index * 33));
        let flow = appsrc.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buffer]);
        assert_eq!(flow, gst::FlowReturn::Ok);
    };
    // Pushed back to back (appsrc queues them): the event sits between
    // buffers 2 and 3 whatever the streaming thread is doing.
    for index in 0..6 {
        if index == 3 {
            assert!(add_box(&appsrc, 11, ELLIPSE_BOX));
        }
        push_frame(index);
    }
    let _ = appsrc.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let mut counts = Vec::new();
    while let Some(sample) = appsink.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]) {
        let buffer = sample.buffer().unwrap();
        let objects = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta")
            .map_or(0, |_| ids(buffer).len());
        counts.push(objects);
        if objects == 1 {
            assert_eq!(ids(buffer)[0].0, 11);
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(counts, [0, 0, 0, 1, 1, 1]);
}

/// A C program around the documented function: appsrc ! tinysam ! appsink,
/// the event sent between buffers 1 and 2; prints each buffer's object ids.
const C_PROGRAM: &str = r#"
#include <gst/gst.h>
#include <stdio.h>
#include <string.h>

@SNIPPET@

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  gchar *description = g_strdup_printf ("appsrc name=src format=time caps=%s "
      "! tinysam model=%s everything-mode=none ! appsink name=sink sync=false",
      argv[1], argv[2]);
  GstElement *pipeline = gst_parse_launch (description, NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  gsize size = 320 * 240 * 4;
  guint8 *pixels = g_malloc (size);
  FILE *f = fopen (argv[3], "rb");
  if (f == NULL || fread (pixels, 1, size, f) != size)
    return 2;
  fclose (f);
  for (int i = 0; i < 4; i++) {
    if (i == 2 && !tinysam_send_prompts (src, argv[4]))
      return 3;
    GstBuffer *buffer = gst_buffer_new_memdup (pixels, size);
    GST_BUFFER_PTS (buffer) = i * 33 * GST_MSECOND;
    GstFlowReturn flow;
    g_signal_emit_by_name (src, "push-buffer", buffer, &flow);
    gst_buffer_unref (buffer);
  }
  GstFlowReturn flow;
  g_signal_emit_by_name (src, "end-of-stream", &flow);
  for (;;) {
    GstSample *sample = NULL;
    g_signal_emit_by_name (sink, "pull-sample", &sample);
    if (sample == NULL)
      break;
    GstCustomMeta *meta = gst_buffer_get_custom_meta (gst_sample_get_buffer (sample),
        "GstTinySamMeta");
    printf ("buffer:");
    if (meta != NULL) {
      const GValue *objects = gst_structure_get_value (
          gst_custom_meta_get_structure (meta), "objects");
      for (guint k = 0; k < gst_value_array_get_size (objects); k++) {
        const GstStructure *o = gst_value_get_structure (
            gst_value_array_get_value (objects, k));
        guint id;
        gst_structure_get_uint (o, "id", &id);
        printf (" %u", id);
      }
    }
    printf ("\n");
    gst_sample_unref (sample);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  return 0;
}
"#;

#[test]
fn the_documented_c_snippet_compiles_and_is_frame_accurate() {
    let snippet = doc_block("### Prompt events from applications", "c");
    let program = CProgram::compile("prompt-event", &C_PROGRAM.replace("@SNIPPET@", &snippet));
    let frame = program.file("frame.rgba");
    std::fs::write(&frame, rgba_frame()).unwrap();
    let output = program.run(&[
        &rgba_caps(),
        &model_dir(),
        &frame,
        &add_box_text(Some(5), ELLIPSE_BOX),
    ]);
    assert_eq!(output, "buffer:\nbuffer:\nbuffer: 5\nbuffer: 5\n");
}
