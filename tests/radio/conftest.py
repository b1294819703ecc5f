"""Fixtures for radio tests: simulated channels and adapters built the way the daemon does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from gateway.adapter import AdapterContext, load_factory
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
