"""The ledger lists the incident reports it admitted (every backend): newest first, from a
time on, never plain radio text or CAP alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from gateway.messages import message_key, message_record, parse_inbound
from gateway.model import RadioMessage
from gateway.storage.sqlite import SqliteLedger
from gateway.translate.incident import incident_to_json, incident_to_text
from tests.ledger.conftest import T0, admit, make_alert
from tests.translate.test_incident import INCIDENT


def _admit_message(ledger: SqliteLedger, raw: bytes, at: timedelta) -> str:
    inbound = parse_inbound(raw, channel="field/in")
    received = T0 + at
    key = message_key(inbound, source="field", received_at=received, raw=raw)
    ledger.admit_message(
        message_record(inbound, key, raw), source="field", received_at=received,
        plan=lambda _a: [],
    )  # fmt: skip
    return str(key)


class TestIncidentListing:
    def test_incidents_newest_first_from_a_time(self, ledger: SqliteLedger) -> None:
        admit(ledger, make_alert())
        first = _admit_message(ledger, incident_to_json(INCIDENT), timedelta(minutes=1))
        _admit_message(
            ledger, RadioMessage("Crews en route", "VE3ABC").to_json(), timedelta(minutes=2)
        )
        later = replace(INCIDENT, updated=INCIDENT.updated + timedelta(minutes=5), status="onscene")
        line = RadioMessage(incident_to_text(later), "VE3ABC").to_json()
        second = _admit_message(ledger, line, timedelta(minutes=3))
        listed = ledger.incidents(T0, with_raw=True)
        assert [str(s.key) for s in listed] == [second, first]
        assert listed[0].raw == line
        assert [s.areas for s in listed] == [("field/in",), ("field/in",)]
        assert [str(s.key) for s in ledger.incidents(T0 + timedelta(minutes=2))] == [second]
        assert ledger.incidents(T0, limit=1)[0].raw == b""  # without the bytes unless asked
