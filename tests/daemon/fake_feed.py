"""A source for the daemon tests that reports stream health and never yields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from gateway.adapter import AdapterContext, Received, SourceHealth

#: Health of every FakeFeed, by source name; tests flip it.
STATE: dict[str, bool] = {}


class FakeFeed:
    def __init__(self, name: str) -> None:
        self.name = name

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
        await asyncio.Event().wait()
        yield Received(raw=b"", source=self.name)  # never reached

    def health(self) -> list[SourceHealth]:
        healthy = STATE.get(self.name, True)
        return [
            SourceHealth(
                name=f"{self.name}/stream1",
                healthy=healthy,
                last_message_at=datetime(2026, 1, 1, tzinfo=UTC),
                detail="receiving" if healthy else "no heartbeat for 80 s",
            )
        ]


def from_context(ctx: AdapterContext) -> FakeFeed:
    return FakeFeed(ctx.name)
