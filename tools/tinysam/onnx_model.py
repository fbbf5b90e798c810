"""Run an exported model directory (model.json + encoder.onnx + decoder.onnx)
in ONNX Runtime with SAM pre- and post-processing: the Python reference of
what the element does with a model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from . import sam_io
from .prompts import Prompt

MODEL_FORMAT = "tinysam-model"
MODEL_FORMAT_VERSION = 1


@dataclass
class Embedding:
    """The encoder's output for one frame and the geometry needed to use it."""

    embeddings: np.ndarray  # (1, C, h, w) float32
    scale: float  # frame pixels -> input-frame pixels
    resized_hw: tuple[int, int]
    frame_hw: tuple[int, int]


@dataclass
class Segment:
    mask: np.ndarray  # (H, W) bool, frame size
    iou_prediction: float
    token: int  # which of the 4 mask outputs was kept
    logits: np.ndarray  # (4h, 4w) low-res logits of the kept output


def load_metadata(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "model.json")) as f:
        meta = json.load(f)
    if meta.get("format") != MODEL_FORMAT or meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(f"{model_dir}: not a {MODEL_FORMAT} v{MODEL_FORMAT_VERSION} directory "
                         f"(format {meta.get('format')!r}, version {meta.get('format_version')!r})")
    return meta


def session(path: str, threads: int | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def count_points(prompt: Prompt) -> int:
    return sum(1 for lab in prompt.labels if lab in (0.0, 1.0))


class OnnxTinySam:
    def __init__(self, model_dir: str, threads: int | None = None):
        self.dir = model_dir
        self.meta = load_metadata(model_dir)
        self.size = int(self.meta["image_size"])
        self.low_res = int(self.meta["low_res_mask_size"])
        self.mask_threshold = float(self.meta["mask_threshold"])
        self.mask_selection = self.meta["mask_selection"]
        self.encoder = session(os.path.join(model_dir, self.meta["encoder"]), threads)
        self.decoder = session(os.path.join(model_dir, self.meta["decoder"]), threads)

    def embed(self, rgb: np.ndarray) -> Embedding:
        x, scale, resized = sam_io.preprocess(rgb, self.size)
        (emb,) = self.encoder.run(["image_embeddings"], {"image": x})
        return Embedding(emb, scale, resized, rgb.shape[:2])

    def _run_decoder(self, emb: Embedding, coords, labels, mask_input=None):
        b = coords.shape[0]
        if mask_input is None:
            mask_input = np.zeros((b, 1, self.low_res, self.low_res), np.float32)
            has_mask = np.zeros(b, np.float32)
        else:
            mask_input = np.asarray(mask_input, np.float32).reshape(b, 1, self.low_res, self.low_res)
            has_mask = np.ones(b, np.float32)
        iou, low = self.decoder.run(["iou_predictions", "low_res_masks"], {
            "image_embeddings": emb.embeddings, "point_coords": coords, "point_labels": labels,
            "mask_input": mask_input, "has_mask_input": has_mask})
        return low, iou

    def decode(self, emb: Embedding, prompts: list[Prompt], mask_inputs=None) -> tuple[np.ndarray, np.ndarray]:
        """One decoder call per prompt (B = 1): low-res logits (K, 4, 4h, 4w)
        and IoU predictions (K, 4). `mask_inputs`: optional per-prompt (4h, 4w)
        logits fed back with has_mask_input = 1 (None entries mean no mask)."""
        lows, ious = [], []
        for i, p in enumerate(prompts):
            coords, labels = p.encode(emb.scale)
            m = None if mask_inputs is None else mask_inputs[i]
            low, iou = self._run_decoder(emb, coords[None], labels[None], None if m is None else m[None])
            lows.append(low[0])
            ious.append(iou[0])
        if not lows:
            return np.zeros((0, 4, self.low_res, self.low_res), np.float32), np.zeros((0, 4), np.float32)
        return np.stack(lows), np.stack(ious)

    def decode_grouped(self, emb: Embedding, prompts: list[Prompt]) -> tuple[np.ndarray, np.ndarray]:
        """Same result as `decode` (up to float rounding of batched matmuls):
        prompts with the same number of encoded points share one decoder call,
        so no padding is added."""
        encoded = [p.encode(emb.scale) for p in prompts]
        lows = np.zeros((len(prompts), 4, self.low_res, self.low_res), np.float32)
        ious = np.zeros((len(prompts), 4), np.float32)
        groups: dict[int, list[int]] = {}
        for i, (c, _) in enumerate(encoded):
            groups.setdefault(len(c), []).append(i)
        for idx in groups.values():
            coords = np.stack([encoded[i][0] for i in idx])
            labels = np.stack([encoded[i][1] for i in idx])
            low, iou = self._run_decoder(emb, coords, labels)
            lows[idx], ious[idx] = low, iou
        return lows, ious

    def select(self, iou: np.ndarray, prompt: Prompt) -> int:
        return sam_io.select_mask(iou, self.mask_selection, count_points(prompt), prompt.box is not None)

    def masks_from_logits(self, emb: Embedding, prompts: list[Prompt], lows, ious) -> list[Segment]:
        out = []
        for p, low, iou in zip(prompts, lows, ious):
            k = self.select(iou, p)
            full = sam_io.postprocess(low[k], emb.resized_hw, emb.frame_hw, self.size)
            out.append(Segment(full > self.mask_threshold, float(iou[k]), k, low[k]))
        return out

    def segment(self, rgb: np.ndarray, prompts: list[Prompt]) -> list[Segment]:
        """Per prompt (frame pixel coordinates): a frame-size bool mask, chosen
        by the model's mask-selection rule, and its predicted IoU."""
        emb = self.embed(rgb)
        lows, ious = self.decode(emb, prompts)
        return self.masks_from_logits(emb, prompts, lows, ious)
