#!/usr/bin/env python3
"""Plain vs split decoder speed on ONNX Runtime, side by side in one run.

For batches of B point prompts as SAM's everything mode sends them (one
positive point + the padding point, no mask input), times per repetition:

  plain  decoder.onnx on the image embedding
  split  decoder_image.onnx once + decoder_prompt.onnx

and prints medians in ms per prompt and the ratio plain / split. The two are
interleaved within each repetition so that load from other work on the
machine hits both alike. Without --model-dir a full-size random-init TinySAM
(speed does not depend on the weights) is exported to a temporary directory
first (its decoders only, unverified).

Examples:
  .venv/bin/python tools/bench_decoder.py                     # 1024 input, 2 threads
  .venv/bin/python tools/bench_decoder.py --image-size 720 --reps 3
  .venv/bin/python tools/bench_decoder.py --model-dir models/tinysam --batches 1 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from tinysam import exporting  # noqa: E402
from tinysam.model import TinySamConfig  # noqa: E402
from tinysam.onnx_model import session  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", metavar="DIR",
                    help="an FP32 model directory with a split decoder (default: export a random-init one)")
    ap.add_argument("--image-size", type=int, default=1024,
                    help="input size of the exported random-init network (default 1024)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64], metavar="B",
                    help="prompts per decoder call (default 1 16 64)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per batch size (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per batch size first (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.model_dir is None:
        exporting.check_image_size(args.image_size)
    return args


def everything_mode_batch(rng, b, size, low_res):
    """B single positive points anywhere in the input, each with SAM's padding point."""
    coords = np.zeros((b, 2, 2), np.float32)
    coords[:, 0] = rng.uniform(0, size - 1, (b, 2))
    labels = np.tile(np.float32([1, -1]), (b, 1))
    return {"point_coords": coords, "point_labels": labels,
            "mask_input": np.zeros((b, 1, low_res, low_res), np.float32),
            "has_mask_input": np.zeros(b, np.float32)}


def _ms(fn):
    t = time.perf_counter()
    fn()
    return 1000.0 * (time.perf_counter() - t)


def bench(model_dir: str, threads: int, batches: list[int], reps: int, warmup: int, seed: int) -> list[dict]:
    with open(os.path.join(model_dir, "model.json")) as f:
        meta = json.load(f)
    if "split_decoder" not in meta:
        raise SystemExit(f"{model_dir}: model.json has no split_decoder (an older export)")
    split = meta["split_decoder"]
    emb_meta = meta["embedding"]
    plain = session(os.path.join(model_dir, meta["decoder"]), threads)
    image = session(os.path.join(model_dir, split["image"]), threads)
    prompt = session(os.path.join(model_dir, split["prompt"]), threads)
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((1, emb_meta["channels"], emb_meta["height"], emb_meta["width"])).astype(np.float32)
    outputs = ["iou_predictions", "low_res_masks"]
    # prompted mode's call: every prompt gets its masks
    keep_all = ({"mask_iou_floor": np.full(meta["num_mask_tokens"], -np.inf, np.float32)}
                if any(i.name == "mask_iou_floor" for i in prompt.get_inputs()) else {})

    rows = []
    for b in batches:
        feed = everything_mode_batch(rng, b, meta["image_size"], meta["low_res_mask_size"])
        fixed = {}

        def run_plain():
            plain.run(outputs, {"image_embeddings": emb, **feed})

        def run_image():
            fixed.update(zip(split["image_outputs"], image.run(split["image_outputs"], {"image_embeddings": emb})))

        def run_prompt():
            prompt.run(outputs, {**fixed, **feed, **keep_all})

        for _ in range(warmup):
            run_plain()
            run_image()
            run_prompt()
        t_plain, t_image, t_prompt = [], [], []
        for _ in range(reps):
            t_plain.append(_ms(run_plain))
            t_image.append(_ms(run_image))
            t_prompt.append(_ms(run_prompt))
        split_total = [i + p for i, p in zip(t_image, t_prompt)]
        rows.append({"batch": b, "plain_ms_per_prompt": statistics.median(t_plain) / b,
                     "split_ms_per_prompt": statistics.median(split_total) / b,
                     "image_part_ms": statistics.median(t_image),
                     "prompt_part_ms_per_prompt": statistics.median(t_prompt) / b})
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    work = None
    model_dir = args.model_dir
    if model_dir is None:
        import torch

        torch.set_num_threads(args.threads)
        work = tempfile.TemporaryDirectory(prefix="tinysam-bench-")
        model_dir = work.name
        cfg = TinySamConfig(image_size=args.image_size)
        model, source = exporting.build_model(None, cfg, args.seed)
        t0 = time.time()
        # the decoders only, unverified: this directory is for timing
        exporting.export_onnx(model, model_dir, encoder=False)
        exporting.write_metadata(model_dir, exporting.metadata(
            cfg, "bench", source, "fp32", 17, "tinysam",
            {"embeddings": 0.0, "iou_predictions": 0.0, "low_res_masks": 0.0}))
        print(f"exported random-init TinySAM, input {args.image_size}, in {time.time() - t0:.0f}s")

    print(f"{model_dir}: ONNX Runtime CPU, {args.threads} threads, {args.reps} repetitions (medians), "
          f"prompts = one positive point + padding, no mask input")
    print(f"{'B':>4} {'plain ms/prompt':>16} {'split ms/prompt':>16} {'plain/split':>12} "
          f"{'image part ms':>14} {'prompt part ms/prompt':>22}")
    for r in bench(model_dir, args.threads, args.batches, args.reps, args.warmup, args.seed):
        print(f"{r['batch']:>4} {r['plain_ms_per_prompt']:>16.2f} {r['split_ms_per_prompt']:>16.2f} "
              f"{r['plain_ms_per_prompt'] / r['split_ms_per_prompt']:>12.2f} {r['image_part_ms']:>14.2f} "
              f"{r['prompt_part_ms_per_prompt']:>22.2f}")
    if work is not None:
        work.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
