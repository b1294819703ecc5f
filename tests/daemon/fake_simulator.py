"""A simulator for the daemon tests: records when it is opened and closed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

EVENTS: list[str] = []


@contextlib.asynccontextmanager
async def simulator(options: Mapping[str, Any]) -> AsyncIterator[object]:
    EVENTS.append(f"open {options.get('label')}")
    try:
        yield object()
    finally:
        EVENTS.append(f"close {options.get('label')}")
