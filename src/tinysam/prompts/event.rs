// SPDX-License-Identifier: Apache-2.0
//! Prompts from applications as custom events, placed in the stream where
//! they apply: a serialized downstream event (pushed by `appsrc` or a pad
//! probe ahead of the buffer it is meant for) or an upstream event sent
//! from the sink side. docs/element.md documents the structure:
//!
//! ```text
//! tinysam/prompts, action=(string){replace|add|remove|clear},
//!     prompts=(GstValueArray)< tinysam/prompt, ... >,   replace, add
//!     ids=(GstValueArray)< 3, 7 >,                       remove
//!     coordinates=(string){pixels|normalized}            optional
//! ```

use gst::glib;

use super::Edit;
use super::list::{identified_prompts_from_array, object_id, prompts_from_array};
use crate::segment::limits::{MAX_PROMPTS, quote};
use crate::segment::prompt::CoordMode;
use crate::segment::video::PromptOrigin;

/// Name of the event structure.
pub const PROMPT_EVENT: &str = "tinysam/prompts";

const ACTION: &str = "action";
const PROMPTS: &str = "prompts";
const IDS: &str = "ids";
const COORDINATES: &str = "coordinates";

/// The event's structure, if it is a prompt event.
pub fn prompt_structure(event: &gst::EventRef) -> Option<&gst::StructureRef> {
    let custom = matches!(
        event.type_(),
        gst::EventType::CustomDownstream
            | gst::EventType::CustomDownstreamOob
            | gst::EventType::CustomUpstream
            | gst::EventType::CustomBoth
            | gst::EventType::CustomBothOob
    );
    event
        .structure()
        .filter(|s| custom && s.name() == PROMPT_EVENT)
}

/// The edit a prompt event asks for; the error says what is wrong with it.
pub fn edit_from_structure(s: &gst::StructureRef) -> Result<Edit, String> {
    if let Some(field) = s
        .fields()
        .find(|f| ![ACTION, PROMPTS, IDS, COORDINATES].contains(&f.as_str()))
    {
        return Err(format!(
            "unknown field `{}` (expected `{ACTION}`, `{PROMPTS}`, `{IDS}` or `{COORDINATES}`)",
            quote(field.as_str())
        ));
    }
    let action = s
        .get::<&str>(ACTION)
        .map_err(|_| format!("needs a string field `{ACTION}`: replace, add, remove or clear"))?;
    let coordinates = match s.get_optional::<&str>(COORDINATES) {
        Ok(None) => None,
        Ok(Some(text)) => Some(
            text.parse::<CoordMode>()
                .map_err(|e| format!("`{COORDINATES}`: {e}"))?,
        ),
        Err(_) => {
            return Err(format!(
                "`{COORDINATES}` must be a string: pixels or normalized"
            ));
        }
    };
    let prompts_array = || -> Result<gst::Array, String> {
        let value = s
            .value(PROMPTS)
            .map_err(|_| format!("action `{action}` needs a field `{PROMPTS}`"))?;
        value.get::<gst::Array>().map_err(|_| {
            format!(
                "`{PROMPTS}` must be an array of `tinysam/prompt` structures, got a {}",
                value.type_()
            )
        })
    };
    let only = |allowed: &[&str]| -> Result<(), String> {
        match s
            .fields()
            .find(|f| f.as_str() != ACTION && !allowed.contains(&f.as_str()))
        {
            Some(f) => Err(format!("action `{action}` takes no field `{}`", f.as_str())),
            None => Ok(()),
        }
    };
    match action {
        "replace" => {
            only(&[PROMPTS, COORDINATES])?;
            Ok(Edit::Replace {
                prompts: prompts_from_array(&prompts_array()?)?,
                coordinates,
                origin: PromptOrigin::Event,
            })
        }
        "add" => {
            only(&[PROMPTS, COORDINATES])?;
            Ok(Edit::Add {
                prompts: identified_prompts_from_array(&prompts_array()?)?,
                coordinates,
            })
        }
        "remove" => {
            only(&[IDS])?;
            let value = s
                .value(IDS)
                .map_err(|_| format!("action `remove` needs a field `{IDS}`"))?;
            let array = value.get::<gst::Array>().map_err(|_| {
                format!(
                    "`{IDS}` must be an array of object ids, got a {}",
                    value.type_()
                )
            })?;
            if array.len() > MAX_PROMPTS {
                return Err(format!(
                    "`{IDS}` holds {} ids; at most {MAX_PROMPTS}",
                    array.len()
                ));
            }
            let ids = array.iter().map(id_of).collect::<Result<Vec<_>, _>>()?;
            Ok(Edit::Remove { ids })
        }
        "clear" => {
            only(&[])?;
            Ok(Edit::Clear)
        }
        other => Err(format!(
            "unknown action `{}` (expected replace, add, remove or clear)",
            quote(other)
        )),
    }
}

fn id_of(v: &glib::SendValue) -> Result<u64, String> {
    object_id(v).ok_or_else(|| {
        format!(
            "`{IDS}` holds a {}, not a non-negative integer id",
            v.type_()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Prompt;

    fn parse(text: &str) -> Result<Edit, String> {
        gst::init().unwrap();
        let s: gst::Structure = text.parse().unwrap();
        edit_from_structure(&s)
    }

    /// A prompt event holding these `tinysam/prompt` structures (given in
    /// text form).
    fn with_prompts(head: &str, prompts: &[&str]) -> Result<Edit, String> {
        gst::init().unwrap();
        let mut s: gst::Structure = head.parse().unwrap();
        let prompts: Vec<gst::Structure> = prompts.iter().map(|p| p.parse().unwrap()).collect();
        s.set("prompts", gst::Array::new(prompts));
        edit_from_structure(&s)
    }

    #[test]
    fn actions_parse() {
        assert_eq!(
            with_prompts(
                "tinysam/prompts, action=replace",
                &["tinysam/prompt, box=<(double)1, (double)2, (double)30, (double)40>"]
            )
            .unwrap(),
            Edit::Replace {
                prompts: vec![Prompt::new().with_box(1.0, 2.0, 30.0, 40.0)],
                coordinates: None,
                origin: PromptOrigin::Event,
            }
        );
        assert_eq!(
            with_prompts(
                "tinysam/prompts, action=add, coordinates=normalized",
                &["tinysam/prompt, id=(uint)9, points=<(double)0.5, (double)0.5>"]
            )
            .unwrap(),
            Edit::Add {
                prompts: vec![(Some(9), Prompt::new().with_point(0.5, 0.5))],
                coordinates: Some(CoordMode::Normalized),
            }
        );
        assert_eq!(
            parse("tinysam/prompts, action=remove, ids=<3, 7>").unwrap(),
            Edit::Remove { ids: vec![3, 7] }
        );
        assert_eq!(parse("tinysam/prompts, action=clear").unwrap(), Edit::Clear);
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        for (text, reason) in [
            ("tinysam/prompts", "needs a string field `action`"),
            ("tinysam/prompts, action=move", "unknown action `move`"),
            ("tinysam/prompts, action=add", "needs a field `prompts`"),
            ("tinysam/prompts, action=add, prompts=5", "must be an array"),
            ("tinysam/prompts, action=remove", "needs a field `ids`"),
            (
                "tinysam/prompts, action=remove, ids=<-1>",
                "not a non-negative integer",
            ),
            (
                "tinysam/prompts, action=clear, ids=<1>",
                "takes no field `ids`",
            ),
            (
                "tinysam/prompts, action=clear, colour=red",
                "unknown field `colour`",
            ),
            (
                "tinysam/prompts, action=add, coordinates=inches, prompts=<>",
                "unknown coordinate mode",
            ),
            (
                "tinysam/prompts, action=add, prompts=<\"box=1,2,3,4\">",
                "expected a `tinysam/prompt` structure",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(reason), "`{text}`: {err} lacks {reason}");
        }
        for (head, prompt, reason) in [
            (
                "tinysam/prompts, action=add",
                "tinysam/prompt, points=<(double)1>",
                "x,y pairs",
            ),
            (
                "tinysam/prompts, action=replace",
                "tinysam/prompt, id=(uint)1, points=<(double)1, (double)1>",
                "unknown field `id`",
            ),
            (
                "tinysam/prompts, action=add",
                "tinysam/prompt, id=(int)-4, points=<(double)1, (double)1>",
                "non-negative integer",
            ),
        ] {
            let err = with_prompts(head, &[prompt]).unwrap_err();
            assert!(err.contains(reason), "`{prompt}`: {err} lacks {reason}");
        }
    }
}
