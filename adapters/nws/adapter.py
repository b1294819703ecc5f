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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Self

import structlog

from adapters.feeds.base import (
    DEFAULT_USER_AGENT,
    PASSTHROUGH_OPTIONS,
    FeedError,
    SeenCheck,
)
from adapters.feeds.polling import (
    ConditionalState,
    PollFailed,
    PollingSource,
    interval_option,
    limit_options,
)
from adapters.nws.codec import (
    DEFAULT_BASE_URL,
    IndexEntry,
    active_url,
    alert_url,
    check_area,
    parse_active_counted,
)
from cap_schemas.stream import peek_key
from gateway.adapter import AdapterContext, Clock
from gateway.metrics import INPUT_REJECTED
from gateway.options import adapter_options

log = structlog.get_logger(__name__)

MIN_INTERVAL = 30.0


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


    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, source: str = "nws") -> NwsOptions:
        r = adapter_options("source", source, options)
        areas = r.strings("areas")
        if not areas:
            r.fail("must list two-letter area codes, e.g. ['VT', 'ME']", "areas")
        try:
            checked = tuple(check_area(a.upper()) for a in areas)
        except ValueError as exc:
            r.fail(str(exc), "areas")
        agent = r.string("user_agent", None)
        contact = r.string("contact", "").strip()
        if agent is None:
            if not contact:
                r.fail(
                    "api.weather.gov requires a User-Agent naming the deployment; "
                    "set contact = 'email or URL' (or user_agent)"
                )
            agent = f"{DEFAULT_USER_AGENT} ({source}; {contact})"
        if not agent.strip():
            r.fail("must be a non-empty string", "user_agent")
        interval = interval_option(r, 60.0, floor=MIN_INTERVAL)
        options_read = cls(
            areas=checked,
            user_agent=agent.strip(),
            base_url=r.url("base_url", DEFAULT_BASE_URL),
            interval=interval,
            **limit_options(r, interval=interval, backoff_max=900.0, index_key="max_index_bytes"),
        )
        r.finish(allowed_extra=PASSTHROUGH_OPTIONS)
        return options_read


class NwsSource(PollingSource[ConditionalState]):
    """The api.weather.gov source adapter (see the module docstring)."""

    component = "nws"
    part_label = "area"

    def __init__(
        self,
        name: str,
        options: NwsOptions,
        *,
        clock: Clock | None = None,
        seen: SeenCheck | None = None,
    ) -> None:
        super().__init__(
            name,
            clock=clock,
            seen=seen,
            states={a: ConditionalState() for a in options.areas},
            interval=options.interval,
            backoff_max=options.backoff_max,
            stale_after=timedelta(seconds=options.interval * 3 + 60),
        )
        self.options = options
        # Alerts fetched (or found in the ledger): remembered until trimmed, a week at least.
        self._fetched = self._memory(ttl=7 * 86400, limit=20000)

    def door_trust(self) -> str:
        """Authenticated over HTTPS (the server's certificate is verified), else anonymous."""
        return "authenticated" if self.options.base_url.startswith("https://") else "anonymous"

    async def __aenter__(self) -> Self:
        self._start_polling({"User-Agent": self.options.user_agent})
        log.info(
            "nws_source_started",
            source=self.name,
            areas=list(self.options.areas),
            interval=self.options.interval,
        )
        return self

    async def _poll(self, area: str) -> None:
        state = self._states[area]
        started = self.clock.now()
        result = await self._conditional_get(
            area,
            active_url(self.options.base_url, area),
            accept="application/geo+json",
            max_bytes=self.options.max_index_bytes,
            time_limit=self.options.timeout,
        )
        if result is None:
            return
        try:
            entries, skipped = parse_active_counted(result.body)
        except FeedError as exc:
            raise self._rejected(exc) from None
        if skipped:
            INPUT_REJECTED.inc(float(skipped), component=self.component, reason="bad_feature")
        self._succeeded(area, started)
        new = 0
        for entry in entries:
            if await self._fetch_alert(area, entry):
                new += 1
        # Remember the validators only once every listed alert was handled and its admission
        # acknowledged: a failed fetch, or an admission never made, must not be hidden behind
        # a 304 on the next poll.
        if all(self._fetched.done(e.key) for e in entries):
            state.remember(result.headers)
        log.info("nws_polled", source=self.name, area=area, alerts=len(entries), new=new)
        self._fetched.prune()

    async def _fetch_alert(self, area: str, entry: IndexEntry) -> bool:
        if entry.key in self._fetched:
            return False
        if await self._is_seen(entry.key):
            self._fetched.add(entry.key)
            return False
        url = alert_url(self.options.base_url, entry.key.identifier)
        try:
            result = await self._get(
                url,
                headers={"Accept": "application/cap+xml"},
                max_bytes=self.options.max_alert_bytes,
                time_limit=self.options.timeout,
            )
        except PollFailed as exc:
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
            self._fetched.add(key)
        elif key != entry.key:
            INPUT_REJECTED.inc(component=self.component, reason="mismatch")
            log.warning(
                "nws_alert_rejected",
                source=self.name,
                url=url,
                reason="mismatch",
                expected=str(entry.key),
                got=str(key) if key else None,
            )
            return False
        await self._emit(result.body, f"area:{area}", ack=self._fetched.hold(entry.key))
        return True


def from_context(ctx: AdapterContext) -> NwsSource:
    """The registry factory: ``type = "nws"``."""
    return NwsSource(
        ctx.name,
        NwsOptions.from_mapping(ctx.options, source=ctx.name),
        clock=ctx.clock,
        seen=ctx.seen,
    )
