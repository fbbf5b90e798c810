#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A detector upstream, tinysam after it: OpenCV's face detector (`facedetect`,
# from gstreamer1.0-opencv) marks each face as a region of interest, and
# tinysam (inference-region=roi-list object-class=face) prompts one box per
# face, segments it and draws the masks (overlay=true).
#
#   examples/detect_and_segment.sh                          # webcam (v4l2src), in a window
#   examples/detect_and_segment.sh --input photo.jpg        # a still image, until the window closes
#   examples/detect_and_segment.sh --input clip.webm        # a video file
#   examples/detect_and_segment.sh --input examples/data/face.png \
#       --frames 5 --sink fakesink --messages               # headless: prints facedetect's messages
#
# Options:
#   --input FILE|videotestsrc   what to play (default: the webcam, v4l2src)
#   --frames N                  stop after N frames (images, webcam, videotestsrc)
#   --sink SINK                 default autovideosink; fakesink for no window
#   --model DIR                 default models/tinysam-fixture
#   --messages                  print the bus messages (gst-launch-1.0 -m): faces found
#   --print-pipeline            print the gst-launch-1.0 description and exit
#
# The plugin is taken from target/release (cargo build --release) unless
# GST_PLUGIN_PATH is set.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$REPO/target/release}
# facedetect also loads nose, mouth and eye cascades that Debian's opencv-data
# lacks (used only for display=true); OpenCV would log an error for each.
export OPENCV_LOG_LEVEL=${OPENCV_LOG_LEVEL:-FATAL}

input= frames= sink=autovideosink model=$REPO/models/tinysam-fixture messages= print=
while [ $# -gt 0 ]; do
    case $1 in
        --input) input=$2; shift 2 ;;
        --frames) frames=$2; shift 2 ;;
        --sink) sink=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --messages) messages=-m; shift ;;
        --print-pipeline) print=1; shift ;;
        -h | --help) sed -n '3,/^set/{/^set/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "$0: unknown option $1 (--help lists them)" >&2; exit 2 ;;
    esac
done

limit=${frames:+num-buffers=$frames}
case $input in
    "") source=(v4l2src $limit) ;;
    videotestsrc) source=(videotestsrc $limit) ;;
    # a still image: decoded once, then repeated as video
    *.png | *.PNG | *.jpg | *.JPG | *.jpeg | *.JPEG)
        source=(filesrc location="$input" ! decodebin ! imagefreeze $limit) ;;
    *) source=(filesrc location="$input" ! decodebin) ;;
esac

# facedetect wants RGB; tinysam takes the regions it attached as prompts.
pipeline=(
    "${source[@]}" ! videoconvert ! facedetect display=false
    ! videoconvert ! video/x-raw,format=RGBA
    ! tinysam name=sam model="$model" inference-region=roi-list object-class=face overlay=true
    ! videoconvert ! $sink
)

if [ -n "$print" ]; then
    echo "${pipeline[*]}"
    exit 0
fi
exec gst-launch-1.0 $messages "${pipeline[@]}"
