# SPDX-License-Identifier: Apache-2.0
"""Reading the `tinysam` element's metadata from Python (PyGObject).

A few lines give the objects of a buffer with frame-size masks::

    import sys; sys.path.insert(0, "python")   # this folder
    import tinysam_meta

    def on_buffer(pad, info):
        for obj in tinysam_meta.objects(info.get_buffer()):
            print(obj["id"], obj["state"], obj["box"], obj["mask"].sum())
        return Gst.PadProbeReturn.OK

    sam.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer)

It works with and without gst-python's overrides (`python3-gst-1.0`): the
objects array is read with `Gst.Structure.get_array` and
`GObject.ValueArray.get_nth` (deprecated in GLib, but the one accessor that
works in both cases; see docs/element.md, "Reading it in Python"), and every
field with a typed getter.

Needs `python3-gi`, `gir1.2-gst-plugins-base-1.0` and numpy.
"""

from __future__ import annotations

import warnings

import numpy as np
import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

# get_nth's DeprecationWarning (see above), and only that one: a filter,
# unlike warnings.catch_warnings, is safe on streaming threads.
warnings.filterwarnings("ignore", message=r"GObject\.ValueArray\.get_nth is deprecated",
                        category=DeprecationWarning)

__all__ = ["META_NAME", "frame", "objects", "region_mask", "unpack_mask"]

META_NAME = "GstTinySamMeta"
GST_CLOCK_TIME_NONE = 2**64 - 1

# The fields of a `tinysam/object` structure (docs/element.md, "Metadata"),
# with the getter that reads each. Optional ones are absent from some objects.
_OBJECT_FIELDS = {
    "id": "uint",
    "state": "string",
    "prompt-index": "int",
    "source": "string",
    "prompt-source": "string",   # prompted objects only
    "roi-id": "int",             # prompt-source "roi" only
    "label": "string",           # prompt-source "roi" only
    "grid-x": "double",          # everything mode only
    "grid-y": "double",
    "grid-round": "string",
    "x": "int",
    "y": "int",
    "width": "int",
    "height": "int",
    "iou": "double",
    "stability": "double",
    "area": "uint64",
}


def _get(structure: Gst.Structure, name: str, kind: str):
    """A field through its typed getter (these return (ok, value) with and
    without the overrides; get_string returns the value or None)."""
    if kind == "string":
        return structure.get_string(name)
    ok, value = getattr(structure, "get_" + kind)(name)
    return value if ok else None


def _meta_structure(buffer: Gst.Buffer) -> Gst.Structure | None:
    meta = buffer.get_custom_meta(META_NAME)
    return None if meta is None else meta.get_structure()


def unpack_mask(bits: bytes, x: int, y: int, w: int, h: int,
                width: int, height: int) -> np.ndarray:
    """A bit-packed box mask (MSB first, rows not padded) pasted at (x, y)
    into a (height, width) bool array."""
    mask = np.zeros((height, width), bool)
    if w > 0 and h > 0:
        packed = np.frombuffer(bits, np.uint8)
        mask[y:y + h, x:x + w] = np.unpackbits(packed, count=w * h).reshape(h, w).astype(bool)
    return mask


def frame(buffer: Gst.Buffer) -> dict | None:
    """The frame-level fields of the buffer's `tinysam/objects`: width,
    height, count, inference-pts (None before the first result) and
    computed; None when the buffer has no GstTinySamMeta."""
    s = _meta_structure(buffer)
    if s is None:
        return None
    inference_pts = _get(s, "inference-pts", "uint64")
    return {
        "width": _get(s, "frame-width", "uint"),
        "height": _get(s, "frame-height", "uint"),
        "count": _get(s, "count", "uint"),
        "inference-pts": None if inference_pts == GST_CLOCK_TIME_NONE else inference_pts,
        "computed": _get(s, "computed", "boolean"),
    }


def objects(buffer: Gst.Buffer) -> list[dict]:
    """The objects of the buffer's GstTinySamMeta, in the meta's order (an
    empty list without the meta).

    Each is a dict of the `tinysam/object` fields that it has (`id`,
    `state`, `prompt-index`, `source`, `prompt-source`, `roi-id`, `label`,
    `grid-x`, `grid-y`, `grid-round`, `x`, `y`, `width`, `height`, `iou`,
    `stability`, `area`), plus `box` = (x, y, width, height) and `mask`: the
    mask pasted into an (H, W) bool numpy array of the frame's size.
    """
    s = _meta_structure(buffer)
    if s is None:
        return []
    width, height = _get(s, "frame-width", "uint"), _get(s, "frame-height", "uint")
    ok, array = s.get_array("objects")  # a GObject.ValueArray, overrides or not
    if not ok:
        return []
    out = []
    for o in (array.get_nth(i) for i in range(array.n_values)):
        obj = {name: _get(o, name, kind) for name, kind in _OBJECT_FIELDS.items()
               if o.has_field(name)}
        obj["box"] = (obj["x"], obj["y"], obj["width"], obj["height"])
        bits = o.get_value("mask").get_data()  # GLib.Bytes
        obj["mask"] = unpack_mask(bits, *obj["box"], width, height)
        out.append(obj)
    return out


def region_mask(buffer: Gst.Buffer, roi_id: int) -> np.ndarray | None:
    """The mask `tinysam` (with `inference-region=roi-list`) gave back to the
    upstream region of interest (a detector's `GstVideoRegionOfInterestMeta`)
    whose id is `roi_id`, as a frame-size (H, W) bool array; None when that
    region has no `tinysam/mask` (not prompted, or filtered by
    `object-class`).

    GI can only look ROI metas up by id (it cannot iterate them), so this
    finds the first region with that id: detectors that leave every id at 0
    (such as OpenCV's `facedetect`) make only their first region reachable.
    For every region use `objects()`: the objects prompted by regions have
    `prompt-source` "roi", `roi-id` and `label`, and their whole masks.
    """
    s = _meta_structure(buffer)
    if s is None:
        return None
    width, height = _get(s, "frame-width", "uint"), _get(s, "frame-height", "uint")
    roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, roi_id)
    if roi is None or GLib.quark_to_string(roi.roi_type) == "tinysam":
        return None
    param = roi.get_param("tinysam/mask")
    if param is None:
        return None
    # The param's box is the region's, clipped to the frame.
    w, h = _get(param, "width", "int"), _get(param, "height", "int")
    return unpack_mask(param.get_value("mask").get_data(), roi.x, roi.y, w, h, width, height)
