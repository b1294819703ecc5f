"""APRS message numbers that survive a restart.

A receiving station drops a directed message whose sender and number it has seen recently
(it still acknowledges it, so the sender stops retrying). A station that restarts and hands
out a number it used a few minutes earlier therefore gets an ack for a message the other
side silently threw away: an alert lost without a trace. So numbers are reserved on disk in
blocks before they are used: the state file records the first number not yet reserved; a
restart (even after a crash or a power cut) continues from there, skipping at most one
block's worth of numbers and never reusing one. The file is written atomically (temporary
file, fsync, rename, fsync of the folder), once per block, not once per message.

Numbers run 1..99999 (five digits fit the APRS 1.0.1 field) and wrap around.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from gateway.metrics import INPUT_REJECTED
from gateway.statefile import atomic_write

log = structlog.get_logger(__name__)

LARGEST = 99999
DEFAULT_BLOCK = 100
STATE_VERSION = 1


def clock_start() -> int:
    """A starting number derived from the wall clock (for a station without a usable state):
    it moves on by one a second, so a restart after a short outage is unlikely to land on the
    numbers used just before it."""
    return int(time.time()) % LARGEST + 1


def advance(number: int, count: int) -> int:
    """``number`` moved on by ``count`` in the cycle 1..99999."""
    return (number - 1 + count) % LARGEST + 1


def state_path(folder: str | os.PathLike[str], adapter: str) -> Path:
    """The state file of ``adapter`` in ``folder`` (the name made safe for a file system)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", adapter) or "_"
    return Path(folder) / f"aprs-numbers-{safe}.json"


def read_state(path: Path) -> int | None:
    """The first unreserved number in ``path``; ``None`` when there is no file.

    Raises ``ValueError`` (with the path and what is wrong) for a file that is not a valid
    state file, ``OSError`` for one that cannot be read.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path}: not JSON ({exc})"
        raise ValueError(msg) from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        msg = f"{path}: not an APRS message-number state file (version {STATE_VERSION})"
        raise ValueError(msg)
    value = data.get("next")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LARGEST:
        msg = f"{path}: 'next' is {value!r}, expected a number 1-{LARGEST}"
        raise ValueError(msg)
    return value


def write_state(path: Path, next_free: int) -> None:
    """Record ``next_free`` atomically: temporary file, fsync, rename, fsync of the folder."""
    payload = json.dumps({"version": STATE_VERSION, "next": next_free}).encode("ascii")
    atomic_write(path, payload)


class MessageNumberStore:
    """Hands out message numbers, reserving them on disk ``block`` at a time.

    ``path`` ``None`` keeps the numbers in memory only (starting from ``fallback()``). A state
    file that cannot be read or parsed is logged, counted in ``INPUT_REJECTED`` (reason
    ``state_file``), kept aside as ``<name>.corrupt`` and replaced; numbering then starts from
    ``fallback()``. A failed write is logged and retried at the next block: sending an alert
    never waits on a broken disk.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        component: str,
        block: int = DEFAULT_BLOCK,
        fallback: Callable[[], int] = clock_start,
    ) -> None:
        if not 1 <= block < LARGEST:
            msg = f"message-number block {block} out of range 1-{LARGEST - 1}"
            raise ValueError(msg)
        self.path = path
        self.component = component
        self.block = block
        self._fallback = fallback
        self._next = 0  # 0: not loaded yet
        self._left = 0  # numbers still reserved on disk after _next
        self._lock = asyncio.Lock()
        self.writes = 0

    def _start_value(self) -> int:
        value = self._fallback()
        return value if 1 <= value <= LARGEST else advance(1, value)

    def load(self) -> int:
        """Read the state file (once) and reserve the first block; return the first number."""
        if self._next:
            return self._next
        start: int | None = None
        if self.path is not None:
            try:
                start = read_state(self.path)
            except (ValueError, OSError) as exc:
                INPUT_REJECTED.inc(component=self.component, reason="state_file")
                log.error(  # noqa: TRY400 - the reason is the message; no traceback wanted
                    "aprs_numbers_state_rejected", path=str(self.path), error=str(exc)
                )
                self._set_aside()
        if start is None:
            start = self._start_value()
            log.info(
                "aprs_numbers_started",
                path=str(self.path) if self.path else None,
                first=start,
            )
        else:
            log.info("aprs_numbers_resumed", path=str(self.path), first=start)
        self._next = start
        self._left = 0
        self._reserve()
        return start

    def _set_aside(self) -> None:
        assert self.path is not None
        with contextlib.suppress(OSError):
            self.path.replace(self.path.with_name(self.path.name + ".corrupt"))

    def _reserve(self) -> None:
        """Write the end of a new block (from ``_next``) before any of it is handed out."""
        if self.path is None:
            self._left = self.block
            return
        end = advance(self._next, self.block)
        try:
            write_state(self.path, end)
        except OSError as exc:
            log.error(  # noqa: TRY400 - the reason is the message; no traceback wanted
                "aprs_numbers_write_failed", path=str(self.path), error=str(exc)
            )
            # Carry on in memory; the next number tries to reserve again.
            self._left = 1
            return
        self.writes += 1
        self._left = self.block

    def take(self) -> str:
        """The next number (synchronous; writes the state file once per block)."""
        if not self._next:
            self.load()
        if self._left <= 0:
            self._reserve()
        value = self._next
        self._next = advance(value, 1)
        self._left -= 1
        return str(value)

    async def next(self) -> str:
        """The next number; a block reservation (a disk write) runs in a worker thread."""
        async with self._lock:
            if self._next and self._left > 0:
                return self.take()
            return await asyncio.to_thread(self.take)
