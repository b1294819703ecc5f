"""Fault-injecting transports shared by every test and simulator.

Pure helpers for sans-IO codecs (:func:`byte_at_a_time`, :func:`with_garbage`,
:func:`chunked`), a seeded :class:`FaultPlan` deciding per unit (a write, or a frame) whether
to drop, corrupt or delay it, and :class:`FaultProxy`: a TCP relay between a client and a
server that applies a plan to each direction, so any adapter can be run against a link that
delivers one byte at a time, loses, corrupts or delays, or starts with line noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


def byte_at_a_time(data: bytes) -> list[bytes]:
    """``data`` as one-byte chunks, as a slow UART delivers it."""
    return [data[i : i + 1] for i in range(len(data))]


def chunked(data: bytes, rng: random.Random, max_chunk: int = 17) -> Iterator[bytes]:
    """``data`` cut into random-sized chunks (1..max_chunk)."""
    i = 0
    while i < len(data):
        n = rng.randint(1, max_chunk)
        yield data[i : i + n]
        i += n


def with_garbage(data: bytes, garbage: bytes = b"\x00\xff\x7fnoise\r\n") -> bytes:
    """``data`` preceded by line noise (what a port shows right after it is opened)."""
    return garbage + data


@dataclass
class FaultPlan:
    """Seeded decisions: drop with probability ``loss``, flip a bit with ``corruption``.

    Counters record exactly what was done, so a test can compare a measurement with the truth.
    ``drop_indices``/``corrupt_indices`` force the fate of given units (0-based) regardless of
    the probabilities.
    """

    loss: float = 0.0
    corruption: float = 0.0
    delay: float = 0.0
    seed: int = 0
    byte_at_a_time: bool = False
    garbage: bytes = b""
    drop_indices: frozenset[int] = frozenset()
    corrupt_indices: frozenset[int] = frozenset()
    dropped: int = 0
    corrupted: int = 0
    passed: int = 0
    _index: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def apply(self, unit: bytes) -> bytes | None:
        """The unit as the faulty link delivers it, or ``None`` when it is lost."""
        index = self._index
        self._index += 1
        lose = self._rng.random() < self.loss
        corrupt = self._rng.random() < self.corruption
        position = self._rng.randrange(max(1, len(unit)))
        bit = self._rng.randrange(8)
        if index in self.drop_indices or lose:
            self.dropped += 1
            return None
        if (index in self.corrupt_indices or corrupt) and unit:
            self.corrupted += 1
            damaged = bytearray(unit)
            damaged[position] ^= 1 << bit
            unit = bytes(damaged)
        self.passed += 1
        return unit


class FaultProxy:
    """A TCP relay ``127.0.0.1:port -> target`` applying a :class:`FaultPlan` per direction.

    Each ``read`` on one side is a unit for the plan; with ``byte_at_a_time`` the bytes are
    written one per write with a yield between them; ``garbage`` is sent to the client first.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        upstream: FaultPlan | None = None,
        downstream: FaultPlan | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.target = (target_host, target_port)
        self.upstream = upstream or FaultPlan()
        self.downstream = downstream or FaultPlan()
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        # Relays end when either side closes; cancel only those still running after a second.
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=1.0)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        if self.downstream.garbage:
            writer.write(self.downstream.garbage)
        pumps = [
            asyncio.create_task(_pump(reader, up_writer, self.upstream)),
            asyncio.create_task(_pump(up_reader, writer, self.downstream)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for w in (writer, up_writer):
                w.close()
            for w in (writer, up_writer):
                with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
                    await w.wait_closed()
            self._tasks.discard(task)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, plan: FaultPlan
) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(4096):
            unit = plan.apply(data)
            if unit is None:
                continue
            if plan.delay:
                await asyncio.sleep(plan.delay)
            if plan.byte_at_a_time:
                for b in byte_at_a_time(unit):
                    writer.write(b)
                    await writer.drain()
                    await asyncio.sleep(0)
            else:
                writer.write(unit)
                await writer.drain()
