"""A spool folder as a source: every CAP file another system drops there, once.

Options (``[[source]]``, ``type = "spool"``): ``folder`` (required), ``pattern`` (default
``*.xml``), ``interval`` seconds between looks (default 5), ``max_bytes`` per file (default
5 MiB; a larger file is refused and counted, never read).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from gateway.adapter import AdapterContext, Clock, Received, SourceHealth
from gateway.errors import AdapterConnectionError
from gateway.metrics import INPUT_REJECTED
from tests.feeds.example_spool.codec import Entry, Spool

log = structlog.get_logger(__name__)


class SpoolSource:
    """The source adapter: an async context manager with ``messages()``."""

    def __init__(
        self, name: str, folder: Path, spool: Spool, *, interval: float, max_bytes: int,
        clock: Clock,
    ) -> None:  # fmt: skip
        self.name = name
        self.folder = folder
        self.spool = spool
        self.interval = interval
        self.max_bytes = max_bytes
        self.clock = clock
        self._last: datetime | None = None

    async def __aenter__(self) -> Self:
        if not self.folder.is_dir():
            raise AdapterConnectionError(f"spool {self.name}: {self.folder} is not a folder")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def health(self) -> list[SourceHealth]:
        """The optional HealthReporting ability: green once a look at the folder succeeded."""
        return [SourceHealth(self.name, self._last is not None, self._last)]

    async def messages(self) -> AsyncIterator[Received]:
        while True:
            for entry in self.spool.new(await asyncio.to_thread(self._listing)):
                if entry.size > self.max_bytes:
                    INPUT_REJECTED.inc(component="spool", reason="oversize")
                    log.warning("spool_file_refused", source=self.name, file=entry.name)
                    continue
                raw = await asyncio.to_thread((self.folder / entry.name).read_bytes)
                yield Received(raw=raw, source=self.name, channel=entry.name)
            self._last = self.clock.now()
            await self.clock.sleep(self.interval)

    def _listing(self) -> list[Entry]:
        try:
            found = [(e.name, e.stat()) for e in os.scandir(self.folder) if e.is_file()]
        except OSError as exc:
            raise AdapterConnectionError(f"spool {self.name}: {exc}") from exc
        return [Entry(name, st.st_size, st.st_mtime_ns) for name, st in found]


def from_context(ctx: AdapterContext) -> SpoolSource:
    """The factory the gateway calls with the source's table."""
    r = ctx.options_reader("source")
    folder = Path(r.required_string("folder"))
    if not folder.is_absolute() and ctx.config_path:
        folder = Path(ctx.config_path).parent / folder
    source = SpoolSource(
        ctx.name,
        folder,
        Spool(r.string("pattern", "*.xml")),
        interval=r.number("interval", 5.0, minimum=0.1),
        max_bytes=r.integer("max_bytes", 5 * 1024 * 1024, minimum=1),
        clock=ctx.clock,
    )
    r.finish()
    return source
