"""Fixtures for radio tests: simulated channels and adapters built the way the daemon does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from gateway.adapter import AdapterContext, Received, load_factory
from hardware.rf_channel import RFSimulation, simulation

SimFactory = Callable[[dict[str, Any]], AbstractAsyncContextManager[RFSimulation]]


@pytest.fixture
def rf() -> SimFactory:
    """``async with rf({...}) as sim``: a simulated RF channel with stations on TCP ports."""
    return simulation


def build_adapter(kind: str, name: str, **options: Any) -> Any:
    """An adapter from the registry, as the daemon builds it."""
    return load_factory(kind)(AdapterContext(name=name, options=options))


async def first(iterator: AsyncIterator[Any]) -> Any:
    async for item in iterator:
        return item
    raise AssertionError("stream ended")


class Inbox:
    """Takes an adapter's inbound stream the way the daemon does: in the background, each item
    confirmed (``Received.ack``) as soon as it is taken -- an APRS station acknowledges a
    message on the air only then."""

    def __init__(self, stream: AsyncIterator[Received]) -> None:
        self._items: asyncio.Queue[Received] = asyncio.Queue()
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: AsyncIterator[Received]) -> None:
        try:
            async for item in stream:
                if item.ack is not None:
                    await item.ack()
                self._items.put_nowait(item)
        except Exception as exc:
            self.error = exc

    async def next(self, within: float) -> Received:
        return await asyncio.wait_for(self._items.get(), within)
