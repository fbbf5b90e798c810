// SPDX-License-Identifier: Apache-2.0
//! Telling when two followed objects have converged onto one.
//!
//! When one object passes over another, the re-prompt of the hidden one
//! (its grown box) can latch onto the one in front: both tracks then carry
//! nearly the same mask and the identities would be confused. Two results
//! that overlap by at least the merge IoU while their previous masks did
//! not are such a convergence; the track whose new mask strays further from
//! its own previous one is the one that jumped. Tracks whose previous masks
//! already overlapped that much (a user prompting one object twice) are
//! left alone.

use crate::segment::masks::mask::BitMask;
use crate::segment::video::matching::{iou_at_least, mask_iou};

/// One track's result on this inference, with its previous mask.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Followed<'a> {
    pub new: &'a BitMask,
    /// The last accepted mask; `None` for a first acquisition, which never
    /// counts as a convergence.
    pub previous: Option<&'a BitMask>,
}

/// Indices (into `followed`) of the results that jumped onto another
/// object's, ascending. With `keep_prior_duplicates` false (everything
/// mode, where two objects with one mask are never wanted), pairs that
/// overlapped that much before count too.
pub(crate) fn converged(
    followed: &[Followed<'_>],
    merge_iou: f32,
    keep_prior_duplicates: bool,
) -> Vec<usize> {
    // Every pair is checked, so each mask's area is counted once here and
    // most pairs are ruled out by their areas and boxes (`iou_at_least`).
    let areas: Vec<(u64, Option<u64>)> = followed
        .iter()
        .map(|f| (f.new.count_ones(), f.previous.map(BitMask::count_ones)))
        .collect();
    // How far each new mask strayed from its previous one: wanted only for
    // the results in a converged pair, computed once each.
    let mut stayed: Vec<Option<f32>> = vec![None; followed.len()];
    let mut stay = |k: usize| -> f32 {
        let Some(slot) = stayed.get_mut(k) else {
            return 0.0;
        };
        *slot.get_or_insert_with(|| {
            followed
                .get(k)
                .and_then(|f| Some(mask_iou(f.new, f.previous?)))
                .unwrap_or(0.0)
        })
    };
    let mut pairs = Vec::new();
    for (i, (a, &(area_a, previous_a))) in followed.iter().zip(&areas).enumerate() {
        let (Some(pa), Some(previous_a)) = (a.previous, previous_a) else {
            continue;
        };
        for (j, (b, &(area_b, previous_b))) in followed.iter().zip(&areas).enumerate().skip(i + 1) {
            let (Some(pb), Some(previous_b)) = (b.previous, previous_b) else {
                continue;
            };
            let Some(now) = iou_at_least(a.new, (b.new, (0, 0)), (area_a, area_b), merge_iou)
            else {
                continue;
            };
            if !keep_prior_duplicates
                || iou_at_least(pa, (pb, (0, 0)), (previous_a, previous_b), merge_iou).is_none()
            {
                pairs.push((now, i, j, stay(i), stay(j)));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let mut rejected = vec![false; followed.len()];
    for (_, i, j, stay_i, stay_j) in pairs {
        if rejected.get(i) == Some(&true) || rejected.get(j) == Some(&true) {
            continue;
        }
        // The one that stayed closer to itself keeps the mask; ties: the
        // later one (higher index, younger in everything mode) goes.
        let loser = if stay_i < stay_j { i } else { j };
        if let Some(flag) = rejected.get_mut(loser) {
            *flag = true;
        }
    }
    rejected
        .iter()
        .enumerate()
        .filter_map(|(i, &r)| r.then_some(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, w: u32, h: u32) -> BitMask {
        BitMask::from_fn(x, y, w, h, |_, _| true)
    }

    #[test]
    fn the_track_that_jumped_is_rejected() {
        let (a0, b0) = (rect(0, 0, 10, 10), rect(30, 0, 10, 10));
        // b moved onto a's new position; a stayed.
        let (a1, b1) = (rect(2, 0, 10, 10), rect(2, 0, 10, 10));
        let f = [
            Followed {
                new: &a1,
                previous: Some(&a0),
            },
            Followed {
                new: &b1,
                previous: Some(&b0),
            },
        ];
        assert_eq!(converged(&f, 0.7, true), vec![1]);
        // Swapped order, same answer.
        let g = [f[1], f[0]];
        assert_eq!(converged(&g, 0.7, true), vec![0]);
    }

    #[test]
    fn prior_duplicates_and_first_acquisitions_are_left_alone() {
        let a = rect(0, 0, 10, 10);
        let twice = [
            Followed {
                new: &a,
                previous: Some(&a),
            },
            Followed {
                new: &a,
                previous: Some(&a),
            },
        ];
        assert!(converged(&twice, 0.7, true).is_empty());
        // Everything mode: one of them goes (the later one on a tie).
        assert_eq!(converged(&twice, 0.7, false), vec![1]);
        let fresh = [
            Followed {
                new: &a,
                previous: None,
            },
            Followed {
                new: &a,
                previous: Some(&a),
            },
        ];
        assert!(converged(&fresh, 0.7, true).is_empty());
        // Apart now: nothing to reject.
        let (b0, b1) = (rect(50, 0, 10, 10), rect(51, 0, 10, 10));
        let apart = [
            Followed {
                new: &a,
                previous: Some(&a),
            },
            Followed {
                new: &b1,
                previous: Some(&b0),
            },
        ];
        assert!(converged(&apart, 0.7, true).is_empty());
    }

    /// `converged` as first written: every pair's IoUs counted, with no
    /// bounds and no cache.
    fn converged_reference(followed: &[Followed<'_>], merge_iou: f32, keep: bool) -> Vec<usize> {
        let mut pairs = Vec::new();
        for (i, a) in followed.iter().enumerate() {
            let Some(pa) = a.previous else { continue };
            for (j, b) in followed.iter().enumerate().skip(i + 1) {
                let Some(pb) = b.previous else { continue };
                let now = mask_iou(a.new, b.new);
                if now >= merge_iou && (!keep || mask_iou(pa, pb) < merge_iou) {
                    pairs.push((now, i, j, mask_iou(a.new, pa), mask_iou(b.new, pb)));
                }
            }
        }
        pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        let mut rejected = vec![false; followed.len()];
        for (_, i, j, stay_i, stay_j) in pairs {
            if !rejected[i] && !rejected[j] {
                rejected[if stay_i < stay_j { i } else { j }] = true;
            }
        }
        (0..followed.len()).filter(|&i| rejected[i]).collect()
    }

    #[test]
    fn bounded_checks_reject_what_counting_every_pair_rejects() {
        let mut next = crate::segment::testing::random_below(11);
        let mut rejections = 0;
        for round in 0..40 {
            // A few base shapes, each result a jittered, partly eroded copy
            // of one: many pairs near the merge IoU, some exactly alike.
            let bases: Vec<(u32, u32, u32, u32)> = (0..3)
                .map(|_| (next(30), next(30), 4 + next(40), 4 + next(30)))
                .collect();
            let shape = |next: &mut dyn FnMut(u32) -> u32| {
                let (x, y, w, h) = bases[next(3) as usize];
                let (dx, dy, keep) = (next(4), next(4), 7 + next(4));
                let cells: Vec<bool> = (0..w * h).map(|_| next(10) < keep).collect();
                BitMask::from_fn(x + dx, y + dy, w, h, |c, r| cells[(r * w + c) as usize])
            };
            let n = 2 + next(10) as usize;
            let mut new = Vec::new();
            let mut old = Vec::new();
            for _ in 0..n {
                new.push(shape(&mut next));
                old.push(shape(&mut next));
            }
            new.push(BitMask::default());
            old.push(BitMask::default());
            let followed: Vec<Followed<'_>> = new
                .iter()
                .zip(&old)
                .enumerate()
                .map(|(k, (new, old))| Followed {
                    new,
                    previous: (k % 5 != 4).then_some(old),
                })
                .collect();
            for merge_iou in [0.0, 0.3, 0.5, 0.7, 0.9, 1.0, f32::NAN] {
                for keep in [true, false] {
                    let fast = converged(&followed, merge_iou, keep);
                    let reference = converged_reference(&followed, merge_iou, keep);
                    assert_eq!(
                        fast, reference,
                        "round {round}, merge IoU {merge_iou}, {keep}"
                    );
                    rejections += fast.len();
                }
            }
        }
        // The comparison means something only if some were rejected.
        assert!(rejections > 100, "{rejections}");
    }

    #[test]
    fn three_onto_one_leaves_one() {
        let target = rect(0, 0, 10, 10);
        let p = [rect(0, 0, 10, 10), rect(20, 0, 10, 10), rect(40, 0, 10, 10)];
        let f: Vec<Followed<'_>> = p
            .iter()
            .map(|prev| Followed {
                new: &target,
                previous: Some(prev),
            })
            .collect();
        assert_eq!(converged(&f, 0.7, true), vec![1, 2]);
    }
}
