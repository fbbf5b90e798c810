// SPDX-License-Identifier: Apache-2.0
//! Upstream regions of interest as box prompts (`inference-region=roi-list`):
//! every `GstVideoRegionOfInterestMeta` on the buffer except this element's
//! own, of a type `object-class` lets through, clipped to the frame.
//! Regions of zero size or outside the frame are skipped (logged).

use std::sync::Arc;

use gst_video::VideoRegionOfInterestMeta;

use crate::segment::prompt::PromptBox;
use crate::segment::video::Detection;

/// ROI type of the per-object metas this element attaches; never a prompt.
pub const OWN_ROI_TYPE: &str = "tinysam";

/// One prompted region of a buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Position among the buffer's ROI metas that are not this element's,
    /// in iteration order: where its mask goes back.
    pub index: usize,
    pub detection: Detection,
}

/// The buffer's regions to prompt, and why others were skipped.
pub fn read(
    buf: &gst::BufferRef,
    (width, height): (u32, u32),
    wanted: impl Fn(&str) -> bool,
) -> (Vec<Region>, Vec<String>) {
    let mut regions = Vec::new();
    let mut skipped = Vec::new();
    let foreign = buf
        .iter_meta::<VideoRegionOfInterestMeta>()
        .filter(|roi| roi.roi_type() != OWN_ROI_TYPE);
    for (index, roi) in foreign.enumerate() {
        let label = roi.roi_type();
        if !wanted(label) {
            continue;
        }
        let (x, y, w, h) = roi.rect();
        let describe = || format!("region of interest `{label}` {w}x{h} at ({x}, {y})");
        if w == 0 || h == 0 {
            skipped.push(format!("{} has zero size; skipped", describe()));
            continue;
        }
        if x >= width || y >= height {
            skipped.push(format!(
                "{} is outside the {width}x{height} frame; skipped",
                describe()
            ));
            continue;
        }
        // Clipped to the frame, without overflowing on absurd sizes.
        let x1 = (u64::from(x) + u64::from(w)).min(u64::from(width));
        let y1 = (u64::from(y) + u64::from(h)).min(u64::from(height));
        regions.push(Region {
            index,
            detection: Detection {
                label: Arc::from(label),
                detection_id: roi.id(),
                bbox: PromptBox {
                    x0: x as f32,
                    y0: y as f32,
                    x1: x1 as f32,
                    y1: y1 as f32,
                },
            },
        });
    }
    (regions, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_filtered_clipped_and_checked() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        {
            let buf = buffer.get_mut().unwrap();
            for (kind, rect) in [
                ("face", (10, 20, 30, 40)),
                ("car", (0, 0, 5, 5)),
                (OWN_ROI_TYPE, (1, 1, 1, 1)),
                ("face", (300, 200, 100, 100)),
                ("face", (5, 5, 0, 10)),
                ("face", (u32::MAX, 5, 10, 10)),
                ("face", (100, 100, u32::MAX, u32::MAX)),
            ] {
                VideoRegionOfInterestMeta::add(buf, kind, rect).set_id(7);
            }
        }
        let (regions, skipped) = read(&buffer, (320, 240), |l| l == "face");
        // Metas iterate in the order they were added; indices count the
        // foreign ones.
        let boxes: Vec<(usize, [f32; 4])> = regions
            .iter()
            .map(|r| {
                let b = r.detection.bbox;
                (r.index, [b.x0, b.y0, b.x1, b.y1])
            })
            .collect();
        assert_eq!(
            boxes,
            [
                (0, [10.0, 20.0, 40.0, 60.0]),
                (2, [300.0, 200.0, 320.0, 240.0]),
                (5, [100.0, 100.0, 320.0, 240.0]),
            ]
        );
        assert!(regions.iter().all(|r| r.detection.detection_id == 7));
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("zero size"));
        assert!(skipped[1].contains("outside the 320x240 frame"));
        let (all, _) = read(&buffer, (320, 240), |_| true);
        assert_eq!(all.len(), 4);
    }
}
