"""Housekeeping: expiry, pruning and the queue gauges, every ``housekeeping_interval``.

Each round reports this instance alive on the ledger (with what it leads), settles the
attempts whose outcome will never come (their lease ran out, or their instance went silent:
in doubt, each sink's policy applies), expires the outbox entries whose alert's ``expires``
passed, marks the alerts that
went out of force (and has their retained summaries cleared), prunes what the duplicate
memory, the journal and the console's login lockout no longer need (every
``[ledger] prune_interval``), and sets the
``borderlink_queue_depth`` gauge per sink.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog

from cap_schemas.model import AlertKey
from gateway.adapter import Clock
from gateway.ledger import Ledger
from gateway.metrics import REGISTRY

log = structlog.get_logger(__name__)

__all__ = ["QUEUE_DEPTH", "housekeeping"]

QUEUE_DEPTH = REGISTRY.gauge("borderlink_queue_depth", "Pending outbox entries, by sink", ("sink",))


async def housekeeping(
    ledger: Ledger,
    *,
    clock: Clock,
    interval: float,
    prune_interval: float,
    sinks: Sequence[str],
    stopping: asyncio.Event,
    gone: Callable[[AlertKey], None],
    wake: Callable[[], None] = lambda: None,
    beat: Callable[[], None] | None = None,
    settle: Callable[[], int] | None = None,
) -> None:
    """Run rounds until ``stopping`` is set; ``gone`` is told of every alert that expired,
    ``wake`` when attempts in doubt were settled (one may be due again);
    ``beat`` (in a worker thread) tells the ledger this instance is alive; ``settle`` (in a
    worker thread) settles the attempts in doubt and returns how many."""
    last_prune = 0.0
    while not stopping.is_set():
        now = clock.now()
        if beat is not None:
            await asyncio.to_thread(beat)
        settled = 0 if settle is None else await asyncio.to_thread(settle)
        if settled:
            wake()
        expired = await asyncio.to_thread(ledger.expire_due, now)
        if expired:
            log.info("deliveries_expired", count=len(expired))
        for stored in await asyncio.to_thread(ledger.expire_alerts, now):
            gone(stored.key)
        mono = clock.monotonic()
        if mono - last_prune >= prune_interval:
            last_prune = mono
            await asyncio.to_thread(ledger.prune, now)
        for name in sinks:
            QUEUE_DEPTH.set(await asyncio.to_thread(ledger.pending_count, name), sink=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
