// SPDX-License-Identifier: Apache-2.0
//! The `tinysam` element.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct TinySam(ObjectSubclass<imp::TinySam>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "tinysam",
        gst::Rank::NONE,
        TinySam::static_type(),
    )
}
