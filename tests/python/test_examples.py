"""The Python examples (examples/*.py) and the helper python/tinysam_meta.py,
headless, on small frame counts:

* click_to_segment.py: scripted clicks and keys (the navigation events a
  video window sends) add, correct and remove objects from the next frame on.
* masks_to_coco.py: its COCO RLEs decode (pycocotools) into exactly the
  masks tinysam_meta.objects reads from the same buffers, and its command
  line writes decodable JSON lines.
* detect_and_segment.sh's pipeline (facedetect upstream): the face's object
  and the mask given back to the detector's region (tinysam_meta.region_mask).

Run from the repository root (needs target/release/libgsttinysam.so):

    .venv/bin/python -m pytest tests/python/test_examples.py -q
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_DIR = os.path.join(REPO, "target", "release")
PLUGIN = os.path.join(PLUGIN_DIR, "libgsttinysam.so")
EXAMPLES = os.path.join(REPO, "examples")
FACE = os.path.join(EXAMPLES, "data", "face.png")
W, H = 320, 240  # the examples' test source
BALL_AREA = range(800, 1600)  # videotestsrc's ball, a 37-pixel disc

# Before Gst.init: find the plugin built by cargo (here and in the subprocesses).
os.environ["GST_PLUGIN_PATH"] = os.pathsep.join(
    p for p in (PLUGIN_DIR, os.environ.get("GST_PLUGIN_PATH")) if p)
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")  # see detect_and_segment.sh
sys.path[:0] = [os.path.join(REPO, "python"), EXAMPLES]

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402
from pycocotools import mask as coco_mask  # noqa: E402

import masks_to_coco  # noqa: E402
import tinysam_meta  # noqa: E402

Gst.init(None)

pytestmark = [
    # tinysam_meta reads the objects with get_nth, deprecated in GLib (see
    # docs/element.md); it filters this warning, but pytest resets filters.
    pytest.mark.filterwarnings("ignore:GObject.ValueArray.get_nth is deprecated:DeprecationWarning"),
    # pycocotools 2.0.11's decode on numpy 2 (its own code, harmless).
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"
                               ":DeprecationWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def plugin():
    """Fails (never skips) when the plugin is missing."""
    if not os.path.exists(PLUGIN):
        pytest.fail(f"{PLUGIN} is missing: run `cargo build --release` first")
    if Gst.ElementFactory.find("tinysam") is None:
        pytest.fail(f"GStreamer does not load the tinysam element from {PLUGIN_DIR}")


def example(*args: str) -> str:
    """Runs an example (a .py with this interpreter) and returns its stdout."""
    script = os.path.join(EXAMPLES, args[0])
    cmd = [sys.executable, script, *args[1:]] if script.endswith(".py") else ["bash", script, *args[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def printed_objects(stdout: str) -> dict[int, list[dict]]:
    """`frame=N id=I state=S source=P box=... area=A iou=F` lines (and
    `frame=N objects=0`) by frame."""
    frames: dict[int, list[dict]] = {}
    for line in stdout.splitlines():
        fields = dict(re.findall(r"(\S+)=(\S+)", line))
        objects = frames.setdefault(int(fields.pop("frame")), [])
        if fields != {"objects": "0"}:
            objects.append(fields)
    return frames


def test_click_to_segment_follows_scripted_clicks():
    # Each input is sent when its frame reaches the sink, so it applies from
    # the next frame. The ball starts at (160, 120) and moves 4 px per frame
    # right and down; each click is on it.
    frames = printed_objects(example(
        "click_to_segment.py", "--sink", "fakesink", "--frames", "9",
        "--click", "165,125@1",        # an object from frame 2
        "--key", "Escape@3",           # none from frame 4
        "--click", "175,135@4",        # a new object from frame 5
        "--shift-click", "180,140@5",  # corrected from frame 6: same object
        "--right-click", "185,147@6",  # removed from frame 7
    ))
    assert sorted(frames) == list(range(9))
    assert [len(frames[n]) for n in range(9)] == [0, 0, 1, 1, 0, 1, 1, 0, 0], frames
    for n in (2, 3, 5, 6):
        (o,) = frames[n]
        assert o["source"] == "click" and int(o["area"]) in BALL_AREA, (n, o)
    assert frames[2][0]["state"] == "acquired" and frames[3][0]["state"] == "tracked"
    first, second = frames[2][0]["id"], frames[5][0]["id"]
    assert frames[3][0]["id"] == first and second != first  # a click's id is new
    assert frames[6][0]["id"] == second  # Shift+click keeps the object


def unpacked_objects(buffer) -> list[dict]:
    """tinysam_meta.objects, checked against the meta's own numbers."""
    objects = tinysam_meta.objects(buffer)
    for o in objects:
        m, (x, y, w, h) = o["mask"], o["box"]
        assert m.shape == (H, W) and m.dtype == bool
        assert int(m.sum()) == o["area"]
        if o["area"]:  # the box is the mask's tight box
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
    return objects


@pytest.mark.parametrize("prompts", ["point=160,120; point=5,5", ""], ids=["prompts", "everything"])
def test_masks_to_coco_round_trips_the_masks(prompts):
    """The same pipeline in-process: each JSON line's RLEs decode into the
    masks tinysam_meta reads from that very buffer, pixel for pixel."""
    lines, raw = [], []
    pipeline = masks_to_coco.build_pipeline(prompts=prompts)
    masks_to_coco.run(
        pipeline, lambda record: lines.append(json.dumps(record)), frames=3,
        on_buffer=lambda buffer, record: raw.append(unpacked_objects(buffer)))
    assert len(lines) == len(raw) == 3
    for n, (line, objects) in enumerate(zip(lines, raw)):
        record = json.loads(line)
        assert (record["frame"], record["width"], record["height"]) == (n, W, H)
        assert record["pts"] == n * Gst.SECOND // 30
        assert [o["id"] for o in record["objects"]] == [o["id"] for o in objects]
        assert objects, f"frame {n}: no objects"
        for rec, obj in zip(record["objects"], objects):
            seg = rec["segmentation"]
            assert seg["size"] == [H, W]
            decoded = coco_mask.decode({"size": seg["size"], "counts": seg["counts"].encode()})
            assert decoded.shape == (H, W)
            assert np.array_equal(decoded.astype(bool), obj["mask"]), f"frame {n}, object {obj['id']}"
            assert rec["bbox"] == list(obj["box"]) == [int(v) for v in coco_mask.toBbox(
                {"size": seg["size"], "counts": seg["counts"].encode()})]
            assert rec["area"] == obj["area"] == int(coco_mask.area(
                {"size": seg["size"], "counts": seg["counts"].encode()}))
            assert (rec["state"], rec["source"], rec["iou"]) == (obj["state"], obj["source"], obj["iou"])
    if prompts:
        assert any(int(o["area"]) in BALL_AREA for o in raw[0])


def test_coco_rle_edge_cases():
    rng = np.random.default_rng(7)
    for mask in (np.zeros((H, W), bool), np.ones((H, W), bool), rng.random((5, 3)) > 0.5,
                 rng.random((H, W)) > 0.5):
        rle = masks_to_coco.coco_rle(mask)
        assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
        back = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert np.array_equal(back.astype(bool), mask)


def test_masks_to_coco_command_line(tmp_path):
    out = tmp_path / "ball.jsonl"
    example("masks_to_coco.py", "--prompts", "point=160,120", "--frames", "2", "--output", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1]
    for r in records:
        (o,) = r["objects"]
        assert set(o) == {"id", "state", "source", "iou", "area", "bbox", "segmentation"}
        m = coco_mask.decode({"size": o["segmentation"]["size"],
                              "counts": o["segmentation"]["counts"].encode()})
        assert int(m.sum()) == o["area"] and o["area"] in BALL_AREA


def test_tinysam_meta_without_meta():
    buffer = Gst.Buffer.new()
    assert tinysam_meta.objects(buffer) == []
    assert tinysam_meta.frame(buffer) is None
    assert tinysam_meta.region_mask(buffer, 0) is None


def test_detect_and_segment_gives_the_face_its_mask():
    """detect_and_segment.sh's pipeline on the drawn face: one object
    labelled face per frame, and region_mask is its mask inside the
    detector's box."""
    detector = Gst.ElementFactory.make("facedetect", None)
    if detector is None:
        pytest.skip("facedetect (gstreamer1.0-opencv) is not installed")
    if not os.path.isfile(detector.get_property("profile") or ""):
        pytest.skip(f"facedetect's cascade {detector.get_property('profile')} (opencv-data) is missing")
    description = example("detect_and_segment.sh", "--input", FACE, "--frames", "2",
                          "--sink", "fakesink", "--print-pipeline").strip()
    pipeline = Gst.parse_launch(description)
    seen, errors = [], []

    def probe(pad, info):
        try:
            buffer = info.get_buffer()
            objects = tinysam_meta.objects(buffer)
            roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, 0)
            assert GLib.quark_to_string(roi.roi_type) == "face"
            seen.append((objects, (roi.x, roi.y, roi.w, roi.h), tinysam_meta.region_mask(buffer, 0),
                         tinysam_meta.region_mask(buffer, 12345)))
        except Exception as e:  # an exception in a probe would only be printed
            errors.append(e)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sam").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    assert msg is not None and msg.type == Gst.MessageType.EOS, msg and msg.parse_error()
    assert not errors, errors
    assert len(seen) == 2
    for objects, (x, y, w, h), region, missing in seen:
        (face,) = objects
        assert (face["label"], face["prompt-source"], face["roi-id"]) == ("face", "roi", 0)
        assert face["area"] > 5000  # the skin ellipse has 14,700 pixels
        # facedetect leaves ROI ids at 0, like tinysam's first object id:
        # the lookup finds the detector's region (added first) all the same.
        inside = np.zeros((H, W), bool)
        inside[y:y + h, x:x + w] = True
        assert region is not None and np.array_equal(region, face["mask"] & inside)
        assert missing is None
