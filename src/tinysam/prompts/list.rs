// SPDX-License-Identifier: Apache-2.0
//! Prompts as structured values, for applications: the `prompt-list`
//! property holds a `GstValueArray` of `tinysam/prompt` structures, one per
//! object, each with any of
//!
//! ```text
//! box=<x0, y0, x1, y1>         the box's corners
//! points=<x, y, x, y, ...>     positive points (on the object)
//! negatives=<x, y, ...>        negative points (not on the object)
//! ```
//!
//! Numbers may be doubles, floats or integers; they are in the units of the
//! `coordinates` property, as in the text form of `prompts`. In an `add`
//! prompt event an object may also carry `id=(uint)N`, the id it gets.

use gst::glib;

use crate::segment::Prompt;
use crate::segment::limits::{MAX_PROMPTS, quote};
use crate::segment::prompt::PointLabel;

/// Name of the structure describing one object.
pub const PROMPT_STRUCTURE: &str = "tinysam/prompt";

const BOX: &str = "box";
const POINTS: &str = "points";
const NEGATIVES: &str = "negatives";
const ID: &str = "id";

/// Parses the property value; the error names the object (1-based) and field.
pub fn prompts_from_array(array: &[glib::SendValue]) -> Result<Vec<Prompt>, String> {
    Ok(objects_from_array(array, false)?
        .into_iter()
        .map(|(_, prompt)| prompt)
        .collect())
}

/// Parses an `add` event's objects, each with the id it asks for, if any.
pub fn identified_prompts_from_array(
    array: &[glib::SendValue],
) -> Result<Vec<(Option<u64>, Prompt)>, String> {
    objects_from_array(array, true)
}

fn objects_from_array(
    array: &[glib::SendValue],
    ids: bool,
) -> Result<Vec<(Option<u64>, Prompt)>, String> {
    if array.len() > MAX_PROMPTS {
        return Err(format!(
            "{} objects; at most {MAX_PROMPTS} are accepted",
            array.len()
        ));
    }
    array
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let object = i + 1;
            let s = value.get::<gst::Structure>().map_err(|_| {
                format!(
                    "object {object}: expected a `{PROMPT_STRUCTURE}` structure, got a {}",
                    value.type_()
                )
            })?;
            prompt_from_structure(&s, ids).map_err(|reason| {
                format!("object {object} (`{}`): {reason}", quote(&s.to_string()))
            })
        })
        .collect()
}

fn prompt_from_structure(
    s: &gst::StructureRef,
    ids: bool,
) -> Result<(Option<u64>, Prompt), String> {
    if s.name() != PROMPT_STRUCTURE {
        return Err(format!(
            "structure name `{}`, expected `{PROMPT_STRUCTURE}`",
            quote(s.name())
        ));
    }
    let known: &[&str] = if ids {
        &[BOX, POINTS, NEGATIVES, ID]
    } else {
        &[BOX, POINTS, NEGATIVES]
    };
    if let Some(field) = s.fields().find(|f| !known.contains(&f.as_str())) {
        return Err(format!(
            "unknown field `{}` (expected {})",
            quote(field.as_str()),
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let id = match s.value(ID).ok() {
        None => None,
        Some(v) => Some(object_id(v).ok_or_else(|| {
            format!("`{ID}` must be a non-negative integer, got a {}", v.type_())
        })?),
    };
    let mut prompt = Prompt::new();
    if let Some(b) = numbers(s, BOX)? {
        match b.as_slice() {
            &[x0, y0, x1, y1] => prompt = prompt.with_box(x0, y0, x1, y1),
            _ => {
                return Err(format!(
                    "`{BOX}` needs 4 numbers x0,y0,x1,y1, got {}",
                    b.len()
                ));
            }
        }
    }
    for (field, label) in [
        (POINTS, PointLabel::Positive),
        (NEGATIVES, PointLabel::Negative),
    ] {
        let Some(coords) = numbers(s, field)? else {
            continue;
        };
        if coords.len() % 2 != 0 {
            return Err(format!(
                "`{field}` needs x,y pairs, got {} numbers",
                coords.len()
            ));
        }
        for xy in coords.chunks_exact(2) {
            prompt = match label {
                PointLabel::Positive => prompt.with_point(xy[0], xy[1]),
                PointLabel::Negative => prompt.with_negative(xy[0], xy[1]),
            };
        }
    }
    prompt.validate()?;
    Ok((id, prompt))
}

/// The numbers of an array field, or `None` when the field is absent.
fn numbers(s: &gst::StructureRef, field: &str) -> Result<Option<Vec<f32>>, String> {
    let Some(value) = s.value(field).ok() else {
        return Ok(None);
    };
    let array = value.get::<gst::Array>().map_err(|_| {
        format!(
            "`{field}` must be an array of numbers, got a {}",
            value.type_()
        )
    })?;
    array
        .iter()
        .map(|v| match number(v) {
            Some(n) if n.is_finite() => Ok(n as f32),
            Some(n) => Err(format!("`{field}` holds {n}, not a finite number")),
            None => Err(format!("`{field}` holds a {}, not a number", v.type_())),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// An object id held as any integer type; `None` for negative numbers and
/// other types.
pub fn object_id(v: &glib::SendValue) -> Option<u64> {
    v.get::<u64>()
        .ok()
        .or_else(|| v.get::<u32>().ok().map(u64::from))
        .or_else(|| v.get::<i32>().ok().and_then(|n| u64::try_from(n).ok()))
        .or_else(|| v.get::<i64>().ok().and_then(|n| u64::try_from(n).ok()))
}

fn number(v: &glib::SendValue) -> Option<f64> {
    v.get::<f64>()
        .ok()
        .or_else(|| v.get::<f32>().ok().map(f64::from))
        .or_else(|| v.get::<i32>().ok().map(f64::from))
        .or_else(|| v.get::<u32>().ok().map(f64::from))
        .or_else(|| v.get::<i64>().ok().map(|n| n as f64))
        .or_else(|| v.get::<u64>().ok().map(|n| n as f64))
}

/// The property value for `prompts` (what reading `prompt-list` returns).
pub fn prompts_to_array(prompts: &[Prompt]) -> gst::Array {
    gst::Array::new(prompts.iter().map(|p| {
        let mut s = gst::Structure::new_empty(PROMPT_STRUCTURE);
        if let Some(b) = p.bbox() {
            s.set(
                BOX,
                gst::Array::new([b.x0, b.y0, b.x1, b.y1].map(f64::from)),
            );
        }
        for (field, label) in [
            (POINTS, PointLabel::Positive),
            (NEGATIVES, PointLabel::Negative),
        ] {
            let coords: Vec<f64> = p
                .points()
                .iter()
                .filter(|pt| pt.label == label)
                .flat_map(|pt| [f64::from(pt.x), f64::from(pt.y)])
                .collect();
            if !coords.is_empty() {
                s.set(field, gst::Array::new(coords));
            }
        }
        s
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(fields: &[(&str, gst::Array)]) -> gst::Structure {
        let mut s = gst::Structure::new_empty(PROMPT_STRUCTURE);
        for (name, value) in fields {
            s.set(*name, value.clone());
        }
        s
    }

    #[test]
    fn round_trips_through_structures() {
        gst::init().unwrap();
        let prompts = vec![
            Prompt::new()
                .with_box(40.0, 60.0, 200.0, 220.0)
                .with_point(120.0, 140.0),
            Prompt::new()
                .with_point(400.0, 300.0)
                .with_negative(420.5, 310.0),
        ];
        let array = prompts_to_array(&prompts);
        assert_eq!(prompts_from_array(&array).unwrap(), prompts);
    }

    #[test]
    fn accepts_integers() {
        gst::init().unwrap();
        let array = gst::Array::new([object(&[
            (BOX, gst::Array::new([1i32, 2, 30, 40])),
            (NEGATIVES, gst::Array::new([5u32, 6])),
        ])]);
        assert_eq!(
            prompts_from_array(&array).unwrap(),
            vec![
                Prompt::new()
                    .with_box(1.0, 2.0, 30.0, 40.0)
                    .with_negative(5.0, 6.0)
            ]
        );
    }

    #[test]
    fn errors_name_the_object_and_field() {
        gst::init().unwrap();
        let good = object(&[(POINTS, gst::Array::new([1.0f64, 2.0]))]);
        let cases = [
            (
                object(&[(POINTS, gst::Array::new([1.0f64, 2.0, 3.0]))]),
                "x,y pairs",
            ),
            (
                object(&[(BOX, gst::Array::new([1.0f64, 2.0]))]),
                "needs 4 numbers",
            ),
            (
                object(&[(NEGATIVES, gst::Array::new([1.0f64, 2.0]))]),
                "positive point or a box",
            ),
            (object(&[(POINTS, gst::Array::new(["a"]))]), "not a number"),
            (
                object(&[(POINTS, gst::Array::new([f64::NAN, 1.0]))]),
                "not a finite number",
            ),
            (
                object(&[("point", gst::Array::new([1.0f64, 2.0]))]),
                "unknown field `point`",
            ),
            (
                gst::Structure::new_empty("tinysam/box"),
                "expected `tinysam/prompt`",
            ),
        ];
        for (bad, reason) in cases {
            let err = prompts_from_array(&gst::Array::new([good.clone(), bad])).unwrap_err();
            assert!(err.starts_with("object 2"), "{err}");
            assert!(err.contains(reason), "{err} lacks {reason}");
        }
        let err = prompts_from_array(&gst::Array::new(["box=1,2,3,4"])).unwrap_err();
        assert!(
            err.contains("expected a `tinysam/prompt` structure"),
            "{err}"
        );
    }
}
