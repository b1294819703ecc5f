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

import asyncio
import os
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import structlog

from adapters.ipaws.codec import (
    DEFAULT_BASE_URL,
    FEEDS,
    extract_alerts,
    load_state,
    recent_url,
    save_state,
)
from adapters.ipaws.http import FeedError, fetch
from adapters.naad.codec import peek_key
from adapters.polling import PollState, poll_health
from cap_schemas.model import AlertKey
from gateway import __version__
from gateway.adapter import AdapterContext, Clock, Received, SourceHealth, SystemClock
from gateway.errors import AdapterError, ConfigError
from gateway.metrics import INPUT_REJECTED, REGISTRY

log = structlog.get_logger(__name__)

COMPONENT = "ipaws"

#: FEMA IPAWS PMO guidance: poll no more often than every two minutes.
MIN_INTERVAL = 120.0

POLLS = REGISTRY.counter(
    "borderlink_feed_polls_total",
    "Feed requests made by the IPAWS and NWS pollers, by source, feed and result",
    ("source", "feed", "result"),
)

_PASSTHROUGH = frozenset(
    {"trust_anchors", "require_signature", "signature_policy", "required", "policy", "enabled"}
)


def _number(options: Mapping[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"options.{key} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


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
    user_agent: str = f"borderlink/{__version__}"

    KEYS = frozenset(
        {
            "base_url",
            "feeds",
            "interval",
            "overlap",
            "initial_lookback",
            "backoff_max",
            "timeout",
            "max_response_bytes",
            "state_dir",
            "user_agent",
        }
    )

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, source: str = "ipaws") -> IpawsOptions:
        unknown = set(options) - cls.KEYS - _PASSTHROUGH
        if unknown:
            allowed = ", ".join(sorted(cls.KEYS | _PASSTHROUGH))
            raise ConfigError(
                f"source {source!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"allowed: {allowed}"
            )
        base_url = options.get("base_url", DEFAULT_BASE_URL)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"source {source!r}: options.base_url must be an http(s) URL")
        feeds = options.get("feeds", ["public"])
        if isinstance(feeds, str):
            feeds = [feeds]
        if not isinstance(feeds, list | tuple) or not feeds:
            raise ConfigError(f"source {source!r}: options.feeds must be a non-empty list")
        for feed in feeds:
            if feed not in FEEDS:
                raise ConfigError(
                    f"source {source!r}: options.feeds: {feed!r} is not a feed; "
                    f"allowed: {', '.join(FEEDS)}"
                )
        interval = options.get("interval", MIN_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ConfigError(f"source {source!r}: options.interval must be a number of seconds")
        if interval < MIN_INTERVAL:
            raise ConfigError(
                f"source {source!r}: options.interval = {interval} is below the floor of "
                f"{MIN_INTERVAL:g} s (FEMA: poll IPAWS-OPEN no more often than every 2 minutes)"
            )
        for key in ("state_dir", "user_agent"):
            if key in options and not isinstance(options[key], str):
                raise ConfigError(f"source {source!r}: options.{key} must be a string")
        max_bytes = options.get("max_response_bytes", 32 * 1024 * 1024)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ConfigError(f"source {source!r}: options.max_response_bytes must be >= 1024")
        return cls(
            base_url=base_url,
            feeds=tuple(feeds),
            interval=float(interval),
            overlap=_number(options, "overlap", 120.0, minimum=0),
            initial_lookback=_number(options, "initial_lookback", 3600.0, minimum=0),
            backoff_max=max(float(interval), _number(options, "backoff_max", 1800.0, minimum=0)),
            timeout=_number(options, "timeout", 30.0, minimum=0.01),
            max_response_bytes=max_bytes,
            state_dir=options.get("state_dir", default_state_dir()),
            user_agent=options.get("user_agent", f"borderlink/{__version__}"),
        )


@dataclass
class _Batch:
    """The alerts of one poll of one feed; its timestamp is saved once all are acknowledged."""

    feed: str
    since: datetime
    pending: int


@dataclass
class _FeedState(PollState):
    failures: int = 0


class IpawsSource:
    """The IPAWS-OPEN source adapter (see the module docstring)."""

    def __init__(
        self,
        name: str,
        options: IpawsOptions,
        *,
        clock: Clock | None = None,
        seen: Callable[[AlertKey], Awaitable[bool]] | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.clock: Clock = clock or SystemClock()
        self._seen = seen
        self.state_path = Path(options.state_dir) / f"ipaws-{name}.json"
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=256)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._since: dict[str, datetime] = {}
        self._durable: dict[str, datetime] = {}
        self._batches: dict[str, deque[_Batch]] = {f: deque() for f in options.feeds}
        self._feeds = {f: _FeedState() for f in options.feeds}
        self._recent: dict[AlertKey, float] = {}
        self.polls = 0

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
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": self.options.user_agent, "Accept": "application/xml"}
        )
        self._task = asyncio.create_task(self._run(), name=f"ipaws-{self.name}")
        log.info(
            "ipaws_source_started",
            source=self.name,
            feeds=list(self.options.feeds),
            interval=self.options.interval,
            state=str(self.state_path),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def messages(self) -> AsyncIterator[Received]:
        while True:
            yield await self._queue.get()

    def health(self) -> list[SourceHealth]:
        interval = self.options.interval
        stale_after = timedelta(seconds=max(interval * 3, interval + 60))
        return poll_health(self.name, self._feeds, now=self.clock.now(), stale_after=stale_after)

    # -- the poll loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        last_start: float | None = None
        while True:
            if last_start is not None:
                delay = self.options.interval
                if failures:
                    delay = min(self.options.interval * 2**failures, self.options.backoff_max)
                    delay = max(self.options.interval, delay * random.uniform(0.9, 1.0))
                while (remaining := last_start + delay - self.clock.monotonic()) > 0:
                    await self.clock.sleep(remaining)
            last_start = self.clock.monotonic()
            ok = True
            for feed in self.options.feeds:
                ok = await self._poll(feed) and ok
            failures = 0 if ok else failures + 1

    async def _poll(self, feed: str) -> bool:
        assert self._session is not None
        state = self._feeds[feed]
        started = self.clock.now()
        url = recent_url(self.options.base_url, feed, self._since[feed])
        self.polls += 1
        try:
            result = await fetch(
                self._session,
                url,
                max_bytes=self.options.max_response_bytes,
                time_limit=self.options.timeout,
            )
        except FeedError as exc:
            INPUT_REJECTED.inc(component=COMPONENT, reason=exc.reason)
            return self._failed(feed, state, str(exc), "rejected")
        except AdapterError as exc:
            return self._failed(feed, state, str(exc), "error")
        if result.status != 200:
            return self._failed(feed, state, f"{url}: HTTP {result.status}", "error")
        try:
            documents = extract_alerts(result.body, max_bytes=self.options.max_response_bytes)
        except FeedError as exc:
            INPUT_REJECTED.inc(component=COMPONENT, reason=exc.reason)
            return self._failed(feed, state, str(exc), "rejected")
        POLLS.inc(source=self.name, feed=feed, result="ok")
        state.last_ok_at, state.last_error, state.failures = started, "", 0
        fresh: list[tuple[bytes, AlertKey | None]] = []
        for raw in documents:
            key = peek_key(raw)
            if key is not None and (self._was_yielded(key) or await self._is_seen(key)):
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
            if key is not None:
                self._recent[key] = self.clock.monotonic()
            await self._queue.put(
                Received(
                    raw=raw,
                    source=self.name,
                    received_at=self.clock.now(),
                    channel=feed,
                    ack=self._acker(batch),
                )
            )
        if not fresh:
            self._settle(feed)
        self._prune_recent()
        return True

    def _failed(self, feed: str, state: _FeedState, error: str, result: str) -> bool:
        POLLS.inc(source=self.name, feed=feed, result=result)
        state.failures += 1
        state.last_error = error
        log.warning(
            "ipaws_poll_failed", source=self.name, feed=feed, error=error, failures=state.failures
        )
        return False

    async def _is_seen(self, key: AlertKey) -> bool:
        return self._seen is not None and await self._seen(key)

    def _was_yielded(self, key: AlertKey) -> bool:
        at = self._recent.get(key)
        return at is not None and self.clock.monotonic() - at < 86400

    def _prune_recent(self) -> None:
        if len(self._recent) > 20000:
            cutoff = self.clock.monotonic() - 86400
            self._recent = {k: t for k, t in self._recent.items() if t > cutoff}

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
