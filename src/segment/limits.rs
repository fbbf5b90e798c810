// SPDX-License-Identifier: Apache-2.0
//! What one prompt, one frame and one decoder call may ask for.
//!
//! The decoder's memory grows with the square of the points in a prompt
//! (its attention is over all prompt tokens), so a valid but huge prompt can
//! exhaust the host. These bounds are far above what SAM is used with and
//! are documented in docs/element.md; input beyond them is rejected with an
//! error that names the limit.

/// Points (positive and negative) in one object's prompt.
pub const MAX_POINTS_PER_PROMPT: usize = 64;
/// Prompted objects per frame.
pub const MAX_PROMPTS: usize = 1024;
/// Largest coordinate magnitude accepted, in any unit (pixels or fractions).
pub const MAX_COORDINATE: f32 = 1.0e6;
/// Prompts per decoder call.
pub const MAX_PROMPTS_PER_BATCH: usize = 256;
/// Bytes of per-prompt image tokens (one embedding-sized f32 tensor per
/// prompt) that one decoder call may hold, whatever the batch asked for.
/// The decoder's transformer keeps several such tensors alive per prompt;
/// at full size (64x64x256, 4 MiB each) this bound allows 4 prompts a call.
/// Measured on full-size TinySAM (docs/benchmarks.md, "Everything mode:
/// memory"): in everything mode 64 prompts a call peaked at 4647 MiB RSS
/// against 1232 MiB for 4, and 4 a call were 1.08-1.14x faster per prompt
/// than 8 or 64, their tensors staying in cache. Small models keep nearly
/// their whole batch (the fixture's 24x24x128 embedding allows 56).
/// tools/bench.py times the split decoder at the batch this gives, and
/// keeps a copy of the value.
pub const MAX_DECODER_CALL_TOKEN_BYTES: usize = 16 << 20;

/// Prompts per decoder call that [`MAX_DECODER_CALL_TOKEN_BYTES`] allows
/// for an embedding of `channels x height x width` (at least 1).
pub fn prompts_per_call_for_embedding(channels: usize, height: usize, width: usize) -> usize {
    let per_prompt = channels
        .saturating_mul(height)
        .saturating_mul(width)
        .saturating_mul(size_of::<f32>());
    (MAX_DECODER_CALL_TOKEN_BYTES / per_prompt.max(1)).max(1)
}

/// Everything mode: dense grid points per side.
pub const MAX_POINTS_PER_SIDE: usize = 256;
/// Everything mode: candidate masks held between filtering and NMS; the best
/// by predicted IoU are kept when more pass the filters.
pub const MAX_EVERYTHING_CANDIDATES: usize = 1024;
/// Intra-op threads per ONNX Runtime session.
pub const MAX_THREADS: usize = 64;
/// Characters of rejected user input quoted back in a message.
pub const MAX_QUOTED_CHARS: usize = 120;

/// `text`, cut to [`MAX_QUOTED_CHARS`] characters with a note of its full
/// length, for quoting user input in messages.
pub fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_calls_are_bounded_by_their_per_prompt_tokens() {
        // full-size TinySAM, the fixture, a degenerate embedding
        assert_eq!(prompts_per_call_for_embedding(256, 64, 64), 4);
        assert_eq!(prompts_per_call_for_embedding(128, 24, 24), 56);
        assert_eq!(
            prompts_per_call_for_embedding(0, 0, 0),
            MAX_DECODER_CALL_TOKEN_BYTES
        );
        assert_eq!(prompts_per_call_for_embedding(usize::MAX, 2, 2), 1);
    }

    #[test]
    fn quoting_cuts_long_input() {
        assert_eq!(quote(" point=1,2 "), "point=1,2");
        let long = "point=1,2 ".repeat(100_000);
        let quoted = quote(&long);
        assert!(quoted.chars().count() < MAX_QUOTED_CHARS + 40, "{quoted}");
        assert!(quoted.ends_with(&format!("({} bytes in all)", long.trim().len())));
        // Never cuts inside a multi-byte character.
        assert!(quote(&"é".repeat(500)).starts_with('é'));
    }
}
