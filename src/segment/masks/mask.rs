// SPDX-License-Identifier: Apache-2.0
//! The mask encodings the core hands out.
//!
//! [`BitMask`]: a binary mask cropped to its bounding box, one bit per pixel,
//! row-major, most significant bit first, rows *not* padded to bytes: bit `i`
//! (pixel `(i % width, i / width)` of the box) is bit `7 - i % 8` of byte
//! `i / 8`. In Python:
//!
//! ```text
//! np.unpackbits(np.frombuffer(bits, np.uint8), count=w * h).reshape(h, w)
//! ```
//!
//! [`LowResLogits`]: the decoder's low-resolution mask logits (for example
//! 256x256 for a 1024 model), which the decoder accepts back as `mask_input`
//! to refine or follow an object.

use bitvec::prelude::{BitSlice, BitVec, Msb0};

/// A binary mask cropped to its box (frame pixel coordinates), bit-packed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BitMask {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// Exactly `width * height` bits; the unused bits of the last byte are 0.
    bits: BitVec<u8, Msb0>,
}

impl BitMask {
    /// A mask from packed bits; `None` unless `bits` holds exactly
    /// `ceil(width * height / 8)` bytes. Bits past the last pixel are ignored.
    pub fn from_packed(x: u32, y: u32, width: u32, height: u32, bits: Vec<u8>) -> Option<Self> {
        let count = (width as usize).checked_mul(height as usize)?;
        if bits.len() != count.div_ceil(8) {
            return None;
        }
        let mut bits = BitVec::try_from_vec(bits).ok()?;
        bits.truncate(count);
        bits.set_uninitialized(false);
        Some(BitMask {
            x,
            y,
            width,
            height,
            bits,
        })
    }

    /// A `width` x `height` mask at (`x`, `y`) whose pixel (col, row) of the
    /// box is `is_set(col, row)`.
    pub fn from_fn(
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        mut is_set: impl FnMut(u32, u32) -> bool,
    ) -> Self {
        let mut writer = BitWriter::with_capacity(width as usize * height as usize);
        for row in 0..height {
            for col in 0..width {
                writer.push(is_set(col, row));
            }
        }
        BitMask {
            x,
            y,
            width,
            height,
            bits: writer.into_bit_vec(),
        }
    }

    /// The `width` x `height` box at frame pixel (`x`, `y`) of this mask:
    /// a mask whose pixels are this one's, 0 outside it. Copied a row's
    /// overlap at a time (the region masks of every frame are cut here).
    pub fn cropped(&self, x: u32, y: u32, width: u32, height: u32) -> BitMask {
        let (w, own_w) = (width as usize, self.width as usize);
        let zeros = BitVec::<u8, Msb0>::repeat(false, w);
        let mut writer = BitWriter::with_capacity(w * height as usize);
        // The columns of the box that the mask covers, in box coordinates.
        let left = self.x.saturating_sub(x).min(width) as usize;
        let right = (u64::from(self.x) + u64::from(self.width))
            .saturating_sub(u64::from(x))
            .min(u64::from(width)) as usize;
        for row in 0..height {
            let own_row = (u64::from(y) + u64::from(row)).checked_sub(u64::from(self.y));
            let span = match own_row {
                Some(r) if r < u64::from(self.height) && left < right => {
                    // Where the box's column `left` falls in the mask's bits.
                    let first = (x as usize + left) - self.x as usize;
                    let start = r as usize * own_w + first;
                    self.bits.get(start..start + (right - left))
                }
                _ => None,
            };
            match span {
                Some(bits) => {
                    writer.extend(&zeros[..left]);
                    writer.extend(bits);
                    writer.extend(&zeros[right..]);
                }
                None => writer.extend(&zeros),
            }
        }
        BitMask {
            x,
            y,
            width,
            height,
            bits: writer.into_bit_vec(),
        }
    }

    /// Left edge of the box in frame pixels.
    pub fn x(&self) -> u32 {
        self.x
    }

    /// Top edge of the box in frame pixels.
    pub fn y(&self) -> u32 {
        self.y
    }

    /// Width of the box (0 for an empty mask).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height of the box (0 for an empty mask).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Whether no pixel is set.
    pub fn is_empty(&self) -> bool {
        self.bits.not_any()
    }

    /// The packed bits (see the module documentation).
    pub fn bits(&self) -> &[u8] {
        self.bits.as_raw_slice()
    }

    /// The pixels of the box, row-major, one bit each.
    pub fn bit_slice(&self) -> &BitSlice<u8, Msb0> {
        &self.bits
    }

    /// The packed bits, by value.
    pub fn into_bits(self) -> Vec<u8> {
        self.bits.into_vec()
    }

    /// Whether pixel (`col`, `row`) of the box is set; false outside the box.
    pub fn get(&self, col: u32, row: u32) -> bool {
        if col >= self.width || row >= self.height {
            return false;
        }
        let index = row as usize * self.width as usize + col as usize;
        self.bits.get(index).is_some_and(|bit| *bit)
    }

    /// Whether frame pixel (`x`, `y`) is set.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        match (x.checked_sub(self.x), y.checked_sub(self.y)) {
            (Some(col), Some(row)) => self.get(col, row),
            _ => false,
        }
    }

    /// `n` (at most 64) pixels from bit `at` of the box on, row-major, in
    /// the top bits of a word, the first pixel in the most significant;
    /// bits past the mask read as 0. Read from the bytes directly: bitvec's
    /// general `load_be` made the pairwise overlap counts several times
    /// slower.
    pub(crate) fn word_at(&self, at: usize, n: usize) -> u64 {
        let bytes = self.bits.as_raw_slice();
        let (first, shift) = (at / 8, (at % 8) as u32);
        let mut buf = [0u8; 9];
        match bytes.get(first..first.saturating_add(9)) {
            Some(src) => buf.copy_from_slice(src),
            None => {
                let src = bytes.get(first..).unwrap_or_default();
                if let Some(dst) = buf.get_mut(..src.len()) {
                    dst.copy_from_slice(src);
                }
            }
        }
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8] = buf;
        let word = u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
        let word = if shift == 0 {
            word
        } else {
            (word << shift) | u64::from(b8 >> (8 - shift))
        };
        match n {
            0 => 0,
            1..=63 => word & !(u64::MAX >> n),
            _ => word,
        }
    }

    /// The pixels from bit `at` of the box on, row-major, one `bool` each,
    /// as many as `out` holds; past the mask they are `false`.
    pub(crate) fn unpack(&self, at: usize, out: &mut [bool]) {
        for (k, chunk) in out.chunks_mut(64).enumerate() {
            let word = self.word_at(at + 64 * k, chunk.len());
            for (j, pixel) in chunk.iter_mut().enumerate() {
                *pixel = word >> (63 - j) & 1 == 1;
            }
        }
    }

    /// Number of set pixels.
    pub fn count_ones(&self) -> u64 {
        self.bits.count_ones() as u64
    }
}

/// Appends bits MSB-first into bytes, without padding between rows.
pub(crate) struct BitWriter {
    bits: BitVec<u8, Msb0>,
}

impl BitWriter {
    pub(crate) fn with_capacity(bits: usize) -> Self {
        BitWriter {
            bits: BitVec::with_capacity(bits),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, bit: bool) {
        self.bits.push(bit);
    }

    /// Appends `bits` (a bit-sliced copy, not bit by bit).
    pub(crate) fn extend(&mut self, bits: &BitSlice<u8, Msb0>) {
        self.bits.extend_from_bitslice(bits);
    }

    /// The bytes written, the unused bits of the last one 0.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.into_bit_vec().into_vec()
    }

    fn into_bit_vec(mut self) -> BitVec<u8, Msb0> {
        self.bits.set_uninitialized(false);
        self.bits
    }
}

/// Low-resolution mask logits of one object, as the decoder produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct LowResLogits {
    width: usize,
    height: usize,
    values: Vec<f32>,
}

impl LowResLogits {
    /// Logits in row-major order; `None` unless `values.len() == width * height`.
    pub fn new(width: usize, height: usize, values: Vec<f32>) -> Option<Self> {
        (width.checked_mul(height) == Some(values.len())).then_some(LowResLogits {
            width,
            height,
            values,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Row-major logits, `width * height` values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_is_msb_first_without_row_padding() {
        // 3x3 mask: a diagonal. Bits: 100 010 001 -> 10001000 1(0000000)
        let mask = BitMask::from_fn(5, 7, 3, 3, |c, r| c == r);
        assert_eq!(mask.bits(), &[0b1000_1000, 0b1000_0000]);
        assert_eq!(mask.count_ones(), 3);
        assert!(mask.contains(6, 8));
        assert!(!mask.contains(6, 7));
        assert!(!mask.contains(4, 7));
    }

    #[test]
    fn words_hold_the_pixels_from_any_bit_on() {
        let pattern = |c: u32, r: u32| (c * 5 + r * 11) % 7 < 3;
        for (w, h) in [(1, 1), (9, 2), (64, 1), (37, 5), (130, 3)] {
            let mask = BitMask::from_fn(0, 0, w, h, pattern);
            let total = (w * h) as usize;
            for at in 0..total + 10 {
                for n in 0..=64usize {
                    let expected = (0..n).fold(0u64, |word, k| {
                        let i = at + k;
                        let set = i < total && pattern(i as u32 % w, i as u32 / w);
                        word | (u64::from(set) << (63 - k))
                    });
                    assert_eq!(mask.word_at(at, n), expected, "{w}x{h} at {at}, {n} bits");
                }
                let mut pixels = vec![true; 150];
                mask.unpack(at, &mut pixels);
                for (k, &p) in pixels.iter().enumerate() {
                    let i = at + k;
                    assert_eq!(p, i < total && pattern(i as u32 % w, i as u32 / w));
                }
            }
        }
    }

    #[test]
    fn crops_hold_the_mask_pixels_and_zeros_around_them() {
        let mut next = crate::segment::testing::random_below(5);
        for _ in 0..300 {
            let (mx, my, mw, mh) = (next(30), next(30), next(80), next(10));
            let density = next(11);
            let mask = BitMask::from_fn(mx, my, mw, mh, |_, _| next(10) < density);
            let (x, y, w, h) = (next(60), next(50), next(100), next(20));
            let crop = mask.cropped(x, y, w, h);
            let expected = BitMask::from_fn(x, y, w, h, |c, r| mask.contains(x + c, y + r));
            assert_eq!(
                crop, expected,
                "{mw}x{mh} at {mx},{my} cut to {w}x{h} at {x},{y}"
            );
        }
        // Boxes far from the mask, and at the ends of the coordinates.
        let mask = BitMask::from_fn(5, 5, 3, 3, |_, _| true);
        assert_eq!(mask.cropped(u32::MAX - 2, 0, 2, 2).count_ones(), 0);
        assert_eq!(mask.cropped(0, u32::MAX - 2, 2, 2).count_ones(), 0);
        assert_eq!(mask.cropped(6, 6, 1, 1).count_ones(), 1);
    }

    #[test]
    fn round_trip_through_packed_bits() {
        let pattern = |c: u32, r: u32| (c * 7 + r * 3) % 5 < 2;
        for (w, h) in [(1, 1), (7, 3), (8, 8), (13, 5), (1, 17)] {
            let mask = BitMask::from_fn(0, 0, w, h, pattern);
            assert_eq!(mask.bits().len(), ((w * h) as usize).div_ceil(8));
            let again = BitMask::from_packed(0, 0, w, h, mask.bits().to_vec()).unwrap();
            for r in 0..h {
                for c in 0..w {
                    assert_eq!(again.get(c, r), pattern(c, r), "{w}x{h} at {c},{r}");
                }
            }
            // The unpadded layout numpy expects: bit i is pixel (i % w, i / w).
            for i in 0..(w * h) as usize {
                let bit = mask.bits()[i / 8] >> (7 - i % 8) & 1 == 1;
                assert_eq!(bit, pattern(i as u32 % w, i as u32 / w));
            }
        }
        assert!(BitMask::from_packed(0, 0, 3, 3, vec![0]).is_none());
    }

    #[test]
    fn bits_past_the_last_pixel_are_zero_and_ignored() {
        let mask = BitMask::from_packed(0, 0, 3, 1, vec![0b1011_1111]).unwrap();
        assert_eq!(mask.bits(), &[0b1010_0000]);
        assert_eq!(mask.count_ones(), 2);
        assert_eq!(mask.bit_slice().len(), 3);
        assert!(mask.get(0, 0) && !mask.get(1, 0) && mask.get(2, 0));
        assert!(!mask.get(3, 0));
        assert!(
            BitMask::from_packed(0, 0, 3, 1, vec![0b0001_1111])
                .unwrap()
                .is_empty()
        );
        assert_eq!(BitMask::default().bits(), &[] as &[u8]);
        assert!(BitMask::default().is_empty());

        let mut writer = BitWriter::with_capacity(10);
        for bit in [
            true, false, true, true, false, false, false, false, true, true,
        ] {
            writer.push(bit);
        }
        assert_eq!(writer.finish(), [0b1011_0000, 0b1100_0000]);
        let mask = BitMask::from_fn(0, 0, 5, 2, |c, r| c == 4 || r == 1);
        assert_eq!(mask.clone().into_bits(), [0b0000_1111, 0b1100_0000]);
        assert_eq!(mask.count_ones(), 6);
    }

    #[test]
    fn low_res_logits_check_their_size() {
        assert!(LowResLogits::new(2, 2, vec![0.0; 4]).is_some());
        assert!(LowResLogits::new(2, 2, vec![0.0; 3]).is_none());
    }
}
