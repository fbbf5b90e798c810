// SPDX-License-Identifier: Apache-2.0
//! `overlay=true`: the objects a frame carries drawn into it, as
//! `overlay-mode` says, restricted to `overlay-objects`.

use std::collections::HashMap;

use super::OverlayMode;
use super::settings::Settings;
use crate::segment::video::{ObjectPrompt, PromptOrigin, TrackState, TrackedObject};
use crate::segment::{
    self, EffectError, FrameViewMut, MaskEffect, MaskPainter, OverlayStyle, palette_color,
};

/// Whether `overlay-objects` lets `object` be drawn: its id or its
/// region's label is listed (an empty list lets everything through).
fn wanted(settings: &Settings, object: &TrackedObject, prompt: Option<&ObjectPrompt>) -> bool {
    if settings.overlay_objects.is_empty() {
        return true;
    }
    let label = match prompt.map(|p| &p.origin) {
        Some(PromptOrigin::Region { label, .. }) => Some(label.as_ref()),
        _ => None,
    };
    settings.overlay_objects.iter().any(|item| {
        item.parse::<u64>().is_ok_and(|id| id == object.id) || Some(item.as_str()) == label
    })
}

/// Draws `objects` (lost ones have no mask and are skipped).
pub fn draw(
    view: &mut FrameViewMut<'_>,
    objects: &[&TrackedObject],
    prompts: &HashMap<u64, &ObjectPrompt>,
    settings: &Settings,
    painter: &mut MaskPainter,
) -> Result<(), EffectError> {
    let drawn: Vec<&TrackedObject> = objects
        .iter()
        .copied()
        .filter(|o| o.state != TrackState::Lost)
        .filter(|o| wanted(settings, o, prompts.get(&o.id).copied()))
        .collect();
    let effect = match settings.overlay_mode {
        OverlayMode::Fill => {
            let style = OverlayStyle {
                alpha: settings.overlay_alpha as f32,
                outline: settings.overlay_outline,
            };
            for object in drawn {
                let color = palette_color(usize::try_from(object.id).unwrap_or(usize::MAX));
                segment::draw_mask(view, &object.object.mask, color, &style);
            }
            return Ok(());
        }
        OverlayMode::Alpha => MaskEffect::Alpha,
        OverlayMode::Blur => MaskEffect::Blur {
            radius: settings.overlay_blur_radius,
        },
        OverlayMode::Pixelate => MaskEffect::Pixelate {
            block: settings.overlay_pixel_size,
        },
    };
    let masks: Vec<_> = drawn.iter().map(|o| &o.object.mask).collect();
    painter.apply(view, &masks, effect, settings.overlay_invert)
}
