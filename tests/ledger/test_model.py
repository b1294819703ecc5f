"""A random mix of admissions and delivery reports always agrees with a simple model."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from cap_schemas.model import Alert, AlertKey, MsgType
from gateway.ledger import (
    TERMINAL_STATES,
    Decision,
    EntryState,
)
from gateway.storage.sqlite import SqliteLedger
from tests.ledger.conftest import T0, FakeClock, Planner, make_alert

SINKS = ("mqtt", "radio", "endec")
OPEN = {EntryState.PENDING, EntryState.HELD}


class LedgerMachine(RuleBasedStateMachine):
    """Admissions, updates, cancels, claims, failures, holds and expiry in any order."""

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ledger-model-"))
        self.clock = FakeClock()
        self.ledger = SqliteLedger(self.tmp / "ledger.sqlite3", clock=self.clock)
        self.alerts: dict[AlertKey, Alert] = {}
        # model: key -> sink -> state; expiry time per key
        self.model: dict[AlertKey, dict[str, EntryState]] = {}
        self.expires: dict[AlertKey, datetime] = {}
        self.delivered: set[tuple[AlertKey, str]] = set()

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _plan_and_admit(
        self, alert: Alert, sinks: list[str], held: list[bool], expire_minutes: int
    ) -> Decision:
        planner = Planner(
            sinks=tuple(sinks),
            held=tuple(held),
            expires=T0 + timedelta(minutes=expire_minutes),
        )
        result = self.ledger.admit(
            alert,
            source="model",
            received_at=self.clock.now(),
            plan=planner,
        )
        key = alert.key
        if result.decision is Decision.DUPLICATE:
            return result.decision
        for ref in result.superseded:
            for sink, state in self.model[ref].items():
                if state in OPEN:
                    self.model[ref][sink] = EntryState.SUPERSEDED
        self.model[key] = {
            s: (EntryState.HELD if h else EntryState.PENDING)
            for s, h in zip(sinks, held, strict=True)
        }
        if result.decision in (Decision.EXPIRED, Decision.STALE):
            assert planner.calls == []
            self.model[key] = {}
        self.expires[key] = T0 + timedelta(minutes=expire_minutes)
        return result.decision

    @rule(
        target=keys,
        sinks=st.lists(st.sampled_from(SINKS), unique=True, max_size=3),
        data=st.data(),
        expire_minutes=st.integers(1, 120),
    )
    def admit_new(self, sinks: list[str], data: st.DataObject, expire_minutes: int) -> AlertKey:
        held = data.draw(st.lists(st.booleans(), min_size=len(sinks), max_size=len(sinks)))
        alert = make_alert(sent=self.clock.now(), expires=T0 + timedelta(minutes=expire_minutes))
        decision = self._plan_and_admit(alert, sinks, held, expire_minutes)
        expected = Decision.EXPIRED if self.clock.now() >= self.expires[alert.key] else None
        if expected:
            assert decision is expected
        elif sinks and all(held):
            assert decision is Decision.HELD
        else:
            assert decision is Decision.NEW
        self.alerts[alert.key] = alert
        return alert.key

    @rule(key=keys)
    def admit_again(self, key: AlertKey) -> None:
        before = {s: e.state for s, e in ((e.sink, e) for e in self.ledger.deliveries(key))}
        result = self.ledger.admit(
            self.alerts[key],
            source="second-stream",
            received_at=self.clock.now(),
            plan=Planner(),
        )
        assert result.decision is Decision.DUPLICATE
        assert {e.sink: e.state for e in self.ledger.deliveries(key)} == before

    @rule(
        target=keys,
        ref=consumes(keys),
        cancel=st.booleans(),
        sinks=st.lists(st.sampled_from(SINKS), unique=True, max_size=3),
    )
    def admit_update(self, ref: AlertKey, cancel: bool, sinks: list[str]) -> AlertKey:
        alert = make_alert(
            sent=self.clock.now(),
            msg_type=MsgType.CANCEL if cancel else MsgType.UPDATE,
            references=(ref,),
            expires=T0 + timedelta(minutes=200),
        )
        decision = self._plan_and_admit(alert, sinks, [False] * len(sinks), 200)
        assert decision in (Decision.CANCEL, Decision.UPDATE, Decision.EXPIRED)
        for state in self.model[ref].values():
            assert state not in OPEN
        self.alerts[alert.key] = alert
        return alert.key

    @rule(sink=st.sampled_from(SINKS), outcome=st.sampled_from(["ok", "retry", "fail"]))
    def work(self, sink: str, outcome: str) -> None:
        now = self.clock.now()
        taken = self.ledger.claim(sink, now, lease=timedelta(seconds=1))
        if not taken:
            return
        (entry,) = taken
        assert self.model[entry.key][sink] is EntryState.PENDING
        if outcome == "ok":
            self.ledger.mark_delivered(entry.id, now)
            assert (entry.key, sink) not in self.delivered
            self.delivered.add((entry.key, sink))
            self.model[entry.key][sink] = EntryState.DELIVERED
        elif outcome == "retry":
            self.ledger.mark_failed(entry.id, "busy", retry_at=now + timedelta(seconds=5))
        else:
            self.ledger.mark_failed(entry.id, "refused", retry_at=None)
            self.model[entry.key][sink] = EntryState.FAILED

    @precondition(lambda self: bool(self.ledger.holds(limit=1)))
    @rule(approve=st.booleans())
    def operator(self, approve: bool) -> None:
        entry = self.ledger.holds(limit=1)[0]
        if approve:
            self.ledger.approve(entry.id)
            self.model[entry.key][entry.sink] = EntryState.PENDING
        else:
            self.ledger.reject(entry.id, "no")
            self.model[entry.key][entry.sink] = EntryState.FAILED

    @rule(minutes=st.integers(1, 30))
    def time_passes(self, minutes: int) -> None:
        now = self.clock.advance(minutes=minutes)
        for entry in self.ledger.expire_due(now):
            assert self.model[entry.key][entry.sink] in OPEN
            self.model[entry.key][entry.sink] = EntryState.EXPIRED
        for key, sinks in self.model.items():
            if self.expires[key] <= now:
                for sink, state in sinks.items():
                    assert state not in OPEN, (key, sink)

    @invariant()
    def agrees_with_model(self) -> None:
        for key, sinks in self.model.items():
            actual = {e.sink: e.state for e in self.ledger.deliveries(key)}
            assert actual == sinks, key
        counts = self.ledger.outbox_counts()
        expected: dict[tuple[str, EntryState], int] = {}
        for sinks in self.model.values():
            for sink, state in sinks.items():
                expected[(sink, state)] = expected.get((sink, state), 0) + 1
        assert counts == expected
        assert all(s in TERMINAL_STATES or s in OPEN for (_sink, s) in counts)


LedgerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerModel = LedgerMachine.TestCase
