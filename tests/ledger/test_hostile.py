"""Whatever text an alert carries, the ledger stores it exactly or refuses it whole."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cap_schemas.model import AlertKey, MsgType
from gateway.ledger import Decision
from gateway.storage.sqlite import SqliteLedger
from tests.ledger.conftest import T0, FakeClock, Planner, make_alert

# surrogates included: text SQLite cannot hold must be refused whole
CHARS = st.characters(exclude_categories=())
TEXT = st.text(CHARS, min_size=1, max_size=40)


class TestArbitraryText:
    """Keys, summaries and references with any characters round-trip or fail cleanly."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        sender=TEXT,
        identifier=TEXT,
        headline=st.text(CHARS, max_size=200),
        areas=st.lists(st.text(CHARS, max_size=30), max_size=4),
        ref=st.tuples(TEXT, TEXT, TEXT),
        raw=st.binary(max_size=300),
    )
    @example(
        sender="s", identifier="lone\ud800", headline="", areas=[], ref=("a", "b", "c"), raw=b""
    )
    @example(
        sender="x'); DROP TABLE alerts;--",
        identifier="a,b\x00c",
        headline="\u202eevil",
        areas=["", ""],
        ref=("x", "y", "z"),
        raw=b"\x00",
    )
    def test_round_trip_or_clean_refusal(
        self,
        sender: str,
        identifier: str,
        headline: str,
        areas: list[str],
        ref: tuple[str, str, str],
        raw: bytes,
    ) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            led = SqliteLedger(Path(tmp) / "l.sqlite3", clock=FakeClock())
            try:
                alert = make_alert(
                    identifier,
                    sender=sender,
                    headline=headline,
                    areas=areas,
                    msg_type=MsgType.UPDATE,
                    references=(AlertKey(*ref),),
                    raw=raw,
                )
                try:
                    result = led.admit(alert, source="fuzz", received_at=T0, plan=Planner())
                except ValueError:
                    # text SQLite cannot hold (lone surrogates): nothing may be left behind
                    event("refused")
                    assert led.alerts(limit=10) == []
                    assert led.pending_count() == 0
                    return
                event("stored")
                assert result.decision is Decision.UPDATE
                stored = led.get(alert.key)
                assert stored is not None
                assert stored.key == alert.key
                assert stored.raw == raw
                assert stored.headline == headline
                assert stored.areas == tuple(dict.fromkeys(areas))
                assert stored.references == (AlertKey(*ref),)
                again = led.admit(
                    alert,
                    source="fuzz",
                    received_at=T0 + timedelta(seconds=1),
                    plan=Planner(),
                )
                assert again.decision is Decision.DUPLICATE
                assert [e.sink for e in led.deliveries(alert.key)] == ["mqtt"]
            finally:
                led.close()

    @settings(max_examples=40, deadline=None)
    @given(raw=st.binary(max_size=2000), reason=st.text(CHARS, max_size=200))
    @example(raw=b"x", reason="bad\udfff")
    def test_invalid_documents_are_kept_exactly(self, raw: bytes, reason: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            led = SqliteLedger(Path(tmp) / "l.sqlite3", clock=FakeClock())
            try:
                try:
                    led.record_invalid(raw, source="fuzz", received_at=T0, reason=reason)
                except ValueError:
                    assert led.invalid_records() == []
                    return
                (record,) = led.invalid_records()
                assert (record.raw, record.reason) == (raw, reason)
            finally:
                led.close()
