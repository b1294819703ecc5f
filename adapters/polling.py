"""Pieces shared by the sources that poll an HTTP feed (IPAWS-OPEN, NWS)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.adapter import SourceHealth


@dataclass
class PollState:
    """What one polled feed (or area) last did: when it last answered, and its last error."""

    last_ok_at: datetime | None = None
    last_error: str = ""


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
