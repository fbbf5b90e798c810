// SPDX-License-Identifier: Apache-2.0
//! Drawing masks into frames, in place.
//!
//! Each object gets a colour from a fixed palette by its id, blended over
//! its mask pixels with `alpha`; with `outline`, the mask's boundary pixels
//! (set pixels with an unset 4-neighbour) are drawn opaque.
//!
//! Pixels outside every mask are never written. In I420 and NV12 frames
//! that holds for luma; a chroma sample is shared by a 2x2 block of pixels,
//! so it is blended in proportion to the block's mask coverage, and only
//! samples whose block has no mask pixel are left untouched.

use crate::segment::image::frame::{FrameViewMut, PixelFormat};
use crate::segment::masks::mask::BitMask;
use crate::segment::segmenter::SegmentedObject;

/// Distinct, saturated colours (RGB), cycled by object id.
pub const PALETTE: [[u8; 3]; 12] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [255, 225, 25],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 190],
    [0, 128, 128],
    [170, 110, 40],
];

/// The colour of object `id`.
pub fn palette_color(id: usize) -> [u8; 3] {
    PALETTE
        .get(id % PALETTE.len())
        .copied()
        .unwrap_or([255, 255, 255])
}

/// How masks are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayStyle {
    /// Opacity of the fill, 0 (invisible) to 1 (opaque).
    pub alpha: f32,
    /// Whether to draw the mask's boundary pixels opaque.
    pub outline: bool,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        OverlayStyle {
            alpha: 0.5,
            outline: true,
        }
    }
}

/// Full weight of the fixed-point blend.
const ONE: u32 = 256;

#[inline]
fn blend(dst: &mut u8, color: u8, weight: u32) {
    let weight = weight.min(ONE);
    let value = (u32::from(*dst) * (ONE - weight) + u32::from(color) * weight + ONE / 2) / ONE;
    *dst = value.min(255) as u8;
}

/// Blend weights of a mask's pixels for one style, computed once per mask
/// (the chroma planes read each luma weight four times).
struct Weights {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// Row-major over the mask's box; 0 outside the mask.
    map: Vec<u16>,
}

impl Weights {
    fn new(mask: &BitMask, fill: u32, outline: bool) -> Self {
        let (w, h) = (mask.width() as usize, mask.height() as usize);
        let fill = fill.min(ONE) as u16;
        let edge = if outline { ONE as u16 } else { fill };
        // One byte per pixel of the box, so the rows below vectorise.
        let mut inside = vec![false; w * h];
        mask.unpack(0, &mut inside);
        // A mask pixel is on the boundary when a 4-neighbour is not in the
        // mask (outside the box counts as not in the mask).
        let outside = vec![false; w];
        let row_of = |row: usize| inside.get(row * w..(row + 1) * w);
        let mut map = vec![0u16; w * h];
        for (row, out) in map.chunks_exact_mut(w.max(1)).enumerate() {
            let here = row_of(row).unwrap_or(&outside);
            let up = row.checked_sub(1).and_then(row_of).unwrap_or(&outside);
            let down = row_of(row + 1).filter(|_| row + 1 < h).unwrap_or(&outside);
            // fill <= edge; branch-free, so the loop below vectorises.
            let weight = |c: bool, interior: bool| {
                u16::from(c) * (edge - (edge - fill) * u16::from(interior))
            };
            // The first and last columns have a neighbour outside the box.
            if let (Some(o), Some(&c)) = (out.first_mut(), here.first()) {
                *o = weight(c, false);
            }
            if let (Some(o), Some(&c)) = (out.last_mut(), here.last()) {
                *o = weight(c, false);
            }
            let middle = 1..w.saturating_sub(1);
            let (Some(out), Some(centre), Some(left), Some(right), Some(up), Some(down)) = (
                out.get_mut(middle.clone()),
                here.get(middle.clone()),
                here.get(..w.saturating_sub(2)),
                here.get(2..),
                up.get(middle.clone()),
                down.get(middle),
            ) else {
                continue;
            };
            for (((((o, &c), &l), &r), &u), &d) in out
                .iter_mut()
                .zip(centre)
                .zip(left)
                .zip(right)
                .zip(up)
                .zip(down)
            {
                *o = weight(c, c & l & r & u & d);
            }
        }
        Weights {
            x: mask.x(),
            y: mask.y(),
            width: mask.width(),
            height: mask.height(),
            map,
        }
    }

    /// The weights of frame columns `xs` of frame row `y`, which must lie
    /// inside the mask's box.
    fn row(&self, y: u32, xs: &std::ops::Range<u32>) -> Option<&[u16]> {
        let start = xs.start.checked_sub(self.x)? as usize;
        self.box_row(y)?.get(start..start + xs.len())
    }

    /// The weights of frame row `y` across the whole box; `None` outside it.
    fn box_row(&self, y: u32) -> Option<&[u16]> {
        let row = y.checked_sub(self.y)?;
        if row >= self.height {
            return None;
        }
        let start = row as usize * self.width as usize;
        self.map.get(start..start + self.width as usize)
    }

    /// Weight of frame column `x` in a [`Weights::box_row`]: 0 outside it.
    #[inline]
    fn in_row(&self, row: &[u16], x: u32) -> u32 {
        x.checked_sub(self.x)
            .and_then(|col| row.get(col as usize))
            .map_or(0, |&w| u32::from(w))
    }

    /// Weight of frame pixel (x, y): 0 outside the mask (for the tests'
    /// definitions).
    #[cfg(test)]
    fn at(&self, x: u32, y: u32) -> u32 {
        self.box_row(y).map_or(0, |row| self.in_row(row, x))
    }
}

/// Draws every object with its palette colour.
pub fn draw_objects(
    frame: &mut FrameViewMut<'_>,
    objects: &[SegmentedObject],
    style: &OverlayStyle,
) {
    for object in objects {
        draw_mask(frame, &object.mask, palette_color(object.id), style);
    }
}

/// Draws one mask in `color` (RGB).
pub fn draw_mask(
    frame: &mut FrameViewMut<'_>,
    mask: &BitMask,
    color: [u8; 3],
    style: &OverlayStyle,
) {
    let alpha = if style.alpha.is_nan() {
        0.0
    } else {
        style.alpha.clamp(0.0, 1.0)
    };
    let weights = Weights::new(mask, (alpha * ONE as f32).round() as u32, style.outline);
    // The part of the mask's box inside the frame.
    let x_end = mask.x().saturating_add(mask.width()).min(frame.width());
    let y_end = mask.y().saturating_add(mask.height()).min(frame.height());
    if mask.x() >= x_end || mask.y() >= y_end {
        return;
    }
    let (xs, ys) = (mask.x()..x_end, mask.y()..y_end);
    match frame.format().packed_layout() {
        Some(layout) => {
            let bpp = layout.bytes_per_pixel;
            for y in ys {
                let (Some(row), Some(row_weights)) =
                    (frame.row_mut(0, y as usize), weights.row(y, &xs))
                else {
                    break;
                };
                let Some(pixels) = row.get_mut(xs.start as usize * bpp..xs.end as usize * bpp)
                else {
                    break;
                };
                for (pixel, &weight) in pixels.chunks_exact_mut(bpp).zip(row_weights) {
                    if weight == 0 {
                        continue;
                    }
                    for (offset, channel) in [layout.red, layout.green, layout.blue]
                        .into_iter()
                        .zip(color)
                    {
                        if let Some(byte) = pixel.get_mut(offset) {
                            blend(byte, channel, u32::from(weight));
                        }
                    }
                }
            }
        }
        None => draw_yuv(frame, &weights, color, xs, ys),
    }
}

fn draw_yuv(
    frame: &mut FrameViewMut<'_>,
    weights: &Weights,
    color: [u8; 3],
    xs: std::ops::Range<u32>,
    ys: std::ops::Range<u32>,
) {
    let [luma, u, v] = frame.colorimetry().rgb_to_yuv(color);
    let (width, height) = (frame.width(), frame.height());
    for y in ys.clone() {
        let (Some(row), Some(row_weights)) = (frame.row_mut(0, y as usize), weights.row(y, &xs))
        else {
            break;
        };
        let Some(lumas) = row.get_mut(xs.start as usize..xs.end as usize) else {
            break;
        };
        for (byte, &weight) in lumas.iter_mut().zip(row_weights) {
            if weight > 0 {
                blend(byte, luma, u32::from(weight));
            }
        }
    }
    // Chroma: the mean weight of each sample's 2x2 block, over the block's
    // pixels inside the frame (its top-left one always is).
    let chroma_weight = |rows: &[Option<&[u16]>; 2], block_rows: u32, cx: u32| {
        let (x0, x1) = (2 * cx, 2 * cx + 1);
        let block_cols = if x1 < width { 2 } else { 1 };
        let sum: u32 = rows
            .iter()
            .flatten()
            .map(|row| {
                weights.in_row(row, x0)
                    + if x1 < width {
                        weights.in_row(row, x1)
                    } else {
                        0
                    }
            })
            .sum();
        let pixels = block_rows * block_cols;
        (sum + pixels / 2).checked_div(pixels).unwrap_or(0)
    };
    let cxs = xs.start / 2..xs.end.div_ceil(2);
    for cy in ys.start / 2..ys.end.div_ceil(2) {
        let (y0, y1) = (2 * cy, 2 * cy + 1);
        let block_rows = if y1 < height { 2 } else { 1 };
        let rows = [
            weights.box_row(y0),
            weights.box_row(y1).filter(|_| y1 < height),
        ];
        match frame.format() {
            PixelFormat::I420 => {
                let Some((u_row, v_row)) = frame.i420_chroma_rows_mut(cy as usize) else {
                    break;
                };
                for cx in cxs.clone() {
                    let weight = chroma_weight(&rows, block_rows, cx);
                    if weight == 0 {
                        continue;
                    }
                    if let (Some(ub), Some(vb)) =
                        (u_row.get_mut(cx as usize), v_row.get_mut(cx as usize))
                    {
                        blend(ub, u, weight);
                        blend(vb, v, weight);
                    }
                }
            }
            PixelFormat::Nv12 => {
                let Some(uv_row) = frame.row_mut(1, cy as usize) else {
                    break;
                };
                for cx in cxs.clone() {
                    let weight = chroma_weight(&rows, block_rows, cx);
                    if weight == 0 {
                        continue;
                    }
                    let at = 2 * cx as usize;
                    if let Some([ub, vb]) = uv_row.get_mut(at..at + 2) {
                        blend(ub, u, weight);
                        blend(vb, v, weight);
                    }
                }
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: [PixelFormat; 12] = PixelFormat::ALL;

    /// Planes of a `w x h` frame with 3 bytes of stride padding, filled
    /// with a deterministic pattern.
    fn planes(format: PixelFormat, w: u32, h: u32) -> (Vec<Vec<u8>>, Vec<usize>) {
        let mut planes = Vec::new();
        let mut strides = Vec::new();
        for p in 0..format.plane_count() {
            let (row_bytes, rows) = format.plane_size(p, w, h).unwrap();
            let stride = row_bytes + 3;
            planes.push((0..stride * rows).map(|i| (i * 7 + p * 13) as u8).collect());
            strides.push(stride);
        }
        (planes, strides)
    }

    fn ring(x: u32, y: u32) -> bool {
        // A ring with a hole, touching the box edges.
        let (dx, dy) = (x as i32 - 6, y as i32 - 5);
        let d = dx * dx + dy * dy;
        (9..=30).contains(&d)
    }

    #[test]
    fn pixels_outside_masks_stay_untouched_in_every_format() {
        let (w, h) = (17u32, 13u32);
        // Box at (3, 2), 13x11, clipped by the frame on the right.
        let mask = BitMask::from_fn(3, 2, 15, 11, ring);
        let inside = |x: u32, y: u32| mask.contains(x, y);
        for format in FORMATS {
            for style in [
                OverlayStyle {
                    alpha: 0.5,
                    outline: true,
                },
                OverlayStyle {
                    alpha: 1.0,
                    outline: false,
                },
            ] {
                let (original, strides) = planes(format, w, h);
                let mut drawn = original.clone();
                {
                    let slices: Vec<&mut [u8]> = drawn.iter_mut().map(Vec::as_mut_slice).collect();
                    let mut frame = FrameViewMut::new(format, w, h, slices, &strides).unwrap();
                    draw_mask(&mut frame, &mask, [250, 10, 10], &style);
                }
                let mut changed_inside = 0;
                for (p, (before, after)) in original.iter().zip(&drawn).enumerate() {
                    let (row_bytes, _) = format.plane_size(p, w, h).unwrap();
                    for (i, (b, a)) in before.iter().zip(after).enumerate() {
                        let (row, col) = (i / strides[p], i % strides[p]);
                        let touched = a != b;
                        if col >= row_bytes {
                            assert!(!touched, "{format}: stride padding of plane {p} written");
                            continue;
                        }
                        let allowed = match (format.packed_layout(), p) {
                            (Some(layout), _) => {
                                let (x, channel) =
                                    (col / layout.bytes_per_pixel, col % layout.bytes_per_pixel);
                                [layout.red, layout.green, layout.blue].contains(&channel)
                                    && inside(x as u32, row as u32)
                            }
                            (None, 0) => inside(col as u32, row as u32),
                            (None, _) => {
                                let cx = if format == PixelFormat::Nv12 {
                                    col / 2
                                } else {
                                    col
                                } as u32;
                                let cy = row as u32;
                                [(0, 0), (1, 0), (0, 1), (1, 1)]
                                    .iter()
                                    .any(|(dx, dy)| inside(2 * cx + dx, 2 * cy + dy))
                            }
                        };
                        assert!(
                            allowed || !touched,
                            "{format} plane {p}: byte {col} of row {row} written"
                        );
                        changed_inside += usize::from(touched);
                    }
                }
                assert!(changed_inside > 0, "{format}: nothing drawn");
            }
        }
    }

    #[test]
    fn opaque_fill_and_outline_use_the_exact_colour() {
        let mask = BitMask::from_fn(1, 1, 3, 3, |_, _| true);
        let mut data = vec![0u8; 5 * 5 * 4];
        {
            let mut frame = FrameViewMut::packed(PixelFormat::Bgrx, 5, 5, &mut data, 20).unwrap();
            draw_mask(
                &mut frame,
                &mask,
                [10, 20, 30],
                &OverlayStyle {
                    alpha: 0.0,
                    outline: true,
                },
            );
        }
        let pixel = |x: usize, y: usize| &data[(y * 5 + x) * 4..(y * 5 + x) * 4 + 4];
        // Boundary pixels opaque, the centre untouched by a zero alpha.
        assert_eq!(pixel(1, 1), [30, 20, 10, 0]);
        assert_eq!(pixel(3, 2), [30, 20, 10, 0]);
        assert_eq!(pixel(2, 2), [0, 0, 0, 0]);
        assert_eq!(pixel(0, 0), [0, 0, 0, 0]);

        let mut rgb = vec![100u8; 2 * 2 * 3];
        {
            let mut frame = FrameViewMut::packed(PixelFormat::Rgb, 2, 2, &mut rgb, 6).unwrap();
            let all = BitMask::from_fn(0, 0, 2, 2, |_, _| true);
            draw_mask(
                &mut frame,
                &all,
                [200, 0, 100],
                &OverlayStyle {
                    alpha: 0.5,
                    outline: false,
                },
            );
        }
        assert_eq!(&rgb[..3], [150, 50, 100]);
    }

    #[test]
    fn weights_follow_the_mask_and_its_4_connected_boundary() {
        // Pseudo-random masks of many shapes, thin ones included, against
        // the definition pixel by pixel.
        let mut random = crate::segment::testing::random_below(12345);
        for (w, h) in [
            (1, 1),
            (1, 7),
            (7, 1),
            (2, 2),
            (3, 5),
            (9, 4),
            (31, 17),
            (64, 3),
        ] {
            for density in [2, 5, 9] {
                let bits: Vec<bool> = (0..w * h).map(|_| random(10) < density).collect();
                let set = |c: i64, r: i64| {
                    (0..w as i64).contains(&c)
                        && (0..h as i64).contains(&r)
                        && bits[(r * w as i64 + c) as usize]
                };
                let mask = BitMask::from_fn(4, 2, w, h, |c, r| set(c.into(), r.into()));
                for outline in [true, false] {
                    let weights = Weights::new(&mask, 100, outline);
                    for r in 0..h as i64 {
                        for c in 0..w as i64 {
                            let boundary =
                                !(set(c - 1, r) && set(c + 1, r) && set(c, r - 1) && set(c, r + 1));
                            let want = match (set(c, r), outline && boundary) {
                                (false, _) => 0,
                                (true, true) => ONE,
                                (true, false) => 100,
                            };
                            let got = weights.at(4 + c as u32, 2 + r as u32);
                            assert_eq!(
                                got, want,
                                "{w}x{h} density {density} outline {outline} at {c},{r}"
                            );
                        }
                    }
                }
            }
        }
    }

    const YUV_TEST_COLOR: [u8; 3] = [250, 40, 10];

    /// The YUV overlay of `mask` in [`YUV_TEST_COLOR`] as the module
    /// documentation defines it, pixel by pixel and sample by sample.
    fn reference_yuv(
        format: PixelFormat,
        (w, h): (u32, u32),
        planes: &mut [Vec<u8>],
        strides: &[usize],
        mask: &BitMask,
        style: &OverlayStyle,
    ) {
        let weights = Weights::new(
            mask,
            (style.alpha * ONE as f32).round() as u32,
            style.outline,
        );
        let colorimetry = {
            let slices: Vec<&mut [u8]> = planes.iter_mut().map(Vec::as_mut_slice).collect();
            FrameViewMut::new(format, w, h, slices, strides)
                .unwrap()
                .colorimetry()
        };
        let [luma, u, v] = colorimetry.rgb_to_yuv(YUV_TEST_COLOR);
        for y in 0..h {
            for x in 0..w {
                let weight = weights.at(x, y);
                if weight > 0 {
                    blend(
                        &mut planes[0][y as usize * strides[0] + x as usize],
                        luma,
                        weight,
                    );
                }
            }
        }
        for cy in 0..h.div_ceil(2) {
            for cx in 0..w.div_ceil(2) {
                let (mut sum, mut pixels) = (0, 0);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (x, y) = (2 * cx + dx, 2 * cy + dy);
                    if x < w && y < h {
                        sum += weights.at(x, y);
                        pixels += 1;
                    }
                }
                let weight = (sum + pixels / 2) / pixels;
                if weight == 0 {
                    continue;
                }
                let (cx, cy) = (cx as usize, cy as usize);
                if format == PixelFormat::Nv12 {
                    blend(&mut planes[1][cy * strides[1] + 2 * cx], u, weight);
                    blend(&mut planes[1][cy * strides[1] + 2 * cx + 1], v, weight);
                } else {
                    blend(&mut planes[1][cy * strides[1] + cx], u, weight);
                    blend(&mut planes[2][cy * strides[2] + cx], v, weight);
                }
            }
        }
    }

    #[test]
    fn yuv_overlay_equals_its_definition() {
        // Odd and even frame sizes; boxes inside, on the edges and clipped.
        let mut random = crate::segment::testing::random_below(777);
        for format in [PixelFormat::Nv12, PixelFormat::I420] {
            for (w, h) in [(17, 13), (16, 10), (33, 8), (5, 1)] {
                for (bx, by, bw, bh) in [
                    (0, 0, w, h),
                    (3, 2, 9, 7),
                    (1, 1, w + 4, h + 3),
                    (w - 2, h - 1, 2, 1),
                ] {
                    let bits: Vec<bool> = (0..bw * bh).map(|_| random(3) != 0).collect();
                    let mask = BitMask::from_fn(bx, by, bw, bh, |c, r| bits[(r * bw + c) as usize]);
                    for style in [
                        OverlayStyle::default(),
                        OverlayStyle {
                            alpha: 0.3,
                            outline: false,
                        },
                    ] {
                        let (mut want, strides) = planes(format, w, h);
                        let mut got = want.clone();
                        reference_yuv(format, (w, h), &mut want, &strides, &mask, &style);
                        {
                            let slices: Vec<&mut [u8]> =
                                got.iter_mut().map(Vec::as_mut_slice).collect();
                            let mut frame =
                                FrameViewMut::new(format, w, h, slices, &strides).unwrap();
                            draw_mask(&mut frame, &mask, YUV_TEST_COLOR, &style);
                        }
                        assert_eq!(
                            got, want,
                            "{format} {w}x{h}, box {bx},{by} {bw}x{bh}, {style:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn palette_cycles_by_id() {
        assert_eq!(palette_color(0), PALETTE[0]);
        assert_eq!(palette_color(PALETTE.len() + 2), PALETTE[2]);
        assert_ne!(palette_color(0), palette_color(1));
    }
}
