// SPDX-License-Identifier: Apache-2.0
//! SAM image pre-processing: frame -> normalised, padded `[1, 3, S, S]` tensor.
//!
//! As in SAM's reference (`ResizeLongestSide` + `Sam.preprocess`): the
//! longest side is resized to `S` with Pillow's bilinear resampling
//! (a convolution that antialiases when downscaling: `fast_image_resize`'s
//! `Convolution(Bilinear)`, run horizontally then vertically as Pillow does),
//! the other side to `int(side * S / longest + 0.5)`; then each channel is
//! normalised with the pixel mean and standard deviation, and the right and
//! bottom are zero-padded to `S` x `S` *after* normalisation.
//!
//! Pillow's fixed-point coefficients have 22 bits, `fast_image_resize`'s
//! about 15, so a resized value can differ from Pillow's by one code value
//! (never more).

use std::time::{Duration, Instant};

use fast_image_resize as fr;
use ndarray::Array4;

use crate::segment::image::frame::{FrameView, PixelFormat};

/// SAM's pixel mean (RGB, 0..255 scale).
pub const SAM_PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// SAM's pixel standard deviation (RGB, 0..255 scale).
pub const SAM_PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// How a frame maps into the model's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Frame size in pixels.
    pub frame_width: u32,
    pub frame_height: u32,
    /// Size of the resized frame inside the model input (the rest is padding).
    pub resized_width: u32,
    pub resized_height: u32,
    /// Side `S` of the square model input.
    pub input_size: u32,
}

/// Why pre-processing could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    #[error("frame size {width}x{height} or model input size {input_size} is empty")]
    EmptySize {
        width: u32,
        height: u32,
        input_size: u32,
    },
    #[error("pixel standard deviation {0:?} has a zero or non-finite value")]
    BadStd([f32; 3]),
    #[error("pixel mean {0:?} has a non-finite value")]
    BadMean([f32; 3]),
    #[error("resizing the frame failed: {0}")]
    Resize(String),
}

/// SAM's `get_preprocess_shape` for one side: `int(side * scale + 0.5)`,
/// computed in double precision as Python does.
fn resized_side(side: u32, longest: u32, input_size: u32) -> u32 {
    let scale = f64::from(input_size) / f64::from(longest);
    let resized = (f64::from(side) * scale + 0.5).floor();
    // Never 0: a 1-pixel-thin frame still covers one input row.
    (resized as u32).clamp(1, input_size)
}

impl Geometry {
    /// The geometry of a `frame_width` x `frame_height` frame in an
    /// `input_size` model.
    pub fn new(
        frame_width: u32,
        frame_height: u32,
        input_size: u32,
    ) -> Result<Self, PreprocessError> {
        if frame_width == 0 || frame_height == 0 || input_size == 0 {
            return Err(PreprocessError::EmptySize {
                width: frame_width,
                height: frame_height,
                input_size,
            });
        }
        let longest = frame_width.max(frame_height);
        Ok(Geometry {
            frame_width,
            frame_height,
            resized_width: resized_side(frame_width, longest, input_size),
            resized_height: resized_side(frame_height, longest, input_size),
            input_size,
        })
    }

    /// Frame pixels -> model-input pixels: `input_size / longest side`,
    /// the same factor on both axes (the project's reference,
    /// `tools/tinysam/sam_io.py`; SAM's `apply_coords` uses the rounded
    /// resized size per axis instead, a sub-pixel difference).
    pub fn scale(&self) -> f64 {
        f64::from(self.input_size) / f64::from(self.frame_width.max(self.frame_height))
    }

    /// Frame x -> model-input x (in double precision, as the reference).
    pub fn to_model_x(&self, x: f32) -> f32 {
        (f64::from(x) * self.scale()) as f32
    }

    /// Frame y -> model-input y.
    pub fn to_model_y(&self, y: f32) -> f32 {
        (f64::from(y) * self.scale()) as f32
    }
}

/// Time spent in each pre-processing step of the last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreprocessTimings {
    /// Frame -> packed RGB8.
    pub conversion: Duration,
    /// Resizing to the model's resolution.
    pub resize: Duration,
    /// Normalisation and padding into the tensor.
    pub normalise: Duration,
}

/// Turns frames into model input tensors, reusing its buffers across frames.
pub struct Preprocessor {
    input_size: u32,
    /// Per-channel lookup: 8-bit value -> normalised value.
    lut: [[f32; 256]; 3],
    rgb: Vec<u8>,
    /// After the horizontal pass (resized width, frame height).
    horizontal: Vec<u8>,
    resized: Vec<u8>,
    resizer: fr::Resizer,
    tensor: Array4<f32>,
    /// Resized size whose pixels the tensor holds; padding outside is zero.
    filled: Option<(u32, u32)>,
}

impl std::fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessor")
            .field("input_size", &self.input_size)
            .finish_non_exhaustive()
    }
}

impl Preprocessor {
    /// A pre-processor for an `input_size` model with the given normalisation.
    pub fn new(input_size: u32, mean: [f32; 3], std: [f32; 3]) -> Result<Self, PreprocessError> {
        if input_size == 0 {
            return Err(PreprocessError::EmptySize {
                width: 0,
                height: 0,
                input_size,
            });
        }
        if std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(PreprocessError::BadStd(std));
        }
        if mean.iter().any(|m| !m.is_finite()) {
            return Err(PreprocessError::BadMean(mean));
        }
        let mut lut = [[0.0f32; 256]; 3];
        for ((table, m), s) in lut.iter_mut().zip(mean).zip(std) {
            for (value, slot) in table.iter_mut().enumerate() {
                // Same operation order as the reference: (x - mean) / std in f32.
                *slot = (value as f32 - m) / s;
            }
        }
        let side = input_size as usize;
        Ok(Preprocessor {
            input_size,
            lut,
            rgb: Vec::new(),
            horizontal: Vec::new(),
            resized: Vec::new(),
            resizer: fr::Resizer::new(),
            tensor: Array4::zeros((1, 3, side, side)),
            filled: None,
        })
    }

    /// Side `S` of the model input.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// The tensor of the last frame, `[1, 3, S, S]`.
    pub fn tensor(&self) -> &Array4<f32> {
        &self.tensor
    }

    /// Converts, resizes, normalises and pads `frame` into [`Self::tensor`].
    pub fn run(
        &mut self,
        frame: &FrameView<'_>,
    ) -> Result<(Geometry, PreprocessTimings), PreprocessError> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        if frame.format() == PixelFormat::Rgb
            && frame.stride(0) == Some(w * 3)
            && let Some(rgb) = frame.plane(0).and_then(|p| p.get(..w * h * 3))
        {
            // Already packed RGB without row padding: nothing to convert.
            return self.run_rgb8(rgb, frame.width(), frame.height());
        }
        let start = Instant::now();
        let mut rgb = std::mem::take(&mut self.rgb);
        frame.to_rgb8(&mut rgb);
        let conversion = start.elapsed();
        let result = self.run_rgb8(&rgb, frame.width(), frame.height());
        self.rgb = rgb;
        let (geometry, mut timings) = result?;
        timings.conversion = conversion;
        Ok((geometry, timings))
    }

    /// Like [`Self::run`] for a packed RGB8 image (`width * height * 3` bytes).
    pub fn run_rgb8(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<(Geometry, PreprocessTimings), PreprocessError> {
        let geometry = Geometry::new(width, height, self.input_size)?;
        let (rw, rh) = (geometry.resized_width, geometry.resized_height);

        let start = Instant::now();
        let same_size = (rw, rh) == (width, height);
        if !same_size {
            self.resize(rgb, width, height, rw, rh)?;
        }
        let resize = start.elapsed();

        let start = Instant::now();
        let source: &[u8] = if same_size { rgb } else { &self.resized };
        if self.filled != Some((rw, rh)) {
            // Another resized size leaves stale pixels in what is now padding.
            self.tensor.fill(0.0);
            self.filled = Some((rw, rh));
        }
        normalise_into(
            &self.lut,
            source,
            rw as usize,
            rh as usize,
            &mut self.tensor,
        );
        let normalise = start.elapsed();

        Ok((
            geometry,
            PreprocessTimings {
                conversion: Duration::ZERO,
                resize,
                normalise,
            },
        ))
    }

    /// Resizes in Pillow's order: horizontally first (rounded to 8 bits),
    /// then vertically. (`fast_image_resize` alone does 8-bit images the
    /// other way round, which lands many values one code value off.)
    fn resize(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        rw: u32,
        rh: u32,
    ) -> Result<(), PreprocessError> {
        let options = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
        let (src, mid): (&[u8], u32) = if rw != width {
            resize_into(
                &mut self.resizer,
                rgb,
                (width, height),
                &mut self.horizontal,
                (rw, height),
                &options,
            )?;
            (&self.horizontal, rw)
        } else {
            (rgb, width)
        };
        if rh != height {
            resize_into(
                &mut self.resizer,
                src,
                (mid, height),
                &mut self.resized,
                (rw, rh),
                &options,
            )
        } else {
            self.resized.clear();
            self.resized.extend_from_slice(src);
            Ok(())
        }
    }
}

/// One `fast_image_resize` pass from a packed RGB8 image into `out`.
fn resize_into(
    resizer: &mut fr::Resizer,
    src: &[u8],
    (width, height): (u32, u32),
    out: &mut Vec<u8>,
    (out_width, out_height): (u32, u32),
    options: &fr::ResizeOptions,
) -> Result<(), PreprocessError> {
    let error = |e: &dyn std::fmt::Display| PreprocessError::Resize(e.to_string());
    let src = fr::images::ImageRef::new(width, height, src, fr::PixelType::U8x3)
        .map_err(|e| error(&e))?;
    out.clear();
    out.resize(out_width as usize * out_height as usize * 3, 0);
    let mut dst = fr::images::Image::from_slice_u8(out_width, out_height, out, fr::PixelType::U8x3)
        .map_err(|e| error(&e))?;
    resizer
        .resize(&src, &mut dst, options)
        .map_err(|e| error(&e))
}

/// Writes the normalised channels of a packed RGB8 `width` x `height` image
/// into the top-left corner of the planar tensor.
fn normalise_into(
    lut: &[[f32; 256]; 3],
    rgb: &[u8],
    width: usize,
    height: usize,
    tensor: &mut Array4<f32>,
) {
    for (channel, table) in lut.iter().enumerate() {
        let mut plane = tensor.index_axis_mut(ndarray::Axis(1), channel);
        let mut plane = plane.index_axis_mut(ndarray::Axis(0), 0);
        for (src_row, mut dst_row) in rgb
            .chunks_exact(width * 3)
            .take(height)
            .zip(plane.rows_mut())
        {
            for (dst, pixel) in dst_row.iter_mut().zip(src_row.chunks_exact(3)) {
                if let Some(&value) = pixel.get(channel) {
                    *dst = table[usize::from(value)];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_follows_sam_rounding() {
        let g = Geometry::new(1920, 1080, 1024).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (1024, 576));
        let g = Geometry::new(640, 480, 1024).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (1024, 768));
        // 1000 * 1024 / 1333 = 768.19 -> 768; 333 * 1024 / 1000 = 340.99 -> 341
        let g = Geometry::new(1333, 1000, 1024).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (1024, 768));
        let g = Geometry::new(1000, 333, 1024).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (1024, 341));
        let g = Geometry::new(5, 2, 256).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (256, 102));
        let g = Geometry::new(4, 1, 10).unwrap(); // 2.5 + 0.5 = 3
        assert_eq!((g.resized_width, g.resized_height), (10, 3));
        let g = Geometry::new(5000, 1, 256).unwrap(); // 0.05 -> clamped to 1
        assert_eq!(g.resized_height, 1);
        assert!(Geometry::new(0, 10, 256).is_err());
    }

    #[test]
    fn coordinates_scale_by_the_longest_side() {
        let g = Geometry::new(1000, 333, 1024).unwrap();
        assert!((g.to_model_x(500.0) - 512.0).abs() < 1e-4);
        // 333 * 1.024 = 340.992, though the resized height rounds to 341.
        assert!((g.to_model_y(333.0) - 340.992).abs() < 1e-4);
    }

    #[test]
    fn tensor_is_normalised_and_zero_padded() {
        // 4x2 frame into an 8 input: resized 8x4, rows 4..8 padding.
        let mut pre = Preprocessor::new(8, SAM_PIXEL_MEAN, SAM_PIXEL_STD).unwrap();
        let rgb = [200u8, 100, 50].repeat(8);
        let frame = FrameView::packed(PixelFormat::Rgb, 4, 2, &rgb, 12).unwrap();
        let (g, _) = pre.run(&frame).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (8, 4));
        let t = pre.tensor();
        assert_eq!(t.shape(), &[1, 3, 8, 8]);
        for (c, v) in [200.0f32, 100.0, 50.0].into_iter().enumerate() {
            let want = (v - SAM_PIXEL_MEAN[c]) / SAM_PIXEL_STD[c];
            for y in 0..8 {
                for x in 0..8 {
                    let got = t[[0, c, y, x]];
                    if y < 4 {
                        assert!((got - want).abs() < 1e-6, "c{c} {x},{y}: {got}");
                    } else {
                        assert_eq!(got, 0.0);
                    }
                }
            }
        }

        // A taller frame next: the former image rows must become padding.
        let rgb = [10u8, 10, 10].repeat(2 * 4);
        let frame = FrameView::packed(PixelFormat::Rgb, 2, 4, &rgb, 6).unwrap();
        let (g, _) = pre.run(&frame).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (4, 8));
        assert_eq!(pre.tensor()[[0, 0, 0, 4]], 0.0);
        assert_eq!(pre.tensor()[[0, 2, 7, 7]], 0.0);
        assert!(pre.tensor()[[0, 0, 7, 3]] < -1.0);
    }

    /// Pillow 13 `Image.resize((8, 5), Image.BILINEAR)` of the 13x8 RGB image
    /// `pixel(x, y) = ((x * 37 + y * 11) % 256, (x * 5 + y * 53) % 256, (x * y * 7) % 256)`,
    /// written by `tests/data/make_test_models.py`.
    const PILLOW_BILINEAR_13X8_TO_8X5: [u8; 8 * 5 * 3] =
        include!("../../../tests/data/pillow_bilinear_13x8_to_8x5.txt");

    #[test]
    fn downscaling_matches_pillow_bilinear() {
        let mut rgb = Vec::new();
        for y in 0u32..8 {
            for x in 0u32..13 {
                rgb.extend(
                    [
                        (x * 37 + y * 11) % 256,
                        (x * 5 + y * 53) % 256,
                        (x * y * 7) % 256,
                    ]
                    .map(|v| v as u8),
                );
            }
        }
        let mut pre = Preprocessor::new(8, [0.0; 3], [1.0; 3]).unwrap();
        let (g, _) = pre.run_rgb8(&rgb, 13, 8).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (8, 5));
        let t = pre.tensor();
        // fast_image_resize keeps 15-bit coefficients where Pillow keeps 22,
        // so some values land one code value away: 14 of these 120 (a
        // numpy model of Pillow's algorithm at 15 bits gives the same 14).
        let (mut max_diff, mut differ) = (0.0f32, 0);
        for y in 0..5 {
            for x in 0..8 {
                for c in 0..3 {
                    let want = f32::from(PILLOW_BILINEAR_13X8_TO_8X5[(y * 8 + x) * 3 + c]);
                    let diff = (t[[0, c, y, x]] - want).abs();
                    max_diff = max_diff.max(diff);
                    differ += usize::from(diff > 0.0);
                }
            }
        }
        assert!(max_diff <= 1.0, "max difference to Pillow {max_diff}");
        assert!(differ <= 14, "{differ} of 120 values differ from Pillow");
    }
}
