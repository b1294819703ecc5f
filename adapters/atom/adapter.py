"""Atom source: a partner's feed of CAP alerts, polled with conditional GET.

Configuration (``[[source]] type = "atom"``)::

    url = "https://partner.example/feeds/alerts.atom"   # the feed
    token_file = "partner.token"    # or token_env: sent as Authorization: Bearer (optional)
    interval = 30                   # s between polls (floor 5)
    trust_anchors = ["partner-ca.pem"]   # with require_signature: only their signed alerts

Each poll sends ``If-None-Match`` / ``If-Modified-Since`` from the previous answer; a 304
costs nothing. Each entry not fetched before (remembered by Atom id and ``updated``) gives
its CAP document -- inline, or fetched from its enclosure with the same token -- to the
ledger, which admits it once whatever the feed repeats. Two borderlink gateways are linked
by this alone: one's ``/feeds/alerts.atom`` read by the other's ``atom`` source, the
signature checked against the partner's pinned certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import structlog

from adapters.atom.codec import FeedEntry, parse_feed
from adapters.feeds.base import (
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
from gateway.adapter import AdapterContext, Clock
from gateway.metrics import INPUT_REJECTED
from gateway.options import adapter_options
from gateway.secret_files import resolve_secret

log = structlog.get_logger(__name__)

MIN_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class AtomOptions:
    url: str
    token: str | None = field(default=None, repr=False)
    interval: float = 30.0
    backoff_max: float = 600.0
    timeout: float = 30.0
    max_feed_bytes: int = 16 * 1024 * 1024
    max_alert_bytes: int = 8 * 1024 * 1024


    @classmethod
    def from_mapping(
        cls, options: Mapping[str, Any], *, source: str, base_dir: Path | None = None
    ) -> AtomOptions:
        r = adapter_options("source", source, options)
        r.used.update({"token_file", "token_env"})
        interval = interval_option(r, 30.0, floor=MIN_INTERVAL)
        options_read = cls(
            url=r.url("url", ""),
            token=resolve_secret(options, "token", where=r.where(), base=base_dir),
            interval=interval,
            **limit_options(r, interval=interval, backoff_max=600.0, index_key="max_feed_bytes"),
        )
        r.finish(allowed_extra=PASSTHROUGH_OPTIONS)
        return options_read


class AtomSource(PollingSource[ConditionalState]):
    """The Atom source adapter (see the module docstring)."""

    component = "atom"

    def __init__(
        self, name: str, options: AtomOptions, *, clock: Clock | None = None,
        seen: SeenCheck | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            name,
            clock=clock,
            seen=seen,
            states={"feed": ConditionalState()},
            interval=options.interval,
            backoff_max=options.backoff_max,
            stale_after=timedelta(seconds=options.interval * 3 + 60),
        )
        self.options = options
        # Entries handled: by Atom id and updated, so a changed entry is read again.
        self._handled = self._memory(ttl=7 * 86400, limit=20000)

    def door_trust(self) -> str:
        """Authenticated over HTTPS (the partner's certificate verified), else anonymous."""
        return "authenticated" if self.options.url.startswith("https://") else "anonymous"

    def _headers(self) -> dict[str, str]:
        token = self.options.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def __aenter__(self) -> Self:
        self._start_polling(self._headers())
        log.info("atom_source_started", source=self.name, url=self.options.url)
        return self

    async def _poll(self, part: str) -> None:
        state = self._states[part]
        started = self.clock.now()
        result = await self._conditional_get(
            part,
            self.options.url,
            accept="application/atom+xml",
            max_bytes=self.options.max_feed_bytes,
            time_limit=self.options.timeout,
        )
        if result is None:
            return
        try:
            entries, skipped = parse_feed(result.body, base_url=self.options.url)
        except FeedError as exc:
            raise self._rejected(exc) from None
        if skipped:
            INPUT_REJECTED.inc(float(skipped), component=self.component, reason="no_cap")
        self._succeeded(part, started)
        done = [await self._take(entry) for entry in entries]
        # The validators only once every entry is handled and admitted: a failed fetch, or an
        # admission never made, must not be hidden behind a 304 on the next poll.
        if all(done) and not self._handled.has_pending():
            state.remember(result.headers)
        log.info("atom_polled", source=self.name, entries=len(entries), new=done.count(True))
        self._handled.prune()

    async def _take(self, entry: FeedEntry) -> bool:
        """Hand one entry's CAP to the ledger; False when it could not be fetched."""
        mark = f"{entry.id}\n{entry.updated}"
        if mark in self._handled:
            return True
        body = entry.inline
        if body is None and entry.cap_url is not None:
            try:
                result = await self._get(
                    entry.cap_url, max_bytes=self.options.max_alert_bytes,
                    time_limit=self.options.timeout,
                )  # fmt: skip
            except PollFailed as exc:
                log.warning("atom_alert_fetch_failed", source=self.name, url=entry.cap_url,
                            error=str(exc))  # fmt: skip
                return False
            if result.status != 200:
                log.warning("atom_alert_fetch_failed", source=self.name, url=entry.cap_url,
                            status=result.status)  # fmt: skip
                return False
            body = result.body
        if body is None:
            return True
        await self._emit(body, f"entry:{entry.id}", ack=self._handled.hold(mark))
        return True


def from_context(ctx: AdapterContext) -> AtomSource:
    """The registry factory: ``type = "atom"``."""
    base = Path(ctx.config_path).parent if ctx.config_path else None
    return AtomSource(
        ctx.name,
        AtomOptions.from_mapping(ctx.options, source=ctx.name, base_dir=base),
        clock=ctx.clock,
        seen=ctx.seen,
    )
