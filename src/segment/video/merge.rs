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
use crate::segment::video::matching::mask_iou;

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
    let mut pairs = Vec::new();
    for (i, a) in followed.iter().enumerate() {
        let Some(pa) = a.previous else { continue };
        for (j, b) in followed.iter().enumerate().skip(i + 1) {
            let Some(pb) = b.previous else { continue };
            let now = mask_iou(a.new, b.new);
            if now >= merge_iou && (!keep_prior_duplicates || mask_iou(pa, pb) < merge_iou) {
                pairs.push((now, i, j, mask_iou(a.new, pa), mask_iou(b.new, pb)));
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
