// SPDX-License-Identifier: Apache-2.0
//! From decoder logits to an object: mask selection, SAM's upscaling
//! evaluated only where the object is, threshold, box, area and stability.
//!
//! SAM upscales low-res logits (`4h x 4w`) bilinearly to `S x S`
//! (`align_corners=False`, half-pixel centres, no antialias, as
//! `torch.nn.functional.interpolate`), crops the un-padded `resized` part,
//! and upscales that bilinearly to the frame size. Both steps are separable,
//! so a frame pixel depends on at most 2x2 model-grid values, each on at most
//! 2x2 low-res cells. [`MaskUpscaler`] evaluates that composition only for
//! the frame pixels whose low-res neighbourhood holds a logit above
//! `threshold - STABILITY_OFFSET`: every other pixel is a convex combination
//! of lower values, so it is below the threshold and below both stability
//! thresholds. Results are identical to the full two-step upscaling, without
//! ever holding a frame-sized float mask.

use std::fmt;
use std::str::FromStr;

use bitvec::prelude::{BitSlice, Msb0};

use crate::segment::image::preprocess::Geometry;
use crate::segment::masks::mask::{BitMask, BitWriter};

/// SAM's default mask threshold (on logits).
pub const DEFAULT_MASK_THRESHOLD: f32 = 0.0;
/// SAM's stability-score offset.
pub const STABILITY_OFFSET: f32 = 1.0;
/// Low-res cells added around the object's cells before mapping the region
/// to the frame (guards against rounding at the region's edge).
const REGION_MARGIN: usize = 2;

/// Which of a prompt's output masks to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskSelection {
    /// TinySAM's rule: the best multimask output (1..) by predicted IoU,
    /// for every prompt.
    TinySam,
    /// SAM's rule: the best multimask output for a single point without a
    /// box; the single-mask output (0) otherwise.
    Sam,
    /// Always this output index.
    Output(usize),
}

impl MaskSelection {
    /// The rule named in `model.json` (`"tinysam"` or `"sam"`).
    pub fn from_rule_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "tinysam" => Some(MaskSelection::TinySam),
            "sam" => Some(MaskSelection::Sam),
            _ => None,
        }
    }

    /// The index to keep among outputs with predicted IoUs `ious`.
    ///
    /// Output 0 is the single-mask output and 1.. the multimask outputs, as
    /// in SAM; a model with one output always gives 0. `None` when there are
    /// no outputs or a fixed index does not exist.
    pub fn choose(self, ious: &[f32], single_point: bool) -> Option<usize> {
        let count = ious.len();
        if count <= 1 {
            return (count == 1 && !matches!(self, MaskSelection::Output(i) if i > 0)).then_some(0);
        }
        let best_multimask = || {
            (1..count).max_by(|&a, &b| {
                let (x, y) = (ious.get(a).copied(), ious.get(b).copied());
                // Ties keep the lower index, as argmax does; NaN loses.
                x.partial_cmp(&y)
                    .unwrap_or(if x.is_some_and(f32::is_nan) {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    })
                    .then(b.cmp(&a))
            })
        };
        match self {
            MaskSelection::TinySam => best_multimask(),
            MaskSelection::Sam if single_point => best_multimask(),
            MaskSelection::Sam => Some(0),
            MaskSelection::Output(i) => (i < count).then_some(i),
        }
    }
}

impl fmt::Display for MaskSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskSelection::TinySam => f.write_str("tinysam"),
            MaskSelection::Sam => f.write_str("sam"),
            MaskSelection::Output(i) => write!(f, "{i}"),
        }
    }
}

impl FromStr for MaskSelection {
    type Err = String;

    /// `tinysam`, `sam`, or an output index such as `0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rule) = Self::from_rule_name(s) {
            return Ok(rule);
        }
        s.trim()
            .parse::<usize>()
            .map(MaskSelection::Output)
            .map_err(|_| {
                format!(
                    "unknown mask selection `{s}` (expected `tinysam`, `sam` or an output index)"
                )
            })
    }
}

/// One object's mask at frame resolution, with its statistics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MaskResult {
    /// The mask cropped to the tight box of its pixels (empty when none).
    pub mask: BitMask,
    /// Pixels above the threshold.
    pub area: u64,
    /// SAM's stability score: pixels above `t + 1` / pixels above `t - 1`
    /// (0 when none is above `t - 1`).
    pub stability: f32,
}

/// Why logits could not be upscaled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpscaleError {
    #[error("low-res logits hold {len} values, not {height}x{width}")]
    LogitsSize {
        len: usize,
        height: usize,
        width: usize,
    },
    #[error("resized size {resized_width}x{resized_height} exceeds the {input_size} model input")]
    Geometry {
        resized_width: u32,
        resized_height: u32,
        input_size: u32,
    },
}

/// One output sample of a 1-D linear interpolation: two source indices and
/// their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

/// The taps of `torch.nn.functional.interpolate(mode="bilinear",
/// align_corners=False)` along one axis, in its float arithmetic.
fn linear_taps(in_size: usize, out_size: usize) -> Vec<Tap> {
    if in_size == out_size {
        return (0..out_size)
            .map(|i| Tap {
                i0: i,
                i1: i,
                w0: 1.0,
                w1: 0.0,
            })
            .collect();
    }
    let scale = in_size as f32 / out_size as f32;
    let last = in_size.saturating_sub(1);
    (0..out_size)
        .map(|i| {
            let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(last);
            let lambda = (src - i0 as f32).clamp(0.0, 1.0);
            Tap {
                i0,
                i1: if i0 < last { i0 + 1 } else { i0 },
                w0: 1.0 - lambda,
                w1: lambda,
            }
        })
        .collect()
}

/// The two interpolation steps along one axis.
#[derive(Debug, Clone, PartialEq)]
struct AxisTaps {
    /// (frame, resized, input size, low-res) sizes these taps are for.
    key: (usize, usize, usize, usize),
    /// Frame index -> model-grid indices (crop: model index = resized index).
    frame: Vec<Tap>,
    /// Model-grid index -> low-res indices.
    model: Vec<Tap>,
}

impl AxisTaps {
    fn new(key: (usize, usize, usize, usize)) -> Self {
        let (frame, resized, input, low) = key;
        AxisTaps {
            key,
            frame: linear_taps(resized, frame),
            model: linear_taps(low, input),
        }
    }

    /// Lowest and highest low-res index frame index `f` depends on.
    fn low_res_span(&self, f: usize) -> Option<(usize, usize)> {
        let t = self.frame.get(f)?;
        Some((self.model.get(t.i0)?.i0, self.model.get(t.i1)?.i1))
    }

    /// Highest low-res index any frame index depends on.
    fn last_low_res(&self) -> Option<usize> {
        self.low_res_span(self.frame.len().checked_sub(1)?)
            .map(|(_, hi)| hi)
    }

    /// Frame indices whose low-res span meets `lo..=hi`.
    fn frame_range(&self, lo: usize, hi: usize) -> Option<(usize, usize)> {
        let meets = |f: usize| {
            self.low_res_span(f)
                .is_some_and(|(a, b)| b >= lo && a <= hi)
        };
        let first = (0..self.frame.len()).find(|&f| meets(f))?;
        let last = (first..self.frame.len()).rev().find(|&f| meets(f))?;
        Some((first, last))
    }
}

/// Frame columns decided together: 8 bytes of a region row's bits.
const RUN: usize = 64;

/// Relative slack on the convexity bound when a run is decided from its
/// cells alone. Each of the four interpolations rounds, and a tap's weights
/// sum to 1 only to within a float's precision, so a computed value can lie
/// outside its cells' range by a few ulps of their magnitude.
const ROUNDING_SLACK: f32 = 1e-5;

/// What the low-res cells under a run of frame pixels decide about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Every pixel is at most `threshold - STABILITY_OFFSET`.
    Below,
    /// Every pixel is above `threshold + STABILITY_OFFSET`.
    Above,
    /// The pixels must be computed.
    Mixed,
}

impl Run {
    /// From the lowest and highest cell (NaN when a cell is NaN).
    fn decide(lowest: f32, highest: f32, floor: f32, high: f32) -> Run {
        let slack = ROUNDING_SLACK * (1.0 + lowest.abs().max(highest.abs()));
        // NaN and infinite cells fail both tests and are computed.
        if highest + slack <= floor {
            Run::Below
        } else if lowest - slack > high {
            Run::Above
        } else {
            Run::Mixed
        }
    }
}

/// Writes `values > threshold` MSB-first into `bytes` and counts the values
/// above `floor` and above `high`: (above `high`, above `floor`).
fn pack_bits(
    values: &[f32],
    bytes: &mut [u8],
    threshold: f32,
    (floor, high): (f32, f32),
) -> (u64, u64) {
    let (mut above_high, mut above_floor) = (0u32, 0u32);
    let mut pack = |chunk: &[f32]| {
        let mut bits = 0u8;
        for (bit, &v) in chunk.iter().enumerate() {
            bits |= u8::from(v > threshold) << (7 - bit);
            above_high += u32::from(v > high);
            above_floor += u32::from(v > floor);
        }
        bits
    };
    let whole = values.chunks_exact(8);
    let rest = whole.remainder();
    let mut out = bytes.iter_mut();
    // Whole bytes first: chunks of a fixed 8 let the compiler unroll.
    for (chunk, byte) in whole.zip(out.by_ref()) {
        *byte = pack(chunk);
    }
    if let (false, Some(byte)) = (rest.is_empty(), out.next()) {
        *byte = pack(rest);
    }
    (u64::from(above_high), u64::from(above_floor))
}

/// The lowest and highest of the cells in rows `ra..=rb` and columns
/// `ca..=cb`; both NaN when one is NaN.
fn cell_extremes(
    logits: &[f32],
    width: usize,
    (ra, rb): (usize, usize),
    (ca, cb): (usize, usize),
) -> (f32, f32) {
    let (mut lowest, mut highest, mut nan) = (f32::INFINITY, f32::NEG_INFINITY, false);
    for r in ra..=rb {
        for &v in logits.get(r * width + ca..=r * width + cb).unwrap_or(&[]) {
            lowest = lowest.min(v);
            highest = highest.max(v);
            nan |= v.is_nan();
        }
    }
    if nan {
        (f32::NAN, f32::NAN)
    } else {
        (lowest, highest)
    }
}

/// Model-grid rows at the region's frame columns, filled run by run on
/// demand; a frame row needs two, and consecutive frame rows mostly share
/// them.
#[derive(Debug, Default)]
struct RowPair {
    keys: [Option<usize>; 2],
    rows: [Vec<f32>; 2],
    /// Per slot, which runs of its row hold values.
    filled: [Vec<bool>; 2],
}

impl RowPair {
    /// Forget every row; rows are now `len` values in `runs` runs.
    fn reset(&mut self, len: usize, runs: usize) {
        self.keys = [None, None];
        // Values are written before they are read, so only the flags clear.
        for (row, filled) in self.rows.iter_mut().zip(&mut self.filled) {
            row.resize(len, 0.0);
            filled.clear();
            filled.resize(runs, false);
        }
    }

    /// The slots of model rows `a0` and `a1` (the same slot when equal).
    fn slots(&mut self, a0: usize, a1: usize) -> (usize, usize) {
        let slot0 = self.slot(a0, None);
        (slot0, self.slot(a1, Some(slot0)))
    }

    fn slot(&mut self, a: usize, keep: Option<usize>) -> usize {
        if let Some(s) = self.keys.iter().position(|&k| k == Some(a)) {
            return s;
        }
        let s = if keep == Some(0) { 1 } else { 0 };
        if let (Some(key), Some(filled)) = (self.keys.get_mut(s), self.filled.get_mut(s)) {
            *key = Some(a);
            filled.fill(false);
        }
        s
    }

    /// Run `run` (region columns `cols`) of the row in `slot`, filled by
    /// `fill` the first time.
    fn ensure(
        &mut self,
        slot: usize,
        run: usize,
        cols: std::ops::Range<usize>,
        fill: impl FnOnce(usize, &mut [f32]),
    ) {
        let (Some(key), Some(row), Some(filled)) = (
            self.keys.get(slot).copied().flatten(),
            self.rows.get_mut(slot),
            self.filled.get_mut(slot),
        ) else {
            return;
        };
        if let (Some(done), Some(out)) = (filled.get_mut(run), row.get_mut(cols))
            && !*done
        {
            fill(key, out);
            *done = true;
        }
    }

    fn row(&self, slot: usize) -> &[f32] {
        self.rows.get(slot).map_or(&[], Vec::as_slice)
    }
}

/// Low-res rows interpolated to a region's model-grid columns (step 1's
/// horizontal half), each filled the first time it is asked for.
#[derive(Debug, Default)]
struct LowRows {
    values: Vec<f32>,
    filled: Vec<bool>,
    /// First low-res row held.
    first: usize,
    /// Values per row: the region's model-grid columns.
    len: usize,
}

impl LowRows {
    /// Holds `rows` rows from low-res row `first`, `len` values each, none
    /// filled yet.
    fn reset(&mut self, first: usize, rows: usize, len: usize) {
        (self.first, self.len) = (first, len);
        // Values are written before they are read, so only the flags clear.
        self.values.resize(rows * len, 0.0);
        self.filled.clear();
        self.filled.resize(rows, false);
    }

    fn range(&self, r: usize) -> std::ops::Range<usize> {
        let i = r.saturating_sub(self.first);
        i * self.len..(i + 1) * self.len
    }

    /// Low-res rows `r0` and `r1` of `logits` (`width` per row) at the model
    /// columns whose taps are `model_cols`.
    fn pair(
        &mut self,
        (r0, r1): (usize, usize),
        logits: &[f32],
        width: usize,
        model_cols: &[Tap],
    ) -> (&[f32], &[f32]) {
        for r in [r0, r1] {
            let range = self.range(r);
            let (Some(done), Some(out), Some(cells)) = (
                self.filled.get_mut(r.saturating_sub(self.first)),
                self.values.get_mut(range),
                logits.get(r * width..(r + 1) * width),
            ) else {
                continue;
            };
            if !*done {
                for (o, tc) in out.iter_mut().zip(model_cols) {
                    *o = get(cells, tc.i0) * tc.w0 + get(cells, tc.i1) * tc.w1;
                }
                *done = true;
            }
        }
        let row = |r| self.values.get(self.range(r)).unwrap_or(&[]);
        (row(r0), row(r1))
    }
}

/// Upscales low-res logits to frame masks, region by region; keeps its
/// interpolation tables and buffers across objects and frames.
///
/// The region is walked in runs of [`RUN`] frame columns per row. A run
/// whose low-res cells all lie below `threshold - STABILITY_OFFSET` or all
/// above `threshold + STABILITY_OFFSET` (by [`ROUNDING_SLACK`]) is decided
/// without interpolating, since every pixel is a convex combination of its
/// cells; so only runs along an object's edge cost interpolation. Each value
/// that is computed is computed in the same float operations as the full
/// two-step upscaling.
#[derive(Debug, Default)]
pub struct MaskUpscaler {
    rows: Option<AxisTaps>,
    cols: Option<AxisTaps>,
    low_rows: LowRows,
    model_rows: RowPair,
    model_row: Vec<f32>,
    line: Vec<f32>,
    /// Per run: its first and last low-res column.
    run_cells: Vec<(usize, usize)>,
    /// Per run: the lowest and highest of its cells under the current frame
    /// row.
    run_extremes: Vec<(f32, f32)>,
}

impl MaskUpscaler {
    pub fn new() -> Self {
        Self::default()
    }

    fn taps(slot: &mut Option<AxisTaps>, key: (usize, usize, usize, usize)) -> &AxisTaps {
        if slot.as_ref().is_none_or(|t| t.key != key) {
            *slot = Some(AxisTaps::new(key));
        }
        slot.get_or_insert_with(|| AxisTaps::new(key))
    }

    /// The frame mask of `logits` (`height` x `width` low-res values, row
    /// major) for a frame of `geometry`, thresholded at `threshold`.
    pub fn upscale(
        &mut self,
        logits: &[f32],
        height: usize,
        width: usize,
        geometry: &Geometry,
        threshold: f32,
    ) -> Result<MaskResult, UpscaleError> {
        if height.checked_mul(width) != Some(logits.len()) || logits.is_empty() {
            return Err(UpscaleError::LogitsSize {
                len: logits.len(),
                height,
                width,
            });
        }
        if geometry.resized_width > geometry.input_size
            || geometry.resized_height > geometry.input_size
        {
            return Err(UpscaleError::Geometry {
                resized_width: geometry.resized_width,
                resized_height: geometry.resized_height,
                input_size: geometry.input_size,
            });
        }
        let s = geometry.input_size as usize;
        Self::taps(
            &mut self.rows,
            (
                geometry.frame_height as usize,
                geometry.resized_height as usize,
                s,
                height,
            ),
        );
        Self::taps(
            &mut self.cols,
            (
                geometry.frame_width as usize,
                geometry.resized_width as usize,
                s,
                width,
            ),
        );
        let MaskUpscaler {
            rows: Some(rows),
            cols: Some(cols),
            low_rows,
            model_rows,
            model_row,
            line,
            run_cells,
            run_extremes,
        } = self
        else {
            return Ok(MaskResult::default());
        };

        // Cells that can lift a frame pixel above the lowest threshold used.
        let floor = threshold - STABILITY_OFFSET;
        let high = threshold + STABILITY_OFFSET;
        let (Some(last_row), Some(last_col)) = (rows.last_low_res(), cols.last_low_res()) else {
            return Ok(MaskResult::default());
        };
        let Some((r0, r1, c0, c1)) = cell_box(logits, width, last_row, last_col, floor) else {
            return Ok(MaskResult::default());
        };
        let (r0, c0) = (
            r0.saturating_sub(REGION_MARGIN),
            c0.saturating_sub(REGION_MARGIN),
        );
        let (r1, c1) = (
            (r1 + REGION_MARGIN).min(height - 1),
            (c1 + REGION_MARGIN).min(width - 1),
        );
        let (Some((y0, y1)), Some((x0, x1))) = (rows.frame_range(r0, r1), cols.frame_range(c0, c1))
        else {
            return Ok(MaskResult::default());
        };
        // Low-res rows and model-grid columns the region reads.
        let (Some((lr0, _)), Some((_, lr1))) = (rows.low_res_span(y0), rows.low_res_span(y1))
        else {
            return Ok(MaskResult::default());
        };
        let (Some(first), Some(last)) = (cols.frame.get(x0), cols.frame.get(x1)) else {
            return Ok(MaskResult::default());
        };
        let (m0, m1) = (first.i0, last.i1);
        let model_w = m1 - m0 + 1;
        let region_w = x1 - x0 + 1;
        let runs = region_w.div_ceil(RUN);
        let stride = region_w.div_ceil(8);
        let mut region_bits = vec![0u8; stride * (y1 - y0 + 1)];

        low_rows.reset(lr0, lr1 - lr0 + 1, model_w);
        model_rows.reset(region_w, runs);
        run_cells.clear();
        run_cells.extend((0..runs).map(|k| {
            let first = cols.low_res_span(x0 + k * RUN);
            let last = cols.low_res_span((x0 + (k + 1) * RUN - 1).min(x1));
            match (first, last) {
                (Some((a, _)), Some((_, b))) => (a, b),
                // Not reached (the region's columns all have taps); every
                // column is the safe answer.
                _ => (0, width - 1),
            }
        }));
        let model_cols = cols.model.get(m0..=m1).unwrap_or(&[]);
        let frame_cols = cols.frame.get(x0..=x1).unwrap_or(&[]);

        let (mut above_hi, mut above_lo, mut area) = (0u64, 0u64, 0u64);
        let (mut bx0, mut by0, mut bx1, mut by1) = (usize::MAX, usize::MAX, 0usize, 0usize);
        let mut span = None;
        for (y, bits_row) in (y0..=y1).zip(region_bits.chunks_exact_mut(stride)) {
            let (Some(ty), Some((ra, rb))) = (rows.frame.get(y), rows.low_res_span(y)) else {
                break;
            };
            if span != Some((ra, rb)) {
                span = Some((ra, rb));
                run_extremes.clear();
                run_extremes.extend(
                    run_cells
                        .iter()
                        .map(|&(ca, cb)| cell_extremes(logits, width, (ra, rb), (ca, cb))),
                );
            }
            let (s0, s1) = model_rows.slots(ty.i0, ty.i1);
            let (mut row_hi, mut row_lo) = (0u64, 0u64);
            for k in 0..run_cells.len() {
                let cols_k = k * RUN..((k + 1) * RUN).min(region_w);
                let n = cols_k.len();
                let (lowest, highest) =
                    run_extremes.get(k).copied().unwrap_or((f32::NAN, f32::NAN));
                let bytes = bits_row
                    .get_mut(k * RUN / 8..cols_k.end.div_ceil(8))
                    .unwrap_or(&mut []);
                match Run::decide(lowest, highest, floor, high) {
                    Run::Below => {}
                    Run::Above => {
                        bytes.fill(0xff);
                        if let Some(last) = bytes.last_mut() {
                            // Bits past the region's last column stay 0.
                            *last &= 0xffu8 << ((8 - n % 8) % 8);
                        }
                        row_hi += n as u64;
                        row_lo += n as u64;
                    }
                    Run::Mixed => {
                        // Model rows at this run's frame columns: step 1's
                        // vertical half over the run's model columns, then
                        // step 2's horizontal half.
                        let taps = frame_cols.get(cols_k.clone()).unwrap_or(&[]);
                        let (Some(ta), Some(tb)) = (taps.first(), taps.last()) else {
                            continue;
                        };
                        let (ma, mb) = (ta.i0, tb.i1);
                        for slot in [s0, s1] {
                            model_rows.ensure(slot, k, cols_k.clone(), |a, out| {
                                let Some(tr) = rows.model.get(a) else { return };
                                let (top, bottom) =
                                    low_rows.pair((tr.i0, tr.i1), logits, width, model_cols);
                                let part = ma.saturating_sub(m0)..=mb.saturating_sub(m0);
                                let top = top.get(part.clone()).unwrap_or(&[]);
                                let bottom = bottom.get(part).unwrap_or(&[]);
                                model_row.clear();
                                model_row.extend(
                                    top.iter().zip(bottom).map(|(t, b)| t * tr.w0 + b * tr.w1),
                                );
                                for (o, tx) in out.iter_mut().zip(taps) {
                                    *o = get(model_row, tx.i0.saturating_sub(ma)) * tx.w0
                                        + get(model_row, tx.i1.saturating_sub(ma)) * tx.w1;
                                }
                            });
                        }
                        let top = model_rows.row(s0).get(cols_k.clone()).unwrap_or(&[]);
                        let bottom = model_rows.row(s1).get(cols_k).unwrap_or(&[]);
                        line.clear();
                        line.extend(top.iter().zip(bottom).map(|(t, b)| t * ty.w0 + b * ty.w1));
                        let (hi, lo) = pack_bits(line, bytes, threshold, (floor, high));
                        row_hi += hi;
                        row_lo += lo;
                    }
                }
            }
            above_hi += row_hi;
            above_lo += row_lo;
            let first = bits_row.iter().position(|&b| b != 0);
            let last = bits_row.iter().rposition(|&b| b != 0);
            if let (Some(first), Some(last)) = (first, last) {
                area += bits_row
                    .iter()
                    .map(|b| u64::from(b.count_ones()))
                    .sum::<u64>();
                let lead = bits_row
                    .get(first)
                    .map_or(0, |b| b.leading_zeros() as usize);
                let trail = bits_row
                    .get(last)
                    .map_or(0, |b| b.trailing_zeros() as usize);
                bx0 = bx0.min(x0 + first * 8 + lead);
                bx1 = bx1.max(x0 + last * 8 + 7 - trail);
                by0 = by0.min(y);
                by1 = by1.max(y);
            }
        }
        let stability = stability_from_counts(above_hi, above_lo);
        if area == 0 {
            return Ok(MaskResult {
                stability,
                ..MaskResult::default()
            });
        }

        // Crop the region's rows to the tight box, unpadded.
        let (box_w, box_h) = (bx1 - bx0 + 1, by1 - by0 + 1);
        let mut writer = BitWriter::with_capacity(box_w * box_h);
        for bits_row in region_bits.chunks_exact(stride).skip(by0 - y0).take(box_h) {
            let row = BitSlice::<u8, Msb0>::from_slice(bits_row);
            writer.extend(row.get(bx0 - x0..=bx1 - x0).unwrap_or_default());
        }
        let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let mask = BitMask::from_packed(
            to_u32(bx0),
            to_u32(by0),
            to_u32(box_w),
            to_u32(box_h),
            writer.finish(),
        )
        .unwrap_or_default();
        Ok(MaskResult {
            mask,
            area,
            stability,
        })
    }
}

/// SAM's stability score from the counts of values above `t + offset`
/// (`above_high`) and above `t - offset` (`above_low`); 0 when none is above
/// `t - offset` (SAM's NaN, which fails every filter).
pub(crate) fn stability_from_counts(above_high: u64, above_low: u64) -> f32 {
    if above_low == 0 {
        0.0
    } else {
        (above_high as f64 / above_low as f64) as f32
    }
}

/// SAM's stability score of low-res `logits` (`width` values per row),
/// counted over rows `..rows` and columns `..cols` only (the part showing
/// the frame, not the padding).
pub(crate) fn low_res_stability(
    logits: &[f32],
    width: usize,
    (rows, cols): (usize, usize),
    threshold: f32,
    offset: f32,
) -> f32 {
    let (high, low) = (threshold + offset, threshold - offset);
    let (mut above_high, mut above_low) = (0u64, 0u64);
    for row in logits.chunks_exact(width.max(1)).take(rows) {
        for &v in row.iter().take(cols) {
            above_high += u64::from(v > high);
            above_low += u64::from(v > low);
        }
    }
    stability_from_counts(above_high, above_low)
}

/// Low-res rows and columns that show some of the frame for `geometry`
/// (the rest only see the padding): `ceil(resized * low / S)` per axis.
pub(crate) fn low_res_valid_size(
    geometry: &Geometry,
    (low_h, low_w): (usize, usize),
) -> (usize, usize) {
    let s = (geometry.input_size as usize).max(1);
    let rows = (geometry.resized_height as usize * low_h)
        .div_ceil(s)
        .min(low_h);
    let cols = (geometry.resized_width as usize * low_w)
        .div_ceil(s)
        .min(low_w);
    (rows, cols)
}

#[inline]
fn get(values: &[f32], i: usize) -> f32 {
    values.get(i).copied().unwrap_or(0.0)
}

/// Bounding box (r0, r1, c0, c1) of the cells above `floor` within rows
/// `..=last_row` and columns `..=last_col`.
fn cell_box(
    logits: &[f32],
    width: usize,
    last_row: usize,
    last_col: usize,
    floor: f32,
) -> Option<(usize, usize, usize, usize)> {
    let mut found: Option<(usize, usize, usize, usize)> = None;
    for (r, row) in logits.chunks_exact(width).enumerate().take(last_row + 1) {
        let row = row.get(..=last_col).unwrap_or(row);
        let Some(first) = row.iter().position(|&v| v > floor) else {
            continue;
        };
        let last = row.iter().rposition(|&v| v > floor).unwrap_or(first);
        found = Some(match found {
            None => (r, r, first, last),
            Some((r0, _, c0, c1)) => (r0, r, c0.min(first), c1.max(last)),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's bilinear (align_corners=False) of a row-major `h x w` grid
    /// to `oh x ow`, written out as directly as possible.
    fn interpolate(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
        let index = |o: usize, in_size: usize, out_size: usize| -> (usize, usize, f32) {
            if in_size == out_size {
                return (o, o, 0.0);
            }
            let scale = in_size as f32 / out_size as f32;
            let real = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(in_size - 1);
            let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
            (i0, i1, (real - i0 as f32).clamp(0.0, 1.0))
        };
        let mut out = vec![0.0; oh * ow];
        for y in 0..oh {
            let (y0, y1, ly) = index(y, h, oh);
            for x in 0..ow {
                let (x0, x1, lx) = index(x, w, ow);
                let top = src[y0 * w + x0] * (1.0 - lx) + src[y0 * w + x1] * lx;
                let bottom = src[y1 * w + x0] * (1.0 - lx) + src[y1 * w + x1] * lx;
                out[y * ow + x] = top * (1.0 - ly) + bottom * ly;
            }
        }
        out
    }

    /// SAM's postprocess_masks, materialised: low-res -> S x S -> crop -> frame.
    fn naive_frame_logits(low: &[f32], lh: usize, lw: usize, g: &Geometry) -> Vec<f32> {
        let s = g.input_size as usize;
        let (rw, rh) = (g.resized_width as usize, g.resized_height as usize);
        let full = interpolate(low, lh, lw, s, s);
        let mut cropped = Vec::with_capacity(rw * rh);
        for y in 0..rh {
            cropped.extend_from_slice(&full[y * s..y * s + rw]);
        }
        interpolate(
            &cropped,
            rh,
            rw,
            g.frame_height as usize,
            g.frame_width as usize,
        )
    }

    fn pseudo_random(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Low-res logits with a blob of positive values around (cx, cy) and
    /// noise far below the threshold elsewhere.
    fn blob(lh: usize, lw: usize, cx: f32, cy: f32, radius: f32, seed: u64) -> Vec<f32> {
        let noise = pseudo_random(seed, lh * lw);
        (0..lh * lw)
            .map(|i| {
                let (x, y) = ((i % lw) as f32, (i / lw) as f32);
                let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
                (radius - d) * 3.0 + noise[i] * 2.0 - if d > radius + 4.0 { 20.0 } else { 0.0 }
            })
            .collect()
    }

    fn check_against_naive(low: &[f32], lh: usize, lw: usize, g: &Geometry, threshold: f32) {
        let naive = naive_frame_logits(low, lh, lw, g);
        let (fw, fh) = (g.frame_width as usize, g.frame_height as usize);
        let set: Vec<bool> = naive.iter().map(|&v| v > threshold).collect();
        let area = set.iter().filter(|&&b| b).count() as u64;
        let hi = naive.iter().filter(|&&v| v > threshold + 1.0).count();
        let lo = naive.iter().filter(|&&v| v > threshold - 1.0).count();

        let result = MaskUpscaler::new()
            .upscale(low, lh, lw, g, threshold)
            .unwrap();
        assert_eq!(result.area, area, "area, {g:?}");
        let want_stability = if lo == 0 {
            0.0
        } else {
            (hi as f64 / lo as f64) as f32
        };
        assert_eq!(result.stability, want_stability, "stability, {g:?}");
        let m = &result.mask;
        if area == 0 {
            assert_eq!((m.width(), m.height()), (0, 0));
            return;
        }
        // Tight box and every pixel of the frame.
        let xs = (0..fw * fh).filter(|&i| set[i]).map(|i| i % fw);
        let ys = (0..fw * fh).filter(|&i| set[i]).map(|i| i / fw);
        let (bx0, bx1) = (xs.clone().min().unwrap(), xs.max().unwrap());
        let (by0, by1) = (ys.clone().min().unwrap(), ys.max().unwrap());
        assert_eq!(
            (
                m.x() as usize,
                m.y() as usize,
                m.width() as usize,
                m.height() as usize
            ),
            (bx0, by0, bx1 - bx0 + 1, by1 - by0 + 1),
            "box, {g:?}"
        );
        for y in 0..fh {
            for x in 0..fw {
                assert_eq!(
                    m.contains(x as u32, y as u32),
                    set[y * fw + x],
                    "pixel {x},{y} of {g:?}"
                );
            }
        }
    }

    #[test]
    fn taps_match_torch_for_a_known_case() {
        // torch.nn.functional.interpolate([[0, 1]], size=4, mode="linear") = [0, .25, .75, 1]
        let row = interpolate(&[0.0, 1.0], 1, 2, 1, 4);
        assert_eq!(row, [0.0, 0.25, 0.75, 1.0]);
        let taps = linear_taps(2, 4);
        let values: Vec<f32> = taps
            .iter()
            .map(|t| t.w0 * [0.0, 1.0][t.i0] + t.w1 * [0.0, 1.0][t.i1])
            .collect();
        assert_eq!(values, [0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn region_upscaling_equals_full_two_step_upscaling() {
        // (frame w, h, input size, low-res size): downscaling and upscaling
        // frames, odd sizes, landscape and portrait, equal-size steps.
        let cases = [
            (100, 75, 64, 16),
            (75, 100, 64, 16),
            (37, 23, 64, 16),
            (64, 64, 64, 16),
            (200, 50, 64, 16),
            (131, 97, 128, 32),
            (9, 13, 64, 16),
            (64, 40, 64, 64),
            // Wide enough for whole runs of pixels inside and outside an
            // object, decided from their cells alone.
            (640, 360, 256, 64),
            (300, 500, 256, 64),
            (1000, 30, 256, 64),
        ];
        for (i, &(fw, fh, s, l)) in cases.iter().enumerate() {
            let g = Geometry::new(fw, fh, s).unwrap();
            let ratio_w = g.resized_width as f32 / s as f32;
            let ratio_h = g.resized_height as f32 / s as f32;
            for (j, (cx, cy, radius)) in [
                (0.5, 0.5, 3.0),
                (0.1, 0.9, 2.0),
                (0.95, 0.05, 4.0),
                (0.5, 0.5, 30.0),
            ]
            .into_iter()
            .enumerate()
            {
                let low = blob(
                    l,
                    l,
                    cx * l as f32 * ratio_w,
                    cy * l as f32 * ratio_h,
                    radius,
                    (i * 10 + j) as u64,
                );
                for threshold in [0.0, 1.5] {
                    check_against_naive(&low, l, l, &g, threshold);
                }
            }
            // Pure noise around zero: many small pieces, all over the frame.
            let noise = pseudo_random(i as u64 + 100, l * l);
            check_against_naive(&noise, l, l, &g, 0.0);
            // Nothing above any threshold.
            check_against_naive(&vec![-5.0; l * l], l, l, &g, 0.0);
        }
    }

    #[test]
    fn plateaus_at_the_thresholds_and_nan_cells_equal_the_full_upscaling() {
        // Runs whose cells all sit exactly on a threshold are where rounding
        // could push a pixel across it; NaN cells are never decided by range.
        let g = Geometry::new(640, 360, 256).unwrap();
        let l = 64;
        for level in [
            -1.0,
            -1.0 - f32::EPSILON,
            0.0,
            1.0,
            1.0 + f32::EPSILON,
            1.0 + 1e-6,
            37.5,
        ] {
            let mut low = vec![level; l * l];
            // A step, so the region holds runs of two kinds.
            for v in low.iter_mut().skip(20 * l).take(8 * l) {
                *v = 40.0;
            }
            check_against_naive(&low, l, l, &g, 0.0);
        }
        let mut low = blob(l, l, 30.0, 18.0, 14.0, 5);
        for i in [30 * l / 2 + 30, 18 * l + 29, 3 * l + 60] {
            low[i] = f32::NAN;
        }
        check_against_naive(&low, l, l, &g, 0.0);
        let mut inf = blob(l, l, 30.0, 18.0, 14.0, 6);
        inf[18 * l + 30] = f32::INFINITY;
        inf[2 * l + 2] = f32::NEG_INFINITY;
        check_against_naive(&inf, l, l, &g, 0.0);
    }

    #[test]
    fn positive_logits_in_the_padding_do_not_count() {
        // A wide frame: the bottom half of the model grid is padding.
        let g = Geometry::new(128, 32, 64).unwrap();
        let mut low = vec![-10.0; 16 * 16];
        for v in &mut low[12 * 16..] {
            *v = 10.0;
        }
        let r = MaskUpscaler::new().upscale(&low, 16, 16, &g, 0.0).unwrap();
        assert_eq!(r.area, 0);
        check_against_naive(&low, 16, 16, &g, 0.0);
    }

    #[test]
    fn low_res_stability_counts_only_cells_showing_the_frame() {
        // 4x4 grid; a 100x50 frame in a 64 input shows rows 0..2 only.
        let g = Geometry::new(100, 50, 64).unwrap();
        assert_eq!(low_res_valid_size(&g, (4, 4)), (2, 4));
        #[rustfmt::skip]
        let logits = [
            5.0, 5.0, 0.5, -5.0,
            5.0, 0.5, -5.0, -5.0,
            9.0, 9.0, 9.0, 9.0,
            9.0, 9.0, 9.0, 9.0,
        ];
        // Above 1: 3 cells; above -1: 5 cells.
        assert_eq!(low_res_stability(&logits, 4, (2, 4), 0.0, 1.0), 0.6);
        assert_eq!(low_res_stability(&[-3.0; 16], 4, (4, 4), 0.0, 1.0), 0.0);
        assert_eq!(stability_from_counts(3, 4), 0.75);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let g = Geometry::new(10, 10, 64).unwrap();
        assert!(
            MaskUpscaler::new()
                .upscale(&[0.0; 15], 4, 4, &g, 0.0)
                .is_err()
        );
        assert!(MaskUpscaler::new().upscale(&[], 0, 0, &g, 0.0).is_err());
    }

    #[test]
    fn selection_rules() {
        let ious = [0.9, 0.2, 0.7, 0.5];
        assert_eq!(MaskSelection::TinySam.choose(&ious, false), Some(2));
        assert_eq!(MaskSelection::TinySam.choose(&ious, true), Some(2));
        assert_eq!(MaskSelection::Sam.choose(&ious, true), Some(2));
        assert_eq!(MaskSelection::Sam.choose(&ious, false), Some(0));
        assert_eq!(MaskSelection::Output(3).choose(&ious, false), Some(3));
        assert_eq!(MaskSelection::Output(4).choose(&ious, false), None);
        // A single output is always the one.
        assert_eq!(MaskSelection::TinySam.choose(&[0.1], false), Some(0));
        assert_eq!(MaskSelection::Sam.choose(&[0.1], true), Some(0));
        assert_eq!(MaskSelection::Output(1).choose(&[0.1], true), None);
        assert_eq!(MaskSelection::TinySam.choose(&[], true), None);
        // Ties keep the first; NaN never wins.
        assert_eq!(
            MaskSelection::TinySam.choose(&[0.0, 0.5, 0.5, 0.1], false),
            Some(1)
        );
        assert_eq!(
            MaskSelection::TinySam.choose(&[0.0, f32::NAN, 0.3, 0.1], false),
            Some(2)
        );
        assert_eq!("SAM".parse::<MaskSelection>(), Ok(MaskSelection::Sam));
        assert_eq!("2".parse::<MaskSelection>(), Ok(MaskSelection::Output(2)));
        assert!("best".parse::<MaskSelection>().is_err());
    }
}
