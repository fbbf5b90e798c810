"""Synthetic scenes with exact instance masks.

Each scene is a textured background with several filled shapes (ellipses,
rotated rectangles, triangles, regular polygons, stars, smooth blobs) of
varied size, colour and texture that may overlap. Shapes are drawn at twice
the requested size and box-filtered down, so edges are anti-aliased like a
camera image, and every object's mask is its *visible* part at frame size.
Everything is driven by a numpy Generator, so a seed fixes a scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPE_KINDS = ("ellipse", "rectangle", "triangle", "polygon", "star", "blob")


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    masks: np.ndarray  # (K, H, W) bool, visible part of each object, back to front
    kinds: list[str]

    @property
    def boxes(self) -> np.ndarray:
        """(K, 4) float x0, y0, x1, y1 of each mask, in pixel-edge coordinates."""
        out = np.zeros((len(self.masks), 4), dtype=np.float32)
        for i, m in enumerate(self.masks):
            ys, xs = np.nonzero(m)
            if len(xs):
                out[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        return out


def object_map(masks: np.ndarray) -> np.ndarray:
    """(H, W) index of the (topmost) object at each pixel of masks (K, H, W),
    -1 on the background."""
    out = np.full(masks.shape[1:], -1, np.int64)
    for k, m in enumerate(masks):
        out[m] = k
    return out


def _colour(rng):
    return rng.integers(0, 256, size=3).astype(np.float32)


def _texture(rng, h, w, box=None):
    """An (h, w, 3) float texture: solid, gradient, stripes, checker or noise.

    With `box` = (y0, y1, x0, x1) only that part of the texture is computed
    (the values, and the random numbers drawn, are the same as for the whole).
    """
    y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
    kind = rng.choice(["solid", "solid", "gradient", "stripes", "checker", "noise"])
    c1 = _colour(rng)
    if kind == "solid":
        return np.broadcast_to(c1, (y1 - y0, x1 - x0, 3)).copy()
    c2 = _colour(rng)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    proj = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == "gradient":
        # the projection is monotonic in x and y (also after float rounding),
        # so its extremes over the whole texture lie at its corners
        cy = np.array([0, 0, h - 1, h - 1], np.float32)
        cx = np.array([0, w - 1, 0, w - 1], np.float32)
        corners = cx * math.cos(angle) + cy * math.sin(angle)
        t = (proj - corners.min()) / max(float(corners.max() - corners.min()), 1.0)
    elif kind == "stripes":
        period = rng.uniform(6, 30)
        t = (np.sin(proj * 2 * math.pi / period) > 0).astype(np.float32)
    elif kind == "checker":
        cell = rng.uniform(6, 30)
        t = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    else:
        small = rng.random((max(h // 16, 2), max(w // 16, 2))).astype(np.float32)
        t = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))[y0:y1, x0:x1]
        # softer contrast for noise so it reads as a texture, not two objects
        c2 = c1 + (c2 - c1) * 0.5
    return c1 + (c2 - c1) * t[..., None]


def _shape_polygon(rng, kind, cx, cy, r):
    rot = rng.uniform(0, 2 * math.pi)
    if kind == "rectangle":
        aspect = rng.uniform(0.35, 1.0)
        hx, hy = r, r * aspect
        pts = [(-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)]
    elif kind == "triangle":
        angles = np.sort(rng.uniform(0, 2 * math.pi, 3))
        pts = [(r * math.cos(a), r * math.sin(a)) for a in angles]
        # reject slivers by enforcing a minimum angular gap
        gaps = np.diff(np.concatenate([angles, [angles[0] + 2 * math.pi]]))
        if gaps.min() < 0.8:
            pts = [(r * math.cos(a), r * math.sin(a)) for a in (0, 2.1, 4.2)]
    elif kind == "polygon":
        n = int(rng.integers(5, 9))
        pts = [(r * math.cos(2 * math.pi * i / n), r * math.sin(2 * math.pi * i / n)) for i in range(n)]
    elif kind == "star":
        n = int(rng.integers(4, 8))
        inner = rng.uniform(0.45, 0.7)
        pts = []
        for i in range(2 * n):
            rr = r if i % 2 == 0 else r * inner
            a = math.pi * i / n
            pts.append((rr * math.cos(a), rr * math.sin(a)))
    else:  # blob: smooth random radius
        n = 48
        coeffs = rng.normal(0, 0.12, size=(3, 2))
        pts = []
        for i in range(n):
            a = 2 * math.pi * i / n
            rr = 1.0 + sum(coeffs[k, 0] * math.cos((k + 2) * a) + coeffs[k, 1] * math.sin((k + 2) * a) for k in range(3))
            pts.append((r * rr * math.cos(a), r * rr * math.sin(a)))
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _draw_shape(rng, kind, w2, h2, cx, cy, r):
    img = Image.new("L", (w2, h2), 0)
    draw = ImageDraw.Draw(img)
    if kind == "ellipse":
        aspect = rng.uniform(0.4, 1.0)
        rot = rng.uniform(0, 180)
        # draw axis-aligned then rotate about the centre
        big = Image.new("L", (w2, h2), 0)
        ImageDraw.Draw(big).ellipse([cx - r, cy - r * aspect, cx + r, cy + r * aspect], fill=255)
        return np.asarray(big.rotate(rot, center=(cx, cy), resample=Image.NEAREST)) > 127
    draw.polygon(_shape_polygon(rng, kind, cx, cy, r), fill=255)
    return np.asarray(img) > 127


def _downsample2(a):
    h, w = a.shape[0] // 2, a.shape[1] // 2
    a = a[: 2 * h, : 2 * w]
    return a.reshape(h, 2, w, 2, *a.shape[2:]).mean(axis=(1, 3))


def _downsample2_mask(m):
    """`_downsample2(m.astype(np.float32)) >= 0.5` for a bool mask, computed on
    counts: at least 2 of the 4 samples set."""
    h, w = m.shape[0] // 2, m.shape[1] // 2
    m = m[: 2 * h, : 2 * w].view(np.uint8)
    count = m[0::2, 0::2] + m[1::2, 0::2] + m[0::2, 1::2] + m[1::2, 1::2]
    return count >= 2


def make_scene(rng: np.random.Generator, width: int, height: int, n_objects: tuple[int, int] = (2, 8),
               min_visible_fraction: float = 0.004) -> Scene:
    """Render one scene of `width` x `height` with a number of objects in `n_objects` (inclusive)."""
    w2, h2 = 2 * width, 2 * height
    canvas = _texture(rng, h2, w2)
    count = int(rng.integers(n_objects[0], n_objects[1] + 1))
    shapes, kinds = [], []
    short = min(w2, h2)
    for _ in range(count):
        kind = str(rng.choice(SHAPE_KINDS))
        r = short * rng.uniform(0.06, 0.28)
        cx = rng.uniform(0.1, 0.9) * w2
        cy = rng.uniform(0.1, 0.9) * h2
        m = _draw_shape(rng, kind, w2, h2, cx, cy, r)
        if m.sum() < 16:
            continue
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        inside = m[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1][inside] = _texture(rng, h2, w2, (y0, y1, x0, x1))[inside]
        shapes.append(m)
        kinds.append(kind)
    # visible part: a shape minus everything drawn after it
    visible = []
    covered = np.zeros((h2, w2), dtype=bool)
    for m in reversed(shapes):
        visible.append(m & ~covered)
        covered |= m
    visible.reverse()
    image = np.clip(_downsample2(canvas) + rng.normal(0, 2.0, size=(height, width, 3)), 0, 255).astype(np.uint8)
    masks, kept = [], []
    for m, kind in zip(visible, kinds):
        small = _downsample2_mask(m)
        if small.sum() >= min_visible_fraction * width * height:
            masks.append(small)
            kept.append(kind)
    arr = np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool)
    return Scene(image=image, masks=arr, kinds=kept)
