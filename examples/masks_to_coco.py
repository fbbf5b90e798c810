#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes tinysam's masks as JSON lines, one per frame, each object's mask as
a COCO run-length encoding (pycocotools).

    GST_PLUGIN_PATH=target/release .venv/bin/python examples/masks_to_coco.py \\
        --prompts "point=160,120" --frames 30 --output out/ball.jsonl
    ... --input clip.webm --output out/clip.jsonl          # everything mode

Each line:

    {"frame": 0, "pts": 0, "width": 320, "height": 240,
     "objects": [{"id": 0, "state": "acquired", "source": "prompt", "iou": 0.98,
                  "area": 1079, "bbox": [143, 102, 37, 37],
                  "segmentation": {"size": [240, 320], "counts": "..."}}]}

`bbox` is COCO's [x, y, width, height] (the mask's tight box), `pts` is in
nanoseconds (null when the frame has none), and `segmentation` decodes back
with `pycocotools.mask.decode({"size": s["size"], "counts": s["counts"].encode()})`
into the (height, width) mask. Objects prompted by regions of interest also
have `label`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))

import numpy as np  # noqa: E402
from pycocotools import mask as coco_mask  # noqa: E402
import gi  # noqa: E402

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

import tinysam_meta  # noqa: E402

MODEL = os.path.join(REPO, "models", "tinysam-fixture")


def coco_rle(mask: np.ndarray) -> dict:
    """A frame-size bool mask as COCO's compressed RLE, JSON-ready."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(n) for n in rle["size"]], "counts": rle["counts"].decode("ascii")}


def frame_record(frame: int, buffer: Gst.Buffer) -> dict:
    """The JSON line of one buffer leaving tinysam."""
    info = tinysam_meta.frame(buffer) or {}
    objects = []
    for o in tinysam_meta.objects(buffer):
        record = {
            "id": o["id"], "state": o["state"], "source": o["source"], "iou": o["iou"],
            "area": o["area"], "bbox": list(o["box"]), "segmentation": coco_rle(o["mask"]),
        }
        if "label" in o:
            record["label"] = o["label"]
        objects.append(record)
    return {
        "frame": frame,
        "pts": None if buffer.pts == Gst.CLOCK_TIME_NONE else buffer.pts,
        "width": info.get("width"), "height": info.get("height"),
        "objects": objects,
    }


def build_pipeline(input: str | None = None, model: str = MODEL, prompts: str = "",
                   properties: dict | None = None) -> Gst.Pipeline:
    """source ! videoconvert ! tinysam name=sam ! fakesink; the source is
    `input` through decodebin, or videotestsrc's ball."""
    source = ("filesrc name=file ! decodebin" if input
              else "videotestsrc pattern=ball ! video/x-raw,width=320,height=240")
    pipeline = Gst.parse_launch(f"{source} ! videoconvert ! tinysam name=sam ! fakesink")
    if input:
        pipeline.get_by_name("file").set_property("location", input)
    sam = pipeline.get_by_name("sam")
    sam.set_property("model", model)
    sam.set_property("prompts", prompts)
    for name, value in (properties or {}).items():
        Gst.util_set_object_arg(sam, name, value)
    return pipeline


def run(pipeline: Gst.Pipeline, write, frames: int | None = None, on_buffer=None) -> None:
    """Plays `pipeline` to its end (or `frames` frames), calling
    `write(record)` with each frame's record as it leaves the element named
    `sam` (and `on_buffer(buffer, record)`, if given, on the streaming
    thread). Raises RuntimeError on an error message."""
    count = [0]

    def probe(pad, info):
        n = count[0]
        count[0] += 1
        if frames is not None and n >= frames:
            if n == frames:  # tell the loop below to stop
                pipeline.get_bus().post(Gst.Message.new_application(
                    pipeline, Gst.Structure.new_empty("masks_to_coco/done")))
            return Gst.PadProbeReturn.DROP
        buffer = info.get_buffer()
        record = frame_record(n, buffer)
        write(record)
        if on_buffer is not None:
            on_buffer(buffer, record)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sam").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        msg = pipeline.get_bus().timed_pop_filtered(
            Gst.CLOCK_TIME_NONE,
            Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.APPLICATION)
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            raise RuntimeError(f"{err.message}\n{debug}")
    finally:
        pipeline.set_state(Gst.State.NULL)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="a video or image file (default: videotestsrc pattern=ball)")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--prompts", default="", help="tinysam's `prompts` (default: everything mode)")
    ap.add_argument("--frames", type=int, help="stop after N frames (default: 30 of the test "
                    "source, the whole file)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="another tinysam property")
    ap.add_argument("--output", default="-", help="the JSON lines file (default: stdout)")
    args = ap.parse_args(argv)
    Gst.init(None)
    properties = dict(item.split("=", 1) for item in args.set)
    frames = args.frames if args.frames is not None or args.input else 30
    pipeline = build_pipeline(args.input, args.model, args.prompts, properties)
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    try:
        run(pipeline, lambda record: print(json.dumps(record), file=out, flush=True), frames)
    except RuntimeError as e:
        print(f"masks_to_coco: {e}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
