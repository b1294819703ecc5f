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
from collections.abc import AsyncIterator
from datetime import timedelta
from types import TracebackType
from typing import Self

import structlog

from adapters.demo.codec import Template, bundled_templates, render
from gateway.adapter import AdapterContext, Clock, Received, SystemClock

log = structlog.get_logger(__name__)

__all__ = ["DemoSource", "from_context"]



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
    r = ctx.options_reader("source")
    source = DemoSource(
        ctx.name,
        interval=r.number("interval", 20.0, minimum=0.0),
        start_delay=r.number("start_delay", 2.0, minimum=0.0),
        lifetime=r.number("lifetime", 3600.0, minimum=60.0),
        short_lifetime=r.number("short_lifetime", 90.0, minimum=1.0),
        pause=r.number("pause", 60.0, minimum=0.0),
        repeat=r.boolean("repeat", True),
        clock=ctx.clock,
    )
    r.finish()
    return source
