"""Small timing helper shared by the benchmarks."""

from __future__ import annotations

import time

import torch


def best_time(fn, repeat: int = 5, min_time: float = 0.2, sync: bool = False) -> float:
    """Best wall time in seconds of ``fn()`` over ``repeat`` rounds (after one warm-up call).

    Each round runs ``fn`` enough times to last ``min_time`` and reports the mean of that round;
    ``sync`` waits for CUDA kernels so GPU timings are honest.
    """
    def run():
        fn()
        if sync:
            torch.cuda.synchronize()

    run()
    best = float("inf")
    for _ in range(repeat):
        count, start = 0, time.perf_counter()
        while True:
            run()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / count)
    return best
