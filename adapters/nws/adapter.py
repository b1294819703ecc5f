"""NWS source: api.weather.gov active alerts for configured areas, as CAP XML.

Configuration (``[[source]] type = "nws"``)::

    areas = ["VT", "NH", "ME", "NY"]   # two-letter state / marine area codes
    contact = "eoc-ops@example.org"    # goes into the User-Agent the API requires
    interval = 60                      # s between index polls (floor 30)

Each poll asks ``/alerts/active?area=XX`` with ``If-None-Match`` / ``If-Modified-Since`` from
the previous answer; a 304 costs nothing. Each alert of the index the ledger has not seen (and
this adapter has not already fetched) is fetched once as CAP XML (``Accept:
application/cap+xml``) and yielded with ``channel = "area:XX"``. A 429 or 5xx answer defers
the next poll by its ``Retry-After`` (or by exponential backoff), never below the interval.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import aiohttp
import structlog

from adapters.ipaws.adapter import POLLS
from adapters.ipaws.http import FeedError, fetch
from adapters.naad.codec import peek_key
from adapters.nws.codec import (
    DEFAULT_BASE_URL,
    IndexEntry,
    active_url,
    alert_url,
    check_area,
    parse_active_counted,
)
from adapters.polling import PollState, poll_health
from cap_schemas.model import AlertKey
from gateway import __version__
from gateway.adapter import AdapterContext, Clock, Received, SourceHealth, SystemClock
from gateway.errors import AdapterError, ConfigError
from gateway.metrics import INPUT_REJECTED

log = structlog.get_logger(__name__)

COMPONENT = "nws"
MIN_INTERVAL = 30.0

_PASSTHROUGH = frozenset(
    {"trust_anchors", "require_signature", "signature_policy", "required", "policy", "enabled"}
)


@dataclass(frozen=True, slots=True)
class NwsOptions:
    areas: tuple[str, ...]
    user_agent: str
    base_url: str = DEFAULT_BASE_URL
    interval: float = 60.0
    backoff_max: float = 900.0
    timeout: float = 30.0
    max_index_bytes: int = 16 * 1024 * 1024
    max_alert_bytes: int = 8 * 1024 * 1024

    KEYS = frozenset(
        {
            "areas",
            "contact",
            "user_agent",
            "base_url",
            "interval",
            "backoff_max",
            "timeout",
            "max_index_bytes",
            "max_alert_bytes",
        }
    )

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, source: str = "nws") -> NwsOptions:
        where = f"source {source!r}: options"
        unknown = set(options) - cls.KEYS - _PASSTHROUGH
        if unknown:
            allowed = ", ".join(sorted(cls.KEYS | _PASSTHROUGH))
            raise ConfigError(f"{where}: unknown {', '.join(sorted(unknown))}; allowed: {allowed}")
        areas = options.get("areas")
        if isinstance(areas, str):
            areas = [areas]
        if not isinstance(areas, list | tuple) or not areas:
            raise ConfigError(f"{where}.areas must list two-letter area codes, e.g. ['VT', 'ME']")
        try:
            checked = tuple(check_area(str(a).upper()) for a in areas)
        except ValueError as exc:
            raise ConfigError(f"{where}.areas: {exc}") from None
        agent = options.get("user_agent")
        contact = options.get("contact")
        if agent is None:
            if not isinstance(contact, str) or not contact.strip():
                raise ConfigError(
                    f"{where}: api.weather.gov requires a User-Agent naming the deployment; "
                    "set contact = 'email or URL' (or user_agent)"
                )
            agent = f"borderlink/{__version__} ({source}; {contact.strip()})"
        if not isinstance(agent, str) or not agent.strip():
            raise ConfigError(f"{where}.user_agent must be a non-empty string")
        base_url = options.get("base_url", DEFAULT_BASE_URL)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.base_url must be an http(s) URL")
        interval = options.get("interval", 60.0)
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ConfigError(f"{where}.interval must be a number of seconds")
        if interval < MIN_INTERVAL:
            raise ConfigError(f"{where}.interval = {interval} is below the floor of 30 s")
        numbers: dict[str, float] = {}
        for key, default in (("backoff_max", 900.0), ("timeout", 30.0)):
            value = options.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}.{key} must be a positive number")
            numbers[key] = float(value)
        sizes: dict[str, int] = {}
        for key, default_size in (
            ("max_index_bytes", 16 * 1024 * 1024),
            ("max_alert_bytes", 8 * 1024 * 1024),
        ):
            size = options.get(key, default_size)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1024:
                raise ConfigError(f"{where}.{key} must be an integer >= 1024")
            sizes[key] = size
        return cls(
            areas=checked,
            user_agent=agent.strip(),
            base_url=base_url,
            interval=float(interval),
            backoff_max=max(float(interval), numbers["backoff_max"]),
            timeout=numbers["timeout"],
            max_index_bytes=sizes["max_index_bytes"],
            max_alert_bytes=sizes["max_alert_bytes"],
        )


@dataclass
class _AreaState(PollState):
    etag: str | None = None
    last_modified: str | None = None
    not_modified: int = 0


class _RetryLater(AdapterError):
    def __init__(self, message: str, retry_after: float | None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class NwsSource:
    """The api.weather.gov source adapter (see the module docstring)."""

    def __init__(
        self,
        name: str,
        options: NwsOptions,
        *,
        clock: Clock | None = None,
        seen: Callable[[AlertKey], Awaitable[bool]] | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.clock: Clock = clock or SystemClock()
        self._seen = seen
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=256)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._areas = {a: _AreaState() for a in options.areas}
        self._fetched: dict[AlertKey, float] = {}
        self.polls = 0

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(headers={"User-Agent": self.options.user_agent})
        self._task = asyncio.create_task(self._run(), name=f"nws-{self.name}")
        log.info(
            "nws_source_started",
            source=self.name,
            areas=list(self.options.areas),
            interval=self.options.interval,
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
        stale_after = timedelta(seconds=self.options.interval * 3 + 60)
        return poll_health(self.name, self._areas, now=self.clock.now(), stale_after=stale_after)

    async def _run(self) -> None:
        failures = 0
        last_start: float | None = None
        wait = 0.0
        while True:
            if last_start is not None:
                while (remaining := last_start + wait - self.clock.monotonic()) > 0:
                    await self.clock.sleep(remaining)
            last_start = self.clock.monotonic()
            retry_after: float | None = None
            ok = True
            for area in self.options.areas:
                try:
                    await self._poll(area)
                except _RetryLater as exc:
                    ok = False
                    if exc.retry_after is not None:
                        retry_after = max(retry_after or 0.0, exc.retry_after)
            failures = 0 if ok else failures + 1
            wait = self.options.interval
            if failures:
                backoff = min(self.options.interval * 2**failures, self.options.backoff_max)
                wait = max(wait, backoff * random.uniform(0.9, 1.0), retry_after or 0.0)

    async def _poll(self, area: str) -> None:
        assert self._session is not None
        state = self._areas[area]
        headers = {"Accept": "application/geo+json"}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        url = active_url(self.options.base_url, area)
        started = self.clock.now()
        self.polls += 1
        try:
            result = await fetch(
                self._session,
                url,
                headers=headers,
                max_bytes=self.options.max_index_bytes,
                time_limit=self.options.timeout,
            )
        except FeedError as exc:
            INPUT_REJECTED.inc(component=COMPONENT, reason=exc.reason)
            raise self._failed(area, state, str(exc), "rejected", None) from None
        except AdapterError as exc:
            raise self._failed(area, state, str(exc), "error", None) from None
        if result.status == 304:
            state.not_modified += 1
            state.last_ok_at, state.last_error = started, ""
            POLLS.inc(source=self.name, feed=area, result="not_modified")
            return
        if result.status != 200:
            retry = _retry_after(result.headers.get("Retry-After"))
            raise self._failed(area, state, f"{url}: HTTP {result.status}", "error", retry)
        try:
            entries, skipped = parse_active_counted(result.body)
        except FeedError as exc:
            INPUT_REJECTED.inc(component=COMPONENT, reason=exc.reason)
            raise self._failed(area, state, str(exc), "rejected", None) from None
        if skipped:
            INPUT_REJECTED.inc(float(skipped), component=COMPONENT, reason="bad_feature")
        POLLS.inc(source=self.name, feed=area, result="ok")
        state.last_ok_at, state.last_error = started, ""
        new = 0
        for entry in entries:
            if await self._fetch_alert(area, entry):
                new += 1
        # Remember the validators only once every listed alert was handled: a failed fetch
        # must not be hidden behind a 304 on the next poll.
        if all(self._known(e.key) for e in entries):
            state.etag = result.headers.get("ETag")
            state.last_modified = result.headers.get("Last-Modified")
        log.info("nws_polled", source=self.name, area=area, alerts=len(entries), new=new)
        self._prune()

    def _known(self, key: AlertKey) -> bool:
        return key in self._fetched

    async def _fetch_alert(self, area: str, entry: IndexEntry) -> bool:
        assert self._session is not None
        if self._known(entry.key):
            return False
        if self._seen is not None and await self._seen(entry.key):
            self._fetched[entry.key] = self.clock.monotonic()
            return False
        url = alert_url(self.options.base_url, entry.key.identifier)
        try:
            result = await fetch(
                self._session,
                url,
                headers={"Accept": "application/cap+xml"},
                max_bytes=self.options.max_alert_bytes,
                time_limit=self.options.timeout,
            )
        except FeedError as exc:
            INPUT_REJECTED.inc(component=COMPONENT, reason=exc.reason)
            log.warning("nws_alert_fetch_failed", source=self.name, url=url, error=str(exc))
            return False
        except AdapterError as exc:
            log.warning("nws_alert_fetch_failed", source=self.name, url=url, error=str(exc))
            return False
        if result.status != 200:
            log.warning("nws_alert_fetch_failed", source=self.name, url=url, status=result.status)
            return False
        key = peek_key(result.body)
        if key is not None and key != entry.key and key.identifier == entry.key.identifier:
            # The index and the CAP document disagree on how sender or sent are written: the
            # document is what the ledger keys on; note it and carry on.
            log.warning(
                "nws_index_differs", source=self.name, index=str(entry.key), document=str(key)
            )
            self._fetched[key] = self.clock.monotonic()
        elif key != entry.key:
            INPUT_REJECTED.inc(component=COMPONENT, reason="mismatch")
            log.warning(
                "nws_alert_rejected",
                source=self.name,
                url=url,
                reason="mismatch",
                expected=str(entry.key),
                got=str(key) if key else None,
            )
            return False
        self._fetched[entry.key] = self.clock.monotonic()
        await self._queue.put(
            Received(
                raw=result.body,
                source=self.name,
                received_at=self.clock.now(),
                channel=f"area:{area}",
            )
        )
        return True

    def _failed(
        self, area: str, state: _AreaState, error: str, result: str, retry_after: float | None
    ) -> _RetryLater:
        POLLS.inc(source=self.name, feed=area, result=result)
        state.last_error = error
        log.warning(
            "nws_poll_failed", source=self.name, area=area, error=error, retry_after=retry_after
        )
        return _RetryLater(error, retry_after)

    def _prune(self) -> None:
        if len(self._fetched) > 20000:
            cutoff = self.clock.monotonic() - 7 * 86400
            self._fetched = {k: t for k, t in self._fetched.items() if t > cutoff}


def from_context(ctx: AdapterContext) -> NwsSource:
    """The registry factory: ``type = "nws"``."""
    return NwsSource(
        ctx.name,
        NwsOptions.from_mapping(ctx.options, source=ctx.name),
        clock=ctx.clock,
        seen=ctx.seen,
    )
