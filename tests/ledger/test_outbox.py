"""The outbox: priority order, retries, holds, expiry, and one terminal state per entry."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cap_schemas.model import AlertKey, MsgType, Severity, Urgency
from gateway.ledger import (
    OUTBOX_ENTRIES,
    TERMINAL_STATES,
    EntryNotFoundError,
    EntryState,
    EntryStateError,
    priority_of,
)
from gateway.storage.sqlite import SqliteLedger
from tests.helpers import record_syncs
from tests.ledger.conftest import T0, FakeClock, OpenLedger, Planner, admit, make_alert


def routine_plan(sink: str = "radio") -> Planner:
    return Planner(sinks=(sink,), priority=priority_of(make_alert()))


class TestPriorityOrder:
    """due() hands out the most urgent entry first, then the oldest."""

    def test_broadcast_immediately_jumps_500_routine(self, ledger: SqliteLedger) -> None:
        for n in range(500):
            admit(ledger, make_alert(), routine_plan(), received_at=T0 + timedelta(seconds=n))
        urgent = make_alert(parameters=(("layer:SOREM:1.0:Broadcast_Immediately", "Yes"),))
        admit(
            ledger,
            urgent,
            Planner(sinks=("radio",), priority=priority_of(urgent)),
            received_at=T0 + timedelta(seconds=600),
        )
        now = T0 + timedelta(seconds=601)
        (first,) = ledger.due("radio", now)
        assert first.key == urgent.key
        assert first.priority == 0
        ledger.mark_delivered(first.id, now)
        (second,) = ledger.due("radio", now)
        assert second.enqueued_at == T0  # then the oldest routine one

    def test_ties_go_by_age(self, ledger: SqliteLedger) -> None:
        alerts = [make_alert() for _ in range(5)]
        for n, alert in reversed(list(enumerate(alerts))):
            admit(ledger, alert, received_at=T0 + timedelta(seconds=n))
        due = ledger.due("mqtt", T0 + timedelta(minutes=1), limit=10)
        assert [e.key for e in due] == [a.key for a in alerts]

    def test_due_is_per_sink(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert(), Planner(sinks=("mqtt",)))
        assert ledger.due("radio", T0) == []
        assert len(ledger.due("mqtt", T0)) == 1
        assert ledger.pending_count("mqtt") == 1
        assert ledger.pending_count("radio") == 0
        assert ledger.pending_count() == 1

    def test_not_due_before_enqueued(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert(), received_at=T0)
        assert ledger.due("mqtt", T0 - timedelta(seconds=1)) == []
        assert ledger.due("mqtt", T0, limit=0) == []

    def test_entry_carries_what_was_planned(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert, Planner(sinks=("mqtt",), expires=T0 + timedelta(hours=1)))
        (entry,) = ledger.due("mqtt", T0)
        assert entry.parts == (b"payload",)
        assert entry.content_type == "text/plain"
        assert dict(entry.attributes) == {"topic": "alerts/mqtt"}
        assert entry.route == "r1"
        assert entry.expires == T0 + timedelta(hours=1)
        assert (entry.attempts, entry.next_attempt_at, entry.reason) == (0, T0, "")
        outbound = entry.to_outbound()
        assert (outbound.key, outbound.sink, outbound.parts) == (alert.key, "mqtt", (b"payload",))


class TestRetries:
    """A failed attempt is counted, retried when asked, and fails for good otherwise."""

    def test_retry_then_deliver(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        alert = make_alert()
        admit(ledger, alert)
        (entry,) = ledger.due("mqtt", T0)
        retry_at = T0 + timedelta(seconds=30)
        after = ledger.mark_failed(entry.id, "broker unreachable", retry_at=retry_at)
        assert (after.state, after.attempts, after.next_attempt_at, after.reason) == (
            EntryState.PENDING,
            1,
            retry_at,
            "broker unreachable",
        )
        assert ledger.due("mqtt", T0 + timedelta(seconds=29)) == []
        (again,) = ledger.due("mqtt", retry_at)
        done = ledger.mark_delivered(again.id, retry_at)
        assert (done.state, done.attempts) == (EntryState.DELIVERED, 2)
        events = [j.event for j in ledger.journal(alert.key)]
        assert events == ["enqueued", "admitted", "retry_scheduled", "delivered"]

    def test_final_failure(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert)
        (entry,) = ledger.due("mqtt", T0)
        at = T0 + timedelta(seconds=3)
        failed = ledger.mark_failed(entry.id, "sink refused: 413", retry_at=None, at=at)
        assert (failed.state, failed.reason) == (EntryState.FAILED, "sink refused: 413")
        assert failed.updated_at == at
        assert ledger.journal(alert.key)[-1].at == at
        assert ledger.due("mqtt", T0 + timedelta(days=1)) == []
        with pytest.raises(EntryStateError, match="is failed"):
            ledger.mark_failed(entry.id, "again", retry_at=None)

    def test_failure_after_supersession_keeps_superseded(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original)
        (entry,) = ledger.due("mqtt", T0)
        admit(ledger, make_alert(msg_type=MsgType.CANCEL, references=(original.key,)))
        result = ledger.mark_failed(entry.id, "timeout", retry_at=T0 + timedelta(seconds=5))
        assert result.state is EntryState.SUPERSEDED
        assert result.attempts == 1
        assert "timeout" in result.reason

    def test_delivery_after_supersession_is_recorded(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original)
        (entry,) = ledger.due("mqtt", T0)
        admit(ledger, make_alert(msg_type=MsgType.UPDATE, references=(original.key,)))
        done = ledger.mark_delivered(entry.id, T0 + timedelta(seconds=1))
        assert done.state is EntryState.DELIVERED
        assert any("superseded -> delivered" in j.detail for j in ledger.journal(original.key))

    def test_double_delivery_is_refused(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert())
        (entry,) = ledger.due("mqtt", T0)
        ledger.mark_delivered(entry.id, T0)
        with pytest.raises(EntryStateError, match="is delivered"):
            ledger.mark_delivered(entry.id, T0)

    def test_batch_of_deliveries_is_recorded_together(self, ledger: SqliteLedger) -> None:
        """One refused entry of a batch (already delivered) does not lose the others."""
        for _ in range(3):
            admit(ledger, make_alert())
        entries = ledger.due("mqtt", T0, limit=10)
        assert len(entries) == 3
        ledger.mark_delivered(entries[1].id, T0)
        done, refused = ledger.mark_delivered_many([e.id for e in entries], T0)
        assert sorted(e.id for e in done) == sorted([entries[0].id, entries[2].id])
        assert all(e.state is EntryState.DELIVERED for e in done)
        assert len(refused) == 1
        assert "is delivered" in str(refused[0])
        assert ledger.due("mqtt", T0, limit=10) == []
        assert ledger.outbox_counts()[("mqtt", EntryState.DELIVERED)] == 3

    def test_outcomes_are_made_durable_by_sync_or_the_next_admission(
        self, ledger: SqliteLedger, backend: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A delivery's outcome may be committed without waiting for the disk (SQLite); a
        later synced commit (any admission) or sync() makes it durable. sync() says whether
        it had anything to do, and syncs the write-ahead log that holds the commits."""
        synced = record_syncs(monkeypatch)
        for _ in range(2):
            admit(ledger, make_alert())
        assert ledger.sync() is False  # admissions are synced: nothing left to sync
        first, second = ledger.due("mqtt", T0, limit=10)
        ledger.mark_delivered_many([first.id], T0)
        if backend == "sqlite":
            assert ledger.sync() is True
            assert synced == [f"{ledger.path}-wal"]
        assert ledger.sync() is False  # once is enough
        ledger.mark_delivered_many([second.id], T0)
        admit(ledger, make_alert())  # its synced commit covers the outcome before it
        assert ledger.sync() is False
        assert len(synced) == (1 if backend == "sqlite" else 0)
        assert ledger.outbox_counts()[("mqtt", EntryState.DELIVERED)] == 2

    def test_unknown_entry(self, ledger: SqliteLedger) -> None:
        with pytest.raises(EntryNotFoundError, match="no outbox entry 999"):
            ledger.mark_delivered(999, T0)
        with pytest.raises(EntryNotFoundError):
            ledger.mark_failed(999, "x", retry_at=None)
        with pytest.raises(KeyError):
            ledger.approve(999)
        assert ledger.entry(999) is None


class TestHolds:
    """Held entries wait for an operator: approve releases, reject fails them."""

    def test_approve(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert, Planner(sinks=("endec",), held=True))
        (held,) = ledger.holds()
        assert held.state is EntryState.HELD
        assert ledger.due("endec", T0 + timedelta(hours=1)) == []
        approved = ledger.approve(held.id)
        assert approved.state is EntryState.PENDING
        assert ledger.due("endec", T0)[0].id == held.id
        assert ledger.holds() == []
        with pytest.raises(EntryStateError, match="is pending"):
            ledger.approve(held.id)

    def test_reject(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert, Planner(sinks=("endec",), held=True))
        (held,) = ledger.holds()
        rejected = ledger.reject(held.id, "national code from an unsigned source")
        assert rejected.state is EntryState.FAILED
        assert rejected.reason == "rejected by operator: national code from an unsigned source"
        assert [j.event for j in ledger.journal(alert.key)][-1] == "rejected"
        with pytest.raises(EntryStateError):
            ledger.reject(held.id, "twice")

    def test_held_entry_cannot_be_marked_delivered(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert(), Planner(sinks=("endec",), held=True))
        (held,) = ledger.holds()
        with pytest.raises(EntryStateError, match="is held"):
            ledger.mark_delivered(held.id, T0)

    def test_holds_most_urgent_first(self, ledger: SqliteLedger) -> None:
        routine = make_alert()
        admit(ledger, routine, Planner(sinks=("endec",), held=True, priority=20))
        urgent = make_alert()
        admit(
            ledger,
            urgent,
            Planner(sinks=("endec",), held=True, priority=0),
            received_at=T0 + timedelta(minutes=1),
        )
        assert [h.key for h in ledger.holds()] == [urgent.key, routine.key]


class TestExpiry:
    """expire_due() ends pending and held entries whose alert expired."""

    def test_expire_due(self, ledger: SqliteLedger) -> None:
        soon = T0 + timedelta(minutes=10)
        short = make_alert()
        admit(ledger, short, Planner(sinks=("mqtt", "endec"), held=(False, True), expires=soon))
        long = make_alert()
        admit(ledger, long, Planner(expires=T0 + timedelta(hours=5)))
        forever = make_alert()
        admit(ledger, forever, Planner(expires=None))
        assert ledger.expire_due(soon - timedelta(seconds=1)) == []
        expired = ledger.expire_due(soon)
        assert {(e.key, e.sink) for e in expired} == {(short.key, "mqtt"), (short.key, "endec")}
        assert {e.state for e in expired} == {EntryState.EXPIRED}
        assert {e.state for e in ledger.deliveries(short.key)} == {EntryState.EXPIRED}
        assert ledger.deliveries(long.key)[0].state is EntryState.PENDING
        assert ledger.expire_due(soon) == []  # once only
        assert ledger.expire_due(T0 + timedelta(days=365))[0].key == long.key
        assert ledger.deliveries(forever.key)[0].state is EntryState.PENDING

    def test_delivered_entries_do_not_expire(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert, Planner(expires=T0 + timedelta(minutes=1)))
        (entry,) = ledger.due("mqtt", T0)
        ledger.mark_delivered(entry.id, T0)
        assert ledger.expire_due(T0 + timedelta(hours=1)) == []
        assert ledger.deliveries(alert.key)[0].state is EntryState.DELIVERED


class TestTerminalStates:
    """Every path an entry can take ends in delivered, superseded, expired or failed."""

    def test_every_terminal_state_is_reached_with_a_reason(self, ledger: SqliteLedger) -> None:
        reached: dict[EntryState, str] = {}
        # delivered
        a = make_alert()
        admit(ledger, a)
        e = ledger.due("mqtt", T0)[0]
        reached[ledger.mark_delivered(e.id, T0).state] = "ok"
        # superseded
        b = make_alert()
        admit(ledger, b)
        admit(ledger, make_alert(msg_type=MsgType.UPDATE, references=(b.key,)), Planner(sinks=()))
        sup = ledger.deliveries(b.key)[0]
        reached[sup.state] = sup.reason
        # expired
        c = make_alert()
        admit(ledger, c, Planner(expires=T0 + timedelta(minutes=1)))
        exp = ledger.expire_due(T0 + timedelta(minutes=1))[0]
        reached[exp.state] = exp.reason
        # failed (final), and failed (rejected)
        d = make_alert()
        admit(ledger, d)
        fail = ledger.mark_failed(ledger.deliveries(d.key)[0].id, "refused", retry_at=None)
        reached[fail.state] = fail.reason
        f = make_alert()
        admit(ledger, f, Planner(held=True))
        rej = ledger.reject(ledger.deliveries(f.key)[0].id, "no")
        assert rej.state is EntryState.FAILED
        assert set(reached) == set(TERMINAL_STATES)
        for state, reason in reached.items():
            assert reason, f"{state} without a reason"
        counts = ledger.outbox_counts()
        assert counts[("mqtt", EntryState.DELIVERED)] == 1
        assert counts[("mqtt", EntryState.FAILED)] == 2
        assert all(state in TERMINAL_STATES for (_sink, state) in counts)
        assert ledger.pending_count() == 0

    def test_terminal_entries_never_come_back(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert())
        (entry,) = ledger.due("mqtt", T0)
        ledger.mark_delivered(entry.id, T0)
        later = T0 + timedelta(days=2)
        assert ledger.due("mqtt", later) == []
        with pytest.raises(EntryStateError):
            ledger.approve(entry.id)
        with pytest.raises(EntryStateError):
            ledger.mark_failed(entry.id, "late", retry_at=later)


class TestMetrics:
    """outbox_counts() refreshes the per-sink, per-state gauge, zeroes included."""

    def test_gauge_follows_the_outbox(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert(), Planner(sinks=("gauge-sink",)))
        ledger.outbox_counts()
        assert OUTBOX_ENTRIES.value(sink="gauge-sink", state="pending") == 1
        (entry,) = ledger.due("gauge-sink", T0)
        ledger.mark_delivered(entry.id, T0)
        ledger.outbox_counts()
        assert OUTBOX_ENTRIES.value(sink="gauge-sink", state="pending") == 0
        assert OUTBOX_ENTRIES.value(sink="gauge-sink", state="delivered") == 1


class TestUniqueness:
    """The database itself refuses a second entry for one (alert, sink)."""

    def test_unique_constraint(self, db_path: Path, clock: FakeClock) -> None:
        with SqliteLedger(db_path, clock=clock) as ledger:
            admit(ledger, make_alert())
        conn = sqlite3.connect(db_path)
        try:
            with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
                conn.execute(
                    "INSERT INTO outbox (alert_id, sink, route, content_type, attributes, parts,"
                    " priority, enqueued_at, next_attempt_at, state, updated_at)"
                    " SELECT alert_id, sink, 'other', 'x', '{}', x'', 1, 0, 0, 'pending', 0"
                    " FROM outbox"
                )
        finally:
            conn.close()


class TestBoundedBacklog:
    """With 100k pending entries due(limit=1) reads one row through the index."""

    def test_due_over_100k_backlog(self, db_path: Path, clock: FakeClock) -> None:
        with SqliteLedger(db_path, clock=clock) as led:
            admit(led, make_alert(severity=Severity.MINOR, urgency=Urgency.PAST))
        # Fill the backlog with plain SQL: admitting 100k alerts one by one would only time
        # the fsyncs, and the query under test is the same either way.
        conn = sqlite3.connect(db_path)
        try:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO alerts (sender, identifier, sent, decision, status, source,"
                " received_at, forget_after, priority, msg_type, cap_status, raw_sha256,"
                " raw_size, raw) VALUES ('s', ?, 'x', 'new', 'active', 'bulk', 0, 0, 9,"
                " 'Alert', 'Actual', '', 0, x'')",
                ((f"bulk-{n}",) for n in range(100_000)),
            )
            base = int((T0 - T0.replace(year=1970, month=1, day=1)).total_seconds() * 1e6)
            conn.execute(
                "INSERT INTO outbox (alert_id, sink, route, content_type, attributes, parts,"
                " priority, enqueued_at, next_attempt_at, state, updated_at)"
                " SELECT id, 'radio', 'r', 'text/plain', '{}', x'', 5 + (id % 7), ? + id, ?,"
                " 'pending', 0 FROM alerts WHERE source = 'bulk'",
                (base, base),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        with SqliteLedger(db_path, clock=clock) as led:
            urgent = make_alert(severity=Severity.EXTREME, urgency=Urgency.IMMEDIATE)
            admit(
                led,
                urgent,
                Planner(sinks=("radio",), priority=priority_of(urgent)),
                received_at=T0 + timedelta(hours=1),
            )
            assert led.pending_count("radio") == 100_001
            (first,) = led.due("radio", T0 + timedelta(hours=1))
            assert first.key == urgent.key
            led.mark_delivered(first.id, T0 + timedelta(hours=1))
            (second,) = led.due("radio", T0 + timedelta(hours=1))
            # bulk-n has row id n + 2 (row 1 is the first alert); priority 5 needs id % 7 == 0,
            # and the oldest of those is id 7.
            assert (second.priority, second.key.identifier) == (5, "bulk-5")
            plan = led._conn.execute(  # the query due() runs
                "EXPLAIN QUERY PLAN SELECT o.id FROM outbox o JOIN alerts a ON a.id = o.alert_id"
                " WHERE o.sink = ? AND o.state = 'pending' AND o.next_attempt_at <= ?"
                " ORDER BY o.priority, o.enqueued_at, o.id LIMIT 1",
                ("radio", 0),
            ).fetchall()
            details = " | ".join(str(row["detail"]) for row in plan)
            assert "USING INDEX outbox_due" in details, details
            assert "TEMP B-TREE" not in details, details


class TestClaim:
    """claim() leases due entries so that no second worker takes them meanwhile."""

    def test_claim_leases_and_journals(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert)
        (taken,) = ledger.claim("mqtt", T0, lease=timedelta(seconds=30))
        assert taken.next_attempt_at == T0 + timedelta(seconds=30)
        assert ledger.claim("mqtt", T0 + timedelta(seconds=29)) == []
        assert ledger.due("mqtt", T0 + timedelta(seconds=29)) == []
        ledger.mark_delivered(taken.id, T0 + timedelta(seconds=1))
        assert ledger.claim("mqtt", T0 + timedelta(minutes=5)) == []
        events = [j.event for j in ledger.journal(alert.key)]
        assert events == ["enqueued", "admitted", "attempt_started", "delivered"]

    def test_outcomes_return_the_entries_as_stored(self, ledger: SqliteLedger) -> None:
        """A claim and an outcome answer with each entry exactly as a fresh read gives it
        back (they are not read again after their change)."""
        for _ in range(3):
            admit(ledger, make_alert())
        taken = ledger.claim("mqtt", T0, limit=10, lease=timedelta(seconds=30), by="gw-1")
        assert len(taken) == 3
        assert taken == [ledger.entry(e.id) for e in taken]
        later = T0 + timedelta(seconds=1, microseconds=7)
        done, refused = ledger.mark_delivered_many(
            [e.id for e in taken[:2]], later, claims={e.id: e.started_at for e in taken}
        )
        assert refused == []
        assert done == [ledger.entry(e.id) for e in taken[:2]]
        assert [e.state for e in done] == [EntryState.DELIVERED] * 2
        failed = ledger.mark_failed(
            taken[2].id, "no answer", retry_at=later, at=later, claimed_at=taken[2].started_at
        )
        assert failed == ledger.entry(taken[2].id)
        assert (failed.state, failed.attempts, failed.started_at) == (EntryState.PENDING, 1, None)
        journal = [j.event for j in ledger.journal(taken[0].key)]
        assert journal == ["enqueued", "admitted", "attempt_started", "delivered"]

    def test_lease_runs_out_after_a_dead_worker(self, ledger: SqliteLedger) -> None:
        """A claim whose lease ran out is in doubt: no worker takes it again by chance; the
        routine sweep settles it by the sink's policy first."""
        admit(ledger, make_alert())
        (taken,) = ledger.claim("mqtt", T0, lease=timedelta(seconds=30), by="gw-1")
        assert taken.claimed_by == "gw-1"
        late = T0 + timedelta(seconds=31)
        assert ledger.claim("mqtt", late) == []
        assert ledger.release_claims(late, {"mqtt": "hold"}.__getitem__, owner=None) == 1
        assert ledger.claim("mqtt", late) == []
        (held,) = ledger.holds()
        assert (held.id, held.claimed_by, held.started_at) == (taken.id, "", None)
        assert held.reason.startswith("in doubt: attempt 1 by gw-1 may have reached the sink")
        assert ledger.claim("mqtt", T0, limit=0) == []

    def test_routine_sweep_leaves_running_claims(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert())
        ledger.claim("mqtt", T0, lease=timedelta(seconds=30), by="gw-1")
        assert ledger.release_claims(T0 + timedelta(seconds=29), owner=None) == 0
        assert ledger.claim("mqtt", T0 + timedelta(seconds=29)) == []
        after = T0 + timedelta(seconds=31)
        assert ledger.release_claims(after, owner=None) == 1  # resend: due at once
        (again,) = ledger.claim("mqtt", after, by="gw-1")
        assert again.attempts == 2

    def test_cancel_while_being_sent(self, ledger: SqliteLedger) -> None:
        """An entry under way when its alert is cancelled still counts as attempted."""
        sent = make_alert()
        untouched = make_alert()
        admit(ledger, sent, Planner(sinks=("radio",)))
        admit(ledger, untouched, Planner(sinks=("radio",)))
        (taken,) = ledger.claim("radio", T0)
        assert taken.key == sent.key
        assert taken.attempted
        for alert in (sent, untouched):
            admit(ledger, make_alert(msg_type=MsgType.CANCEL, references=(alert.key,)))
        (under_way,) = ledger.deliveries(sent.key)
        assert under_way.state is EntryState.SUPERSEDED
        assert under_way.reason.endswith("while being sent")
        assert under_way.attempted
        (never,) = ledger.deliveries(untouched.key)
        assert not never.attempted
        done = ledger.mark_delivered(taken.id, T0)
        assert (done.state, done.started_at, done.attempted) == (EntryState.DELIVERED, None, True)

    def test_claim_keeps_priority_order(self, ledger: SqliteLedger) -> None:
        routine = make_alert()
        admit(ledger, routine, Planner(priority=20))
        urgent = make_alert()
        admit(ledger, urgent, Planner(priority=0), received_at=T0 + timedelta(seconds=5))
        taken = ledger.claim("mqtt", T0 + timedelta(seconds=5), limit=5)
        assert [e.key for e in taken] == [urgent.key, routine.key]


class TestInDoubt:
    """An attempt under way at a crash may have reached its sink: it is counted, journalled,
    and resolved by the sink's policy at the next start."""

    def _crash_mid_attempt(self, open_ledger: OpenLedger, clock: FakeClock) -> AlertKey:
        with open_ledger(clock=clock) as led:
            alert = make_alert()
            admit(led, alert, Planner(sinks=("mqtt", "endec", "pager")))
            for sink in ("mqtt", "endec", "pager"):
                (taken,) = led.claim(sink, T0, lease=timedelta(minutes=5), by="gw-1")
                assert taken.attempts == 1  # counted before the bytes leave
            # the process dies here: no outcome is recorded
        return alert.key

    @staticmethod
    def _restart_at(backend: str, crash: datetime) -> datetime:
        """When a restarted instance finds the claims: at once for the single process of
        SQLite; on a shared store, once the dead instance's leases ran out."""
        return crash if backend == "sqlite" else crash + timedelta(minutes=6)

    def test_each_policy(self, open_ledger: OpenLedger, clock: FakeClock, backend: str) -> None:
        key = self._crash_mid_attempt(open_ledger, clock)
        policies = {"mqtt": "resend", "endec": "hold", "pager": "skip"}
        at = self._restart_at(backend, T0)
        with open_ledger(clock=clock) as led:
            if backend != "sqlite":  # the leases still run: a live instance's claims
                assert led.release_claims(T0, policies.__getitem__) == 0
            assert led.release_claims(at, policies.__getitem__) == 3
            entries = {e.sink: e for e in led.deliveries(key)}
            assert entries["mqtt"].state is EntryState.PENDING
            assert entries["mqtt"].next_attempt_at == at
            assert entries["endec"].state is EntryState.HELD
            assert entries["endec"].reason == (
                "in doubt: attempt 1 by gw-1 may have reached the sink and its outcome was"
                " never recorded: approving sends it again, perhaps a second time"
                " (in_doubt = hold)"
            )
            assert entries["pager"].state is EntryState.FAILED
            assert "not sent again" in entries["pager"].reason
            assert all(e.attempted for e in entries.values())
            assert all(e.attempts == 1 for e in entries.values())
            events = [j.event for j in led.journal(key)]
            assert events.count("in_doubt") == 3
            # Each journal line says the doubt once, then what became of the entry.
            details = [j.detail for j in led.journal(key) if j.event == "in_doubt"]
            assert all(d.count("in doubt") == 1 for d in details), details
            # Released once: a second look at the same instant finds nothing more.
            assert led.release_claims(at, policies.__getitem__) == 0

    def test_every_attempt_is_counted(
        self, open_ledger: OpenLedger, clock: FakeClock, backend: str
    ) -> None:
        """Two crashes mid-send, then a delivery: three attempts, not one."""
        with open_ledger(clock=clock) as led:
            alert = make_alert()
            admit(led, alert)
            led.claim("mqtt", T0, lease=timedelta(minutes=5))
        crash = T0
        for n in (1, 2):
            with open_ledger(clock=clock) as led:
                at = self._restart_at(backend, crash) + timedelta(seconds=1)
                assert led.release_claims(at) == 1
                (taken,) = led.claim("mqtt", at, lease=timedelta(minutes=5))
                assert taken.attempts == n + 1
                crash = at
        with open_ledger(clock=clock) as led:
            (entry,) = led.deliveries(alert.key)
            done = led.mark_delivered(entry.id, T0 + timedelta(seconds=3))
            assert (done.state, done.attempts) == (EntryState.DELIVERED, 3)

    def test_an_instance_starting_again_settles_its_own_claims_at_once(
        self, open_ledger: OpenLedger, clock: FakeClock, backend: str
    ) -> None:
        """On a shared store, a peer's running claims are left alone, but the instance that
        made them settles them as it starts again, without waiting for their lease."""
        key = self._crash_mid_attempt(open_ledger, clock)
        with open_ledger(clock=clock) as led:
            if backend != "sqlite":
                assert led.release_claims(T0, owner="gw-2") == 0
            assert led.release_claims(T0, owner="gw-1") == 3
            assert all(e.started_at is None for e in led.deliveries(key))

    def test_a_silent_instance_loses_its_claims(
        self, open_ledger: OpenLedger, clock: FakeClock, backend: str
    ) -> None:
        """Claims of an instance whose heartbeat lags its peers' newest by more than
        ``silent_after`` are settled before their lease runs out (shared stores); an outage
        that silences every instance alike condemns none. SQLite has one process, whose
        running claims no heartbeat condemns."""
        key = self._crash_mid_attempt(open_ledger, clock)
        silent = timedelta(seconds=10)
        with open_ledger(clock=clock) as led:
            led.heartbeat("gw-1", T0)
            led.heartbeat("gw-2", T0)
            later = T0 + timedelta(seconds=30)  # both silent alike: a store outage
            assert led.release_claims(later, owner=None, silent_after=silent) == 0
            led.heartbeat("gw-2", later)
            expected = 0 if backend == "sqlite" else 3
            assert led.release_claims(later, owner=None, silent_after=silent) == expected
            assert all((e.started_at is None) == bool(expected) for e in led.deliveries(key))

    def test_late_outcomes_are_fenced(self, open_ledger: OpenLedger, clock: FakeClock) -> None:
        """The outcome of a claim already settled in doubt changes nothing but settles the
        doubt of a delivery nobody else is making."""
        with open_ledger(clock=clock) as led:
            alert = make_alert()
            admit(led, alert, Planner(sinks=("endec", "mqtt", "pager")))
            taken = {
                sink: led.claim(sink, T0, lease=timedelta(seconds=30), by="gw-1")[0]
                for sink in ("endec", "mqtt", "pager")
            }
            later = T0 + timedelta(seconds=31)
            policies = {"endec": "hold", "mqtt": "resend", "pager": "resend"}
            assert led.release_claims(later, policies.__getitem__, owner=None) == 3
            # endec: held in doubt, then its attempt reports delivered: it went out once
            done, refused = led.mark_delivered_many(
                [taken["endec"].id], later, claims={taken["endec"].id: taken["endec"].started_at}
            )
            assert refused == []
            assert done[0].state is EntryState.DELIVERED
            assert led.holds() == []
            # mqtt: resent by another instance, then the first attempt reports: refused
            (again,) = led.claim("mqtt", later, by="gw-2")
            _done, (late,) = led.mark_delivered_many(
                [again.id], later, claims={again.id: taken["mqtt"].started_at}
            )
            assert "late outcome (delivered)" in str(late)
            assert led.mark_delivered_many([again.id], later, claims={again.id: again.started_at})
            # pager: its first attempt fails late: the resend stands
            with pytest.raises(EntryStateError, match="late outcome"):
                led.mark_failed(
                    taken["pager"].id, "no answer", retry_at=later, claimed_at=T0
                )
            (pager,) = [e for e in led.deliveries(alert.key) if e.sink == "pager"]
            assert (pager.state, pager.next_attempt_at) == (EntryState.PENDING, later)
            events = [j.event for j in led.journal(alert.key)]
            assert events.count("late_outcome") == 2

    def test_failed_attempt_after_claim_counts_once(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert())
        (taken,) = ledger.claim("mqtt", T0)
        after = ledger.mark_failed(taken.id, "broker said no", retry_at=T0)
        assert after.attempts == 1
        (again,) = ledger.claim("mqtt", T0)
        assert again.attempts == 2
        assert ledger.mark_delivered(again.id, T0).attempts == 2
