#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Called by meson.build: builds the plugin with cargo into a target directory
# inside meson's build directory and copies it to the path meson expects.
# Usage: meson-cargo.sh CARGO SOURCE_ROOT CARGO_TARGET_DIR OUTPUT
set -eu
cargo=$1 source_root=$2 target_dir=$3 output=$4
"$cargo" build --release --manifest-path "$source_root/Cargo.toml" --target-dir "$target_dir"
cp "$target_dir/release/libgsttinysam.so" "$output"
