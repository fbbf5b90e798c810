#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job: runs tinysam with the bundled model in a gst-launch-1.0
# pipeline (plugin from the release build) on SMPTE colour bars, with three
# prompted bars drawn as an overlay, and writes the frames to out/demo-NNN.png;
# then one frame without prompts in everything mode, to out/demo-everything.png.
# Run through `make demo`, which sets up and builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=out
mkdir -p "$OUT"
rm -f "$OUT"/demo-*.png

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

# The fixture's IoU predictions run lower than SAM's (docs/element.md).
gst-launch-1.0 -q \
    videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=RGBA,width=640,height=360 \
    ! tinysam model="$MODEL" everything-mode=hierarchical pred-iou-thresh=0.75 \
        stability-score-thresh=0.9 overlay=true \
    ! videoconvert ! pngenc ! filesink location="$OUT/demo-everything.png"

echo "wrote $(ls "$OUT"/demo-[0-9]*.png | wc -l) frames to $OUT/demo-000.png ... and $OUT/demo-everything.png (open them with any image viewer)"
