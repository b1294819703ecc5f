"""The SQLite store: pragmas, schema versions, failures that must not half-admit, threads."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.ledger import (
    Decision,
    EntryState,
    EntryStateError,
    Ledger,
    LedgerError,
    LedgerSchemaError,
)
from gateway.storage import sqlite_schema
from gateway.storage.sqlite import SqliteLedger
from tests.ledger.conftest import T0, FakeClock, Planner, admit, make_alert, planned


@pytest.fixture
def ledger(db_path: Path, clock: FakeClock) -> Iterator[SqliteLedger]:
    """This module tests the SQLite file itself (the shared suite covers the contract)."""
    with SqliteLedger(db_path, clock=clock) as led:
        yield led

class TestStorageSettings:
    """The file is WAL, fsync'd on every commit, with foreign keys and a schema version."""

    def test_pragmas(self, ledger: SqliteLedger) -> None:
        conn = ledger._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        assert ledger.schema_version == sqlite_schema.LATEST

    def test_a_batch_of_admissions_writes_no_temporary_file(self, ledger: SqliteLedger) -> None:
        """Each admission of a batch has a savepoint; what it would roll back stays in
        memory, not in a temporary file written a page at a time."""

        def temporary_files() -> list[str]:
            found = []
            for fd in Path("/proc/self/fd").iterdir():
                with contextlib.suppress(OSError):  # a descriptor closed meanwhile
                    target = str(fd.readlink())
                    if "etilqs_" in target:  # SQLite's temporary files
                        found.append(target)
            return found

        with ledger.admission_batch():
            for n in range(60):  # a statement journal spills to a file past 64 KiB
                admit(ledger, make_alert(f"batch-{n}"), Planner(["out"]))
            during = temporary_files()
        assert during == []
        assert len(ledger.claim("out", T0, limit=100)) == 60

    def test_is_a_ledger(self, ledger: SqliteLedger) -> None:
        assert isinstance(ledger, Ledger)

    def test_a_write_inside_a_write_is_refused(self, ledger: SqliteLedger) -> None:
        with pytest.raises(LedgerError, match="already under way"), ledger._write():
            ledger.record_invalid(b"x", source="s", received_at=T0, reason="r")
        assert ledger.invalid_records() == []

    def test_reopen_does_not_migrate_again(self, db_path: Path) -> None:
        SqliteLedger(db_path).close()
        SqliteLedger(db_path).close()
        conn = sqlite3.connect(db_path)
        try:
            rows = conn.execute("SELECT version FROM schema_version").fetchall()
        finally:
            conn.close()
        assert rows == [(v,) for v in sorted(sqlite_schema.MIGRATIONS)]

    def test_migrates_a_version_1_file(self, db_path: Path, clock: FakeClock) -> None:
        """A ledger written by schema 1 opens with its alerts and deliveries intact."""
        conn = sqlite3.connect(db_path, isolation_level=None)
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at)")
        for statement in sqlite_schema.MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1, 0)")
        conn.close()
        # write with version-1 columns only, as the old software did
        alert = make_alert()
        conn = sqlite3.connect(db_path, isolation_level=None)
        conn.execute(
            "INSERT INTO alerts (id, sender, identifier, sent, decision, status, source,"
            " received_at, forget_after, priority, msg_type, cap_status, raw_sha256, raw_size,"
            " raw) VALUES (1, ?, ?, ?, 'new', 'active', 'old', 0, 0, 5, 'Alert', 'Actual',"
            " '', 3, x'616263')",
            (alert.key.sender, alert.key.identifier, alert.key.sent),
        )
        conn.execute(
            "INSERT INTO outbox (alert_id, sink, route, content_type, attributes, parts,"
            " priority, enqueued_at, next_attempt_at, state, updated_at)"
            " VALUES (1, 'mqtt', 'r', 'text/plain', '{}', x'', 5, 0, 0, 'pending', 0)"
        )
        conn.close()
        with SqliteLedger(db_path, clock=clock) as led:
            assert led.schema_version == sqlite_schema.LATEST
            assert admit(led, alert).decision is Decision.DUPLICATE
            (entry,) = led.claim("mqtt", T0)
            assert entry.started_at == T0
            assert led.mark_delivered(entry.id, T0).started_at is None

    def test_newer_schema_is_refused(self, db_path: Path) -> None:
        SqliteLedger(db_path).close()
        conn = sqlite3.connect(db_path)
        conn.execute("INSERT INTO schema_version VALUES (99, 0)")
        conn.commit()
        conn.close()
        with pytest.raises(LedgerSchemaError, match="version 99 is newer"):
            SqliteLedger(db_path)

    def test_not_a_database(self, tmp_path: Path) -> None:
        path = tmp_path / "junk.sqlite3"
        path.write_bytes(b"this is not a database file" * 100)
        with pytest.raises(LedgerError, match=r"junk\.sqlite3"):
            SqliteLedger(path)

    def test_unopenable_path(self, tmp_path: Path) -> None:
        with pytest.raises(LedgerError, match="cannot open"):
            SqliteLedger(tmp_path / "missing-dir" / "ledger.sqlite3")

    def test_closed_ledger_refuses(self, db_path: Path) -> None:
        led = SqliteLedger(db_path)
        led.close()
        led.close()  # idempotent
        with pytest.raises(LedgerError, match="closed"):
            led.seen(make_alert().key)
        with pytest.raises(LedgerError, match="closed"):
            admit(led, make_alert())

    def test_in_memory_ledger_for_unit_tests(self) -> None:
        with SqliteLedger(":memory:", clock=FakeClock()) as led:
            alert = make_alert()
            assert admit(led, alert).decision is Decision.NEW
            assert led.seen(alert.key)
            assert admit(led, alert).decision is Decision.DUPLICATE

    def test_negative_floor_refused(self, db_path: Path) -> None:
        with pytest.raises(ValueError, match="dedup_floor"):
            SqliteLedger(db_path, dedup_floor=timedelta(days=-1))


class TestFailClosed:
    """When the disk refuses a write, admit raises and nothing is half-admitted."""

    def test_disk_full(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert())
        conn = ledger._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")
        big = make_alert(raw=b"x" * 200_000)
        with pytest.raises(LedgerError, match="full"):
            admit(ledger, big)
        assert not ledger.seen(big.key)
        conn.execute("PRAGMA max_page_count=1073741823")
        assert admit(ledger, big).decision is Decision.NEW
        assert len(ledger.deliveries(big.key)) == 1


class TestConcurrency:
    """Threads, asyncio.to_thread and a second instance on one file decide each key once."""

    def test_threads_admitting_the_same_keys(self, ledger: SqliteLedger) -> None:
        alerts = [make_alert() for _ in range(40)]
        decisions: Counter[Decision] = Counter()
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def worker(n: int) -> None:
            barrier.wait()
            for alert in alerts[n % 2 :] + alerts[: n % 2]:
                result = admit(ledger, alert, source=f"stream-{n}")
                with lock:
                    decisions[result.decision] += 1

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert decisions == {Decision.NEW: 40, Decision.DUPLICATE: 200}
        assert ledger.pending_count("mqtt") == 40

    def test_two_instances_on_one_file(self, db_path: Path) -> None:
        alerts = [make_alert() for _ in range(30)]
        first = SqliteLedger(db_path)
        second = SqliteLedger(db_path)
        decisions: Counter[Decision] = Counter()
        lock = threading.Lock()

        def worker(led: SqliteLedger) -> None:
            for alert in alerts:
                result = admit(led, alert)
                with lock:
                    decisions[result.decision] += 1

        try:
            threads = [threading.Thread(target=worker, args=(led,)) for led in (first, second)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert decisions == {Decision.NEW: 30, Decision.DUPLICATE: 30}
            assert sum(len(first.deliveries(a.key)) for a in alerts) == 30
        finally:
            first.close()
            second.close()

    def test_reads_do_not_wait_for_a_write(self, ledger: SqliteLedger) -> None:
        earlier = make_alert()
        admit(ledger, earlier)
        in_plan = threading.Event()
        release = threading.Event()
        errors: list[BaseException] = []

        def plan(_admission: object) -> list[object]:
            in_plan.set()
            if not release.wait(10):
                raise AssertionError("a read waited for the write to commit")
            return [planned("mqtt")]

        def admitting() -> None:
            try:
                admit(ledger, make_alert(), plan)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=admitting)
        thread.start()
        try:
            assert in_plan.wait(10)
            # mid-admission: reads answer at once, from the last committed state
            assert ledger.seen(earlier.key)
            assert ledger.pending_count() == 1
        finally:
            release.set()
            thread.join()
        assert errors == []
        assert ledger.pending_count() == 2

    def test_two_instances_never_claim_the_same_entry(self, db_path: Path) -> None:
        first = SqliteLedger(db_path)
        second = SqliteLedger(db_path)
        try:
            for _ in range(40):
                admit(first, make_alert(), Planner(sinks=("radio",)))
            taken: Counter[int] = Counter()
            lock = threading.Lock()

            def worker(led: SqliteLedger) -> None:
                while batch := led.claim("radio", T0, limit=3, lease=timedelta(hours=1)):
                    with lock:
                        taken.update(e.id for e in batch)

            threads = [threading.Thread(target=worker, args=(led,)) for led in (first, second)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(taken) == 40
            assert set(taken.values()) == {1}
        finally:
            first.close()
            second.close()

    def test_admit_and_deliver_concurrently(self, ledger: SqliteLedger) -> None:
        sinks = ("mqtt", "radio", "endec")
        alerts = [make_alert() for _ in range(60)]
        done = threading.Event()
        delivered: Counter[int] = Counter()
        errors: list[BaseException] = []

        def producer() -> None:
            for alert in alerts:
                admit(ledger, alert, Planner(sinks=sinks))
            done.set()

        def sink_worker(sink: str) -> None:
            try:
                while True:
                    batch = ledger.due(sink, T0, limit=5)
                    if not batch and done.is_set() and ledger.pending_count(sink) == 0:
                        return
                    for entry in batch:
                        ledger.mark_delivered(entry.id, T0)
                        delivered[entry.id] += 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=producer)] + [
            threading.Thread(target=sink_worker, args=(s,)) for s in sinks
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert len(delivered) == 180
        assert set(delivered.values()) == {1}
        counts = ledger.outbox_counts()
        assert counts == {(s, EntryState.DELIVERED): 60 for s in sinks}

    def test_racing_workers_cannot_deliver_twice(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert())
        (entry,) = ledger.due("mqtt", T0)
        outcomes: list[str] = []
        barrier = threading.Barrier(4)

        def worker() -> None:
            barrier.wait()
            try:
                ledger.mark_delivered(entry.id, T0)
                outcomes.append("delivered")
            except EntryStateError:
                outcomes.append("refused")

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["delivered", "refused", "refused", "refused"]

    async def test_from_asyncio_to_thread(self, db_path: Path) -> None:
        with SqliteLedger(db_path, clock=FakeClock()) as led:
            alerts = [make_alert() for _ in range(20)]
            results = await asyncio.gather(
                *(
                    asyncio.to_thread(led.admit, a, source="s", received_at=T0, plan=Planner())
                    for a in alerts + alerts
                )
            )
            assert Counter(r.decision for r in results) == {
                Decision.NEW: 20,
                Decision.DUPLICATE: 20,
            }
            assert await asyncio.to_thread(led.pending_count) == 20


class _SlowCommits:
    """The ledger's write connection, each COMMIT ``delay`` seconds slower (a slow disk)."""

    def __init__(self, conn: sqlite3.Connection, delay: float) -> None:
        self.conn = conn
        self.delay = delay

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.delay:
            time.sleep(self.delay)
        return self.conn.execute(sql, *args)


class TestInlineAdmissions:
    """A batch of admissions may run on the daemon's event loop while the synced commits
    are quick (a local disk); slow ones (an SD card, a network file system) send it back to
    a worker thread until they are quick again."""

    def test_slow_synced_commits_send_admissions_off_the_loop(
        self, ledger: SqliteLedger
    ) -> None:
        assert ledger.works_inline()  # nothing measured yet: a local disk is assumed
        slow = _SlowCommits(ledger._conn, 0.012)
        ledger._conn = slow  # type: ignore[assignment]
        for _ in range(3):
            admit(ledger, make_alert())
        assert not ledger.works_inline()
        # The disk is quick again (no sync at all: quick on any machine).
        slow.delay = 0
        slow.conn.execute("PRAGMA synchronous=OFF")
        admitted = 0
        while not ledger.works_inline():
            admit(ledger, make_alert())
            admitted += 1
            assert admitted < 30, "quick commits never brought the admissions back"
        assert admitted >= 2  # one quick commit does not outweigh the slow ones

    def test_unsynced_commits_do_not_count(self, ledger: SqliteLedger) -> None:
        """Only the commits that wait for the disk are measured (a delivery's outcome is
        committed without waiting)."""
        admit(ledger, make_alert(), Planner(["out"]))
        ledger._conn = _SlowCommits(ledger._conn, 0.012)  # type: ignore[assignment]
        entry = ledger.claim("out", T0, limit=1)[0]
        ledger.mark_delivered_many([entry.id], T0, claims={entry.id: entry.started_at})
        assert ledger.works_inline()
