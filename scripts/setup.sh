#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what gst-tinysam needs on Debian 12 and builds the plugin.
# Idempotent: each step checks first and is skipped when already done.
#
#   1. apt packages (GStreamer development files and tools, meson, Python venv)
#   2. Rust toolchain check (cargo >= 1.95; cannot be installed from here)
#   3. Python environment .venv with tools/requirements.txt (incl. onnxruntime,
#      whose wheel carries libonnxruntime.so); reinstalled when that file changes
#   4. Python environment .venv-openvino with tools/requirements-openvino.txt
#      (ONNX Runtime's OpenVINO build, for the OpenVINO execution provider's
#      tests and benchmark); reinstalled when that file changes
#   5. cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-opencv opencv-data
    pkg-config meson ninja-build gcc libc6-dev
    python3-venv python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
)
RUST_MIN=1.95
VENV=.venv
REQUIREMENTS=tools/requirements.txt
OPENVINO_VENV=.venv-openvino
OPENVINO_REQUIREMENTS=tools/requirements-openvino.txt

say() { printf '[setup] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root for: $*  (run as root or install sudo)" >&2
        exit 1
    fi
}

install_apt_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return
    fi
    say "installing apt packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        say "cargo not found. Install Rust $RUST_MIN or newer (e.g. with rustup:" >&2
        say "  rustup toolchain install $RUST_MIN && rustup default $RUST_MIN)" >&2
        say "and make sure ~/.cargo/bin is on PATH." >&2
        exit 1
    fi
    local version
    version=$(cargo --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$RUST_MIN" "$version" | sort -V | head -n1)" != "$RUST_MIN" ]; then
        say "cargo $version is too old; Rust $RUST_MIN or newer is required" >&2
        say "  (rustup update, or rustup toolchain install $RUST_MIN)" >&2
        exit 1
    fi
}

# Installs requirements file $2 into venv $1 unless its stamp says it is there.
install_requirements() {
    local venv=$1 requirements=$2 stamp=$1/.requirements.sha256 wanted
    wanted=$(sha256sum "$requirements" | awk '{print $1}')
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        say "installing Python packages from $requirements into $venv"
        "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
        echo "$wanted" >"$stamp"
    fi
}

setup_venv() {
    if [ ! -x "$VENV/bin/python" ] \
        || ! grep -qx 'include-system-site-packages = true' "$VENV/pyvenv.cfg"; then
        say "creating $VENV (with system site packages, for the Debian GStreamer bindings)"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
    fi
    install_requirements "$VENV" "$REQUIREMENTS"
}

setup_openvino_venv() {
    if [ ! -x "$OPENVINO_VENV/bin/python" ]; then
        say "creating $OPENVINO_VENV (ONNX Runtime's OpenVINO build)"
        /usr/bin/python3 -m venv "$OPENVINO_VENV"
    fi
    install_requirements "$OPENVINO_VENV" "$OPENVINO_REQUIREMENTS"
}

install_apt_packages
check_rust
setup_venv
setup_openvino_venv
say "building the plugin (cargo build --release)"
cargo build --release
