// SPDX-License-Identifier: Apache-2.0
//! What `overlay=true` does to the pixels, per `overlay-mode`: a cut-out in
//! the alpha channel that `compositor` places over another picture, blurred
//! and pixelated objects (or everything but them) in every format, and
//! `overlay-objects` restricting it to some objects.

mod common;

use gst::prelude::*;
use gst_video::prelude::*;

use common::element::*;

/// Every format the element takes.
const FORMATS: [&str; 12] = [
    "RGBA", "BGRA", "ARGB", "ABGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGB", "BGR", "I420", "NV12",
];

/// Plane `plane` of `buffer` as rows of `caps`' layout: (bytes, stride).
fn plane(buffer: &gst::Buffer, caps: &gst::Caps, plane: u32) -> (Vec<u8>, usize) {
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).unwrap();
    (
        frame.plane_data(plane).unwrap().to_vec(),
        frame.plane_stride()[plane as usize] as usize,
    )
}

/// The frame through tinysam (`properties`) in `format`: the output buffer,
/// its caps and the objects' masks.
fn run(format: &str, properties: &[(&str, &str)]) -> (gst::Buffer, gst::Caps, Vec<Object>) {
    let sam = tinysam(properties);
    let mut h = harness(&sam, format);
    let out = push(&mut h, &rgba_frame(), 0);
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let objects = custom_meta_objects(&out);
    (out, caps, objects)
}

/// Bytes per sample and subsampling of `plane` in `format`.
fn sample_layout(format: &str, plane: u32) -> (usize, usize) {
    match (format, plane) {
        ("I420", 0) | ("NV12", 0) => (1, 1),
        ("I420", _) => (1, 2),
        ("NV12", _) => (2, 2),
        ("RGB", _) | ("BGR", _) => (3, 1),
        _ => (4, 1),
    }
}

/// Samples of every plane that differ between `a` and `b`, split by
/// whether the selection covers them (for 4:2:0 chroma: any pixel of the
/// 2x2 block).
fn differences(
    format: &str,
    caps: &gst::Caps,
    a: &gst::Buffer,
    b: &gst::Buffer,
    selected: &dyn Fn(usize, usize) -> bool,
) -> (usize, usize) {
    let planes = if format == "I420" {
        3
    } else if format == "NV12" {
        2
    } else {
        1
    };
    let (mut inside, mut outside) = (0, 0);
    for p in 0..planes {
        let ((pa, stride), (pb, _)) = (plane(a, caps, p), plane(b, caps, p));
        let (bytes, sub) = sample_layout(format, p);
        for sy in 0..(HEIGHT as usize).div_ceil(sub) {
            for sx in 0..(WIDTH as usize).div_ceil(sub) {
                let at = sy * stride + sx * bytes;
                if pa[at..at + bytes] == pb[at..at + bytes] {
                    continue;
                }
                let covered = (0..sub).any(|dy| {
                    (0..sub).any(|dx| {
                        let (x, y) = (sx * sub + dx, sy * sub + dy);
                        x < WIDTH as usize && y < HEIGHT as usize && selected(x, y)
                    })
                });
                if covered {
                    inside += 1;
                } else {
                    outside += 1;
                }
            }
        }
    }
    (inside, outside)
}

#[test]
fn blur_and_pixelate_change_the_object_and_leave_the_rest_bit_identical() {
    for format in FORMATS {
        let (plain, caps, objects) = run(format, &[("prompts", BOX_PROMPT)]);
        assert_eq!(objects.len(), 1, "{format}");
        let mask = &objects[0].mask;
        let in_mask = |x: usize, y: usize| mask[y * WIDTH as usize + x];
        for mode in ["blur", "pixelate"] {
            for invert in [false, true] {
                let invert_text = invert.to_string();
                let (drawn, _, drawn_objects) = run(
                    format,
                    &[
                        ("prompts", BOX_PROMPT),
                        ("overlay", "true"),
                        ("overlay-mode", mode),
                        ("overlay-invert", &invert_text),
                        ("overlay-blur-radius", "6"),
                        ("overlay-pixel-size", "8"),
                    ],
                );
                assert_eq!(drawn_objects[0].mask, *mask, "{format} {mode}");
                let selected = |x: usize, y: usize| in_mask(x, y) != invert;
                let (inside, outside) = differences(format, &caps, &plain, &drawn, &selected);
                println!("{format} {mode} invert={invert}: {inside} samples changed");
                assert_eq!(
                    outside, 0,
                    "{format} {mode} invert={invert}: {outside} unselected samples changed"
                );
                // The test frame is flat inside and outside the ellipse:
                // only samples near its edge can change.
                assert!(
                    inside > 100,
                    "{format} {mode} invert={invert}: {inside} changed"
                );
            }
        }
    }
}

#[test]
fn the_alpha_cut_out_goes_over_another_picture_in_compositor() {
    init();
    let model = model_dir().display().to_string();
    let background = 0xff10e050u32; // ARGB: opaque green
    let pipeline = gst::parse::launch(&format!(
        "compositor name=mix background=black ! video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT} \
           ! appsink name=sink sync=false \
         videotestsrc pattern=solid-color foreground-color={background} num-buffers=1 \
           ! video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT},framerate=30/1 ! mix.sink_0 \
         appsrc name=src format=time caps={} \
           ! tinysam model={model} prompts={BOX_PROMPT} overlay=true overlay-mode=alpha \
           ! mix.sink_1",
        rgba_caps()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let input = rgba_frame();
    let mut buffer = gst::Buffer::from_slice(input.clone());
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::ZERO);
        b.set_duration(gst::ClockTime::from_mseconds(33));
    }
    assert_eq!(
        src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&buffer]),
        gst::FlowReturn::Ok
    );
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let sample = sink
        .emit_by_name::<Option<gst::Sample>>("try-pull-sample", &[&(60 * gst::ClockTime::SECOND)])
        .expect("a composited frame");
    pipeline.set_state(gst::State::Null).unwrap();
    let out = sample.buffer().unwrap().map_readable().unwrap();

    // The mask as tinysam computed it for this frame.
    let (_, _, objects) = run("RGBA", &[("prompts", BOX_PROMPT)]);
    let mask = &objects[0].mask;
    let green = [0x10u8, 0xe0, 0x50];
    let (mut from_source, mut from_background) = (0, 0);
    for (i, &m) in mask.iter().enumerate() {
        let pixel = &out[i * 4..i * 4 + 3];
        if m {
            assert_eq!(pixel, &input[i * 4..i * 4 + 3], "pixel {i} inside the mask");
            from_source += 1;
        } else {
            assert_eq!(pixel, green, "pixel {i} outside the mask");
            from_background += 1;
        }
    }
    println!("cut-out: {from_source} source pixels over {from_background} background pixels");
    assert!(from_source > 10_000 && from_background > 10_000);
}

#[test]
fn the_inverted_cut_out_makes_the_objects_transparent() {
    let (out, _, objects) = run(
        "BGRA",
        &[
            ("prompts", BOX_PROMPT),
            ("overlay", "true"),
            ("overlay-mode", "alpha"),
            ("overlay-invert", "true"),
        ],
    );
    let map = out.map_readable().unwrap();
    let input = rgba_frame();
    for (i, &m) in objects[0].mask.iter().enumerate() {
        assert_eq!(map[i * 4 + 3], if m { 0 } else { 255 }, "pixel {i}");
        // Colours untouched (BGRA order).
        assert_eq!(
            [map[i * 4 + 2], map[i * 4 + 1], map[i * 4]],
            [input[i * 4], input[i * 4 + 1], input[i * 4 + 2]]
        );
    }
}

#[test]
fn a_cut_out_without_alpha_warns_once_and_the_stream_flows() {
    let sam = tinysam(&[
        ("prompts", BOX_PROMPT),
        ("overlay", "true"),
        ("overlay-mode", "alpha"),
    ]);
    let mut h = harness(&sam, "I420");
    let frame = rgba_frame();
    for i in 0..3 {
        let out = push(&mut h, &frame, i);
        assert_eq!(custom_meta_objects(&out).len(), 1);
    }
    let (message, _) = pop_warning(&sam);
    assert!(message.contains("no alpha channel"), "{message}");
    let bus = sam.bus().unwrap();
    assert!(
        bus.pop_filtered(&[gst::MessageType::Warning]).is_none(),
        "warned more than once"
    );
}

#[test]
fn overlay_objects_restricts_drawing_to_the_listed_ids() {
    // Two objects: the ellipse (id 0) and a background point (id 1).
    let prompts = format!("{BOX_PROMPT}; point=20,20");
    let (plain, caps, objects) = run("RGBA", &[("prompts", &prompts)]);
    assert_eq!(objects.len(), 2);
    let (drawn, _, _) = run(
        "RGBA",
        &[
            ("prompts", &prompts),
            ("overlay", "true"),
            ("overlay-mode", "pixelate"),
            ("overlay-objects", "0"),
        ],
    );
    let ellipse = &objects[0].mask;
    let in_ellipse = |x: usize, y: usize| ellipse[y * WIDTH as usize + x];
    let (inside, outside) = differences("RGBA", &caps, &plain, &drawn, &in_ellipse);
    assert!(inside > 100, "{inside}");
    assert_eq!(outside, 0, "object 1 was drawn too");
}
