"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_op(fn: Callable[[], object], *, repeats: int = 7, batch_seconds: float = 0.2) -> float:
    """Median seconds per call over ``repeats`` batches sized to about ``batch_seconds`` each.

    The first call warms caches (lazy schema compilation and the like) and is not counted.
    """
    fn()
    started = time.perf_counter()
    fn()
    once = max(time.perf_counter() - started, 1e-6)
    batch = max(1, int(batch_seconds / once))
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - started) / batch)
    return statistics.median(samples)
