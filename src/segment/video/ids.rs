// SPDX-License-Identifier: Apache-2.0
//! Object identities that are never handed out twice within a stream.

/// Hands out increasing ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IdCounter {
    next: u64,
}

impl IdCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh id (saturates at `u64::MAX`, which no stream reaches).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next;
        self.next = self.next.saturating_add(1);
        id
    }

    /// Makes every later id at least `n` (prompted objects take the ids
    /// `0..n` of their prompt indices; later everything-mode objects do not
    /// collide with them).
    pub fn reserve_below(&mut self, n: u64) {
        self.next = self.next.max(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_skip_reserved_ones() {
        let mut ids = IdCounter::new();
        assert_eq!((ids.next_id(), ids.next_id()), (0, 1));
        ids.reserve_below(5);
        assert_eq!(ids.next_id(), 5);
        ids.reserve_below(2);
        assert_eq!(ids.next_id(), 6);
        let mut end = IdCounter { next: u64::MAX };
        assert_eq!((end.next_id(), end.next_id()), (u64::MAX, u64::MAX));
    }
}
