// SPDX-License-Identifier: Apache-2.0
//! When everything mode runs its point grid.
//!
//! The grid (hundreds of decoder prompts) runs on the first inference,
//! then every `interval` inferences; in between only the known objects are
//! followed (one prompt each). It also runs early when the followed objects
//! stop explaining the frame: when at least [`LOST_TRIGGER_COUNT`] of them,
//! or at least a quarter ([`LOST_TRIGGER_FRACTION`]), were lost on this
//! inference. Without tracking it runs on every inference.

/// Objects lost on one inference that bring the grid forward.
pub const LOST_TRIGGER_COUNT: usize = 2;
/// Fraction of the followed objects lost on one inference that brings the
/// grid forward.
pub const LOST_TRIGGER_FRACTION: f64 = 0.25;

/// The grid's timetable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GridSchedule {
    /// Inferences since the last grid run; `None` before the first.
    since_grid: Option<usize>,
}

impl GridSchedule {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this inference runs the grid, given how many of the
    /// `followed` objects were `lost` on it.
    pub fn due(&self, interval: usize, tracking: bool, followed: usize, lost: usize) -> bool {
        let Some(since) = self.since_grid else {
            return true;
        };
        !tracking || since.saturating_add(1) >= interval.max(1) || unexplained(followed, lost)
    }

    /// Records this inference: with or without the grid.
    pub fn record(&mut self, grid: bool) {
        self.since_grid = if grid {
            Some(0)
        } else {
            self.since_grid.map(|n| n.saturating_add(1))
        };
    }
}

/// Whether `lost` of `followed` objects is enough to look again.
fn unexplained(followed: usize, lost: usize) -> bool {
    lost > 0
        && (lost >= LOST_TRIGGER_COUNT || lost as f64 >= LOST_TRIGGER_FRACTION * followed as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inferences (of `n`) that run the grid, nothing lost.
    fn grid_frames(interval: usize, tracking: bool, n: usize) -> Vec<usize> {
        let mut s = GridSchedule::new();
        (0..n)
            .filter(|_| {
                let due = s.due(interval, tracking, 10, 0);
                s.record(due);
                due
            })
            .collect()
    }

    #[test]
    fn every_interval_inferences() {
        assert_eq!(grid_frames(10, true, 25), vec![0, 10, 20]);
        assert_eq!(grid_frames(3, true, 7), vec![0, 3, 6]);
        assert_eq!(grid_frames(1, true, 4), vec![0, 1, 2, 3]);
        // 0 is taken as 1.
        assert_eq!(grid_frames(0, true, 3), vec![0, 1, 2]);
        assert_eq!(grid_frames(10, false, 3), vec![0, 1, 2]);
        assert_eq!(grid_frames(usize::MAX, true, 3), vec![0]);
    }

    #[test]
    fn losses_bring_it_forward() {
        let mut s = GridSchedule::new();
        s.record(true);
        assert!(!s.due(10, true, 10, 0));
        assert!(!s.due(10, true, 10, 1));
        assert!(s.due(10, true, 10, 2));
        // One of three is a third.
        assert!(s.due(10, true, 3, 1));
        assert!(s.due(10, true, 1, 1));
        assert!(!s.due(10, true, 0, 0));
        s.record(true);
        assert_eq!(
            s,
            GridSchedule {
                since_grid: Some(0)
            }
        );
    }
}
