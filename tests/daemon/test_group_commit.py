"""Group commit on the way in: a source's documents are admitted in its order, several behind
one synced commit, and none is acknowledged before a synced commit that covers it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cap_schemas.parse import parse_alert
from gateway.adapter import Received
from gateway.config import ConfigError
from gateway.daemon import Daemon
from gateway.delivery import SinkWorkers
from gateway.housekeeping import QUEUE_DEPTH
from gateway.intake import DELAYED, INLINE_BATCH_BYTES
from gateway.ledger import AlertStatus, Decision, LedgerError
from gateway.storage.sql import SqlLedger
from tests.daemon.conftest import CapFactory, daemon_toml, load, poll_until, running_daemon
from tests.helpers import Broker, record_syncs

# Alerts in force while the tests run.
SENT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


class _Events:
    """What happened, in order: ("recorded", identifier, synced) once an admission's
    transaction committed, ("ack", identifier) when its source was acknowledged."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> None:
        self.log: list[tuple[Any, ...]] = []
        original = SqlLedger.record
        events = self.log

        def record(self: SqlLedger, alert: Any, *args: Any, **kwargs: Any) -> Any:
            if alert.identifier == fail:
                msg = "disk full"
                raise LedgerError(msg)
            admission = original(self, alert, *args, **kwargs)
            events.append(("recorded", alert.identifier, kwargs.get("sync", True)))
            return admission

        monkeypatch.setattr(SqlLedger, "record", record)

    def ack(self, identifier: str) -> Any:
        async def ack() -> None:
            self.log.append(("ack", identifier))

        return ack


async def _items(raws: Sequence[bytes], events: _Events) -> AsyncIterator[Received]:
    """All documents at once (as a busy broker hands them over), then an idle source."""
    for raw in raws:
        ident = parse_alert(raw).identifier
        yield Received(raw=raw, source="mqtt", ack=events.ack(ident))


@pytest.fixture
async def daemon(mosquitto: Broker, tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(load(daemon_toml(tmp_path, mosquitto.url))) as running:
        yield running


async def _run(daemon: Daemon, raws: Sequence[bytes], events: _Events) -> None:
    async def other(_item: Received) -> None:
        raise AssertionError

    await daemon.intake.run_ordered(_items(raws, events), stopping=lambda: False, other=other)


class TestGroupCommit:
    """Documents that arrive together share synced commits; each is acknowledged after one."""

    async def test_fewer_syncs_than_alerts_and_no_ack_before_a_sync(
        self, daemon: Daemon, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        events = _Events(monkeypatch)
        raws = [cap(sent=SENT + timedelta(seconds=n)) for n in range(40)]
        await _run(daemon, raws, events)
        for raw in raws:
            assert daemon.ledger.seen(parse_alert(raw).key)
        recorded = [e for e in events.log if e[0] == "recorded"]
        acks = [e[1] for e in events.log if e[0] == "ack"]
        # In the source's order, every one of them.
        assert [e[1] for e in recorded] == acks == [parse_alert(r).identifier for r in raws]
        synced = [e for e in recorded if e[2]]
        assert len(synced) < len(raws)  # several admissions behind one wait for the disk
        assert recorded[-1][2]  # the last one of the last batch is synced
        for n, event in enumerate(events.log):
            if event[0] != "ack":
                continue
            mine = next(k for k, e in enumerate(events.log) if e[:2] == ("recorded", event[1]))
            assert any(e[0] == "recorded" and e[2] for e in events.log[mine:n]), (
                f"{event[1]} acknowledged before a synced commit covered it"
            )

    async def test_an_update_in_the_same_batch_finds_its_alert(
        self, daemon: Daemon, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        events = _Events(monkeypatch)
        first = cap(sent=SENT)
        alert = parse_alert(first)
        ref = f"{alert.sender},{alert.identifier},{alert.key.sent}"
        update = cap(sent=SENT + timedelta(minutes=1), msg_type="Update", references=[ref])
        cancel = cap(
            sent=SENT + timedelta(minutes=2),
            msg_type="Cancel",
            references=[
                f"{alert.sender},{parse_alert(update).identifier},{parse_alert(update).key.sent}"
            ],
        )
        await _run(daemon, [first, update, cancel], events)
        original = daemon.ledger.get(alert.key)
        updated = daemon.ledger.get(parse_alert(update).key)
        cancelled = daemon.ledger.get(parse_alert(cancel).key)
        assert original is not None
        assert updated is not None
        assert cancelled is not None
        assert original.decision is Decision.NEW
        assert original.status is AlertStatus.SUPERSEDED
        assert updated.decision is Decision.UPDATE
        assert updated.status is AlertStatus.CANCELLED
        assert cancelled.decision is Decision.CANCEL

    async def test_a_failed_admission_is_not_acknowledged_and_ends_the_run(
        self, daemon: Daemon, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The batch's other admissions share its one commit (SQLite): made and
        acknowledged; the one that failed is neither, and the source's run ends with it."""
        raws = [cap(sent=SENT + timedelta(seconds=n)) for n in range(5)]
        keys = [parse_alert(r).key for r in raws]
        events = _Events(monkeypatch, fail=keys[-1].identifier)
        with pytest.raises(LedgerError, match="disk full"):
            await _run(daemon, raws, events)
        acks = [e[1] for e in events.log if e[0] == "ack"]
        assert acks == [k.identifier for k in keys[:-1]]
        assert all(daemon.ledger.seen(k) for k in keys[:-1])
        assert not daemon.ledger.seen(keys[-1])

    async def test_a_failed_commit_acknowledges_none_of_its_batch(
        self, daemon: Daemon, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        raws = [cap(sent=SENT + timedelta(seconds=n)) for n in range(5)]
        events = _Events(monkeypatch)
        ledger = daemon.ledger
        real = type(ledger).admission_batch

        @contextlib.contextmanager
        def failing(self: Any) -> Iterator[bool]:
            with real(self) as shared:
                yield shared
                msg = "disk full at commit"
                raise LedgerError(msg)

        monkeypatch.setattr(type(ledger), "admission_batch", failing)
        with pytest.raises(LedgerError, match="disk full at commit"):
            await _run(daemon, raws, events)
        assert [e for e in events.log if e[0] == "ack"] == []
        assert not any(ledger.seen(parse_alert(r).key) for r in raws)


class TestWhereBatchesRun:
    """A batch runs on the event loop's thread where the ledger allows it (a quick local
    disk), in a worker thread where it does not; each is acknowledged once durable either
    way."""

    @pytest.mark.parametrize("inline", [True, False])
    async def test_thread_of_the_batches(
        self, daemon: Daemon, cap: CapFactory, monkeypatch: pytest.MonkeyPatch, inline: bool
    ) -> None:
        events = _Events(monkeypatch)
        threads: list[int] = []
        record = SqlLedger.record  # as _Events patched it

        def recording(self: SqlLedger, *args: Any, **kwargs: Any) -> Any:
            threads.append(threading.get_ident())
            return record(self, *args, **kwargs)

        monkeypatch.setattr(SqlLedger, "record", recording)
        monkeypatch.setattr(type(daemon.ledger), "works_inline", lambda _self: inline)
        raws = [cap(sent=SENT + timedelta(seconds=n)) for n in range(12)]
        await _run(daemon, raws, events)
        loop_thread = threading.get_ident()
        assert len(threads) == len(raws)
        if inline:
            assert set(threads) == {loop_thread}
        else:
            assert loop_thread not in threads
        acks = [e[1] for e in events.log if e[0] == "ack"]
        assert acks == [parse_alert(r).identifier for r in raws]
        assert all(daemon.ledger.seen(parse_alert(r).key) for r in raws)


    async def test_a_large_batch_is_screened_off_the_loop(
        self, daemon: Daemon, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Megabytes of CAP (a NAAD alert with its audio) are parsed in a worker thread even
        where the ledger's work may run on the loop: the loop's other work goes on."""
        events = _Events(monkeypatch)
        threads: dict[str, int] = {}
        record = SqlLedger.record

        def recording(self: SqlLedger, alert: Any, *args: Any, **kwargs: Any) -> Any:
            threads[alert.identifier] = threading.get_ident()
            return record(self, alert, *args, **kwargs)

        monkeypatch.setattr(SqlLedger, "record", recording)
        monkeypatch.setattr(type(daemon.ledger), "works_inline", lambda _self: True)
        large = cap(sent=SENT).replace(
            b"</headline>",
            b"</headline><description>" + b"x" * (INLINE_BATCH_BYTES + 1) + b"</description>",
            1,
        )
        await _run(daemon, [large], events)
        assert threads[parse_alert(large).identifier] != threading.get_ident()
        assert daemon.ledger.seen(parse_alert(large).key)


class TestConcurrentRequests:
    """Concurrent HTTP-style ingests share synced commits too, each answered once durable."""

    async def test_concurrent_ingests(
        self, daemon: Daemon, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        events = _Events(monkeypatch)
        raws = [cap(sent=SENT + timedelta(seconds=n)) for n in range(30)]
        outcomes = await asyncio.gather(
            *(daemon.ingest(Received(raw=raw, source="http")) for raw in raws)
        )
        assert all(o.accepted for o in outcomes)
        for raw in raws:
            assert daemon.ledger.seen(parse_alert(raw).key)
        recorded = [e for e in events.log if e[0] == "recorded"]
        assert len(recorded) == len(raws)
        assert recorded[-1][2]


class TestDeliveryOutcomes:
    """The way out: one claim per wake-up, and outcomes made durable soon after."""

    async def test_no_empty_claim_after_a_batch_and_outcomes_synced(
        self,
        mosquitto: Broker,
        tmp_path: Path,
        cap: CapFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Each alert admitted alone wakes its sink's worker once: the worker claims it,
        sends it, and records the outcome with the next claim in one hop -- and does not
        claim again before something else wakes it. The outcome, committed unsynced, is
        synced by the delivery stage within OUTCOME_SYNC_DELAY once no admission follows."""
        claims: list[str] = []
        original_claim = SqlLedger.claim

        def claim(self: SqlLedger, sink: str, *args: Any, **kwargs: Any) -> Any:
            claims.append(sink)
            return original_claim(self, sink, *args, **kwargs)

        monkeypatch.setattr(SqlLedger, "claim", claim)
        monkeypatch.setattr(SinkWorkers, "_poll", 60.0)  # no claim by the clock in this test
        synced = record_syncs(monkeypatch)
        sinks = '[[sink]]\nname = "out"\ntype = "mqtt"\ntopic = "out/{key}"\n'
        routes = '[[route]]\nname = "all"\nsinks = ["out"]\n'
        path = daemon_toml(tmp_path, mosquitto.url, sinks=sinks, routes=routes)
        # No housekeeping in between: its synced heartbeats would sync the outcomes first.
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("housekeeping_interval = 0.2", "housekeeping_interval = 60"))
        config = load(path)
        alerts = 8
        # Housekeeping's first round (at start) makes synced commits of its own; one made
        # after an outcome covers it, and the outcome's own sync is rightly skipped. Its
        # last step sets the queue depth: wait for that before the first alert.
        QUEUE_DEPTH.set(-1.0, sink="out")

        async def first_round_done() -> bool:
            return QUEUE_DEPTH.value(sink="out") >= 0

        async with running_daemon(config) as daemon:
            ledger = daemon.ledger
            await poll_until(first_round_done)
            for n in range(alerts):
                raw = cap(sent=SENT + timedelta(seconds=n))
                outcome = await daemon.ingest(Received(raw=raw, source="http"))
                assert outcome.admission is not None
                key = parse_alert(raw).key

                async def delivered(key: Any = key) -> bool:
                    entries = await asyncio.to_thread(ledger.deliveries, key)
                    return [e.state.value for e in entries] == ["delivered"]

                await poll_until(delivered)
                # the claim that came with the outcome is made in the same hop as it
                await poll_until(lambda n=n: _at_least(claims, 2 * (n + 1)))
                wal = f"{config.ledger.path}-wal"
                await poll_until(
                    lambda n=n, wal=wal: _at_least([s for s in synced if s == wal], n + 1)
                )
            # Two claims per alert: the one its wake-up asked for and the one made with its
            # outcome (before, a third, empty, followed every batch); and the worker's first.
            assert 2 * alerts <= len(claims) <= 2 * alerts + 1
            assert synced.count(f"{config.ledger.path}-wal") == alerts


async def _at_least(items: Sequence[object], count: int) -> bool:
    return len(items) >= count


class TestCommitDelay:
    """``[gateway] commit_delay``: under load a batch waits for more documents to share its
    synced commit; a document that arrives alone never waits."""

    @pytest.mark.parametrize("delay", [0.05, 0.0])
    async def test_commit_delay_from_the_config(
        self,
        mosquitto: Broker,
        tmp_path: Path,
        cap: CapFactory,
        monkeypatch: pytest.MonkeyPatch,
        delay: float,
    ) -> None:
        path = daemon_toml(tmp_path, mosquitto.url)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("[gateway]\n", f"[gateway]\ncommit_delay = {delay}\n"))
        config = load(path)
        assert config.gateway.commit_delay == delay
        delays = DELAYED.value()
        events = _Events(monkeypatch)
        async with running_daemon(config) as daemon:
            alone = cap(sent=SENT - timedelta(seconds=1))
            assert (await daemon.ingest(Received(raw=alone, source="http"))).accepted
            assert DELAYED.value() == delays  # alone: admitted at once
            raws = [cap(sent=SENT + timedelta(seconds=n)) for n in range(20)]
            await _run(daemon, raws, events)  # a burst: 20 waiting at once
            assert DELAYED.value() - delays == (1 if delay else 0)
            for raw in [alone, *raws]:
                key = parse_alert(raw).key

                async def delivered(key: Any = key) -> bool:
                    entries = await asyncio.to_thread(daemon.ledger.deliveries, key)
                    return bool(entries) and all(e.state.value == "delivered" for e in entries)

                await poll_until(delivered)
        acks = [e[1] for e in events.log if e[0] == "ack"]
        assert acks == [parse_alert(r).identifier for r in raws]  # in order, each once

    def test_commit_delay_bounds(self, mosquitto: Broker, tmp_path: Path) -> None:
        path = daemon_toml(tmp_path, mosquitto.url)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("[gateway]\n", "[gateway]\ncommit_delay = 1\n"))
        with pytest.raises(ConfigError, match="commit_delay"):
            load(path)
