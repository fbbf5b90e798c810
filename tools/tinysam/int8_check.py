"""Accuracy change of one model directory against another (INT8 vs FP32) on
a user's images, through the full element pipeline (ONNX Runtime + sam_io):
the frame-size masks both models pick for the same prompts are compared."""

from __future__ import annotations

import numpy as np

from .images import load_rgb
from .onnx_model import OnnxTinySam
from .prompts import POSITIVE, Prompt


def grid_prompts(height: int, width: int, points_per_side: int = 4, boxes_per_side: int = 3) -> list[Prompt]:
    """Single positive points on a regular grid (cell centres) and boxes
    around the cells of a coarser grid, plus one box of the central half."""
    prompts = []
    for j in range(points_per_side):
        for i in range(points_per_side):
            x, y = (i + 0.5) * width / points_per_side, (j + 0.5) * height / points_per_side
            prompts.append(Prompt([(x, y)], [POSITIVE]))
    for j in range(boxes_per_side):
        for i in range(boxes_per_side):
            cw, ch = width / boxes_per_side, height / boxes_per_side
            prompts.append(Prompt(box=(i * cw, j * ch, (i + 1) * cw, (j + 1) * ch)))
    prompts.append(Prompt(box=(width / 4, height / 4, 3 * width / 4, 3 * height / 4)))
    return prompts


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare_on_images(reference_dir: str, candidate_dir: str, images: list[str], threads: int | None = None,
                      log=print) -> dict:
    ref, cand = OnnxTinySam(reference_dir, threads), OnnxTinySam(candidate_dir, threads)
    per_image = []
    pts, boxes, d_iou, rel = [], [], [], []
    for path in images:
        rgb = load_rgb(path)
        prompts = grid_prompts(*rgb.shape[:2])
        er, ec = ref.embed(rgb), cand.embed(rgb)
        rel.append(float(np.linalg.norm(er.embeddings - ec.embeddings) / max(np.linalg.norm(er.embeddings), 1e-12)))
        sr = ref.masks_from_logits(er, prompts, *ref.decode(er, prompts))
        sc = cand.masks_from_logits(ec, prompts, *cand.decode(ec, prompts))
        ip, ib = [], []
        for p, a, b in zip(prompts, sr, sc):
            (ib if p.box is not None else ip).append(_iou(a.mask, b.mask))
            d_iou.append(abs(a.iou_prediction - b.iou_prediction))
        pts += ip
        boxes += ib
        per_image.append({"image": path, "point_mask_iou": float(np.mean(ip)), "box_mask_iou": float(np.mean(ib)),
                          "embeddings_rel_rms": rel[-1]})
        if log:
            log(f"{path}: mask IoU vs reference, points {np.mean(ip):.4f}, boxes {np.mean(ib):.4f}; "
                f"embedding relative RMS error {rel[-1]:.4f}")
    summary = {"images": len(images), "prompts_per_image": len(grid_prompts(8, 8)),
               "point_mask_iou_mean": float(np.mean(pts)), "point_mask_iou_min": float(np.min(pts)),
               "box_mask_iou_mean": float(np.mean(boxes)), "box_mask_iou_min": float(np.min(boxes)),
               "iou_prediction_abs_diff_mean": float(np.mean(d_iou)),
               "iou_prediction_abs_diff_max": float(np.max(d_iou)),
               "embeddings_rel_rms_mean": float(np.mean(rel))}
    return {"summary": summary, "per_image": per_image}
