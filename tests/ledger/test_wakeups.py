"""A shared PostgreSQL ledger wakes every instance's sink workers when an entry becomes
pending (LISTEN/NOTIFY through the ledger's trigger), instead of at their next poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from gateway.storage.postgres import PostgresLedger
from tests.helpers import Postgres
from tests.ledger.conftest import T0, FakeClock, Planner, make_alert


@contextlib.asynccontextmanager
async def _listening(ledger: PostgresLedger) -> AsyncIterator[asyncio.Queue[str]]:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listening = asyncio.Event()

    async def listen() -> None:
        async for sink in ledger.wakeups(listening):
            heard.put_nowait(sink)

    task = asyncio.create_task(listen())
    await asyncio.wait_for(listening.wait(), 10)  # LISTEN in place before anything is admitted
    try:
        yield heard
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class TestWakeups:
    async def test_another_instances_admission_and_approval_wake_this_one(
        self, postgres: Postgres
    ) -> None:
        clock = FakeClock()
        here = PostgresLedger(postgres.dsn, schema="wake_a", clock=clock)
        there = PostgresLedger(postgres.dsn, schema="wake_a", clock=clock)
        elsewhere = PostgresLedger(postgres.dsn, schema="wake_b", clock=clock)
        try:
            async with _listening(here) as heard:
                started = time.monotonic()
                await asyncio.to_thread(
                    there.admit, make_alert(), source="http", received_at=T0,
                    plan=Planner(sinks=("air", "feed"), held=[True, False]),
                )  # fmt: skip
                assert await asyncio.wait_for(heard.get(), 5) == "feed"
                latency = time.monotonic() - started
                # Another schema on the same server is another ledger: not heard here.
                await asyncio.to_thread(
                    elsewhere.admit, make_alert(), source="http", received_at=T0,
                    plan=Planner(sinks=("other",)),
                )  # fmt: skip
                # The held entry wakes "air" when it is approved, on the other instance.
                held = [e for e in there.holds() if e.sink == "air"]
                await asyncio.to_thread(there.approve, held[0].id, by="alice")
                assert await asyncio.wait_for(heard.get(), 5) == "air"
                assert heard.empty()
        finally:
            for ledger in (here, there, elsewhere):
                ledger.close()
        assert latency < 2.0
