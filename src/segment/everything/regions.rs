// SPDX-License-Identifier: Apache-2.0
//! SAM's small-region clean-up (`remove_small_regions`): fill holes and drop
//! islands smaller than an area, with 8-connected components as OpenCV's
//! `connectedComponentsWithStats(..., 8)` finds them.
//!
//! Works inside the mask's box only. A background region touching a box
//! edge that is not a frame edge joins the background outside the box, so it
//! is never a hole; SAM, labelling the whole frame, would count that outside
//! background too (it differs only when the box nearly fills the frame).

use crate::segment::masks::mask::BitMask;

/// 8-connected components of the cells equal to `value` in a `width` x
/// `height` grid: a label per cell (`0` for other cells, components from
/// 1 in scan order) and each component's size (index `label - 1`).
fn components(cells: &[bool], width: usize, height: usize, value: bool) -> (Vec<u32>, Vec<u64>) {
    let mut labels = vec![0u32; cells.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..cells.len() {
        if cells.get(start) != Some(&value) || labels.get(start) != Some(&0) {
            continue;
        }
        sizes.push(0u64);
        let label = u32::try_from(sizes.len()).unwrap_or(u32::MAX);
        labels[start] = label;
        stack.push(start);
        while let Some(i) = stack.pop() {
            if let Some(size) = sizes.last_mut() {
                *size += 1;
            }
            let (x, y) = (i % width, i / width);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let n = ny * width + nx;
                    if cells.get(n) == Some(&value) && labels.get(n) == Some(&0) {
                        labels[n] = label;
                        stack.push(n);
                    }
                }
            }
        }
    }
    (labels, sizes)
}

/// `mask` (of a `frame_width` x `frame_height` frame) with holes, then
/// islands, smaller than `min_area` pixels removed, as SAM's generator does;
/// if every island is small, the largest stays. Returns the mask, cropped to
/// its new tight box, and whether anything changed.
pub(crate) fn remove_small_regions(
    mask: &BitMask,
    min_area: u64,
    frame_width: u32,
    frame_height: u32,
) -> (BitMask, bool) {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    if w == 0 || h == 0 || min_area == 0 {
        return (mask.clone(), false);
    }
    let mut cells: Vec<bool> = (0..w * h)
        .map(|i| mask.get((i % w) as u32, (i / w) as u32))
        .collect();
    let mut changed = false;

    // Holes: background components enclosed in the box.
    let open = [
        mask.x() > 0,
        mask.y() > 0,
        mask.x() + mask.width() < frame_width,
        mask.y() + mask.height() < frame_height,
    ];
    let (labels, sizes) = components(&cells, w, h, false);
    let mut outside = vec![false; sizes.len()];
    for (i, &label) in labels.iter().enumerate() {
        let (x, y) = (i % w, i / w);
        let edge = [x == 0, y == 0, x + 1 == w, y + 1 == h];
        if label > 0
            && edge.iter().zip(&open).any(|(&e, &o)| e && o)
            && let Some(flag) = outside.get_mut(label as usize - 1)
        {
            *flag = true;
        }
    }
    for (cell, &label) in cells.iter_mut().zip(&labels) {
        let index = (label as usize).wrapping_sub(1);
        let small = sizes.get(index).is_some_and(|&s| s < min_area);
        if label > 0 && small && !outside.get(index).copied().unwrap_or(true) {
            *cell = true;
            changed = true;
        }
    }

    // Islands: foreground components; keep the large ones, or the largest.
    let (labels, sizes) = components(&cells, w, h, true);
    let mut keep: Vec<bool> = sizes.iter().map(|&s| s >= min_area).collect();
    if !keep.contains(&true) {
        // The first of equal largest, as numpy's argmax.
        let largest = sizes
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, u64)>, (i, &s)| match best {
                Some((_, b)) if b >= s => best,
                _ => Some((i, s)),
            });
        if let Some((i, _)) = largest
            && let Some(flag) = keep.get_mut(i)
        {
            *flag = true;
        }
    }
    for (cell, &label) in cells.iter_mut().zip(&labels) {
        if label > 0 && !keep.get(label as usize - 1).copied().unwrap_or(true) {
            *cell = false;
            changed = true;
        }
    }
    if !changed {
        return (mask.clone(), false);
    }
    (crop(&cells, w, h, mask.x(), mask.y()), true)
}

/// The set cells of a `w` x `h` grid at (`x`, `y`) as a mask cropped to its
/// tight box.
fn crop(cells: &[bool], w: usize, h: usize, x: u32, y: u32) -> BitMask {
    let set = |i: usize| cells.get(i).copied().unwrap_or(false);
    let rows: Vec<usize> = (0..h).filter(|&r| (0..w).any(|c| set(r * w + c))).collect();
    let cols: Vec<usize> = (0..w).filter(|&c| (0..h).any(|r| set(r * w + c))).collect();
    let (Some(&r0), Some(&r1), Some(&c0), Some(&c1)) =
        (rows.first(), rows.last(), cols.first(), cols.last())
    else {
        return BitMask::default();
    };
    let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    BitMask::from_fn(
        x + to_u32(c0),
        y + to_u32(r0),
        to_u32(c1 - c0 + 1),
        to_u32(r1 - r0 + 1),
        |c, r| set((r0 + r as usize) * w + c0 + c as usize),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_rows(x: u32, y: u32, rows: &[&str]) -> BitMask {
        let h = rows.len() as u32;
        let w = rows[0].len() as u32;
        BitMask::from_fn(x, y, w, h, |c, r| {
            rows[r as usize].as_bytes()[c as usize] == b'#'
        })
    }

    #[test]
    fn small_holes_are_filled_and_islands_dropped() {
        let mask = from_rows(
            5,
            5,
            &[
                "#####....#",
                "#.#.#.....",
                "#####.....",
                "#...#.....",
                "#...#.....",
                "#####.....",
            ],
        );
        // Holes of 1 pixel fill, the 6-pixel hole stays; the lone pixel goes.
        let (out, changed) = remove_small_regions(&mask, 3, 100, 100);
        assert!(changed);
        let want = from_rows(
            5,
            5,
            &["#####", "#####", "#####", "#...#", "#...#", "#####"],
        );
        assert_eq!(out, want);
        let (again, changed) = remove_small_regions(&out, 3, 100, 100);
        assert!(!changed);
        assert_eq!(again, out);
    }

    #[test]
    fn open_background_is_not_a_hole_but_frame_edges_close_it() {
        // A "U": the notch reaches the box's top edge.
        let mask = from_rows(4, 4, &["#.#", "#.#", "###"]);
        assert!(!remove_small_regions(&mask, 5, 50, 50).1);
        // At the frame's top edge the notch is enclosed, as in SAM.
        let at_top = from_rows(4, 0, &["#.#", "#.#", "###"]);
        let (out, changed) = remove_small_regions(&at_top, 5, 50, 50);
        assert!(changed);
        assert_eq!(out.count_ones(), 9);
    }

    #[test]
    fn all_small_islands_keep_the_largest() {
        let mask = from_rows(0, 0, &["#..##", ".....", "...##"]);
        let (out, changed) = remove_small_regions(&mask, 10, 20, 20);
        assert!(changed);
        assert_eq!(out, from_rows(3, 0, &["##"]));
        // Diagonal neighbours connect.
        let diagonal = from_rows(0, 0, &["#.", ".#"]);
        assert!(!remove_small_regions(&diagonal, 2, 20, 20).1);
    }
}
