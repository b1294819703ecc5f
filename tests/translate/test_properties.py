"""Any alert either translates to output that passes its target check, or is refused with
a TranslationError -- never another exception (the router relies on it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cap_schemas.edxl import validate_edxl
from cap_schemas.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)
from cap_schemas.parse import parse_alert
from cap_schemas.same import SameHeader
from cap_schemas.tables import capcp_events, same_events
from cap_schemas.validate import is_valid, validate
from gateway.errors import TranslationError
from gateway.translate.registry import RENDERERS
from tests.cap.test_properties import _ALERT, _FREE, _TEXT, _TIMES, polygons

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 7, 14, 18, 0, tzinfo=UTC)

_SGC = st.sampled_from(["3537", "3526", "3537039", "35", "5915", "2466", "1302", "9999"])
_US = st.sampled_from(["026163", "036029", "053073", "022071", "000000", "99999X"])
_GEOCODE = st.one_of(
    st.builds(ValuePair, st.just("profile:CAP-CP:Location:0.3"), _SGC),
    st.builds(ValuePair, st.just("SAME"), _US),
    st.builds(ValuePair, st.just("FIPS6"), _US),
    st.builds(ValuePair, st.just("layer:EC-MSC-SMC:1.0:CLC"), st.sampled_from(["041420", "x"])),
)
_EVENT_CODE = st.one_of(
    st.builds(
        ValuePair,
        st.just("profile:CAP-CP:Event:0.4"),
        st.sampled_from(sorted(capcp_events())) | _TEXT,
    ),
    st.builds(ValuePair, st.just("SAME"), st.sampled_from(sorted(same_events())) | _TEXT),
)
_PARAM = st.one_of(
    st.builds(
        ValuePair,
        st.sampled_from(
            [
                "layer:SOREM:1.0:Broadcast_Immediately",
                "layer:SOREM:2.0:WirelessText",
                "EAS-Must-Carry",
                "EAS-ORG",
                "CMAMtext",
                "NWSheadline",
                "layer:EC-MSC-SMC:1.0:Alert_Type",
            ]
        ),
        st.sampled_from(["Yes", "No", "True", "WXR", "watch", "warning"]) | _FREE,
    ),
)
_INFO = st.builds(
    Info,
    categories=st.lists(st.sampled_from(Category), min_size=1, max_size=2).map(tuple),
    event=_TEXT,
    urgency=st.sampled_from(Urgency),
    severity=st.sampled_from(Severity),
    certainty=st.sampled_from(Certainty),
    language=st.sampled_from(["en-CA", "fr-CA", "en-US", "es-US", "en"]),
    event_codes=st.lists(_EVENT_CODE, max_size=2).map(tuple),
    expires=st.none() | st.integers(1, 48 * 60).map(lambda m: NOW + timedelta(minutes=m)),
    headline=st.none() | _FREE,
    description=st.none() | _FREE,
    instruction=st.none() | _FREE,
    parameters=st.lists(_PARAM, max_size=4).map(tuple),
    areas=st.lists(
        st.builds(
            Area,
            area_desc=_TEXT,
            polygons=st.lists(polygons(), max_size=1).map(tuple),
            geocodes=st.lists(_GEOCODE, max_size=4).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
_PLAUSIBLE = st.builds(
    Alert,
    identifier=st.just("urn:oid:2.49.0.1.124.1.2026"),
    sender=st.sampled_from(["cap-pac@canada.ca", "w-nws.webmaster@noaa.gov", "eoc@example"]),
    sent=st.just(NOW) | _TIMES,
    status=st.sampled_from(Status),
    msg_type=st.sampled_from(MsgType),
    scope=st.sampled_from(Scope),
    codes=st.sampled_from([("profile:CAP-CP:0.4",), ("IPAWSv1.0",), ()]),
    infos=st.lists(_INFO, max_size=3).map(tuple),
)
# Mostly what feeds send: Actual, Public, new alerts with an event, an area and an expiry.
_LIKELY = st.builds(
    Alert,
    identifier=st.just("urn:oid:2.49.0.1.124.1.2026"),
    sender=st.sampled_from(["cap-pac@canada.ca", "w-nws.webmaster@noaa.gov", "eoc@example"]),
    sent=st.just(NOW),
    status=st.just(Status.ACTUAL),
    msg_type=st.just(MsgType.ALERT),
    scope=st.just(Scope.PUBLIC),
    codes=st.sampled_from([("profile:CAP-CP:0.4",), ("IPAWSv1.0",)]),
    infos=st.lists(
        _INFO.filter(lambda i: bool(i.event_codes and i.areas and i.expires)),
        min_size=1,
        max_size=2,
    ).map(tuple),
)
ALERTS = st.one_of(_LIKELY, _PLAUSIBLE, _ALERT)


def _render(name: str, alert: Alert, options: dict[str, object]) -> list[bytes] | None:
    try:
        return list(RENDERERS[name](alert, options).parts)
    except TranslationError:
        return None


class TestNeverCrash:
    """Every renderer returns a checked result or raises TranslationError."""

    @SETTINGS
    @given(ALERTS)
    def test_ipaws(self, alert: Alert) -> None:
        parts = _render("ipaws", alert, {"crosswalk": "default"})
        if parts is not None:
            result = parse_alert(parts[0])
            assert is_valid(validate(result, profile="ipaws"))

    @SETTINGS
    @given(ALERTS)
    def test_capcp(self, alert: Alert) -> None:
        parts = _render("cap-cp", alert, {"fallback_sgc": "3537"})
        if parts is not None:
            result = parse_alert(parts[0])
            assert is_valid(validate(replace(result, raw=b""), profile="cap-cp"))
            assert result.infos[-1].language == "fr-CA"

    @SETTINGS
    @given(ALERTS, st.sampled_from(["auto", "US", "CA"]))
    def test_same(self, alert: Alert, country: str) -> None:
        parts = _render("same", alert, {"station": "BORDERLK", "country": country, "now": NOW})
        if parts is not None:
            header = SameHeader.parse(parts[0].decode("ascii"), now=alert.sent)
            assert header.to_text().encode("ascii") == parts[0]
            assert alert.status is Status.ACTUAL
            assert alert.scope is Scope.PUBLIC

    @SETTINGS
    @given(
        ALERTS,
        st.sampled_from(["aprs", "aprs-bulletin", "pager", "dmr", "generic"]),
        st.sampled_from(["en", "fr", "both"]),
    )
    def test_text(self, alert: Alert, radio: str, lang: str) -> None:
        parts = _render("text", alert, {"radio": radio, "lang": lang})
        if parts is None:
            assert not alert.infos
            return
        budget = {"aprs": 67, "aprs-bulletin": 67, "pager": 80, "dmr": 140, "generic": 160}
        for part in parts:
            text = part.decode("utf-8")
            assert len(text) <= budget[radio]
            if radio in ("aprs", "aprs-bulletin", "pager"):
                assert text.isascii()
            if radio == "aprs":
                assert not set(text) & set("|~{")

    @SETTINGS
    @given(ALERTS, st.sampled_from(["1.0", "2.0"]))
    def test_edxl(self, alert: Alert, version: str) -> None:
        parts = _render("edxl", alert, {"version": version})
        if parts is not None:
            assert validate_edxl(parts[0]) == []

    @SETTINGS
    @given(ALERTS)
    def test_incident(self, alert: Alert) -> None:
        _render("incident", alert, {})
        _render("incident-text", alert, {})
