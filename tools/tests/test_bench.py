"""tools/bench.py keeps a copy of one of the element's limits, and
tools/bench_openvino.py one of bench.py's settings; they must match."""

import os
import re

import bench
import bench_openvino


def test_core_call_token_bound_matches_the_rust_constant():
    with open(os.path.join(bench.REPO, "src", "segment", "limits.rs")) as f:
        found = re.search(r"MAX_DECODER_CALL_TOKEN_BYTES: usize = (\d+) << (\d+);", f.read())
    assert found, "MAX_DECODER_CALL_TOKEN_BYTES not found in src/segment/limits.rs"
    assert bench.CORE_CALL_TOKEN_BYTES == int(found[1]) << int(found[2])


def test_openvino_bench_times_its_ceiling_as_bench_does():
    assert bench_openvino.SPIN_SETTLE_S == bench.SPIN_SETTLE_S
