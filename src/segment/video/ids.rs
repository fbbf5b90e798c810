// SPDX-License-Identifier: Apache-2.0
//! Object identities that are never handed out twice within a stream.
//!
//! One counter serves everything mode, prompts added at run time and
//! detections ([`PromptSet`](super::prompt_set::PromptSet),
//! [`DetectionIds`](super::detections::DetectionIds)); clones share it, so
//! the element's prompt sources (streaming thread) and the segmenter (maybe
//! on the worker) never give two objects one id.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Hands out increasing ids; clones share the count.
#[derive(Debug, Clone, Default)]
pub struct IdCounter {
    next: Arc<AtomicU64>,
}

impl IdCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh id (saturates at `u64::MAX`, which no stream reaches).
    pub fn next_id(&self) -> u64 {
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(1);
            match self.next.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return current,
                Err(actual) => current = actual,
            }
        }
    }

    /// Makes every later id at least `n` (a replaced prompt list takes the
    /// ids `0..n` of its indices; later objects do not collide with them).
    pub fn reserve_below(&self, n: u64) {
        self.next.fetch_max(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_skip_reserved_ones() {
        let ids = IdCounter::new();
        assert_eq!((ids.next_id(), ids.next_id()), (0, 1));
        ids.reserve_below(5);
        assert_eq!(ids.next_id(), 5);
        ids.reserve_below(2);
        assert_eq!(ids.next_id(), 6);
        let end = IdCounter {
            next: Arc::new(AtomicU64::new(u64::MAX)),
        };
        assert_eq!((end.next_id(), end.next_id()), (u64::MAX, u64::MAX));
    }

    #[test]
    fn clones_share_the_count() {
        let a = IdCounter::new();
        let b = a.clone();
        assert_eq!((a.next_id(), b.next_id(), a.next_id()), (0, 1, 2));
    }
}
