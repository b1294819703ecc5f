"""Provenance: an update or cancel changes an alert only when it is at least as trusted, and a
held message withdraws nothing until an operator approves it."""

from __future__ import annotations

from datetime import timedelta

from cap_schemas.model import MsgType
from gateway.ledger import (
    AlertStatus,
    Decision,
    EntryState,
    Facts,
    Known,
    Provenance,
    decide,
    may_change,
)
from gateway.storage.sqlite import SqliteLedger
from tests.ledger.conftest import T0, Planner, make_alert

SIGNED = Provenance("http", door="verified", signature="valid", signer="Test Signer")
AUTHENTICATED = Provenance("http", door="authenticated")
ANONYMOUS = Provenance("mqtt", door="anonymous")


def admit(led: SqliteLedger, alert, provenance=None, hold="", sinks=("mqtt", "radio")):  # type: ignore[no-untyped-def]
    return led.admit(
        alert,
        source="test",
        received_at=T0,
        plan=Planner(sinks=sinks),
        provenance=provenance,
        hold=hold,
    )


class TestTrustLevels:
    """An alert's level: verified when signed, else its door's (never verified unsigned)."""

    def test_levels(self) -> None:
        assert SIGNED.level == "verified"
        assert AUTHENTICATED.level == "authenticated"
        assert ANONYMOUS.level == "anonymous"
        assert Provenance("x", door="anonymous", signature="valid").level == "verified"
        assert Provenance("x", door="verified").level == "authenticated"

    def test_may_change(self) -> None:
        old = Known(
            key=make_alert().key,
            msg_type="Alert",
            status=AlertStatus.ACTIVE,
            priority=5,
            source="http",
            received_at=T0,
            raw_sha256="",
            trust="verified",
        )
        assert "is verified" in may_change(ANONYMOUS, old)
        assert "authenticated" in may_change(AUTHENTICATED, old)
        assert may_change(SIGNED, old) == ""
        assert may_change(Provenance("mqtt", approved_by="alice"), old) == ""
        assert may_change(None, old) == ""


class TestProvenanceRule:
    """An unsigned cancel of a signed alert waits for an operator; the alert stays in force."""

    def test_unsigned_cancel_of_signed_alert_is_held(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        assert admit(ledger, original, SIGNED).decision is Decision.NEW
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(original.key,))
        admission = admit(ledger, cancel, ANONYMOUS)
        assert admission.decision is Decision.HELD
        assert admission.reason.startswith("provenance: ")
        assert admission.superseded == ()
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is AlertStatus.ACTIVE
        assert stored.provenance == Provenance(
            "test", door="verified", signature="valid", signer="Test Signer"
        )
        assert {e.state for e in ledger.deliveries(original.key)} == {EntryState.PENDING}
        # The cancel itself is held everywhere, and goes where the original went.
        assert {e.state for e in ledger.deliveries(cancel.key)} == {EntryState.HELD}
        held = ledger.get(cancel.key)
        assert held is not None
        assert held.pending_refs is True
        assert held.summary()["trust"]["level"] == "anonymous"

    def test_approval_applies_the_withdrawal(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original, SIGNED)
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(original.key,))
        admit(ledger, cancel, ANONYMOUS)
        first = ledger.deliveries(cancel.key)[0]
        approved = ledger.approve(first.id, by="alice")
        assert approved.state is EntryState.PENDING
        assert approved.reason == "approved by alice"
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is AlertStatus.CANCELLED
        assert {e.state for e in ledger.deliveries(original.key)} == {EntryState.SUPERSEDED}
        assert "approved by alice" in ledger.deliveries(original.key)[0].reason
        after = ledger.get(cancel.key)
        assert after is not None
        assert after.pending_refs is False
        assert after.provenance is not None
        assert after.provenance.approved_by == "alice"
        # A second approval (another sink of the same cancel) withdraws nothing more.
        second = ledger.deliveries(cancel.key)[1]
        ledger.approve(second.id, by="bob")
        events = [j.event for j in ledger.journal(cancel.key)]
        assert events.count("approved") == 3  # two entries, one alert-level approval

    def test_at_least_as_trusted_changes_at_once(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original, AUTHENTICATED)
        update = make_alert(msg_type=MsgType.UPDATE, references=(original.key,))
        assert admit(ledger, update, AUTHENTICATED).decision is Decision.UPDATE
        signed_cancel = make_alert(msg_type=MsgType.CANCEL, references=(update.key,))
        assert admit(ledger, signed_cancel, SIGNED).decision is Decision.CANCEL
        stored = ledger.get(update.key)
        assert stored is not None
        assert stored.status is AlertStatus.CANCELLED

    def test_signed_update_of_signed_alert(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original, SIGNED)
        update = make_alert(msg_type=MsgType.UPDATE, references=(original.key,))
        assert admit(ledger, update, SIGNED).superseded == (original.key,)

    def test_rejected_cancel_never_withdraws(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original, SIGNED)
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(original.key,))
        admit(ledger, cancel, ANONYMOUS)
        for entry in ledger.deliveries(cancel.key):
            ledger.reject(entry.id, "not from the issuer")
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is AlertStatus.ACTIVE

    def test_expired_anonymous_update_withdraws_nothing(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original, SIGNED)
        update = make_alert(
            msg_type=MsgType.UPDATE,
            references=(original.key,),
            sent=T0 - timedelta(hours=2),
            expires=T0 - timedelta(hours=1),
        )
        admission = admit(ledger, update, ANONYMOUS)
        assert admission.decision is Decision.EXPIRED
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is AlertStatus.ACTIVE


class TestHeldMessagesWithdrawNothing:
    """An update held for any reason (a validation hold) leaves what it names alone."""

    def test_validation_held_update(self, ledger: SqliteLedger) -> None:
        original = make_alert()
        admit(ledger, original, AUTHENTICATED)
        (entry,) = ledger.claim("mqtt", T0)
        ledger.mark_delivered(entry.id, T0)
        update = make_alert(msg_type=MsgType.UPDATE, references=(original.key,))
        admission = admit(ledger, update, AUTHENTICATED, hold="1 validation error(s), first xsd")
        assert admission.decision is Decision.HELD
        assert admission.reason.startswith("1 validation error")
        assert admission.reached == (("mqtt", "r1"),)
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is AlertStatus.ACTIVE
        radio = next(e for e in ledger.deliveries(original.key) if e.sink == "radio")
        assert radio.state is EntryState.PENDING
        ledger.approve(ledger.deliveries(update.key)[0].id)
        stored = ledger.get(original.key)
        assert stored is not None
        assert stored.status is AlertStatus.SUPERSEDED

    def test_decide_is_pure_and_defers(self) -> None:
        original = make_alert()
        known = Known(
            key=original.key,
            msg_type="Alert",
            status=AlertStatus.ACTIVE,
            priority=3,
            source="http",
            received_at=T0,
            raw_sha256="",
            reached=(("radio", "r"),),
            trust="verified",
        )
        cancel = make_alert(msg_type=MsgType.CANCEL, references=(original.key,))
        verdict = decide(
            cancel, Facts(referenced=(known,)), received_at=T0, provenance=ANONYMOUS
        )
        assert verdict.withdraw == ()
        assert verdict.deferred == (known,)
        assert verdict.admission.hold.startswith("provenance: ")
        assert verdict.admission.reached == (("radio", "r"),)
        assert verdict.ref_priority == 3
