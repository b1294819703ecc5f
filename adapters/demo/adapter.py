"""The demo source (``type = "demo"``): replays the bundled alerts, one every ``interval`` s.

Options::

    interval = 20         # seconds between two alerts
    start_delay = 2       # seconds before the first
    lifetime = 3600       # seconds from sent to expires (alerts that end by a Cancel)
    short_lifetime = 90   # seconds from sent to expires of the alert that ends by expiring
    pause = 60            # seconds between the last alert of a cycle and the next cycle
    repeat = true         # start again (with new identifiers) after the last alert

One cycle is a whole lifecycle: a Canadian tornado warning, a US flash flood warning that
expires by itself after ``short_lifetime``, an Update of the tornado warning, then its Cancel.
Each cycle gives every alert a fresh identifier and times relative to now, so a demo alert is
never a duplicate of the previous cycle's, and when a cycle ends nothing of it is still in
force: a demo left running for hours shows at most one tornado and one flood warning active,
never a pile of copies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import structlog

from adapters.demo.codec import Template, bundled_templates, render
from gateway.adapter import AdapterContext, Clock, Received, SystemClock
from gateway.errors import ConfigError

log = structlog.get_logger(__name__)

__all__ = ["DemoSource", "from_context"]

_KEYS = frozenset({"interval", "start_delay", "lifetime", "short_lifetime", "pause", "repeat"})


def _number(options: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        msg = f"demo option {key!r} must be a number >= {minimum}, got {value!r}"
        raise ConfigError(msg)
    return float(value)


class DemoSource:
    """Yields the bundled alerts in order, forever when ``repeat``."""

    def __init__(
        self,
        name: str,
        *,
        interval: float = 20.0,
        start_delay: float = 2.0,
        lifetime: float = 3600.0,
        short_lifetime: float = 90.0,
        pause: float = 60.0,
        repeat: bool = True,
        clock: Clock | None = None,
        templates: list[Template] | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self.start_delay = start_delay
        self.lifetime = timedelta(seconds=lifetime)
        self.short_lifetime = timedelta(seconds=short_lifetime)
        self.pause = pause
        self.repeat = repeat
        self.clock: Clock = clock or SystemClock()
        self.templates = templates if templates is not None else bundled_templates()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def messages(self) -> AsyncIterator[Received]:
        await self.clock.sleep(self.start_delay)
        cycle = 0
        while True:
            cycle += 1
            serial = f"{int(time.time() * 1000):x}-{cycle}"
            earlier: dict[str, bytes] = {}
            for index, template in enumerate(self.templates):
                if index:
                    await self.clock.sleep(self.interval)
                now = self.clock.now()
                raw = render(
                    template,
                    now=now,
                    serial=serial,
                    lifetime=self.lifetime,
                    short_lifetime=self.short_lifetime,
                    earlier=earlier,
                )
                earlier[template.name] = raw
                log.info("demo_alert_replayed", source=self.name, template=template.name)
                yield Received(raw=raw, source=self.name, received_at=now, channel=template.name)
            if not self.repeat:
                return
            await self.clock.sleep(self.pause)


def from_context(ctx: AdapterContext) -> DemoSource:
    """The registry factory: ``type = "demo"``."""
    unknown = set(ctx.options) - _KEYS
    if unknown:
        msg = (
            f"demo source {ctx.name!r}: unknown option(s) {', '.join(sorted(unknown))};"
            f" allowed: {', '.join(sorted(_KEYS))}"
        )
        raise ConfigError(msg)
    repeat = ctx.options.get("repeat", True)
    if not isinstance(repeat, bool):
        msg = f"demo source {ctx.name!r}: repeat must be true or false"
        raise ConfigError(msg)
    return DemoSource(
        ctx.name,
        interval=_number(ctx.options, "interval", 20.0, 0.0),
        start_delay=_number(ctx.options, "start_delay", 2.0, 0.0),
        lifetime=_number(ctx.options, "lifetime", 3600.0, 60.0),
        short_lifetime=_number(ctx.options, "short_lifetime", 90.0, 1.0),
        pause=_number(ctx.options, "pause", 60.0, 0.0),
        repeat=repeat,
        clock=ctx.clock,
    )
