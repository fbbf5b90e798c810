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
//! 2x2 pixels and is changed when any of them is selected. Effects go a
//! row at a time: a row's selection is worked out once, from the mask's
//! 64-pixel words or the map, and its selected runs are copied whole. The
//! scratch buffers live in [`MaskPainter`] and are reused from frame to
//! frame.

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
    /// Whether frame pixels `x0 .. x0 + n` of row `y` are selected, into
    /// `out` (cleared first).
    fn pixel_row(&self, y: u32, x0: u32, n: usize, out: &mut Vec<bool>) {
        out.clear();
        match self {
            Selection::Mask(mask) => {
                out.resize(n, false);
                let Some(row) = y.checked_sub(mask.y()).filter(|&r| r < mask.height()) else {
                    return;
                };
                // The columns the row and the mask's box share.
                let (mx0, mx1) = (mask.x(), mask.x().saturating_add(mask.width()));
                let from = x0.max(mx0);
                let to = (x0 as usize + n).min(mx1 as usize) as u32;
                if from >= to {
                    return;
                }
                let bit = row as usize * mask.width() as usize + (from - mx0) as usize;
                if let Some(part) = out.get_mut((from - x0) as usize..(to - x0) as usize) {
                    mask.unpack(bit, part);
                }
            }
            Selection::Outside { inside, width } => {
                let start = y as usize * *width as usize + x0 as usize;
                match inside.get(start..start + n) {
                    Some(row) => out.extend(row.iter().map(|&i| !i)),
                    None => out.resize(n, false),
                }
            }
        }
    }

    /// Whether samples `sx0 .. sx0 + n` of row `sy` of a plane with `sub`
    /// are selected, into `out`: a sample is when any of the frame pixels
    /// it covers is. `pixels` is scratch.
    fn sample_row(
        &self,
        sy: u32,
        sx0: u32,
        n: usize,
        (sub, frame): (u32, (u32, u32)),
        out: &mut Vec<bool>,
        pixels: &mut Vec<bool>,
    ) {
        if sub == 1 {
            self.pixel_row(sy, sx0, n, out);
            return;
        }
        out.clear();
        out.resize(n, false);
        let s = sub as usize;
        let x0 = sx0 * sub;
        let covered = (frame.0.saturating_sub(x0) as usize).min(n * s);
        for y in sy * sub..(sy * sub + sub).min(frame.1) {
            self.pixel_row(y, x0, covered, pixels);
            for (o, block) in out.iter_mut().zip(pixels.chunks(s)) {
                *o |= block.iter().any(|&p| p);
            }
        }
    }
}

/// Copies the runs of selected samples (`c` bytes each) of `values` into
/// `dst`, which start at the same sample.
fn copy_selected(dst: &mut [u8], values: &[u8], selected: &[bool], c: usize) {
    let mut x = 0;
    while let Some(skip) = selected
        .get(x..)
        .and_then(|rest| rest.iter().position(|&s| s))
    {
        x += skip;
        let len = selected
            .get(x..)
            .and_then(|rest| rest.iter().position(|&s| !s))
            .unwrap_or(selected.len() - x);
        let span = x * c..(x + len) * c;
        if let (Some(out), Some(value)) = (dst.get_mut(span.clone()), values.get(span)) {
            out.copy_from_slice(value);
        }
        x += len;
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
    rows: SelectedRow,
}

/// Writes effect results into the samples of one row that a selection
/// picks, with the row's selection as scratch.
#[derive(Debug, Default)]
struct SelectedRow {
    selected: Vec<bool>,
    pixels: Vec<bool>,
}

impl SelectedRow {
    /// Copies `values`, the new samples of row `y` of `plane` from column
    /// `x0` on (`n` of them), where `selection` picks them.
    fn write(
        &mut self,
        frame: &mut FrameViewMut<'_>,
        plane: &Plane,
        (y, x0, n): (u32, u32, usize),
        (selection, size): (Selection<'_>, (u32, u32)),
        values: &[u8],
    ) {
        let c = plane.channels;
        selection.sample_row(
            y,
            x0,
            n,
            (plane.sub, size),
            &mut self.selected,
            &mut self.pixels,
        );
        if let Some(dst) = frame
            .row_mut(plane.index, y as usize)
            .and_then(|row| row.get_mut(x0 as usize * c..))
        {
            copy_selected(dst, values, &self.selected, c);
        }
    }
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
            return cut_out(frame, masks, invert, &mut self.rows.pixels);
        }
        let mut inside = std::mem::take(&mut self.inside);
        let result = if invert {
            inside.clear();
            inside.resize(width as usize * height as usize, false);
            for mask in masks {
                mask_rows(
                    mask,
                    (width, height),
                    &mut self.rows.pixels,
                    |y, x0, set| {
                        let start = y as usize * width as usize + x0 as usize;
                        if let Some(row) = inside.get_mut(start..start + set.len()) {
                            for (i, &p) in row.iter_mut().zip(set) {
                                *i |= p;
                            }
                        }
                    },
                );
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
        let n = (area.x1 - area.x0) as usize;
        for y in area.y0..area.y1 {
            let blurred = (y - ext.y0) as usize * ew * c + (area.x0 - ext.x0) as usize * c;
            let values = self.region.get(blurred..).unwrap_or_default();
            self.rows
                .write(frame, plane, (y, area.x0, n), (selection, size), values);
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
        let b = (block / plane.sub).max(1) as usize;
        let c = plane.channels;
        // Whole blocks of the grid that meet the area, cut at the plane's
        // right edge.
        let bx0 = (area.x0 as usize / b) * b;
        let bx1 = (area.x1 as usize)
            .div_ceil(b)
            .saturating_mul(b)
            .min(plane.width as usize);
        let n = (area.x1 - area.x0) as usize;
        let mut by = (area.y0 / b as u32) * b as u32;
        while by < area.y1 {
            let rows = by..(by + b as u32).min(plane.height);
            // Per block of the band: each channel's sum.
            self.sums.clear();
            self.sums.resize((bx1 - bx0).div_ceil(b) * c, 0);
            for y in rows.clone() {
                let Some(part) = frame
                    .row_mut(plane.index, y as usize)
                    .and_then(|row| row.get(bx0 * c..bx1 * c))
                else {
                    return;
                };
                for (sums, samples) in self.sums.chunks_exact_mut(c).zip(part.chunks(b * c)) {
                    add_samples(sums, samples);
                }
            }
            // The band's row of means, from the area's first sample on.
            self.region.clear();
            let height = rows.len() as u32;
            for (k, sums) in self.sums.chunks_exact(c).enumerate() {
                let x0 = bx0 + k * b;
                let width = (x0 + b).min(bx1) - x0;
                let count = (width as u32 * height).max(1);
                let mut means = [0u8; 4];
                for (m, &sum) in means.iter_mut().zip(sums) {
                    *m = ((sum + count / 2) / count) as u8;
                }
                // The block's samples inside the area.
                let from = x0.max(area.x0 as usize);
                let to = (x0 + width).min(area.x1 as usize);
                for _ in from..to {
                    self.region
                        .extend_from_slice(means.get(..c).unwrap_or_default());
                }
            }
            for y in rows.clone().filter(|y| (area.y0..area.y1).contains(y)) {
                self.rows.write(
                    frame,
                    plane,
                    (y, area.x0, n),
                    (selection, size),
                    &self.region,
                );
            }
            by = rows.end;
        }
    }
}

/// Adds each channel of `samples` (`sums.len()` bytes each) to its sum.
fn add_samples(sums: &mut [u32], samples: &[u8]) {
    fn of<const C: usize>(sums: &mut [u32], samples: &[u8]) {
        let mut acc = [0u32; C];
        for sample in samples.chunks_exact(C) {
            for (a, &v) in acc.iter_mut().zip(sample) {
                *a += u32::from(v);
            }
        }
        for (sum, a) in sums.iter_mut().zip(acc) {
            *sum += a;
        }
    }
    match sums.len() {
        1 => of::<1>(sums, samples),
        2 => of::<2>(sums, samples),
        3 => of::<3>(sums, samples),
        4 => of::<4>(sums, samples),
        _ => (),
    }
}

/// Calls `each(y, x0, set)` for each row `y` of `mask` inside a `width x
/// height` frame, with which of its pixels from column `x0` on are set.
/// `pixels` is scratch.
fn mask_rows(
    mask: &BitMask,
    (width, height): (u32, u32),
    pixels: &mut Vec<bool>,
    mut each: impl FnMut(u32, u32, &[bool]),
) {
    let x1 = mask.x().saturating_add(mask.width()).min(width);
    let y1 = mask.y().saturating_add(mask.height()).min(height);
    let n = x1.saturating_sub(mask.x()) as usize;
    for y in mask.y()..y1 {
        Selection::Mask(mask).pixel_row(y, mask.x(), n, pixels);
        each(y, mask.x(), pixels);
    }
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

/// Windows shorter than this keep `sum * reciprocal + 2^23` under 2^32
/// (a sum is at most 255 n and the reciprocal at most 2^24 / n + 1), and
/// the mean under 256, so [`narrow_mean`] gives [`mean`]'s result in u32,
/// which vectorises.
const U32_WINDOWS: usize = 32896;

#[inline]
fn narrow_mean(sum: u32, reciprocal: u32) -> u8 {
    ((sum * reciprocal + (1 << 23)) >> 24) as u8
}

/// How the sums of windows of one size become means.
#[derive(Debug, Clone, Copy)]
enum Scale {
    Narrow(u32),
    Wide(u64),
}

impl Scale {
    fn of(count: usize, table: &[u64]) -> Self {
        let reciprocal = table.get(count).copied().unwrap_or(0);
        match u32::try_from(reciprocal) {
            Ok(narrow) if count < U32_WINDOWS => Scale::Narrow(narrow),
            _ => Scale::Wide(reciprocal),
        }
    }

    #[inline]
    fn mean(self, sum: u32) -> u8 {
        match self {
            Scale::Narrow(reciprocal) => narrow_mean(sum, reciprocal),
            Scale::Wide(reciprocal) => mean(sum, reciprocal),
        }
    }
}

/// [`mean`] of each of `sums` over windows of `count` samples.
fn means(out: &mut [u8], sums: &[u32], count: usize, table: &[u64]) {
    // One loop per arithmetic, so that the narrow one vectorises.
    match Scale::of(count, table) {
        Scale::Narrow(reciprocal) => {
            for (o, &sum) in out.iter_mut().zip(sums) {
                *o = narrow_mean(sum, reciprocal);
            }
        }
        Scale::Wide(reciprocal) => {
            for (o, &sum) in out.iter_mut().zip(sums) {
                *o = mean(sum, reciprocal);
            }
        }
    }
}

/// A box blur of radius `r` along the rows of a `w x h` region of `c`-byte
/// samples. Windows are cut at the region's edges and average what they
/// hold.
fn blur_rows(src: &[u8], dst: &mut [u8], w: usize, c: usize, r: usize, table: &[u64]) {
    // One loop per sample size, so that a sample's channels are a fixed
    // array the compiler keeps in registers.
    match c {
        1 => blur_rows_of::<1>(src, dst, w, r, table),
        2 => blur_rows_of::<2>(src, dst, w, r, table),
        3 => blur_rows_of::<3>(src, dst, w, r, table),
        4 => blur_rows_of::<4>(src, dst, w, r, table),
        _ => (),
    }
}

fn blur_rows_of<const C: usize>(src: &[u8], dst: &mut [u8], w: usize, r: usize, table: &[u64]) {
    let line = w * C;
    if line == 0 {
        return;
    }
    // A window reaching past both ends of the row holds the whole row
    // whatever the radius.
    let r = r.min(w - 1);
    let add = |sum: &mut [u32; C], sample: &[u8]| {
        for (acc, &v) in sum.iter_mut().zip(sample) {
            *acc += u32::from(v);
        }
    };
    let sub = |sum: &mut [u32; C], sample: &[u8]| {
        for (acc, &v) in sum.iter_mut().zip(sample) {
            *acc -= u32::from(v);
        }
    };
    let put = |out: &mut [u8], sum: &[u32; C], count: usize| {
        let scale = Scale::of(count, table);
        for (o, &acc) in out.iter_mut().zip(sum) {
            *o = scale.mean(acc);
        }
    };
    // Samples r .. w - r - 1: windows inside the row with a sample after
    // them to take in.
    let inner = w.saturating_sub(2 * r + 1);
    for (s, d) in src.chunks_exact(line).zip(dst.chunks_exact_mut(line)) {
        let mut sum = [0u32; C];
        for sample in s.chunks_exact(C).take(r + 1) {
            add(&mut sum, sample);
        }
        let mut outs = d.chunks_exact_mut(C);
        // The left end: windows cut at 0.
        for (x, out) in outs.by_ref().take(r).enumerate() {
            put(out, &sum, (x + r).min(w - 1) + 1);
            if let Some(incoming) = s.get((x + r + 1) * C..(x + r + 2) * C) {
                add(&mut sum, incoming);
            }
        }
        // Whole windows: one sample in, one out, no bounds to test, and
        // one reciprocal.
        let incoming = s.get((2 * r + 1) * C..).unwrap_or_default().chunks_exact(C);
        let windows = outs
            .by_ref()
            .take(inner)
            .zip(incoming.zip(s.chunks_exact(C)));
        match Scale::of(2 * r + 1, table) {
            Scale::Narrow(reciprocal) => {
                slide(windows, &mut sum, |acc| narrow_mean(acc, reciprocal))
            }
            Scale::Wide(reciprocal) => slide(windows, &mut sum, |acc| mean(acc, reciprocal)),
        }
        // The right end: windows cut at w - 1, nothing more to take in.
        for (x, out) in (r + inner..).zip(outs) {
            put(out, &sum, w - x.saturating_sub(r));
            if let Some(outgoing) = s.get((x - r) * C..(x - r + 1) * C) {
                sub(&mut sum, outgoing);
            }
        }
    }
}

/// Writes the window's means and slides it on by one sample, for each
/// output sample with the sample coming in and the one going out.
fn slide<'a, const C: usize>(
    windows: impl Iterator<Item = (&'a mut [u8], (&'a [u8], &'a [u8]))>,
    sum: &mut [u32; C],
    scale: impl Fn(u32) -> u8,
) {
    for (out, (incoming, outgoing)) in windows {
        for (o, &acc) in out.iter_mut().zip(sum.iter()) {
            *o = scale(acc);
        }
        for ((acc, &i), &o) in sum.iter_mut().zip(incoming).zip(outgoing) {
            *acc = *acc + u32::from(i) - u32::from(o);
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
        means(out, sums, count, table);
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
    pixels: &mut Vec<bool>,
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
        mask_rows(mask, (width, height), pixels, |y, x0, set| {
            let Some(row) = frame
                .row_mut(0, y as usize)
                .and_then(|row| row.get_mut(x0 as usize * bpp..))
            else {
                return;
            };
            for (pixel, _) in row.chunks_exact_mut(bpp).zip(set).filter(|(_, s)| **s) {
                if let Some(a) = pixel.get_mut(alpha) {
                    *a = inside;
                }
            }
        });
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

    /// One box-blur pass by its definition: each sample the [`mean`] of
    /// the samples of its channel within `r` of it along the rows (or the
    /// columns) of a `w x h` region, the window cut at the region's edges.
    fn window_means(
        src: &[u8],
        (w, h, c): (usize, usize, usize),
        r: usize,
        table: &[u64],
        along_rows: bool,
    ) -> Vec<u8> {
        let mut out = vec![0u8; src.len()];
        for y in 0..h {
            for x in 0..w {
                let (at, len) = if along_rows { (x, w) } else { (y, h) };
                let (lo, hi) = (at.saturating_sub(r), (at + r).min(len - 1));
                for ch in 0..c {
                    let sum: u32 = (lo..=hi)
                        .map(|p| {
                            let (px, py) = if along_rows { (p, y) } else { (x, p) };
                            u32::from(src[(py * w + px) * c + ch])
                        })
                        .sum();
                    out[(y * w + x) * c + ch] = mean(sum, table[hi - lo + 1]);
                }
            }
        }
        out
    }

    #[test]
    fn blur_passes_equal_their_definition() {
        let mut below = crate::segment::testing::random_below(3);
        let mut next = move |n: usize| below(n as u32) as usize;
        let (mut table, mut sums) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            let (w, h, c) = (1 + next(40), 1 + next(12), 1 + next(4));
            let reach = if next(4) == 0 { 60 } else { 6 };
            let r = 1 + next(reach);
            // Mostly extremes, so sums reach 255 per sample.
            let src: Vec<u8> = (0..w * h * c)
                .map(|_| match next(3) {
                    0 => 0,
                    1 => 255,
                    _ => next(256) as u8,
                })
                .collect();
            reciprocals(r, &mut table);
            let mut out = vec![0u8; src.len()];
            blur_rows(&src, &mut out, w, c, r, &table);
            let rows = window_means(&src, (w, h, c), r, &table, true);
            assert_eq!(out, rows, "rows {w}x{h}x{c}, r {r}");
            blur_columns(&src, &mut out, w * c, h, r, &table, &mut sums);
            let columns = window_means(&src, (w, h, c), r, &table, false);
            assert_eq!(out, columns, "columns {w}x{h}x{c}, r {r}");
        }
        // Windows of U32_WINDOWS samples and more take the u64 means.
        for count in [U32_WINDOWS - 1, U32_WINDOWS, 70_000] {
            reciprocals(count / 2, &mut table);
            let sums = [0, 1, count as u32 * 128, count as u32 * 255];
            let mut out = [0u8; 4];
            means(&mut out, &sums, count, &table);
            let expected = sums.map(|sum| mean(sum, table[count]));
            assert_eq!(out, expected, "{count}");
            assert_eq!(out[3], 255);
        }
    }

    /// `apply` by its definition, sample by sample: per plane, each mask
    /// in turn (or, inverted, the outside of all at once) blurred from its
    /// box plus the blur's reach with the passes by their definition, or pixelated
    /// from whole grid blocks, written where any pixel a sample covers is
    /// selected.
    fn reference_apply(
        format: PixelFormat,
        (w, h): (u32, u32),
        before: &[Vec<u8>],
        strides: &[usize],
        masks: &[&BitMask],
        effect: MaskEffect,
        invert: bool,
    ) -> Vec<Vec<u8>> {
        let mut out = before.to_vec();
        let passes: Vec<(Vec<&BitMask>, Option<&BitMask>)> = if invert {
            vec![(masks.to_vec(), None)]
        } else {
            masks.iter().map(|&m| (vec![m], Some(m))).collect()
        };
        for plane in super::planes(format, w, h) {
            let (sub, c, stride) = (plane.sub, plane.channels, strides[plane.index]);
            for (selecting, bounds) in &passes {
                let selected = |sx: u32, sy: u32| {
                    (0..sub).any(|dy| {
                        (0..sub).any(|dx| {
                            let (x, y) = (sx * sub + dx, sy * sub + dy);
                            x < w && y < h && selecting.iter().any(|m| m.contains(x, y)) != invert
                        })
                    })
                };
                let (x0, y0, x1, y1) = match bounds {
                    Some(m) => (
                        m.x() / sub,
                        m.y() / sub,
                        (m.x() + m.width()).min(w).div_ceil(sub).min(plane.width),
                        (m.y() + m.height()).min(h).div_ceil(sub).min(plane.height),
                    ),
                    None => (0, 0, plane.width, plane.height),
                };
                if x0 >= x1 || y0 >= y1 {
                    continue;
                }
                let snapshot = out[plane.index].clone();
                let at = |sx: u32, sy: u32| sy as usize * stride + sx as usize * c;
                let mut write = |sx: u32, sy: u32, value: &[u8]| {
                    let i = at(sx, sy);
                    out[plane.index][i..i + c].copy_from_slice(value);
                };
                match effect {
                    MaskEffect::Blur { radius } => {
                        let r = (radius / sub).max(1);
                        let (ex0, ey0) = (x0.saturating_sub(r), y0.saturating_sub(r));
                        let (ex1, ey1) = ((x1 + r).min(plane.width), (y1 + r).min(plane.height));
                        let (ew, eh) = ((ex1 - ex0) as usize, (ey1 - ey0) as usize);
                        let mut region: Vec<u8> = (ey0..ey1)
                            .flat_map(|sy| snapshot[at(ex0, sy)..at(ex1, sy)].to_vec())
                            .collect();
                        let mut table = Vec::new();
                        reciprocals(r as usize, &mut table);
                        for _ in 0..2 {
                            let rows = window_means(&region, (ew, eh, c), r as usize, &table, true);
                            region = window_means(&rows, (ew, eh, c), r as usize, &table, false);
                        }
                        for sy in y0..y1 {
                            for sx in (x0..x1).filter(|&sx| selected(sx, sy)) {
                                let i = (sy - ey0) as usize * ew * c + (sx - ex0) as usize * c;
                                write(sx, sy, &region[i..i + c]);
                            }
                        }
                    }
                    MaskEffect::Pixelate { block } => {
                        let b = (block / sub).max(1);
                        for sy in y0..y1 {
                            for sx in (x0..x1).filter(|&sx| selected(sx, sy)) {
                                let (bx, by) = (sx / b * b, sy / b * b);
                                let cells: Vec<(u32, u32)> = (by..(by + b).min(plane.height))
                                    .flat_map(|y| {
                                        (bx..(bx + b).min(plane.width)).map(move |x| (x, y))
                                    })
                                    .collect();
                                let n = cells.len() as u32;
                                let mean: Vec<u8> = (0..c)
                                    .map(|ch| {
                                        let sum: u32 = cells
                                            .iter()
                                            .map(|&(x, y)| u32::from(snapshot[at(x, y) + ch]))
                                            .sum();
                                        ((sum + n / 2) / n) as u8
                                    })
                                    .collect();
                                write(sx, sy, &mean);
                            }
                        }
                    }
                    MaskEffect::Alpha => (),
                }
            }
        }
        out
    }

    #[test]
    fn blur_and_pixelate_equal_their_definition() {
        let mut next = crate::segment::testing::random_below(5);
        for (w, h) in [(37, 23), (40, 30), (1, 1), (70, 9), (2, 17)] {
            for format in PixelFormat::ALL {
                let (mut before, strides) = planes(format, w, h);
                for plane in &mut before {
                    for v in plane.iter_mut() {
                        *v = next(256) as u8;
                    }
                }
                // Masks inside, across the edges and overlapping each other;
                // one of them wider than 64 pixels where the frame is.
                let masks: Vec<BitMask> = (0..3)
                    .map(|k| {
                        let (mw, mh) = (1 + next(if k == 0 { 80 } else { 20 }), 1 + next(15));
                        let (x, y) = (next(w + 5), next(h + 5));
                        let density = 3 + next(7);
                        BitMask::from_fn(x, y, mw, mh, |_, _| next(10) < density)
                    })
                    .collect();
                let masks: Vec<&BitMask> = masks.iter().collect();
                for effect in [
                    MaskEffect::Blur { radius: 1 },
                    MaskEffect::Blur { radius: 5 },
                    MaskEffect::Blur { radius: 40 },
                    MaskEffect::Pixelate { block: 1 },
                    MaskEffect::Pixelate { block: 3 },
                    MaskEffect::Pixelate { block: 8 },
                ] {
                    for invert in [false, true] {
                        let mut after = before.clone();
                        {
                            let refs: Vec<&mut [u8]> =
                                after.iter_mut().map(|p| &mut p[..]).collect();
                            let mut frame =
                                FrameViewMut::new(format, w, h, refs, &strides).unwrap();
                            MaskPainter::new()
                                .apply(&mut frame, &masks, effect, invert)
                                .unwrap();
                        }
                        let expected = reference_apply(
                            format,
                            (w, h),
                            &before,
                            &strides,
                            &masks,
                            effect,
                            invert,
                        );
                        assert!(
                            after == expected,
                            "{format} {w}x{h} {effect:?} invert={invert}"
                        );
                    }
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
        // Two masks that overlap, one across the frame's right and bottom
        // edges and wider than a 64-pixel word.
        let a = BitMask::from_fn(3, 4, 5, 6, |c, _| c != 2);
        let b = BitMask::from_fn(6, 7, 70, 9, |c, r| (c + r) % 3 != 0);
        for format in PixelFormat::ALL {
            for invert in [false, true] {
                let (w, h) = (72, 12);
                let (before, strides) = planes(format, w, h);
                let mut after = before.clone();
                let result = {
                    let refs: Vec<&mut [u8]> = after.iter_mut().map(|p| &mut p[..]).collect();
                    let mut frame = FrameViewMut::new(format, w, h, refs, &strides).unwrap();
                    MaskPainter::new().apply(&mut frame, &[&a, &b], MaskEffect::Alpha, invert)
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
                        let selected = a.contains(x, y) || b.contains(x, y);
                        let expected = if selected != invert { 255 } else { 0 };
                        assert_eq!(after[0][at + alpha], expected, "{format} ({x}, {y})");
                        for ch in (0..4).filter(|&ch| ch != alpha) {
                            assert_eq!(after[0][at + ch], before[0][at + ch]);
                        }
                    }
                }
                // Stride padding is never written.
                let (row_bytes, rows) = format.plane_size(0, w, h).unwrap();
                for r in 0..rows {
                    let pad = r * strides[0] + row_bytes..(r + 1) * strides[0];
                    assert_eq!(before[0][pad.clone()], after[0][pad]);
                }
            }
        }
        let err = EffectError::NoAlpha(PixelFormat::I420).to_string();
        assert!(err.contains("RGBA"), "{err}");
    }
}
