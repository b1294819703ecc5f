"""Delivery: one worker per sink takes due outbox entries and reports every outcome.

A worker claims due entries of its sink in priority order (Broadcast-Immediately first; the
claim counts the attempt and leases the entry), sends them (several in flight when the sink
allows it), and records each outcome in one ledger transaction per batch: delivered, a retry
with capped, jittered backoff, or a final failure with a reason; the next batch is claimed
in the same call of the ledger. An entry stays pending until its sink confirmed it. A link
failure (not a refusal of one delivery) is raised after the batch is recorded (nothing more
claimed), so the supervisor reopens the sink. Workers wake when an admission or an
operator's approval makes an entry due, and look at least every half second.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from gateway.adapter import BatchSends, Clock, ClosingWatch, ConcurrentSends, SinkAdapter
from gateway.backoff import Backoff
from gateway.config import SinkConfig
from gateway.errors import AdapterError, DeliveryError
from gateway.ledger import EntryStateError, Ledger, LedgerError, OutboxEntry, on_ledger
from gateway.metrics import REGISTRY

log = structlog.get_logger(__name__)

__all__ = ["DELIVERIES", "DELIVERY_LATENCY", "SinkWorkers"]

DELIVERIES = REGISTRY.counter(
    "borderlink_deliveries_total",
    "Delivery attempts, by sink and outcome (delivered, retry, failed)",
    ("sink", "outcome"),
)
DELIVERY_LATENCY = REGISTRY.histogram(
    "borderlink_delivery_latency_seconds",
    "Time from receipt of an alert to its confirmed delivery, by sink",
    ("sink",),
)
_LEASE_MARGIN = 30.0  # seconds a claimed entry stays taken beyond its sink's send_timeout
#: Seconds after a recorded outcome within which the ledger makes it durable, unless an
#: admission's synced commit did first (see :meth:`~gateway.ledger.LedgerBase.sync`).
OUTCOME_SYNC_DELAY = 0.1


class SinkWorkers:
    """The delivery stage: what every sink worker shares (ledger, clock, wake-ups)."""

    _poll = 0.5

    def __init__(
        self,
        *,
        ledger: Callable[[], Ledger],
        clock: Clock,
        rng: random.Random,
        stopping: asyncio.Event,
        sinks: Sequence[str],
        instance: str = "",
    ) -> None:
        self._ledger = ledger
        self._instance = instance
        self.clock = clock
        self._rng = rng
        self._stopping = stopping
        self._wake: dict[str, asyncio.Event] = {name: asyncio.Event() for name in sinks}
        self._sync_wanted = False
        self._syncer: asyncio.Task[None] | None = None

    @property
    def ledger(self) -> Ledger:
        return self._ledger()

    def wake_event(self, sink: str) -> asyncio.Event:
        return self._wake.setdefault(sink, asyncio.Event())

    def wake(self, sink: str | None = None) -> None:
        """Tell one sink's worker (or every worker) that an entry may be due."""
        events = self._wake.values() if sink is None else [self._wake.get(sink)]
        for event in events:
            if event is not None:
                event.set()

    def _retry_at(self, sink: SinkConfig, attempts: int) -> datetime:
        policy = Backoff(sink.retry_initial, sink.retry_max, jitter=0.25, rng=self._rng)
        delay = policy.delay(attempts)
        return self.clock.now() + timedelta(seconds=delay)

    async def _attempt(
        self, cfg: SinkConfig, adapter: SinkAdapter, entry: OutboxEntry
    ) -> BaseException | None:
        """Send one entry; the error, or None once the sink confirmed it."""
        try:
            await asyncio.wait_for(adapter.send(entry.to_outbound()), timeout=cfg.send_timeout)
        except TimeoutError:
            return AdapterError(f"sink {cfg.name}: send timed out after {cfg.send_timeout} s")
        except (AdapterError, DeliveryError) as exc:
            return exc
        return None

    def _record(
        self, cfg: SinkConfig, results: Sequence[tuple[OutboxEntry, BaseException | None]]
    ) -> None:
        """Write the outcome of a batch of attempts to the ledger (one transaction)."""
        ledger = self.ledger
        delivered = [entry for entry, error in results if error is None]
        if delivered:
            now = self.clock.now()
            _done, refused = ledger.mark_delivered_many(
                [e.id for e in delivered], now, claims=_claims(delivered)
            )
            for problem in refused:
                log.error("delivery_record_refused", sink=cfg.name, error=str(problem))
            for entry in delivered:
                DELIVERIES.inc(sink=cfg.name, outcome="delivered")
                DELIVERY_LATENCY.observe(
                    max(0.0, (now - entry.enqueued_at).total_seconds()), sink=cfg.name
                )
                log.info(
                    "alert_delivered",
                    alert=str(entry.key),
                    sink=cfg.name,
                    entry=entry.id,
                    route=entry.route,
                    priority=entry.priority,
                )
        for entry, error in results:
            now = self.clock.now()
            if error is None:
                continue
            if isinstance(error, DeliveryError):
                attempts = max(1, entry.attempts)  # claim() counted this attempt
                final = not error.retryable or (cfg.max_attempts and attempts >= cfg.max_attempts)
                retry_at = None if final else self._retry_at(cfg, attempts)
                if not _record_failure(ledger, entry, str(error), retry_at, now):
                    continue
                DELIVERIES.inc(sink=cfg.name, outcome="failed" if final else "retry")
                log.warning(
                    "delivery_failed",
                    alert=str(entry.key),
                    sink=cfg.name,
                    entry=entry.id,
                    error=str(error),
                    retry_at=None if retry_at is None else retry_at.isoformat(),
                )
            # The link is down: retry as soon as it is back, in priority order.
            elif _record_failure(ledger, entry, str(error), now, now):
                DELIVERIES.inc(sink=cfg.name, outcome="retry")

    async def _deliver(
        self, cfg: SinkConfig, adapter: SinkAdapter, entries: Sequence[OutboxEntry], limit: int
    ) -> list[OutboxEntry]:
        """Send a batch in priority order (in flight together when the sink allows it),
        record every outcome and claim the next batch in the same call (none
        after a link failure), then raise the first link failure so the link restarts."""
        errors: Sequence[BaseException | None]
        if isinstance(adapter, BatchSends) and len(entries) > 1:
            errors = await adapter.send_batch(
                [e.to_outbound() for e in entries], timeout=cfg.send_timeout
            )
        else:
            errors = await asyncio.gather(*(self._attempt(cfg, adapter, e) for e in entries))
        results = list(zip(entries, errors, strict=True))
        failure = next(
            (e for e in errors if e is not None and not isinstance(e, DeliveryError)), None
        )
        following = await on_ledger(
            self.ledger, self._record_then_claim, cfg, results, 0 if failure is not None else limit
        )
        self._sync_soon()
        if failure is not None:
            raise failure
        return following

    def _sync_soon(self) -> None:
        """Have the outcomes just recorded made durable within :data:`OUTCOME_SYNC_DELAY`
        (one sync for all the sinks' outcomes of that time)."""
        self._sync_wanted = True
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.get_running_loop().create_task(
                self._sync_later(), name="outcome-sync"
            )

    async def _sync_later(self) -> None:
        while self._sync_wanted:
            await asyncio.sleep(OUTCOME_SYNC_DELAY)
            self._sync_wanted = False  # an outcome recorded from here on asks again
            try:
                await asyncio.to_thread(self.ledger.sync)
            except LedgerError as exc:
                log.exception("ledger_sync_failed", error=str(exc))

    def _claim(self, cfg: SinkConfig, limit: int) -> list[OutboxEntry]:
        """Lease the sink's next due entries, most urgent first (see
        :func:`~gateway.ledger.on_ledger`)."""
        return self.ledger.claim(
            cfg.name,
            self.clock.now(),
            limit=limit,
            lease=timedelta(seconds=cfg.send_timeout + _LEASE_MARGIN),
            by=self._instance,
        )

    def _record_then_claim(
        self,
        cfg: SinkConfig,
        results: Sequence[tuple[OutboxEntry, BaseException | None]],
        limit: int,
    ) -> list[OutboxEntry]:
        """:meth:`_record`, then (``limit`` > 0) :meth:`_claim`, in one call made through
        :func:`~gateway.ledger.on_ledger` (a worker thread, or this one where the ledger
        allows it)."""
        self._record(cfg, results)
        return self._claim(cfg, limit) if limit else []

    async def run(self, cfg: SinkConfig, adapter: SinkAdapter) -> None:
        """Deliver the sink's due entries until the daemon stops (supervised: a link that
        fails raises, and the supervisor reopens it)."""
        wake = self.wake_event(cfg.name)
        concurrent = isinstance(adapter, ConcurrentSends) and adapter.concurrent_sends
        limit = cfg.batch if concurrent else 1
        async with adapter:
            # A sink that can tell when its link drops is restarted at once, not at its
            # next delivery attempt.
            watched: object = adapter
            closed = (
                asyncio.ensure_future(watched.wait_closed())
                if isinstance(watched, ClosingWatch)
                else None
            )
            try:
                await self._sink_loop(cfg, adapter, wake, limit, closed)
            finally:
                if closed is not None:
                    closed.cancel()
                    with contextlib.suppress(asyncio.CancelledError, AdapterError):
                        await closed

    async def _sink_loop(
        self,
        cfg: SinkConfig,
        adapter: SinkAdapter,
        wake: asyncio.Event,
        limit: int,
        closed: asyncio.Future[None] | None,
    ) -> None:
        entries: list[OutboxEntry] = []  # claimed with the last outcomes, not sent yet
        fresh = False  # ``entries`` came from a claim begun after the last wake-up
        while True:
            if not entries:
                if closed is not None and closed.done():
                    closed.result()
                if not (fresh and not wake.is_set()):
                    # Cleared before each claim: a wake-up after it is never lost (the next
                    # claim sees what woke it).
                    wake.clear()
                    entries = await on_ledger(self.ledger, self._claim, cfg, limit)
            fresh = False
            # Entries in hand are sent even when the link just closed: each fails at once
            # and is recorded due again (never left claimed until its lease runs out).
            if not entries:
                if self._stopping.is_set():
                    return
                waiter = asyncio.ensure_future(wake.wait())
                watched: set[asyncio.Future[Any]] = {waiter}
                if closed is not None:
                    watched.add(closed)
                await asyncio.wait(watched, timeout=self._poll, return_when="FIRST_COMPLETED")
                waiter.cancel()
                continue
            # The claim made with these outcomes sees every entry made due before this
            # point; only a wake-up after it calls for another claim (an empty one costs a
            # call of the ledger and a write transaction).
            wake.clear()
            entries = await self._deliver(cfg, adapter, entries, limit)
            fresh = True

def _claims(entries: Sequence[OutboxEntry]) -> dict[int, datetime]:
    """Each claimed entry's ``started_at``: the fence its outcome is recorded under."""
    return {e.id: e.started_at for e in entries if e.started_at is not None}


def _record_failure(
    ledger: Ledger, entry: OutboxEntry, reason: str, retry_at: datetime | None, at: datetime
) -> bool:
    """Record a failed attempt under its claim; False when the claim had already been
    settled in doubt (the late outcome is journalled by the ledger and changes nothing)."""
    try:
        ledger.mark_failed(entry.id, reason, retry_at=retry_at, at=at, claimed_at=entry.started_at)
    except EntryStateError as exc:
        log.warning("delivery_outcome_late", sink=entry.sink, entry=entry.id, error=str(exc))
        return False
    return True
