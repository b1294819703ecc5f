"""Several gateways on one PostgreSQL ledger: each alert decided once, each entry taken once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from cap_schemas.model import MsgType
from gateway.ledger import AlertStatus, Decision, EntryState
from gateway.storage.postgres import PostgresLedger
from tests.helpers import Postgres
from tests.ledger.conftest import T0, FakeClock, Planner, admit, make_alert

INSTANCES = 3


@pytest.fixture
def instances(postgres: Postgres) -> Iterator[list[PostgresLedger]]:
    schema = "s_" + uuid.uuid4().hex[:12]
    clock = FakeClock()
    ledgers = [PostgresLedger(postgres.dsn, schema=schema, clock=clock) for _ in range(INSTANCES)]
    try:
        yield ledgers
    finally:
        for led in ledgers:
            led.close()


def _together(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls in threads released at the same instant; their results in order."""
    start = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


class TestOneDecisionPerKey:
    """The same alert admitted by every instance at once: one new, the others duplicates."""

    def test_same_alert_everywhere(self, instances: list[PostgresLedger]) -> None:
        for _ in range(10):
            alert = make_alert()
            results = _together(
                [lambda led=led, a=alert: admit(led, a) for led in instances]  # type: ignore[misc]
            )
            decisions = Counter(r.decision for r in results)  # type: ignore[union-attr]
            assert decisions == {Decision.NEW: 1, Decision.DUPLICATE: INSTANCES - 1}
            assert len(instances[0].deliveries(alert.key)) == 1

    def test_alert_and_its_cancel_at_once(self, instances: list[PostgresLedger]) -> None:
        """Whichever commits first, the alert ends out of force and nothing waits for it."""
        for _ in range(10):
            alert = make_alert()
            cancel = make_alert(msg_type=MsgType.CANCEL, references=(alert.key,))
            results = _together(
                [
                    lambda a=alert: admit(instances[0], a),  # type: ignore[misc]
                    lambda c=cancel: admit(instances[1], c),  # type: ignore[misc]
                ]
            )
            assert all(not isinstance(r, Exception) for r in results), results
            stored = instances[2].get(alert.key)
            assert stored is not None
            assert stored.status is AlertStatus.CANCELLED
            assert {e.state for e in instances[2].deliveries(alert.key)} <= {
                EntryState.SUPERSEDED
            }


class TestClaimsAcrossInstances:
    """Workers of every instance claim the same sink at once: no entry is taken twice."""

    def test_each_entry_once(self, instances: list[PostgresLedger]) -> None:
        for _ in range(60):
            admit(instances[0], make_alert(), Planner(sinks=("radio",)))
        taken: list[int] = []
        lock = threading.Lock()

        def worker(led: PostgresLedger) -> None:
            while True:
                got = led.claim("radio", T0, limit=4, lease=timedelta(minutes=5))
                if not got:
                    return
                with lock:
                    taken.extend(e.id for e in got)
                for entry in got:
                    led.mark_delivered(entry.id, T0)

        results = _together([lambda led=led: worker(led) for led in instances])
        assert all(r is None for r in results), results
        assert len(taken) == 60
        assert len(set(taken)) == 60
        states = Counter(e.state for e in instances[1].holds()) + Counter(
            {EntryState.PENDING: instances[1].pending_count("radio")}
        )
        assert states[EntryState.PENDING] == 0


class TestReconnect:
    """The server cuts the ledger's connections (a restart, a fail-over): the operation that
    saw them drop fails with a LedgerError, the next ones open new connections and work --
    an instance is never left on dead connections for the rest of its life."""

    def test_reads_and_writes_after_the_connections_are_cut(
        self, instances: list[PostgresLedger], postgres: Postgres
    ) -> None:
        import psycopg  # noqa: PLC0415 - the admin side of this test only

        from gateway.ledger import LedgerError  # noqa: PLC0415

        ledger = instances[0]
        ledger.heartbeat("gw-a", T0, [])
        pids = [ledger._conn.raw.info.backend_pid, ledger._rconn.raw.info.backend_pid]
        with psycopg.connect(postgres.dsn, autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        failures = 0
        for _ in range(3):  # the first use of each connection (write, read) may see it drop
            try:
                ledger.heartbeat("gw-a", T0 + timedelta(seconds=1), ["naad"])
                peers = ledger.peers()
            except LedgerError:
                failures += 1
                continue
            break
        assert failures <= 2
        assert [p["leads"] for p in peers if p["name"] == "gw-a"] == [["naad"]]
