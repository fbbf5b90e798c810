#!/usr/bin/env python3
"""Export TinySAM (or MobileSAM) to a gst-tinysam model directory.

Writes encoder.onnx, decoder.onnx and model.json (docs/model-format.md), then
verifies the export with ONNX Runtime on a random synthetic scene and random
prompts (boxes, points with negatives, padding, a mask input, B > 1, N > 1)
and exits with status 1 when it is off by more than the tolerance:

  fp32  ONNX vs PyTorch: max abs difference <= 1e-3 on the image embeddings,
        the IoU predictions and the low-res mask logits.
  int8  INT8 vs the FP32 export: embedding relative RMS error <= 0.5, mean
        IoU of the thresholded low-res masks >= 0.85, IoU-prediction max abs
        difference <= 0.10 (docs/tools.md explains the choice).

Examples:
  # the official TinySAM checkpoint, 1024 input
  .venv/bin/python tools/export.py --checkpoint tinysam_42.3.pth --name tinysam --out models/tinysam
  # a faster 512 input, INT8 calibrated on your own frames
  .venv/bin/python tools/export.py --checkpoint tinysam_42.3.pth --image-size 512 --precision int8 \\
      --calibration-images frames/ --check-int8 frames/ --name tinysam-512-int8 --out models/tinysam-512-int8
  # a full-size network with random weights (for speed tests)
  .venv/bin/python tools/export.py --random-init --name tinysam-random --out /tmp/tinysam-random
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from tinysam import exporting  # noqa: E402
from tinysam.model import TinySamConfig  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH",
                     help="PyTorch checkpoint: a state dict or {'model': state_dict} (tinysam_42.3.pth, "
                          "mobile_sam.pt, tools/fixture/fixture.pth); loaded strictly")
    src.add_argument("--random-init", action="store_true", help="random weights (seeded by --seed)")
    ap.add_argument("--config", metavar="JSON",
                    help="TinySamConfig as JSON (default: the full TinySAM / MobileSAM network)")
    ap.add_argument("--image-size", type=int, metavar="S",
                    help="model input size S, a multiple of 16 (overrides the config; default: the config's, "
                         "1024 for the full network)")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or later (default 17)")
    ap.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="default fp32")
    ap.add_argument("--calibration-images", metavar="DIR",
                    help="int8: calibrate a static quantisation of the encoder on the images in DIR "
                         "(pre-processed like the element does); without it the encoder is quantised dynamically")
    ap.add_argument("--check-int8", metavar="DIR",
                    help="int8: also report the accuracy change against FP32 on the images in DIR "
                         "(mask IoU INT8 vs FP32 for a grid of point prompts and for box prompts, |delta IoU "
                         "prediction|)")
    ap.add_argument("--mask-selection", choices=["tinysam", "sam"], default="tinysam",
                    help="mask-selection rule the weights were trained for, recorded in model.json: "
                         "tinysam = best of the 3 multimask outputs by predicted IoU for every prompt (default); "
                         "sam = that for a single point, the single-mask output otherwise")
    ap.add_argument("--plain-onnx", action="store_true",
                    help="leave the graphs as exported, in the default ONNX domain only (for runtimes other "
                         "than ONNX Runtime; slower there, see docs/tools.md) instead of fusing their GELUs")
    ap.add_argument("--name", required=True, help="model name recorded in model.json")
    ap.add_argument("--seed", type=int, default=0, help="random init and verification inputs (default 0)")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime / PyTorch threads (default: all)")
    ap.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    ap.add_argument("--verbose", action="store_true", help="show the ONNX exporter's progress")
    args = ap.parse_args(argv)
    if args.precision == "fp32" and (args.calibration_images or args.check_int8):
        ap.error("--calibration-images and --check-int8 need --precision int8")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TinySamConfig.load(args.config) if args.config else TinySamConfig()
    if args.image_size:
        cfg.image_size = args.image_size
    exporting.check_image_size(cfg.image_size)
    calibration = exporting.list_images(args.calibration_images) if args.calibration_images else None

    t0 = time.time()
    model, source = exporting.build_model(args.checkpoint, cfg, args.seed)
    n_enc = sum(p.numel() for p in model.image_encoder.parameters())
    n_dec = sum(p.numel() for p in model.prompt_encoder.parameters()) + \
        sum(p.numel() for p in model.mask_decoder.parameters())
    print(f"{args.name}: {source}, input {cfg.image_size}, embedding {cfg.prompt_embed_dim}x"
          f"{cfg.embedding_size}x{cfg.embedding_size}, encoder {n_enc / 1e6:.2f} M parameters, "
          f"prompt encoder + decoder {n_dec / 1e6:.2f} M")
    work = tempfile.TemporaryDirectory(prefix="tinysam-fp32-")
    fp32_copy = os.path.join(work.name, "fp32") if args.check_int8 else None
    result = exporting.export_model_dir(
        model, args.out, name=args.name, source=source, opset=args.opset, precision=args.precision,
        mask_selection=args.mask_selection, calibration_images=calibration, seed=args.seed,
        threads=args.threads or None, verbose=args.verbose, fp32_copy=fp32_copy, fuse=not args.plain_onnx)
    v = result.meta["verification"]
    print(f"max abs diff: embeddings {v['embeddings']:.3g}, iou_predictions {v['iou_predictions']:.3g}, "
          f"low_res_masks {v['low_res_masks']:.3g}"
          + (" (INT8 vs FP32 export)" if args.precision == "int8" else " (ONNX Runtime vs PyTorch)"))

    if args.check_int8:
        from tinysam.int8_check import compare_on_images

        report = compare_on_images(fp32_copy, args.out, exporting.list_images(args.check_int8),
                                   threads=args.threads or None)
        print("INT8 vs FP32 on the --check-int8 images:")
        print(json.dumps(report["summary"], indent=2))
    work.cleanup()

    for line in result.failures:
        print(f"VERIFICATION FAILED: {line}", file=sys.stderr)
    print(f"{'FAILED' if result.failures else 'wrote'} {args.out} in {time.time() - t0:.1f}s")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
