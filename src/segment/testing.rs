// SPDX-License-Identifier: Apache-2.0
//! Helpers for the core's unit tests.

/// A deterministic stream of numbers below the `n` asked for each time (the
/// high bits of a 64-bit linear congruential generator started at
/// `seed`), for random test inputs that are the same on every run.
pub(crate) fn random_below(seed: u64) -> impl FnMut(u32) -> u32 {
    let mut state = seed;
    move |n: u32| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % u64::from(n.max(1))) as u32
    }
}
