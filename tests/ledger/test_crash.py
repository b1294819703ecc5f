"""A process killed with SIGKILL mid-admission leaves every alert fully admitted or absent."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from gateway.ledger import Decision, EntryState
from gateway.storage.sqlite import SqliteLedger
from tests.ledger import crash_worker

REPO = Path(__file__).resolve().parents[2]


def start_worker(db: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.crash_worker", str(db), *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def committed_lines(proc: subprocess.Popen[str], *, stop_after: int | None) -> list[int]:
    """Read 'admitted i' lines; SIGKILL the worker after ``stop_after`` of them."""
    assert proc.stdout is not None
    seen: list[int] = []
    for line in proc.stdout:
        if not line.startswith("admitted "):
            continue
        seen.append(int(line.split()[1]))
        if stop_after is not None and len(seen) >= stop_after:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=30)
    proc.stdout.close()
    return seen


def check_invariants(db: Path) -> set[int]:
    """Assert the ledger file is whole; return the indices of the admitted alerts."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    present: set[int] = set()
    with SqliteLedger(db) as led:
        for stored in led.alerts(limit=100_000):
            i = int(stored.key.identifier.removeprefix("crash-"))
            present.add(i)
            entries = led.deliveries(stored.key)
            # every admitted alert has exactly its planned entries, one per sink
            assert sorted(e.sink for e in entries) == sorted(crash_worker.SINKS), i
            for e in entries:
                lines = [j for j in led.journal(stored.key) if j.entry_id == e.id]
                delivered = [j for j in lines if j.event == "delivered"]
                # a delivery is recorded at most once, and only for a delivered entry
                assert len(delivered) == (1 if e.state is EntryState.DELIVERED else 0), e
            assert {e.parts for e in entries} == {
                (f"part-{i}-{s}".encode(),) for s in crash_worker.SINKS
            }
            journal = [j.event for j in led.journal(stored.key)]
            assert journal.count("admitted") == 1, (i, journal)
            assert journal.count("enqueued") == 3, (i, journal)
            if stored.references:
                (ref,) = stored.references
                # an update is admitted together with the withdrawal of what it replaces
                old = led.deliveries(ref)
                assert old, i
                open_states = {EntryState.PENDING, EntryState.HELD}
                assert not {e.state for e in old} & open_states, i
            if stored.superseded_by is not None:
                assert led.seen(stored.superseded_by)
    return present


class TestCrashConsistency:
    """Killing the admitting process at any point never leaves a half-admitted alert."""

    def test_kill_inside_the_transaction(self, tmp_path: Path) -> None:
        db = tmp_path / "ledger.sqlite3"
        # alert 9 is an Update of alert 8: killed after withdrawing 8's entries, before commit
        lines = committed_lines(start_worker(db, "--kill-in-plan", "9"), stop_after=None)
        assert lines == list(range(9))
        assert check_invariants(db) == set(range(9))
        with SqliteLedger(db) as led:
            assert not led.seen(crash_worker.key_of(9))
            assert led.journal(crash_worker.key_of(9)) == []
            # the withdrawal died with the update's transaction
            assert {e.state for e in led.deliveries(crash_worker.key_of(8))} == {EntryState.PENDING}
            stored = led.get(crash_worker.key_of(8))
            assert stored is not None
            assert stored.active
            assert {e.state for e in led.deliveries(crash_worker.key_of(3))} == {
                EntryState.SUPERSEDED
            }
        # a restarted worker finds 0..8 admitted and admits 9 onwards afresh
        proc = start_worker(db, "--count", "12")
        decisions = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            _, i, decision = line.split()
            decisions[int(i)] = decision
        proc.wait(timeout=30)
        proc.stdout.close()
        assert [decisions[i] for i in range(9)] == [Decision.DUPLICATE.value] * 9
        assert decisions[9] == Decision.UPDATE.value
        assert decisions[10] == Decision.NEW.value
        assert check_invariants(db) == set(range(12))

    def test_random_sigkill_rounds(self, tmp_path: Path) -> None:
        db = tmp_path / "ledger.sqlite3"
        rng = random.Random(20260301)
        acknowledged: set[int] = set()
        for _round in range(4):
            # each round re-admits everything from 0 (duplicates) and then new alerts
            stop = len(acknowledged) + rng.randint(5, 40)
            lines = committed_lines(start_worker(db), stop_after=stop)
            acknowledged.update(lines)
            present = check_invariants(db)
            # everything the worker reported as committed is there ...
            assert acknowledged <= present
            # ... and nothing beyond the one admission that may have committed unreported
            assert len(present - acknowledged) <= 1
            assert present == set(range(len(present)))
        with SqliteLedger(db) as led:
            for i in sorted(present):
                result = led.admit(
                    crash_worker.alert_of(i),
                    source="check",
                    received_at=crash_worker.sent_of(i),
                    plan=lambda _a: [],
                )
                assert result.decision is Decision.DUPLICATE

    def test_kill_while_delivering(self, tmp_path: Path) -> None:
        """Deliveries reported before the kill are durable; none is recorded twice."""
        db = tmp_path / "ledger.sqlite3"
        rng = random.Random(7)
        reported: set[int] = set()
        for _round in range(3):
            proc = start_worker(db, "--drain")
            assert proc.stdout is not None
            stop = rng.randint(20, 120)
            for n, line in enumerate(proc.stdout, 1):
                if line.startswith("delivered "):
                    reported.add(int(line.split()[1]))
                if n >= stop:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            proc.wait(timeout=30)
            proc.stdout.close()
            check_invariants(db)
            with SqliteLedger(db) as led:
                for entry_id in reported:
                    entry = led.entry(entry_id)
                    assert entry is not None
                    assert entry.state is EntryState.DELIVERED
        assert reported
