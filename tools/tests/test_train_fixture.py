"""tools/train_fixture.py: the everything-mode points anywhere in a scene,
and the IoU calibration stage, which trains the IoU predictions and leaves
every weight the masks are computed from as it was."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

import train_fixture as tf
from tinysam.model import TinySam
from tinysam.prompts import POSITIVE

SIZE = 64  # the fixture's architecture at a tiny input: 4x4 embedding


def test_anywhere_points_target_the_region_under_them():
    k, size, loss_res = 5, SIZE, 32
    rng = np.random.default_rng(7)
    images, img_idx, prompts, gt, gt_full = tf.make_batch(rng, 3, size, loss_res, 0.0, anywhere_points=k)
    assert len(prompts) == len(img_idx) == len(gt) == len(gt_full)
    for b in range(3):
        ours = [i for i in range(len(prompts)) if img_idx[i] == b][-k:]
        for i in ours:
            p = prompts[i]
            assert p.box is None and p.labels == [POSITIVE]
            x, y = (int(c) for c in p.points[0])
            # the point lies in its target; the padding outside the frame is in none
            assert gt_full[i][y, x]
            assert gt[i].shape == (loss_res, loss_res)
        # targets are the objects' visible parts or the background: disjoint or equal
        for i in ours:
            for j in ours:
                a, c = gt_full[i], gt_full[j]
                assert np.array_equal(a, c) or not (a & c).any()


def test_keep_masks_trains_only_what_the_masks_do_not_read(tmp_path):
    torch.manual_seed(0)
    cfg = dataclasses.replace(tf.FIXTURE_CONFIG, image_size=SIZE)
    init = tmp_path / "init.pth"
    torch.save(TinySam(cfg).state_dict(), init)
    out = tmp_path / "out"
    tf.main(["--out", str(out), "--init", str(init), "--image-size", str(SIZE), "--steps", "3",
             "--images-per-step", "2", "--anywhere-points", "4", "--keep-masks", "1", "--lr", "1e-2",
             "--eval-every", "100"])
    before = torch.load(init, weights_only=True)
    after = torch.load(out / "fixture.pth", weights_only=True)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen = ("image_encoder.", "prompt_encoder.", "mask_decoder.output_upscaling.",
              "mask_decoder.output_hypernetworks_mlps.")
    assert not [k for k in changed if k.startswith(frozen)], "a weight the masks read directly changed"
    assert any(k.startswith("mask_decoder.iou_prediction_head.") for k in changed)
    assert any(k.startswith("mask_decoder.transformer.") for k in changed)
    # the encoder's BatchNorm statistics are weights too: frozen means frozen
    assert not [k for k in changed if "running_" in k]
