"""IPAWS-OPEN source: polls the public feeds no more often than every 120 seconds.

Configuration (``[[source]] type = "ipaws"``)::

    base_url = "https://apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest"   # staging: tdl.apps.fema.gov
    feeds = ["public"]            # any of eas, nwem, PublicWEA, public, public_non_eas
    interval = 120                # s between polls; 120 is a floor that cannot be lowered
    state_dir = "var"             # where ipaws-<source>.json keeps the last timestamp
                                  # (default: the [gateway] data_dir)

Each poll asks every feed for ``recent/<since>``, where ``since`` is the start of the previous
successful poll minus ``overlap`` seconds (so an alert posted while a poll was in flight is not
missed; the repeats are dropped here when the ledger has seen them, and by the ledger
otherwise). Polls are spaced from start to start, never closer than the floor: after an error
the next poll waits ``interval * 2^failures`` (capped at ``backoff_max``), never less than the
floor. The timestamp is written to the state file (atomically) once every alert of that poll
has been acknowledged by the gateway — after admission is committed — so a restart resumes
without a gap.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

import structlog

from adapters.feeds.base import (
    DEFAULT_USER_AGENT,
    PASSTHROUGH_OPTIONS,
    FeedError,
    SeenCheck,
    both,
)
from adapters.feeds.polling import (
    PollFailed,
    PollingSource,
    PollState,
    interval_option,
    retry_after_seconds,
)
from adapters.feeds.state import load_state, save_state
from adapters.ipaws.codec import (
    DEFAULT_BASE_URL,
    FEEDS,
    extract_alerts,
    recent_url,
)
from cap_schemas.model import AlertKey
from cap_schemas.stream import peek_key
from gateway.adapter import AdapterContext, Clock
from gateway.options import adapter_options

log = structlog.get_logger(__name__)

#: FEMA IPAWS PMO guidance: poll no more often than every two minutes.
MIN_INTERVAL = 120.0


def default_state_dir() -> str:
    return os.environ.get("BORDERLINK_DATA_DIR", "var")


@dataclass(frozen=True, slots=True)
class IpawsOptions:
    base_url: str = DEFAULT_BASE_URL
    feeds: tuple[str, ...] = ("public",)
    interval: float = MIN_INTERVAL
    overlap: float = 120.0
    initial_lookback: float = 3600.0
    backoff_max: float = 1800.0
    timeout: float = 30.0
    max_response_bytes: int = 32 * 1024 * 1024
    state_dir: str = field(default_factory=default_state_dir)
    user_agent: str = DEFAULT_USER_AGENT


    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, source: str = "ipaws") -> IpawsOptions:
        r = adapter_options("source", source, options)
        feeds = r.strings("feeds", choices=FEEDS) if r.has("feeds") else ("public",)
        if not feeds:
            r.fail("must be a non-empty list", "feeds")
        interval = interval_option(
            r,
            MIN_INTERVAL,
            floor=MIN_INTERVAL,
            why="FEMA: poll IPAWS-OPEN no more often than every 2 minutes",
        )
        options_read = cls(
            base_url=r.url("base_url", DEFAULT_BASE_URL),
            feeds=feeds,
            interval=interval,
            overlap=r.number("overlap", 120.0, minimum=0),
            initial_lookback=r.number("initial_lookback", 3600.0, minimum=0),
            backoff_max=max(interval, r.number("backoff_max", 1800.0, minimum=0)),
            timeout=r.number("timeout", 30.0, minimum=0.01),
            max_response_bytes=r.integer("max_response_bytes", 32 * 1024 * 1024, minimum=1024),
            state_dir=r.string("state_dir", default_state_dir()),
            user_agent=r.string("user_agent", DEFAULT_USER_AGENT),
        )
        r.finish(allowed_extra=PASSTHROUGH_OPTIONS)
        return options_read


@dataclass
class _Batch:
    """The alerts of one poll of one feed; its timestamp is saved once all are acknowledged."""

    feed: str
    since: datetime
    pending: int


class IpawsSource(PollingSource[PollState]):
    """The IPAWS-OPEN source adapter (see the module docstring)."""

    component = "ipaws"

    def __init__(
        self,
        name: str,
        options: IpawsOptions,
        *,
        clock: Clock | None = None,
        seen: SeenCheck | None = None,
    ) -> None:
        interval = options.interval
        super().__init__(
            name,
            clock=clock,
            seen=seen,
            states={f: PollState() for f in options.feeds},
            interval=interval,
            backoff_max=options.backoff_max,
            stale_after=timedelta(seconds=max(interval * 3, interval + 60)),
        )
        self.options = options
        self.state_path = Path(options.state_dir) / f"ipaws-{name}.json"
        self._since: dict[str, datetime] = {}
        self._durable: dict[str, datetime] = {}
        self._batches: dict[str, deque[_Batch]] = {f: deque() for f in options.feeds}
        self._recent = self._memory(ttl=86400, limit=20000)

    def door_trust(self) -> str:
        """Authenticated over HTTPS (the server's certificate is verified), else anonymous."""
        return "authenticated" if self.options.base_url.startswith("https://") else "anonymous"

    async def __aenter__(self) -> Self:
        try:
            self._durable = load_state(self.state_path)
        except (ValueError, OSError) as exc:
            log.exception(
                "ipaws_state_unreadable",
                source=self.name,
                path=str(self.state_path),
                error=str(exc),
            )
            self._durable = {}
        # Entered again after a stop: polls whose alerts were never acknowledged are polled
        # again from the durable timestamp, so their bookkeeping starts afresh.
        self._batches = {f: deque() for f in self.options.feeds}
        start = self.clock.now() - timedelta(seconds=self.options.initial_lookback)
        for feed in self.options.feeds:
            self._since[feed] = self._durable.get(feed, start)
        self._start_polling({"User-Agent": self.options.user_agent, "Accept": "application/xml"})
        log.info(
            "ipaws_source_started",
            source=self.name,
            feeds=list(self.options.feeds),
            interval=self.options.interval,
            state=str(self.state_path),
        )
        return self

    # -- one poll -----------------------------------------------------------------------------

    async def _poll(self, feed: str) -> None:
        started = self.clock.now()
        url = recent_url(self.options.base_url, feed, self._since[feed])
        result = await self._get(
            url, max_bytes=self.options.max_response_bytes, time_limit=self.options.timeout
        )
        if result.status != 200:
            retry = retry_after_seconds(result.headers.get("Retry-After"))
            raise PollFailed(f"{url}: HTTP {result.status}", retry_after=retry)
        try:
            documents = extract_alerts(result.body, max_bytes=self.options.max_response_bytes)
        except FeedError as exc:
            raise self._rejected(exc) from None
        self._succeeded(feed, started)
        fresh: list[tuple[bytes, AlertKey | None]] = []
        for raw in documents:
            key = peek_key(raw)
            if key is not None and (self._recent.fresh(key) or await self._is_seen(key)):
                continue
            fresh.append((raw, key))
        since = max(self._since[feed], started - timedelta(seconds=self.options.overlap))
        self._since[feed] = since
        batch = _Batch(feed, since, len(fresh))
        self._batches[feed].append(batch)
        log.info(
            "ipaws_polled",
            source=self.name,
            feed=feed,
            alerts=len(documents),
            new=len(fresh),
            since=since.isoformat(),
        )
        for raw, key in fresh:
            held = self._recent.hold(key) if key is not None else None
            await self._emit(raw, feed, ack=both(self._acker(batch), held))
        if not fresh:
            self._settle(feed)
        self._recent.prune()

    def _acker(self, batch: _Batch) -> Callable[[], Awaitable[None]]:
        done = False

        async def ack() -> None:
            nonlocal done
            if done:
                return
            done = True
            batch.pending -= 1
            if batch.pending <= 0:
                self._settle(batch.feed)

        return ack

    def _settle(self, feed: str) -> None:
        """Save the timestamp of the newest poll whose alerts (and all before) are acknowledged."""
        batches = self._batches[feed]
        advanced = False
        while batches and batches[0].pending <= 0:
            self._durable[feed] = batches.popleft().since
            advanced = True
        if advanced:
            try:
                save_state(self.state_path, self._durable)
            except OSError as exc:
                log.exception(
                    "ipaws_state_write_failed",
                    source=self.name,
                    path=str(self.state_path),
                    error=str(exc),
                )


def from_context(ctx: AdapterContext) -> IpawsSource:
    """The registry factory: ``type = "ipaws"``."""
    return IpawsSource(
        ctx.name,
        IpawsOptions.from_mapping(
            {"state_dir": ctx.data_dir, **ctx.options} if ctx.data_dir else ctx.options,
            source=ctx.name,
        ),
        clock=ctx.clock,
        seen=ctx.seen,
    )
