#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job: runs tinysam with the bundled model in a gst-launch-1.0
# pipeline (plugin from the release build) on SMPTE colour bars, with three
# prompted bars drawn as an overlay, and writes the frames to out/demo-NNN.png;
# then a generated shapes scene without prompts in everything mode, to
# out/demo-everything.png;
# then the moving ball of videotestsrc followed from one point prompt on the
# first frame, to out/demo-tracking.webm and a strip of frames,
# out/demo-tracking-strip.png; then the overlay modes on a drawn face found
# by OpenCV's detector (fill, a cut-out over checkers, blur, pixelate), to
# out/demo-overlay-modes.png. `make docs-images` copies the pictures the docs
# show into docs/images.
# Run through `make demo`, which sets up and builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=out
mkdir -p "$OUT"
rm -f "$OUT"/demo-*.png "$OUT"/demo-tracking*

# The plugin from target/release only; a private registry keeps the user's clean.
export GST_PLUGIN_PATH=$PWD/target/release
export GST_REGISTRY=$PWD/target/gst-registry.bin

MODEL=${TINYSAM_MODEL:-models/tinysam-fixture}
# The bars are 640/7 = 91 px wide and cover the top 2/3 (240 px) of the frame.
PROMPTS="box=92,0,182,240; point=320,120; point=590,120"

gst-launch-1.0 -q \
    videotestsrc num-buffers=5 pattern=smpte ! video/x-raw,format=RGBA,width=640,height=360,framerate=30/1 \
    ! tinysam model="$MODEL" prompts="$PROMPTS" overlay=true overlay-alpha=0.5 \
    ! videoconvert ! pngenc ! multifilesink location="$OUT/demo-%03d.png"

# Everything mode at SAM's and TinySAM's default filters, on a scene of the
# kind the bundled fixture was trained on (tools/tinysam/scenes.py: shapes
# with flat, noisy and striped fills); it has never seen colour bars.
.venv/bin/python - "$OUT/demo-scene.png" <<'PY'
import sys
import numpy as np
from PIL import Image
sys.path.insert(0, "tools")
from tinysam.scenes import make_scene
Image.fromarray(make_scene(np.random.default_rng([2026, 2]), 640, 360).image).save(sys.argv[1])
PY
gst-launch-1.0 -q \
    filesrc location="$OUT/demo-scene.png" ! pngdec ! videoconvert ! video/x-raw,format=RGBA \
    ! tinysam model="$MODEL" everything-mode=hierarchical overlay=true \
    ! videoconvert ! pngenc ! filesink location="$OUT/demo-everything.png"
rm -f "$OUT/demo-scene.png"

# Tracking: where the ball is on the first frame (its bright pixels' centre).
BALL_CAPS="video/x-raw,format=RGB,width=320,height=240,framerate=30/1"
gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=ball ! "$BALL_CAPS" \
    ! filesink location="$OUT/demo-tracking-first.rgb"
START=$(.venv/bin/python - "$OUT/demo-tracking-first.rgb" <<'PY'
import sys
import numpy as np
rgb = np.fromfile(sys.argv[1], np.uint8).reshape(240, 320, 3)
ys, xs = np.nonzero(rgb.astype(int).sum(axis=2) > 384)
print(f"{xs.mean():.0f},{ys.mean():.0f}")
PY
)
rm -f "$OUT/demo-tracking-first.rgb"
# One point on the first frame; the element follows the ball from there.
gst-launch-1.0 -q \
    videotestsrc num-buffers=90 pattern=ball ! "$BALL_CAPS" ! videoconvert ! video/x-raw,format=RGBA \
    ! tinysam model="$MODEL" processing=sync prompts="point=$START" overlay=true overlay-alpha=0.6 \
    ! videoconvert ! tee name=t \
    t. ! queue ! vp8enc deadline=1 ! webmmux ! filesink location="$OUT/demo-tracking.webm" \
    t. ! queue ! videorate drop-only=true ! video/x-raw,framerate=3/1 ! videoconvert ! video/x-raw,format=RGB \
        ! multifilesink location="$OUT/demo-tracking-%02d.rgb"
# Six frames a third of a second apart, side by side.
.venv/bin/python - "$OUT" <<'PY'
import glob, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
names = sorted(glob.glob(f"{out}/demo-tracking-*.rgb"))
frames = [np.fromfile(n, np.uint8).reshape(240, 320, 3) for n in names[:6]]
gap = np.full((240, 4, 3), 255, np.uint8)
strip = np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)
Image.fromarray(strip).save(f"{out}/demo-tracking-strip.png")
for n in names:
    import os
    os.remove(n)
PY

# Overlay modes on the face of examples/data: one box prompt per face that
# facedetect finds (inference-region=roi-list).
FACE="filesrc location=examples/data/face.png ! pngdec ! videoconvert ! facedetect display=false \
    ! videoconvert ! video/x-raw,format=RGBA"
SAM="tinysam model=$MODEL inference-region=roi-list object-class=face overlay=true"
for mode in fill blur pixelate; do
    OPENCV_LOG_LEVEL=FATAL gst-launch-1.0 -q $FACE ! $SAM overlay-mode=$mode \
        ! videoconvert ! video/x-raw,format=RGB ! filesink location="$OUT/demo-mode-$mode.rgb"
done
# The cut-out over another picture: compositor takes tinysam's alpha channel.
OPENCV_LOG_LEVEL=FATAL gst-launch-1.0 -q compositor name=mix \
    ! videoconvert ! video/x-raw,format=RGB ! filesink location="$OUT/demo-mode-alpha.rgb" \
    videotestsrc num-buffers=1 pattern=checkers-8 ! video/x-raw,format=RGBA,width=320,height=240 ! mix.sink_0 \
    $FACE ! $SAM overlay-mode=alpha ! mix.sink_1
.venv/bin/python - "$OUT" <<'PY'
import os, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
panels = []
for mode in ("fill", "alpha", "blur", "pixelate"):
    name = f"{out}/demo-mode-{mode}.rgb"
    panels.append(np.fromfile(name, np.uint8).reshape(240, 320, 3))
    os.remove(name)
everything = Image.open(f"{out}/demo-everything.png").convert("RGB").resize((427, 240))
panels.insert(1, np.asarray(everything))
gap = np.full((240, 4, 3), 255, np.uint8)
strip = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
Image.fromarray(strip).save(f"{out}/demo-overlay-modes.png", optimize=True)
PY

echo "wrote $(ls "$OUT"/demo-[0-9]*.png | wc -l) frames to $OUT/demo-000.png ... and $OUT/demo-everything.png (open them with any image viewer)"
echo "wrote $OUT/demo-tracking.webm (the ball followed from one point) and $OUT/demo-tracking-strip.png"
echo "wrote $OUT/demo-overlay-modes.png (fill, everything mode, cut-out, blur, pixelate)"
