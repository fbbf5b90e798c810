"""tools/bench.py keeps a copy of one of the element's limits; it must match."""

import os
import re

import bench


def test_core_call_token_bound_matches_the_rust_constant():
    with open(os.path.join(bench.REPO, "src", "segment", "limits.rs")) as f:
        found = re.search(r"MAX_DECODER_CALL_TOKEN_BYTES: usize = (\d+) << (\d+);", f.read())
    assert found, "MAX_DECODER_CALL_TOKEN_BYTES not found in src/segment/limits.rs"
    assert bench.CORE_CALL_TOKEN_BYTES == int(found[1]) << int(found[2])

