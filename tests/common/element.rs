// SPDX-License-Identifier: Apache-2.0
//! The element under test: the test frame (an ellipse), the fixture model,
//! a `gst_check::Harness` around `tinysam`, and readers of its metadata and
//! bus messages. Shared by tests/element.rs and tests/hardening.rs.

use std::path::PathBuf;
use std::sync::Once;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;

pub const WIDTH: u32 = 320;
pub const HEIGHT: u32 = 240;
/// The ellipse drawn into the test frame: centre and radii.
pub const ELLIPSE: (f64, f64, f64, f64) = (160.0, 120.0, 70.0, 50.0);
pub const BACKGROUND: [u8; 3] = [30, 40, 90];
pub const FOREGROUND: [u8; 3] = [230, 200, 40];
pub const BOX_PROMPT: &str = "box=86,66,234,174";
pub const POINT_PROMPT: &str = "point=160,120";

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gsttinysam::plugin_register_static().expect("register the tinysam plugin");
    });
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TINYSAM_TEST_MODEL") {
        return PathBuf::from(dir);
    }
    root().join("models/tinysam-fixture")
}

pub fn in_ellipse(x: u32, y: u32) -> bool {
    let (cx, cy, rx, ry) = ELLIPSE;
    let dx = (f64::from(x) + 0.5 - cx) / rx;
    let dy = (f64::from(y) + 0.5 - cy) / ry;
    dx * dx + dy * dy <= 1.0
}

/// A rendered scene (packed RGB, WIDTH x HEIGHT) as packed RGBA.
pub fn scene_rgba(scene: &super::Scene) -> Vec<u8> {
    assert_eq!((scene.width, scene.height), (WIDTH, HEIGHT));
    scene
        .rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}

/// The test frame as packed RGBA.
pub fn rgba_frame() -> Vec<u8> {
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

pub fn exact_mask() -> Vec<bool> {
    (0..HEIGHT)
        .flat_map(|y| (0..WIDTH).map(move |x| in_ellipse(x, y)))
        .collect()
}

pub fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(a, b)| **a && **b).count();
    let union = a.iter().zip(b).filter(|(a, b)| **a || **b).count();
    if union == 0 {
        return 0.0;
    }
    inter as f64 / union as f64
}

/// Pastes a box-cropped, bit-packed (MSB first, rows not padded) mask into
/// a frame-sized one.
pub fn unpack(x: i32, y: i32, w: i32, h: i32, bits: &[u8]) -> Vec<bool> {
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
pub struct Object {
    pub id: u32,
    pub prompt_index: i32,
    /// "prompt" or "everything".
    pub source: String,
    /// Everything mode: the grid point, frame pixels.
    pub grid_point: Option<(f64, f64)>,
    pub iou: f64,
    pub area: u64,
    pub mask: Vec<bool>,
}

/// The objects of the custom meta.
pub fn custom_meta_objects(buffer: &gst::BufferRef) -> Vec<Object> {
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
pub fn roi_masks(buffer: &gst::BufferRef) -> Vec<(i32, Vec<bool>)> {
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
pub fn rgba_caps() -> String {
    format!("video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT},framerate=30/1")
}

/// A tinysam element with the fixture model and `properties` (name and
/// value, as on a `gst-launch` line). Outside a pipeline an element has no
/// bus, so it gets one of its own for its warnings and messages. The
/// harness's source says it is live, so `processing` is `sync` (each frame
/// leaves with its own masks) unless `properties` say otherwise.
pub fn tinysam(properties: &[(&str, &str)]) -> gst::Element {
    init();
    let model = model_dir().display().to_string();
    let sam = properties
        .iter()
        .fold(
            gst::ElementFactory::make("tinysam")
                .property("model", model.as_str())
                .property_from_str("processing", "sync"),
            |builder, (name, value)| builder.property_from_str(name, value),
        )
        .build()
        .expect("a tinysam element");
    sam.set_bus(Some(&gst::Bus::new()));
    sam
}

/// A harness around `sam` (which it starts), fed the RGBA test frames; for
/// another `format` they go through videoconvert in a source harness first.
pub fn harness(sam: &gst::Element, format: &str) -> Harness {
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
pub fn posted_error(h: &Harness) -> String {
    h.element()
        .and_then(|sam| sam.bus())
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        .map_or_else(|| "no error message".to_owned(), |msg| format!("{msg:?}"))
}

/// Pushes `frame` (RGBA) and returns the buffer that comes out of tinysam.
pub fn push(h: &mut Harness, frame: &[u8], index: u64) -> gst::Buffer {
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

/// The errors of every warning waiting on the element's bus, oldest first.
pub fn bus_warnings(element: &impl IsA<gst::Element>) -> Vec<glib::Error> {
    let bus = element.bus().expect("a bus");
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .map(|msg| match msg.view() {
            gst::MessageView::Warning(w) => w.error(),
            _ => unreachable!(),
        })
        .collect()
}

/// The text and debug text of the warning waiting on the element's bus.
pub fn pop_warning(element: &impl IsA<gst::Element>) -> (String, String) {
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

pub fn prompt_structure(field: &str, numbers: &[f64]) -> gst::Structure {
    gst::Structure::builder("tinysam/prompt")
        .field(field, gst::Array::new(numbers.iter().copied()))
        .build()
}

/// Sets `videotestsrc ! tinysam <properties> ! fakesink` to PAUSED, expects
/// failure and returns the posted error and its debug text.
pub fn start_failure(properties: &str) -> (glib::Error, String) {
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
    (
        err.error(),
        err.debug().map(|d| d.to_string()).unwrap_or_default(),
    )
}

/// [`start_failure`]'s message and debug text, in one string.
pub fn start_error(properties: &str) -> String {
    let (error, debug) = start_failure(properties);
    format!("{error} {debug}")
}

/// `description` launched as a pipeline, with `each` called on every buffer
/// reaching its element named `sink`.
pub fn launch_watching_sink(
    description: &str,
    each: impl Fn(&gst::BufferRef) + Send + Sync + 'static,
) -> gst::Pipeline {
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                each(buffer);
            }
            gst::PadProbeReturn::Ok
        });
    pipeline
}

/// The `inference-pts` of a buffer's `GstTinySamMeta`: the frame its masks
/// were computed on; `None` without the meta or before any inference.
pub fn inference_pts(buffer: &gst::BufferRef) -> Option<u64> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta").ok()?;
    let pts = meta.structure().get::<u64>("inference-pts").ok()?;
    (pts != u64::MAX).then_some(pts)
}

/// The benches' model: `TINYSAM_BENCH_MODEL`, else the fixture.
pub fn bench_model() -> String {
    std::env::var("TINYSAM_BENCH_MODEL").unwrap_or_else(|_| model_dir().display().to_string())
}

/// The CPU's model name, cores and the SIMD flags that matter to ONNX
/// Runtime, for the benches to print beside their figures.
pub fn cpu_description() -> String {
    const FLAGS: [&str; 6] = [
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "amx_tile",
    ];
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let flags: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| FLAGS.contains(f))
        .collect();
    format!(
        "{}; {} cores; {}",
        field("model name"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        flags.join(" ")
    )
}
