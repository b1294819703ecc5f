"""Live changes for the console: one poller of the ledger's journal, fanned out as SSE.

Every admission and every delivery change is a journal line, whichever instance wrote it
(several gateways may share one PostgreSQL ledger), so the console follows the journal
rather than this process's own events. One task reads it every ``interval`` seconds and
hands each new line to every open event stream; a browser then fetches the fragment it
shows. The reading window overlaps the previous one by ``overlap`` seconds and lines are
told apart by their id, so a line committed a moment after its timestamp is not missed.
While no event stream is open the journal is not read at all (at a few hundred alerts a
second, re-reading the overlapping window ten times a second cost more than the alerts
themselves); the first read once a stream opens covers the overlap window before it, so a
console also hears of the changes made while it was loading.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from gateway.ledger import JournalEntry, Ledger

log = structlog.get_logger(__name__)

__all__ = ["JournalFeed", "sse_event"]


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event (``data`` as one JSON line)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {body}\n\n".encode()


class JournalFeed:
    """New journal lines, to every subscriber (a bounded queue each: a slow browser loses
    lines, never memory, and is told to reload)."""

    def __init__(
        self,
        ledger: Callable[[], Ledger],
        now: Callable[[], datetime],
        *,
        interval: float = 0.1,
        overlap: timedelta = timedelta(seconds=2),
        queue_size: int = 256,
    ) -> None:
        self._ledger = ledger
        self._now = now
        self.interval = interval
        self.overlap = overlap
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[JournalEntry | None]] = set()
        self._seen: deque[int] = deque(maxlen=10_000)
        self._seen_set: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self.reads = 0  # journal reads done (set once each read is handed out)
        self.read = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="console-journal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[JournalEntry | None]]:
        queue: asyncio.Queue[JournalEntry | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def _fresh(self, lines: list[JournalEntry]) -> list[JournalEntry]:
        out = []
        for line in lines:
            if line.id in self._seen_set:
                continue
            if len(self._seen) == self._seen.maxlen:
                self._seen_set.discard(self._seen[0])
            self._seen.append(line.id)
            self._seen_set.add(line.id)
            out.append(line)
        return out

    def _publish(self, lines: list[JournalEntry]) -> None:
        for queue in list(self._subscribers):
            for line in lines:
                try:
                    queue.put_nowait(line)
                except asyncio.QueueFull:
                    # Too slow to follow: drop what waits and ask it to reload.
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)
                    break

    async def _run(self) -> None:
        since = self._now() - self.overlap
        while True:
            if not self._subscribers:  # nobody to tell: read nothing, keep the window recent
                since = max(since, self._now() - self.overlap)
                await asyncio.sleep(self.interval)
                continue
            end = self._now() + timedelta(seconds=1)  # lines stamped a little ahead, too
            try:
                lines = await asyncio.to_thread(
                    self._ledger().journal_between, since - self.overlap, end
                )
            except Exception as exc:  # noqa: BLE001 - a ledger hiccup must not end the feed
                log.warning("console_journal_read_failed", error=str(exc))
                lines = []
            fresh = self._fresh(lines)
            if fresh:
                self._publish(fresh)
                since = max(since, *(line.at for line in fresh))
            else:
                since = max(since, self._now() - self.overlap)
            self.reads += 1
            self.read.set()
            await asyncio.sleep(self.interval)
