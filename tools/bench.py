#!/usr/bin/env python3
"""The speed report: how close the encoder and decoder come to this machine's
limit, FP32 against INT8, and what a user would otherwise run, in one run.

Prints, with the CPU's flags and ONNX Runtime's version:
  1. the MatMul ceiling: ONNX Runtime's FP32 MatMul on 2048x2048 matrices,
     the right-hand one a constant like a weight, with the same threads, in
     GFLOP/s;
  2. the FLOPs of the network (counted on the PyTorch model: matrix products
     and convolutions, 2 per multiply-add) and so each part's floor;
  3. the encoder, FP32 and INT8 (dynamic, and static with --int8-static)
     interleaved, against its floor; 3b. the
     same encoders on ONNX Runtime's OpenVINO build (.venv-openvino, which
     make setup installs), OpenVINO at FP32 against that build's CPU
     provider, interleaved, in a process of their own right after;
  4. the decoder per point prompt at batch B: plain and split (every mask,
     and with every mask skipped by mask_iou_floor, what everything mode
     pays for a prompt that fails pred-iou-thresh, and, where the element's
     core splits B into smaller calls for this embedding size, every mask
     in calls of that size), against its floor;
  5. a prompted frame (pre-processing, encoder, one box, mask post-processing)
     through ONNX Runtime against the project's PyTorch implementation of
     the same network (tools/tinysam), the "what a user would otherwise run"
     anchor.
Sections 3, 3b and 4 take the ceiling's MatMul as one more turn among what
they time, and give their floors at that ceiling: on a shared host the
machine's speed moves within minutes, and a ceiling measured at another time
makes the ratios wrong either way. After section 4 the ceiling is measured
once more, and the encoders' and the split decoder's ratios are given again
against the highest of the ceilings measured, the most demanding floor.
Each comparison is interleaved within each repetition, so that load from
other work on the machine hits both sides alike; figures are medians.
Everything mode per frame is the element's core, measured by the Rust bench
(docs/benchmarks.md); --everything runs it after the report, on the same
machine, with the fixture at the defaults and on --fp32's model.

  .venv/bin/python tools/export.py --random-init --name tinysam-random --out /tmp/full-fp32
  .venv/bin/python tools/export.py --random-init --precision int8 --name tinysam-random-int8 --out /tmp/full-int8
  .venv/bin/python tools/export.py --random-init --plain-onnx --name tinysam-random-plain --out /tmp/full-plain
  .venv/bin/python tools/export.py --random-init --precision int8 --calibration-images examples/data \
      --name tinysam-random-int8-static --out /tmp/full-int8-static
  .venv/bin/python tools/bench.py --fp32 /tmp/full-fp32 --int8 /tmp/full-int8 --int8-static /tmp/full-int8-static \
      --plain /tmp/full-plain --everything
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench_decoder import everything_mode_batch as point_batch  # noqa: E402
from bench_timing import CEILING_N, gflops, settled_best  # noqa: E402
from tinysam import sam_io  # noqa: E402
from tinysam.model import TinySam, TinySamConfig  # noqa: E402
from tinysam.onnx_model import session  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# per-prompt image tokens one decoder call of the element holds at most
# (src/segment/limits.rs, MAX_DECODER_CALL_TOKEN_BYTES; tools/tests/test_bench.py checks the copy)
CORE_CALL_TOKEN_BYTES = 16 << 20
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


def cpu_description() -> str:
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line)
        model = info.get("model name\t", model).strip()
        flags = set(info.get("flags\t\t", "").split())
    except OSError:
        pass
    shown = " ".join(f for f in FLAGS if f in flags) or "none of " + " ".join(FLAGS)
    return f"{model}, {os.cpu_count()} CPUs, flags: {shown}"


def matmul_model(n: int = CEILING_N):
    """An n x n x n MatMul whose right-hand matrix is a constant, as the
    network's weights are: ONNX Runtime then packs it once, at load, instead
    of on every run (1.12-1.15x the throughput with both matrices as inputs,
    on an AMX Xeon). Input `a`, of the random values of `b`."""
    a = np.random.default_rng(0).random((n, n), np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
                              initializer=[numpy_helper.from_array(a, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), a


CEILING = "MatMul ceiling"  # the turn interleaved() times in sections 3 and 4


def matmul_turn(threads: int):
    """A turn of the ceiling for interleaved(): sections 3, 3b and 4 take it
    with what they time, so that each floor comes from a ceiling measured in
    the same minutes (on a shared host the machine's speed moved by 1.5x
    between minutes). It times itself (bench_timing.settled_best) on
    matmul_model()."""
    model, a = matmul_model()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    s.run(None, {"a": a})

    return lambda: settled_best(lambda: s.run(None, {"a": a}))


def matmul_ceiling(turn, reps: int = 5) -> float:
    """ONNX Runtime's FP32 MatMul throughput in GFLOP/s: the median of
    `reps` of matmul_turn's turns."""
    return gflops(statistics.median(turn() for _ in range(reps)))


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def interleaved(runs: dict, reps: int, warmup: int = 1) -> dict:
    """Median seconds of each callable, the callables taking turns. A
    callable that returns a float (matmul_turn's) has timed itself."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    times = {k: [] for k in runs}
    for _ in range(reps):
        for k, fn in runs.items():
            t = time.perf_counter()
            r = fn()
            times[k].append(r if isinstance(r, float) else time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def openvino_section(args, enc_flops: float, fp32_cpu: float) -> tuple[dict, float]:
    """Section 3b: the encoders on the OpenVINO execution provider, in a
    process of their own (tools/bench_openvino.py under --openvino-python),
    right after section 3. Returns the milliseconds and the ONNX Runtime
    MatMul ceiling of its turns."""
    with tempfile.TemporaryDirectory() as tmp:
        matmul = os.path.join(tmp, "matmul.onnx")
        with open(matmul, "wb") as f:
            f.write(matmul_model()[0].SerializeToString())
        encoders = [f"FP32={os.path.join(args.fp32, load_meta(args.fp32)['encoder'])}"]
        for name, d in (("INT8", args.int8), ("INT8 static", args.int8_static)):
            if d:
                encoders.append(f"{name}={os.path.join(d, load_meta(d)['encoder'])}")
        done = subprocess.run([args.openvino_python, os.path.join(REPO, "tools", "bench_openvino.py"),
                               "--matmul", matmul, "--threads", str(args.threads), "--reps", str(args.reps),
                               *(a for e in encoders for a in ("--encoder", e))],
                              capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"tools/bench_openvino.py failed:\n{done.stderr[-2000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    t = {k: 1000 * v for k, v in r["seconds"].items()}
    enc_floor = enc_flops / r["ceiling"] / 1e6
    ov = t["FP32 OpenVINO"]
    line = ", ".join(f"{k} {v:.1f} ms ({v / enc_floor:.2f}x the floor)" for k, v in t.items())
    line += (f"; FP32 on OpenVINO / on the CPU provider: {t['FP32 CPU'] / ov:.2f}x in this process, "
             f"{1000 * fp32_cpu / ov:.2f}x against section 3's ONNX Runtime {ort.__version__}")
    for k in ("INT8", "INT8 static"):
        if f"{k} OpenVINO" in t:
            line += f"; FP32 / {k} on OpenVINO {ov / t[f'{k} OpenVINO']:.2f}x"
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in r["max_abs_diff"].items())
    print(f"3b. encoder, onnxruntime-openvino {r['version']} (own process, OpenVINO at FP32; floors at its CPU "
          f"provider's MatMul ceiling in these turns, {r['ceiling']:.1f} GFLOP/s; OpenVINO's own MatMul "
          f"{r['openvino_ceiling']:.1f} GFLOP/s): {line}; embeddings OpenVINO vs CPU, max abs diff: {diffs}")
    return t, r["ceiling"]


def load_meta(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fp32", required=True, metavar="DIR", help="FP32 model directory with a split decoder")
    ap.add_argument("--int8", metavar="DIR", help="INT8 model directory of the same network")
    ap.add_argument("--int8-static", metavar="DIR",
                    help="INT8 model directory of the same network, exported with --calibration-images "
                         "(static, convolutions included: the OpenVINO provider's INT8)")
    ap.add_argument("--plain", metavar="DIR",
                    help="the same network exported with --plain-onnx: its encoder joins the comparison")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads, ONNX Runtime and PyTorch (default 2)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (default 5)")
    ap.add_argument("--batch", type=int, default=64, help="prompts per decoder call (default 64)")
    ap.add_argument("--everything", action="store_true",
                    help="then run the Rust everything-mode bench (fixture at the defaults, then --fp32's model)")
    ap.add_argument("--openvino-python", default=os.path.join(REPO, ".venv-openvino", "bin", "python"),
                    help="Python of an environment with onnxruntime-openvino, for section 3b "
                         "(default: .venv-openvino's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    meta = load_meta(args.fp32)
    cfg = TinySamConfig.from_dict(meta["config"])
    size, low_res = meta["image_size"], meta["low_res_mask_size"]
    e = meta["embedding"]

    print(f"CPU: {cpu_description()}")
    print(f"ONNX Runtime {ort.__version__}, PyTorch {torch.__version__}, {args.threads} threads, "
          f"medians of {args.reps}")
    ceiling_turn = matmul_turn(args.threads)
    ceiling = matmul_ceiling(ceiling_turn, args.reps)
    print(f"1. MatMul ceiling (FP32, 2048^3, constant right-hand side): {ceiling:.1f} GFLOP/s")

    torch.manual_seed(0)
    model = TinySam(cfg).eval()  # the weights do not change the cost
    image = torch.from_numpy(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    enc_flops = count_flops(lambda: model.encode(image))
    emb_t = torch.zeros(1, e["channels"], e["height"], e["width"])
    one = point_batch(rng, 1, size, low_res)
    dec_flops = count_flops(lambda: model.decode(emb_t, *(torch.from_numpy(one[k]) for k in
                                                         ("point_coords", "point_labels", "mask_input",
                                                          "has_mask_input"))))
    enc_floor, dec_floor = enc_flops / ceiling / 1e6, dec_flops / ceiling / 1e6  # ms
    print(f"2. {meta['name']} (input {size}): encoder {enc_flops / 1e9:.1f} GFLOP, floor {enc_floor:.1f} ms; "
          f"decoder {dec_flops / 1e9:.2f} GFLOP per prompt, floor {dec_floor:.2f} ms")

    x = sam_io.preprocess(np.zeros((720, 1280, 3), np.uint8), size)[0]
    encoders = {"FP32": session(os.path.join(args.fp32, meta["encoder"]), args.threads)}
    if args.plain:
        encoders["FP32 unfused"] = session(os.path.join(args.plain, load_meta(args.plain)["encoder"]), args.threads)
    if args.int8:
        encoders["INT8"] = session(os.path.join(args.int8, load_meta(args.int8)["encoder"]), args.threads)
    if args.int8_static:
        encoders["INT8 static"] = session(os.path.join(args.int8_static, load_meta(args.int8_static)["encoder"]),
                                          args.threads)
    t = interleaved({CEILING: ceiling_turn, **{k: (lambda s=s: s.run(None, {"image": x}))
                                               for k, s in encoders.items()}}, args.reps)
    turns = gflops(t.pop(CEILING))
    ceilings = {"section 1": ceiling, "section 3": turns}
    enc_floor = enc_flops / turns / 1e6
    line = ", ".join(f"{k} {1000 * v:.1f} ms ({1000 * v / enc_floor:.2f}x the floor)" for k, v in t.items())
    if "FP32 unfused" in t:
        line += f"; unfused / fused {t['FP32 unfused'] / t['FP32']:.2f}x"
    for k in ("INT8", "INT8 static"):
        if k in t:
            line += f"; FP32 / {k} {t['FP32'] / t[k]:.2f}x"
    print(f"3. encoder, floors at the MatMul ceiling in these turns, {turns:.1f} GFLOP/s: {line}")
    # (ms, FLOPs) of the figures the closing line gives against the highest ceiling
    key = {f"encoder {k}": (1000 * v, enc_flops) for k, v in t.items()}
    if args.openvino_python and os.path.exists(args.openvino_python):
        ov, ceilings["section 3b"] = openvino_section(args, enc_flops, t["FP32"])
        key.update({f"encoder {k} on OpenVINO": (ov[f"{k} OpenVINO"], enc_flops) for k in ("FP32", "INT8 static")
                    if f"{k} OpenVINO" in ov})
    else:
        print(f"3b. encoder on OpenVINO: skipped, no {args.openvino_python} (make setup installs it)")

    split = meta["split_decoder"]
    plain = session(os.path.join(args.fp32, meta["decoder"]), args.threads)
    image_part = session(os.path.join(args.fp32, split["image"]), args.threads)
    prompt_part = session(os.path.join(args.fp32, split["prompt"]), args.threads)
    emb = rng.standard_normal((1, e["channels"], e["height"], e["width"])).astype(np.float32)
    side = dict(zip(split["image_outputs"], image_part.run(split["image_outputs"], {"image_embeddings": emb})))
    feed = point_batch(rng, args.batch, size, low_res)
    outs = ["iou_predictions", "low_res_masks"]
    runs = {"plain": lambda: plain.run(outs, {"image_embeddings": emb, **feed}),
            "split": lambda: prompt_part.run(outs, {**side, **feed})}
    every_mask = {}
    if any(i.name == "mask_iou_floor" for i in prompt_part.get_inputs()):
        m = meta["num_mask_tokens"]
        every_mask = {"mask_iou_floor": np.full(m, -np.inf, np.float32)}
        none = np.full(m, np.inf, np.float32)
        runs["split"] = lambda: prompt_part.run(outs, {**side, **feed, **every_mask})
        runs["split, masks skipped"] = lambda: prompt_part.run(outs, {**side, **feed, "mask_iou_floor": none})
    # the batch the element's core uses for this embedding, when smaller
    core = max(1, min(args.batch, CORE_CALL_TOKEN_BYTES // (4 * e["channels"] * e["height"] * e["width"])))
    if core < args.batch:
        calls = [{k: v[i:i + core] for k, v in feed.items()} for i in range(0, args.batch, core)]
        runs[f"split, {core} a call"] = lambda: [prompt_part.run(outs, {**side, **c, **every_mask}) for c in calls]
    t = interleaved({CEILING: ceiling_turn, **runs}, args.reps)
    turns = ceilings["section 4"] = gflops(t.pop(CEILING))
    dec_floor = dec_flops / turns / 1e6
    t_image = interleaved({"image": lambda: image_part.run(None, {"image_embeddings": emb})}, args.reps)["image"]
    per = {k: 1000 * v / args.batch for k, v in t.items()}
    print(f"4. decoder per point prompt at batch {args.batch}, floors at the MatMul ceiling in these turns, "
          f"{turns:.1f} GFLOP/s: "
          + ", ".join(f"{k} {v:.2f} ms ({v / dec_floor:.2f}x the floor)" for k, v in per.items())
          + f"; plain / split {per['plain'] / per['split']:.2f}x; the split decoder's image part "
            f"{1000 * t_image:.1f} ms once per frame")
    # other work on a shared host changes the machine's speed within minutes
    for k in [k for k in per if k.startswith("split") and "skipped" not in k]:
        key[f"decoder {k}"] = (per[k], dec_flops)
    ceilings["after section 4"] = matmul_ceiling(ceiling_turn, args.reps)
    print("   MatMul ceilings measured: " + ", ".join(f"{k} {v:.1f}" for k, v in ceilings.items()) + " GFLOP/s")
    # A ceiling measured while the machine was slow makes every ratio look
    # better than it is; the highest is the most demanding floor.
    best = max(ceilings.values())
    print(f"   against the highest, {best:.1f} GFLOP/s: "
          + ", ".join(f"{k} {ms / (flops / best / 1e6):.2f}x" for k, (ms, flops) in key.items()))

    frame = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    box = np.float32([[[400, 200], [900, 600]]]) * sam_io.resized_shape(720, 1280, size)[0] / 720
    box_feed = {"point_coords": box, "point_labels": np.float32([[2, 3]]),
                "mask_input": np.zeros((1, 1, low_res, low_res), np.float32),
                "has_mask_input": np.zeros(1, np.float32)}
    encoder = encoders["FP32"]

    def onnx_frame():
        xi, _, resized = sam_io.preprocess(frame, size)
        (em,) = encoder.run(None, {"image": xi})
        iou, low = plain.run(outs, {"image_embeddings": em, **box_feed})
        sam_io.postprocess(low[0, int(np.argmax(iou[0]))], resized, (720, 1280), size)

    def torch_frame():
        with torch.no_grad():
            xi, _, resized = sam_io.preprocess(frame, size)
            em = model.encode(torch.from_numpy(xi))
            low, iou = model.decode(em, *(torch.from_numpy(box_feed[k]) for k in
                                          ("point_coords", "point_labels", "mask_input", "has_mask_input")))
            sam_io.postprocess(low[0, int(iou[0].argmax())].numpy(), resized, (720, 1280), size)

    t = interleaved({"ONNX Runtime": onnx_frame, "PyTorch": torch_frame}, args.reps)
    print(f"5. prompted 1280x720 frame, one box, FP32: ONNX Runtime {1000 * t['ONNX Runtime']:.0f} ms, "
          f"PyTorch {1000 * t['PyTorch']:.0f} ms: {t['PyTorch'] / t['ONNX Runtime']:.2f}x")
    sys.stdout.flush()

    if args.everything:
        bench = ["cargo", "test", "--release", "--test", "segment_bench", "everything", "--", "--ignored",
                 "--nocapture"]
        env = {**os.environ, "TINYSAM_BENCH_THREADS": str(args.threads), "TINYSAM_BENCH_RUNS": "1"}
        print("6. everything mode, fixture, 12 scenes, defaults:", flush=True)
        subprocess.run(bench, cwd=REPO, env=env, check=True)
        print(f"7. everything mode, {meta['name']}, one 1280x720 scene, defaults:", flush=True)
        subprocess.run(bench, cwd=REPO, check=True, env={**env, "TINYSAM_BENCH_MODEL": os.path.abspath(args.fp32),
                                                          "TINYSAM_BENCH_SCENES": "1",
                                                          "TINYSAM_BENCH_FRAME": "1280x720"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
