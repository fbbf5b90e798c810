#!/usr/bin/env python3
"""The encoder on ONNX Runtime's OpenVINO execution provider, for
tools/bench.py's section 3b. Runs under .venv-openvino's Python (the
onnxruntime-openvino build: one ONNX Runtime per process), with numpy and
onnxruntime only, and prints one JSON object:

  version   the onnxruntime-openvino version
  ceiling   the CPU provider's FP32 MatMul throughput on --matmul's model,
            GFLOP/s, in turns with the encoders
  openvino_ceiling  the same on OpenVINO, in the same turns
  seconds   {"<name> <provider>": median seconds} for each encoder on the CPU
            provider of this same library and on OpenVINO at FP32 (what
            tinysam execution-provider=openvino asks for), interleaved
  max_abs_diff  {"<name>": largest |OpenVINO - CPU| over the embeddings}

  .venv-openvino/bin/python tools/bench_openvino.py --matmul /tmp/matmul.onnx \\
      --encoder FP32=/tmp/full-fp32/encoder.onnx --encoder INT8=/tmp/full-int8/encoder.onnx
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np
import onnxruntime as ort

from bench_timing import CEILING_N, gflops, seconds, settled_best


def session(path: str, provider: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if provider == "CPU":
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    openvino = {"device_type": "CPU", "precision": "FP32", "num_of_threads": str(threads)}
    return ort.InferenceSession(path, options, providers=[("OpenVINOExecutionProvider", openvino),
                                                          "CPUExecutionProvider"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matmul", required=True, help="the MatMul ceiling's model (tools/bench.py writes it)")
    ap.add_argument("--encoder", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    if "OpenVINOExecutionProvider" not in ort.get_available_providers():
        sys.exit(f"this onnxruntime ({ort.__version__}) has no OpenVINO execution provider")

    a = np.random.default_rng(0).random((CEILING_N, CEILING_N), np.float32)
    runs, diffs = {}, {}
    for provider in ("CPU", "OpenVINO"):
        matmul = session(args.matmul, provider, args.threads)
        matmul.run(None, {"a": a})
        runs[f"MatMul {provider}"] = lambda s=matmul: s.run(None, {"a": a})

    rng = np.random.default_rng(0)
    for spec in args.encoder:
        name, path = spec.split("=", 1)
        cpu, openvino = session(path, "CPU", args.threads), session(path, "OpenVINO", args.threads)
        image = rng.standard_normal(cpu.get_inputs()[0].shape).astype(np.float32)  # (1, 3, S, S)
        a_out, b_out = cpu.run(None, {"image": image})[0], openvino.run(None, {"image": image})[0]
        diffs[name] = float(np.abs(a_out - b_out).max())
        runs[f"{name} CPU"] = lambda s=cpu, x=image: s.run(None, {"image": x})
        runs[f"{name} OpenVINO"] = lambda s=openvino, x=image: s.run(None, {"image": x})
    times = {k: [] for k in runs}
    for _ in range(args.reps):
        for k, fn in runs.items():
            times[k].append(settled_best(fn) if k.startswith("MatMul") else seconds(fn))
    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {p: gflops(median.pop(f"MatMul {p}")) for p in ("CPU", "OpenVINO")}
    print(json.dumps({"version": ort.__version__, "ceiling": rate["CPU"], "openvino_ceiling": rate["OpenVINO"],
                      "seconds": median, "max_abs_diff": diffs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
