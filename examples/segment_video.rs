// SPDX-License-Identifier: Apache-2.0
//! Segments a video with `tinysam` and prints what its metadata says: one
//! line per object per frame.
//!
//! ```sh
//! cargo run --release --example segment_video -- --prompts "point=160,120" --frames 30
//! cargo run --release --example segment_video -- --input clip.webm --prompts "box=10,10,200,150"
//! ```
//!
//! Options: `--input FILE` (any file decodebin plays; default: the bouncing
//! ball of `videotestsrc`), `--model DIR` (default: the bundled fixture),
//! `--prompts "..."` (the element's `prompts`; default: none, so everything
//! mode), `--frames N` (stop after N frames; default 30 for the
//! test source, the whole file for `--input`), `--set NAME=VALUE` (any other
//! `tinysam` property, repeatable).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

/// Command-line options.
struct Options {
    input: Option<String>,
    model: String,
    prompts: String,
    frames: Option<u64>,
    properties: Vec<(String, String)>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        input: None,
        // The bundled model, wherever the example is run from.
        model: concat!(env!("CARGO_MANIFEST_DIR"), "/models/tinysam-fixture").into(),
        prompts: String::new(),
        frames: None,
        properties: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--input" => options.input = Some(value()?),
            "--model" => options.model = value()?,
            "--prompts" => options.prompts = value()?,
            "--frames" => {
                options.frames = Some(value()?.parse().map_err(|e| format!("--frames: {e}"))?)
            }
            "--set" => {
                let v = value()?;
                let (name, val) = v
                    .split_once('=')
                    .ok_or(format!("--set {v}: not NAME=VALUE"))?;
                options.properties.push((name.into(), val.into()));
            }
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(options)
}

/// Prints the objects of one frame from its `GstTinySamMeta` (the layout is
/// in docs/element.md, "Metadata").
fn print_objects(frame: u64, buffer: &gst::BufferRef) {
    let Ok(meta) = gst::meta::CustomMeta::from_buffer(buffer, "GstTinySamMeta") else {
        println!("frame={frame} objects=0"); // e.g. passthrough: nothing to do
        return;
    };
    // A `tinysam/objects` structure; its `objects` field is an array of
    // `tinysam/object` structures.
    let objects = meta
        .structure()
        .get::<gst::Array>("objects")
        .expect("objects");
    if objects.is_empty() {
        println!("frame={frame} objects=0");
    }
    for value in objects.iter() {
        let o = value.get::<gst::Structure>().expect("a tinysam/object");
        let int = |name| o.get::<i32>(name).unwrap_or_default();
        println!(
            "frame={frame} id={} state={} box={},{},{},{} area={} iou={:.3}",
            o.get::<u32>("id").unwrap_or_default(),
            o.get::<&str>("state").unwrap_or_default(),
            int("x"),
            int("y"),
            int("width"),
            int("height"),
            o.get::<u64>("area").unwrap_or_default(),
            o.get::<f64>("iou").unwrap_or_default(),
        );
        // The mask itself is `o.get::<glib::Bytes>("mask")`: width*height
        // bits of the box, most significant bit first, rows not padded.
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("segment_video: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    gst::init()?;
    // The plugin linked into this program: no GST_PLUGIN_PATH needed.
    gsttinysam::plugin_register_static()?;

    let source = match options.input {
        Some(_) => "filesrc name=file ! decodebin",
        None => "videotestsrc pattern=ball ! video/x-raw,width=320,height=240",
    };
    let pipeline = gst::parse::launch(&format!(
        "{source} ! videoconvert ! tinysam name=sam ! fakesink"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    if let (Some(input), Some(file)) = (&options.input, pipeline.by_name("file")) {
        file.set_property("location", input);
    }
    let sam = pipeline.by_name("sam").ok_or("no tinysam")?;
    sam.set_property("model", &options.model);
    sam.set_property("prompts", &options.prompts);
    for (name, value) in &options.properties {
        if sam.find_property(name).is_none() {
            return Err(format!("tinysam has no property {name}").into());
        }
        sam.set_property_from_str(name, value);
    }

    // A probe on tinysam's source pad sees every frame with its metadata.
    // (Probes run on the streaming thread and must be `Fn`: hence an atomic.)
    let frame = AtomicU64::new(0);
    let bus = pipeline.bus().ok_or("no bus")?;
    // The test source is endless: stop it after 30 frames unless told.
    let limit = options.frames.or(options.input.is_none().then_some(30));
    let probe_bus = bus.clone();
    sam.static_pad("src").ok_or("no src pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_pad, info| {
            let n = frame.fetch_add(1, Ordering::Relaxed);
            if Some(n) == limit {
                // Tell the main loop below that we are done.
                let done = gst::Structure::new_empty("segment_video/done");
                let _ = probe_bus.post(gst::message::Application::new(done));
            }
            if limit.is_some_and(|limit| n >= limit) {
                return gst::PadProbeReturn::Drop;
            }
            if let Some(buffer) = info.buffer() {
                print_objects(n, buffer);
            }
            gst::PadProbeReturn::Ok
        },
    );

    // Play until the end, an error or the frame limit. A failed start has
    // said why on the bus: read that without waiting.
    let started = pipeline.set_state(gst::State::Playing);
    let wait = started.map_or(Some(gst::ClockTime::ZERO), |_| gst::ClockTime::NONE);
    let mut result = started.map(|_| ()).map_err(Into::into);
    for msg in bus.iter_timed(wait) {
        match msg.view() {
            gst::MessageView::Eos(_) | gst::MessageView::Application(_) => break,
            gst::MessageView::Warning(w) => eprintln!("warning: {}", w.error()),
            gst::MessageView::Error(e) => {
                let debug = e.debug().unwrap_or_default();
                result = Err(format!("{}\n{debug}", e.error()).into());
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    result
}
