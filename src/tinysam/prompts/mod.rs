// SPDX-License-Identifier: Apache-2.0
//! Where the prompted objects come from, besides nothing (everything mode):
//! - the `prompts` / `prompt-list` properties ([`list`] parses the latter);
//! - application events carrying prompts ([`event`]), frame-accurate;
//! - clicks and keys in the video window ([`navigation`]);
//! - upstream regions of interest, a detector's boxes ([`regions`]).
//!
//! The first three edit one [`PromptSet`]. Their edits are queued as they
//! arrive (from any thread) and applied by the streaming thread before the
//! next buffer, in arrival order: a serialized event's prompts apply from
//! the buffer after it, a click's from the next buffer, with the masks it
//! was aimed at. Regions are read from each buffer and join the set's
//! objects for that buffer only.

pub mod event;
pub mod list;
pub mod navigation;
pub mod regions;

use std::collections::VecDeque;
use std::sync::Arc;

use regions::Region;

use crate::segment::limits::MAX_PROMPTS;
use crate::segment::prompt::{CoordMode, PointLabel, Prompt};
use crate::segment::video::pointer::{nearest_object, object_under};
use crate::segment::video::{
    Detection, DetectionIds, IdCounter, ObjectPrompt, PromptOrigin, PromptSet, TrackedObject,
};

/// Edits waiting for the next buffer, at most; a replace or clear drops
/// the ones before it.
pub const MAX_PENDING_EDITS: usize = 1024;

/// One change to the prompted objects.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// New objects with ids `0..n`; `coordinates: None` follows the
    /// `coordinates` property.
    Replace {
        prompts: Vec<Prompt>,
        coordinates: Option<CoordMode>,
        origin: PromptOrigin,
    },
    /// More objects, with the id each asks for, if any.
    Add {
        prompts: Vec<(Option<u64>, Prompt)>,
        coordinates: Option<CoordMode>,
    },
    Remove {
        ids: Vec<u64>,
    },
    Clear,
    Click(Click),
}

/// What a click does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickAction {
    /// A new object with a positive point here.
    Add,
    /// A negative point for the object under the pointer, or the nearest.
    Correct,
    /// Removes the object under the pointer.
    Remove,
}

/// What [`Prompts::frame_prompts`] gives one buffer.
pub struct FramePrompts {
    /// The set's objects, then one per kept region.
    pub objects: Arc<Vec<ObjectPrompt>>,
    /// Each kept region with the id of its object.
    pub regions: Vec<(Region, u64)>,
    /// A warning when regions were dropped.
    pub notice: Option<Notice>,
}

/// A click at stream pixel `(x, y)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Click {
    pub action: ClickAction,
    pub x: f32,
    pub y: f32,
}

/// What applying an edit said: warnings go to the bus, the rest to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Info(String),
    Warning(String),
}

/// The element's prompted objects and the edits waiting for the next buffer.
#[derive(Debug)]
pub struct Prompts {
    set: PromptSet,
    /// The set's objects as the buffers share them, until the set changes:
    /// frames without regions take them without a copy.
    shared: Option<Arc<Vec<ObjectPrompt>>>,
    pending: VecDeque<Edit>,
    detections: DetectionIds,
    ids: IdCounter,
}

impl Default for Prompts {
    fn default() -> Self {
        let ids = IdCounter::new();
        Prompts {
            set: PromptSet::new(ids.clone()),
            shared: None,
            pending: VecDeque::new(),
            detections: DetectionIds::new(ids.clone()),
            ids,
        }
    }
}

impl Prompts {
    /// The counter every object id of the stream comes from.
    pub fn ids(&self) -> IdCounter {
        self.ids.clone()
    }

    /// Whether there are objects, or edits that may make some.
    pub fn has_work(&self) -> bool {
        !self.set.is_empty() || !self.pending.is_empty()
    }

    /// Queues an edit for the next buffer.
    pub fn push(&mut self, edit: Edit) -> Result<(), String> {
        if matches!(edit, Edit::Replace { .. } | Edit::Clear) {
            self.pending.clear();
        }
        if self.pending.len() >= MAX_PENDING_EDITS {
            return Err(format!(
                "{MAX_PENDING_EDITS} prompt edits are already waiting for the next buffer"
            ));
        }
        self.pending.push_back(edit);
        Ok(())
    }

    /// Applies the waiting edits. `shown` are the objects the last buffer
    /// carried (what a click points at), `frame` its size; prompts set
    /// through the properties follow `coordinates`.
    pub fn apply_pending(
        &mut self,
        shown: &[&TrackedObject],
        frame: Option<(u32, u32)>,
        coordinates: CoordMode,
    ) -> Vec<Notice> {
        // Any change to the set invalidates the objects the buffers share.
        if self
            .set
            .set_coord_mode(&PromptOrigin::Property, coordinates)
        {
            self.shared = None;
        }
        let mut notices = Vec::new();
        while let Some(edit) = self.pending.pop_front() {
            self.shared = None;
            if let Some(notice) = self.apply(edit, shown, frame, coordinates) {
                notices.push(notice);
            }
        }
        notices
    }

    fn apply(
        &mut self,
        edit: Edit,
        shown: &[&TrackedObject],
        frame: Option<(u32, u32)>,
        coordinates: CoordMode,
    ) -> Option<Notice> {
        match edit {
            Edit::Replace {
                prompts,
                coordinates: units,
                origin,
            } => {
                let n = prompts.len();
                let units = units.unwrap_or(coordinates);
                Some(match self.set.replace(&prompts, units, origin.clone()) {
                    Ok(()) => Notice::Info(format!("{n} prompted objects from the {origin}")),
                    Err(err) => Notice::Warning(format!("Prompts not replaced: {err}")),
                })
            }
            Edit::Add {
                prompts,
                coordinates: units,
            } => {
                let units = units.unwrap_or(coordinates);
                Some(match self.set.add(prompts, units, PromptOrigin::Event) {
                    Ok(ids) => Notice::Info(format!("Added objects {ids:?}")),
                    Err(err) => Notice::Warning(format!("Prompts not added: {err}")),
                })
            }
            Edit::Remove { ids } => {
                let unknown = self.set.remove(&ids);
                Some(if unknown.is_empty() {
                    Notice::Info(format!("Removed objects {ids:?}"))
                } else {
                    Notice::Warning(format!(
                        "Cannot remove objects {unknown:?}: no prompted object has these ids"
                    ))
                })
            }
            Edit::Clear => {
                self.set.clear();
                Some(Notice::Info("Cleared the prompted objects".to_owned()))
            }
            Edit::Click(click) => Some(self.click(click, shown, frame)),
        }
    }

    fn click(
        &mut self,
        click: Click,
        shown: &[&TrackedObject],
        frame: Option<(u32, u32)>,
    ) -> Notice {
        let at = (click.x, click.y);
        // Objects a click may change: those of the set (not a detector's
        // or everything mode's, which the next frame would bring back).
        let editable: Vec<&TrackedObject> = shown
            .iter()
            .copied()
            .filter(|o| o.prompt_index.is_some() && self.set.get(o.id).is_some())
            .collect();
        match click.action {
            ClickAction::Add => {
                let prompt = Prompt::new().with_point(click.x, click.y);
                match self
                    .set
                    .add(vec![(None, prompt)], CoordMode::Pixels, PromptOrigin::Click)
                {
                    Ok(ids) => Notice::Info(format!(
                        "Click at ({}, {}): new object {ids:?}",
                        click.x, click.y
                    )),
                    Err(err) => Notice::Warning(format!("Click ignored: {err}")),
                }
            }
            ClickAction::Correct => {
                let target = object_under(editable.iter().copied(), at)
                    .or_else(|| nearest_object(editable.iter().copied(), at));
                let (Some(target), Some(frame)) = (target, frame) else {
                    return Notice::Warning(format!(
                        "Shift+click at ({}, {}) ignored: no prompted object to correct",
                        click.x, click.y
                    ));
                };
                let id = target.id;
                match self.set.add_point(id, at, PointLabel::Negative, frame) {
                    Ok(()) => Notice::Info(format!(
                        "Click at ({}, {}): negative point for object {id}",
                        click.x, click.y
                    )),
                    Err(err) => Notice::Warning(format!("Click ignored: {err}")),
                }
            }
            ClickAction::Remove => match object_under(shown.iter().copied(), at) {
                Some(o) if self.set.get(o.id).is_some() => {
                    self.set.remove(&[o.id]);
                    Notice::Info(format!(
                        "Click at ({}, {}): removed object {}",
                        click.x, click.y, o.id
                    ))
                }
                Some(o) if o.prompt_index.is_some() => Notice::Warning(format!(
                    "Right click at ({}, {}) ignored: object {} comes from an upstream region \
                     of interest; filter it with `object-class` or upstream",
                    click.x, click.y, o.id
                )),
                _ => Notice::Warning(format!(
                    "Right click at ({}, {}) ignored: no prompted object under the pointer",
                    click.x, click.y
                )),
            },
        }
    }

    /// The prompted objects of one buffer: the set's, then one box prompt
    /// per region (at most as many as fit under [`MAX_PROMPTS`]; the rest
    /// are dropped with a warning), with each kept region's object id.
    pub fn frame_prompts(&mut self, mut regions: Vec<Region>) -> FramePrompts {
        let room = MAX_PROMPTS.saturating_sub(self.set.len());
        let mut notice = None;
        if regions.len() > room {
            notice = Some(Notice::Warning(format!(
                "{} regions of interest on one frame; only the first {room} are prompted \
                 (at most {MAX_PROMPTS} objects)",
                regions.len()
            )));
            regions.truncate(room);
        }
        let detections: Vec<Detection> = regions.iter().map(|r| r.detection.clone()).collect();
        let set = &self.set;
        let ids = self
            .detections
            .assign(&detections, &|id| set.get(id).is_some());
        let shared = self
            .shared
            .get_or_insert_with(|| Arc::new(self.set.objects().to_vec()));
        if detections.is_empty() {
            return FramePrompts {
                objects: Arc::clone(shared),
                regions: Vec::new(),
                notice,
            };
        }
        let mut objects = shared.as_ref().clone();
        objects.extend(
            detections
                .into_iter()
                .zip(&ids)
                .map(|(d, &id)| ObjectPrompt {
                    id,
                    prompt: Prompt::new().with_box(d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1),
                    coord_mode: CoordMode::Pixels,
                    origin: PromptOrigin::Region {
                        label: d.label,
                        region_id: d.detection_id,
                    },
                }),
        );
        FramePrompts {
            objects: Arc::new(objects),
            regions: regions.into_iter().zip(ids).collect(),
            notice,
        }
    }

    /// Forgets the last frame's regions (after a flush); the set stays.
    pub fn flush(&mut self) {
        self.detections.reset();
    }
}
