"""TinySAM in PyTorch, its ONNX export and the Python reference of the
element's pre- and post-processing (see docs/tools.md)."""
