"""Sampling SAM-style prompts from exact masks (training and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# SAM point labels
NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT, PADDING = 0.0, 1.0, 2.0, 3.0, -1.0


@dataclass
class Prompt:
    """Points and an optional box, in pixel coordinates of one frame."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None

    def encode(self, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """SAM's decoder inputs: points then box corners, or one padding point
        when there is no box; coordinates scaled into the model's input frame."""
        coords = [(x * scale, y * scale) for x, y in self.points]
        labels = list(self.labels)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            coords += [(x0 * scale, y0 * scale), (x1 * scale, y1 * scale)]
            labels += [BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]
        else:
            coords.append((0.0, 0.0))
            labels.append(PADDING)
        return np.asarray(coords, dtype=np.float32), np.asarray(labels, dtype=np.float32)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def sample_in(rng, region: np.ndarray) -> tuple[float, float] | None:
    ys, xs = np.nonzero(region)
    if len(xs) == 0:
        return None
    i = int(rng.integers(len(xs)))
    return float(xs[i]), float(ys[i])


def interior_point(rng, mask: np.ndarray) -> tuple[float, float]:
    """A positive point away from the boundary where the mask allows it, as a
    person would click."""
    inner = mask.copy()
    for _ in range(2):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        if shrunk.sum() < 4:
            break
        inner = shrunk
    p = sample_in(rng, inner)
    assert p is not None
    return p


def jitter_box(rng, box, frac=0.05, max_px=8.0):
    x0, y0, x1, y1 = box
    sx, sy = min((x1 - x0) * frac, max_px), min((y1 - y0) * frac, max_px)
    return (x0 + rng.normal(0, sx), y0 + rng.normal(0, sy), x1 + rng.normal(0, sx), y1 + rng.normal(0, sy))


def negative_point(rng, mask: np.ndarray, box) -> tuple[float, float] | None:
    """A background point near the object (inside its box grown by 25%)."""
    h, w = mask.shape
    x0, y0, x1, y1 = box
    gx, gy = (x1 - x0) * 0.25, (y1 - y0) * 0.25
    region = np.zeros_like(mask)
    region[max(int(y0 - gy), 0) : min(int(y1 + gy), h), max(int(x0 - gx), 0) : min(int(x1 + gx), w)] = True
    return sample_in(rng, region & ~mask)


def random_prompt(rng, mask: np.ndarray, kind: str) -> Prompt:
    """kind: 'box', 'point', 'points' (positives and negatives) or 'box+points'."""
    box = mask_box(mask)
    p = Prompt()
    if kind in ("box", "box+points"):
        p.box = jitter_box(rng, box)
    if kind == "point":
        p.points, p.labels = [interior_point(rng, mask)], [POSITIVE]
    elif kind in ("points", "box+points"):
        for _ in range(int(rng.integers(1, 4))):
            p.points.append(interior_point(rng, mask))
            p.labels.append(POSITIVE)
        for _ in range(int(rng.integers(0, 3))):
            q = negative_point(rng, mask, box)
            if q is not None:
                p.points.append(q)
                p.labels.append(NEGATIVE)
    return p
