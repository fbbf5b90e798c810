#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Click to segment: a video window in which clicking an object segments and
follows it.

    src ! videoconvert ! tinysam everything-mode=none overlay=true ! videoconvert ! autovideosink

In the window: left click adds an object, Shift+click corrects the object
under the pointer (a negative point), right click removes it, Escape clears
all. The element itself turns the window's navigation events into prompts;
this program only builds the pipeline and prints the objects of each frame.

    GST_PLUGIN_PATH=target/release .venv/bin/python examples/click_to_segment.py
    ... --input clip.webm

Without a display (tests, CI), `--sink fakesink` and scripted clicks, which
send the very navigation event a video window sends, from the sink side,
when frame FRAME reaches the sink (so they apply from frame FRAME + 1):

    ... --sink fakesink --frames 8 --click 160,120@2 --right-click 170,130@5
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstVideo  # noqa: E402

import tinysam_meta  # noqa: E402

MODEL = os.path.join(REPO, "models", "tinysam-fixture")
LEFT, RIGHT = 1, 3  # mouse buttons, as GStreamer numbers them


def at_frame(text: str) -> tuple[str, int]:
    """`WHAT@FRAME` -> (WHAT, FRAME)."""
    what, sep, frame = text.rpartition("@")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text}: expected WHAT@FRAME")
    return what, int(frame)


def click_event(button: int, shift: bool):
    """An argparse type: `X,Y@FRAME` -> (FRAME, mouse-button-press event)."""
    def parse(text):
        xy, frame = at_frame(text)
        x, y = (float(v) for v in xy.split(","))
        modifiers = GstVideo.NavigationModifierType
        modifiers = modifiers.SHIFT_MASK if shift else modifiers.NONE
        # What a video window sends on a click (stream coordinates).
        return frame, GstVideo.Navigation.event_new_mouse_button_press(button, x, y, modifiers)
    return parse


def key_event(text: str):
    """An argparse type: `KEY@FRAME` -> (FRAME, key-press event)."""
    key, frame = at_frame(text)
    return frame, GstVideo.Navigation.event_new_key_press(key, GstVideo.NavigationModifierType.NONE)


def describe(frame: int, buffer: Gst.Buffer) -> list[str]:
    """One line per object of the frame (or one saying there are none)."""
    lines = []
    for o in tinysam_meta.objects(buffer):
        x, y, w, h = o["box"]
        lines.append(f"frame={frame} id={o['id']} state={o['state']} "
                     f"source={o.get('prompt-source', o['source'])} "
                     f"box={x},{y},{w},{h} area={o['area']} iou={o['iou']:.3f}")
    return lines or [f"frame={frame} objects=0"]


def main(argv=None) -> int:
    Gst.init(None)  # before the arguments: the events are built while parsing
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="a video file (default: videotestsrc pattern=ball)")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--sink", default="autovideosink", help="e.g. fakesink, for no window")
    ap.add_argument("--frames", type=int, help="stop after N frames")
    ap.add_argument("--click", type=click_event(LEFT, False), action="append", default=[],
                    metavar="X,Y@FRAME", help="a left click when FRAME reaches the sink")
    ap.add_argument("--shift-click", type=click_event(LEFT, True), action="append", default=[],
                    metavar="X,Y@FRAME")
    ap.add_argument("--right-click", type=click_event(RIGHT, False), action="append", default=[],
                    metavar="X,Y@FRAME")
    ap.add_argument("--key", type=key_event, action="append", default=[],
                    metavar="KEY@FRAME", help="a key press, e.g. Escape@10")
    args = ap.parse_args(argv)

    source = ("filesrc name=file ! decodebin" if args.input
              else "videotestsrc pattern=ball ! video/x-raw,width=320,height=240")
    pipeline = Gst.parse_launch(
        f"{source} ! videoconvert ! tinysam name=sam everything-mode=none overlay=true "
        f"! videoconvert ! {args.sink} name=sink")
    if args.input:
        pipeline.get_by_name("file").set_property("location", args.input)
    sam = pipeline.get_by_name("sam")
    sam.set_property("model", args.model)

    # Print each frame's objects as it leaves tinysam; stop after --frames.
    printed = [0]

    def on_frame(pad, info):
        n = printed[0]
        printed[0] += 1
        if args.frames is not None and n >= args.frames:
            if n == args.frames:
                pipeline.get_bus().post(Gst.Message.new_application(
                    pipeline, Gst.Structure.new_empty("click_to_segment/done")))
            return Gst.PadProbeReturn.DROP
        print("\n".join(describe(n, info.get_buffer())), flush=True)
        return Gst.PadProbeReturn.OK

    sam.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_frame)

    # The scripted input, sent upstream from the sink's pad as a window would.
    scripted: dict[int, list] = {}
    for frame, event in args.click + args.shift_click + args.right_click + args.key:
        scripted.setdefault(frame, []).append(event)
    if scripted:
        reached = [0]

        def at_sink(pad, info):
            for event in scripted.pop(reached[0], []):
                pad.push_event(event)
            reached[0] += 1
            return Gst.PadProbeReturn.OK

        sink = pipeline.get_by_name("sink")
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, at_sink)

    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    status = 0
    try:
        while True:
            msg = bus.timed_pop_filtered(
                Gst.CLOCK_TIME_NONE,
                Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.WARNING
                | Gst.MessageType.APPLICATION)
            if msg.type == Gst.MessageType.WARNING:
                print("warning:", msg.parse_warning()[0].message, file=sys.stderr)
                continue
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                print(f"error: {err.message}\n{debug}", file=sys.stderr)
                status = 1
            break
    except KeyboardInterrupt:
        pass
    pipeline.set_state(Gst.State.NULL)
    return status


if __name__ == "__main__":
    sys.exit(main())
