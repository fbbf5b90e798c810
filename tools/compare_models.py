#!/usr/bin/env python3
"""Accuracy change of one model directory against another on your images,
e.g. an INT8 export against the FP32 export of the same checkpoint.

Both models run through ONNX Runtime with the element's pre- and
post-processing. Per image: a 4x4 grid of single positive points and 10 boxes
(a 3x3 grid of cells and the central half); each model picks its mask by its
own mask-selection rule. Reports the mean (and worst) IoU between the two
models' frame-size masks, the mean and max |difference| of the predicted IoU,
and the relative RMS difference of the image embeddings.

  .venv/bin/python tools/compare_models.py --reference models/tinysam \\
      --candidate models/tinysam-int8 --images frames/
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tinysam.images import list_images  # noqa: E402
from tinysam.int8_check import compare_on_images  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, metavar="DIR", help="model directory taken as correct (FP32)")
    ap.add_argument("--candidate", required=True, metavar="DIR", help="model directory to compare (INT8)")
    ap.add_argument("--images", required=True, metavar="DIR", help="directory of images (png, jpg, ...)")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--json", metavar="PATH", help="also write the per-image report as JSON")
    args = ap.parse_args(argv)
    report = compare_on_images(args.reference, args.candidate, list_images(args.images), args.threads or None)
    print(json.dumps(report["summary"], indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
