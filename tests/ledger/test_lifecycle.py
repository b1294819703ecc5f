"""Alerts in force, going out of force, the journal, and how long keys are remembered."""

from __future__ import annotations

from datetime import timedelta

from cap_schemas.model import MsgType
from gateway.ledger import AlertStatus, Decision, EntryState
from gateway.storage.sqlite import SqliteLedger
from tests.ledger.conftest import T0, FakeClock, OpenLedger, Planner, admit, make_alert


class TestActive:
    """active(now) lists alerts not cancelled, superseded or expired."""

    def test_active_filters_by_status_and_expiry(self, ledger: SqliteLedger) -> None:
        live = make_alert(expires=T0 + timedelta(hours=2))
        short = make_alert(expires=T0 + timedelta(minutes=5))
        replaced = make_alert()
        endless = make_alert(no_expiry=True)
        for alert in (live, short, replaced, endless):
            admit(ledger, alert)
        update = make_alert(msg_type=MsgType.UPDATE, references=(replaced.key,))
        admit(ledger, update)
        keys = {s.key for s in ledger.active(T0 + timedelta(minutes=1))}
        assert keys == {live.key, short.key, endless.key, update.key}
        keys = {s.key for s in ledger.active(T0 + timedelta(minutes=5))}
        assert keys == {live.key, endless.key, update.key}

    def test_active_includes_raw_on_request(self, ledger: SqliteLedger) -> None:
        alert = make_alert()
        admit(ledger, alert)
        (stored,) = ledger.active(T0, with_raw=True)
        assert stored.raw == alert.raw

    def test_recent_alerts_newest_first(self, ledger: SqliteLedger) -> None:
        alerts = [make_alert() for _ in range(5)]
        for n, alert in enumerate(alerts):
            admit(ledger, alert, received_at=T0 + timedelta(minutes=n))
        newest = ledger.alerts(limit=2)
        assert [s.key for s in newest] == [alerts[4].key, alerts[3].key]
        older = ledger.alerts(limit=10, before=newest[-1].received_at)
        assert [s.key for s in older] == [alerts[2].key, alerts[1].key, alerts[0].key]


class TestDeactivation:
    """The daemon learns which alerts went out of force, to clear their retained topics."""

    def test_expire_alerts_returns_each_once(self, ledger: SqliteLedger) -> None:
        short = make_alert(expires=T0 + timedelta(minutes=5))
        long = make_alert(expires=T0 + timedelta(hours=5))
        admit(ledger, short)
        admit(ledger, long)
        assert ledger.expire_alerts(T0 + timedelta(minutes=4)) == []
        (gone,) = ledger.expire_alerts(T0 + timedelta(minutes=5))
        assert (gone.key, gone.status) == (short.key, AlertStatus.EXPIRED)
        assert ledger.expire_alerts(T0 + timedelta(minutes=6)) == []
        stored = ledger.get(short.key)
        assert stored is not None
        assert stored.status is AlertStatus.EXPIRED
        assert "expired" in [j.event for j in ledger.journal(short.key)]

    def test_alert_without_expiry_goes_out_with_its_memory(self, open_ledger: OpenLedger) -> None:
        clock = FakeClock()
        with open_ledger(clock=clock, dedup_floor=timedelta(days=2)) as led:
            alert = make_alert(no_expiry=True)
            admit(led, alert)
            assert led.expire_alerts(T0 + timedelta(days=1)) == []
            assert [s.key for s in led.expire_alerts(T0 + timedelta(days=2))] == [alert.key]

    def test_deactivated_since_cursor(self, ledger: SqliteLedger) -> None:
        a = make_alert(expires=T0 + timedelta(minutes=30))
        b = make_alert()
        c = make_alert()
        for alert in (a, b, c):
            admit(ledger, alert)
        t1 = T0 + timedelta(minutes=10)
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(b.key,))
        admit(ledger, cancel, received_at=t1)
        update = make_alert(msg_type=MsgType.UPDATE, references=(c.key,))
        admit(ledger, update, received_at=t1 + timedelta(minutes=1))
        ledger.expire_alerts(T0 + timedelta(minutes=30))

        first = ledger.deactivated_since(T0)
        assert [(s.key, s.status) for s in first] == [
            (b.key, AlertStatus.CANCELLED),
            (c.key, AlertStatus.SUPERSEDED),
            (a.key, AlertStatus.EXPIRED),
        ]
        cursor = first[1].status_changed_at
        assert cursor is not None
        assert [s.key for s in ledger.deactivated_since(cursor)] == [a.key]
        # a Cancel message is never itself in force, so it is never "deactivated"
        assert cancel.key not in {s.key for s in first}

    def test_pages_never_split_one_instant(self, ledger: SqliteLedger) -> None:
        early = make_alert(expires=T0 + timedelta(minutes=1))
        admit(ledger, early)
        batch = [make_alert(expires=T0 + timedelta(minutes=5)) for _ in range(5)]
        for alert in batch:
            admit(ledger, alert)
        late = make_alert(expires=T0 + timedelta(minutes=9))
        admit(ledger, late)
        ledger.expire_alerts(T0 + timedelta(minutes=1))
        ledger.expire_alerts(T0 + timedelta(minutes=5))
        ledger.expire_alerts(T0 + timedelta(minutes=9))
        seen: list[object] = []
        cursor = T0
        while page := ledger.deactivated_since(cursor, limit=2):
            seen.extend(s.key for s in page)
            last = page[-1].status_changed_at
            assert last is not None
            cursor = last
        assert seen == [early.key, *(a.key for a in batch), late.key]
        # the second page held the whole instant, more than the limit
        assert len(ledger.deactivated_since(T0 + timedelta(minutes=1), limit=2)) == 5


class TestJournal:
    """Every admission and delivery change is in the journal, oldest first."""

    def test_journal_of_one_delivery(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        alert = make_alert()
        admit(ledger, alert, Planner(sinks=("endec",), held=True))
        (held,) = ledger.holds()
        clock.advance(minutes=2)
        ledger.approve(held.id)
        ledger.mark_failed(held.id, "ENDEC busy", retry_at=T0 + timedelta(minutes=3))
        ledger.mark_delivered(held.id, T0 + timedelta(minutes=3))
        lines = ledger.journal(alert.key)
        assert [j.event for j in lines] == [
            "held",
            "admitted",
            "approved",
            "retry_scheduled",
            "delivered",
        ]
        assert {j.entry_id for j in lines if j.event != "admitted"} == {held.id}
        assert {j.sink for j in lines if j.event != "admitted"} == {"endec"}
        assert lines[2].at == T0 + timedelta(minutes=2)
        assert lines[-1].at == T0 + timedelta(minutes=3)
        assert ledger.journal(alert.key, limit=2) == lines[:2]
        window = ledger.journal_between(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
        assert [j.event for j in window] == ["approved", "retry_scheduled"]


class TestPrune:
    """Keys are remembered until max(expires, received_at + floor), then forgotten."""

    def test_floor_protects_short_alerts(self, open_ledger: OpenLedger) -> None:
        clock = FakeClock()
        with open_ledger(clock=clock) as led:  # default floor: 7 days
            short = make_alert(expires=T0 + timedelta(hours=1))
            admit(led, short)
            (entry,) = led.due("mqtt", T0)
            led.mark_delivered(entry.id, T0)
            led.expire_alerts(T0 + timedelta(days=1))
            assert led.prune(T0 + timedelta(days=6, hours=23)) == 0
            assert admit(led, short).decision is Decision.DUPLICATE
            assert led.prune(T0 + timedelta(days=7)) == 1
            assert not led.seen(short.key)
            assert led.deliveries(short.key) == []

    def test_long_alerts_remembered_until_expiry(self, open_ledger: OpenLedger) -> None:
        with open_ledger(dedup_floor=timedelta(days=1)) as led:
            long = make_alert(expires=T0 + timedelta(days=10))
            admit(led, long, Planner(sinks=()))
            led.expire_alerts(T0 + timedelta(days=10))
            assert led.prune(T0 + timedelta(days=9)) == 0
            assert led.seen(long.key)
            assert led.prune(T0 + timedelta(days=10)) == 1
            assert not led.seen(long.key)

    def test_active_alert_or_open_entry_is_kept(self, open_ledger: OpenLedger) -> None:
        with open_ledger(dedup_floor=timedelta(days=1)) as led:
            endless = make_alert(no_expiry=True)
            admit(led, endless, Planner(sinks=()))
            stuck = make_alert(expires=T0 + timedelta(hours=1))
            admit(led, stuck, Planner(expires=None))
            led.expire_alerts(T0 + timedelta(hours=2))  # not yet past endless's floor
            # endless is still active, stuck still has a pending delivery
            assert led.prune(T0 + timedelta(days=30)) == 0
            assert led.seen(endless.key)
            assert led.seen(stuck.key)
            (entry,) = led.due("mqtt", T0 + timedelta(days=30))
            led.mark_failed(entry.id, "gave up", retry_at=None)
            assert [s.key for s in led.expire_alerts(T0 + timedelta(days=30))] == [endless.key]
            assert led.prune(T0 + timedelta(days=30)) == 2

    def test_prune_survives_restart_and_floor_is_configurable(
        self, open_ledger: OpenLedger
    ) -> None:
        alert = make_alert(expires=T0 + timedelta(minutes=10))
        with open_ledger(dedup_floor=timedelta(hours=1)) as led:
            admit(led, alert, Planner(sinks=()))
        with open_ledger(dedup_floor=timedelta(hours=1)) as led:
            led.expire_alerts(T0 + timedelta(minutes=30))
            assert led.prune(T0 + timedelta(minutes=59)) == 0
            assert admit(led, alert).decision is Decision.DUPLICATE
            assert led.prune(T0 + timedelta(hours=1)) == 1
            assert admit(led, alert, received_at=T0 + timedelta(hours=1)).decision is (
                Decision.EXPIRED
            )

    def test_invalid_records_and_journal_are_pruned(self, open_ledger: OpenLedger) -> None:
        with open_ledger(
            dedup_floor=timedelta(days=1),
            journal_retention=timedelta(days=3),
            clock=FakeClock(),
        ) as led:
            led.record_invalid(b"junk", source="naad-1", received_at=T0, reason="not XML")
            alert = make_alert()
            admit(led, alert)
            assert led.prune(T0 + timedelta(days=1)) == 1
            assert led.invalid_records() == []
            assert led.journal(alert.key) != []
            led.prune(T0 + timedelta(days=4))
            assert led.journal(alert.key) == []
            # the alert itself is still pending delivery: kept
            assert led.deliveries(alert.key)[0].state is EntryState.PENDING
