// SPDX-License-Identifier: Apache-2.0
//! The prompted objects of a stream, each with its id, and the edits that
//! prompt sources make to them.
//!
//! [`VideoSegmenter::process_objects`](super::VideoSegmenter::process_objects)
//! follows [`ObjectPrompt`]s by id: an object whose id and prompt stay the
//! same keeps its track, one whose prompt changes is acquired again from it
//! (with its id), and one whose prompt only gained points (a click
//! correcting it) keeps its track and is acquired again from its prompt
//! moved with it plus the new points. A detector's box is new evidence on
//! every frame: its object is acquired from it each time, keeping its id.
//!
//! A [`PromptSet`] is the list that run-time sources edit:
//! - [`replace`](PromptSet::replace) gives the objects the ids `0..n` of
//!   their indices (a property set, or an application's `replace`);
//! - [`add`](PromptSet::add) gives each new object a fresh id from the
//!   stream's [`IdCounter`] (or the id the application chose);
//! - [`remove`](PromptSet::remove), [`clear`](PromptSet::clear) and
//!   [`add_point`](PromptSet::add_point) (a correcting click).
//!
//! It never holds more than [`MAX_PROMPTS`] objects.

use std::fmt;
use std::sync::Arc;

use crate::segment::limits::{MAX_POINTS_PER_PROMPT, MAX_PROMPTS};
use crate::segment::prompt::{CoordMode, PointLabel, Prompt};
use crate::segment::video::ids::IdCounter;

/// Where a prompted object's prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptOrigin {
    /// The `prompts` / `prompt-list` properties.
    Property,
    /// An application's prompt event.
    Event,
    /// A click in the video window.
    Click,
    /// An upstream region of interest (a detector's box).
    Region {
        /// The region's type (the detector's label, e.g. `face`).
        label: Arc<str>,
        /// The region's own id (0 when the detector sets none).
        region_id: i32,
    },
}

impl PromptOrigin {
    /// Lower-case name, for metadata and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            PromptOrigin::Property => "property",
            PromptOrigin::Event => "event",
            PromptOrigin::Click => "click",
            PromptOrigin::Region { .. } => "roi",
        }
    }
}

impl fmt::Display for PromptOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One prompted object: its identity and what to segment.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPrompt {
    pub id: u64,
    pub prompt: Prompt,
    /// The units of `prompt`'s coordinates.
    pub coord_mode: CoordMode,
    pub origin: PromptOrigin,
}

impl ObjectPrompt {
    /// `prompts` as objects with the ids of their indices.
    pub fn indexed(prompts: &[Prompt], coord_mode: CoordMode, origin: PromptOrigin) -> Vec<Self> {
        prompts
            .iter()
            .enumerate()
            .map(|(index, prompt)| ObjectPrompt {
                id: u64::try_from(index).unwrap_or(u64::MAX),
                prompt: prompt.clone(),
                coord_mode,
                origin: origin.clone(),
            })
            .collect()
    }

    /// Whether `self` and `other` ask for the same segmentation.
    pub fn same_prompt(&self, other: &ObjectPrompt) -> bool {
        self.coord_mode == other.coord_mode && self.prompt == other.prompt
    }
}

/// Why an edit was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// The set would hold more than [`MAX_PROMPTS`] objects.
    Full { requested: usize },
    /// No object has this id.
    UnknownId(u64),
    /// The object already has [`MAX_POINTS_PER_PROMPT`] points.
    TooManyPoints(u64),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::Full { requested } => write!(
                f,
                "{requested} objects would exceed the limit of {MAX_PROMPTS} prompted objects"
            ),
            EditError::UnknownId(id) => write!(f, "no prompted object has id {id}"),
            EditError::TooManyPoints(id) => write!(
                f,
                "object {id} already has {MAX_POINTS_PER_PROMPT} points, the most one prompt may have"
            ),
        }
    }
}

impl std::error::Error for EditError {}

/// The stream's prompted objects, in the order they were given.
#[derive(Debug, Clone, Default)]
pub struct PromptSet {
    objects: Vec<ObjectPrompt>,
    ids: IdCounter,
}

impl PromptSet {
    /// An empty set drawing new ids from `ids`.
    pub fn new(ids: IdCounter) -> Self {
        PromptSet {
            objects: Vec::new(),
            ids,
        }
    }

    pub fn objects(&self) -> &[ObjectPrompt] {
        &self.objects
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn get(&self, id: u64) -> Option<&ObjectPrompt> {
        self.objects.iter().find(|o| o.id == id)
    }

    /// Replaces every object: object `i` of `prompts` gets id `i`.
    pub fn replace(
        &mut self,
        prompts: &[Prompt],
        coord_mode: CoordMode,
        origin: PromptOrigin,
    ) -> Result<(), EditError> {
        if prompts.len() > MAX_PROMPTS {
            return Err(EditError::Full {
                requested: prompts.len(),
            });
        }
        self.objects = ObjectPrompt::indexed(prompts, coord_mode, origin);
        self.ids
            .reserve_below(u64::try_from(prompts.len()).unwrap_or(u64::MAX));
        Ok(())
    }

    /// Adds objects; one with an id (`Some`) replaces the object of that id
    /// if there is one. Returns the ids, in order. Adds nothing when the
    /// set would grow past [`MAX_PROMPTS`].
    pub fn add(
        &mut self,
        prompts: Vec<(Option<u64>, Prompt)>,
        coord_mode: CoordMode,
        origin: PromptOrigin,
    ) -> Result<Vec<u64>, EditError> {
        let replacing = prompts
            .iter()
            .filter(|(id, _)| id.is_some_and(|id| self.get(id).is_some()))
            .count();
        let requested = self.objects.len() + prompts.len() - replacing;
        if requested > MAX_PROMPTS {
            return Err(EditError::Full { requested });
        }
        let mut added = Vec::with_capacity(prompts.len());
        for (id, prompt) in prompts {
            let id = match id {
                Some(id) => {
                    // Ids the application picks are not handed out later.
                    self.ids.reserve_below(id.saturating_add(1));
                    id
                }
                None => self.ids.next_id(),
            };
            let object = ObjectPrompt {
                id,
                prompt,
                coord_mode,
                origin: origin.clone(),
            };
            match self.objects.iter_mut().find(|o| o.id == id) {
                Some(existing) => *existing = object,
                None => self.objects.push(object),
            }
            added.push(id);
        }
        Ok(added)
    }

    /// Removes the objects with these ids; returns the ids that were not
    /// there (the others are removed all the same).
    pub fn remove(&mut self, ids: &[u64]) -> Vec<u64> {
        let unknown = ids
            .iter()
            .copied()
            .filter(|&id| self.get(id).is_none())
            .collect();
        self.objects.retain(|o| !ids.contains(&o.id));
        unknown
    }

    pub fn clear(&mut self) {
        self.objects.clear();
    }

    /// The objects from `origin` are now read in `coord_mode` (the
    /// properties' prompts follow the `coordinates` property); whether any
    /// changed.
    #[must_use]
    pub fn set_coord_mode(&mut self, origin: &PromptOrigin, coord_mode: CoordMode) -> bool {
        let mut changed = false;
        for object in self.objects.iter_mut().filter(|o| &o.origin == origin) {
            changed |= object.coord_mode != coord_mode;
            object.coord_mode = coord_mode;
        }
        changed
    }

    /// Adds a point, given in frame pixels of a `width` x `height` frame, to
    /// object `id`'s prompt (in the prompt's own units).
    pub fn add_point(
        &mut self,
        id: u64,
        (x, y): (f32, f32),
        label: PointLabel,
        (width, height): (u32, u32),
    ) -> Result<(), EditError> {
        let object = self
            .objects
            .iter_mut()
            .find(|o| o.id == id)
            .ok_or(EditError::UnknownId(id))?;
        if object.prompt.points().len() >= MAX_POINTS_PER_PROMPT {
            return Err(EditError::TooManyPoints(id));
        }
        let (x, y) = match object.coord_mode {
            CoordMode::Pixels => (x, y),
            CoordMode::Normalized => (x / width.max(1) as f32, y / height.max(1) as f32),
        };
        let prompt = std::mem::take(&mut object.prompt);
        object.prompt = match label {
            PointLabel::Positive => prompt.with_point(x, y),
            PointLabel::Negative => prompt.with_negative(x, y),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(x: f32) -> Prompt {
        Prompt::new().with_point(x, 10.0)
    }

    #[test]
    fn replace_numbers_from_zero_and_add_takes_fresh_ids() {
        let ids = IdCounter::new();
        let mut set = PromptSet::new(ids.clone());
        set.replace(
            &[point(1.0), point(2.0)],
            CoordMode::Pixels,
            PromptOrigin::Property,
        )
        .unwrap();
        assert_eq!(
            set.objects().iter().map(|o| o.id).collect::<Vec<_>>(),
            [0, 1]
        );
        let added = set
            .add(
                vec![(None, point(3.0))],
                CoordMode::Pixels,
                PromptOrigin::Click,
            )
            .unwrap();
        assert_eq!(added, [2]);
        // The shared counter: everything mode cannot take 2 again.
        assert_eq!(ids.next_id(), 3);
        // An application's id replaces that object.
        let added = set
            .add(
                vec![(Some(0), point(9.0))],
                CoordMode::Pixels,
                PromptOrigin::Event,
            )
            .unwrap();
        assert_eq!(added, [0]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.get(0).unwrap().prompt, point(9.0));
        assert_eq!(set.get(0).unwrap().origin, PromptOrigin::Event);
        // Removed ids stay used.
        assert_eq!(set.remove(&[1, 77]), [77]);
        assert_eq!(
            set.objects().iter().map(|o| o.id).collect::<Vec<_>>(),
            [0, 2]
        );
        let again = set
            .add(
                vec![(None, point(4.0))],
                CoordMode::Pixels,
                PromptOrigin::Click,
            )
            .unwrap();
        assert_eq!(again, [4]);
        set.clear();
        assert!(set.is_empty());
    }

    #[test]
    fn the_set_stays_bounded() {
        let mut set = PromptSet::default();
        let many = vec![point(1.0); MAX_PROMPTS + 1];
        assert!(matches!(
            set.replace(&many, CoordMode::Pixels, PromptOrigin::Property),
            Err(EditError::Full { .. })
        ));
        set.replace(
            &many[..MAX_PROMPTS],
            CoordMode::Pixels,
            PromptOrigin::Property,
        )
        .unwrap();
        let err = set
            .add(
                vec![(None, point(1.0))],
                CoordMode::Pixels,
                PromptOrigin::Click,
            )
            .unwrap_err();
        assert!(err.to_string().contains("1025 objects"), "{err}");
        // Replacing an existing id does not grow it.
        set.add(
            vec![(Some(3), point(2.0))],
            CoordMode::Pixels,
            PromptOrigin::Event,
        )
        .unwrap();
        assert_eq!(set.len(), MAX_PROMPTS);
    }

    #[test]
    fn points_are_added_in_the_prompts_units() {
        let mut set = PromptSet::default();
        set.replace(
            &[Prompt::new().with_point(0.5, 0.5)],
            CoordMode::Normalized,
            PromptOrigin::Property,
        )
        .unwrap();
        set.add_point(0, (80.0, 60.0), PointLabel::Negative, (320, 240))
            .unwrap();
        let prompt = &set.get(0).unwrap().prompt;
        assert_eq!(prompt.negative_points().count(), 1);
        let n = prompt.negative_points().next().unwrap();
        assert_eq!((n.x, n.y), (0.25, 0.25));
        assert_eq!(
            set.add_point(5, (1.0, 1.0), PointLabel::Negative, (320, 240)),
            Err(EditError::UnknownId(5))
        );
        for _ in 2..MAX_POINTS_PER_PROMPT {
            set.add_point(0, (1.0, 1.0), PointLabel::Positive, (320, 240))
                .unwrap();
        }
        assert_eq!(
            set.add_point(0, (1.0, 1.0), PointLabel::Positive, (320, 240)),
            Err(EditError::TooManyPoints(0))
        );
    }
}
