"""What the national feed sources (NAAD, IPAWS-OPEN, NWS) have in common.

The three sources differ in how alerts reach them — NAAD pushes CAP over long-lived TCP
streams, IPAWS-OPEN and NWS are polled over HTTP (see :mod:`adapters.feeds.polling`) — but they are
built the same way, and this module holds that once:

* **Options.** A ``[[source]]`` table carries the adapter's own keys plus the keys the daemon
  reads from the same table (:data:`PASSTHROUGH_OPTIONS`, allowed by every feed's
  :meth:`~gateway.options.OptionReader.finish`); the values are read with the gateway's one
  :class:`~gateway.options.OptionReader`.
* **HTTP.** :func:`fetch` is one GET with a size cap, for the pollers and for the NAAD archive.
  Feeds are untrusted input: the body is read in chunks and refused (:class:`FeedError`,
  ``reason="oversize"``) as soon as it passes the cap, a ``Content-Length`` over the cap is
  refused before reading, and redirects are not followed (a feed that moves is a configuration
  change, not something to follow blindly).
* **The source itself.** :class:`FeedSource` is the async context manager the gateway runs: a
  bounded queue that :meth:`FeedSource.messages` drains, background tasks that exit cancels,
  one HTTP session, the ledger's ``seen`` question, and :class:`RecentKeys`, the bounded memory
  of alert keys a source handled lately (so a repeat is not handed on, or fetched, twice).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar

import aiohttp
import structlog
from multidict import CIMultiDict

from cap_schemas.model import AlertKey
from gateway import __version__
from gateway.adapter import Clock, Received, SourceHealth, SystemClock
from gateway.errors import (
    AdapterConnectionError,
    AdapterTimeoutError,
    FrameError,
)

log = structlog.get_logger(__name__)

#: Options the daemon reads from a source's table (signature policy, routing): accepted by
#: every feed source without being its own.
PASSTHROUGH_OPTIONS = frozenset(
    {"trust_anchors", "require_signature", "signature_policy", "required", "policy", "enabled"}
)

DEFAULT_USER_AGENT = f"borderlink/{__version__}"

#: Asks the ledger whether an alert is already admitted.
SeenCheck = Callable[[AlertKey], Awaitable[bool]]


# -- options ----------------------------------------------------------------------------------


# -- HTTP -------------------------------------------------------------------------------------


class FeedError(FrameError):
    """A feed response could not be used; ``reason`` labels the rejection metric."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """Status, headers (case-insensitive) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_bytes: int,
    time_limit: float,
    skip_error_body: bool = False,
) -> HttpResult:
    """GET ``url``; raise :class:`FeedError` (oversize) or an adapter connection/timeout error.

    With ``skip_error_body`` an answer other than 200 comes back at once with an empty body:
    nothing of it is read, so no cap applies to it.
    """
    try:
        async with session.get(
            url,
            headers=dict(headers or {}),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=time_limit),
        ) as response:
            if skip_error_body and response.status != 200:
                return HttpResult(response.status, CIMultiDict(response.headers), b"")
            length = response.content_length
            if length is not None and length > max_bytes:
                msg = f"{url}: response of {length} bytes exceeds the cap of {max_bytes}"
                raise FeedError(msg, reason="oversize")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    msg = f"{url}: response exceeds the cap of {max_bytes} bytes"
                    raise FeedError(msg, reason="oversize")
                chunks.append(chunk)
            return HttpResult(response.status, CIMultiDict(response.headers), b"".join(chunks))
    except TimeoutError as exc:
        msg = f"{url}: no complete answer within {time_limit:g} s"
        raise AdapterTimeoutError(msg) from exc
    except (aiohttp.ClientError, OSError) as exc:
        msg = f"{url}: {exc!r}"
        raise AdapterConnectionError(msg) from exc


# -- the source -------------------------------------------------------------------------------


class RecentKeys:
    """Alert keys (or other marks) a source handled lately, each with the (monotonic) time it
    was noted.

    Two questions: ``key in keys`` (noted and not yet forgotten) and :meth:`fresh` (noted less
    than ``ttl`` seconds ago). Memory stays bounded: :meth:`prune`, once more than ``limit`` keys
    are held, forgets those older than ``ttl``.

    A key handed on to the gateway is only **pending** (:meth:`hold`) until the gateway
    acknowledges it, that is until its admission is durable: it counts as handled meanwhile (a
    repeat is not handed on twice), and the acknowledgement notes it. A source that stops
    before then forgets what is pending (:meth:`drop_pending`), so the next poll, heartbeat or
    archive fetch hands it on again: a run that ended on a ledger failure, a lost leadership
    or a stop must not leave an alert marked handled that no ledger holds.
    """

    def __init__(self, clock: Clock, *, ttl: float, limit: int) -> None:
        self._clock = clock
        self.ttl = ttl
        self.limit = limit
        self._at: dict[Hashable, float] = {}
        self._pending: set[Hashable] = set()

    def add(self, key: Hashable) -> None:
        """Note ``key`` as handled for good (acknowledged, or found in the ledger)."""
        self._at[key] = self._clock.monotonic()

    def hold(self, key: Hashable) -> Callable[[], Awaitable[None]]:
        """Note ``key`` as pending; the returned acknowledgement notes it for good."""
        self._pending.add(key)

        async def acknowledged() -> None:
            self._pending.discard(key)
            self.add(key)

        return acknowledged

    def has_pending(self) -> bool:
        """Whether any key handed on waits for its acknowledgement."""
        return bool(self._pending)

    def drop_pending(self) -> None:
        """Forget every pending key: nothing will acknowledge them any more."""
        self._pending.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._at or key in self._pending

    def __len__(self) -> int:
        return len(self._at) + len(self._pending - self._at.keys())

    def done(self, key: Hashable) -> bool:
        """Noted for good: acknowledged (not merely pending) and not yet forgotten."""
        return key in self._at

    def fresh(self, key: Hashable) -> bool:
        if key in self._pending:
            return True
        at = self._at.get(key)
        return at is not None and self._clock.monotonic() - at < self.ttl

    def prune(self) -> None:
        if len(self._at) > self.limit:
            cutoff = self._clock.monotonic() - self.ttl
            self._at = {k: t for k, t in self._at.items() if t > cutoff}


def both(
    first: Callable[[], Awaitable[None]] | None, second: Callable[[], Awaitable[None]] | None
) -> Callable[[], Awaitable[None]] | None:
    """One acknowledgement that runs ``first`` then ``second`` (either may be None)."""
    if first is None or second is None:
        return first or second

    async def ack() -> None:
        await first()
        await second()

    return ack


class FeedSource(ABC):
    """The frame of a feed source adapter (NAAD, IPAWS-OPEN, NWS).

    A subclass starts its work in ``__aenter__`` with :meth:`_spawn` (and may open
    :attr:`_session`), hands documents on with :meth:`_emit`, and reports :meth:`health` per
    stream or feed. Exit cancels every task and closes the session; a source may be entered
    again once it has exited.
    """

    #: Names the source kind in log events, metric labels and task names.
    component: ClassVar[str]

    def __init__(
        self,
        name: str,
        *,
        clock: Clock | None = None,
        seen: SeenCheck | None = None,
        queue_size: int,
    ) -> None:
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self._seen = seen
        # Bounded: a slow gateway holds the source back rather than letting alerts pile up.
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=queue_size)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._memories: list[RecentKeys] = []

    def _memory(self, *, ttl: float, limit: int) -> RecentKeys:
        """A :class:`RecentKeys` whose pending keys are forgotten when the source stops."""
        memory = RecentKeys(self.clock, ttl=ttl, limit=limit)
        self._memories.append(memory)
        return memory

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def messages(self) -> AsyncIterator[Received]:
        """The documents this source received, in the order it received them."""
        while True:
            yield await self._queue.get()

    @abstractmethod
    def health(self) -> list[SourceHealth]:
        """One entry per stream or feed."""

    def healthy(self) -> bool:
        """Red only when every stream or feed of the source is."""
        return any(h.healthy for h in self.health())

    async def _is_seen(self, key: AlertKey) -> bool:
        """Whether the ledger already admitted ``key`` (never, without a ledger)."""
        return self._seen is not None and await self._seen(key)

    async def _emit(
        self, raw: bytes, channel: str, ack: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Hand one document on (waits while the queue is full)."""
        await self._queue.put(
            Received(
                raw=raw, source=self.name, received_at=self.clock.now(), channel=channel, ack=ack
            )
        )

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                f"{self.component}_task_failed",  # noqa: G004 - a structlog event name: naad_task_failed...
                source=self.name,
                task=task.get_name(),
                error=repr(task.exception()),
            )

    async def _stop(self) -> None:
        """Cancel every task, wait for them, close the session, forget what no acknowledgement
        will now confirm (see :class:`RecentKeys`)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for memory in self._memories:
            memory.drop_pending()
        if self._session is not None:
            await self._session.close()
            self._session = None
