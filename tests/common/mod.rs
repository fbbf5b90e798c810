// SPDX-License-Identifier: Apache-2.0
//! Rendered multi-object scenes with exact masks, shared by the everything
//! tests and the benchmark.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod element;
pub mod snippets;

use gsttinysam::segment::{FrameView, PixelFormat};

/// A small deterministic generator (PCG-style LCG), so scenes are seeded.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next() as f32 / (1u64 << 31) as f32)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Centre, radii, rotation.
    Ellipse(f32, f32, f32, f32, f32),
    /// Centre, half sides, rotation.
    Rect(f32, f32, f32, f32, f32),
    Triangle([(f32, f32); 3]),
}

impl Shape {
    pub fn contains(&self, px: f32, py: f32) -> bool {
        match *self {
            Shape::Ellipse(cx, cy, rx, ry, a) | Shape::Rect(cx, cy, rx, ry, a) => {
                let (dx, dy) = (px - cx, py - cy);
                let (u, v) = (dx * a.cos() + dy * a.sin(), -dx * a.sin() + dy * a.cos());
                if matches!(self, Shape::Ellipse(..)) {
                    (u / rx).powi(2) + (v / ry).powi(2) <= 1.0
                } else {
                    u.abs() <= rx && v.abs() <= ry
                }
            }
            Shape::Triangle(p) => {
                let side = |(ax, ay): (f32, f32), (bx, by): (f32, f32)| {
                    (bx - ax) * (py - ay) - (by - ay) * (px - ax)
                };
                let s = [side(p[0], p[1]), side(p[1], p[2]), side(p[2], p[0])];
                s.iter().all(|&v| v >= 0.0) || s.iter().all(|&v| v <= 0.0)
            }
        }
    }
}

/// A rendered scene: RGB pixels and the exact visible mask of each object.
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    pub masks: Vec<Vec<bool>>,
}

impl Scene {
    /// The scene as a packed RGB frame.
    pub fn frame(&self) -> FrameView<'_> {
        FrameView::packed(
            PixelFormat::Rgb,
            self.width,
            self.height,
            &self.rgb,
            self.width as usize * 3,
        )
        .expect("a packed RGB frame")
    }
}

/// `count` filled shapes of distinct colours on a plain or gradient
/// background, painted back to front; a shape that would hide more than a
/// fifth of an earlier object is redrawn elsewhere.
pub fn render(seed: u64, width: u32, height: u32, count: usize) -> Scene {
    let mut rng = Rng(seed);
    let (w, h) = (width as usize, height as usize);
    let short = width.min(height) as f32;
    let mut labels = vec![0usize; w * h];
    let mut placed = 0;
    for _attempt in 0..200 {
        if placed == count {
            break;
        }
        let (cx, cy) = (
            rng.range(0.15, 0.85) * width as f32,
            rng.range(0.15, 0.85) * height as f32,
        );
        let r = rng.range(0.1, 0.22) * short;
        let angle = rng.range(0.0, std::f32::consts::PI);
        let shape = match rng.next() % 3 {
            0 => Shape::Ellipse(cx, cy, r, r * rng.range(0.5, 1.0), angle),
            1 => Shape::Rect(cx, cy, r, r * rng.range(0.5, 1.0), angle),
            _ => Shape::Triangle([0.0f32, 2.1, 4.2].map(|t| {
                let t = t + angle + rng.range(-0.3, 0.3);
                (cx + r * 1.2 * t.cos(), cy + r * 1.2 * t.sin())
            })),
        };
        let inside: Vec<bool> = (0..w * h)
            .map(|i| shape.contains((i % w) as f32 + 0.5, (i / w) as f32 + 0.5))
            .collect();
        let mut visible = vec![0usize; placed + 1];
        let mut hidden = vec![0usize; placed + 1];
        for (&l, &s) in labels.iter().zip(&inside) {
            visible[l] += 1;
            hidden[l] += usize::from(s);
        }
        if (1..=placed).any(|k| hidden[k] * 5 > visible[k]) {
            continue;
        }
        placed += 1;
        for (l, &s) in labels.iter_mut().zip(&inside) {
            if s {
                *l = placed;
            }
        }
    }
    // Colours far apart: evenly spaced hues, rotated per scene.
    let hue0 = rng.range(0.0, 1.0);
    let colours: Vec<[u8; 3]> = (0..placed)
        .map(|k| {
            hsv(
                hue0 + k as f32 / placed as f32,
                0.8,
                0.55 + 0.4 * (k % 2) as f32,
            )
        })
        .collect();
    let gradient = rng.next().is_multiple_of(2);
    let base = [
        rng.range(90.0, 170.0),
        rng.range(90.0, 170.0),
        rng.range(90.0, 170.0),
    ];
    let mut rgb = Vec::with_capacity(w * h * 3);
    for (i, &l) in labels.iter().enumerate() {
        if let Some(c) = l.checked_sub(1).and_then(|k| colours.get(k)) {
            rgb.extend(c);
        } else {
            let t = if gradient {
                (i % w) as f32 / w as f32 * 60.0 - 30.0
            } else {
                0.0
            };
            rgb.extend(base.map(|b| (b + t) as u8));
        }
    }
    let masks = (1..=placed)
        .map(|k| labels.iter().map(|&l| l == k).collect())
        .collect();
    Scene {
        width,
        height,
        rgb,
        masks,
    }
}

pub fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let h = h.rem_euclid(1.0) * 6.0;
    let f = h - h.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match h as u32 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [r, g, b].map(|c| (c * 255.0) as u8)
}

/// The seeded scenes of the recall tests: frame sizes of both orientations,
/// 2 to 8 objects.
pub fn scenes() -> Vec<Scene> {
    let sizes = [(320, 240), (256, 256), (240, 320), (400, 225)];
    (0..12)
        .map(|i| {
            let (w, h) = sizes[i % sizes.len()];
            render(1000 + i as u64, w, h, 2 + i % 7)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Moving shapes (tests/tracking.rs): a synthetic video with exact per-frame
// visible masks.

impl Shape {
    /// The shape translated by (`dx`, `dy`).
    pub fn moved(&self, dx: f32, dy: f32) -> Shape {
        match *self {
            Shape::Ellipse(cx, cy, rx, ry, a) => Shape::Ellipse(cx + dx, cy + dy, rx, ry, a),
            Shape::Rect(cx, cy, rx, ry, a) => Shape::Rect(cx + dx, cy + dy, rx, ry, a),
            Shape::Triangle(p) => Shape::Triangle(p.map(|(x, y)| (x + dx, y + dy))),
        }
    }
}

/// One object of the moving-shapes video: its shape on frame 0, its
/// velocity (pixels per frame) and how far its outline reaches from its
/// centre (to bounce off the frame's edges).
#[derive(Debug, Clone, Copy)]
pub struct Mover {
    pub shape: Shape,
    pub centre: (f32, f32),
    pub velocity: (f32, f32),
    pub reach: f32,
}

/// `start + velocity * t` folded into `lo..=hi` (bouncing off both ends).
fn bounce(start: f32, velocity: f32, t: f32, lo: f32, hi: f32) -> f32 {
    let span = (hi - lo).max(1e-3);
    let p = (start - lo + velocity * t).rem_euclid(2.0 * span);
    lo + if p > span { 2.0 * span - p } else { p }
}

impl Mover {
    /// Its centre on frame `t` in a `width` x `height` frame.
    pub fn centre_at(&self, t: usize, width: u32, height: u32) -> (f32, f32) {
        let t = t as f32;
        (
            bounce(
                self.centre.0,
                self.velocity.0,
                t,
                self.reach,
                width as f32 - self.reach,
            ),
            bounce(
                self.centre.1,
                self.velocity.1,
                t,
                self.reach,
                height as f32 - self.reach,
            ),
        )
    }

    pub fn shape_at(&self, t: usize, width: u32, height: u32) -> Shape {
        let (x, y) = self.centre_at(t, width, height);
        self.shape.moved(x - self.centre.0, y - self.centre.1)
    }
}

/// The moving-shapes video's objects at 320x240, painted in this order
/// (later ones in front): a slow ellipse (3 px/frame), a rectangle moving
/// left at 7 px/frame that passes in front of it around frame 17, a fast
/// triangle (14 px/frame) bouncing off the right edge, and a small disc
/// moving diagonally at 11 px/frame that bounces off the top edge and
/// crosses the triangle's path.
pub fn movers() -> Vec<Mover> {
    let triangle = |cx: f32, cy: f32, r: f32, a: f32| {
        Shape::Triangle(
            [0.0f32, 2.1, 4.2].map(|t| (cx + r * (t + a).cos(), cy + r * (t + a).sin())),
        )
    };
    vec![
        Mover {
            shape: Shape::Ellipse(70.0, 75.0, 34.0, 24.0, 0.3),
            centre: (70.0, 75.0),
            velocity: (3.0, 1.0),
            reach: 35.0,
        },
        Mover {
            shape: Shape::Rect(255.0, 82.0, 26.0, 19.0, 0.2),
            centre: (255.0, 82.0),
            velocity: (-7.0, 1.5),
            reach: 31.0,
        },
        Mover {
            shape: triangle(60.0, 185.0, 30.0, 0.4),
            centre: (60.0, 185.0),
            velocity: (14.0, -2.0),
            reach: 31.0,
        },
        Mover {
            shape: Shape::Ellipse(215.0, 170.0, 19.0, 19.0, 0.0),
            centre: (215.0, 170.0),
            velocity: (-8.0, -7.5),
            reach: 20.0,
        },
    ]
}

/// Frame `t` of `movers` rendered at `width` x `height`: distinct colours
/// on a horizontal gradient, painted back to front; `masks[k]` is the
/// visible part of object `k` (empty when hidden or gone).
pub fn render_movers(movers: &[Mover], t: usize, width: u32, height: u32) -> Scene {
    let (w, h) = (width as usize, height as usize);
    let shapes: Vec<Shape> = movers
        .iter()
        .map(|m| m.shape_at(t, width, height))
        .collect();
    let mut labels = vec![0usize; w * h];
    for (k, shape) in shapes.iter().enumerate() {
        for (i, l) in labels.iter_mut().enumerate() {
            if shape.contains((i % w) as f32 + 0.5, (i / w) as f32 + 0.5) {
                *l = k + 1;
            }
        }
    }
    let colours: Vec<[u8; 3]> = (0..movers.len())
        .map(|k| {
            hsv(
                0.08 + k as f32 / movers.len() as f32,
                0.8,
                0.6 + 0.35 * (k % 2) as f32,
            )
        })
        .collect();
    let mut rgb = Vec::with_capacity(w * h * 3);
    for (i, &l) in labels.iter().enumerate() {
        match l.checked_sub(1).and_then(|k| colours.get(k)) {
            Some(c) => rgb.extend(c),
            None => {
                let g = (i % w) as f32 / w as f32 * 50.0;
                rgb.extend([
                    (120.0 + g) as u8,
                    (130.0 - g * 0.3) as u8,
                    (110.0 + g * 0.5) as u8,
                ]);
            }
        }
    }
    let masks = (1..=movers.len())
        .map(|k| labels.iter().map(|&l| l == k).collect())
        .collect();
    Scene {
        width,
        height,
        rgb,
        masks,
    }
}

/// The moving-shapes video: `frames` frames of [`movers`] at 320x240.
pub fn moving_shapes(frames: usize) -> Vec<Scene> {
    let movers = movers();
    (0..frames)
        .map(|t| render_movers(&movers, t, 320, 240))
        .collect()
}

/// Intersection over union of a mask and an exact `width`-wide truth mask.
pub fn iou_with_truth(mask: &gsttinysam::segment::BitMask, truth: &[bool], width: u32) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (i, &t) in truth.iter().enumerate() {
        let m = mask.contains(i as u32 % width, i as u32 / width);
        inter += u64::from(m && t);
        union += u64::from(m || t);
    }
    inter as f64 / union.max(1) as f64
}

/// Tight box (x0, y0, x1, y1) of a truth mask, exclusive ends.
pub fn truth_box(truth: &[bool], width: u32) -> Option<(u32, u32, u32, u32)> {
    let w = width as usize;
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for (i, _) in truth.iter().enumerate().filter(|(_, t)| **t) {
        let (x, y) = ((i % w) as u32, (i / w) as u32);
        b = Some(match b {
            None => (x, y, x + 1, y + 1),
            Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)),
        });
    }
    b
}

/// The truth pixel farthest inside the mask (largest distance, in the
/// chessboard metric, to a pixel outside it): a point prompt a user would
/// click.
pub fn interior_point(truth: &[bool], width: u32) -> Option<(f32, f32)> {
    let w = width as usize;
    let h = truth.len() / w.max(1);
    // Two-pass chessboard distance transform.
    let mut d = vec![0u32; truth.len()];
    let at = |d: &Vec<u32>, x: isize, y: isize| -> u32 {
        if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
            0
        } else {
            d[y as usize * w + x as usize]
        }
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            if truth[i] {
                let m = [(-1, -1), (0, -1), (1, -1), (-1, 0)]
                    .iter()
                    .map(|&(dx, dy)| at(&d, x + dx, y + dy))
                    .min()
                    .unwrap_or(0);
                d[i] = m + 1;
            }
        }
    }
    for y in (0..h as isize).rev() {
        for x in (0..w as isize).rev() {
            let i = y as usize * w + x as usize;
            if truth[i] {
                let m = [(1, 1), (0, 1), (-1, 1), (1, 0)]
                    .iter()
                    .map(|&(dx, dy)| at(&d, x + dx, y + dy))
                    .min()
                    .unwrap_or(0);
                d[i] = d[i].min(m + 1);
            }
        }
    }
    let (i, _) = d
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .max_by_key(|(i, v)| (**v, usize::MAX - *i))?;
    Some(((i % w) as f32 + 0.5, (i / w) as f32 + 0.5))
}
