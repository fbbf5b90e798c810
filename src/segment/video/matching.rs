// SPDX-License-Identifier: Apache-2.0
//! Mask overlap and the matching of one frame's objects to the previous
//! ones by it.
//!
//! Matching is greedy by descending mask IoU with a floor (0.5 by default):
//! at an IoU of at least 0.5 a mask can rarely overlap two others that much
//! (each would have to cover more than half of the union with it), so greedy
//! and optimal (Hungarian) assignments coincide in practice, at a fraction
//! of the cost and with deterministic ties (lower indices first).

use crate::segment::masks::mask::BitMask;

/// Pixels set in both masks.
pub fn intersection(a: &BitMask, b: &BitMask) -> u64 {
    shifted_intersection(a, b, 0, 0)
}

/// Pixels set in both `a` and `b` moved by (`dx`, `dy`).
///
/// Counted a word at a time: with hundreds of large masks this runs for
/// every pair (convergence checks, matching).
pub fn shifted_intersection(a: &BitMask, b: &BitMask, dx: i64, dy: i64) -> u64 {
    // No `is_empty` shortcut: it scans the whole mask, and an empty mask
    // counts 0 below anyway.
    let (ax, ay) = (i64::from(a.x()), i64::from(a.y()));
    let (bx, by) = (i64::from(b.x()) + dx, i64::from(b.y()) + dy);
    let x0 = ax.max(bx);
    let y0 = ay.max(by);
    let x1 = (ax + i64::from(a.width())).min(bx + i64::from(b.width()));
    let y1 = (ay + i64::from(a.height())).min(by + i64::from(b.height()));
    if x0 >= x1 || y0 >= y1 {
        return 0;
    }
    let (wa, wb) = (i64::from(a.width()), i64::from(b.width()));
    let len = x1 - x0;
    let start_a = ((y0 - ay) * wa + (x0 - ax)) as usize;
    let start_b = ((y0 - by) * wb + (x0 - bx)) as usize;
    let rows = (y1 - y0) as usize;
    if len == wa && len == wb && start_a.is_multiple_of(8) && start_b.is_multiple_of(8) {
        // The overlap spans both masks' whole rows and starts on a byte in
        // both (masks with the same box): its rows follow one another, and
        // whole bytes are ANDed, which vectorises.
        return aligned_run(a, start_a, b, start_b, len as usize * rows);
    }
    // Row by row, 64 pixels at a time: each mask's run of the row loaded
    // into a word, ANDed, counted.
    let len = len as usize;
    let mut count = 0u64;
    for r in 0..rows {
        let row_a = start_a + r * wa as usize;
        let row_b = start_b + r * wb as usize;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(64);
            let both = a.word_at(row_a + done, n) & b.word_at(row_b + done, n);
            count += u64::from(both.count_ones());
            done += n;
        }
    }
    count
}

/// Set pixels in both of the `n`-pixel runs from bit `start_a` of `a` and
/// bit `start_b` of `b`, both on a byte: whole 64-pixel words straight from
/// the bytes, the last part word through [`BitMask::word_at`].
fn aligned_run(a: &BitMask, start_a: usize, b: &BitMask, start_b: usize, n: usize) -> u64 {
    let words = n / 64;
    let word = |bytes: &[u8]| bytes.try_into().map_or(0, u64::from_ne_bytes);
    let (from_a, from_b) = (start_a / 8, start_b / 8);
    let bytes_a = a.bits().get(from_a..from_a + 8 * words).unwrap_or_default();
    let bytes_b = b.bits().get(from_b..from_b + 8 * words).unwrap_or_default();
    let whole: u64 = bytes_a
        .chunks_exact(8)
        .zip(bytes_b.chunks_exact(8))
        .map(|(x, y)| u64::from((word(x) & word(y)).count_ones()))
        .sum();
    let (done, rest) = (64 * words, n % 64);
    let last = a.word_at(start_a + done, rest) & b.word_at(start_b + done, rest);
    whole + u64::from(last.count_ones())
}

/// IoU of two masks' shapes, `b` moved so that the centres of the masks'
/// boxes coincide (to the pixel): how alike they are wherever they are.
pub fn shape_iou(a: &BitMask, b: &BitMask) -> f32 {
    let centre2 = |m: &BitMask| {
        (
            2 * i64::from(m.x()) + i64::from(m.width()),
            2 * i64::from(m.y()) + i64::from(m.height()),
        )
    };
    let ((ax, ay), (bx, by)) = (centre2(a), centre2(b));
    let (dx, dy) = ((ax - bx).div_euclid(2), (ay - by).div_euclid(2));
    iou_from_counts(
        shifted_intersection(a, b, dx, dy),
        a.count_ones(),
        b.count_ones(),
    )
}

/// Intersection over union of two masks; 0 when both are empty.
pub fn mask_iou(a: &BitMask, b: &BitMask) -> f32 {
    let (area_a, area_b) = (a.count_ones(), b.count_ones());
    iou_from_counts(intersection(a, b), area_a, area_b)
}

/// The IoU of `a` and `b` moved by `offset` (whole pixels), whose areas
/// are `area_a` and `area_b`, when it is at least `floor`; `None` otherwise.
/// Pairs whose areas or boxes alone keep them below `floor` are not counted
/// pixel by pixel: the bound uses an intersection of at most the boxes'
/// overlap and the smaller area, and [`iou_from_counts`] rounds it as it
/// rounds the exact count, so no pair that reaches `floor` is skipped.
pub(crate) fn iou_at_least(
    a: &BitMask,
    (b, offset): (&BitMask, (i64, i64)),
    (area_a, area_b): (u64, u64),
    floor: f32,
) -> Option<f32> {
    let overlap = box_overlap(b, offset, a);
    if iou_from_counts(overlap.min(area_a).min(area_b), area_a, area_b) < floor {
        return None;
    }
    let iou = iou_from_counts(
        shifted_intersection(a, b, offset.0, offset.1),
        area_a,
        area_b,
    );
    (iou >= floor).then_some(iou)
}

fn iou_from_counts(inter: u64, area_a: u64, area_b: u64) -> f32 {
    let union = area_a + area_b - inter.min(area_a + area_b);
    if union == 0 {
        0.0
    } else {
        (inter as f64 / union as f64) as f32
    }
}

/// Pixels in both the box of `a` moved by `(dx, dy)` and the box of `b`.
fn box_overlap(a: &BitMask, (dx, dy): (i64, i64), b: &BitMask) -> u64 {
    let (ax, ay) = (i64::from(a.x()) + dx, i64::from(a.y()) + dy);
    let (bx, by) = (i64::from(b.x()), i64::from(b.y()));
    let w = (ax + i64::from(a.width())).min(bx + i64::from(b.width())) - ax.max(bx);
    let h = (ay + i64::from(a.height())).min(by + i64::from(b.height())) - ay.max(by);
    if w <= 0 || h <= 0 {
        0
    } else {
        w as u64 * h as u64
    }
}

/// One pairing of a previous object with a current one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index into the previous masks.
    pub previous: usize,
    /// Index into the current masks.
    pub current: usize,
    pub iou: f32,
}

/// Pairs `previous` with `current` masks, greedily by descending IoU, each
/// at most once, keeping only pairs with IoU `>= min_iou` (`min_iou` above
/// 0; a non-positive or NaN floor is taken as "any overlap"). Pairs whose
/// areas or boxes alone rule out reaching the floor are not counted pixel
/// by pixel. The matches come ordered by `previous`.
pub fn greedy_match(previous: &[&BitMask], current: &[&BitMask], min_iou: f32) -> Vec<Match> {
    let still: Vec<(&BitMask, (i64, i64))> = previous.iter().map(|&m| (m, (0, 0))).collect();
    greedy_match_moved(&still, current, min_iou)
}

/// [`greedy_match`] with each previous mask first moved by its offset
/// (whole pixels): the motion predicted since it was seen.
pub fn greedy_match_moved(
    previous: &[(&BitMask, (i64, i64))],
    current: &[&BitMask],
    min_iou: f32,
) -> Vec<Match> {
    let floor = if min_iou > 0.0 {
        min_iou
    } else {
        f32::MIN_POSITIVE
    };
    let areas_p: Vec<u64> = previous.iter().map(|(m, _)| m.count_ones()).collect();
    let areas_c: Vec<u64> = current.iter().map(|m| m.count_ones()).collect();
    let mut pairs = Vec::new();
    for (i, (&(p, offset), &area_p)) in previous.iter().zip(&areas_p).enumerate() {
        for (j, (c, &area_c)) in current.iter().zip(&areas_c).enumerate() {
            if let Some(iou) = iou_at_least(c, (p, offset), (area_c, area_p), floor) {
                pairs.push(Match {
                    previous: i,
                    current: j,
                    iou,
                });
            }
        }
    }
    assign(pairs, previous.len(), current.len())
}

/// A second pass for what [`greedy_match_moved`] left: pairs whose masks
/// do not overlap enough (an object that moved more than about half its
/// size) but have the same shape ([`shape_iou`] at least `min_shape_iou`)
/// and whose box centres, the previous one moved by its offset, are at most
/// the previous box's larger side apart. Greedy by shape IoU; the matches
/// carry the shape IoU and come ordered by `previous`.
pub fn match_by_shape(
    previous: &[(&BitMask, (i64, i64))],
    current: &[&BitMask],
    min_shape_iou: f32,
) -> Vec<Match> {
    let centre = |m: &BitMask| {
        (
            f64::from(m.x()) + f64::from(m.width()) / 2.0,
            f64::from(m.y()) + f64::from(m.height()) / 2.0,
        )
    };
    let mut pairs = Vec::new();
    for (i, &(p, (dx, dy))) in previous.iter().enumerate() {
        if p.is_empty() {
            continue;
        }
        let (px, py) = centre(p);
        let (px, py) = (px + dx as f64, py + dy as f64);
        let reach = f64::from(p.width().max(p.height()));
        for (j, c) in current.iter().enumerate() {
            let (cx, cy) = centre(c);
            if (cx - px).hypot(cy - py) > reach {
                continue;
            }
            let iou = shape_iou(p, c);
            if iou >= min_shape_iou {
                pairs.push(Match {
                    previous: i,
                    current: j,
                    iou,
                });
            }
        }
    }
    assign(pairs, previous.len(), current.len())
}

/// Takes `pairs` best first, each side at most once; ordered by `previous`.
fn assign(mut pairs: Vec<Match>, previous: usize, current: usize) -> Vec<Match> {
    pairs.sort_by(|a, b| {
        b.iou
            .total_cmp(&a.iou)
            .then(a.previous.cmp(&b.previous))
            .then(a.current.cmp(&b.current))
    });
    let mut used_p = vec![false; previous];
    let mut used_c = vec![false; current];
    let mut matches = Vec::new();
    for m in pairs {
        let (Some(up), Some(uc)) = (used_p.get(m.previous), used_c.get(m.current)) else {
            continue;
        };
        if *up || *uc {
            continue;
        }
        if let Some(flag) = used_p.get_mut(m.previous) {
            *flag = true;
        }
        if let Some(flag) = used_c.get_mut(m.current) {
            *flag = true;
        }
        matches.push(m);
    }
    matches.sort_by_key(|m| m.previous);
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_counts_equal_pixel_counts() {
        let mut next = crate::segment::testing::random_below(7);
        for round in 0..600 {
            let (x, y, w, h) = (next(40), next(40), 1 + next(150), 1 + next(20));
            let density = 1 + next(9);
            let a = BitMask::from_fn(x, y, w, h, |_, _| next(10) < density);
            let (mut dx, dy) = (i64::from(next(21)) - 10, i64::from(next(11)) - 5);
            let (bx, by, bw, bh) = (next(40), next(40), 1 + next(150), 1 + next(20));
            // Every other pair spans the same columns once moved, so that
            // the overlap's rows follow one another in both masks (one
            // byte-wise run when it starts on a byte in both).
            let (bx, bw) = if round % 2 == 0 {
                dx = dx.min(i64::from(x));
                ((i64::from(x) - dx) as u32, w)
            } else {
                (bx, bw)
            };
            let b = BitMask::from_fn(bx, by, bw, bh, |_, _| next(10) < 5);
            let naive = {
                let (bx, by) = (i64::from(b.x()) + dx, i64::from(b.y()) + dy);
                (0..a.height())
                    .flat_map(|r| (0..a.width()).map(move |c| (c, r)))
                    .filter(|&(c, r)| {
                        let (fx, fy) = (i64::from(a.x() + c), i64::from(a.y() + r));
                        let (cb, rb) = (fx - bx, fy - by);
                        a.get(c, r)
                            && cb >= 0
                            && rb >= 0
                            && cb < i64::from(b.width())
                            && rb < i64::from(b.height())
                            && b.get(cb as u32, rb as u32)
                    })
                    .count() as u64
            };
            assert_eq!(shifted_intersection(&a, &b, dx, dy), naive);
        }
    }

    /// A filled rectangle at (x, y).
    fn rect(x: u32, y: u32, w: u32, h: u32) -> BitMask {
        BitMask::from_fn(x, y, w, h, |_, _| true)
    }

    #[test]
    fn iou_of_rectangles() {
        let a = rect(0, 0, 10, 10);
        assert_eq!(mask_iou(&a, &a), 1.0);
        // Half overlap: 50 / 150.
        let b = rect(5, 0, 10, 10);
        assert_eq!(intersection(&a, &b), 50);
        assert!((mask_iou(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(mask_iou(&a, &rect(10, 0, 5, 5)), 0.0);
        assert_eq!(mask_iou(&a, &BitMask::default()), 0.0);
        assert_eq!(mask_iou(&BitMask::default(), &BitMask::default()), 0.0);
    }

    #[test]
    fn iou_counts_pixels_not_boxes() {
        // Two diagonals in the same box share only their crossing pixel.
        let a = BitMask::from_fn(0, 0, 5, 5, |c, r| c == r);
        let b = BitMask::from_fn(0, 0, 5, 5, |c, r| c + r == 4);
        assert_eq!(intersection(&a, &b), 1);
        assert!((mask_iou(&a, &b) - 1.0 / 9.0).abs() < 1e-6);
        // A ring and its hole do not overlap.
        let ring = BitMask::from_fn(0, 0, 6, 6, |c, r| {
            !(1..5).contains(&c) || !(1..5).contains(&r)
        });
        let hole = rect(1, 1, 4, 4);
        assert_eq!(intersection(&ring, &hole), 0);
    }

    #[test]
    fn shapes_compare_wherever_they_are() {
        let a = rect(0, 0, 10, 10);
        assert_eq!(shape_iou(&a, &rect(100, 50, 10, 10)), 1.0);
        assert_eq!(
            shifted_intersection(&a, &rect(100, 50, 10, 10), -95, -50),
            50
        );
        // A 10x10 square against a centred 10x5 bar: 50 / 100.
        assert!((shape_iou(&a, &rect(30, 30, 10, 5)) - 0.5).abs() < 1e-6);
        // A diagonal and an anti-diagonal: only the crossing pixel.
        let d = BitMask::from_fn(0, 0, 5, 5, |c, r| c == r);
        let e = BitMask::from_fn(40, 40, 5, 5, |c, r| c + r == 4);
        assert!((shape_iou(&d, &e) - 1.0 / 9.0).abs() < 1e-6);
        assert_eq!(shape_iou(&a, &BitMask::default()), 0.0);
    }

    #[test]
    fn greedy_pairs_best_first_and_once() {
        let prev = [
            rect(0, 0, 10, 10),
            rect(40, 40, 10, 10),
            rect(100, 100, 4, 4),
        ];
        // Current: the second object moved by 1 px, the first by 2 px, a new
        // one, and nothing where the third was.
        let cur = [
            rect(41, 40, 10, 10),
            rect(200, 0, 10, 10),
            rect(2, 0, 10, 10),
        ];
        let p: Vec<&BitMask> = prev.iter().collect();
        let c: Vec<&BitMask> = cur.iter().collect();
        let m = greedy_match(&p, &c, 0.5);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].previous, m[0].current), (0, 2));
        assert_eq!((m[1].previous, m[1].current), (1, 0));
        assert!((m[1].iou - 90.0 / 110.0).abs() < 1e-6);
    }

    #[test]
    fn a_contested_mask_goes_to_the_better_match() {
        // Both previous masks overlap the current one; the closer wins and
        // the other stays unmatched rather than taking a worse partner.
        let prev = [rect(0, 0, 10, 10), rect(1, 0, 10, 10)];
        let cur = [rect(1, 0, 10, 10)];
        let m = greedy_match(
            &prev.iter().collect::<Vec<_>>(),
            &cur.iter().collect::<Vec<_>>(),
            0.5,
        );
        assert_eq!(
            m,
            vec![Match {
                previous: 1,
                current: 0,
                iou: 1.0
            }]
        );
    }

    #[test]
    fn floor_and_degenerate_input() {
        let a = rect(0, 0, 10, 10);
        let b = rect(5, 0, 10, 10);
        let one = |x: &BitMask, y: &BitMask, t| greedy_match(&[x], &[y], t).len();
        assert_eq!(one(&a, &b, 0.5), 0);
        assert_eq!(one(&a, &b, 0.3), 1);
        assert_eq!(one(&a, &b, f32::NAN), 1);
        // A small mask inside a large one: area ratio rules it out.
        assert_eq!(one(&a, &rect(0, 0, 2, 2), 0.5), 0);
        assert_eq!(one(&BitMask::default(), &BitMask::default(), 0.5), 0);
        assert!(greedy_match(&[], &[&a], 0.5).is_empty());
        assert!(greedy_match(&[&a], &[], 0.5).is_empty());
    }

    #[test]
    fn previous_masks_move_by_their_offsets() {
        let prev = [rect(0, 0, 10, 10), rect(100, 0, 10, 10)];
        // Both moved 8 px right: IoU 2/18 unmoved, 1 moved.
        let cur = [rect(8, 0, 10, 10), rect(108, 0, 10, 10)];
        let c: Vec<&BitMask> = cur.iter().collect();
        assert!(greedy_match(&prev.iter().collect::<Vec<_>>(), &c, 0.5).is_empty());
        let moved = [(&prev[0], (8, 0)), (&prev[1], (8, 0))];
        let m = greedy_match_moved(&moved, &c, 0.5);
        assert_eq!(m.len(), 2);
        assert!(m.iter().all(|m| m.iou == 1.0 && m.previous == m.current));
        // Moved off the frame's origin: still fine.
        let back = [(&cur[0], (-8, 0))];
        assert_eq!(greedy_match_moved(&back, &[&prev[0]], 0.5).len(), 1);
    }

    #[test]
    fn shapes_match_across_larger_moves() {
        // A 20x10 bar moved 15 px (IoU 5/35), a 10x10 square moved 8 px,
        // and a far copy of the bar that must not be taken.
        let prev = [rect(0, 0, 20, 10), rect(100, 100, 10, 10)];
        let cur = [
            rect(200, 200, 20, 10),
            rect(108, 100, 10, 10),
            rect(15, 0, 20, 10),
        ];
        let p: Vec<(&BitMask, (i64, i64))> = prev.iter().map(|m| (m, (0, 0))).collect();
        let c: Vec<&BitMask> = cur.iter().collect();
        assert!(greedy_match_moved(&p, &c, 0.5).is_empty());
        let m = match_by_shape(&p, &c, 0.7);
        assert_eq!(
            m.iter()
                .map(|m| (m.previous, m.current))
                .collect::<Vec<_>>(),
            vec![(0, 2), (1, 1)]
        );
        // Another shape nearby is not the same object.
        let other = [rect(5, 0, 10, 20)];
        assert!(match_by_shape(&p, &other.iter().collect::<Vec<_>>(), 0.7).is_empty());
        // The offset moves the search: predicted 190 px on, the far bar.
        let ahead = [(&prev[0], (200, 200))];
        assert_eq!(match_by_shape(&ahead, &c, 0.7)[0].current, 0);
    }

    #[test]
    fn ties_are_deterministic() {
        let prev = [rect(0, 0, 10, 10), rect(0, 0, 10, 10)];
        let cur = [rect(0, 0, 10, 10), rect(0, 0, 10, 10)];
        let p: Vec<&BitMask> = prev.iter().collect();
        let c: Vec<&BitMask> = cur.iter().collect();
        let m = greedy_match(&p, &c, 0.5);
        assert_eq!(
            m.iter()
                .map(|m| (m.previous, m.current))
                .collect::<Vec<_>>(),
            vec![(0, 0), (1, 1)]
        );
    }
}
