// SPDX-License-Identifier: Apache-2.0
//! What masks do to the pixels besides being drawn ([`overlay`](super::overlay)):
//! a cut-out in the alpha channel (for `compositor` over another picture),
//! or the objects blurred or pixelated for privacy; inverted, the rest of
//! the frame instead.
//!
//! Work stays inside each mask's box (plus the blur's reach); only the
//! inverted effects touch the whole frame, with one frame-size selection
//! map per frame, not per object. Pixels not selected are never written in
//! packed formats and in the luma plane. A 4:2:0 chroma sample is shared by
//! 2x2 pixels and is changed when any of them is selected. The scratch
//! buffers live in [`MaskPainter`] and are reused from frame to frame.

use std::fmt;

use crate::segment::image::frame::{FrameViewMut, PixelFormat};
use crate::segment::masks::mask::BitMask;

/// What happens to the selected pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskEffect {
    /// Selected pixels opaque, the rest transparent (formats with alpha).
    Alpha,
    /// A box blur of this radius (pixels), applied twice.
    Blur { radius: u32 },
    /// Blocks of this size (pixels, on a grid from the frame's corner)
    /// filled with their mean.
    Pixelate { block: u32 },
}

/// Why an effect cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectError {
    /// The alpha effect in a format without alpha.
    NoAlpha(PixelFormat),
}

impl fmt::Display for EffectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EffectError::NoAlpha(format) => write!(
                f,
                "{format} has no alpha channel for a cut-out; use RGBA, BGRA, ARGB or ABGR"
            ),
        }
    }
}

impl std::error::Error for EffectError {}

/// One plane as samples: `channels` bytes each, `sub` frame pixels per
/// sample in each direction.
#[derive(Debug, Clone, Copy)]
struct Plane {
    index: usize,
    channels: usize,
    sub: u32,
    width: u32,
    height: u32,
}

fn planes(format: PixelFormat, width: u32, height: u32) -> Vec<Plane> {
    let plane = |index, channels, sub: u32| Plane {
        index,
        channels,
        sub,
        width: width.div_ceil(sub),
        height: height.div_ceil(sub),
    };
    match format {
        PixelFormat::I420 => vec![plane(0, 1, 1), plane(1, 1, 2), plane(2, 1, 2)],
        PixelFormat::Nv12 => vec![plane(0, 1, 1), plane(1, 2, 2)],
        packed => packed
            .packed_layout()
            .map(|l| vec![plane(0, l.bytes_per_pixel, 1)])
            .unwrap_or_default(),
    }
}

/// Which frame pixels an effect changes.
#[derive(Clone, Copy)]
enum Selection<'a> {
    /// One object's mask.
    Mask(&'a BitMask),
    /// Every pixel outside all masks (row-major, frame size; `true` =
    /// inside some mask).
    Outside { inside: &'a [bool], width: u32 },
}

impl Selection<'_> {
    #[inline]
    fn pixel(&self, x: u32, y: u32) -> bool {
        match self {
            Selection::Mask(mask) => mask.contains(x, y),
            Selection::Outside { inside, width } => !inside
                .get(y as usize * *width as usize + x as usize)
                .copied()
                .unwrap_or(true),
        }
    }

    /// Whether sample `(sx, sy)` of a plane with `sub` is selected: any of
    /// the frame pixels it covers is.
    #[inline]
    fn sample(&self, sx: u32, sy: u32, sub: u32, frame: (u32, u32)) -> bool {
        if sub == 1 {
            return self.pixel(sx, sy);
        }
        let (x0, y0) = (sx * sub, sy * sub);
        (y0..(y0 + sub).min(frame.1))
            .any(|y| (x0..(x0 + sub).min(frame.0)).any(|x| self.pixel(x, y)))
    }
}

/// A rectangle of samples, `[x0, x1) x [y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

/// Applies [`MaskEffect`]s, keeping its scratch memory between frames.
#[derive(Debug, Default)]
pub struct MaskPainter {
    region: Vec<u8>,
    scratch: Vec<u8>,
    sums: Vec<u32>,
    reciprocals: Vec<u64>,
    inside: Vec<bool>,
}

impl MaskPainter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `effect` to the pixels of `masks` (or, with `invert`, to all
    /// pixels outside them).
    pub fn apply(
        &mut self,
        frame: &mut FrameViewMut<'_>,
        masks: &[&BitMask],
        effect: MaskEffect,
        invert: bool,
    ) -> Result<(), EffectError> {
        let (width, height) = (frame.width(), frame.height());
        if let MaskEffect::Alpha = effect {
            return cut_out(frame, masks, invert);
        }
        let mut inside = std::mem::take(&mut self.inside);
        let result = if invert {
            inside.clear();
            inside.resize(width as usize * height as usize, false);
            for mask in masks {
                for (x, y) in mask_pixels(mask, width, height) {
                    if let Some(p) = inside.get_mut(y as usize * width as usize + x as usize) {
                        *p = true;
                    }
                }
            }
            let selection = Selection::Outside {
                inside: &inside,
                width,
            };
            self.paint(frame, selection, None, effect);
            Ok(())
        } else {
            for mask in masks {
                let x1 = mask.x().saturating_add(mask.width()).min(width);
                let y1 = mask.y().saturating_add(mask.height()).min(height);
                if mask.x() >= x1 || mask.y() >= y1 {
                    continue;
                }
                let bounds = Rect {
                    x0: mask.x(),
                    y0: mask.y(),
                    x1,
                    y1,
                };
                self.paint(frame, Selection::Mask(mask), Some(bounds), effect);
            }
            Ok(())
        };
        self.inside = inside;
        result
    }

    /// `effect` on the selected pixels, within `bounds` (frame pixels;
    /// `None`: the whole frame), plane by plane.
    fn paint(
        &mut self,
        frame: &mut FrameViewMut<'_>,
        selection: Selection<'_>,
        bounds: Option<Rect>,
        effect: MaskEffect,
    ) {
        let size = (frame.width(), frame.height());
        for plane in planes(frame.format(), size.0, size.1) {
            let area = match bounds {
                Some(b) => Rect {
                    x0: b.x0 / plane.sub,
                    y0: b.y0 / plane.sub,
                    x1: b.x1.div_ceil(plane.sub).min(plane.width),
                    y1: b.y1.div_ceil(plane.sub).min(plane.height),
                },
                None => Rect {
                    x0: 0,
                    y0: 0,
                    x1: plane.width,
                    y1: plane.height,
                },
            };
            match effect {
                MaskEffect::Blur { radius } => {
                    self.blur(frame, &plane, area, selection, size, radius)
                }
                MaskEffect::Pixelate { block } => {
                    self.pixelate(frame, &plane, area, selection, size, block)
                }
                MaskEffect::Alpha => (),
            }
        }
    }

    fn blur(
        &mut self,
        frame: &mut FrameViewMut<'_>,
        plane: &Plane,
        area: Rect,
        selection: Selection<'_>,
        size: (u32, u32),
        radius: u32,
    ) {
        let r = (radius / plane.sub).max(1);
        // The samples the blur reads: the area plus its reach.
        let ext = Rect {
            x0: area.x0.saturating_sub(r),
            y0: area.y0.saturating_sub(r),
            x1: area.x1.saturating_add(r).min(plane.width),
            y1: area.y1.saturating_add(r).min(plane.height),
        };
        let (ew, eh, c) = (
            (ext.x1 - ext.x0) as usize,
            (ext.y1 - ext.y0) as usize,
            plane.channels,
        );
        if ew == 0 || eh == 0 {
            return;
        }
        self.region.clear();
        for y in ext.y0..ext.y1 {
            let Some(row) = frame.row_mut(plane.index, y as usize) else {
                return;
            };
            let Some(part) = row.get(ext.x0 as usize * c..ext.x1 as usize * c) else {
                return;
            };
            self.region.extend_from_slice(part);
        }
        self.scratch.resize(self.region.len(), 0);
        let r = r as usize;
        reciprocals(r, &mut self.reciprocals);
        for _ in 0..2 {
            blur_rows(&self.region, &mut self.scratch, ew, c, r, &self.reciprocals);
            blur_columns(
                &self.scratch,
                &mut self.region,
                ew * c,
                eh,
                r,
                &self.reciprocals,
                &mut self.sums,
            );
        }
        for y in area.y0..area.y1 {
            let Some(row) = frame.row_mut(plane.index, y as usize) else {
                return;
            };
            let blurred_row = (y - ext.y0) as usize * ew * c;
            for x in area.x0..area.x1 {
                if !selection.sample(x, y, plane.sub, size) {
                    continue;
                }
                let src = blurred_row + (x - ext.x0) as usize * c;
                let dst = x as usize * c;
                if let (Some(out), Some(value)) =
                    (row.get_mut(dst..dst + c), self.region.get(src..src + c))
                {
                    out.copy_from_slice(value);
                }
            }
        }
    }

    fn pixelate(
        &mut self,
        frame: &mut FrameViewMut<'_>,
        plane: &Plane,
        area: Rect,
        selection: Selection<'_>,
        size: (u32, u32),
        block: u32,
    ) {
        let b = (block / plane.sub).max(1);
        let c = plane.channels;
        // Whole blocks of the grid that meet the area.
        let (bx0, bx1) = ((area.x0 / b) * b, area.x1.div_ceil(b) * b);
        let columns = ((bx1 - bx0) / b) as usize;
        let mut by = (area.y0 / b) * b;
        while by < area.y1 {
            let rows = by..(by + b).min(plane.height);
            self.sums.clear();
            self.sums.resize(columns * (c + 1), 0);
            for y in rows.clone() {
                let Some(row) = frame.row_mut(plane.index, y as usize) else {
                    return;
                };
                for x in bx0..bx1.min(plane.width) {
                    let k = ((x - bx0) / b) as usize * (c + 1);
                    let at = x as usize * c;
                    if let (Some(sample), Some(sums)) =
                        (row.get(at..at + c), self.sums.get_mut(k..k + c + 1))
                    {
                        for (sum, &v) in sums.iter_mut().zip(sample) {
                            *sum += u32::from(v);
                        }
                        if let Some(count) = sums.last_mut() {
                            *count += 1;
                        }
                    }
                }
            }
            for y in rows.clone().filter(|y| (area.y0..area.y1).contains(y)) {
                let Some(row) = frame.row_mut(plane.index, y as usize) else {
                    return;
                };
                for x in area.x0..area.x1 {
                    if !selection.sample(x, y, plane.sub, size) {
                        continue;
                    }
                    let k = ((x - bx0) / b) as usize * (c + 1);
                    let at = x as usize * c;
                    if let (Some(out), Some(sums)) =
                        (row.get_mut(at..at + c), self.sums.get(k..k + c + 1))
                    {
                        let n = sums.last().copied().unwrap_or(1).max(1);
                        for (o, &sum) in out.iter_mut().zip(sums) {
                            *o = ((sum + n / 2) / n) as u8;
                        }
                    }
                }
            }
            by = rows.end;
        }
    }
}

/// The frame pixels of `mask` inside a `width` x `height` frame.
fn mask_pixels(mask: &BitMask, width: u32, height: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
    let x1 = mask.x().saturating_add(mask.width()).min(width);
    let y1 = mask.y().saturating_add(mask.height()).min(height);
    (mask.y()..y1).flat_map(move |y| {
        (mask.x()..x1).filter_map(move |x| mask.contains(x, y).then_some((x, y)))
    })
}

/// `1 / count` in 24-bit fixed point, for every window size a blur of
/// radius `r` has (1 ..= 2r + 1 samples).
fn reciprocals(r: usize, table: &mut Vec<u64>) {
    table.clear();
    table.push(0);
    table.extend((1..=2 * r as u64 + 1).map(|n| (1u64 << 24).div_ceil(n)));
}

#[inline]
fn mean(sum: u32, reciprocal: u64) -> u8 {
    ((u64::from(sum) * reciprocal + (1 << 23)) >> 24).min(255) as u8
}

/// A box blur of radius `r` along the rows of a `w x h` region of `c`-byte
/// samples. Windows are cut at the region's edges and average what they
/// hold.
fn blur_rows(src: &[u8], dst: &mut [u8], w: usize, c: usize, r: usize, table: &[u64]) {
    let line = w * c;
    if line == 0 || c > 4 {
        return;
    }
    for (s, d) in src.chunks_exact(line).zip(dst.chunks_exact_mut(line)) {
        let mut sum = [0u32; 4];
        for sample in s.chunks_exact(c).take(r + 1) {
            for (acc, &v) in sum.iter_mut().zip(sample) {
                *acc += u32::from(v);
            }
        }
        for x in 0..w {
            let count = (x + r).min(w - 1) + 1 - x.saturating_sub(r);
            let reciprocal = table.get(count).copied().unwrap_or(0);
            if let Some(out) = d.get_mut(x * c..x * c + c) {
                for (o, &acc) in out.iter_mut().zip(&sum) {
                    *o = mean(acc, reciprocal);
                }
            }
            if let Some(incoming) = s.get((x + r + 1) * c..(x + r + 2) * c) {
                for (acc, &v) in sum.iter_mut().zip(incoming) {
                    *acc += u32::from(v);
                }
            }
            if x >= r
                && let Some(outgoing) = s.get((x - r) * c..(x - r + 1) * c)
            {
                for (acc, &v) in sum.iter_mut().zip(outgoing) {
                    *acc -= u32::from(v);
                }
            }
        }
    }
}

/// A box blur of radius `r` along the columns, row by row with one running
/// sum per column (contiguous, so the inner loops vectorise).
fn blur_columns(
    src: &[u8],
    dst: &mut [u8],
    line: usize,
    h: usize,
    r: usize,
    table: &[u64],
    sums: &mut Vec<u32>,
) {
    if line == 0 || h == 0 {
        return;
    }
    sums.clear();
    sums.resize(line, 0);
    let row = |y: usize| src.get(y * line..(y + 1) * line);
    for y in 0..=r.min(h - 1) {
        if let Some(values) = row(y) {
            for (acc, &v) in sums.iter_mut().zip(values) {
                *acc += u32::from(v);
            }
        }
    }
    for (y, out) in dst.chunks_exact_mut(line).take(h).enumerate() {
        let count = (y + r).min(h - 1) + 1 - y.saturating_sub(r);
        let reciprocal = table.get(count).copied().unwrap_or(0);
        for (o, &acc) in out.iter_mut().zip(sums.iter()) {
            *o = mean(acc, reciprocal);
        }
        if let Some(incoming) = row(y + r + 1) {
            for (acc, &v) in sums.iter_mut().zip(incoming) {
                *acc += u32::from(v);
            }
        }
        if y >= r
            && let Some(outgoing) = row(y - r)
        {
            for (acc, &v) in sums.iter_mut().zip(outgoing) {
                *acc -= u32::from(v);
            }
        }
    }
}

/// Writes the selection into the alpha channel: 255 inside the masks and 0
/// elsewhere, or the other way round with `invert`.
fn cut_out(
    frame: &mut FrameViewMut<'_>,
    masks: &[&BitMask],
    invert: bool,
) -> Result<(), EffectError> {
    let format = frame.format();
    let Some((bpp, alpha)) = format
        .packed_layout()
        .and_then(|l| Some((l.bytes_per_pixel, l.alpha?)))
    else {
        return Err(EffectError::NoAlpha(format));
    };
    let (inside, outside) = if invert { (0u8, 255u8) } else { (255, 0) };
    let (width, height) = (frame.width(), frame.height());
    for y in 0..height {
        if let Some(row) = frame.row_mut(0, y as usize) {
            for a in row.chunks_exact_mut(bpp).filter_map(|p| p.get_mut(alpha)) {
                *a = outside;
            }
        }
    }
    for mask in masks {
        for (x, y) in mask_pixels(mask, width, height) {
            if let Some(a) = frame
                .row_mut(0, y as usize)
                .and_then(|row| row.get_mut(x as usize * bpp + alpha))
            {
                *a = inside;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w x h` frame of `format` with stride padding, a deterministic
    /// pattern with edges (so blurs change it).
    fn planes(format: PixelFormat, w: u32, h: u32) -> (Vec<Vec<u8>>, Vec<usize>) {
        let mut planes = Vec::new();
        let mut strides = Vec::new();
        for p in 0..format.plane_count() {
            let (row_bytes, rows) = format.plane_size(p, w, h).unwrap();
            let stride = row_bytes + 3;
            planes.push(
                (0..stride * rows)
                    .map(|i| {
                        if (i / 5 + i / stride) % 2 == 0 {
                            20
                        } else {
                            230
                        }
                    })
                    .collect(),
            );
            strides.push(stride);
        }
        (planes, strides)
    }

    fn run(
        format: PixelFormat,
        masks: &[&BitMask],
        effect: MaskEffect,
        invert: bool,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<usize>) {
        let (w, h) = (40, 30);
        let (before, strides) = planes(format, w, h);
        let mut after = before.clone();
        {
            let refs: Vec<&mut [u8]> = after.iter_mut().map(|p| &mut p[..]).collect();
            let mut frame = FrameViewMut::new(format, w, h, refs, &strides).unwrap();
            MaskPainter::new()
                .apply(&mut frame, masks, effect, invert)
                .unwrap();
        }
        (before, after, strides)
    }

    /// Whether frame pixel `(x, y)`'s sample in `plane` was written.
    fn changed(
        format: PixelFormat,
        before: &[Vec<u8>],
        after: &[Vec<u8>],
        strides: &[usize],
        plane: usize,
        sx: usize,
        sy: usize,
    ) -> bool {
        let c = match (format, plane) {
            (PixelFormat::Nv12, 1) => 2,
            (f, 0) if !f.is_yuv() => f.packed_layout().unwrap().bytes_per_pixel,
            _ => 1,
        };
        let at = sy * strides[plane] + sx * c;
        before[plane][at..at + c] != after[plane][at..at + c]
    }

    #[test]
    fn blur_and_pixelate_change_the_object_and_nothing_else() {
        let mask = BitMask::from_fn(10, 8, 14, 12, |c, r| (c + r) % 7 != 0);
        for format in PixelFormat::ALL {
            for effect in [
                MaskEffect::Blur { radius: 3 },
                MaskEffect::Pixelate { block: 4 },
            ] {
                for invert in [false, true] {
                    let (before, after, strides) = run(format, &[&mask], effect, invert);
                    let mut changed_selected = 0;
                    for y in 0..30u32 {
                        for x in 0..40u32 {
                            let selected = mask.contains(x, y) != invert;
                            let c = changed(
                                format, &before, &after, &strides, 0, x as usize, y as usize,
                            );
                            assert!(
                                selected || !c,
                                "{format} {effect:?} invert={invert}: ({x}, {y}) changed"
                            );
                            changed_selected += usize::from(c);
                        }
                    }
                    assert!(
                        changed_selected > 50,
                        "{format} {effect:?}: {changed_selected}"
                    );
                    // Chroma: untouched where no pixel of the 2x2 block is selected.
                    for plane in 1..format.plane_count() {
                        for sy in 0..15u32 {
                            for sx in 0..20u32 {
                                let any = (0..2).any(|dy| {
                                    (0..2)
                                        .any(|dx| mask.contains(2 * sx + dx, 2 * sy + dy) != invert)
                                });
                                if !any {
                                    assert!(!changed(
                                        format,
                                        &before,
                                        &after,
                                        &strides,
                                        plane,
                                        sx as usize,
                                        sy as usize
                                    ));
                                }
                            }
                        }
                    }
                    // Stride padding is never written.
                    for (p, (b, a)) in before.iter().zip(&after).enumerate() {
                        let (row_bytes, rows) = format.plane_size(p, 40, 30).unwrap();
                        for r in 0..rows {
                            let pad = r * strides[p] + row_bytes..(r + 1) * strides[p];
                            assert_eq!(b[pad.clone()], a[pad]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_pixelated_block_holds_its_mean() {
        // A full 4x4 block at (8, 8) of a 2-colour pattern.
        let mask = BitMask::from_fn(8, 8, 4, 4, |_, _| true);
        let (before, after, strides) = run(
            PixelFormat::Rgb,
            &[&mask],
            MaskEffect::Pixelate { block: 4 },
            false,
        );
        let s = strides[0];
        let mean = |ch: usize| {
            let sum: u32 = (8..12)
                .flat_map(|y| (8..12).map(move |x| (x, y)))
                .map(|(x, y)| u32::from(before[0][y * s + x * 3 + ch]))
                .sum();
            ((sum + 8) / 16) as u8
        };
        for y in 8..12 {
            for x in 8..12 {
                for ch in 0..3 {
                    assert_eq!(after[0][y * s + x * 3 + ch], mean(ch));
                }
            }
        }
    }

    #[test]
    fn box_blurs_average_cut_windows() {
        let mut table = Vec::new();
        reciprocals(1, &mut table);
        let src = [0u8, 0, 90, 0, 0];
        let mut dst = [0u8; 5];
        blur_rows(&src, &mut dst, 5, 1, 1, &table);
        assert_eq!(dst, [0, 30, 30, 30, 0]);
        // Two-channel samples: each channel on its own.
        let src = [0u8, 200, 0, 200, 90, 200];
        let mut dst = [0u8; 6];
        blur_rows(&src, &mut dst, 3, 2, 1, &table);
        assert_eq!(dst, [0, 200, 30, 200, 45, 200]);
        // Columns: the edges average fewer rows.
        let src = [0u8, 0, 90, 0, 0];
        let mut dst = [0u8; 5];
        let mut sums = Vec::new();
        blur_columns(&src, &mut dst, 1, 5, 1, &table, &mut sums);
        assert_eq!(dst, [0, 30, 30, 30, 0]);
        reciprocals(2, &mut table);
        let flat = [60u8; 10];
        let mut dst = [0u8; 10];
        blur_columns(&flat, &mut dst, 2, 5, 2, &table, &mut sums);
        assert_eq!(dst, [60; 10]);
    }

    #[test]
    fn the_cut_out_writes_only_alpha() {
        let mask = BitMask::from_fn(3, 4, 5, 6, |c, _| c != 2);
        for format in PixelFormat::ALL {
            let (w, h) = (12, 10);
            let (before, strides) = planes(format, w, h);
            let mut after = before.clone();
            let result = {
                let refs: Vec<&mut [u8]> = after.iter_mut().map(|p| &mut p[..]).collect();
                let mut frame = FrameViewMut::new(format, w, h, refs, &strides).unwrap();
                MaskPainter::new().apply(&mut frame, &[&mask], MaskEffect::Alpha, false)
            };
            let Some(alpha) = format.packed_layout().and_then(|l| l.alpha) else {
                assert_eq!(result, Err(EffectError::NoAlpha(format)));
                assert_eq!(before, after, "{format}: a refused cut-out writes nothing");
                continue;
            };
            result.unwrap();
            for y in 0..h {
                for x in 0..w {
                    let at = y as usize * strides[0] + x as usize * 4;
                    let expected = if mask.contains(x, y) { 255 } else { 0 };
                    assert_eq!(after[0][at + alpha], expected, "{format} ({x}, {y})");
                    for ch in (0..4).filter(|&ch| ch != alpha) {
                        assert_eq!(after[0][at + ch], before[0][at + ch]);
                    }
                }
            }
        }
        let err = EffectError::NoAlpha(PixelFormat::I420).to_string();
        assert!(err.contains("RGBA"), "{err}");
    }
}
