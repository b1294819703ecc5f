"""The shared fault transports do exactly what they report."""

from __future__ import annotations

import asyncio
import random

from hardware.faults import FaultPlan, FaultProxy, byte_at_a_time, chunked, with_garbage


class TestFaultPlan:
    """Seeded, counted, reproducible faults."""

    def test_same_seed_same_fate(self) -> None:
        units = [bytes([i]) * 20 for i in range(200)]
        first = FaultPlan(loss=0.2, corruption=0.2, seed=9)
        a = [first.apply(u) for u in units]
        plan = FaultPlan(loss=0.2, corruption=0.2, seed=9)
        b = [plan.apply(u) for u in units]
        assert a == b
        assert plan.dropped == sum(x is None for x in b)
        assert plan.corrupted == sum(1 for x, u in zip(b, units, strict=True) if x not in (None, u))
        assert plan.passed == 200 - plan.dropped

    def test_corruption_flips_exactly_one_bit(self) -> None:
        plan = FaultPlan(corruption=1.0, seed=1)
        for _ in range(50):
            out = plan.apply(b"\x00" * 16)
            assert out is not None
            assert sum(bin(b).count("1") for b in out) == 1

    def test_forced_indices(self) -> None:
        plan = FaultPlan(drop_indices=frozenset({1}), corrupt_indices=frozenset({2}))
        assert plan.apply(b"a") == b"a"
        assert plan.apply(b"b") is None
        assert plan.apply(b"c") != b"c"
        assert (plan.dropped, plan.corrupted, plan.passed) == (1, 1, 2)

    def test_chunkers(self) -> None:
        data = bytes(range(100))
        assert b"".join(byte_at_a_time(data)) == data
        assert all(len(c) == 1 for c in byte_at_a_time(data))
        assert b"".join(chunked(data, random.Random(2))) == data
        assert with_garbage(b"x", b"noise") == b"noisex"


class TestFaultProxy:
    """The TCP relay applies its plans per direction and delivers in order."""

    async def test_relay_with_delay_garbage_and_byte_at_a_time(self) -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(100):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        down = FaultPlan(byte_at_a_time=True, garbage=b"NOISE", delay=0.01)
        async with server, FaultProxy("127.0.0.1", port, downstream=down) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"hello")
            await writer.drain()
            got = b""
            while len(got) < 10:
                got += await asyncio.wait_for(reader.read(100), 5)
            assert got == b"NOISEhello"
            writer.close()
            await writer.wait_closed()
