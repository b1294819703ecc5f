"""Incident messages: JSON form, radio line, EDXL-DE 2.0 wrap; hostile input refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cap_schemas.edxl import validate_edxl
from gateway.metrics import INPUT_REJECTED
from gateway.model import Incident, Location
from gateway.translate.incident import (
    IncidentFormatError,
    incident_from_edxl,
    incident_from_json,
    incident_to_edxl,
    incident_to_json,
    incident_to_text,
    text_to_incident,
)

INCIDENT = Incident(
    incident_id="SURREY-FD-2026-0042",
    incident_type="fire.structure",
    status="active",
    location=Location(49.0021, -122.7564, "8 Ave and 176 St"),
    units=("E12", "M3"),
    text="Two-storey house, smoke showing | crews on scene ~ 2 min {ok}",
    agency="SURREY-FD",
    created=datetime(2026, 11, 29, 7, 10, tzinfo=UTC),
    updated=datetime(2026, 11, 29, 7, 12, tzinfo=UTC),
)
LINE = (
    "INC1 ID=SURREY-FD-2026-0042 ST=active TY=fire.structure LL=49.00210,-122.75640 "
    "U=E12,M3 AG=SURREY-FD CT=20261129T0710Z UT=20261129T0712Z LOC=8%20Ave%20and%20176%20St "
    "// Two-storey house, smoke showing %7C crews on scene %7E 2 min %7Bok}"
)


REASONS = (
    "syntax",
    "not_incident",
    "bad_time",
    "bad_location",
    "bad_status",
    "bad_id",
    "encoding",
    "too_large",
    "bad_value",
    "bad_priority",
)


def _rejections() -> float:
    return sum(INPUT_REJECTED.value(component="incident", reason=r) for r in REASONS)


class TestRadioLine:
    """The compact line is golden, printable ASCII without APRS-forbidden characters."""

    def test_golden(self) -> None:
        assert incident_to_text(INCIDENT) == LINE

    def test_round_trip(self) -> None:
        assert text_to_incident(LINE) == INCIDENT

    def test_aprs_safe(self) -> None:
        line = incident_to_text(replace(INCIDENT, agency="Sécurité|civile"))
        assert line.isascii()
        assert not set(line) & {"|", "~", "{"}
        assert text_to_incident(line).agency == "Sécurité|civile"

    def test_minimal(self) -> None:
        inc = text_to_incident("INC1 ID=X1 CT=20260101T0000Z")
        assert inc.status == "active"
        assert inc.location is None
        assert inc.updated == inc.created

    def test_fields_in_any_order(self) -> None:
        shuffled = "INC1 UT=20261129T0712Z CT=20261129T0710Z ID=A ST=closed"
        assert text_to_incident(shuffled).status == "closed"

    @pytest.mark.parametrize(
        ("line", "what"),
        [
            ("", "starts with INC1"),
            ("INC2 ID=X CT=20260101T0000Z", "starts with INC1"),
            ("INC1 CT=20260101T0000Z", "ID is required"),
            ("INC1 ID=X", "CT and UT"),
            ("INC1 ID=X CT=2026-01-01", "CT"),
            ("INC1 ID=X CT=20260101T0000Z LL=91,0", "out of range"),
            ("INC1 ID=X CT=20260101T0000Z LL=abc", "LL"),
            ("INC1 ID=X CT=20260101T0000Z ST=burning", "status"),
            ("INC1 ID=X ID=Y CT=20260101T0000Z", "twice"),
            ("INC1 ID=X  CT=20260101T0000Z", "KEY=value"),
            ("INC1 ID=X CT=20260101T0000Z LOC=here", "needs LL"),
            ("INC1 ID=%FF CT=20260101T0000Z", "UTF-8"),
        ],
    )
    def test_refused(self, line: str, what: str) -> None:
        before = _rejections()
        with pytest.raises(IncidentFormatError, match=what):
            text_to_incident(line)
        assert _rejections() == before + 1

    def test_oversize(self) -> None:
        with pytest.raises(IncidentFormatError, match="characters"):
            text_to_incident("INC1 ID=X " + "A" * 5000)

    @given(st.text(max_size=200))
    def test_random_lines(self, line: str) -> None:
        try:
            inc = text_to_incident(line)
        except IncidentFormatError:
            return
        assert text_to_incident(incident_to_text(inc)).incident_id == inc.incident_id


class TestJson:
    """The JSON form uses EIDO member names and round-trips."""

    def test_round_trip(self) -> None:
        data = incident_to_json(INCIDENT)
        assert b'"incidentTrackingIdentifier": "SURREY-FD-2026-0042"' in data
        assert incident_from_json(data) == INCIDENT

    @pytest.mark.parametrize(
        ("data", "what"),
        [
            (b"[", "does not parse"),
            (b"[]", "object"),
            (b'{"$schema": "other"}', "schema"),
            (b'{"$schema": "borderlink:incident:1"}', "incidentTrackingIdentifier"),
            (
                b'{"$schema": "borderlink:incident:1", "incidentTrackingIdentifier": "X", '
                b'"createdTimestamp": "2026-01-01T00:00:00", '
                b'"lastUpdateTimestamp": "2026-01-01T00:00:00+00:00"}',
                "time zone",
            ),
            (
                b'{"$schema": "borderlink:incident:1", "incidentTrackingIdentifier": "X", '
                b'"location": {"latitude": true, "longitude": 1}, '
                b'"createdTimestamp": "2026-01-01T00:00:00+00:00", '
                b'"lastUpdateTimestamp": "2026-01-01T00:00:00+00:00"}',
                "numbers",
            ),
            (b"\xff\xfe", "does not parse"),
        ],
    )
    def test_refused(self, data: bytes, what: str) -> None:
        before = _rejections()
        with pytest.raises(IncidentFormatError, match=what):
            incident_from_json(data)
        assert _rejections() == before + 1


BILINGUAL = replace(
    INCIDENT,
    text="Wires down across the road",
    text_fr="Fils tombés sur la route / 100 % bloquée",
    priority="urgent",
)


class TestBilingualAndPriority:
    """The French notes and the priority travel in every form; older readers skip them."""

    def test_radio_line_carries_fr_and_pr(self) -> None:
        line = incident_to_text(BILINGUAL)
        assert " PR=urgent " in line
        assert " FR=Fils%20tomb%C3%A9s%20sur%20la%20route%20%2F%20100%20%25%20bloqu%C3%A9e " in line
        assert line.endswith("// Wires down across the road")
        assert text_to_incident(line) == BILINGUAL

    def test_json_members_only_when_set(self) -> None:
        doc = incident_to_json(BILINGUAL)
        assert b'"notesTextFr": "Fils' in doc
        assert b'"incidentPriority": "urgent"' in doc
        assert incident_from_json(doc) == BILINGUAL
        plain = incident_to_json(INCIDENT)
        assert b"notesTextFr" not in plain
        assert b"incidentPriority" not in plain

    def test_edxl_round_trip(self) -> None:
        wrapped = incident_to_edxl(BILINGUAL, sender_id="eoc@example.ca")
        assert incident_from_edxl(wrapped) == BILINGUAL

    def test_unknown_priority_is_refused_and_counted(self) -> None:
        before = INPUT_REJECTED.value(component="incident", reason="bad_priority")
        with pytest.raises(IncidentFormatError, match="priority 'soon' is not one of urgent"):
            incident_to_json(replace(BILINGUAL, priority="soon"))
        line = incident_to_text(BILINGUAL).replace("PR=urgent", "PR=soon")
        with pytest.raises(IncidentFormatError, match="priority 'soon'"):
            text_to_incident(line)
        after = INPUT_REJECTED.value(component="incident", reason="bad_priority")
        assert after == before + 2


class TestEdxl:
    """An incident travels in an EDXL-DE 2.0 envelope that passes its schema."""

    def test_wrap(self) -> None:
        data = incident_to_edxl(INCIDENT, sender_id="surrey-fd@example.ca")
        assert validate_edxl(data) == []
        assert incident_from_edxl(data) == INCIDENT
        assert incident_to_edxl(INCIDENT, sender_id="surrey-fd@example.ca") == data

    def test_envelope_without_incident(self) -> None:
        with pytest.raises(IncidentFormatError, match="no incident"):
            incident_from_edxl(
                b'<edxlDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:2.0">'
                b"<distributionID>a</distributionID><senderID>b</senderID>"
                b"<dateTimeSent>2026-01-01T00:00:00+00:00</dateTimeSent>"
                b"<dateTimeExpires>2026-01-02T00:00:00+00:00</dateTimeExpires>"
                b"<distributionStatus>Actual</distributionStatus>"
                b"<distributionKind>Report</distributionKind></edxlDistribution>"
            )

    def test_not_edxl(self) -> None:
        with pytest.raises(IncidentFormatError, match="EDXL"):
            incident_from_edxl(b"<x/>")
