#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job: runs tinysam in a gst-launch-1.0 pipeline with the plugin from
# the release build and writes the frames to out/demo-NNN.png.
# Run through `make demo`, which sets up and builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=out
mkdir -p "$OUT"
rm -f "$OUT"/demo-*.png

# The plugin from target/release only; a private registry keeps the user's clean.
export GST_PLUGIN_PATH=$PWD/target/release
export GST_REGISTRY=$PWD/target/gst-registry.bin

gst-launch-1.0 -q \
    videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 \
    ! tinysam \
    ! videoconvert ! pngenc ! multifilesink location="$OUT/demo-%03d.png"

echo "wrote $(ls "$OUT"/demo-*.png | wc -l) frames to $OUT/demo-000.png ... (open them with any image viewer)"
