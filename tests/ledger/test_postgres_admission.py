"""PostgreSQL admits in few round trips: the facts read together, the transaction pipelined,
the identity window read along its index (the decisions themselves: test_postgres_facts)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from cap_schemas.parse import parse_alert
from gateway.identity import probe
from gateway.ledger import Decision
from gateway.storage import postgres_admission, postgres_schema
from gateway.storage.postgres import PostgresLedger
from gateway.storage.sql_admission import read_facts
from tests.daemon.conftest import CapFactory
from tests.helpers import Postgres
from tests.ledger.conftest import FakeClock, Planner


def _burst_alert(factory: CapFactory, sent: datetime) -> bytes:
    return factory(severity="Severe", sent=sent)


class _Wire:
    """What the client sends the server, from libpq's protocol trace of a connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def messages(self) -> list[str]:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [p[3].strip() for p in (line.split("\t") for line in lines) if p[1:2] == ["F"]]

    def round_trips(self) -> int:
        """Each Sync or Flush after statements makes the client wait for their answers (one
        right after another, with nothing between, is part of the same wait)."""
        waits, pending = 0, False
        for message in self.messages():
            if message in ("Sync", "Flush"):
                waits += pending
                pending = False
            elif message in ("Bind", "Query"):
                pending = True
        return waits

    def statements(self) -> int:
        return sum(m in ("Bind", "Query") for m in self.messages())


@pytest.fixture
def shared_ledger(postgres: Postgres) -> Iterator[PostgresLedger]:
    with PostgresLedger(
        postgres.dsn, schema="rt_" + uuid.uuid4().hex[:12], clock=FakeClock()
    ) as led:
        yield led


class TestRoundTrips:
    """A new alert's admission -- the read before the decision, then the transaction that
    takes its locks, reads the facts again and records the alert with its identity keys, its
    delivery and its journal -- talks to the server in a handful of round trips."""

    def test_new_alert(self, shared_ledger: PostgresLedger, tmp_path: Path) -> None:
        factory = CapFactory(sender="burst@borderlink.invalid")
        sent = datetime.now(UTC).replace(microsecond=0)
        alerts = [parse_alert(_burst_alert(factory, sent)) for _ in range(4)]
        planner = Planner(sinks=("out",))
        for alert in alerts[:3]:  # possible copies by window: the new one notes the latest
            shared_ledger.admit(alert, source="mqtt", received_at=sent, plan=planner)
        trace = tmp_path / "wire.txt"
        with trace.open("w", encoding="utf-8") as handle:
            for conn in (shared_ledger._conn, shared_ledger._rconn):
                conn.raw.pgconn.trace(handle.fileno())
            admission = shared_ledger.admit(
                alerts[3], source="mqtt", received_at=sent, plan=planner, sync=False
            )
            for conn in (shared_ledger._conn, shared_ledger._rconn):
                conn.raw.pgconn.untrace()
        assert admission.decision is Decision.NEW
        assert admission.rule == "window"
        assert f"possibly the same event as {alerts[2].key}" in admission.reason
        wire = _Wire(trace)
        # read: BEGIN and its reads (one statement) | COMMIT; record: BEGIN, SET LOCAL, the
        # locks, the reads | INSERT alert | INSERT keys, INSERT outbox | journal lines, COMMIT
        # (before: 20 statements, each its own round trip but for the identity keys')
        assert wire.round_trips() <= 6, wire.messages()
        assert wire.statements() <= 14, wire.messages()


class TestWindowLookup:
    """The window lookup reads the newest candidates along the index: the rows it reads do
    not grow with the alerts of the place and half hour, analysed or not."""

    def _rows_read(self, led: PostgresLedger, keys: list[str]) -> int:
        """Rows every node of the lookup's plan produced, all loops together."""
        with led._read() as conn:
            row = conn.raw.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) "
                + postgres_admission.WINDOW_SQL.replace("?", "%s"),
                (keys, 8, 8),
            ).fetchone()
        assert row is not None
        nodes = [row["QUERY PLAN"][0]["Plan"]]
        total = 0
        while nodes:
            node = nodes.pop()
            total += int(node["Actual Rows"]) * int(node["Actual Loops"])
            nodes.extend(node.get("Plans", []))
        return total

    def test_busy_place(self, shared_ledger: PostgresLedger, postgres: Postgres) -> None:
        factory = CapFactory(sender="busy@borderlink.invalid")
        sent = datetime.now(UTC).replace(microsecond=0)
        planner = Planner(sinks=("out",))
        alerts = [parse_alert(_burst_alert(factory, sent)) for _ in range(400)]
        ident = probe(alerts[-1])
        assert ident is not None
        keys = [k for k in ident.lookup if k.startswith("window:")]
        read = []
        for done, upto in ((0, 20), (20, 400)):
            for alert in alerts[done:upto]:
                shared_ledger.admit(
                    alert, source="mqtt", received_at=sent, plan=planner, sync=False
                )
            read.append(self._rows_read(shared_ledger, keys))
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            conn.execute(f"ANALYZE {shared_ledger.schema}.identity_keys")
            conn.execute(f"ANALYZE {shared_ledger.schema}.alerts")
        read.append(self._rows_read(shared_ledger, keys))
        # 8 candidates of each of 3 windows at most, 8 alerts, and the plan's other rows: not
        # the 400 alerts of the key (the shared lookup's bitmap scan reads them all)
        assert all(r <= 80 for r in read), read


class TestMigration:
    """Version 6 (the window lookup along the index) upgrades a version-5 ledger that holds
    alerts: their identity keys are found by the next alerts as before."""

    def test_from_version_5(
        self, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        schema = "v5_" + uuid.uuid4().hex[:12]
        factory = CapFactory(sender="old@borderlink.invalid")
        sent = datetime.now(UTC).replace(microsecond=0)
        alerts = [parse_alert(_burst_alert(factory, sent)) for _ in range(12)]
        planner = Planner(sinks=("out",))
        with monkeypatch.context() as patch:  # written by the software of version 5
            for later in [v for v in postgres_schema.MIGRATIONS if v > 5]:
                patch.delitem(postgres_schema.MIGRATIONS, later)
            patch.setattr(postgres_schema, "LATEST", 5)
            patch.setattr(PostgresLedger, "_read_facts", staticmethod(read_facts))
            with PostgresLedger(postgres.dsn, schema=schema) as old:
                assert old.schema_version == 5
                for alert in alerts[:10]:
                    old.admit(alert, source="mqtt", received_at=sent, plan=planner)
        with PostgresLedger(postgres.dsn, schema=schema) as led:
            assert led.schema_version == postgres_schema.LATEST
            assert len(led.alerts(limit=100)) == 10
            first = led.admit(alerts[10], source="mqtt", received_at=sent, plan=planner)
            again = led.admit(alerts[10], source="mqtt", received_at=sent, plan=planner)
        assert first.decision is Decision.NEW
        assert first.rule == "window"
        # the newest of those stored by version 5
        assert f"possibly the same event as {alerts[9].key}" in first.reason
        assert again.decision is Decision.DUPLICATE
        with psycopg.connect(postgres.dsn) as conn:
            versions = {r[0] for r in conn.execute(f"SELECT version FROM {schema}.schema_version")}
        assert versions == set(postgres_schema.MIGRATIONS)
