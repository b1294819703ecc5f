"""The compose form's alert: each profile's shape, the checks of `borderlink validate`, the
previews of what it becomes, and the fields that cannot make an alert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cap_schemas.model import MsgType
from gateway.console.compose import (
    Draft,
    DraftError,
    build,
    check,
    circle_text,
    errors,
    polygon_text,
    previews,
)

NOW = datetime(2026, 7, 14, 18, 0, 5, 123, tzinfo=UTC)
CAPCP = Draft(
    profile="cap-cp", event="tornado", severity="Extreme", headline_en="Tornado warning",
    headline_fr="Avertissement de tornade", description_en="A tornado.",
    description_fr="Une tornade.", area_en="Windsor", area_fr="Windsor", codes="3537039",
    broadcast_immediately=True,
)  # fmt: skip


class TestCompose:
    def test_capcp_is_bilingual_and_valid(self) -> None:
        alert = build(CAPCP, sender="eoc@windsor.example.ca", sender_name="Windsor EOC",
                      now=NOW, issued_by="alice")  # fmt: skip
        assert [i.language for i in alert.infos] == ["en-CA", "fr-CA"]
        assert alert.codes == ("profile:CAP-CP:0.4",)
        assert alert.infos[0].parameter("layer:SOREM:1.0:Broadcast_Immediately") == "Yes"
        assert alert.infos[1].areas[0].geocode_values("profile:CAP-CP:Location:0.3") == ("3537039",)
        assert "by alice" in (alert.note or "")
        assert not errors(check(alert, "cap-cp"))
        titles = [p.title for p in previews(alert, "cap-cp", sender="eoc@x.example")]
        assert titles[:2] == ["IPAWS (the other side)", "SAME header"]

    @pytest.mark.parametrize(
        ("code", "english", "french"),
        [
            ("tornado", "tornado", "tornade"),
            ("hazmat", "hazardous materials", "matières dangereuses"),
        ],
    )
    def test_capcp_event_named_in_each_language(self, code: str, english: str, french: str) -> None:
        # The form takes the event code once; each block names it in its own language, as
        # CAP-CP's event list does (rule 7), and never the English name in the French block.
        alert = build(replace(CAPCP, event=code), sender="eoc@x.ca",
                      sender_name="EOC", now=NOW, issued_by="alice")  # fmt: skip
        assert [(i.language, i.event) for i in alert.infos] == [
            ("en-CA", english),
            ("fr-CA", french),
        ]
        assert all(i.event_codes[0].value == code for i in alert.infos)
        assert [f for f in check(alert, "cap-cp") if f.rule == "capcp.R7-event-name"] == []

    def test_a_code_not_in_the_list_is_kept_as_typed(self) -> None:
        alert = build(replace(CAPCP, event="drill"), sender="eoc@x.ca",
                      sender_name="EOC", now=NOW, issued_by="alice")  # fmt: skip
        assert [i.event for i in alert.infos] == ["drill", "drill"]

    def test_ipaws_times_in_the_areas_zone(self) -> None:
        draft = Draft(profile="ipaws", event="TOR", severity="Extreme", headline_en="Tornado",
                      description_en="A tornado.", instruction_en="Take cover.",
                      area_en="Whatcom, WA", codes="053073")  # fmt: skip
        now = datetime.now(UTC)
        alert = build(draft, sender="eoc@whatcom.example.gov", sender_name="Whatcom EOC",
                      now=now, issued_by="bob")  # fmt: skip
        pacific = ZoneInfo("America/Los_Angeles").utcoffset(now.replace(tzinfo=None))
        assert alert.sent.utcoffset() == pacific
        assert alert.infos[0].expires == alert.sent + timedelta(hours=6)
        assert alert.infos[0].event_code("SAME") == "TOR"
        assert not errors(check(alert, "ipaws"))
        same = next(
            p for p in previews(alert, "ipaws", sender="x@y.example") if p.title == "SAME header"
        )
        assert same.text.startswith("ZCZC-CIV-TOR-053073+")

    def test_cancel_keeps_its_references(self) -> None:
        key = "eoc@windsor.example.ca,borderlink-console-1,2026-07-14T18:00:00-00:00"
        alert = build(_cancel(key), sender="eoc@windsor.example.ca",
                      sender_name="Windsor EOC", now=NOW, issued_by="alice")  # fmt: skip
        assert alert.msg_type is MsgType.CANCEL
        assert [str(k) for k in alert.references] == [key]

    def test_a_drawn_area_is_the_caps_polygon_and_circle(self) -> None:
        fields = {f: getattr(CAPCP, f) for f in CAPCP.__dataclass_fields__}
        drawn = Draft(**{**fields, "polygon": "42.1234,-83.0612 42.4,-82.9 42.2,-82.5",
                         "circle": "42.3149,-83.0364 12.5"})  # fmt: skip
        alert = build(drawn, sender="e@x.ca", sender_name="E", now=NOW, issued_by="a")
        for info in alert.infos:  # both languages, the same area
            (area,) = info.areas
            (ring,) = area.polygons
            assert [(p.lat, p.lon) for p in ring.points] == [
                (42.1234, -83.0612), (42.4, -82.9), (42.2, -82.5), (42.1234, -83.0612),
            ]  # fmt: skip
            (circle,) = area.circles
            assert (circle.center.lat, circle.center.lon, circle.radius_km) == (
                42.3149, -83.0364, 12.5,
            )  # fmt: skip
        assert not errors(check(alert, "cap-cp"))
        own = previews(alert, "cap-cp", sender="e@x.ca")[-1]
        assert own.title == "CAP as issued (before signing)"
        assert "<circle>42.3149,-83.0364 12.5</circle>" in own.text
        # An Update starts from the same text, every digit kept.
        assert polygon_text(alert.infos[0]) == (
            "42.1234,-83.0612 42.4,-82.9 42.2,-82.5 42.1234,-83.0612"
        )
        assert circle_text(alert.infos[0]) == "42.3149,-83.0364 12.5"

    def test_a_corner_outside_the_globe_is_the_cap_rules_error(self) -> None:
        fields = {f: getattr(CAPCP, f) for f in CAPCP.__dataclass_fields__}
        alert = build(Draft(**{**fields, "polygon": "95,-83 42,-82 42.5,-82.5"}),
                      sender="e@x.ca", sender_name="E", now=NOW, issued_by="a")  # fmt: skip
        assert "cap.polygon" in {f.rule for f in errors(check(alert, "cap-cp"))}

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"event": ""}, "event: the event is required"),
            ({"headline_fr": ""}, "headline_fr: a CAP-CP alert is issued in French too"),
            ({"severity": "Huge"}, "severity: 'Huge' is not one of"),
            ({"expires_hours": "soon"}, "expires_hours: 'soon' is not a number"),
            ({"polygon": "42,-83 43"}, "polygon: write lat,lon pairs"),
            ({"circle": "42,-83"}, "circle: write lat,lon radius_km"),
            ({"circle": "42 -83 10"}, "circle: write lat,lon radius_km"),
            ({"references": "not-a-key"}, "references: sender,identifier,sent"),
        ],
    )
    def test_fields_that_cannot_make_an_alert_say_which(
        self, change: dict[str, str], message: str
    ) -> None:
        fields = {f: getattr(CAPCP, f) for f in CAPCP.__dataclass_fields__}
        with pytest.raises(DraftError, match=message):
            build(Draft(**{**fields, **change}), sender="e@x.ca", sender_name="E", now=NOW,
                  issued_by="a")  # fmt: skip


def _cancel(key: str) -> Draft:
    fields = {f: getattr(CAPCP, f) for f in CAPCP.__dataclass_fields__}
    return Draft(**{**fields, "msg_type": "Cancel", "references": key})
