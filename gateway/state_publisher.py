"""The retained MQTT state: ``{prefix}/status`` and one summary per active alert.

While the daemon runs, :class:`RetainedState` keeps ``{prefix}/active/{key}`` equal to the
alerts in force: an admitted alert's JSON summary is published (retained), and cleared when
the alert is cancelled, superseded or expires. After a (re)connection, or when updates came
faster than they could be published, it resynchronises from the ledger: it clears what went
out of force since the duplicate memory began, then publishes every active alert -- one stored
original at a time, so a restart never holds every multi-megabyte alert in memory at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog

from cap_schemas.errors import CapParseError
from cap_schemas.model import AlertKey, MsgType
from cap_schemas.parse import parse_alert
from gateway.adapter import Clock
from gateway.intake import Outcome
from gateway.ledger import Decision, Ledger, StoredAlert
from gateway.summary import summary, topic_key

log = structlog.get_logger(__name__)

__all__ = ["RetainedState"]

_PUBLISHED = (Decision.NEW, Decision.UPDATE, Decision.HELD)


class RetainedState:
    """The retained-state publisher of one daemon (a supervised component named ``name``)."""

    def __init__(
        self,
        name: str,
        *,
        factory: Callable[[str, Mapping[str, Any]], Any],
        ledger: Callable[[], Ledger],
        clock: Clock,
        stopping: asyncio.Event,
        running: Callable[[], bool],
        publish_active: bool,
        dedup_floor: timedelta,
    ) -> None:
        self.name = name
        self._factory = factory
        self._ledger = ledger
        self.clock = clock
        self._stopping = stopping
        self._running = running
        self._publish_active = publish_active
        self._dedup_floor = dedup_floor
        self._queue: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue(10_000)
        self._resync_due = False

    @property
    def ledger(self) -> Ledger:
        return self._ledger()

    def admitted(self, outcome: Outcome) -> None:
        """An admission: publish the alert's summary, clear what it withdrew."""
        admission, alert = outcome.admission, outcome.alert
        if admission is None or alert is None or not self._publish_active:
            return
        if admission.decision in _PUBLISHED and alert.msg_type is not MsgType.CANCEL:
            body = summary(alert, source=outcome.source, decision=admission.decision.value)
            self._offer(topic_key(admission.key), _json(body))
        for key in admission.superseded:
            self.gone(key)

    def gone(self, key: AlertKey) -> None:
        """An alert went out of force: clear its retained summary."""
        self._offer(topic_key(key), None)

    def _offer(self, key_level: str, payload: bytes | None) -> None:
        if not self._running():
            return  # the resync at (re)connection covers it
        try:
            self._queue.put_nowait((key_level, payload))
        except asyncio.QueueFull:
            self._resync_due = True

    async def run(self, options: Mapping[str, Any]) -> None:
        """Publish until the daemon stops (supervised: a lost connection raises)."""
        publisher = self._factory(self.name, options)
        async with publisher:
            if self._publish_active:
                await self._resync(publisher)
            closed = asyncio.ensure_future(publisher.wait_closed())
            # The stop is watched too, not only cancellation: a cancel that lands as a publish
            # completes can be lost inside the MQTT client's wait (Python 3.11 wait_for).
            stop = asyncio.ensure_future(self._stopping.wait())
            try:
                while not self._stopping.is_set():
                    if self._resync_due:
                        await self._resync(publisher)
                    getter = asyncio.ensure_future(self._queue.get())
                    done, _ = await asyncio.wait(
                        {getter, closed, stop}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        if closed in done:
                            closed.result()
                        return
                    key_level, payload = getter.result()
                    if self._publish_active:
                        await publisher.set_active(key_level, payload)
            finally:
                closed.cancel()
                stop.cancel()

    async def _resync(self, publisher: Any) -> None:
        self._resync_due = False
        while not self._queue.empty():
            self._queue.get_nowait()
        now = self.clock.now()
        floor = self._dedup_floor
        cursor = now - floor
        while True:
            gone = await asyncio.to_thread(self.ledger.deactivated_since, cursor, limit=500)
            for stored in gone:
                await publisher.set_active(topic_key(stored.key), None)
            if len(gone) < 500:
                break
            cursor = gone[-1].status_changed_at or now
        # One original at a time: NAAD alerts with embedded audio reach megabytes, and a
        # restart must not hold every active one in memory at once.
        active = await asyncio.to_thread(self.ledger.active, now)
        for listed in active:
            if self._stopping.is_set():
                return
            full = await asyncio.to_thread(self.ledger.get, listed.key)
            if full is not None:
                await publisher.set_active(topic_key(full.key), _stored_summary(full))
        log.info("mqtt_state_synced", active=len(active))


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _stored_summary(stored: StoredAlert) -> bytes:
    try:
        alert = parse_alert(stored.raw)
    except CapParseError:
        return _json(stored.summary())
    return _json(summary(alert, source=stored.source, decision=stored.decision.value))
