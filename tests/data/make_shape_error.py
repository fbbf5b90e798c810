#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes shape_error.onnx, for tests/unwind.rs: a graph ONNX Runtime refuses.

image: float32 [1, 3, 8, 3] @ W: [4, 2]. The inner dimensions differ, so ONNX
shape inference throws a C++ exception inside ONNX Runtime while a session is
created, which ONNX Runtime catches and returns as an error. Opset 17, IR
version 8. Not checked with onnx.checker on purpose (it would refuse it too).
Run with the project's environment: .venv/bin/python tests/data/make_shape_error.py
"""

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).with_name("shape_error.onnx")


def build():
    w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", "W"], ["image_embeddings"])],
        "shape_error",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 3])],
        [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, None)],
        initializer=[w],
    )
    model = helper.make_model(
        graph,
        producer_name="gst-tinysam tests",
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    return model


if __name__ == "__main__":
    OUT.write_bytes(build().SerializeToString())
    print(f"wrote {OUT}")
