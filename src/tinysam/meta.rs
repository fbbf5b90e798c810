// SPDX-License-Identifier: Apache-2.0
//! The metadata the element attaches to each processed frame: one
//! `GstTinySamMeta` custom meta holding every object (structure
//! `tinysam/objects`, with how old the masks are), and one
//! `GstVideoRegionOfInterestMeta` per object with a `tinysam/mask`
//! parameter. docs/element.md documents the layout.

use std::collections::HashMap;

use gst::glib;

use super::META_NAME;
use super::prompts::regions::{OWN_ROI_TYPE as ROI_TYPE, Region};
use crate::segment::video::{ObjectPrompt, PromptOrigin, TrackedObject};
use crate::segment::{GridRound, ObjectOrigin};

/// The masks a frame carries and where they come from.
pub struct FrameMasks<'a> {
    pub objects: &'a [&'a TrackedObject],
    /// The pts of the frame whose pixels produced them.
    pub inference_pts: Option<gst::ClockTime>,
    /// Whether that frame is this one.
    pub computed: bool,
    /// This frame's prompted objects by id: where each prompt came from.
    pub prompts: &'a HashMap<u64, &'a ObjectPrompt>,
    /// This frame's prompted regions of interest and their object ids.
    pub regions: &'a [(Region, u64)],
}

/// The object's stable id as the metadata's uint.
fn object_id(tracked: &TrackedObject) -> u32 {
    u32::try_from(tracked.id).unwrap_or(u32::MAX)
}

/// The fields shared by the custom meta's objects and the ROI params.
fn object_structure(
    name: &str,
    tracked: &TrackedObject,
    prompt: Option<&ObjectPrompt>,
) -> gst::Structure {
    let object = &tracked.object;
    let mask = &object.mask;
    let builder = gst::Structure::builder(name)
        .field("id", object_id(tracked))
        .field(
            "prompt-index",
            tracked
                .prompt_index
                .map_or(object.prompt_index as i32, |i| i as i32),
        )
        .field("state", tracked.state.as_str());
    let builder = match object.origin {
        ObjectOrigin::Prompt { .. } => {
            let builder = builder.field("source", "prompt");
            match prompt.map(|p| &p.origin) {
                Some(origin @ PromptOrigin::Region { label, region_id }) => builder
                    .field("prompt-source", origin.as_str())
                    .field("roi-id", *region_id)
                    .field("label", label.as_ref()),
                Some(origin) => builder.field("prompt-source", origin.as_str()),
                None => builder,
            }
        }
        ObjectOrigin::Everything { point, round } => builder
            .field("source", "everything")
            .field("grid-x", f64::from(point.0))
            .field("grid-y", f64::from(point.1))
            .field(
                "grid-round",
                match round {
                    GridRound::Sparse => "sparse",
                    GridRound::Dense => "dense",
                },
            ),
    };
    builder
        .field("x", mask.x() as i32)
        .field("y", mask.y() as i32)
        .field("width", mask.width() as i32)
        .field("height", mask.height() as i32)
        .field("iou", f64::from(object.iou))
        .field("stability", f64::from(object.stability))
        .field("area", object.area)
        .field("mask", glib::Bytes::from(mask.bits()))
        .build()
}

/// Removes the metas an upstream `tinysam` attached: with two instances in a
/// chain, the downstream one's objects replace the upstream one's, so a
/// reader never finds two `GstTinySamMeta` (and would get the first).
/// Other ROI metas (a detector's) stay.
fn remove_upstream_meta(buf: &mut gst::BufferRef) -> Result<(), glib::BoolError> {
    if let Ok(meta) = gst::meta::CustomMeta::from_mut_buffer(buf, META_NAME) {
        meta.remove()?;
    }
    buf.foreach_meta_mut(|mut meta| {
        let ours = meta
            .downcast_ref::<gst_video::VideoRegionOfInterestMeta>()
            .is_some_and(|roi| roi.roi_type() == ROI_TYPE);
        std::ops::ControlFlow::Continue(if ours {
            gst::buffer::BufferMetaForeachAction::Remove
        } else {
            gst::buffer::BufferMetaForeachAction::Keep
        })
    });
    remove_region_masks(buf);
    Ok(())
}

/// Name of the parameter holding an object's mask on an ROI meta.
const MASK_PARAM: &str = "tinysam/mask";

/// Drops the `tinysam/mask` parameters an upstream `tinysam` gave other ROI
/// metas (a detector's), so each carries at most this instance's mask.
fn remove_region_masks(buf: &mut gst::BufferRef) {
    for mut roi in buf.iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>() {
        if roi.roi_type() == ROI_TYPE || roi.param(MASK_PARAM).is_none() {
            continue;
        }
        // SAFETY: the buffer, so the meta, is writable; `params` is the
        // meta's own list of owned structures (freed with
        // gst_structure_free), from which the bindings offer no removal.
        unsafe {
            let meta = roi.as_mut_ptr();
            let mut node = (*meta).params;
            while !node.is_null() {
                let next = (*node).next;
                let s = (*node).data as *mut gst::ffi::GstStructure;
                if gst::StructureRef::from_glib_borrow(s).name() == MASK_PARAM {
                    (*meta).params = glib::ffi::g_list_delete_link((*meta).params, node);
                    gst::ffi::gst_structure_free(s);
                }
                node = next;
            }
        }
    }
}

/// Gives each prompted region of interest its object's mask, as a
/// `tinysam/mask` parameter relative to the region's box.
fn attach_region_masks(buf: &mut gst::BufferRef, masks: &FrameMasks<'_>) {
    if masks.regions.is_empty() {
        return;
    }
    let by_id: HashMap<u64, &TrackedObject> = masks.objects.iter().map(|o| (o.id, *o)).collect();
    let mut regions = masks.regions.iter().peekable();
    let foreign = buf
        .iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|roi| roi.roi_type() != ROI_TYPE);
    for (index, mut roi) in foreign.enumerate() {
        let Some((region, id)) = regions.next_if(|(r, _)| r.index == index) else {
            continue;
        };
        let Some(tracked) = by_id.get(id) else {
            continue;
        };
        // The region's box clipped to the frame, as its prompt was.
        let b = region.detection.bbox;
        let (x, y, w, h) = (
            b.x0 as u32,
            b.y0 as u32,
            (b.x1 - b.x0) as u32,
            (b.y1 - b.y0) as u32,
        );
        let cut = tracked.object.mask.cropped(x, y, w, h);
        let param = gst::Structure::builder(MASK_PARAM)
            .field("id", object_id(tracked))
            .field("state", tracked.state.as_str())
            .field("width", cut.width() as i32)
            .field("height", cut.height() as i32)
            .field("iou", f64::from(tracked.object.iou))
            .field("stability", f64::from(tracked.object.stability))
            .field("area", cut.count_ones())
            .field("mask", glib::Bytes::from(cut.bits()))
            .build();
        roi.add_param(param);
    }
}

/// Attaches the custom meta and one ROI meta per object, replacing any an
/// upstream `tinysam` attached, and the masks of prompted regions.
pub fn attach_meta(
    buf: &mut gst::BufferRef,
    width: u32,
    height: u32,
    masks: &FrameMasks<'_>,
) -> Result<(), glib::BoolError> {
    remove_upstream_meta(buf)?;
    attach_region_masks(buf, masks);
    let objects = masks.objects;
    let prompt = |o: &TrackedObject| masks.prompts.get(&o.id).copied();
    let array = gst::Array::new(
        objects
            .iter()
            .map(|o| object_structure("tinysam/object", o, prompt(o))),
    );
    {
        let mut meta = gst::meta::CustomMeta::add(buf, META_NAME)?;
        let s = meta.mut_structure();
        s.set_name("tinysam/objects");
        s.set("frame-width", width);
        s.set("frame-height", height);
        s.set("count", objects.len() as u32);
        // GST_CLOCK_TIME_NONE when no inference has finished yet.
        s.set(
            "inference-pts",
            masks
                .inference_pts
                .map_or(u64::MAX, gst::ClockTime::nseconds),
        );
        s.set("computed", masks.computed);
        s.set("objects", array);
    }
    for tracked in objects {
        let mask = &tracked.object.mask;
        let mut roi = gst_video::VideoRegionOfInterestMeta::add(
            buf,
            ROI_TYPE,
            (mask.x(), mask.y(), mask.width(), mask.height()),
        );
        roi.set_id(i32::try_from(tracked.id).unwrap_or(i32::MAX));
        if let Some(PromptOrigin::Region { region_id, .. }) = prompt(tracked).map(|p| &p.origin) {
            roi.set_parent_id(*region_id);
        }
        let mut param = object_structure("tinysam/mask", tracked, prompt(tracked));
        // The ROI already holds the box and the prompt index is in the custom meta.
        for field in [
            "x",
            "y",
            "width",
            "height",
            "source",
            "prompt-index",
            "grid-x",
            "grid-y",
            "grid-round",
            "state",
            "prompt-source",
            "roi-id",
            "label",
        ] {
            param.remove_field(field);
        }
        roi.add_param(param);
    }
    Ok(())
}
