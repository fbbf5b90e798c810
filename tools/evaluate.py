#!/usr/bin/env python3
"""Evaluate a model directory on held-out synthetic scenes, through ONNX
Runtime with SAM pre- and post-processing (tinysam.sam_io), the way the
element runs it.

Scenes come round-robin at several frame sizes and aspect ratios; every
object's visible mask is an exact target. Per object, three prompts:

  box         the exact bounding box of the visible mask (no jitter); the
              model's mask-selection rule picks the output
  point       one positive point inside the object (away from its edge);
              best of the 3 multimask outputs by predicted IoU
  box+points  the exact box plus 1-2 positive interior points; the model's
              mask-selection rule picks the output

Masks are compared at frame size; mIoU is the mean IoU over objects. Prints
mIoU per prompt kind, per frame size and overall.

  .venv/bin/python tools/evaluate.py --model models/tinysam-fixture --scenes 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from tinysam import sam_io  # noqa: E402
from tinysam.onnx_model import OnnxTinySam  # noqa: E402
from tinysam.prompts import POSITIVE, Prompt, interior_point, mask_box  # noqa: E402
from tinysam.scenes import make_scene  # noqa: E402

DEFAULT_SEED = 20261130  # training uses seed 0; these scenes are held out
FRAME_SIZES = [(640, 480), (1280, 720), (720, 1280), (500, 333), (1920, 1080), (333, 517)]  # width x height
KINDS = ("box", "point", "box+points")


def scene_prompts(rng: np.random.Generator, mask: np.ndarray) -> dict[str, Prompt]:
    box = mask_box(mask)
    point = interior_point(rng, mask)
    extra = [interior_point(rng, mask) for _ in range(int(rng.integers(1, 3)))]
    return {"box": Prompt(box=box),
            "point": Prompt([point], [POSITIVE]),
            "box+points": Prompt(extra, [POSITIVE] * len(extra), box)}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def evaluate(model_dir: str, n_scenes: int, seed: int = DEFAULT_SEED, threads: int | None = None,
             sizes=FRAME_SIZES, log=print) -> dict:
    model = OnnxTinySam(model_dir, threads)
    results = {k: {f"{w}x{h}": [] for w, h in sizes} for k in KINDS}
    t0 = time.time()
    for i in range(n_scenes):
        w, h = sizes[i % len(sizes)]
        rng = np.random.default_rng([seed, i])
        scene = make_scene(rng, w, h)
        if len(scene.masks) == 0:
            continue
        emb = model.embed(scene.image)
        prompts, kinds, targets = [], [], []
        for mask in scene.masks:
            for kind, p in scene_prompts(rng, mask).items():
                prompts.append(p)
                kinds.append(kind)
                targets.append(mask)
        lows, ious = model.decode_grouped(emb, prompts)
        for p, kind, target, low, pred in zip(prompts, kinds, targets, lows, ious):
            if kind == "point":
                k = sam_io.select_mask(pred, "tinysam", 1, False)  # best of the 3 multimask outputs
            else:
                k = model.select(pred, p)
            logits = sam_io.postprocess(low[k], emb.resized_hw, emb.frame_hw, model.size)
            results[kind][f"{w}x{h}"].append(iou(logits > model.mask_threshold, target))
        if log and (i + 1) % 25 == 0:
            log(f"  {i + 1}/{n_scenes} scenes, {time.time() - t0:.0f}s")
    return summarise(model, results, n_scenes, seed, time.time() - t0)


def summarise(model: OnnxTinySam, results: dict, n_scenes: int, seed: int, seconds: float) -> dict:
    sizes = list(next(iter(results.values())).keys())
    out = {"model": model.dir, "name": model.meta["name"], "precision": model.meta["precision"],
           "image_size": model.size, "mask_selection": model.mask_selection, "scenes": n_scenes, "seed": seed,
           "seconds": round(seconds, 1), "objects": sum(len(v) for v in results["box"].values()),
           "miou": {}, "per_frame_size": {}}
    for kind in KINDS:
        allv = [x for v in results[kind].values() for x in v]
        out["miou"][kind] = float(np.mean(allv)) if allv else float("nan")
    for size in sizes:
        out["per_frame_size"][size] = {"objects": len(results["box"][size])}
        for kind in KINDS:
            v = results[kind][size]
            out["per_frame_size"][size][kind] = float(np.mean(v)) if v else float("nan")
    return out


def print_report(r: dict):
    print(f"model {r['model']} ({r['name']}, {r['precision']}, input {r['image_size']}, "
          f"mask selection {r['mask_selection']})")
    print(f"{r['scenes']} scenes (seed {r['seed']}), {r['objects']} objects, {r['seconds']}s")
    print(f"{'frame size':<12}{'objects':>8}" + "".join(f"{k:>12}" for k in KINDS))
    for size, row in r["per_frame_size"].items():
        print(f"{size:<12}{row['objects']:>8}" + "".join(f"{row[k]:>12.4f}" for k in KINDS))
    print(f"{'overall':<12}{r['objects']:>8}" + "".join(f"{r['miou'][k]:>12.4f}" for k in KINDS))
    print(f"mIoU box {r['miou']['box']:.4f}, point {r['miou']['point']:.4f}, "
          f"box+points {r['miou']['box+points']:.4f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/tinysam-fixture", metavar="DIR",
                    help="model directory (default models/tinysam-fixture)")
    ap.add_argument("--scenes", type=int, default=200, help="number of scenes (default 200)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"scene seed (default {DEFAULT_SEED})")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    r = evaluate(args.model, args.scenes, args.seed, args.threads or None)
    print_report(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
