"""Prompt events from Python (GI): docs/element.md's snippet, executed as it
is written there, sends `tinysam/prompts` events downstream through appsrc
and upstream from appsink; each applies from the next buffer.

Run from the repository root (needs target/release/libgsttinysam.so):

    .venv/bin/python -m pytest tests/python -q
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_DIR = os.path.join(REPO, "target", "release")
MODEL_DIR = os.environ.get("TINYSAM_TEST_MODEL", os.path.join(REPO, "models", "tinysam-fixture"))
DOCS = os.path.join(REPO, "docs", "element.md")

os.environ["GST_PLUGIN_PATH"] = os.pathsep.join(
    p for p in (PLUGIN_DIR, os.environ.get("GST_PLUGIN_PATH")) if p)

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

Gst.init(None)

pytestmark = pytest.mark.filterwarnings("ignore:GObject.ValueArray.get_nth is deprecated:DeprecationWarning")

W, H = 320, 240
BOX = (86, 66, 234, 174)


@pytest.fixture(scope="module")
def doc():
    """The namespace of the prompt-event Python block of docs/element.md."""
    text = open(DOCS).read()
    section = text[text.index("### Prompt events from applications"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns: dict = {}
    exec(compile(block, DOCS, "exec"), ns)
    return ns


def frame() -> bytes:
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    inside = ((xx - 160) / 70) ** 2 + ((yy - 120) / 50) ** 2 <= 1.0
    rgb = np.where(inside[..., None], np.uint8([230, 200, 40]), np.uint8([30, 40, 90]))
    return np.dstack([rgb, np.full((H, W), 255, np.uint8)]).astype(np.uint8).tobytes()


def object_ids(buf) -> list[int]:
    meta = buf.get_custom_meta("GstTinySamMeta")
    if meta is None:
        return []
    ok, objects = meta.get_structure().get_array("objects")
    assert ok
    return [objects.get_nth(i).get_uint("id")[1] for i in range(objects.n_values)]


def run(events):
    """Pushes 4 frames through appsrc ! tinysam ! appsink; `events(src, sink, i)`
    runs before frame i is pushed; returns each output buffer's object ids."""
    assert Gst.ElementFactory.find("tinysam") is not None, f"no tinysam plugin in {PLUGIN_DIR}"
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGBA,width={W},height={H},framerate=30/1 "
        f"! tinysam model={MODEL_DIR} everything-mode=none ! appsink name=sink sync=false")
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    assert pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE
    pixels = frame()
    out = []
    try:
        for i in range(4):
            events(src, sink, i)
            buf = Gst.Buffer.new_wrapped(pixels)
            buf.pts = i * 33 * Gst.MSECOND
            assert src.emit("push-buffer", buf) == Gst.FlowReturn.OK
            sample = sink.emit("try-pull-sample", 60 * Gst.SECOND)
            assert sample is not None
            out.append(object_ids(sample.get_buffer()))
    finally:
        pipeline.set_state(Gst.State.NULL)
    return out


ADD = ("tinysam/prompts, action=add, "
       f"prompts=<[tinysam/prompt, id=(uint)4, box=<{', '.join(map(str, BOX))}>]>")


def test_downstream_event_through_appsrc(doc):
    send = doc["tinysam_send_prompts"]

    def events(src, sink, i):
        if i == 2:
            assert send(src, ADD)

    assert run(events) == [[], [], [4], [4]]


def test_upstream_event_from_appsink(doc):
    send = doc["tinysam_send_prompts"]

    def events(src, sink, i):
        if i == 1:
            assert send(sink, ADD, upstream=True)
        if i == 3:
            assert send(sink, "tinysam/prompts, action=remove, ids=<4>", upstream=True)

    assert run(events) == [[], [4], [4], []]


def test_a_bad_text_raises(doc):
    with pytest.raises(ValueError):
        doc["tinysam_send_prompts"](None, "not a structure,,,")
