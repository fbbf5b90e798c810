// SPDX-License-Identifier: Apache-2.0
//! Which frames are inferred, and where: the `processing` mode (`auto`
//! resolves to `async` for live sources) and DL Streamer's
//! `inference-interval` (1 = every frame, N = every Nth frame; the frames
//! in between carry the last masks).

use super::Processing;

/// Where inference runs, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On the streaming thread: each inferred frame leaves with its own masks.
    Sync,
    /// On the worker thread: frames leave at once with the newest masks.
    Async,
}

/// `auto` is `async` when upstream is live (as the LATENCY query says) and
/// `sync` otherwise.
pub fn resolve(processing: Processing, upstream_live: bool) -> Mode {
    match processing {
        Processing::Sync => Mode::Sync,
        Processing::Async => Mode::Async,
        Processing::Auto if upstream_live => Mode::Async,
        Processing::Auto => Mode::Sync,
    }
}

/// Counts frames for `inference-interval`.
#[derive(Debug, Default)]
pub struct Interval {
    /// Frames since the last one due for inference.
    since_due: u64,
    started: bool,
}

impl Interval {
    /// Whether this frame is due for inference with `interval` (0 counts as 1).
    pub fn due(&mut self, interval: u32) -> bool {
        let interval = u64::from(interval.max(1));
        if !self.started || self.since_due + 1 >= interval {
            self.started = true;
            self.since_due = 0;
            true
        } else {
            self.since_due += 1;
            false
        }
    }

    /// The next frame is due (after a flush or new prompts).
    pub fn restart(&mut self) {
        *self = Interval::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_liveness() {
        assert_eq!(resolve(Processing::Auto, true), Mode::Async);
        assert_eq!(resolve(Processing::Auto, false), Mode::Sync);
        assert_eq!(resolve(Processing::Sync, true), Mode::Sync);
        assert_eq!(resolve(Processing::Async, false), Mode::Async);
    }

    #[test]
    fn every_nth_frame_is_due() {
        let mut interval = Interval::default();
        let due: Vec<bool> = (0..7).map(|_| interval.due(3)).collect();
        assert_eq!(due, [true, false, false, true, false, false, true]);
        let mut every = Interval::default();
        assert!((0..5).all(|_| every.due(1)));
        assert!((0..3).all(|_| every.due(0)), "0 counts as 1");
        interval.due(3);
        interval.restart();
        assert!(interval.due(3), "a restart makes the next frame due");
    }
}
