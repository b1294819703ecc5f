"""Admission reads what it needs by key, never by walking the alerts table: its cost must not
grow with the number of alerts the ledger remembers (a week of a busy country's traffic).

Every statement an admission runs on SQLite is traced and its query plan checked; the alerts
admitted cover every lookup: the key, a busy place's window candidates, the references and the
chain key of an update and a cancel, a relay and the copies of an event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cap_schemas.model import Alert
from cap_schemas.parse import parse_alert
from gateway.ledger import (
    ADMISSION_RETRIES,
    Admission,
    AlertStatus,
    Decision,
    PlannedDelivery,
)
from gateway.storage.sqlite import SqliteLedger
from tests.daemon.conftest import CapFactory
from tests.ledger.conftest import Planner

SENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NWS = "w-nws.webmaster@noaa.gov"
# How an admission may read an alert: by id, by (sender, identifier, sent), by event.
BY_KEY = ("INTEGER PRIMARY KEY", "sqlite_autoindex_alerts_1", "alerts_event_key")


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[SqliteLedger, list[str]]]:
    """A ledger whose write and read connections report every statement they run."""
    statements: list[str] = []
    with SqliteLedger(tmp_path / "ledger.sqlite3") as led:
        for conn in {id(led._conn): led._conn, id(led._rconn): led._rconn}.values():
            conn.set_trace_callback(statements.append)
        yield led, statements


def _admit(led: SqliteLedger, raw: bytes) -> Decision:
    alert: Alert = parse_alert(raw)
    return led.admit(
        alert, source="feed", received_at=alert.sent + timedelta(seconds=5), plan=Planner()
    ).decision


def _walks(conn: sqlite3.Connection, statement: str) -> list[str]:
    """The steps of a statement's plan that read the alerts table other than by its id, its
    key or its event (a scan, or a search along a broad index such as its kind)."""
    plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
    steps = [str(row["detail"]) for row in plan]
    return [
        s
        for s in steps
        if s.split(" ")[:2]
        in (["SCAN", "a"], ["SCAN", "alerts"], ["SEARCH", "a"], ["SEARCH", "alerts"])
        and not any(ok in s for ok in BY_KEY)
    ]


class TestAdmissionPlans:
    """No admission statement scans the alerts table or walks one of its broad indexes."""

    def test_every_lookup_goes_by_key(self, traced: tuple[SqliteLedger, list[str]]) -> None:
        led, statements = traced
        factory = CapFactory(sender=NWS)
        first = factory(sent=SENT)
        for minute in range(1, 12):  # a busy place: window candidates to choose from
            when = SENT + timedelta(minutes=minute)
            assert _admit(led, factory(sent=when)) is Decision.NEW
        assert _admit(led, first) is Decision.NEW
        original = parse_alert(first).key
        ref = f"{original.sender},{original.identifier},{original.sent}"
        update = factory(
            sent=SENT + timedelta(minutes=20),
            msg_type="Update",
            references=[ref],
        )
        assert _admit(led, update) is Decision.UPDATE
        relay = CapFactory(sender="naads-relay@pelmorex.com")(
            sent=SENT + timedelta(minutes=21), references=[ref]
        )
        assert _admit(led, relay) is Decision.COPY  # the copies of the event are read
        cancel = factory(sent=SENT + timedelta(minutes=25), msg_type="Cancel", references=[ref])
        assert _admit(led, cancel) is Decision.CANCEL
        queries = [s for s in dict.fromkeys(statements) if s.lstrip().upper().startswith("SELECT")]
        assert len(queries) >= 5  # the trace did see the admissions' reads
        walking = {q: steps for q in queries if (steps := _walks(led._conn, q))}
        assert not walking, walking


def _cancel_of(original: bytes) -> bytes:
    key = parse_alert(original).key
    return CapFactory(sender=NWS)(
        sent=SENT + timedelta(minutes=5),
        msg_type="Cancel",
        references=[f"{key.sender},{key.identifier},{key.sent}"],
    )


class TestFactsReadOnce:
    """An admission's facts are read once when nothing was committed between the read and its
    record; any commit in between (this ledger's, or another connection's on the same file)
    makes the record read them again and decide again on what changed."""

    def test_nothing_committed_in_between(self, traced: tuple[SqliteLedger, list[str]]) -> None:
        led, statements = traced
        led._rconn.set_trace_callback(None)  # only what the write transaction runs
        factory = CapFactory(sender=NWS)
        assert _admit(led, factory(sent=SENT)) is Decision.NEW
        statements.clear()
        assert _admit(led, factory(sent=SENT + timedelta(minutes=1))) is Decision.NEW
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert reads == []
        assert any(s.startswith("INSERT INTO alerts") for s in statements)

    @pytest.mark.parametrize("writer", ["same ledger", "another connection"])
    def test_a_cancel_committed_in_between(self, tmp_path: Path, writer: str) -> None:
        """The Cancel of an alert lands while the alert is being planned: the alert is
        recorded as already cancelled (stale), its planned deliveries never enqueued."""
        original = CapFactory(sender=NWS)(sent=SENT)
        alert = parse_alert(original)
        cancel = _cancel_of(original)
        led = SqliteLedger(tmp_path / "ledger.sqlite3")
        other = led if writer == "same ledger" else SqliteLedger(tmp_path / "ledger.sqlite3")
        planned: list[Decision] = []

        def plan(admission: Admission) -> list[PlannedDelivery]:
            planned.append(admission.decision)
            if len(planned) == 1:  # between the facts and the record
                _admit(other, cancel)
            return Planner()(admission)

        try:
            before = ADMISSION_RETRIES.value()
            answer = led.admit(
                alert, source="feed", received_at=alert.sent + timedelta(seconds=5), plan=plan
            )
            assert ADMISSION_RETRIES.value() == before + 1
            assert planned == [Decision.NEW]  # decided again: stale, nothing to plan
            assert answer.decision is Decision.STALE
            assert "cancelled by" in answer.reason
            stored = led.get(alert.key)
            assert stored is not None
            assert stored.status is AlertStatus.CANCELLED
            assert led.deliveries(alert.key) == []
        finally:
            led.close()
            other.close()
