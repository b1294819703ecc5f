"""Admission decisions: new, duplicate, update, cancel, expired, invalid, held, stale."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cap_schemas.model import AlertKey, MsgType, Severity, Status, Urgency, format_cap_datetime
from gateway.ledger import (
    Admission,
    AlertStatus,
    Decision,
    EntryState,
    LedgerError,
    PlanError,
    invalid_key,
)
from gateway.storage.sqlite import SqliteLedger
from tests.ledger.conftest import T0, FakeClock, OpenLedger, Planner, admit, make_alert, planned


class TestNewAndDuplicate:
    """A key is admitted once; every later copy is a duplicate that is never routed."""

    def test_first_copy_is_new_and_planned(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        plan = Planner(sinks=("mqtt", "radio"))
        result = admit(ledger, alert, plan)
        assert result == Admission(alert.key, Decision.NEW, (), "")
        assert plan.calls == [result]
        entries = ledger.deliveries(alert.key)
        assert [(e.sink, e.state) for e in entries] == [
            ("mqtt", EntryState.PENDING),
            ("radio", EntryState.PENDING),
        ]
        assert ledger.seen(alert.key)

    def test_second_stream_copy_is_duplicate_and_not_planned(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert, source="naad-1")
        plan = Planner()
        result = admit(ledger, alert, plan, source="naad-2", received_at=T0 + timedelta(seconds=2))
        assert result.decision is Decision.DUPLICATE
        assert "naad-1" in result.reason
        assert plan.calls == []
        assert len(ledger.deliveries(alert.key)) == 1
        stored = ledger.get(alert.key)
        assert stored is not None
        assert stored.source == "naad-1"
        assert stored.decision is Decision.NEW

    def test_duplicate_with_different_bytes_is_noted(self, ledger: SqliteLedger) -> None:
        alert = make_alert(raw=b"<alert>one</alert>")
        admit(ledger, alert)
        copy = make_alert(alert.identifier, raw=b"<alert>two</alert>")
        result = admit(ledger, copy)
        assert result.decision is Decision.DUPLICATE
        assert "bytes differ" in result.reason

    def test_duplicates_are_remembered_across_restart(
        self, open_ledger: OpenLedger, clock: FakeClock
    ) -> None:
        alert = make_alert()
        with open_ledger(clock=clock) as first:
            assert admit(first, alert).decision is Decision.NEW
        with open_ledger(clock=clock) as second:
            assert second.seen(alert.key)
            plan = Planner()
            assert admit(second, alert, plan).decision is Decision.DUPLICATE
            assert plan.calls == []
            assert len(second.deliveries(alert.key)) == 1

    def test_same_identifier_other_sent_is_a_new_key(self, ledger: SqliteLedger) -> None:
        first = make_alert("id-1")
        second = make_alert("id-1", sent=T0 + timedelta(minutes=1))
        assert admit(ledger, first).decision is Decision.NEW
        assert admit(ledger, second).decision is Decision.NEW

    def test_duplicate_is_journalled(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert, source="naad-1")
        admit(ledger, alert, source="naad-2")
        events = [(j.event, j.detail.split(":")[0]) for j in ledger.journal(alert.key)]
        assert ("duplicate", "from naad-2") in events


class TestUpdate:
    """An Update supersedes its references: their open deliveries are withdrawn."""

    def test_update_supersedes_pending_and_held_entries(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(
            ledger, original, Planner(sinks=("mqtt", "radio", "endec"), held=(False, False, True))
        )
        first = ledger.due("mqtt", T0)[0]
        ledger.mark_delivered(first.id, T0)
        update = make_alert(
            msg_type=MsgType.UPDATE, references=(original.key,), sent=T0 + timedelta(minutes=5)
        )
        plan = Planner(sinks=("mqtt", "radio"))
        result = admit(ledger, update, plan, received_at=T0 + timedelta(minutes=5))
        assert result.decision is Decision.UPDATE
        assert result.superseded == (original.key,)
        assert plan.calls[0].decision is Decision.UPDATE
        states = {e.sink: (e.state, e.reason) for e in ledger.deliveries(original.key)}
        assert states["mqtt"] == (EntryState.DELIVERED, "")
        assert states["radio"][0] is EntryState.SUPERSEDED
        assert states["endec"][0] is EntryState.SUPERSEDED
        assert str(update.key) in states["radio"][1]
        old = ledger.get(original.key)
        assert old is not None
        assert old.status is AlertStatus.SUPERSEDED
        assert old.superseded_by == update.key
        new = ledger.get(update.key)
        assert new is not None
        assert new.status is AlertStatus.ACTIVE
        assert new.references == (original.key,)
        assert [e.state for e in ledger.deliveries(update.key)] == [EntryState.PENDING] * 2

    def test_update_of_unknown_alert_is_routed_and_says_so(self, ledger: SqliteLedger) -> None:
        ghost = make_alert().key
        update = make_alert(msg_type=MsgType.UPDATE, references=(ghost,))
        result = admit(ledger, update)
        assert result.decision is Decision.UPDATE
        assert result.superseded == ()
        assert "unknown references" in result.reason
        assert str(ghost) in result.reason
        assert len(ledger.deliveries(update.key)) == 1

    def test_chain_of_updates(self, ledger: SqliteLedger) -> None:
        a = make_alert()
        b = make_alert(msg_type=MsgType.UPDATE, references=(a.key,), sent=T0 + timedelta(minutes=1))
        c = make_alert(
            msg_type=MsgType.UPDATE, references=(a.key, b.key), sent=T0 + timedelta(minutes=2)
        )
        for alert in (a, b, c):
            admit(ledger, alert)
        assert [s.key for s in ledger.active(T0)] == [c.key]
        assert {e.state for e in ledger.deliveries(a.key)} == {EntryState.SUPERSEDED}
        assert {e.state for e in ledger.deliveries(b.key)} == {EntryState.SUPERSEDED}

    def test_update_inherits_priority_of_what_it_replaces(self, ledger: SqliteLedger) -> None:
        urgent = make_alert(severity=Severity.EXTREME, urgency=Urgency.IMMEDIATE)
        admit(ledger, urgent, Planner(priority=0))
        update = make_alert(msg_type=MsgType.UPDATE, references=(urgent.key,))
        admit(ledger, update, Planner(priority=12))
        assert ledger.deliveries(update.key)[0].priority == 0


class TestSelfReference:
    """A message naming itself in references does not withdraw itself."""

    def test_update_referencing_itself(self, ledger: SqliteLedger) -> None:
        own = AlertKey("cap-pac@canada.ca", "self-ref", format_cap_datetime(T0))
        update = make_alert("self-ref", msg_type=MsgType.UPDATE, references=(own,))
        assert update.key == own
        result = admit(ledger, update)
        assert result.decision is Decision.UPDATE
        assert result.superseded == ()
        assert "references itself" in result.reason
        stored = ledger.get(own)
        assert stored is not None
        assert stored.status is AlertStatus.ACTIVE
        assert ledger.deliveries(own)[0].state is EntryState.PENDING


class TestCancel:
    """A Cancel withdraws its references and is itself delivered."""

    def test_cancel_withdraws_and_is_routed(self, ledger: SqliteLedger) -> None:
        original = make_alert(parameters=(("layer:SOREM:1.0:Broadcast_Immediately", "Yes"),))
        admit(ledger, original, Planner(sinks=("mqtt", "endec"), priority=0))
        cancel = make_alert(
            msg_type=MsgType.CANCEL, references=(original.key,), sent=T0 + timedelta(minutes=3)
        )
        plan = Planner(sinks=("mqtt", "endec"), priority=20)
        result = admit(ledger, cancel, plan, received_at=T0 + timedelta(minutes=3))
        assert result.decision is Decision.CANCEL
        assert result.superseded == (original.key,)
        assert {e.state for e in ledger.deliveries(original.key)} == {EntryState.SUPERSEDED}
        cancel_entries = ledger.deliveries(cancel.key)
        assert [e.state for e in cancel_entries] == [EntryState.PENDING] * 2
        # the cancel of a Broadcast-Immediately alert goes out at its priority
        assert {e.priority for e in cancel_entries} == {0}
        assert ledger.due("endec", T0 + timedelta(minutes=3))[0].key == cancel.key
        old = ledger.get(original.key)
        assert old is not None
        assert old.status is AlertStatus.CANCELLED
        stored_cancel = ledger.get(cancel.key)
        assert stored_cancel is not None
        assert stored_cancel.status is AlertStatus.CANCELLED  # never itself in force
        assert ledger.active(T0 + timedelta(minutes=3)) == []

    def test_cancel_does_not_reopen_delivered_entries(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original)
        entry = ledger.due("mqtt", T0)[0]
        ledger.mark_delivered(entry.id, T0)
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(original.key,))
        admit(ledger, cancel)
        assert ledger.deliveries(original.key)[0].state is EntryState.DELIVERED


class TestOtherSenders:
    """An Update or Cancel withdraws only its own sender's alerts unless configured."""

    def test_cancel_from_another_sender_is_ignored(self, ledger: SqliteLedger) -> None:
        original = make_alert(sender="cap-pac@canada.ca")
        admit(ledger, original)
        forged = make_alert(
            sender="intruder@example.org", msg_type=MsgType.CANCEL, references=(original.key,)
        )
        result = admit(ledger, forged)
        assert result.decision is Decision.CANCEL
        assert result.superseded == ()
        assert "another sender ignored" in result.reason
        assert ledger.deliveries(original.key)[0].state is EntryState.PENDING
        assert [s.key for s in ledger.active(T0)] == [original.key]

    def test_early_cancel_from_another_sender_does_not_make_stale(
        self, ledger: SqliteLedger
    ) -> None:
        original = make_alert(sender="cap-pac@canada.ca")
        forged = make_alert(
            sender="intruder@example.org", msg_type=MsgType.CANCEL, references=(original.key,)
        )
        admit(ledger, forged)
        assert admit(ledger, original).decision is Decision.NEW

    def test_cross_sender_references_when_allowed(
        self, open_ledger: OpenLedger, clock: FakeClock
    ) -> None:
        with open_ledger(clock=clock, cross_sender_references=True) as led:
            original = make_alert(sender="w-nws.webmaster@noaa.gov")
            admit(led, original)
            update = make_alert(
                sender="nws-office@noaa.gov", msg_type=MsgType.UPDATE, references=(original.key,)
            )
            assert admit(led, update).superseded == (original.key,)
            assert led.deliveries(original.key)[0].state is EntryState.SUPERSEDED


class TestStale:
    """An alert arriving after the update or cancel that names it is stored, never routed."""

    @pytest.mark.parametrize(
        ("msg_type", "status"),
        [(MsgType.UPDATE, AlertStatus.SUPERSEDED), (MsgType.CANCEL, AlertStatus.CANCELLED)],
    )
    def test_late_original(
        self, ledger: SqliteLedger, msg_type: MsgType, status: AlertStatus
    ) -> None:
        original = make_alert()
        later = make_alert(msg_type=msg_type, references=(original.key,))
        admit(ledger, later)
        plan = Planner()
        result = admit(ledger, original, plan)
        assert result.decision is Decision.STALE
        assert str(later.key) in result.reason
        assert plan.calls == []
        assert ledger.deliveries(original.key) == []
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is status
        assert stored.superseded_by == later.key


class TestExpired:
    """An alert already expired when received is stored and never routed."""

    def test_expired_on_receipt(self, ledger: SqliteLedger) -> None:
        alert = make_alert(expires=T0 - timedelta(seconds=1))
        plan = Planner()
        result = admit(ledger, alert, plan)
        assert result.decision is Decision.EXPIRED
        assert plan.calls == []
        assert ledger.deliveries(alert.key) == []
        stored = ledger.get(alert.key)
        assert stored is not None
        assert stored.status is AlertStatus.EXPIRED
        assert stored.raw == alert.raw
        assert admit(ledger, alert).decision is Decision.DUPLICATE

    def test_expiring_exactly_at_receipt_is_expired(self, ledger: SqliteLedger) -> None:
        alert = make_alert(expires=T0)
        assert admit(ledger, alert).decision is Decision.EXPIRED

    def test_without_expires_is_new(self, ledger: SqliteLedger) -> None:
        alert = make_alert(no_expiry=True)
        assert admit(ledger, alert).decision is Decision.NEW

    def test_expired_update_still_withdraws_what_it_replaces(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original)
        update = make_alert(
            msg_type=MsgType.UPDATE, references=(original.key,), expires=T0 - timedelta(hours=1)
        )
        result = admit(ledger, update)
        assert result.decision is Decision.EXPIRED
        assert result.superseded == (original.key,)
        assert ledger.deliveries(original.key)[0].state is EntryState.SUPERSEDED


class TestHeld:
    """An alert whose every planned delivery is held is decided 'held'."""

    def test_all_held(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        result = admit(ledger, alert, Planner(sinks=("endec", "radio"), held=True))
        assert result.decision is Decision.HELD
        assert [e.state for e in ledger.deliveries(alert.key)] == [EntryState.HELD] * 2
        assert ledger.due("endec", T0) == []
        stored = ledger.get(alert.key)
        assert stored is not None
        assert stored.decision is Decision.HELD

    def test_some_held_is_new(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        result = admit(ledger, alert, Planner(sinks=("mqtt", "endec"), held=(False, True)))
        assert result.decision is Decision.NEW

    def test_empty_plan_is_new_without_deliveries(self, ledger: SqliteLedger) -> None:
        alert = make_alert(status=Status.EXERCISE)
        result = admit(ledger, alert, Planner(sinks=()))
        assert result.decision is Decision.NEW
        assert "no delivery planned" in result.reason
        assert ledger.deliveries(alert.key) == []


class TestInvalid:
    """An invalid document is kept with its reason and bytes, keyed by its hash."""

    def test_record_invalid(self, ledger: SqliteLedger) -> None:
        raw = b"<alert><broken"
        ledger.record_invalid(raw, source="naad-1", received_at=T0, reason="line 1: unclosed tag")
        ledger.record_invalid(
            raw, source="naad-2", received_at=T0 + timedelta(seconds=1), reason="same"
        )
        (record,) = ledger.invalid_records()
        assert record.raw == raw
        assert record.count == 2
        assert record.reason == "line 1: unclosed tag"
        assert record.source == "naad-1"
        assert record.last_received_at == T0 + timedelta(seconds=1)
        journal = ledger.journal(invalid_key(raw))
        assert [j.event for j in journal] == ["invalid", "invalid"]
        assert "unclosed tag" in journal[0].detail

    def test_oversized_invalid_document_is_cut(self, open_ledger: OpenLedger) -> None:
        with open_ledger(max_invalid_bytes=1000) as led:
            raw = b"<" * 5000
            led.record_invalid(raw, source="http", received_at=T0, reason="too deep")
            (record,) = led.invalid_records()
            assert record.raw == raw[:1000]
            assert record.reason == "too deep (kept the first 1000 of 5000 bytes)"
            assert record.key == invalid_key(raw)


class TestAtomicity:
    """A plan that fails leaves nothing behind; a refused plan is a PlanError."""

    def test_plan_error_rolls_back(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original)
        update = make_alert(msg_type=MsgType.UPDATE, references=(original.key,))

        def broken(_admission: Admission) -> list:  # type: ignore[type-arg]
            raise RuntimeError("renderer crashed")

        with pytest.raises(RuntimeError, match="renderer crashed"):
            admit(ledger, update, broken)
        assert not ledger.seen(update.key)
        assert ledger.journal(update.key) == []
        assert ledger.deliveries(original.key)[0].state is EntryState.PENDING
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is AlertStatus.ACTIVE
        # and it can be admitted afterwards
        assert admit(ledger, update).decision is Decision.UPDATE

    def test_same_sink_twice_is_refused(self, ledger: SqliteLedger) -> None:
        alert = make_alert()

        def twice(_admission: Admission) -> list:  # type: ignore[type-arg]
            return [planned("mqtt", route="a"), planned("mqtt", route="b")]

        with pytest.raises(PlanError, match="'mqtt' twice"):
            admit(ledger, alert, twice)
        assert not ledger.seen(alert.key)

    def test_plan_returning_garbage_is_refused(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        with pytest.raises(PlanError, match="not PlannedDelivery"):
            admit(ledger, alert, lambda _a: ["mqtt"])  # type: ignore[list-item]
        with pytest.raises(PlanError, match="must be bytes"):
            admit(ledger, alert, lambda _a: [planned("mqtt", parts=("text",))])  # type: ignore[arg-type]
        assert not ledger.seen(alert.key)

    def test_plan_reads_the_ledger_as_it_was_before_the_decision(
        self, ledger: SqliteLedger
    ) -> None:
        original = make_alert(headline="first version")
        admit(ledger, original)
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(original.key,))
        looked_up: list[str] = []

        def plan(admission: Admission) -> list:  # type: ignore[type-arg]
            # a router rendering a cancel looks at what it cancels; nothing is recorded yet
            for ref in admission.superseded:
                stored = ledger.get(ref)
                assert stored is not None
                looked_up.append(stored.headline)
                assert stored.status is AlertStatus.ACTIVE
                assert ledger.deliveries(ref)[0].state is EntryState.PENDING
            assert not ledger.seen(cancel.key)
            return [planned("mqtt")]

        assert admit(ledger, cancel, plan).decision is Decision.CANCEL
        assert looked_up == ["first version"]
        assert ledger.deliveries(original.key)[0].state is EntryState.SUPERSEDED

    def test_no_write_transaction_is_open_while_planning(self, ledger: SqliteLedger) -> None:
        """Rendering is slow (XSD checks, audio): other writers go on meanwhile."""
        alert = make_alert()

        def plan(_admission: Admission) -> list:  # type: ignore[type-arg]
            ledger.record_invalid(b"x", source="s", received_at=T0, reason="r")
            return [planned("mqtt")]

        assert admit(ledger, alert, plan).decision is Decision.NEW
        assert len(ledger.invalid_records()) == 1

    def test_a_cancel_admitted_while_planning_makes_the_alert_stale(
        self, ledger: SqliteLedger
    ) -> None:
        """The facts changed between decision and record: the alert is decided again."""
        alert = make_alert()
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(alert.key,))
        calls: list[Decision] = []

        def plan(admission: Admission) -> list:  # type: ignore[type-arg]
            calls.append(admission.decision)
            if len(calls) == 1:  # another feed's cancel lands while this alert is rendered
                assert admit(ledger, cancel).decision is Decision.CANCEL
            return [planned("mqtt")]

        admission = admit(ledger, alert, plan)
        assert calls == [Decision.NEW]  # decided again: stale, so not planned again
        assert admission.decision is Decision.STALE
        assert ledger.deliveries(alert.key) == []
        stored = ledger.get(alert.key)
        assert stored is not None
        assert stored.status is AlertStatus.CANCELLED

    def test_a_claim_while_planning_an_update_reaches_that_sink(
        self, ledger: SqliteLedger
    ) -> None:
        """A delivery of the original that starts while its update is rendered is seen:
        the update is planned again, knowing that sink may have the original."""
        original = make_alert()
        admit(ledger, original, Planner(sinks=("radio",)))
        update = make_alert(msg_type=MsgType.UPDATE, references=(original.key,))
        reached: list[tuple[tuple[str, str], ...]] = []

        def plan(admission: Admission) -> list:  # type: ignore[type-arg]
            reached.append(admission.reached)
            if len(reached) == 1:
                assert len(ledger.claim("radio", T0)) == 1
            return [planned(sink) for sink, _route in admission.reached]

        admission = admit(ledger, update, plan)
        assert reached == [(), (("radio", "r1"),)]
        assert admission.decision is Decision.UPDATE
        assert [e.sink for e in ledger.deliveries(update.key)] == ["radio"]
        (entry,) = ledger.deliveries(original.key)
        assert entry.state is EntryState.SUPERSEDED
        assert "while being sent" in entry.reason

    def test_naive_received_at_is_refused(self, ledger: SqliteLedger) -> None:
        with pytest.raises(ValueError, match="no timezone"):
            admit(ledger, make_alert(), received_at=T0.replace(tzinfo=None))


class TestSummary:
    """The stored alert carries what the API and MQTT summaries show."""

    def test_summary_fields(self, ledger: SqliteLedger) -> None:
        alert = make_alert(
            severity=Severity.SEVERE,
            urgency=Urgency.IMMEDIATE,
            event="tornado",
            headline="tornado warning",
            areas=("Kent County", "Essex County"),
            infos=2,
            status=Status.EXERCISE,
        )
        admit(ledger, alert, source="naad-2")
        (stored,) = ledger.active(T0)
        assert stored.raw == b""  # lists leave the document out
        assert stored.raw_size == len(alert.raw)
        full = ledger.get(alert.key)
        assert full is not None
        assert full.raw == alert.raw
        summary = full.summary()
        assert summary["key"] == str(alert.key)
        assert summary["status"] == "active"
        assert summary["msg_type"] == "Alert"
        assert summary["cap_status"] == "Exercise"
        assert summary["event"] == "tornado"
        assert summary["severity"] == "Severe"
        assert summary["urgency"] == "Immediate"
        assert summary["headline"] == "tornado warning"
        assert summary["sender_name"] == "Environment Canada"
        assert summary["areas"] == ["Kent County", "Essex County"]
        assert summary["expires"] == (T0 + timedelta(hours=6)).isoformat()
        assert summary["received_at"] == T0.isoformat()
        assert summary["source"] == "naad-2"
        assert summary["decision"] == "new"
        assert summary["references"] == []

    def test_alert_without_info(self, ledger: SqliteLedger) -> None:
        alert = make_alert(infos=0)
        admit(ledger, alert)
        stored = ledger.get(alert.key)
        assert stored is not None
        assert (stored.event, stored.severity, stored.areas, stored.expires) == ("", "", (), None)

    def test_hostile_key_text_round_trips(self, ledger: SqliteLedger) -> None:
        alert = make_alert("id,with,commas and 'quote\"%s?:x", sender="x'); DROP TABLE alerts;--")
        admit(ledger, alert)
        assert ledger.seen(alert.key)
        stored = ledger.get(alert.key)
        assert stored is not None
        assert stored.key == alert.key
        assert admit(ledger, alert).decision is Decision.DUPLICATE

    def test_nul_in_a_key(self, ledger: SqliteLedger, backend: str) -> None:
        """XML cannot carry NUL, so a parsed alert never has one; a key made by hand with one
        round trips in SQLite and is refused, with the reason, by PostgreSQL (whose text
        cannot hold it) -- never stored half."""
        alert = make_alert("id\x00nul")
        if backend == "sqlite":
            admit(ledger, alert)
            assert ledger.seen(alert.key)
        else:
            with pytest.raises(LedgerError, match="NUL"):
                admit(ledger, alert)
            assert ledger.alerts() == []


class TestAdmissionBatch:
    """Admissions inside ``admission_batch`` share one durable commit where the backend can
    (SQLite): each sees the batch's earlier ones, one that fails is undone alone, and a
    batch whose commit fails made none of them."""

    def test_one_commit_and_each_sees_the_earlier_ones(
        self, ledger: SqliteLedger, backend: str
    ) -> None:
        commits = getattr(ledger, "_commits", 0)
        first = make_alert("batch-1")
        update = make_alert(
            "batch-2", msg_type=MsgType.UPDATE, references=[first.key], sent=T0 + timedelta(1)
        )
        with ledger.admission_batch() as shared:
            decisions = [admit(ledger, a).decision for a in (first, first, update)]
        assert shared is (backend == "sqlite")
        assert decisions == [Decision.NEW, Decision.DUPLICATE, Decision.UPDATE]
        stored = ledger.get(first.key)
        assert stored is not None
        assert stored.status is AlertStatus.SUPERSEDED
        if backend == "sqlite":
            assert ledger._commits == commits + 1  # one synced commit for the three

    def test_a_failed_admission_is_undone_alone(self, ledger: SqliteLedger) -> None:
        def refuse(_admission: Admission) -> list[Any]:
            raise PlanError("no route today")

        ok, failing, after = (make_alert(f"alone-{n}") for n in range(3))
        with ledger.admission_batch():
            admit(ledger, ok)
            with pytest.raises(PlanError, match="no route today"):
                admit(ledger, failing, refuse)
            admit(ledger, after)
        assert ledger.seen(ok.key)
        assert ledger.seen(after.key)
        assert not ledger.seen(failing.key)
        assert ledger.journal(failing.key) == []
        assert len(ledger.deliveries(ok.key)) == len(ledger.deliveries(after.key)) == 1

    def test_facts_read_in_a_batch_hold_only_inside_it(self, db_path: Path) -> None:
        """Inside the batch's write transaction nothing else can change what an admission
        read, so its facts are not read again; outside it they are checked again."""
        led = SqliteLedger(db_path)
        try:
            alert = make_alert("in-batch")
            with led.admission_batch():
                facts = led.facts(alert.key)
                assert led._unchanged(facts)
            assert not led._unchanged(facts)  # the batch is over: read again before a record
            outside = led.facts(alert.key)
            assert outside.version is not None
            assert outside.version > 0
            assert led._unchanged(outside)
        finally:
            led.close()

    def test_a_batch_rolled_back_under_it_makes_none(self, db_path: Path) -> None:
        """Should SQLite roll the whole transaction back (an I/O error does), the next
        admission and the batch fail: none of its admissions was made, none is taken for
        made."""
        led = SqliteLedger(db_path)
        try:
            first, second = make_alert("gone-1"), make_alert("gone-2")

            def batch() -> None:
                with led.admission_batch():
                    admit(led, first)
                    led._conn.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
                    with pytest.raises(LedgerError, match="the batch's transaction was rolled"):
                        admit(led, second)

            with pytest.raises(LedgerError, match="commit failed"):
                batch()
            assert not led.seen(first.key)
            assert not led.seen(second.key)
            admit(led, second)  # the ledger goes on
            assert led.seen(second.key)
        finally:
            led.close()


class TestWhereAdmissionsRun:
    """Only a store that waits on nothing but a quick local disk lets a batch of admissions
    run on the daemon's event loop: never one across a network."""

    def test_works_inline(self, ledger: SqliteLedger, backend: str) -> None:
        assert ledger.works_inline() is (backend == "sqlite")
