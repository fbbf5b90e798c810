// SPDX-License-Identifier: Apache-2.0
//! GStreamer buffers as the core's frame views.

use gst_video::VideoFormat;
use gst_video::prelude::*;

use super::errors::FrameFailure;
use crate::segment::{
    self, FrameView, FrameViewMut, PixelFormat, YuvColorimetry, YuvMatrix, YuvRange,
};

pub fn pixel_format(format: VideoFormat) -> Option<PixelFormat> {
    Some(match format {
        VideoFormat::Rgba => PixelFormat::Rgba,
        VideoFormat::Bgra => PixelFormat::Bgra,
        VideoFormat::Rgbx => PixelFormat::Rgbx,
        VideoFormat::Bgrx => PixelFormat::Bgrx,
        VideoFormat::Argb => PixelFormat::Argb,
        VideoFormat::Abgr => PixelFormat::Abgr,
        VideoFormat::Xrgb => PixelFormat::Xrgb,
        VideoFormat::Xbgr => PixelFormat::Xbgr,
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::I420 => PixelFormat::I420,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        _ => return None,
    })
}

/// The YUV matrix and range from the caps; BT.601 for anything but BT.709.
pub fn colorimetry(info: &gst_video::VideoInfo) -> YuvColorimetry {
    let c = info.colorimetry();
    YuvColorimetry {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
            _ => YuvMatrix::Bt601,
        },
        range: match c.range() {
            gst_video::VideoColorRange::Range0_255 => YuvRange::Full,
            _ => YuvRange::Limited,
        },
    }
}

/// The format and colorimetry of `info`, or why the core cannot read it.
fn layout(info: &gst_video::VideoInfo) -> Result<(PixelFormat, YuvColorimetry), FrameFailure> {
    let format = pixel_format(info.format()).ok_or_else(|| {
        FrameFailure::NotNegotiated(format!("Unsupported format {:?}", info.format()))
    })?;
    Ok((format, colorimetry(info)))
}

/// Runs `f` on `buf` mapped readable as a frame view.
pub fn with_view<T>(
    buf: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(&FrameView<'_>) -> Result<T, FrameFailure>,
) -> Result<T, FrameFailure> {
    let (format, yuv) = layout(info)?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info)
        .map_err(|e| FrameFailure::Buffer(format!("Cannot map the frame: {e}")))?;
    let n = frame.n_planes() as usize;
    let mut planes = Vec::with_capacity(n);
    for i in 0..n {
        planes.push(
            frame
                .plane_data(i as u32)
                .map_err(|e| FrameFailure::Buffer(format!("Cannot map plane {i}: {e}")))?,
        );
    }
    let strides: Vec<usize> = frame.plane_stride()[..n]
        .iter()
        .map(|&s| s.max(0) as usize)
        .collect();
    let view = FrameView::new(format, info.width(), info.height(), &planes, &strides)
        .map_err(segment::Error::from)?
        .with_colorimetry(yuv);
    f(&view)
}

/// Runs `f` on `buf` mapped writable as a frame view.
pub fn with_view_mut<T>(
    buf: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(&mut FrameViewMut<'_>) -> T,
) -> Result<T, FrameFailure> {
    let (format, yuv) = layout(info)?;
    let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, info)
        .map_err(|e| FrameFailure::Buffer(format!("Cannot map the frame writable: {e}")))?;
    let n = frame.n_planes() as usize;
    let strides: Vec<usize> = frame.plane_stride()[..n]
        .iter()
        .map(|&s| s.max(0) as usize)
        .collect();
    let planes: Vec<&mut [u8]> = frame.planes_data_mut().into_iter().take(n).collect();
    let mut view = FrameViewMut::new(format, info.width(), info.height(), planes, &strides)
        .map_err(segment::Error::from)?
        .with_colorimetry(yuv);
    Ok(f(&mut view))
}
