"""Shared fixtures of the tools tests. Run from the repository root:

    .venv/bin/python -m pytest tools/tests -q
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

# A deliberately tiny network: same architecture, every stage present, and an
# input size (192) whose stage resolutions (24, 12, 12) are not multiples of
# the attention windows (7, 14, 7), so the window padding is exercised.
TINY_CONFIG = {
    "image_size": 192, "embed_dims": [16, 32, 48, 64], "depths": [1, 1, 1, 1], "num_heads": [1, 2, 3, 4],
    "window_sizes": [7, 7, 14, 7], "num_classes": 0, "prompt_embed_dim": 64, "decoder_heads": 4,
    "decoder_mlp_dim": 128, "iou_head_hidden_dim": 64,
}


def pytest_configure(config):
    config.addinivalue_line("markers", "fullsize: exports the full-size (1024, 10 M parameter) network")


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_config_path):
    """A random-init tiny network exported (and verified) by tools/export.py."""
    import export

    out = str(tmp_path_factory.mktemp("models") / "tiny")
    rc = export.main(["--random-init", "--config", tiny_config_path, "--name", "tiny", "--seed", "3",
                      "--out", out])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    """A few synthetic frames for calibration and INT8 checks."""
    from PIL import Image

    from tinysam.scenes import make_scene

    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(77)
    for i, (w, h) in enumerate([(320, 240), (240, 320), (300, 300), (400, 225)]):
        Image.fromarray(make_scene(rng, w, h).image).save(d / f"frame{i}.png")
    return str(d)
