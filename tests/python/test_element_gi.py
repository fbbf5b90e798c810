"""The `tinysam` element in real GStreamer pipelines driven from Python (GI):
appsrc (RGBA frames) ! tinysam ! appsink.

* The metadata is read with the Python block of docs/element.md, executed
  as it is written there, so the docs are verified.
* The element is compared with the Python reference of the same pipeline
  (tools/tinysam: numpy + Pillow + ONNX Runtime) on synthetic scenes.

Run from the repository root (needs target/release/libgsttinysam.so):

    .venv/bin/python -m pytest tests/python -q
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_DIR = os.path.join(REPO, "target", "release")
PLUGIN = os.path.join(PLUGIN_DIR, "libgsttinysam.so")
MODEL_DIR = os.environ.get("TINYSAM_TEST_MODEL", os.path.join(REPO, "models", "tinysam-fixture"))
DOCS = os.path.join(REPO, "docs", "element.md")

# Before Gst.init: find the plugin built by cargo.
os.environ["GST_PLUGIN_PATH"] = os.pathsep.join(
    p for p in (PLUGIN_DIR, os.environ.get("GST_PLUGIN_PATH")) if p)
sys.path.insert(0, os.path.join(REPO, "tools"))

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstVideo  # noqa: E402

from evaluate import KINDS, iou, scene_prompts  # noqa: E402
from tinysam.onnx_model import OnnxTinySam  # noqa: E402
from tinysam.scenes import make_scene  # noqa: E402

Gst.init(None)

# GObject.ValueArray.get_nth (the way to read the objects array that works
# with and without gst-python's overrides) is deprecated in GLib; see
# docs/element.md.
pytestmark = pytest.mark.filterwarnings("ignore:GObject.ValueArray.get_nth is deprecated:DeprecationWarning")

PARITY_SIZES = [(640, 480), (333, 517), (1281, 719), (97, 203)]  # width x height
PARITY_SEED = 424242
MIN_PARITY_IOU = 0.99
MAX_IOU_PRED_DELTA = 0.01
MIN_BOX_IOU = 0.85  # element vs the exact shape, fixture model, box prompt


@pytest.fixture(scope="module", autouse=True)
def plugin():
    """Fails (never skips) when the plugin or the model is missing."""
    if not os.path.exists(PLUGIN):
        pytest.fail(f"{PLUGIN} is missing: run `cargo build --release` first")
    if Gst.ElementFactory.find("tinysam") is None:
        pytest.fail(f"GStreamer does not load the tinysam element from {PLUGIN_DIR} "
                    "(GST_DEBUG=2 shows why); rebuild with `cargo build --release`")
    if not os.path.exists(os.path.join(MODEL_DIR, "model.json")):
        pytest.fail(f"no model in {MODEL_DIR}")


@pytest.fixture(scope="module")
def doc():
    """The namespace of docs/element.md's Python block, executed."""
    text = open(DOCS).read()
    section = text[text.index("### Reading it in Python"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns: dict = {}
    exec(compile(block, DOCS, "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def reference():
    return OnnxTinySam(MODEL_DIR, threads=1)


class Pipeline:
    """appsrc (RGBA, width x height) ! tinysam ! appsink."""

    def __init__(self, width: int, height: int, prompts: str):
        self.pipeline = Gst.parse_launch(
            f"appsrc name=src format=time caps=video/x-raw,format=RGBA,width={width},height={height},"
            f"framerate=30/1 ! tinysam name=sam n-threads=1 ! appsink name=sink sync=false")
        self.sam = self.pipeline.get_by_name("sam")
        self.sam.set_property("model", MODEL_DIR)
        self.sam.set_property("prompts", prompts)
        self.src = self.pipeline.get_by_name("src")
        self.sink = self.pipeline.get_by_name("sink")
        self.frames = 0
        assert self.pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE, self.error()

    def error(self):
        """The first error or warning on the bus, for assertion messages."""
        msg = self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.WARNING)
        if msg is None:
            return None
        return msg.parse_error() if msg.type == Gst.MessageType.ERROR else msg.parse_warning()

    def push(self, rgb: np.ndarray) -> Gst.Buffer:
        """Pushes an (H, W, 3) uint8 RGB frame and returns the buffer that comes out."""
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        buf = Gst.Buffer.new_wrapped(rgba.tobytes())
        buf.pts = self.frames * 33 * Gst.MSECOND
        buf.duration = 33 * Gst.MSECOND
        self.frames += 1
        assert self.src.emit("push-buffer", buf) == Gst.FlowReturn.OK, self.error()
        sample = self.sink.emit("try-pull-sample", 120 * Gst.SECOND)
        assert sample is not None, f"no sample within 120 s: {self.error()}"
        return sample.get_buffer()

    def close(self):
        self.pipeline.set_state(Gst.State.NULL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def prompt_text(p) -> str:
    """A tools/tinysam/prompts.Prompt as the element's `prompts` syntax."""
    parts = []
    if p.box is not None:
        parts.append("box=" + ",".join(repr(float(v)) for v in p.box))
    for (x, y), label in zip(p.points, p.labels):
        parts.append(f"{'point' if label == 1.0 else 'neg'}={float(x)!r},{float(y)!r}")
    return " ".join(parts)


# --- metadata ---------------------------------------------------------------

W, H = 321, 243
ELLIPSE = (160.0, 121.0, 72.0, 48.0)  # centre x, y, radius x, y
BOX = (84, 69, 236, 173)


def ellipse_frame():
    """A yellow ellipse on blue and its exact mask (pixel centres inside)."""
    cx, cy, rx, ry = ELLIPSE
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    rgb = np.where(mask[..., None], np.uint8([230, 200, 40]), np.uint8([30, 40, 90])).astype(np.uint8)
    return rgb, mask


FIELD_TYPES = {
    "id": GObject.TYPE_UINT, "prompt-index": GObject.TYPE_INT, "source": GObject.TYPE_STRING,
    "state": GObject.TYPE_STRING, "prompt-source": GObject.TYPE_STRING,
    "x": GObject.TYPE_INT, "y": GObject.TYPE_INT, "width": GObject.TYPE_INT, "height": GObject.TYPE_INT,
    "iou": GObject.TYPE_DOUBLE, "stability": GObject.TYPE_DOUBLE, "area": GObject.TYPE_UINT64,
    "mask": GLib.Bytes.__gtype__,
}


def test_metadata_read_from_python(doc):
    rgb, exact = ellipse_frame()
    prompts = [f"box={','.join(map(str, BOX))}", "point=160,121", f"box={','.join(map(str, BOX))} point=160,121"]
    with Pipeline(W, H, "; ".join(prompts)) as p:
        buf = p.push(rgb)

    # The structure itself, field by field, with the documented types.
    s = buf.get_custom_meta("GstTinySamMeta").get_structure()
    assert s.get_name() == "tinysam/objects"
    # One frame of a file-like source: its own masks, computed for it.
    assert s.get_boolean("computed") == (True, True)
    assert s.get_uint64("inference-pts") == (True, buf.pts)
    assert s.get_uint("frame-width") == (True, W)
    assert s.get_uint("frame-height") == (True, H)
    ok, arr = s.get_array("objects")  # with and without gst-python's overrides
    assert ok and isinstance(arr, GObject.ValueArray)
    assert s.get_uint("count") == (True, arr.n_values) and arr.n_values == len(prompts)
    # get_value raises TypeError without the overrides (PyGObject cannot convert
    # a GstValueArray) and gives a list-like Gst.ValueArray with them: either
    # is fine, but a list must hold the same structures as get_array.
    try:
        listed = [o.to_string() for o in s.get_value("objects")]
    except TypeError:
        listed = None
    if listed is not None:
        assert listed == [arr.get_nth(i).to_string() for i in range(arr.n_values)]
    for i in range(arr.n_values):
        o = arr.get_nth(i)
        assert o.get_name() == "tinysam/object"
        assert {o.nth_field_name(k) for k in range(o.n_fields())} == set(FIELD_TYPES)
        for name, gtype in FIELD_TYPES.items():
            assert o.get_field_type(name) == gtype, name
        w, h = o.get_int("width")[1], o.get_int("height")[1]
        bits = o.get_value("mask").get_data()
        assert len(bits) == (w * h + 7) // 8
        # bits past w*h (in the last byte) are zero
        assert not np.unpackbits(np.frombuffer(bits, np.uint8))[w * h:].any()

    # The docs' reader.
    objects = doc["tinysam_objects"](buf)
    assert [o["prompt-index"] for o in objects] == list(range(len(prompts)))
    assert len({o["id"] for o in objects}) == len(objects)
    for o in objects:
        x, y, w, h = o["box"]
        assert o["source"] == "prompt"
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H and w > 0 and h > 0
        m = o["mask"]
        assert o["area"] == int(m.sum())
        # the box is the mask's tight box
        assert not m[:y].any() and not m[y + h:].any() and not m[:, :x].any() and not m[:, x + w:].any()
        assert m[y].any() and m[y + h - 1].any() and m[:, x].any() and m[:, x + w - 1].any()
        assert 0.0 <= o["stability"] <= 1.0
        assert np.isfinite(o["iou"])
    box_iou = iou(objects[0]["mask"], exact)
    assert box_iou >= MIN_BOX_IOU, f"box prompt: IoU {box_iou:.4f} with the exact ellipse"

    # One ROI meta per object, looked up by id: GI cannot iterate them (get_meta
    # gives a plain Gst.Meta, foreach_meta wants a writable buffer).
    assert buf.get_n_meta(GstVideo.video_region_of_interest_meta_api_get_type()) == len(objects)
    for o in objects:
        rect, param = doc["tinysam_roi"](buf, o["id"])
        assert rect == o["box"]
        assert param.get_name() == "tinysam/mask"
        assert param.get_uint("id") == (True, o["id"])
        assert param.get_double("iou") == (True, o["iou"])
        assert param.get_double("stability") == (True, o["stability"])
        assert param.get_uint64("area") == (True, o["area"])
        assert param.get_value("mask").get_data() == \
            s.get_array("objects")[1].get_nth(o["prompt-index"]).get_value("mask").get_data()


def test_docs_pad_probe_runs(doc, capsys):
    """The docs' on_buffer as a pad probe: it runs on the streaming thread and
    prints one line per object."""
    rgb, _ = ellipse_frame()
    errors = []

    def probe(pad, info):
        try:
            return doc["on_buffer"](pad, info)
        except Exception as e:  # a probe's exception would only be printed
            errors.append(e)
            return Gst.PadProbeReturn.OK

    with Pipeline(W, H, "point=160,121; point=20,20") as p:
        p.sam.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
        p.push(rgb)
    assert not errors
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and [int(line.split()[1]) for line in lines] == [0, 1]


# --- parity with the Python reference ------------------------------------------

PARITY: dict = {}  # (size, kind) -> (min mask IoU, max |iou delta|, objects)


@pytest.fixture(scope="module")
def parity_report(request):
    """Prints PARITY at the end of the module. (No conftest.py here: the
    tools tests import theirs as `conftest`, and pytest runs both dirs.)"""
    yield
    plugins = request.config.pluginmanager
    tr, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if tr is None or capture is None or not PARITY:
        return
    with capture.global_and_fixture_disabled():
        tr.write_line("")
        tr.write_line(f"{'element vs reference':<22}{'objects':>8}{'min mask IoU':>14}{'max |d iou|':>13}")
        for (size, kind), (lo, hi, n) in sorted(PARITY.items()):
            tr.write_line(f"{size + ' ' + kind:<22}{n:>8}{lo:>14.4f}{hi:>13.5f}")


@pytest.mark.parametrize("size", PARITY_SIZES, ids=[f"{w}x{h}" for w, h in PARITY_SIZES])
def test_parity_with_python_reference(size, doc, reference, parity_report):
    w, h = size
    rng = np.random.default_rng([PARITY_SEED, w, h])
    scene = make_scene(rng, w, h)
    assert len(scene.masks) > 0
    prompts, kinds = [], []
    for mask in scene.masks:
        for kind, prompt in scene_prompts(rng, mask).items():
            prompts.append(prompt)
            kinds.append(kind)

    # Reference: the model's mask-selection rule, like the element's default.
    emb = reference.embed(scene.image)
    lows, ious = reference.decode_grouped(emb, prompts)
    want = reference.masks_from_logits(emb, prompts, lows, ious)

    with Pipeline(w, h, "; ".join(prompt_text(p) for p in prompts)) as p:
        got = doc["tinysam_objects"](p.push(scene.image))
    assert [o["prompt-index"] for o in got] == list(range(len(prompts)))

    failures = []
    for i, (kind, o, ref) in enumerate(zip(kinds, got, want)):
        m_iou, d_iou = iou(o["mask"], ref.mask), abs(o["iou"] - ref.iou_prediction)
        lo, hi, n = PARITY.get((f"{w}x{h}", kind), (1.0, 0.0, 0))
        PARITY[(f"{w}x{h}", kind)] = (min(lo, m_iou), max(hi, d_iou), n + 1)
        if m_iou < MIN_PARITY_IOU or d_iou > MAX_IOU_PRED_DELTA:
            failures.append(f"prompt {i} ({kind}: {prompt_text(prompts[i])}): mask IoU {m_iou:.4f}, "
                            f"iou {o['iou']:.4f} vs {ref.iou_prediction:.4f}, area {o['area']} vs "
                            f"{int(ref.mask.sum())}")
    assert not failures, f"{w}x{h}:\n" + "\n".join(failures)
    assert set(kinds) == set(KINDS)
