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

/// A binary mask cropped to its box (frame pixel coordinates), bit-packed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BitMask {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    bits: Vec<u8>,
}

/// Bytes needed for `count` bits.
fn packed_len(count: usize) -> usize {
    count.div_ceil(8)
}

impl BitMask {
    /// A mask from packed bits; `None` unless `bits` holds exactly
    /// `ceil(width * height / 8)` bytes.
    pub fn from_packed(x: u32, y: u32, width: u32, height: u32, bits: Vec<u8>) -> Option<Self> {
        let count = (width as usize).checked_mul(height as usize)?;
        (bits.len() == packed_len(count)).then_some(BitMask {
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
            bits: writer.finish(),
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
        self.bits.iter().all(|&b| b == 0)
    }

    /// The packed bits (see the module documentation).
    pub fn bits(&self) -> &[u8] {
        &self.bits
    }

    /// The packed bits, by value.
    pub fn into_bits(self) -> Vec<u8> {
        self.bits
    }

    /// Whether pixel (`col`, `row`) of the box is set; false outside the box.
    pub fn get(&self, col: u32, row: u32) -> bool {
        if col >= self.width || row >= self.height {
            return false;
        }
        let index = row as usize * self.width as usize + col as usize;
        self.bits
            .get(index / 8)
            .is_some_and(|byte| byte & (0x80 >> (index % 8)) != 0)
    }

    /// Whether frame pixel (`x`, `y`) is set.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        match (x.checked_sub(self.x), y.checked_sub(self.y)) {
            (Some(col), Some(row)) => self.get(col, row),
            _ => false,
        }
    }

    /// Number of set pixels.
    pub fn count_ones(&self) -> u64 {
        self.bits.iter().map(|b| u64::from(b.count_ones())).sum()
    }
}

/// Appends bits MSB-first into bytes.
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    len: usize,
}

impl BitWriter {
    pub(crate) fn with_capacity(bits: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(packed_len(bits)),
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, bit: bool) {
        let shift = 7 - (self.len % 8);
        if shift == 7 {
            self.bytes.push(0);
        }
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 1 << shift;
        }
        self.len += 1;
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
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
    fn low_res_logits_check_their_size() {
        assert!(LowResLogits::new(2, 2, vec![0.0; 4]).is_some());
        assert!(LowResLogits::new(2, 2, vec![0.0; 3]).is_none());
    }
}
