// SPDX-License-Identifier: Apache-2.0
//! GStreamer plugin `tinysam`: TinySAM (Segment Anything) on video.
//!
//! `segment` is the segmentation core and knows nothing of GStreamer;
//! `tinysam` is the element on top of it.

use gst::glib;

pub mod segment;
pub mod tinysam;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    tinysam::register(plugin)
}

gst::plugin_define!(
    tinysam,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "Apache-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
