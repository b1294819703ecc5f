"""Python's cyclic garbage collector in a running daemon: what was built to start is kept out
of its way, and its pauses are measured.

A full collection walks every object the collector tracks, and stops every task while it
does: with the configuration, routes, code tables and schemas of a started daemon that was
30 to 40 ms at a time under load, long enough to break a 50 ms latency target by itself.
:func:`settle` (called once the daemon has started) collects what start-up left behind and
freezes the rest (:func:`gc.freeze`): later collections walk only what was made since.
Each pause is observed in ``borderlink_gc_pause_seconds`` by generation.
"""

from __future__ import annotations

import gc
import time

from gateway.metrics import REGISTRY

__all__ = ["GC_FROZEN", "GC_PAUSE", "settle"]

GC_PAUSE = REGISTRY.histogram(
    "borderlink_gc_pause_seconds",
    "Pauses of the cyclic garbage collector (every task waits), by generation",
    ("generation",),
)
GC_FROZEN = REGISTRY.gauge(
    "borderlink_gc_frozen_objects",
    "Objects built to start the daemon, kept out of the garbage collector's walks",
)


class _Pauses:
    """A :data:`gc.callbacks` entry timing each collection."""

    def __init__(self) -> None:
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        GC_PAUSE.observe(pause, generation=str(info["generation"]))


def settle() -> None:
    """Collect once, freeze what is left (it lives as long as the process) and time every
    later collection."""
    gc.collect()
    gc.freeze()
    GC_FROZEN.set(gc.get_freeze_count())
    if not any(isinstance(callback, _Pauses) for callback in gc.callbacks):
        gc.callbacks.append(_Pauses())
