"""A poller's durable state: the last timestamp read of each part of a feed.

The file is JSON (``{"version": 1, "since": {"<part>": "<ISO 8601 time>"}}``) written
atomically (a temporary file, fsync, rename, fsync of the folder) so a crash leaves either the
old or the new state, never half of one. A missing file is an empty state; a corrupt one
raises ``ValueError`` naming the file, and the poller starts from its look-back instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from gateway.statefile import atomic_write

__all__ = ["load_state", "save_state"]


def load_state(path: Path) -> dict[str, datetime]:
    """Read the state file; a missing file is an empty state, a corrupt one raises ValueError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("since"), dict):
        msg = f"{path}: not a poll state file"
        raise ValueError(msg)  # noqa: TRY004 - bad file content, not a caller's type error
    out: dict[str, datetime] = {}
    for feed, value in data["since"].items():
        when = datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            msg = f"{path}: timestamp of {feed!r} has no time zone"
            raise ValueError(msg)
        out[str(feed)] = when
    return out


def save_state(path: Path, since: dict[str, datetime]) -> None:
    """Write the state atomically: a temporary file, fsync, rename, fsync of the folder."""
    payload = json.dumps(
        {"version": 1, "since": {k: v.astimezone(UTC).isoformat() for k, v in since.items()}},
        indent=1,
        sort_keys=True,
    ).encode()
    atomic_write(path, payload)
