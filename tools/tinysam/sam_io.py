"""SAM pre- and post-processing in numpy and Pillow.

This is the reference the Rust element is tested against, so every step is
spelled out rather than delegated to a framework:

* `preprocess`: resize the longest side to S with Pillow's bilinear filter
  (antialiased when shrinking), normalise with SAM's mean and std, pad with
  zeros on the right and bottom to S x S.
* `postprocess`: low-res logits -> bilinear (half-pixel, no antialiasing, like
  torch `F.interpolate(mode="bilinear", align_corners=False)`) to S x S, crop
  the un-padded part, bilinear again to the frame size. Only the kept part of
  the S x S map is computed; the result is the same as computing all of it and
  cropping, because each output pixel depends only on its own coordinate.
* `stability_score`, `select_mask`: SAM's mask quality score and the two mask
  selection rules.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PIXEL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
MASK_THRESHOLD = 0.0
MASK_SELECTION_RULES = ("tinysam", "sam")


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """SAM's resize target: the longest side becomes `size`, the other side is
    scaled by the same factor and rounded half up."""
    scale = size * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def preprocess(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(H, W, 3) uint8 RGB -> (input (1, 3, S, S) float32, scale, (new_h, new_w)).

    `scale` maps frame pixel coordinates into the model's input frame
    (S / longest side); prompts are multiplied by it.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    new_h, new_w = resized_shape(h, w, size)
    if (new_h, new_w) != (h, w):
        resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
    else:
        resized = rgb
    x = (resized.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD
    out = np.zeros((1, 3, size, size), dtype=np.float32)
    out[0, :, :new_h, :new_w] = x.transpose(2, 0, 1)
    return out, size / max(h, w), (new_h, new_w)


def _bilinear_taps(in_size: int, out_size: int, keep: int | None = None):
    """Source indices and weights of half-pixel bilinear sampling from
    `in_size` to `out_size` samples (torch's align_corners=False rule: the
    source coordinate is (dst + 0.5) * in / out - 0.5, clamped at 0), for the
    first `keep` output samples."""
    keep = out_size if keep is None else keep
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(keep, dtype=np.float32)
    src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    i0 = src.astype(np.int64)  # floor, src >= 0
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, lam


def resize_bilinear(x: np.ndarray, out_h: int, out_w: int, keep_h: int | None = None,
                    keep_w: int | None = None) -> np.ndarray:
    """Bilinear resize of the last two axes, identical to torch
    `F.interpolate(x, (out_h, out_w), mode="bilinear", align_corners=False)`
    followed by `[..., :keep_h, :keep_w]`."""
    x = np.asarray(x, dtype=np.float32)
    in_h, in_w = x.shape[-2:]
    r0, r1, ry = _bilinear_taps(in_h, out_h, keep_h)
    c0, c1, cx = _bilinear_taps(in_w, out_w, keep_w)
    rows = x[..., r0, :] * (1.0 - ry)[:, None] + x[..., r1, :] * ry[:, None]
    return rows[..., c0] * (1.0 - cx) + rows[..., c1] * cx


def postprocess(low_res_logits: np.ndarray, resized_hw: tuple[int, int], frame_hw: tuple[int, int],
                size: int) -> np.ndarray:
    """Low-res logits (K, 4h, 4w) or (4h, 4w) -> frame-size logits (K, H, W) or (H, W).

    Upscale to the S x S input frame, keep the un-padded (new_h, new_w) part,
    upscale (or shrink, without antialiasing) that to the frame size.
    Threshold the result at `MASK_THRESHOLD` (0.0) for a mask.
    """
    new_h, new_w = resized_hw
    frame_h, frame_w = frame_hw
    cropped = resize_bilinear(low_res_logits, size, size, new_h, new_w)
    return resize_bilinear(cropped, frame_h, frame_w)


def stability_score(logits: np.ndarray, threshold: float = MASK_THRESHOLD, offset: float = 1.0) -> np.ndarray:
    """|logits > t + offset| / |logits > t - offset| over the last two axes
    (SAM's stability score). An empty union scores 0."""
    logits = np.asarray(logits)
    inter = (logits > threshold + offset).sum(axis=(-2, -1))
    union = (logits > threshold - offset).sum(axis=(-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def select_mask(iou_predictions: np.ndarray, rule: str, n_points: int, has_box: bool):
    """Index of the mask token to keep for one prompt (iou_predictions (4,))
    or for each row of (B, 4) prompts sharing n_points and has_box.

    `n_points` counts real points only (not the box corners, not padding).

    * "tinysam": the multimask output (1..3) with the highest predicted IoU,
      for every prompt. TinySAM's reference predictor and its published
      evaluation work this way.
    * "sam": that same rule for a single point without a box; the single-mask
      output (token 0) for boxes and for several points.
    """
    iou = np.asarray(iou_predictions)
    if rule not in MASK_SELECTION_RULES:
        raise ValueError(f"unknown mask selection rule {rule!r}; expected one of {MASK_SELECTION_RULES}")
    if rule == "sam" and (has_box or n_points != 1):
        return 0 if iou.ndim == 1 else np.zeros(iou.shape[0], dtype=np.int64)
    best = np.argmax(iou[..., 1:4], axis=-1) + 1
    return int(best) if iou.ndim == 1 else best
