#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Draws examples/data/face.png: a cartoon face (skin ellipse, hair, dark
eyes, eyebrows, nose, mouth) on a plain background, 320x240, on which
OpenCV's frontal-face Haar cascade (`facedetect`) finds one face. Needs
Pillow (in tools/requirements.txt).

    .venv/bin/python examples/data/make_face.py [OUT.png]
"""

import os
import sys

from PIL import Image, ImageDraw

W, H = 320, 240
SKIN, HAIR, RED = (225, 185, 150), (60, 40, 25), (150, 50, 50)


def draw_face() -> Image.Image:
    im = Image.new("RGB", (W, H), (70, 110, 160))
    d = ImageDraw.Draw(im)
    cx, cy, fw, fh = 160, 120, 60, 78
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=SKIN)
    d.chord([cx - fw, cy - fh - 5, cx + fw, cy - fh + 60], 180, 360, fill=HAIR)
    for ex in (cx - 24, cx + 24):
        d.rectangle([ex - 14, cy - 28, ex + 14, cy - 23], fill=HAIR)        # eyebrow
        d.ellipse([ex - 12, cy - 18, ex + 12, cy - 6], fill=(255, 255, 255))  # eye
        d.ellipse([ex - 6, cy - 17, ex + 6, cy - 7], fill=(40, 25, 20))       # iris
    d.polygon([(cx, cy - 5), (cx - 8, cy + 18), (cx + 8, cy + 18)], fill=(200, 150, 120))
    d.chord([cx - 20, cy + 25, cx + 20, cy + 45], 0, 180, fill=RED)
    return im


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "face.png")
    draw_face().save(out, optimize=True)
