"""Timing shared by tools/bench.py and tools/bench_openvino.py, which run
under different Pythons (.venv and .venv-openvino): so numpy- and
torch-free, the standard library only."""

from __future__ import annotations

import time

CEILING_N = 2048  # the ceiling's MatMul is CEILING_N^3

# Before a timed MatMul, the previous session's pool threads must have stopped
# spinning: right after an encoder run the MatMul measured 1.2x slower (an AVX-512
# EPYC), 50 ms later as fast as back to back.
SPIN_SETTLE_S = 0.05


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def settled_best(fn) -> float:
    """A turn of the ceiling: once the previous session's pool threads have
    stopped spinning (SPIN_SETTLE_S), the faster of two runs of `fn`."""
    time.sleep(SPIN_SETTLE_S)
    return min(seconds(fn) for _ in range(2))


def gflops(seconds_per_run: float, n: int = CEILING_N) -> float:
    """Throughput of an n^3 MatMul taking `seconds_per_run`."""
    return 2 * n**3 / seconds_per_run / 1e9
