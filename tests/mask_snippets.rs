// SPDX-License-Identifier: Apache-2.0
//! docs/element.md's frame-size mask functions for C and Rust, run as
//! written there on the element's metadata and checked against the masks
//! decoded by the tests' own reader and against the exact ellipse.

mod common;

use common::element::*;
use common::snippets::{CProgram, doc_block};

const HEADING: &str = "### Frame-size masks from C, Python and Rust";

/// Object `o` (a `tinysam/object` of the `tinysam/objects` structure `s`)
/// as a frame-size mask, row-major.
fn frame_mask(s: &gst::StructureRef, o: &gst::StructureRef) -> Vec<bool> {
    let size = |field| s.get::<u32>(field).unwrap_or(0) as usize;
    let (fw, fh) = (size("frame-width"), size("frame-height"));
    let [x, y, w, h] = ["x", "y", "width", "height"].map(|f| o.get::<i32>(f).unwrap_or(0) as usize);
    let bits = o
        .get::<gst::glib::Bytes>("mask")
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let mut mask = vec![false; fw * fh];
    for i in (0..w * h).filter(|i| bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)) {
        if let Some(pixel) = mask.get_mut((y + i / w) * fw + x + i % w) {
            *pixel = true;
        }
    }
    mask
}

/// A buffer out of tinysam with two objects: the ellipse and a point.
fn segmented() -> gst::Buffer {
    let sam = tinysam(&[("prompts", &format!("{BOX_PROMPT}; {POINT_PROMPT}"))]);
    let mut h = harness(&sam, "RGBA");
    push(&mut h, &rgba_frame(), 0)
}

#[test]
fn the_documented_rust_function_gives_the_frame_size_masks() {
    let documented = doc_block(HEADING, "rust");
    assert!(
        include_str!("mask_snippets.rs").contains(&documented),
        "docs/element.md's Rust frame_mask differs from tests/mask_snippets.rs:\n{documented}"
    );
    let buffer = segmented();
    let meta = gst::meta::CustomMeta::from_buffer(&buffer, "GstTinySamMeta").unwrap();
    let s = meta.structure();
    let objects = s.get::<gst::Array>("objects").unwrap();
    let expected = custom_meta_objects(&buffer);
    assert_eq!(objects.len(), 2);
    for (value, object) in objects.iter().zip(&expected) {
        let o = value.get::<gst::Structure>().unwrap();
        let mask = frame_mask(s, &o);
        assert_eq!(mask, object.mask);
        let score = iou(&mask, &exact_mask());
        assert!(score >= 0.7, "IoU {score:.3}");
    }
}

/// Reads a buffer's bytes from a file, pushes it, and prints each object's
/// frame-size mask as a row of 0/1 characters per frame row.
const C_PROGRAM: &str = r#"
#include <gst/gst.h>
#include <stdio.h>

@SNIPPET@

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  gchar *description = g_strdup_printf ("appsrc name=src format=time caps=%s "
      "! tinysam model=%s prompts=\"%s\" ! appsink name=sink sync=false",
      argv[1], argv[2], argv[4]);
  GstElement *pipeline = gst_parse_launch (description, NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  gchar *pixels;
  gsize size;
  if (!g_file_get_contents (argv[3], &pixels, &size, NULL))
    return 2;
  GstBuffer *buffer = gst_buffer_new_wrapped ((guint8 *) pixels, size);
  GstFlowReturn flow;
  g_signal_emit_by_name (src, "push-buffer", buffer, &flow);
  gst_buffer_unref (buffer);
  GstSample *sample = NULL;
  g_signal_emit_by_name (sink, "pull-sample", &sample);
  if (sample == NULL)
    return 3;
  GstCustomMeta *meta = gst_buffer_get_custom_meta (gst_sample_get_buffer (sample),
      "GstTinySamMeta");
  const GstStructure *s = gst_custom_meta_get_structure (meta);
  const GValue *objects = gst_structure_get_value (s, "objects");
  guint fw, fh;
  gst_structure_get_uint (s, "frame-width", &fw);
  gst_structure_get_uint (s, "frame-height", &fh);
  for (guint k = 0; k < gst_value_array_get_size (objects); k++) {
    const GstStructure *o = gst_value_get_structure (gst_value_array_get_value (objects, k));
    guint8 *mask = tinysam_frame_mask (s, o);
    for (guint i = 0; i < fw * fh; i++)
      putchar ('0' + mask[i]);
    putchar ('\n');
    g_free (mask);
  }
  gst_sample_unref (sample);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  return 0;
}
"#;

#[test]
fn the_documented_c_function_gives_the_frame_size_masks() {
    let snippet = doc_block(HEADING, "c");
    let program = CProgram::compile("frame-mask", &C_PROGRAM.replace("@SNIPPET@", &snippet));
    let frame = program.file("frame.rgba");
    std::fs::write(&frame, rgba_frame()).unwrap();
    let prompts = format!("{BOX_PROMPT}; {POINT_PROMPT}");
    let output = program.run(&[&rgba_caps(), &model_dir(), &frame, &prompts]);
    let masks: Vec<Vec<bool>> = output
        .lines()
        .map(|line| line.bytes().map(|b| b == b'1').collect())
        .collect();
    let expected: Vec<Vec<bool>> = custom_meta_objects(&segmented())
        .into_iter()
        .map(|o| o.mask)
        .collect();
    assert_eq!(masks.len(), 2);
    assert_eq!(masks, expected);
}
