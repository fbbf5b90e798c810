// SPDX-License-Identifier: Apache-2.0
//! Rendered multi-object scenes with exact masks, shared by the everything
//! tests and the benchmark.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod element;

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
