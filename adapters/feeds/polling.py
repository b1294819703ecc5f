"""What the sources that poll an HTTP feed (IPAWS-OPEN, NWS) share: the poll loop and its
backoff, per-feed state and health, and the failure bookkeeping.

A :class:`PollingSource` polls each of its *parts* (IPAWS feeds, NWS areas) in turn, one round
after another, spaced from start to start by ``interval``. A part whose poll fails raises
:class:`PollFailed`; any other exception is logged and counted as an ``error`` too (one part's
fault, or a ledger that cannot answer, must not end the poller). The round goes on with the
next part, and the next round waits ``interval * 2^failures`` (capped at ``backoff_max``, with
up to 10 % jitter off), never less than ``interval`` nor than the longest ``Retry-After`` a
part was told (see :func:`next_poll_wait`). Every request is counted in :data:`POLLS` by
result: ``ok``, ``not_modified``, ``error`` (no usable answer) or ``rejected`` (an answer
refused as hostile input, also counted in ``INPUT_REJECTED``).
"""

from __future__ import annotations

import email.utils
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import aiohttp
import structlog

from adapters.feeds.base import (
    FeedError,
    FeedSource,
    HttpResult,
    SeenCheck,
    fetch,
)
from gateway.adapter import Clock, SourceHealth
from gateway.backoff import Backoff
from gateway.errors import AdapterError
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.options import OptionReader

log = structlog.get_logger(__name__)

POLLS = REGISTRY.counter(
    "borderlink_feed_polls_total",
    "Feed requests made by the IPAWS and NWS pollers, by source, feed and result",
    ("source", "feed", "result"),
)


@dataclass
class PollState:
    """What one polled feed (or area) last did: when it last answered, its last error, and how
    many polls in a row have failed."""

    last_ok_at: datetime | None = None
    last_error: str = ""
    failures: int = 0

    def succeeded(self, at: datetime) -> None:
        self.last_ok_at, self.last_error, self.failures = at, "", 0

    def failed(self, error: str) -> None:
        self.last_error = error
        self.failures += 1


def poll_health(
    source: str, states: Mapping[str, PollState], *, now: datetime, stale_after: timedelta
) -> list[SourceHealth]:
    """One health entry per feed: healthy while its last good poll is younger than
    ``stale_after``; otherwise the entry carries the last error."""
    out = []
    for part, state in states.items():
        healthy = state.last_ok_at is not None and now - state.last_ok_at < stale_after
        out.append(
            SourceHealth(
                name=f"{source}/{part}",
                healthy=healthy,
                last_message_at=state.last_ok_at,
                detail="polling" if healthy else (state.last_error or "no poll yet"),
            )
        )
    return out


def interval_option(
    r: OptionReader, default: float, *, floor: float, why: str = ""
) -> float:
    """``interval`` (or ``default``): seconds between polls, never below ``floor`` (``why``
    says whose rule the floor is)."""
    interval = r.number("interval", default)
    if interval < floor:
        because = f" ({why})" if why else ""
        r.fail(f"{interval:g} is below the floor of {floor:g} s{because}", "interval")
    return interval


def limit_options(
    r: OptionReader, *, interval: float, backoff_max: float, index_key: str
) -> dict[str, Any]:
    """The limits every polled feed takes: ``backoff_max`` (never below the interval),
    ``timeout`` of one request, the cap on the feed document (``index_key``, 16 MiB) and on
    one alert (``max_alert_bytes``, 8 MiB)."""
    return {
        "backoff_max": max(interval, r.number("backoff_max", backoff_max, minimum=0.01)),
        "timeout": r.number("timeout", 30.0, minimum=0.01),
        index_key: r.integer(index_key, 16 * 1024 * 1024, minimum=1024),
        "max_alert_bytes": r.integer("max_alert_bytes", 8 * 1024 * 1024, minimum=1024),
    }


def next_poll_wait(
    interval: float, failures: int, *, backoff_max: float, retry_after: float | None = None
) -> float:
    """Seconds from the start of one round to the start of the next (see the module doc)."""
    if not failures:
        return interval
    backoff = Backoff(interval * 2.0, backoff_max, jitter=0.1).delay(failures)
    return max(interval, backoff, retry_after or 0.0)


def retry_after_seconds(value: str | None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (RFC 9110 section 10.2.3: a
    number of seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class PollFailed(AdapterError):
    """One poll of one part failed; ``result`` labels :data:`POLLS` (``error`` or
    ``rejected``) and ``retry_after`` is the wait the server asked for, if any."""

    def __init__(
        self, message: str, *, result: str = "error", retry_after: float | None = None
    ) -> None:
        self.result = result
        self.retry_after = retry_after
        super().__init__(message)


@dataclass
class ConditionalState(PollState):
    """A feed polled with conditional GET: the validators of its last complete answer."""

    etag: str | None = None
    last_modified: str | None = None
    not_modified: int = 0

    def remember(self, headers: Mapping[str, str]) -> None:
        """Keep the validators of an answer whose every item was handled (a failed fetch must
        not hide behind the next 304)."""
        self.etag = headers.get("ETag")
        self.last_modified = headers.get("Last-Modified")


StateT = TypeVar("StateT", bound=PollState)


class PollingSource(FeedSource, Generic[StateT]):
    """A source that polls its parts round after round (see the module docstring).

    A subclass implements :meth:`_poll` for one part, raising :class:`PollFailed` when the poll
    failed, and calls :meth:`_start_polling` from its ``__aenter__``.
    """

    #: The log key naming one part ("feed", "area").
    part_label = "feed"

    def __init__(
        self,
        name: str,
        *,
        clock: Clock | None,
        seen: SeenCheck | None,
        states: dict[str, StateT],
        interval: float,
        backoff_max: float,
        stale_after: timedelta,
    ) -> None:
        super().__init__(name, clock=clock, seen=seen, queue_size=256)
        self._states = states
        self._interval = interval
        self._backoff_max = backoff_max
        self._stale_after = stale_after
        self.polls = 0

    def health(self) -> list[SourceHealth]:
        return poll_health(
            self.name, self._states, now=self.clock.now(), stale_after=self._stale_after
        )

    def _start_polling(self, headers: Mapping[str, str]) -> None:
        self._session = aiohttp.ClientSession(headers=dict(headers))
        self._spawn(self._run(), f"{self.component}-{self.name}")

    @abstractmethod
    async def _poll(self, part: str) -> None:
        """Poll one part; raise :class:`PollFailed` when it failed."""

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
            for part in self._states:
                self.polls += 1
                try:
                    await self._poll(part)
                except PollFailed as exc:
                    ok = False
                    self._failed(part, exc)
                    if exc.retry_after is not None:
                        retry_after = max(retry_after or 0.0, exc.retry_after)
                except Exception as exc:  # one part's fault (or the ledger's) must not end polling
                    log.exception(
                        f"{self.component}_poll_crashed",  # noqa: G004 - a structlog event name
                        source=self.name,
                        **{self.part_label: part},
                    )
                    ok = False
                    self._failed(part, PollFailed(f"internal error: {exc!r}"))
            failures = 0 if ok else failures + 1
            wait = next_poll_wait(
                self._interval, failures, backoff_max=self._backoff_max, retry_after=retry_after
            )

    async def _get(
        self,
        url: str,
        *,
        max_bytes: int,
        time_limit: float,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """One counted request: a refused answer is counted in ``INPUT_REJECTED``; any
        failure to get an answer raises :class:`PollFailed`."""
        assert self._session is not None
        try:
            return await fetch(
                self._session, url, headers=headers, max_bytes=max_bytes, time_limit=time_limit
            )
        except FeedError as exc:
            raise self._rejected(exc) from None
        except AdapterError as exc:
            raise PollFailed(str(exc)) from None

    async def _conditional_get(
        self,
        part: str,
        url: str,
        *,
        accept: str,
        max_bytes: int,
        time_limit: float,
    ) -> HttpResult | None:
        """GET ``url`` with the part's validators: the answer when it is a 200, None when a
        304 said nothing changed (counted as such); PollFailed for any other status, with the
        server's Retry-After."""
        state = self._states[part]
        assert isinstance(state, ConditionalState)
        headers = {"Accept": accept}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        started = self.clock.now()
        result = await self._get(url, headers=headers, max_bytes=max_bytes, time_limit=time_limit)
        if result.status == 304:
            state.not_modified += 1
            self._succeeded(part, started, result="not_modified")
            return None
        if result.status != 200:
            retry = retry_after_seconds(result.headers.get("Retry-After"))
            raise PollFailed(f"{url}: HTTP {result.status}", retry_after=retry)
        return result

    def _rejected(self, exc: FeedError) -> PollFailed:
        """Count a hostile answer; the :class:`PollFailed` to raise for it."""
        INPUT_REJECTED.inc(component=self.component, reason=exc.reason)
        return PollFailed(str(exc), result="rejected")

    def _succeeded(self, part: str, started: datetime, result: str = "ok") -> None:
        POLLS.inc(source=self.name, feed=part, result=result)
        self._states[part].succeeded(started)

    def _failed(self, part: str, exc: PollFailed) -> None:
        state = self._states[part]
        POLLS.inc(source=self.name, feed=part, result=exc.result)
        state.failed(str(exc))
        log.warning(
            f"{self.component}_poll_failed",  # noqa: G004 - a structlog event name: ipaws_poll_failed, nws_poll_failed
            source=self.name,
            error=str(exc),
            failures=state.failures,
            retry_after=exc.retry_after,
            **{self.part_label: part},
        )
