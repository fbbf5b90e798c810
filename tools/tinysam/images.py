"""Reading a user's images (calibration, INT8 checks)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def list_images(directory: str) -> list[str]:
    files = sorted(os.path.join(directory, f) for f in os.listdir(directory)
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {directory}")
    return files


def load_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, whatever the file's mode."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
