// SPDX-License-Identifier: Apache-2.0
//! Borrowed views of video frames, independent of any media framework.
//!
//! A [`FrameView`] describes pixels the caller owns: a [`PixelFormat`], the
//! size, one slice and one stride (bytes per row) per plane. [`FrameViewMut`]
//! is the same over mutable slices, for drawing. Both check on construction
//! that every plane is large enough, so later reads and writes cannot go out
//! of bounds.
//!
//! Chroma planes of the 4:2:0 formats have `ceil(width / 2)` x
//! `ceil(height / 2)` samples, so odd sizes are fine.

use std::fmt;

/// The pixel layouts the core reads and draws into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed R, G, B, A bytes.
    Rgba,
    /// Packed B, G, R, A bytes.
    Bgra,
    /// Packed R, G, B and an unused byte.
    Rgbx,
    /// Packed B, G, R and an unused byte.
    Bgrx,
    /// Packed A, R, G, B bytes.
    Argb,
    /// Packed A, B, G, R bytes.
    Abgr,
    /// Packed unused byte, R, G, B.
    Xrgb,
    /// Packed unused byte, B, G, R.
    Xbgr,
    /// Packed R, G, B bytes.
    Rgb,
    /// Packed B, G, R bytes.
    Bgr,
    /// Planar 4:2:0: a Y plane, then a U plane and a V plane at half size.
    I420,
    /// Semi-planar 4:2:0: a Y plane, then one plane of interleaved U, V pairs.
    Nv12,
}

/// Where the colour bytes of one pixel of a packed format are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedLayout {
    pub bytes_per_pixel: usize,
    pub red: usize,
    pub green: usize,
    pub blue: usize,
    /// The alpha byte, in formats that have one.
    pub alpha: Option<usize>,
}

impl PixelFormat {
    /// Every format, packed ones first.
    pub const ALL: [PixelFormat; 12] = [
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Argb,
        PixelFormat::Abgr,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Xrgb,
        PixelFormat::Xbgr,
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ];

    /// How many planes a frame of this format has.
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
            _ => 1,
        }
    }

    /// Whether the format stores luma and chroma rather than RGB.
    pub fn is_yuv(self) -> bool {
        matches!(self, PixelFormat::I420 | PixelFormat::Nv12)
    }

    /// Bytes per row and number of rows of `plane` in a `width` x `height`
    /// frame; `None` for a plane the format does not have or on overflow.
    pub fn plane_size(self, plane: usize, width: u32, height: u32) -> Option<(usize, usize)> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match (self, plane) {
            (PixelFormat::I420 | PixelFormat::Nv12, 0) => Some((w, h)),
            (PixelFormat::I420, 1 | 2) => Some((cw, ch)),
            (PixelFormat::Nv12, 1) => Some((cw.checked_mul(2)?, ch)),
            (packed, 0) => {
                let layout = packed.packed_layout()?;
                Some((w.checked_mul(layout.bytes_per_pixel)?, h))
            }
            _ => None,
        }
    }

    pub(crate) fn packed_layout(self) -> Option<PackedLayout> {
        let layout = |bytes_per_pixel, red, green, blue, alpha| PackedLayout {
            bytes_per_pixel,
            red,
            green,
            blue,
            alpha,
        };
        match self {
            PixelFormat::Rgba => Some(layout(4, 0, 1, 2, Some(3))),
            PixelFormat::Rgbx => Some(layout(4, 0, 1, 2, None)),
            PixelFormat::Bgra => Some(layout(4, 2, 1, 0, Some(3))),
            PixelFormat::Bgrx => Some(layout(4, 2, 1, 0, None)),
            PixelFormat::Argb => Some(layout(4, 1, 2, 3, Some(0))),
            PixelFormat::Xrgb => Some(layout(4, 1, 2, 3, None)),
            PixelFormat::Abgr => Some(layout(4, 3, 2, 1, Some(0))),
            PixelFormat::Xbgr => Some(layout(4, 3, 2, 1, None)),
            PixelFormat::Rgb => Some(layout(3, 0, 1, 2, None)),
            PixelFormat::Bgr => Some(layout(3, 2, 1, 0, None)),
            PixelFormat::I420 | PixelFormat::Nv12 => None,
        }
    }

    /// Whether frames of this format have an alpha channel.
    pub fn has_alpha(self) -> bool {
        self.packed_layout().is_some_and(|l| l.alpha.is_some())
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
            PixelFormat::Argb => "ARGB",
            PixelFormat::Abgr => "ABGR",
            PixelFormat::Xrgb => "xRGB",
            PixelFormat::Xbgr => "xBGR",
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
        })
    }
}

/// The RGB <-> YUV matrix of a YUV frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvMatrix {
    /// ITU-R BT.601 (SD video, JPEG).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD video).
    Bt709,
}

/// The value range of a YUV frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvRange {
    /// Y in 16..=235, U and V in 16..=240 ("studio swing").
    #[default]
    Limited,
    /// Y, U and V in 0..=255.
    Full,
}

/// How YUV values map to RGB. Ignored for RGB formats.
///
/// The default is BT.601 limited range, the most common encoding of
/// untagged video; callers that know better (from caps) should say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct YuvColorimetry {
    pub matrix: YuvMatrix,
    pub range: YuvRange,
}

impl YuvColorimetry {
    pub const BT601_LIMITED: Self = Self {
        matrix: YuvMatrix::Bt601,
        range: YuvRange::Limited,
    };
    pub const BT709_LIMITED: Self = Self {
        matrix: YuvMatrix::Bt709,
        range: YuvRange::Limited,
    };
    pub const BT601_FULL: Self = Self {
        matrix: YuvMatrix::Bt601,
        range: YuvRange::Full,
    };
    pub const BT709_FULL: Self = Self {
        matrix: YuvMatrix::Bt709,
        range: YuvRange::Full,
    };

    /// (Kr, Kb) luma weights of the matrix.
    fn weights(self) -> (f64, f64) {
        match self.matrix {
            YuvMatrix::Bt601 => (0.299, 0.114),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
        }
    }

    /// (luma offset, luma scale, chroma scale) from 8-bit code values to
    /// 0..255 RGB units.
    fn scales(self) -> (f64, f64, f64) {
        match self.range {
            YuvRange::Limited => (16.0, 255.0 / 219.0, 255.0 / 224.0),
            YuvRange::Full => (0.0, 1.0, 1.0),
        }
    }

    /// Converts one RGB colour to (Y, U, V) code values.
    pub fn rgb_to_yuv(self, rgb: [u8; 3]) -> [u8; 3] {
        let (kr, kb) = self.weights();
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = self.scales();
        let [r, g, b] = rgb.map(f64::from);
        let luma = kr * r + kg * g + kb * b;
        let pb = (b - luma) / (2.0 * (1.0 - kb));
        let pr = (r - luma) / (2.0 * (1.0 - kr));
        [
            to_u8(y_offset + luma / y_scale),
            to_u8(128.0 + pb / c_scale),
            to_u8(128.0 + pr / c_scale),
        ]
    }
}

fn to_u8(value: f64) -> u8 {
    value.round().clamp(0.0, 255.0) as u8
}

/// A frame whose planes do not fit its format and size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {width}x{height} is empty")]
    Empty { width: u32, height: u32 },
    #[error(
        "{format} frames have {expected} plane(s), got {planes} plane(s) and {strides} stride(s)"
    )]
    PlaneCount {
        format: PixelFormat,
        expected: usize,
        planes: usize,
        strides: usize,
    },
    #[error(
        "{format} plane {plane} of a {width}x{height} frame needs rows of at least {row_bytes} \
         bytes, but its stride is {stride}"
    )]
    Stride {
        format: PixelFormat,
        plane: usize,
        width: u32,
        height: u32,
        row_bytes: usize,
        stride: usize,
    },
    #[error(
        "{format} plane {plane} of a {width}x{height} frame needs {needed} bytes, \
         but has {available}"
    )]
    PlaneTooSmall {
        format: PixelFormat,
        plane: usize,
        width: u32,
        height: u32,
        needed: usize,
        available: usize,
    },
    #[error("frame size {width}x{height} is too large")]
    TooLarge { width: u32, height: u32 },
}

const MAX_PLANES: usize = 3;

/// What both frame views share: format, size, strides and colorimetry.
/// The views dereference to it.
#[derive(Debug, Clone, Copy)]
pub struct FrameLayout {
    format: PixelFormat,
    width: u32,
    height: u32,
    strides: [usize; MAX_PLANES],
    colorimetry: YuvColorimetry,
}

impl FrameLayout {
    /// Checks that planes of these lengths and strides hold a frame.
    fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        plane_lens: &[usize],
        strides: &[usize],
    ) -> Result<Self, FrameError> {
        let strides = check_planes(format, width, height, plane_lens, strides)?;
        Ok(FrameLayout {
            format,
            width,
            height,
            strides,
            colorimetry: YuvColorimetry::default(),
        })
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn colorimetry(&self) -> YuvColorimetry {
        self.colorimetry
    }

    /// Bytes per row of plane `index`.
    pub fn stride(&self, index: usize) -> Option<usize> {
        (index < self.format.plane_count())
            .then(|| self.strides.get(index).copied())
            .flatten()
    }

    /// The bytes of row `row` of plane `plane`, exactly as many as the format uses.
    fn row_range(&self, plane: usize, row: usize) -> Option<std::ops::Range<usize>> {
        let (row_bytes, rows) = self.format.plane_size(plane, self.width, self.height)?;
        if row >= rows {
            return None;
        }
        let start = self.strides.get(plane)?.checked_mul(row)?;
        Some(start..start.checked_add(row_bytes)?)
    }
}

/// Checks the planes of a frame; returns the strides as a fixed array.
fn check_planes(
    format: PixelFormat,
    width: u32,
    height: u32,
    plane_lens: &[usize],
    strides: &[usize],
) -> Result<[usize; MAX_PLANES], FrameError> {
    if width == 0 || height == 0 {
        return Err(FrameError::Empty { width, height });
    }
    let expected = format.plane_count();
    if plane_lens.len() != expected || strides.len() != expected {
        return Err(FrameError::PlaneCount {
            format,
            expected,
            planes: plane_lens.len(),
            strides: strides.len(),
        });
    }
    let mut fixed = [0; MAX_PLANES];
    for (plane, ((&len, &stride), slot)) in plane_lens
        .iter()
        .zip(strides)
        .zip(fixed.iter_mut())
        .enumerate()
    {
        let (row_bytes, rows) = format
            .plane_size(plane, width, height)
            .ok_or(FrameError::TooLarge { width, height })?;
        if stride < row_bytes {
            return Err(FrameError::Stride {
                format,
                plane,
                width,
                height,
                row_bytes,
                stride,
            });
        }
        let needed = stride
            .checked_mul(rows - 1)
            .and_then(|n| n.checked_add(row_bytes))
            .ok_or(FrameError::TooLarge { width, height })?;
        if len < needed {
            return Err(FrameError::PlaneTooSmall {
                format,
                plane,
                width,
                height,
                needed,
                available: len,
            });
        }
        *slot = stride;
    }
    Ok(fixed)
}

/// The (checked) planes in a fixed array, empty past the format's count.
fn plane_array<P: Default>(planes: impl IntoIterator<Item = P>) -> [P; MAX_PLANES] {
    let mut fixed: [P; MAX_PLANES] = Default::default();
    for (slot, plane) in fixed.iter_mut().zip(planes) {
        *slot = plane;
    }
    fixed
}

/// A read-only view of one video frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    layout: FrameLayout,
    planes: [&'a [u8]; MAX_PLANES],
}

impl std::ops::Deref for FrameView<'_> {
    type Target = FrameLayout;

    fn deref(&self) -> &FrameLayout {
        &self.layout
    }
}

impl<'a> FrameView<'a> {
    /// A view of `planes` (one slice and one stride per plane of `format`).
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: &[&'a [u8]],
        strides: &[usize],
    ) -> Result<Self, FrameError> {
        let lens: Vec<usize> = planes.iter().map(|p| p.len()).collect();
        let layout = FrameLayout::new(format, width, height, &lens, strides)?;
        Ok(FrameView {
            layout,
            planes: plane_array(planes.iter().copied()),
        })
    }

    /// A view of a single-plane frame (the packed formats).
    pub fn packed(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: &'a [u8],
        stride: usize,
    ) -> Result<Self, FrameError> {
        Self::new(format, width, height, &[data], &[stride])
    }

    /// Sets how YUV values map to RGB (default: BT.601 limited range).
    #[must_use]
    pub fn with_colorimetry(mut self, colorimetry: YuvColorimetry) -> Self {
        self.layout.colorimetry = colorimetry;
        self
    }

    /// Plane `index`, or `None` past the format's plane count.
    pub fn plane(&self, index: usize) -> Option<&'a [u8]> {
        (index < self.format.plane_count())
            .then(|| self.planes.get(index).copied())
            .flatten()
    }

    /// Row `row` of plane `plane`, exactly as many bytes as the format uses.
    fn row(&self, plane: usize, row: usize) -> Option<&'a [u8]> {
        self.planes.get(plane)?.get(self.row_range(plane, row)?)
    }

    /// Converts the frame to packed 8-bit RGB (`width * height * 3` bytes,
    /// rows not padded) into `out`, reusing its allocation.
    ///
    /// YUV frames use the view's [`YuvColorimetry`]; each chroma sample
    /// applies to its 2x2 block of luma samples (no chroma interpolation).
    pub fn to_rgb8(&self, out: &mut Vec<u8>) {
        let (w, h) = (self.width as usize, self.height as usize);
        out.clear();
        out.resize(w * h * 3, 0);
        if let Some(layout) = self.format.packed_layout() {
            for (y, out_row) in out.chunks_exact_mut(w * 3).enumerate() {
                let Some(row) = self.row(0, y) else { break };
                for (dst, src) in out_row
                    .chunks_exact_mut(3)
                    .zip(row.chunks_exact(layout.bytes_per_pixel))
                {
                    if let ([r, g, b], Some(&sr), Some(&sg), Some(&sb)) = (
                        dst,
                        src.get(layout.red),
                        src.get(layout.green),
                        src.get(layout.blue),
                    ) {
                        (*r, *g, *b) = (sr, sg, sb);
                    }
                }
            }
            return;
        }
        let table = YuvToRgb::new(self.colorimetry);
        for (y, out_row) in out.chunks_exact_mut(w * 3).enumerate() {
            let (Some(luma), Some(chroma)) = (self.row(0, y), self.chroma_row(y / 2)) else {
                break;
            };
            // Two pixels per chroma sample.
            let pairs = out_row.chunks_mut(6).zip(luma.chunks(2));
            let put = |(dst, lumas): (&mut [u8], &[u8]), u: u8, v: u8| {
                for (pixel, &y) in dst.chunks_exact_mut(3).zip(lumas) {
                    if let [r, g, b] = pixel {
                        [*r, *g, *b] = table.convert(y, u, v);
                    }
                }
            };
            match chroma {
                ChromaRow::Planar(us, vs) => {
                    for (pair, (&u, &v)) in pairs.zip(us.iter().zip(vs)) {
                        put(pair, u, v);
                    }
                }
                ChromaRow::Interleaved(uvs) => {
                    for (pair, uv) in pairs.zip(uvs.chunks_exact(2)) {
                        if let [u, v] = *uv {
                            put(pair, u, v);
                        }
                    }
                }
            }
        }
    }

    /// The chroma samples of chroma row `row` as (U, V) pairs.
    fn chroma_row(&self, row: usize) -> Option<ChromaRow<'a>> {
        match self.format {
            PixelFormat::I420 => Some(ChromaRow::Planar(self.row(1, row)?, self.row(2, row)?)),
            PixelFormat::Nv12 => Some(ChromaRow::Interleaved(self.row(1, row)?)),
            _ => None,
        }
    }
}

/// One row of 4:2:0 chroma samples.
#[derive(Clone, Copy)]
enum ChromaRow<'a> {
    Planar(&'a [u8], &'a [u8]),
    Interleaved(&'a [u8]),
}

/// A writable view of one video frame, for drawing.
#[derive(Debug)]
pub struct FrameViewMut<'a> {
    layout: FrameLayout,
    planes: [&'a mut [u8]; MAX_PLANES],
}

impl std::ops::Deref for FrameViewMut<'_> {
    type Target = FrameLayout;

    fn deref(&self) -> &FrameLayout {
        &self.layout
    }
}

impl<'a> FrameViewMut<'a> {
    /// A writable view of `planes` (one slice and one stride per plane).
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: Vec<&'a mut [u8]>,
        strides: &[usize],
    ) -> Result<Self, FrameError> {
        let lens: Vec<usize> = planes.iter().map(|p| p.len()).collect();
        let layout = FrameLayout::new(format, width, height, &lens, strides)?;
        Ok(FrameViewMut {
            layout,
            planes: plane_array(planes),
        })
    }

    /// A writable view of a single-plane frame (the packed formats).
    pub fn packed(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: &'a mut [u8],
        stride: usize,
    ) -> Result<Self, FrameError> {
        Self::new(format, width, height, vec![data], &[stride])
    }

    /// Sets how YUV values map to RGB (default: BT.601 limited range).
    #[must_use]
    pub fn with_colorimetry(mut self, colorimetry: YuvColorimetry) -> Self {
        self.layout.colorimetry = colorimetry;
        self
    }

    /// A read-only view of the same pixels.
    pub fn as_view(&self) -> FrameView<'_> {
        FrameView {
            layout: self.layout,
            planes: [&*self.planes[0], &*self.planes[1], &*self.planes[2]],
        }
    }

    /// Row `row` of plane `plane`, exactly as many bytes as the format uses.
    pub(crate) fn row_mut(&mut self, plane: usize, row: usize) -> Option<&mut [u8]> {
        let range = self.layout.row_range(plane, row)?;
        self.planes.get_mut(plane)?.get_mut(range)
    }

    /// The U and V rows of chroma row `row` of an I420 frame.
    pub(crate) fn i420_chroma_rows_mut(&mut self, row: usize) -> Option<(&mut [u8], &mut [u8])> {
        if self.format != PixelFormat::I420 {
            return None;
        }
        let (u_range, v_range) = (
            self.layout.row_range(1, row)?,
            self.layout.row_range(2, row)?,
        );
        let [_, u_plane, v_plane] = &mut self.planes;
        Some((u_plane.get_mut(u_range)?, v_plane.get_mut(v_range)?))
    }
}

/// Fixed-point YUV -> RGB conversion tables for one colorimetry.
pub(crate) struct YuvToRgb {
    luma: [i32; 256],
    red_v: [i32; 256],
    green_u: [i32; 256],
    green_v: [i32; 256],
    blue_u: [i32; 256],
}

const FIXED_SHIFT: u32 = 16;

impl YuvToRgb {
    pub(crate) fn new(colorimetry: YuvColorimetry) -> Self {
        let (kr, kb) = colorimetry.weights();
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = colorimetry.scales();
        let one = f64::from(1u32 << FIXED_SHIFT);
        let fixed = |v: f64| (v * one).round() as i32;
        let mut table = YuvToRgb {
            luma: [0; 256],
            red_v: [0; 256],
            green_u: [0; 256],
            green_v: [0; 256],
            blue_u: [0; 256],
        };
        for code in 0..256usize {
            let value = code as f64;
            let chroma = (value - 128.0) * c_scale;
            // The rounding bias is folded into the luma term.
            table.luma[code] = fixed((value - y_offset) * y_scale + 0.5);
            table.red_v[code] = fixed(2.0 * (1.0 - kr) * chroma);
            table.blue_u[code] = fixed(2.0 * (1.0 - kb) * chroma);
            table.green_u[code] = fixed(2.0 * kb * (1.0 - kb) / kg * chroma);
            table.green_v[code] = fixed(2.0 * kr * (1.0 - kr) / kg * chroma);
        }
        table
    }

    #[inline]
    pub(crate) fn convert(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let (y, u, v) = (usize::from(y), usize::from(u), usize::from(v));
        let luma = self.luma[y];
        let clamp = |value: i32| (value >> FIXED_SHIFT).clamp(0, 255) as u8;
        [
            clamp(luma + self.red_v[v]),
            clamp(luma - self.green_u[u] - self.green_v[v]),
            clamp(luma + self.blue_u[u]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_one(colorimetry: YuvColorimetry, yuv: [u8; 3]) -> [u8; 3] {
        let [y, u, v] = yuv;
        let luma = [y; 4];
        let (cu, cv) = ([u], [v]);
        let frame = FrameView::new(PixelFormat::I420, 2, 2, &[&luma, &cu, &cv], &[2, 1, 1])
            .unwrap()
            .with_colorimetry(colorimetry);
        let mut rgb = Vec::new();
        frame.to_rgb8(&mut rgb);
        assert_eq!(rgb.len(), 12);
        assert!(rgb.chunks(3).all(|p| p == &rgb[..3]));
        [rgb[0], rgb[1], rgb[2]]
    }

    fn assert_close(got: [u8; 3], want: [u8; 3], tolerance: i32) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (i32::from(*g) - i32::from(w)).abs() <= tolerance,
                "got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn yuv_reference_colours() {
        // Code values of the primaries and grey levels from the standards'
        // matrices (BT.601 / BT.709, 8-bit).
        let cases = [
            (YuvColorimetry::BT601_LIMITED, [16, 128, 128], [0, 0, 0]),
            (
                YuvColorimetry::BT601_LIMITED,
                [235, 128, 128],
                [255, 255, 255],
            ),
            (
                YuvColorimetry::BT601_LIMITED,
                [126, 128, 128],
                [128, 128, 128],
            ),
            (YuvColorimetry::BT601_LIMITED, [81, 90, 240], [255, 0, 0]),
            (YuvColorimetry::BT601_LIMITED, [145, 54, 34], [0, 255, 0]),
            (YuvColorimetry::BT601_LIMITED, [41, 240, 110], [0, 0, 255]),
            (YuvColorimetry::BT709_LIMITED, [63, 102, 240], [255, 0, 0]),
            (YuvColorimetry::BT709_LIMITED, [173, 42, 26], [0, 255, 0]),
            (YuvColorimetry::BT709_LIMITED, [32, 240, 118], [0, 0, 255]),
            (YuvColorimetry::BT601_FULL, [0, 128, 128], [0, 0, 0]),
            (YuvColorimetry::BT601_FULL, [255, 128, 128], [255, 255, 255]),
            (YuvColorimetry::BT601_FULL, [76, 85, 255], [255, 0, 0]),
            (YuvColorimetry::BT709_FULL, [54, 99, 255], [255, 0, 0]),
            (YuvColorimetry::BT709_FULL, [18, 255, 116], [0, 0, 255]),
        ];
        for (colorimetry, yuv, rgb) in cases {
            assert_close(convert_one(colorimetry, yuv), rgb, 2);
        }
    }

    #[test]
    fn rgb_to_yuv_inverts_the_conversion() {
        for colorimetry in [
            YuvColorimetry::BT601_LIMITED,
            YuvColorimetry::BT709_LIMITED,
            YuvColorimetry::BT601_FULL,
            YuvColorimetry::BT709_FULL,
        ] {
            for rgb in [
                [200, 30, 90],
                [10, 220, 120],
                [128, 128, 128],
                [40, 60, 250],
            ] {
                let yuv = colorimetry.rgb_to_yuv(rgb);
                assert_close(convert_one(colorimetry, yuv), rgb, 3);
            }
        }
    }

    #[test]
    fn odd_sized_yuv_frames_use_rounded_up_chroma() {
        // 3x3 I420: chroma is 2x2. Give every chroma sample its own colour
        // and check each pixel picks the sample of its 2x2 block.
        let luma = [126u8; 9];
        let u = [128u8, 128, 128, 128];
        let v = [128u8, 200, 60, 240];
        let frame = FrameView::new(PixelFormat::I420, 3, 3, &[&luma, &u, &v], &[3, 2, 2]).unwrap();
        let mut rgb = Vec::new();
        frame.to_rgb8(&mut rgb);
        let red = |x: usize, y: usize| rgb[(y * 3 + x) * 3];
        assert_eq!(red(0, 0), red(1, 1));
        assert_eq!(red(2, 0), red(2, 1));
        assert_eq!(red(0, 2), red(1, 2));
        assert!(red(2, 2) > red(2, 0) && red(2, 0) > red(0, 0) && red(0, 0) > red(0, 2));

        // The same picture as NV12 with padded strides.
        let uv = [128u8, 128, 128, 200, 0, 0, 128, 60, 128, 240, 0, 0];
        let luma_padded = [126u8; 4 * 3];
        let nv12 = FrameView::new(PixelFormat::Nv12, 3, 3, &[&luma_padded, &uv], &[4, 6]).unwrap();
        let mut rgb_nv12 = Vec::new();
        nv12.to_rgb8(&mut rgb_nv12);
        assert_eq!(rgb, rgb_nv12);
    }

    #[test]
    fn packed_formats_reorder_channels() {
        let pixel = |format: PixelFormat| -> Vec<u8> {
            match format {
                PixelFormat::Rgba | PixelFormat::Rgbx => vec![10, 20, 30, 99],
                PixelFormat::Bgra | PixelFormat::Bgrx => vec![30, 20, 10, 99],
                PixelFormat::Argb | PixelFormat::Xrgb => vec![99, 10, 20, 30],
                PixelFormat::Abgr | PixelFormat::Xbgr => vec![99, 30, 20, 10],
                PixelFormat::Rgb => vec![10, 20, 30],
                PixelFormat::Bgr => vec![30, 20, 10],
                _ => unreachable!(),
            }
        };
        for format in [
            PixelFormat::Rgba,
            PixelFormat::Bgra,
            PixelFormat::Rgbx,
            PixelFormat::Bgrx,
            PixelFormat::Argb,
            PixelFormat::Abgr,
            PixelFormat::Xrgb,
            PixelFormat::Xbgr,
            PixelFormat::Rgb,
            PixelFormat::Bgr,
        ] {
            // 3x2 frame, stride padded by 5 bytes.
            let bpp = pixel(format).len();
            let stride = 3 * bpp + 5;
            let mut data = vec![0u8; stride * 2];
            for y in 0..2 {
                for x in 0..3 {
                    let at = y * stride + x * bpp;
                    data[at..at + bpp].copy_from_slice(&pixel(format));
                }
            }
            let frame = FrameView::packed(format, 3, 2, &data, stride).unwrap();
            let mut rgb = Vec::new();
            frame.to_rgb8(&mut rgb);
            assert_eq!(rgb, [10, 20, 30].repeat(6), "{format}");
        }
    }

    #[test]
    fn undersized_planes_are_rejected() {
        let data = [0u8; 11];
        let err = FrameView::packed(PixelFormat::Rgb, 2, 2, &data, 6).unwrap_err();
        assert_eq!(
            err,
            FrameError::PlaneTooSmall {
                format: PixelFormat::Rgb,
                plane: 0,
                width: 2,
                height: 2,
                needed: 12,
                available: 11
            }
        );
        assert!(matches!(
            FrameView::packed(PixelFormat::Rgb, 2, 2, &[0u8; 12], 5),
            Err(FrameError::Stride { .. })
        ));
        assert!(matches!(
            FrameView::packed(PixelFormat::I420, 2, 2, &[0u8; 12], 2),
            Err(FrameError::PlaneCount { .. })
        ));
        assert!(matches!(
            FrameView::packed(PixelFormat::Rgb, 0, 2, &[], 0),
            Err(FrameError::Empty { .. })
        ));
        // The last row needs only its own bytes, not a whole stride.
        assert!(FrameView::packed(PixelFormat::Rgb, 2, 2, &[0u8; 14], 8).is_ok());
    }
}
