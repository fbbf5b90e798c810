// SPDX-License-Identifier: Apache-2.0
//! Runs the element in pipelines inside the test process, with the plugin
//! registered statically.

use std::sync::{
    Arc, Once,
    atomic::{AtomicUsize, Ordering},
};

use gst::prelude::*;

/// The element needs a model to start.
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tinysam-fixture");

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gsttinysam::plugin_register_static().expect("register the tinysam plugin");
    });
}

/// Plays `description` (which must contain a `fakesink name=sink`) to the end
/// and returns how many buffers reached the sink.
fn count_buffers(description: &str) -> usize {
    init();
    let pipeline = gst::parse::launch(description)
        .expect("parse pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline.by_name("sink").expect("sink element");
    sink.set_property("signal-handoffs", true);
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    sink.connect("handoff", false, move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        None
    });

    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let bus = pipeline.bus().expect("bus");
    let mut saw_eos = false;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Eos(..) => {
                saw_eos = true;
                break;
            }
            gst::MessageView::Error(err) => {
                let _ = pipeline.set_state(gst::State::Null);
                panic!("pipeline error: {} ({:?})", err.error(), err.debug());
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    assert!(saw_eos, "no EOS within 30 s");
    count.load(Ordering::SeqCst)
}

#[test]
fn element_is_registered_with_metadata() {
    init();
    let factory = gst::ElementFactory::find("tinysam").expect("tinysam factory");
    assert_eq!(
        factory.metadata(gst::ELEMENT_METADATA_KLASS),
        Some("Filter/Analyzer/Video")
    );
    assert_eq!(
        factory.plugin_name().as_deref(),
        Some("tinysam"),
        "element belongs to the tinysam plugin"
    );
}

#[test]
fn ten_buffers_pass_through() {
    let n = count_buffers(&format!(
        "videotestsrc num-buffers=10 ! tinysam model={MODEL} everything-mode=none ! fakesink name=sink"
    ));
    assert_eq!(n, 10);
}

#[test]
fn every_advertised_format_passes() {
    for format in ["RGBA", "BGRA", "RGBx", "BGRx", "RGB", "BGR", "I420", "NV12"] {
        let n = count_buffers(&format!(
            "videotestsrc num-buffers=2 ! video/x-raw,format={format},width=64,height=48 \
             ! tinysam model={MODEL} everything-mode=none ! fakesink name=sink"
        ));
        assert_eq!(n, 2, "format {format}");
    }
}

#[test]
fn unsupported_format_does_not_link() {
    init();
    let result = gst::parse::launch(
        "videotestsrc num-buffers=1 ! video/x-raw,format=GRAY8 ! tinysam ! fakesink",
    );
    assert!(result.is_err(), "GRAY8 is not advertised");
}
