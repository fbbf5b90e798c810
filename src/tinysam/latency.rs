// SPDX-License-Identifier: Apache-2.0
//! The latency the element reports: the longest processing time of the
//! last frames, with headroom, changed only in steps so that a live pipeline
//! is not asked to recompute its latency for every frame, and lowered again
//! when frames get faster (one slow frame does not raise it for good).

use std::collections::VecDeque;
use std::time::Duration;

/// Frames the estimate looks back over.
const WINDOW: usize = 32;
/// Headroom over the longest recent frame; also the step between reports.
const HEADROOM: f64 = 1.25;

#[derive(Debug, Default)]
pub struct LatencyEstimate {
    recent: VecDeque<Duration>,
    reported: Duration,
}

impl LatencyEstimate {
    /// The latency currently reported.
    pub fn reported(&self) -> Duration {
        self.reported
    }

    /// Records a frame's processing time; returns the new latency to report
    /// when it changes: when the longest recent frame exceeds what is
    /// reported, or when it fell so far that the report has twice the headroom.
    pub fn record(&mut self, elapsed: Duration) -> Option<Duration> {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(elapsed);
        let longest = self.recent.iter().copied().max().unwrap_or_default();
        let wanted = longest.mul_f64(HEADROOM);
        let too_low = longest > self.reported;
        let too_high = wanted.mul_f64(HEADROOM) < self.reported;
        if too_low || too_high {
            self.reported = wanted;
            Some(wanted)
        } else {
            None
        }
    }

    pub fn reset(&mut self) {
        *self = LatencyEstimate::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rises_at_once_and_in_steps() {
        let mut l = LatencyEstimate::default();
        assert_eq!(l.record(100 * MS), Some(125 * MS));
        // Within the headroom: no new report.
        assert_eq!(l.record(120 * MS), None);
        assert_eq!(l.record(110 * MS), None);
        assert_eq!(l.record(200 * MS), Some(250 * MS));
    }

    #[test]
    fn one_slow_frame_is_forgotten() {
        let mut l = LatencyEstimate::default();
        l.record(1000 * MS);
        let mut lowered = None;
        for _ in 0..WINDOW {
            lowered = lowered.or(l.record(100 * MS));
        }
        assert_eq!(lowered, Some(125 * MS));
        assert_eq!(l.reported(), 125 * MS);
    }
}
