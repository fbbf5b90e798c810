# SPDX-License-Identifier: Apache-2.0
# Quick start (Debian 12, root or sudo):
#   make demo   set up, build, run the tinysam pipeline, write out/demo-*.png
#   make test   set up, build, run the whole test suite (what CI runs)

# rustup installs cargo here; a fresh login shell may not have it on PATH yet.
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all setup build demo docs-images test test-rust test-python clean

all: build

setup:
	scripts/setup.sh

# setup ends with `cargo build --release`.
build: setup

demo: setup
	scripts/demo.sh

# The pictures in docs/ come from the demo: run after the output changes.
docs-images: demo
	cp out/demo-overlay-modes.png docs/images/overlay-modes.png
	cp out/demo-tracking-strip.png docs/images/tracking-strip.png

test: setup
	$(MAKE) --no-print-directory test-rust test-python

test-rust:
	cargo test --release

# tools/tests: the model tooling; tests/python: the element through GI (needs
# the release build that setup makes). Two processes: after numpy and
# Gst.init, a C++ exception in an extension imported later (onnx's, under
# torch.onnx) aborts the process (docs/building.md, "C++ exceptions").
test-python:
	.venv/bin/python -m pytest tools/tests -q
	.venv/bin/python -m pytest tests/python -q

clean:
	cargo clean
	rm -rf out builddir
