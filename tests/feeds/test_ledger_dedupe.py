"""Both NAAD streams, heartbeat backfill and IPAWS feeding one ledger: each alert admitted once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from adapters.ipaws.adapter import IpawsOptions, IpawsSource
from adapters.naad.adapter import DOCUMENTS, NaadOptions, NaadSource
from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from gateway.adapter import Received
from gateway.ledger import Admission, Decision, PlannedDelivery
from gateway.storage.sqlite import SqliteLedger
from hardware.feed_alerts import load_alerts
from hardware.sim_feeds import IpawsSimulator
from hardware.sim_naad import NaadSimulator
from tests.feeds.conftest import FakeClock, collecting, wait_for


def heartbeats(source: NaadSource) -> float:
    return sum(
        DOCUMENTS.value(source=source.name, stream=s.name, kind="heartbeat")
        for s in source.options.streams
    )


def no_deliveries(_admission: Admission) -> Sequence[PlannedDelivery]:
    return ()


class Admitter:
    """What the daemon does with each received item: parse, admit durably, then acknowledge."""

    def __init__(self, ledger: SqliteLedger) -> None:
        self.ledger = ledger
        self.decisions: Counter[tuple[AlertKey, Decision]] = Counter()
        self.channels: dict[AlertKey, list[str]] = {}

    async def seen(self, key: AlertKey) -> bool:
        return await asyncio.to_thread(self.ledger.seen, key)

    async def admit(self, item: Received) -> None:
        alert = parse_alert(item.raw)
        admission = await asyncio.to_thread(
            self.ledger.admit,
            alert,
            source=item.source,
            received_at=item.received_at,
            plan=no_deliveries,
        )
        self.decisions[(admission.key, admission.decision)] += 1
        self.channels.setdefault(admission.key, []).append(item.channel)
        if item.ack is not None:
            await item.ack()

    def admitted(self) -> Counter[AlertKey]:
        return Counter(
            k for (k, d), n in self.decisions.items() if d != Decision.DUPLICATE for _ in range(n)
        )


class TestOneAdmissionPerAlert:
    """The same alert from two streams, from the archive and from two IPAWS feeds is admitted
    once; every other arrival is a duplicate."""

    async def test_naad_streams_backfill_and_ipaws(self, tmp_path: Path) -> None:
        fake_clock = FakeClock(datetime.now(UTC))  # the ledger judges expiry on the real clock
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
        admitter = Admitter(ledger)
        try:
            async with NaadSimulator(ports=[0, 0], heartbeat_interval=None) as naad_sim:
                naad = NaadSource(
                    "naad",
                    NaadOptions.from_mapping(
                        {
                            "streams": naad_sim.stream_urls(),
                            "archive_templates": naad_sim.archive_templates(),
                            "reconnect_initial": 0.05,
                        }
                    ),
                    seen=admitter.seen,
                )
                async with collecting(naad) as got:
                    await wait_for(lambda: naad_sim.connections() == 2)
                    # The counter is the process's: an earlier test may have used these ports.
                    before = heartbeats(naad)
                    alerts = load_alerts("naad")
                    withheld = []
                    for n, raw in enumerate(alerts):
                        triple = await naad_sim.publish(raw, withhold=n == 1)
                        if n == 1:
                            withheld.append(triple)
                    shown = len(alerts) - 1
                    await got.wait_count(2 * shown)
                    for item in got.items[: 2 * shown]:
                        await admitter.admit(item)
                    # Two heartbeats (one per stream) list the withheld alert: one fetch.
                    naad_sim.send_heartbeat()
                    await got.wait_count(2 * shown + 1)
                    await wait_for(lambda: heartbeats(naad) == before + 2)
                    for item in got.items[2 * shown :]:
                        await admitter.admit(item)
                    assert len(got.items) == 2 * shown + 1
                    assert len(naad_sim.archive_requests) == 1
                    # A later heartbeat finds everything in the ledger: no archive request.
                    naad_sim.send_heartbeat()
                    await wait_for(lambda: heartbeats(naad) == before + 4)
                    await wait_for(lambda: not naad._inflight)
                    assert len(naad_sim.archive_requests) == 1

            async with IpawsSimulator(load_alerts("ipaws"), clock=fake_clock) as ipaws_sim:
                ipaws = IpawsSource(
                    "ipaws",
                    IpawsOptions.from_mapping(
                        {
                            "base_url": ipaws_sim.rest_url,
                            "feeds": ["public", "eas"],
                            "state_dir": str(tmp_path),
                        }
                    ),
                    clock=fake_clock,
                )
                async with collecting(ipaws) as got_us:
                    await got_us.wait_count(3)
                    await fake_clock.wait_for_sleepers(1)
                    for item in got_us.items:
                        await admitter.admit(item)
                    # The overlapping window brings them again on the next poll.
                    await fake_clock.advance(120)
                    await fake_clock.wait_for_sleepers(1)
                    for item in got_us.items[3:]:
                        await admitter.admit(item)

            admitted = admitter.admitted()
            expected = len(load_alerts("naad")) + len(load_alerts("ipaws"))
            assert len(admitted) == expected
            assert set(admitted.values()) == {1}
            # Nothing expired on the way (the snowfall update is an update, the rest new).
            assert {d for (_, d) in admitter.decisions} == {
                Decision.NEW,
                Decision.UPDATE,
                Decision.DUPLICATE,
            }
            duplicates = sum(
                n for (_, d), n in admitter.decisions.items() if d == Decision.DUPLICATE
            )
            assert duplicates == len(load_alerts("naad")) - 1
            withheld_key = parse_alert(next(i.raw for i in got.items if i.channel == "archive")).key
            assert admitter.channels[withheld_key] == ["archive"]
            assert all(ledger.seen(k) for k in admitted)
        finally:
            ledger.close()
