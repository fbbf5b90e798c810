"""sam_io, the numpy reference of SAM's pre- and post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tinysam import sam_io


@pytest.mark.parametrize("in_hw,out_hw", [((64, 64), (256, 256)), ((256, 256), (1024, 1024)),
                                          ((17, 23), (5, 40)), ((682, 1024), (333, 500)),
                                          ((576, 1024), (1080, 1920)), ((9, 9), (9, 9)), ((1, 3), (4, 2))])
def test_resize_bilinear_equals_torch(in_hw, out_hw):
    x = np.random.default_rng(0).normal(0, 5, (2, *in_hw)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x)[None], size=out_hw, mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(sam_io.resize_bilinear(x, *out_hw), ref, rtol=0, atol=2e-5)


def test_resize_bilinear_keep_is_a_crop():
    x = np.random.default_rng(1).normal(size=(3, 32, 32)).astype(np.float32)
    full = sam_io.resize_bilinear(x, 128, 128)
    np.testing.assert_array_equal(sam_io.resize_bilinear(x, 128, 128, 70, 128), full[:, :70, :])
    np.testing.assert_array_equal(sam_io.resize_bilinear(x, 128, 128, 128, 33), full[:, :, :33])


@pytest.mark.parametrize("frame_hw,size", [((480, 640), 1024), ((1080, 1920), 1024), ((1280, 720), 512),
                                           ((333, 500), 1024), ((517, 333), 256), ((100, 100), 256)])
def test_postprocess_equals_torch_reference(frame_hw, size):
    low = size // 4
    logits = np.random.default_rng(2).normal(0, 4, (3, low, low)).astype(np.float32)
    new_hw = sam_io.resized_shape(*frame_hw, size)
    t = F.interpolate(torch.from_numpy(logits)[None], (size, size), mode="bilinear", align_corners=False)
    t = t[..., : new_hw[0], : new_hw[1]]
    t = F.interpolate(t, frame_hw, mode="bilinear", align_corners=False)[0].numpy()
    out = sam_io.postprocess(logits, new_hw, frame_hw, size)
    assert out.shape == (3, *frame_hw)
    np.testing.assert_allclose(out, t, rtol=0, atol=5e-5)
    single = sam_io.postprocess(logits[1], new_hw, frame_hw, size)
    np.testing.assert_array_equal(single, out[1])
    # thresholded masks agree except where the logit is within rounding of 0
    differ = (out > 0) != (t > 0)
    assert np.all(np.abs(t[differ]) < 1e-4)


@pytest.mark.parametrize("h,w,size,expected", [(480, 640, 1024, (768, 1024)), (1080, 1920, 1024, (576, 1024)),
                                               (333, 500, 1024, (682, 1024)), (517, 333, 1024, (1024, 660)),
                                               (720, 1280, 256, (144, 256)), (1024, 1024, 1024, (1024, 1024)),
                                               (3, 2000, 1024, (2, 1024))])
def test_resized_shape_rounds_like_sam(h, w, size, expected):
    assert sam_io.resized_shape(h, w, size) == expected


def test_preprocess():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (333, 500, 3), dtype=np.uint8)
    x, scale, (nh, nw) = sam_io.preprocess(rgb, 256)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    assert (nh, nw) == (170, 256) and scale == 256 / 500
    resized = np.asarray(Image.fromarray(rgb).resize((256, 170), Image.BILINEAR)).astype(np.float32)
    expected = ((resized - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375]).transpose(2, 0, 1)
    np.testing.assert_allclose(x[0, :, :170, :256], expected, atol=1e-5)
    assert not x[0, :, 170:, :].any()  # zero padding at the bottom
    # an image already at the input size is not resampled
    square = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    x, scale, hw = sam_io.preprocess(square, 64)
    assert scale == 1.0 and hw == (64, 64)
    np.testing.assert_allclose(x[0, 0], (square[..., 0] - 123.675) / 58.395, atol=1e-5)
    with pytest.raises(ValueError):
        sam_io.preprocess(rgb.astype(np.float32), 256)


def test_stability_score():
    logits = np.array([[[-2.0, -0.5, 0.5, 2.0], [1.5, 0.9, -1.1, 3.0]]])
    # > 1: 2.0, 1.5, 3.0 -> 3; > -1: -0.5, 0.5, 2.0, 1.5, 0.9, 3.0 -> 6
    np.testing.assert_allclose(sam_io.stability_score(logits), [0.5])
    assert sam_io.stability_score(np.full((4, 4), -5.0)) == 0.0


def test_select_mask_rules():
    iou = np.array([0.99, 0.2, 0.7, 0.5])
    assert sam_io.select_mask(iou, "tinysam", 1, False) == 2
    assert sam_io.select_mask(iou, "tinysam", 0, True) == 2  # boxes too: token 0 never chosen
    assert sam_io.select_mask(iou, "tinysam", 3, True) == 2
    assert sam_io.select_mask(iou, "sam", 1, False) == 2  # single point: best of the multimask outputs
    assert sam_io.select_mask(iou, "sam", 0, True) == 0  # box: single-mask output
    assert sam_io.select_mask(iou, "sam", 2, False) == 0  # several points
    assert sam_io.select_mask(iou, "sam", 1, True) == 0  # point + box
    batch = np.array([[0.1, 0.9, 0.2, 0.3], [0.1, 0.2, 0.3, 0.95]])
    np.testing.assert_array_equal(sam_io.select_mask(batch, "tinysam", 1, False), [1, 3])
    np.testing.assert_array_equal(sam_io.select_mask(batch, "sam", 1, True), [0, 0])
    with pytest.raises(ValueError):
        sam_io.select_mask(iou, "best", 1, False)
