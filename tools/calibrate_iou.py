#!/usr/bin/env python3
"""Calibrate the fixture's IoU predictions: fine-tune only the IoU
prediction head (mask_decoder.iou_prediction_head) so that, for every output
mask, it predicts that mask's true IoU with the prompted object at frame
size. Every other weight is frozen, so the masks (the logits) are exactly
those of the input weights; only the predicted IoUs change, and with them
which multimask output the `tinysam` rule keeps and which everything-mode
candidates pass `pred_iou_thresh`.

The head's input (the IoU token after the decoder's transformer) does not
depend on the head, so the frozen network runs once per prompt batch: the
tokens and the true IoUs of all 4 outputs are cached, then the small MLP is
trained on the cache.

Training data (never the held-out scenes below):
  * tools/tinysam/scenes.py scenes (the fixture's training distribution),
    seed --seed, and the flat-colour scenes of the Rust tests
    (tests/common/mod.rs `render`, ported below) with seeds from
    TRAIN_RENDER_SEED up; frame sizes of both orientations;
  * prompts: the everything-mode grid (16x16 single points, all outputs),
    and per object a box (exact and jittered), one interior point, points
    with negatives, box + points, and box + its own earlier logits as mask
    input (video tracking's re-prompt); the background, where it is one
    region, as one more object for the grid points.

Held out: tests/everything.rs's 12 scenes (`render` seeds 1000..1011) and
tools/evaluate.py's scenes (seed 20261130). The report prints, on the held-out
Rust scenes, the mean |predicted - true IoU| over the 3 multimask outputs of
the 32x32 grid's prompts, and how many objects some candidate reaches at SAM's
filters.

Applied to the committed fixture (2026-12-02): --epochs 0 --logit-scale 2,
the exact logit scale alone (docs/tools.md, "Fixture results"): binary masks,
mask-input refinement and IoU predictions unchanged, and at 0.88 / 0.95
tests/everything.rs's recall is 0.909 for both strategies with hierarchical
decoding 0.42 of dense's prompts (0.66 before). The head refits are not
applied. With the defaults below (120 training scenes, ~41 min of data
collection on 2 busy cores, seconds of training) the held-out error falls
from 0.157 to 0.081, but each refit changes which of the 3 outputs the
`tinysam` rule picks for single points, and tools/evaluate.py's point mIoU
drops on its larger frames (not in TRAIN_SIZES): --keep-box-choice 10
--point-weight 16 --logit-scale 2 keeps box mIoU (0.8756 -> 0.8759, 100
scenes) and reaches recall 0.927 with 0.38 of dense's prompts, but point
0.8179 -> 0.7837; --keep-order keeps every prompted result but calibrates
little (0.157 -> 0.151; recall 0.836). Training scenes at evaluate.py's
frame sizes do not mend it: with --large-scenes 60 (its own scene
generator, ~14 min more collection) --point-weight 16 --keep-box-choice 10
--logit-scale 2 the held-out error falls to 0.089 and recall is 0.945 with
0.38 of dense's prompts, but box 0.8756 -> 0.8738 and point -> 0.7800. The
refits calibrate the grid's points and lose the object prompts' ranking
among the 3 outputs, which the input head learnt in the fixture's whole
training and a few thousand prompts do not teach again.

  .venv/bin/python tools/calibrate_iou.py --weights STAGE3/fixture.pth \\
      --config tools/fixture/config.json --epochs 0 --logit-scale 2 --out /tmp/calibrated
  .venv/bin/python tools/calibrate_iou.py --weights W --config C --report-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tinysam import sam_io  # noqa: E402
from tinysam.model import TinySam, TinySamConfig  # noqa: E402
from tinysam.prompts import (  # noqa: E402
    BOX_BOTTOM_RIGHT, BOX_TOP_LEFT, NEGATIVE, PADDING, POSITIVE, Prompt, interior_point, jitter_box, mask_box,
    negative_point)
from tinysam.scenes import make_scene, object_map  # noqa: E402
from evaluate import FRAME_SIZES as EVALUATION_SIZES  # noqa: E402

HEAD = "mask_decoder.iou_prediction_head."
TEST_RENDER_SEEDS = range(1000, 1012)  # tests/everything.rs `scenes()`
TRAIN_RENDER_SEED = 100_000  # training renders use seeds from here up
LOGIT_SCALES = (1, 2, 4)  # held-out stability is recorded at these logit scales
TEST_SIZES = [(320, 240), (256, 256), (240, 320), (400, 225)]
TRAIN_SIZES = [(320, 240), (256, 256), (240, 320), (400, 225), (640, 480), (480, 640), (500, 333), (384, 216)]


# ---------------------------------------------------------------------------
# The Rust tests' scenes (tests/common/mod.rs `render`), in float32 like the
# Rust code: a few pixels on shape edges may differ (libm's cosf vs numpy's).

class RustRng:
    def __init__(self, seed: int):
        self.state = seed & (2**64 - 1)

    def next(self) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        return self.state >> 33

    def range(self, lo: float, hi: float) -> np.float32:
        lo, hi = np.float32(lo), np.float32(hi)
        return lo + (hi - lo) * (np.float32(self.next()) / np.float32(2**31))


def _hsv(h, s, v):
    f32 = np.float32
    h = f32(f32(h) % f32(1.0)) * f32(6.0)
    f = h - f32(math.floor(h))
    s, v = f32(s), f32(v)
    p, q, t = v * (f32(1) - s), v * (f32(1) - s * f), v * (f32(1) - s * (f32(1) - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v)][int(h)] if int(h) < 5 else (v, p, q)
    return [min(max(int(c * f32(255.0)), 0), 255) for c in (r, g, b)]


def render(seed: int, width: int, height: int, count: int):
    """(rgb (H, W, 3) uint8, masks (K, H, W) bool) as tests/common/mod.rs."""
    f32 = np.float32
    rng = RustRng(seed)
    w, h = width, height
    short = f32(min(width, height))
    ys, xs = np.mgrid[0:h, 0:w]
    px, py = xs.astype(f32) + f32(0.5), ys.astype(f32) + f32(0.5)
    labels = np.zeros((h, w), np.int64)
    placed = 0
    for _ in range(200):
        if placed == count:
            break
        cx = rng.range(0.15, 0.85) * f32(width)
        cy = rng.range(0.15, 0.85) * f32(height)
        r = rng.range(0.1, 0.22) * short
        angle = rng.range(0.0, math.pi)
        kind = rng.next() % 3
        if kind in (0, 1):
            ry = r * rng.range(0.5, 1.0)
            ca, sa = np.cos(angle, dtype=f32), np.sin(angle, dtype=f32)
            dx, dy = px - cx, py - cy
            u, v = dx * ca + dy * sa, -dx * sa + dy * ca
            if kind == 0:
                inside = (u / r) * (u / r) + (v / ry) * (v / ry) <= f32(1.0)
            else:
                inside = (np.abs(u) <= r) & (np.abs(v) <= ry)
        else:
            pts = []
            for t in (f32(0.0), f32(2.1), f32(4.2)):
                t = t + angle + rng.range(-0.3, 0.3)
                pts.append((cx + r * f32(1.2) * np.cos(t, dtype=f32), cy + r * f32(1.2) * np.sin(t, dtype=f32)))
            s = [(bx - ax) * (py - ay) - (by - ay) * (px - ax)
                 for (ax, ay), (bx, by) in ((pts[0], pts[1]), (pts[1], pts[2]), (pts[2], pts[0]))]
            inside = ((s[0] >= 0) & (s[1] >= 0) & (s[2] >= 0)) | ((s[0] <= 0) & (s[1] <= 0) & (s[2] <= 0))
        visible = np.bincount(labels.ravel(), minlength=placed + 1)
        hidden = np.bincount(labels[inside], minlength=placed + 1)
        if any(hidden[k] * 5 > visible[k] for k in range(1, placed + 1)):
            continue
        placed += 1
        labels[inside] = placed
    hue0 = rng.range(0.0, 1.0)
    colours = [_hsv(hue0 + f32(k) / f32(placed), 0.8, f32(0.55) + f32(0.4) * f32(k % 2)) for k in range(placed)]
    gradient = rng.next() % 2 == 0
    base = [rng.range(90.0, 170.0) for _ in range(3)]
    if gradient:
        t = (np.arange(w).astype(f32) / f32(w)) * f32(60.0) - f32(30.0)
    else:
        t = np.zeros(w, f32)
    bg = np.stack([np.clip((b + t).astype(np.int64), 0, 255) for b in base], axis=-1).astype(np.uint8)
    rgb = np.broadcast_to(bg[None], (h, w, 3)).copy()
    for k, c in enumerate(colours):
        rgb[labels == k + 1] = c
    masks = np.stack([labels == k for k in range(1, placed + 1)]) if placed else np.zeros((0, h, w), bool)
    return rgb, masks


def test_scenes():
    """tests/everything.rs's 12 scenes (tests/common/mod.rs `scenes()`)."""
    return [render(1000 + i, *TEST_SIZES[i % 4], 2 + i % 7) for i in range(12)]


def point_grid(n: int, width: int, height: int) -> np.ndarray:
    """SAM's grid as src/segment/everything `point_grid`: (n*n, 2) frame x, y."""
    at = (np.arange(n, dtype=np.float64) + 0.5) / n
    xs, ys = (at * width).astype(np.float32), (at * height).astype(np.float32)
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)


# ---------------------------------------------------------------------------
# The frozen network: masks, IoU predictions and the IoU token per prompt.

def normalise(rgb: np.ndarray, size: int) -> tuple[torch.Tensor, float, tuple[int, int]]:
    x, scale, resized = sam_io.preprocess(rgb, size)
    return torch.from_numpy(x), scale, resized


@torch.no_grad()
def decode_with_token(model: TinySam, emb, coords, labels, mask_input=None):
    """TinySam.decode for B prompts on one embedding (1, C, h, w), also
    returning the IoU token: the IoU head's input, caught by a hook."""
    b = coords.shape[0]
    low = 4 * emb.shape[-2]
    if mask_input is None:
        mask_input, has = torch.zeros(b, 1, low, low), torch.zeros(b)
    else:
        has = torch.ones(b)
    caught = []
    hook = model.mask_decoder.iou_prediction_head.register_forward_pre_hook(lambda _, args: caught.append(args[0]))
    try:
        masks, iou = model.decode(emb.expand(b, -1, -1, -1), coords, labels, mask_input, has)
    finally:
        hook.remove()
    return masks, iou, caught[0]


def encode_prompts(prompts: list[Prompt], scale: float):
    """Prompts with the same number of encoded points, stacked (no padding)."""
    enc = [p.encode(scale) for p in prompts]
    return torch.from_numpy(np.stack([c for c, _ in enc])), torch.from_numpy(np.stack([lab for _, lab in enc]))


def true_ious(low: torch.Tensor, targets: np.ndarray, resized_hw, frame_hw, size: int) -> np.ndarray:
    """IoU at frame size of every output (B, 4, L, L) with its target (B, H, W):
    sam_io.postprocess (which equals torch's bilinear interpolation), threshold 0."""
    b, k = low.shape[:2]
    out = np.zeros((b, k), np.float32)
    t_all = torch.from_numpy(np.ascontiguousarray(targets))
    for i in range(0, b, 16):
        x = F.interpolate(low[i:i + 16], size=(size, size), mode="bilinear", align_corners=False)
        x = x[..., : resized_hw[0], : resized_hw[1]]
        full = F.interpolate(x, size=frame_hw, mode="bilinear", align_corners=False) > 0
        t = t_all[i:i + 16, None]
        inter = (full & t).sum(dim=(2, 3))
        union = (full | t).sum(dim=(2, 3))
        out[i:i + 16] = torch.where(union > 0, inter / union.clamp(min=1), 1.0).numpy()
    return out


def low_res_stability(low: np.ndarray, valid: tuple[int, int], offset: float = 1.0) -> np.ndarray:
    """src/segment/masks/postprocess.rs `low_res_stability` on the cells showing the frame."""
    v = low[..., : valid[0], : valid[1]]
    hi, lo = (v > offset).sum(axis=(-2, -1)), (v > -offset).sum(axis=(-2, -1))
    return np.where(lo > 0, hi / np.maximum(lo, 1), 0.0)


def valid_cells(resized_hw, low: int, size: int) -> tuple[int, int]:
    return (min(-(-resized_hw[0] * low // size), low), min(-(-resized_hw[1] * low // size), low))


# ---------------------------------------------------------------------------
# Data: cached IoU tokens and true IoUs.

def scene_records(model: TinySam, rgb: np.ndarray, masks: np.ndarray, rng, grid: int, object_prompts: bool,
                  batch: int = 64):
    """Tokens (P, C), true IoUs (P, 4), predicted IoUs (P, 4), prompt kind (P,)
    of one scene's prompts, plus per-grid-prompt low-res stability (G, 4) and
    object index (G,)."""
    size = model.cfg.image_size
    x, scale, resized = normalise(rgb, size)
    h, w = rgb.shape[:2]
    emb = model.encode(x)
    low_side = 4 * model.cfg.embedding_size
    where = object_map(masks)
    background = where < 0
    targets_all = np.concatenate([masks, background[None]]) if masks.size else background[None]

    groups: list[tuple[str, list[Prompt], list[int], bool]] = []
    pts = point_grid(grid, w, h)
    grid_targets = [int(where[int(py), int(px)]) for px, py in pts]
    grid_targets = [t if t >= 0 else len(masks) for t in grid_targets]
    grid_prompts = [Prompt([(float(px), float(py))], [POSITIVE]) for px, py in pts]
    groups.append(("grid", grid_prompts, grid_targets, False))
    if object_prompts and len(masks):
        for kind in ("box", "jittered box", "point", "points", "box+points"):
            ps, ts = [], []
            for k, m in enumerate(masks):
                box = mask_box(m)
                if kind == "box":
                    p = Prompt(box=box)
                elif kind == "jittered box":
                    p = Prompt(box=jitter_box(rng, box))
                elif kind == "point":
                    p = Prompt([interior_point(rng, m)], [POSITIVE])
                else:
                    p = Prompt(box=box if kind == "box+points" else None)
                    for _ in range(int(rng.integers(1, 3))):
                        p.points.append(interior_point(rng, m))
                        p.labels.append(POSITIVE)
                    if kind == "points" and rng.random() < 0.5:
                        q = negative_point(rng, m, box)
                        if q is not None:
                            p.points.append(q)
                            p.labels.append(NEGATIVE)
                ps.append(p)
                ts.append(k)
            groups.append((kind, ps, ts, kind in ("box", "jittered box")))
    toks, trues, preds, kinds = [], [], [], []
    stab, grid_obj = None, np.array(grid_targets)
    for kind, prompts, tgts, refine in groups:
        by_n: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_n.setdefault(len(p.encode(scale)[0]), []).append(i)
        for idx in by_n.values():
            for s in range(0, len(idx), batch):
                sub = idx[s:s + batch]
                coords, labels = encode_prompts([prompts[i] for i in sub], scale)
                t = targets_all[[tgts[i] for i in sub]]
                low, iou, tok = decode_with_token(model, emb, coords, labels)
                low_np = low.numpy()
                toks.append(tok.numpy())
                trues.append(true_ious(low, t, resized, (h, w), size))
                preds.append(iou.numpy())
                kinds += [kind] * len(sub)
                if kind == "grid":
                    valid = valid_cells(resized, low_side, size)
                    # at logit scale k (a power of 2), v * k > 1 exactly when v > 1 / k
                    st = np.stack([low_res_stability(low_np, valid, 1.0 / k) for k in LOGIT_SCALES], axis=-1)
                    stab = st if stab is None else np.concatenate([stab, st])
                if refine:
                    # video tracking: the same box with its best earlier logits as mask input
                    best = iou[:, 1:].argmax(dim=1) + 1
                    prev = low[torch.arange(len(sub)), best][:, None]
                    low2, iou2, tok2 = decode_with_token(model, emb, coords, labels, prev)
                    toks.append(tok2.numpy())
                    trues.append(true_ious(low2, t, resized, (h, w), size))
                    preds.append(iou2.numpy())
                    kinds += [kind + " + mask input"] * len(sub)
    return (np.concatenate(toks), np.concatenate(trues), np.concatenate(preds), np.array(kinds), stab, grid_obj)


def collect(model, scenes, rng, grid, object_prompts, log=print) -> dict:
    """Records of every scene of `scenes()`, concatenated; `scene` numbers them."""
    parts = []
    t0 = time.time()
    for i, (rgb, masks) in enumerate(scenes()):
        tok, true, pred, kind, stab, obj = scene_records(model, rgb, masks, rng, grid, object_prompts)
        g = kind == "grid"
        parts.append({"tokens": tok, "true": true, "pred": pred, "kind": kind, "scene": np.full(len(tok), i),
                      "stability": np.pad(stab, ((0, len(tok) - len(stab)), (0, 0), (0, 0))),
                      "object": np.pad(obj, (0, len(tok) - len(obj)), constant_values=-2),
                      "background": np.where(g, len(masks), -1)})
        if log and (i + 1) % 10 == 0:
            log(f"  {i + 1} scenes, {len(tok)} prompts in the last, {time.time() - t0:.0f}s", flush=True)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def synthetic_scenes(rng, n: int, sizes):
    """`n` tools/tinysam/scenes.py scenes, the frame sizes taking turns."""
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        s = make_scene(rng, w, h)
        yield s.image, s.masks


def training_scenes(seed: int, n_synthetic: int, n_rendered: int):
    def gen():
        yield from synthetic_scenes(np.random.default_rng([seed, 7]), n_synthetic, TRAIN_SIZES)
        for i in range(n_rendered):
            w, h = TRAIN_SIZES[i % len(TRAIN_SIZES)]
            yield render(TRAIN_RENDER_SEED + seed * 10_000 + i, w, h, 2 + i % 7)
    return gen


def large_training_scenes(seed: int, n: int):
    """scenes.py scenes at tools/evaluate.py's frame sizes (up to 1920x1080),
    from a generator of their own: the scenes' textures have fixed pixel
    scales, so large frames look different at the model's input."""
    return lambda: synthetic_scenes(np.random.default_rng([seed, 11]), n, EVALUATION_SIZES)


def concatenated(a: dict, b: dict) -> dict:
    """Two record sets as one, `b`'s scenes numbered after `a`'s."""
    b = dict(b, scene=b["scene"] + int(a["scene"].max()) + 1)
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def cached(path: str | None, make):
    if path and os.path.exists(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    data = make()
    if path:
        np.savez(path, **data)
    return data


# ---------------------------------------------------------------------------
# Report on the held-out scenes.

def held_out_report(data: dict, pred: np.ndarray, logit_scale: int = 1, iou_thresh: float = 0.88,
                    stability_thresh: float = 0.95, match: float = 0.75) -> dict:
    """On tests/everything.rs's scenes (`data` from the 32x32 grid), the 3
    multimask outputs of every prompt: calibration error, and which filter
    keeps objects from being reached (by a candidate of a prompt on them at
    IoU >= `match`)."""
    true, obj = data["true"][:, 1:], data["object"]
    stab = data["stability"][:, 1:, LOGIT_SCALES.index(logit_scale)]
    pred = pred[:, 1:]
    err = pred - true
    ok_iou, ok_st = pred > iou_thresh, stab >= stability_thresh
    good = true >= match
    reach = {"any": 0, "iou": 0, "stability": 0, "both": 0}
    n_obj = 0
    for s in np.unique(data["scene"]):
        sel = data["scene"] == s
        bg = int(data["background"][sel][0])
        for k in range(bg):
            m = good[sel] & (obj[sel] == k)[:, None]
            n_obj += 1
            reach["any"] += bool(m.any())
            reach["iou"] += bool((m & ok_iou[sel]).any())
            reach["stability"] += bool((m & ok_st[sel]).any())
            reach["both"] += bool((m & ok_iou[sel] & ok_st[sel]).any())
    passing = ok_iou & ok_st
    on_bg = obj == data["background"]
    return {"logit_scale": logit_scale, "masks": int(err.size), "mean_abs_error": float(np.abs(err).mean()),
            "mean_error": float(err.mean()),
            "mean_abs_error_true_iou_ge_0.75": float(np.abs(err[good]).mean()),
            "mean_error_true_iou_ge_0.75": float(err[good].mean()),
            "objects": n_obj, "reachable": reach, "candidates_passing": int(passing.sum()),
            "passing_true_iou_lt_0.75": int((passing & ~good).sum()),
            "background_candidates_passing": int(passing[on_bg].sum())}


def print_held_out(r: dict, label: str):
    rc = r["reachable"]
    n = r["objects"]
    print(f"{label}: held-out scenes of tests/everything.rs, 32x32 grid, {r['masks']} multimask outputs: "
          f"mean |predicted - true IoU| {r['mean_abs_error']:.4f} (signed {r['mean_error']:+.4f}; on masks "
          f"with true IoU >= 0.75: {r['mean_abs_error_true_iou_ge_0.75']:.4f}, "
          f"signed {r['mean_error_true_iou_ge_0.75']:+.4f})")
    print(f"  objects reached at IoU >= 0.75 by some candidate: {rc['any']}/{n}; passing IoU > 0.88: "
          f"{rc['iou']}/{n}; stability >= 0.95 (logits x{r['logit_scale']}): {rc['stability']}/{n}; both: {rc['both']}/{n}; "
          f"candidates passing both {r['candidates_passing']} (true IoU < 0.75: "
          f"{r['passing_true_iou_lt_0.75']}; on the background {r['background_candidates_passing']})",
          flush=True)


# ---------------------------------------------------------------------------
# The fine-tune.

def head_predict(head: torch.nn.Module, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(torch.from_numpy(tokens)).numpy()


BOX_KINDS = ("box", "jittered box", "box+points", "box + mask input", "jittered box + mask input")


def fine_tune(head: torch.nn.Module, train: dict, val: dict, epochs: int, lr: float, batch: int, seed: int,
              grid_weight: float, log=print, point_weight: float = 1.0, keep_box_choice: float = 0.0,
              margin: float = 0.02) -> list[dict]:
    """MSE between the head's predictions and the true IoUs of all 4 outputs,
    Adam with a cosine schedule; the object prompts count 1, the grid's
    `grid_weight` each (there are many more of them), and single interior
    points (the "point" prompts, where the `tinysam` rule's choice among the
    3 outputs matters most) `point_weight` each. With `keep_box_choice` > 0,
    a hinge term of that weight keeps, for prompts with a box, the input
    head's choice among the 3 multimask outputs ahead of the other two by
    `margin`: the `tinysam` rule then picks the same box masks as before,
    while the grid's points are calibrated."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(train["tokens"]), torch.from_numpy(train["true"])
    w = np.where(train["kind"] == "grid", grid_weight, 1.0).astype(np.float32)
    w = torch.from_numpy(np.where(train["kind"] == "point", point_weight, w).astype(np.float32))
    vx, vy = torch.from_numpy(val["tokens"]), torch.from_numpy(val["true"])
    boxed = torch.from_numpy(np.isin(train["kind"], BOX_KINDS))
    choice = torch.from_numpy(np.argmax(train["pred"][:, 1:], axis=1)) if keep_box_choice else None
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    steps = max(epochs * math.ceil(len(x) / batch), 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i / steps, 1.0))))
    history = []
    for epoch in range(epochs + 1):
        if epoch:
            head.train()
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), batch):
                b = perm[i:i + batch]
                pred = head(x[b])
                loss = (((pred - y[b]) ** 2).mean(dim=1) * w[b]).sum() / w[b].sum()
                boxes = boxed[b]
                if keep_box_choice and boxes.any():
                    multi = pred[boxes][:, 1:]
                    chosen = multi.gather(1, choice[b][boxes][:, None])
                    # the chosen output's own term is exactly `margin`
                    hinge = torch.relu(multi - chosen + margin).sum(dim=1) - margin
                    loss = loss + keep_box_choice * hinge.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        if epoch % max(epochs // 10, 1) == 0 or epoch == epochs:
            head.eval()
            with torch.no_grad():
                tp, vp = head(x), head(vx)
            vboxed = np.isin(val["kind"], BOX_KINDS)
            kept_choice = (np.argmax(vp.numpy()[vboxed][:, 1:], axis=1)
                           == np.argmax(val["pred"][vboxed][:, 1:], axis=1)).mean() if "pred" in val else np.nan
            row = {"epoch": epoch, "train_mae": float((tp - y).abs().mean()),
                   "val_box_choice_kept": float(kept_choice),
                   "val_mae": float((vp - vy).abs().mean()),
                   "val_mae_grid_multimask": float((vp - vy)[torch.from_numpy(val["kind"] == "grid")][:, 1:]
                                                   .abs().mean())}
            history.append(row)
            if log:
                log(f"  epoch {epoch}: train MAE {row['train_mae']:.4f}, validation MAE {row['val_mae']:.4f} "
                    f"(grid, multimask outputs {row['val_mae_grid_multimask']:.4f}; box prompts keeping the "
                    f"input head's choice {row['val_box_choice_kept']:.3f})", flush=True)
    head.eval()
    return history


class OrderKeepingHead(torch.nn.Module):
    """The input IoU head with its multimask predictions y_1..y_3 replaced by
    a * y_j + w . x + c, where x is the head's last hidden layer, a > 0 and
    w, c are trained: one affine map per prompt, the same for its 3
    multimask outputs, so that their order, and with it every choice the
    `tinysam` rule makes in prompted mode, stays exactly as it was, while
    the levels that everything mode's `pred-iou-thresh` and NMS compare
    across prompts are calibrated. The single-mask output (0, which that
    rule never picks) is trained freely. `fold()` writes it back into the
    head's last layer, so the architecture is unchanged."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head
        for p in head.parameters():
            p.requires_grad_(False)
        last = head.layers[-1]
        self.log_a = torch.nn.Parameter(torch.zeros(()))
        self.w = torch.nn.Parameter(torch.zeros(last.in_features))
        self.c = torch.nn.Parameter(torch.zeros(()))
        self.single = torch.nn.Linear(last.in_features, 1)
        with torch.no_grad():
            self.single.weight.copy_(last.weight[:1])
            self.single.bias.copy_(last.bias[:1])

    def forward(self, tokens):
        x = tokens
        for layer in self.head.layers[:-1]:
            x = F.relu(layer(x))
        multi = torch.exp(self.log_a) * self.head.layers[-1](x)[:, 1:] + (x @ self.w + self.c)[:, None]
        return torch.cat([self.single(x), multi], dim=1)

    def fold(self) -> torch.nn.Module:
        """The input head with these maps in its last layer's weights."""
        last = self.head.layers[-1]
        with torch.no_grad():
            a = torch.exp(self.log_a)
            weight = torch.cat([self.single.weight, a * last.weight[1:] + self.w[None]])
            bias = torch.cat([self.single.bias, a * last.bias[1:] + self.c])
            last.weight.copy_(weight)
            last.bias.copy_(bias)
        for p in self.head.parameters():
            p.requires_grad_(True)
        return self.head


def calibrated_state(state: dict, head: torch.nn.Module) -> dict:
    """`state` with the IoU head's tensors replaced; nothing else touched."""
    out = dict(state)
    for k, v in head.state_dict().items():
        assert HEAD + k in out and out[HEAD + k].shape == v.shape
        out[HEAD + k] = v.detach().clone().contiguous()
    return out


def scaled_logits_state(state: dict, k: int, num_mask_tokens: int) -> dict:
    """`state` with every mask logit multiplied by k (a power of 2, so exactly):
    the last layer of each output hypernetwork MLP times k (the masks are its
    output's dot products with the upscaled image features), and the first
    convolution of the mask-input downscaler divided by k, so that feeding
    the new logits back as `mask_input` computes exactly what feeding the old
    ones did. `logits > 0` is unchanged; stability scores rise, and more cells
    exceed the hierarchical strategy's `high_score_thresh`."""
    assert k >= 1 and k & (k - 1) == 0, "the logit scale must be a power of 2"
    out = dict(state)
    for i in range(num_mask_tokens):
        for p in ("weight", "bias"):
            name = f"mask_decoder.output_hypernetworks_mlps.{i}.layers.2.{p}"
            out[name] = state[name] * k
    name = "prompt_encoder.mask_downscaling.0.weight"
    out[name] = state[name] / k
    return out


SCALED = ("mask_decoder.output_hypernetworks_mlps.", "prompt_encoder.mask_downscaling.0.weight")


# ---------------------------------------------------------------------------

def load(weights: str, config: str) -> TinySam:
    cfg = TinySamConfig.load(config)
    model = TinySam(cfg)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="tools/fixture/fixture.pth")
    ap.add_argument("--config", default="tools/fixture/config.json")
    ap.add_argument("--out", help="directory for the calibrated fixture.pth, config.json and calibration.json")
    ap.add_argument("--report-only", action="store_true", help="only print the held-out report")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--synthetic-scenes", type=int, default=60, help="tools/tinysam/scenes.py scenes (default 60)")
    ap.add_argument("--rendered-scenes", type=int, default=60, help="Rust-test-style scenes (default 60)")
    ap.add_argument("--large-scenes", type=int, default=0,
                    help="more scenes.py scenes at tools/evaluate.py's frame sizes (default 0)")
    ap.add_argument("--grid", type=int, default=16, help="grid points per side on the training scenes")
    ap.add_argument("--validation", type=float, default=0.2, help="fraction of the scenes held out for validation")
    ap.add_argument("--epochs", type=int, default=60, help="0: leave the head as it is (--logit-scale only)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--grid-weight", type=float, default=0.5)
    ap.add_argument("--point-weight", type=float, default=1.0,
                    help="weight of the single-interior-point object prompts (default 1; the others count 1)")
    ap.add_argument("--keep-order", action="store_true",
                    help="train one affine map per prompt for its multimask predictions (OrderKeepingHead): "
                         "prompted mode's choices stay exactly those of the input weights")
    ap.add_argument("--keep-box-choice", type=float, default=0.0, metavar="W",
                    help="weight of a hinge term keeping the input head's choice among the multimask outputs "
                         "for prompts with a box (default 0: off)")
    ap.add_argument("--logit-scale", type=int, default=1, choices=LOGIT_SCALES,
                    help="also multiply every mask logit by this (exactly; see scaled_logits_state); default 1")
    ap.add_argument("--cache", help="directory for the cached tokens (reused when present)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load(args.weights, args.config)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cache = (lambda name: os.path.join(args.cache, name)) if args.cache else (lambda name: None)
    print("held-out scenes (tests/everything.rs), 32x32 grid:", flush=True)
    test = cached(cache("held_out.npz"), lambda: collect(model, test_scenes, np.random.default_rng(0), 32, False))
    before = held_out_report(test, test["pred"])
    print_held_out(before, "input weights")
    if args.report_only:
        return 0

    head = model.mask_decoder.iou_prediction_head
    train = val = None
    history = []
    if args.epochs:  # --epochs 0 leaves the head as it is: no training data needed
        print(f"training scenes: {args.synthetic_scenes} synthetic + {args.rendered_scenes} rendered, seed {args.seed}, "
              f"{args.grid}x{args.grid} grid and object prompts:", flush=True)
        name = f"train_s{args.seed}_{args.synthetic_scenes}_{args.rendered_scenes}_g{args.grid}.npz"
        data = cached(cache(name), lambda: collect(
            model, training_scenes(args.seed, args.synthetic_scenes, args.rendered_scenes),
            np.random.default_rng([args.seed, 2]), args.grid, True))
        if args.large_scenes:
            print(f"  and {args.large_scenes} synthetic scenes at tools/evaluate.py's frame sizes:", flush=True)
            large = cached(cache(f"train_s{args.seed}_large{args.large_scenes}_g{args.grid}.npz"), lambda: collect(
                model, large_training_scenes(args.seed, args.large_scenes), np.random.default_rng([args.seed, 12]),
                args.grid, True))
            data = concatenated(data, large)
        n_scenes = int(data["scene"].max()) + 1
        # every 1/validation-th scene validates (both scene sources)
        every = max(int(round(1 / args.validation)), 2)
        is_val = data["scene"] % every == every - 1
        train = {k: v[~is_val] for k, v in data.items()}
        val = {k: v[is_val] for k, v in data.items()}
        print(f"{n_scenes} scenes: {len(train['tokens'])} training prompts, {len(val['tokens'])} validation prompts",
              flush=True)

        trained = OrderKeepingHead(head) if args.keep_order else head
        history = fine_tune(trained, train, val, args.epochs, args.lr, args.batch, args.seed, args.grid_weight,
                             point_weight=args.point_weight, keep_box_choice=args.keep_box_choice)
        if args.keep_order:
            expected = head_predict(trained, val["tokens"])
            head = trained.fold()
            assert np.abs(head_predict(head, val["tokens"]) - expected).max() < 1e-4
    new_state = calibrated_state(state, head)
    if args.logit_scale != 1:
        new_state = scaled_logits_state(new_state, args.logit_scale, model.mask_decoder.num_mask_tokens)
    changed = []
    for k, v in state.items():
        if not torch.equal(new_state[k], v):
            changed.append(k)
            assert k.startswith(HEAD) or (args.logit_scale != 1 and k.startswith(SCALED)), k
    print(f"changed tensors: {changed}")
    after = held_out_report(test, head_predict(head, test["tokens"]), args.logit_scale)
    print_held_out(before, "before")
    print_held_out(after, "after")
    by_kind = {}
    vp = head_predict(head, val["tokens"]) if val is not None else None
    for kind in np.unique(val["kind"]) if val is not None else []:
        sel = val["kind"] == kind
        by_kind[str(kind)] = {"before": float(np.abs(val["pred"][sel] - val["true"][sel]).mean()),
                              "after": float(np.abs(vp[sel] - val["true"][sel]).mean())}
        print(f"  validation {kind:<28} mean |predicted - true IoU| (4 outputs) "
              f"{by_kind[str(kind)]['before']:.4f} -> {by_kind[str(kind)]['after']:.4f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        torch.save(new_state, os.path.join(args.out, "fixture.pth"))
        with open(os.path.join(args.out, "config.json"), "w") as f:
            f.write(model.cfg.to_json())
        record = {"weights": args.weights,
                  "trained": "mask_decoder.iou_prediction_head only" if args.epochs else "nothing (--epochs 0)",
                  "seed": args.seed, "synthetic_scenes": args.synthetic_scenes,
                  "rendered_scenes": args.rendered_scenes, "large_scenes": args.large_scenes, "grid": args.grid,
                  "validation": args.validation,
                  "logit_scale": args.logit_scale, "changed_tensors": changed,
                  "epochs": args.epochs, "lr": args.lr, "batch": args.batch, "grid_weight": args.grid_weight,
                  "point_weight": args.point_weight, "keep_box_choice": args.keep_box_choice,
                  "keep_order": args.keep_order,
                  "training_prompts": len(train["tokens"]) if train else 0,
                  "validation_prompts": len(val["tokens"]) if val else 0,
                  "history": history, "validation_by_kind": by_kind,
                  "held_out": {"before": before, "after": after}}
        with open(os.path.join(args.out, "calibration.json"), "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        # the input weights' training record, with this stage added
        info_path = os.path.join(os.path.dirname(os.path.abspath(args.weights)), "training.json")
        info = {}
        if os.path.exists(info_path):
            with open(info_path) as f:
                info = json.load(f)
        info["calibration"] = {k: v for k, v in record.items() if k not in ("history", "weights")}
        info["calibration"]["arguments"] = {k: v for k, v in vars(args).items() if k not in ("cache", "out")}
        with open(os.path.join(args.out, "training.json"), "w") as f:
            json.dump(info, f, indent=2)
            f.write("\n")
        print(f"wrote {args.out}/fixture.pth, config.json, training.json, calibration.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
