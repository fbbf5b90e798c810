// SPDX-License-Identifier: Apache-2.0
//! Prompts: what to segment, as points and boxes.
//!
//! A [`Prompt`] is one object: positive and negative points and at most one
//! box, plus optionally the low-resolution logits of an earlier mask of the
//! same object (SAM's `mask_input`, for refinement).
//!
//! The text form, as typed in a `gst-launch` line, separates objects with
//! `;`; inside an object, whitespace separates `box=x0,y0,x1,y1`,
//! `point=x,y` (positive) and `neg=x,y` (negative) in any order:
//!
//! ```text
//! box=40,60,200,220 point=120,140; point=400,300 neg=420,310
//! ```
//!
//! Coordinates are in frame pixels or, with [`CoordMode::Normalized`],
//! fractions of the frame size; [`Prompt::resolve`] turns either into pixels
//! of a given frame, clamping what lies outside and reporting it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::segment::image::preprocess::Geometry;
use crate::segment::limits::{MAX_COORDINATE, MAX_POINTS_PER_PROMPT, MAX_PROMPTS, quote};
use crate::segment::masks::mask::LowResLogits;

/// SAM point labels.
pub const LABEL_NEGATIVE: f32 = 0.0;
pub const LABEL_POSITIVE: f32 = 1.0;
pub const LABEL_BOX_TOP_LEFT: f32 = 2.0;
pub const LABEL_BOX_BOTTOM_RIGHT: f32 = 3.0;
pub const LABEL_PADDING: f32 = -1.0;

/// Whether a point marks the object or the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointLabel {
    Positive,
    Negative,
}

/// A labelled point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromptPoint {
    pub x: f32,
    pub y: f32,
    pub label: PointLabel,
}

/// A box by its top-left and bottom-right corners.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromptBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// How prompt coordinates relate to the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CoordMode {
    /// Frame pixels: (0, 0) is the top-left corner, (width, height) the
    /// bottom-right one.
    #[default]
    Pixels,
    /// Fractions of the frame size: (0, 0) top-left, (1, 1) bottom-right.
    Normalized,
}

impl FromStr for CoordMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pixels" | "pixel" | "px" => Ok(CoordMode::Pixels),
            "normalized" | "normalised" | "relative" => Ok(CoordMode::Normalized),
            other => Err(format!(
                "unknown coordinate mode `{other}` (expected `pixels` or `normalized`)"
            )),
        }
    }
}

/// One object to segment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prompt {
    points: Vec<PromptPoint>,
    bbox: Option<PromptBox>,
    mask_input: Option<Arc<LowResLogits>>,
}

/// The decoder inputs of one prompt, in the model's input frame.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPrompt {
    /// (x, y) per encoded point.
    pub coords: Vec<[f32; 2]>,
    /// SAM label per encoded point.
    pub labels: Vec<f32>,
}

impl Prompt {
    /// An empty prompt; add points or a box before use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a positive point (on the object).
    #[must_use]
    pub fn with_point(mut self, x: f32, y: f32) -> Self {
        self.points.push(PromptPoint {
            x,
            y,
            label: PointLabel::Positive,
        });
        self
    }

    /// Adds a negative point (not on the object).
    #[must_use]
    pub fn with_negative(mut self, x: f32, y: f32) -> Self {
        self.points.push(PromptPoint {
            x,
            y,
            label: PointLabel::Negative,
        });
        self
    }

    /// Sets the box (replacing any earlier one).
    #[must_use]
    pub fn with_box(mut self, x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        self.bbox = Some(PromptBox { x0, y0, x1, y1 });
        self
    }

    /// Sets the previous low-resolution logits of this object, which the
    /// decoder refines (SAM's `mask_input`).
    #[must_use]
    pub fn with_mask_input(mut self, logits: Arc<LowResLogits>) -> Self {
        self.mask_input = Some(logits);
        self
    }

    /// The points in the order they were given.
    pub fn points(&self) -> &[PromptPoint] {
        &self.points
    }

    pub fn positive_points(&self) -> impl Iterator<Item = &PromptPoint> {
        self.points
            .iter()
            .filter(|p| p.label == PointLabel::Positive)
    }

    pub fn negative_points(&self) -> impl Iterator<Item = &PromptPoint> {
        self.points
            .iter()
            .filter(|p| p.label == PointLabel::Negative)
    }

    pub fn bbox(&self) -> Option<&PromptBox> {
        self.bbox.as_ref()
    }

    pub fn mask_input(&self) -> Option<&Arc<LowResLogits>> {
        self.mask_input.as_ref()
    }

    /// Whether the prompt has neither a point nor a box.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.bbox.is_none()
    }

    /// Checks that the prompt can be decoded: it selects something (a
    /// positive point or a box; negative points alone select nothing), has
    /// at most [`MAX_POINTS_PER_PROMPT`] points, and only finite coordinates
    /// within [`MAX_COORDINATE`]. The error says why.
    pub fn validate(&self) -> Result<(), String> {
        if self.is_empty() {
            return Err("an object needs at least one point or a box".to_owned());
        }
        if self.positive_points().next().is_none() && self.bbox.is_none() {
            return Err(
                "an object needs a positive point or a box; negative points alone select nothing"
                    .to_owned(),
            );
        }
        if self.points.len() > MAX_POINTS_PER_PROMPT {
            return Err(format!(
                "{} points in one object; at most {MAX_POINTS_PER_PROMPT} are accepted",
                self.points.len()
            ));
        }
        let corners = self.bbox.iter().flat_map(|b| [b.x0, b.y0, b.x1, b.y1]);
        let coords = self.points.iter().flat_map(|p| [p.x, p.y]).chain(corners);
        if let Some(bad) = coords
            .into_iter()
            .find(|v| !v.is_finite() || v.abs() > MAX_COORDINATE)
        {
            return Err(format!(
                "coordinate {bad} is out of range (at most {MAX_COORDINATE} in magnitude)"
            ));
        }
        Ok(())
    }

    /// Whether this is a single point without a box (SAM then prefers the
    /// best of its multimask outputs).
    pub fn is_single_point(&self) -> bool {
        self.points.len() == 1 && self.bbox.is_none()
    }

    /// Number of points the decoder sees: the points, then two box corners
    /// or one padding point.
    pub fn encoded_len(&self) -> usize {
        self.points.len() + if self.bbox.is_some() { 2 } else { 1 }
    }

    /// This prompt in pixels of a `width` x `height` frame, with anything
    /// outside the frame clamped to its edge. The returned warnings say what
    /// was clamped or corrected (`index` numbers the prompt in them).
    pub fn resolve(
        &self,
        mode: CoordMode,
        width: u32,
        height: u32,
        index: usize,
    ) -> (Prompt, Vec<String>) {
        let (w, h) = (width as f32, height as f32);
        let mut warnings = Vec::new();
        let (limit_x, limit_y, unit) = match mode {
            CoordMode::Pixels => (w, h, ""),
            CoordMode::Normalized => (1.0, 1.0, " (normalized)"),
        };
        let (scale_x, scale_y) = match mode {
            CoordMode::Pixels => (1.0, 1.0),
            CoordMode::Normalized => (w, h),
        };
        let mut clamp = |what: &str, x: f32, y: f32| -> (f32, f32) {
            let cx = x.clamp(0.0, limit_x);
            let cy = y.clamp(0.0, limit_y);
            if (cx, cy) != (x, y) {
                warnings.push(format!(
                    "prompt {index}: {what} ({}, {}){unit} is outside the {width}x{height} frame; \
                     clamped to ({}, {})",
                    fmt_num(x),
                    fmt_num(y),
                    fmt_num(cx),
                    fmt_num(cy)
                ));
            }
            (cx * scale_x, cy * scale_y)
        };
        let mut resolved = Prompt {
            points: Vec::with_capacity(self.points.len()),
            bbox: None,
            mask_input: self.mask_input.clone(),
        };
        for p in &self.points {
            let what = match p.label {
                PointLabel::Positive => "point",
                PointLabel::Negative => "negative point",
            };
            let (x, y) = clamp(what, p.x, p.y);
            resolved.points.push(PromptPoint {
                x,
                y,
                label: p.label,
            });
        }
        if let Some(b) = &self.bbox {
            let (x0, y0) = clamp("box corner", b.x0, b.y0);
            let (x1, y1) = clamp("box corner", b.x1, b.y1);
            let ordered = PromptBox {
                x0: x0.min(x1),
                y0: y0.min(y1),
                x1: x0.max(x1),
                y1: y0.max(y1),
            };
            if (ordered.x0, ordered.y0) != (x0, y0) {
                warnings.push(format!(
                    "prompt {index}: box corners were not top-left then bottom-right; reordered"
                ));
            }
            if ordered.x0 == ordered.x1 || ordered.y0 == ordered.y1 {
                warnings.push(format!("prompt {index}: box is empty inside the frame"));
            }
            resolved.bbox = Some(ordered);
        }
        (resolved, warnings)
    }

    /// SAM's decoder inputs for this prompt (in frame pixels) in the model
    /// frame of `geometry`: the points, then the box corners (labels 2, 3),
    /// or a padding point (0, 0) with label -1 when there is no box.
    pub fn encode(&self, geometry: &Geometry) -> EncodedPrompt {
        let n = self.encoded_len();
        let mut coords = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        let model = |x: f32, y: f32| [geometry.to_model_x(x), geometry.to_model_y(y)];
        for p in &self.points {
            coords.push(model(p.x, p.y));
            labels.push(match p.label {
                PointLabel::Positive => LABEL_POSITIVE,
                PointLabel::Negative => LABEL_NEGATIVE,
            });
        }
        match &self.bbox {
            Some(b) => {
                coords.push(model(b.x0, b.y0));
                coords.push(model(b.x1, b.y1));
                labels.extend([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]);
            }
            None => {
                coords.push([0.0, 0.0]);
                labels.push(LABEL_PADDING);
            }
        }
        EncodedPrompt { coords, labels }
    }
}

/// A number without a useless `.0`.
fn fmt_num(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl fmt::Display for Prompt {
    /// The text form (`box=... point=... neg=...`); parsing it gives the
    /// same points and box back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = &self.bbox {
            parts.push(format!(
                "box={},{},{},{}",
                fmt_num(b.x0),
                fmt_num(b.y0),
                fmt_num(b.x1),
                fmt_num(b.y1)
            ));
        }
        for p in &self.points {
            let key = match p.label {
                PointLabel::Positive => "point",
                PointLabel::Negative => "neg",
            };
            parts.push(format!("{key}={},{}", fmt_num(p.x), fmt_num(p.y)));
        }
        f.write_str(&parts.join(" "))
    }
}

/// A prompt string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prompt object {object} (`{part}`): {reason}")]
pub struct PromptError {
    /// 1-based number of the object (`;`-separated part).
    pub object: usize,
    /// The offending text.
    pub part: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses the text form: `;`-separated objects (see the module docs).
/// Empty objects (as in a trailing `;`) are skipped; an empty string gives
/// no prompts.
pub fn parse_prompts(text: &str) -> Result<Vec<Prompt>, PromptError> {
    let mut prompts = Vec::new();
    for (i, object) in text.split(';').enumerate() {
        if object.trim().is_empty() {
            continue;
        }
        if prompts.len() == MAX_PROMPTS {
            return Err(PromptError {
                object: i + 1,
                part: quote(object),
                reason: format!(
                    "more than {MAX_PROMPTS} objects; at most {MAX_PROMPTS} are accepted"
                ),
            });
        }
        prompts.push(parse_object(object, i + 1)?);
    }
    Ok(prompts)
}

impl FromStr for Prompt {
    type Err = PromptError;

    /// Parses one object (no `;`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(';') {
            return Err(PromptError {
                object: 1,
                part: s.trim().to_owned(),
                reason: "one object expected; use parse_prompts for `;`-separated lists".to_owned(),
            });
        }
        parse_object(s, 1)
    }
}

fn parse_object(text: &str, object: usize) -> Result<Prompt, PromptError> {
    let error = |part: &str, reason: String| PromptError {
        object,
        part: quote(part),
        reason,
    };
    let mut prompt = Prompt::new();
    for token in text.split_whitespace() {
        let Some((key, values)) = token.split_once('=') else {
            return Err(error(
                token,
                "expected `box=x0,y0,x1,y1`, `point=x,y` or `neg=x,y`".to_owned(),
            ));
        };
        let key = key.to_ascii_lowercase();
        let expected = match key.as_str() {
            "box" => 4,
            "point" | "neg" => 2,
            _ => {
                return Err(error(
                    token,
                    format!(
                        "unknown key `{}` (expected `box`, `point` or `neg`)",
                        quote(&key)
                    ),
                ));
            }
        };
        let numbers = parse_numbers(values).map_err(|reason| error(token, reason))?;
        if numbers.len() != expected {
            let form = if expected == 4 { "x0,y0,x1,y1" } else { "x,y" };
            return Err(error(
                token,
                format!(
                    "`{key}` needs {expected} numbers {form}, got {}",
                    numbers.len()
                ),
            ));
        }
        match (key.as_str(), numbers.as_slice()) {
            ("box", &[x0, y0, x1, y1]) => {
                if prompt.bbox.is_some() {
                    return Err(error(token, "an object can have only one box".to_owned()));
                }
                prompt = prompt.with_box(x0, y0, x1, y1);
            }
            ("point", &[x, y]) => prompt = prompt.with_point(x, y),
            ("neg", &[x, y]) => prompt = prompt.with_negative(x, y),
            _ => return Err(error(token, "malformed values".to_owned())),
        }
    }
    prompt
        .validate()
        .map_err(|reason| error(text.trim(), reason))?;
    Ok(prompt)
}

fn parse_numbers(values: &str) -> Result<Vec<f32>, String> {
    if values.is_empty() {
        return Err("no numbers after `=`".to_owned());
    }
    values
        .split(',')
        .map(|v| match v.parse::<f32>() {
            Ok(n) if n.is_finite() => Ok(n),
            Ok(_) => Err(format!("`{}` is not a finite number", quote(v))),
            Err(_) if v.is_empty() => Err("empty number (stray comma?)".to_owned()),
            Err(_) => Err(format!("`{}` is not a number", quote(v))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let prompts =
            parse_prompts("box=40,60,200,220 point=120,140; point=400,300 neg=420,310").unwrap();
        assert_eq!(prompts.len(), 2);
        assert_eq!(
            prompts[0],
            Prompt::new()
                .with_box(40.0, 60.0, 200.0, 220.0)
                .with_point(120.0, 140.0)
        );
        assert_eq!(
            prompts[1],
            Prompt::new()
                .with_point(400.0, 300.0)
                .with_negative(420.0, 310.0)
        );
        assert_eq!(prompts[1].positive_points().count(), 1);
        assert_eq!(prompts[1].negative_points().count(), 1);
    }

    #[test]
    fn accepts_whitespace_decimals_and_empty_objects() {
        let prompts = parse_prompts("  point=0.25,0.5 ;; BOX=0.1,0.2,0.3,0.4 ; ").unwrap();
        assert_eq!(prompts.len(), 2);
        assert_eq!(prompts[0].points()[0].x, 0.25);
        assert!(prompts[1].bbox().is_some());
        assert!(parse_prompts("").unwrap().is_empty());
        assert!(parse_prompts(" ; ").unwrap().is_empty());
    }

    #[test]
    fn display_round_trips() {
        let text = "box=40,60,200.5,220 point=120,140 neg=1,2";
        let prompt: Prompt = text.parse().unwrap();
        assert_eq!(prompt.to_string(), text);
        assert_eq!(prompt.to_string().parse::<Prompt>().unwrap(), prompt);
    }

    #[test]
    fn errors_name_the_offending_part() {
        let cases = [
            ("point=1,2; point=3", 2, "point=3", "needs 2 numbers"),
            ("point=1,2 box=1,2,3", 1, "box=1,2,3", "needs 4 numbers"),
            ("dot=1,2", 1, "dot=1,2", "unknown key `dot`"),
            ("point=1,x", 1, "point=1,x", "`x` is not a number"),
            ("point=1,,2", 1, "point=1,,2", "stray comma"),
            ("point=", 1, "point=", "no numbers"),
            ("point=nan,2", 1, "point=nan,2", "not a finite number"),
            ("point 1,2", 1, "point", "expected `box="),
            (
                "point=1,2; box=0,0,5,5 box=1,1,4,4",
                2,
                "box=1,1,4,4",
                "only one box",
            ),
            ("point=1,2;neg=3,4", 2, "neg=3,4", "positive point or a box"),
        ];
        for (text, object, part, reason) in cases {
            let err = parse_prompts(text).unwrap_err();
            assert_eq!(err.object, object, "{text}: {err}");
            assert_eq!(err.part, part, "{text}: {err}");
            assert!(err.reason.contains(reason), "{text}: {err}");
            let message = err.to_string();
            assert!(message.contains(part) && message.contains(&format!("object {object}")));
        }
    }

    #[test]
    fn out_of_frame_coordinates_are_clamped_with_a_warning() {
        let prompt = Prompt::new()
            .with_point(700.0, 100.0)
            .with_negative(-5.0, 20.0)
            .with_box(10.0, 10.0, 650.0, 500.0);
        let (resolved, warnings) = prompt.resolve(CoordMode::Pixels, 640, 480, 3);
        assert_eq!(resolved.points()[0].x, 640.0);
        assert_eq!(resolved.points()[1].x, 0.0);
        assert_eq!(
            resolved.bbox(),
            Some(&PromptBox {
                x0: 10.0,
                y0: 10.0,
                x1: 640.0,
                y1: 480.0
            })
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains(
            "prompt 3: point (700, 100) is outside the 640x480 frame; clamped to (640, 100)"
        ));
        assert!(warnings[1].contains("negative point (-5, 20)"));

        let (inside, warnings) =
            Prompt::new()
                .with_point(639.0, 479.5)
                .resolve(CoordMode::Pixels, 640, 480, 0);
        assert!(warnings.is_empty());
        assert_eq!(inside.points()[0].y, 479.5);
    }

    #[test]
    fn normalized_coordinates_scale_to_the_frame() {
        let prompt = Prompt::new()
            .with_point(0.5, 0.25)
            .with_box(0.1, 0.2, 1.2, 0.8);
        let (resolved, warnings) = prompt.resolve(CoordMode::Normalized, 640, 480, 0);
        assert_eq!(
            (resolved.points()[0].x, resolved.points()[0].y),
            (320.0, 120.0)
        );
        let b = resolved.bbox().unwrap();
        assert!((b.x0 - 64.0).abs() < 1e-3 && (b.y0 - 96.0).abs() < 1e-3);
        assert_eq!((b.x1, b.y1), (640.0, 384.0));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("(1.2, 0.8) (normalized)"),
            "{warnings:?}"
        );
        assert_eq!("normalised".parse::<CoordMode>(), Ok(CoordMode::Normalized));
        assert!("percent".parse::<CoordMode>().is_err());
    }

    #[test]
    fn swapped_box_corners_are_reordered() {
        let (resolved, warnings) = Prompt::new().with_box(200.0, 220.0, 40.0, 60.0).resolve(
            CoordMode::Pixels,
            640,
            480,
            1,
        );
        assert_eq!(
            resolved.bbox(),
            Some(&PromptBox {
                x0: 40.0,
                y0: 60.0,
                x1: 200.0,
                y1: 220.0
            })
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn sam_encoding_orders_points_then_box_or_padding() {
        // 1000x500 frame in a 1024 model: resized 1024x512, scale 1.024 on both axes.
        let g = Geometry::new(1000, 500, 1024).unwrap();
        let enc = Prompt::new()
            .with_point(100.0, 50.0)
            .with_negative(500.0, 250.0)
            .encode(&g);
        assert_eq!(enc.labels, [1.0, 0.0, -1.0]);
        assert_eq!(enc.coords.len(), 3);
        assert!((enc.coords[0][0] - 102.4).abs() < 1e-4 && (enc.coords[0][1] - 51.2).abs() < 1e-4);
        assert!((enc.coords[1][0] - 512.0).abs() < 1e-4);
        assert_eq!(enc.coords[2], [0.0, 0.0]);

        let enc = Prompt::new()
            .with_box(10.0, 20.0, 30.0, 40.0)
            .with_point(15.0, 25.0)
            .encode(&g);
        assert_eq!(enc.labels, [1.0, 2.0, 3.0]);
        assert!((enc.coords[1][0] - 10.24).abs() < 1e-4 && (enc.coords[2][1] - 40.96).abs() < 1e-4);
        assert_eq!(Prompt::new().with_box(1.0, 2.0, 3.0, 4.0).encoded_len(), 2);
        assert_eq!(Prompt::new().with_point(1.0, 2.0).encoded_len(), 2);
    }
}
