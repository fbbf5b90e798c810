#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes tiny_graph.onnx: y = x @ W + b with fixed weights, for tests/runtime.rs.

x: float32 [2, 3], W: [[1, 2], [3, 4], [5, 6]], b: [0.5, -1], y: float32 [2, 2].
Opset 17 and IR version 8 so that ONNX Runtime 1.20 and newer load it.
Run with the project's environment: .venv/bin/python tests/data/make_tiny_graph.py
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).with_name("tiny_graph.onnx")


def build() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32), "W")
    b = numpy_helper.from_array(np.array([0.5, -1.0], dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "tiny_affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        initializer=[w, b],
    )
    model = helper.make_model(
        graph,
        producer_name="gst-tinysam tests",
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    OUT.write_bytes(build().SerializeToString())
    print(f"wrote {OUT}")
