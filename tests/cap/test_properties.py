"""Property tests: any model alert survives to_xml -> parse_alert unchanged and is XSD-valid."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cap_schemas.model import (
    CAP12_NS,
    Alert,
    AlertKey,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    Point,
    Polygon,
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
    format_cap_datetime,
)
from cap_schemas.parse import parse_alert, parse_alert_element, parse_xml
from cap_schemas.serialize import to_xml
from cap_schemas.validate import validate_xsd
from tests.cap.conftest import corpus_bytes

# XML 1.0 characters only (no controls, no surrogates); no CR, which XML normalises.
_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"),
    blacklist_characters="\ufffe\uffff",
)
_TEXT = st.text(_CHARS, min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)
_FREE = st.text(st.one_of(_CHARS, st.just("\n")), min_size=1, max_size=80).filter(
    lambda s: bool(s.strip()),
)
_TOKEN = st.text(
    st.characters(whitelist_categories=("Lu", "Ll", "Nd"), max_codepoint=0x24F)
    | st.sampled_from("-_.:@"),
    min_size=1,
    max_size=30,
)
_OFFSETS = st.integers(min_value=-12 * 4, max_value=14 * 4).map(
    lambda q: timezone(timedelta(minutes=15 * q)),
)
_TIMES = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)).map(
        lambda d: d.replace(microsecond=0),
    ),
    _OFFSETS,
)
_LAT = st.integers(min_value=-90_000_000, max_value=90_000_000).map(lambda v: v / 1e6)
_LON = st.integers(min_value=-180_000_000, max_value=180_000_000).map(lambda v: v / 1e6)
_POINT = st.builds(Point, _LAT, _LON)
_PAIR = st.builds(ValuePair, _TOKEN, _TEXT)


@st.composite
def polygons(draw: st.DrawFn) -> Polygon:
    ring = draw(st.lists(_POINT, min_size=3, max_size=8))
    return Polygon((*ring, ring[0]))


_AREA = st.builds(
    Area,
    area_desc=_TEXT,
    polygons=st.lists(polygons(), max_size=2).map(tuple),
    circles=st.lists(
        st.builds(Circle, _POINT, st.integers(0, 10**6).map(lambda v: v / 100)),
        max_size=2,
    ).map(tuple),
    geocodes=st.lists(_PAIR, max_size=3).map(tuple),
    altitude=st.none() | st.integers(-1000, 10**5).map(float),
    ceiling=st.none(),
)
_RESOURCE = st.builds(
    Resource,
    resource_desc=_TEXT,
    mime_type=st.sampled_from(["audio/mpeg", "image/jpeg", "application/x-url"]),
    size=st.none() | st.integers(0, 10**9),
    uri=st.none() | st.just("https://example.org/a.mp3"),
    deref_uri=st.none() | st.just("QUJD"),
    digest=st.none() | st.just("a" * 40),
)
_INFO = st.builds(
    Info,
    categories=st.lists(st.sampled_from(Category), min_size=1, max_size=3).map(tuple),
    event=_TEXT,
    urgency=st.sampled_from(Urgency),
    severity=st.sampled_from(Severity),
    certainty=st.sampled_from(Certainty),
    language=st.sampled_from(["en-CA", "fr-CA", "en-US", "es-US", "en"]),
    response_types=st.lists(st.sampled_from(ResponseType), max_size=2).map(tuple),
    audience=st.none() | _FREE,
    event_codes=st.lists(_PAIR, max_size=3).map(tuple),
    effective=st.none() | _TIMES,
    onset=st.none() | _TIMES,
    expires=st.none() | _TIMES,
    sender_name=st.none() | _FREE,
    headline=st.none() | _FREE,
    description=st.none() | _FREE,
    instruction=st.none() | _FREE,
    web=st.none() | st.just("https://example.org/alert"),
    contact=st.none() | _FREE,
    parameters=st.lists(_PAIR, max_size=4).map(tuple),
    resources=st.lists(_RESOURCE, max_size=2).map(tuple),
    areas=st.lists(_AREA, max_size=2).map(tuple),
)
_REFERENCE = st.builds(
    AlertKey,
    _TOKEN,
    _TOKEN,
    _TIMES.map(format_cap_datetime),
)
_ALERT = st.builds(
    Alert,
    identifier=_TOKEN,
    sender=_TOKEN,
    sent=_TIMES,
    status=st.sampled_from(Status),
    msg_type=st.sampled_from(MsgType),
    scope=st.sampled_from(Scope),
    source=st.none() | _FREE,
    restriction=st.none() | _FREE,
    addresses=st.none() | _FREE,
    codes=st.lists(_TEXT, max_size=3).map(tuple),
    note=st.none() | _FREE,
    references=st.lists(_REFERENCE, max_size=3).map(tuple),
    incidents=st.none() | _TEXT,
    infos=st.lists(_INFO, max_size=2).map(tuple),
)


class TestRoundTripProperty:
    """to_xml then parse_alert is the identity on the model, and the output passes the XSD."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_ALERT)
    def test_round_trip(self, alert: Alert) -> None:
        data = to_xml(alert)
        assert parse_alert(data) == alert
        assert validate_xsd(data) == []


class TestEmbeddedAlerts:
    """An alert inside another document (NAAD Atom content) reads like the standalone file."""

    def test_atom_embedded_alert(self) -> None:
        feed = parse_xml(corpus_bytes("cap-cp", "gcl-naads-rss1-feed.atom"))
        element = feed.find(f".//{{{CAP12_NS}}}alert")
        assert element is not None
        embedded = parse_alert_element(element)
        standalone = parse_alert(corpus_bytes("cap-cp", "gcl-canada-snowfall-signed-2013.cap"))
        assert embedded == standalone
        assert embedded.signature_count == 2
        assert parse_alert(embedded.raw) == standalone


class TestTimeFormat:
    """CAP times are written as strftime writes them, with the offset after, for any aware
    time (the writer formats the common years itself, for speed)."""

    @settings(max_examples=500, deadline=None)
    @given(
        st.datetimes(
            timezones=st.builds(
                timezone, st.integers(-1439, 1439).map(lambda m: timedelta(minutes=m))
            ),
        )
    )
    def test_same_as_strftime(self, value: datetime) -> None:
        offset = value.utcoffset()
        assert offset is not None
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes <= 0 else "+"
        expected = (
            value.strftime("%Y-%m-%dT%H:%M:%S")
            + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        )
        assert format_cap_datetime(value) == expected
