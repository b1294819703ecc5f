"""Validation: XSD, CAP 1.2 rules, CAP-CP and IPAWS profiles, each finding with rule and XPath."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

import pytest

from cap_schemas.model import (
    Alert,
    AlertKey,
    Area,
    Category,
    Circle,
    Info,
    MsgType,
    Point,
    Polygon,
    Resource,
    Scope,
    Status,
    ValuePair,
)
from cap_schemas.parse import parse_alert, recently_parsed
from cap_schemas.rules.capcp import capcp_events
from cap_schemas.serialize import to_xml
from cap_schemas.validate import (
    Finding,
    detect_profile,
    is_valid,
    validate,
    validate_xsd,
)
from tests.cap.conftest import SENT

MakeAlert = Callable[..., Alert]
MakeInfo = Callable[..., Info]


def rules(findings: list[Finding], severity: str | None = None) -> set[str]:
    return {f.rule for f in findings if severity is None or f.severity == severity}


def errors(alert: Alert, profile: str = "auto") -> set[str]:
    return rules(validate(alert, profile=profile), "error")


def ipaws_info(make_info: MakeInfo, **changes: Any) -> Info:
    base = make_info(
        language="en-US",
        event_codes=(ValuePair("SAME", "TOR"),),
        parameters=(ValuePair("EAS-ORG", "WXR"),),
        instruction="Take shelter.",
        areas=(Area("Erie", geocodes=(ValuePair("SAME", "036029"),)),),
    )
    return replace(base, **changes)


def ipaws_alert(make_alert: MakeAlert, make_info: MakeInfo, **info_changes: Any) -> Alert:
    return make_alert(codes=("IPAWSv1.0",), infos=(ipaws_info(make_info, **info_changes),))


class TestBaseline:
    """The factory alert is valid CAP-CP; its serialisation passes the XSD."""

    def test_factory_alert_has_no_errors(self, make_alert: MakeAlert) -> None:
        findings = validate(make_alert())
        assert is_valid(findings), findings

    def test_findings_are_sorted_errors_first(self, make_alert: MakeAlert) -> None:
        findings = validate(make_alert(identifier="a b", codes=()), profile="cap-cp")
        severities = [f.severity for f in findings]
        assert severities == sorted(severities, key=["error", "warning", "info"].index)

    def test_unknown_profile(self, make_alert: MakeAlert) -> None:
        with pytest.raises(ValueError, match="unknown profile"):
            validate(make_alert(), profile="eu")


class TestXsd:
    """The bundled OASIS CAP 1.2 XSD is applied to the raw bytes of CAP 1.2 input."""

    def test_valid_document(self, make_alert: MakeAlert) -> None:
        assert validate_xsd(to_xml(make_alert())) == []

    def test_element_order_error_has_line_and_path(self, make_alert: MakeAlert) -> None:
        text = to_xml(make_alert(), pretty=True).decode()
        swapped = text.replace(
            "<status>Actual</status>\n  <msgType>Alert</msgType>",
            "<msgType>Alert</msgType>\n  <status>Actual</status>",
        )
        assert swapped != text
        findings = validate_xsd(swapped.encode())
        assert findings
        assert findings[0].rule == "xsd"
        assert findings[0].xpath.startswith("/")
        assert "line" in findings[0].message

    def test_raw_bytes_are_checked(self, make_alert: MakeAlert) -> None:
        data = to_xml(make_alert()).replace(
            b"<scope>Public</scope>",
            b"<scope>Public</scope><unknown>x</unknown>",
        )
        alert = parse_alert(data)  # unknown CAP element is tolerated by the reader
        assert "xsd" in errors(alert)

    def test_zulu_time_fails_the_pattern(self, make_alert: MakeAlert) -> None:
        data = to_xml(make_alert()).replace(b"2024-05-01T12:00:00-04:00", b"2024-05-01T16:00:00Z")
        assert rules(validate_xsd(data)) == {"xsd"}

    def test_cap11_input_checked_in_its_12_form(self, corpus: Callable[..., bytes]) -> None:
        alert = parse_alert(corpus("nws", "gcl-nws-flash-flood-watch-2010-cap11.cap"))
        findings = validate(alert, profile="cap")
        assert "xsd" not in rules(findings)
        assert "cap.version" in rules(findings, "info")

    def test_hostile_bytes_are_a_finding(self) -> None:
        findings = validate_xsd(b"<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>")
        assert rules(findings) == {"xml"}

    def test_not_cap(self) -> None:
        assert rules(validate_xsd(b"<feed/>")) == {"xsd"}


class TestCoreRules:
    """CAP 1.2 rules the XSD cannot express."""

    @pytest.mark.parametrize("value", ["has space", "a,b", "a<b", "a&b", ""])
    def test_identifier_characters(self, make_alert: MakeAlert, value: str) -> None:
        assert "cap.identifier" in errors(make_alert(identifier=value), "cap")

    @pytest.mark.parametrize("value", ["has space", "a,b"])
    def test_sender_characters(self, make_alert: MakeAlert, value: str) -> None:
        assert "cap.sender" in errors(make_alert(sender=value), "cap")

    @pytest.mark.parametrize("msg_type", [MsgType.UPDATE, MsgType.CANCEL])
    def test_update_and_cancel_need_references(
        self,
        make_alert: MakeAlert,
        msg_type: MsgType,
    ) -> None:
        assert "cap.references-required" in errors(make_alert(msg_type=msg_type), "cap")
        ref = AlertKey("test@example.ca", "earlier", "2024-05-01T11:00:00-04:00")
        assert "cap.references-required" not in errors(
            make_alert(msg_type=msg_type, references=(ref,)),
            "cap",
        )

    def test_reference_with_bad_time(self, make_alert: MakeAlert) -> None:
        ref = AlertKey("test@example.ca", "earlier", "2024-05-01T11:00:00")
        alert = make_alert(msg_type=MsgType.UPDATE, references=(ref,))
        assert "cap.references-syntax" in errors(alert, "cap")

    def test_reference_without_sent(self, make_alert: MakeAlert) -> None:
        alert = make_alert(references=(AlertKey("s", "i", ""),))
        assert "cap.references-syntax" in errors(alert, "cap")

    def test_self_reference(self, make_alert: MakeAlert) -> None:
        alert = make_alert(msg_type=MsgType.UPDATE)
        alert = replace(alert, references=(alert.key,))
        assert "cap.self-reference" in errors(alert, "cap")

    def test_self_reference_with_other_offset_spelling(self, make_alert: MakeAlert) -> None:
        alert = make_alert(msg_type=MsgType.UPDATE)
        same_instant = AlertKey(alert.sender, alert.identifier, "2024-05-01T16:00:00-00:00")
        assert "cap.self-reference" in errors(replace(alert, references=(same_instant,)), "cap")

    def test_postdated_reference(self, make_alert: MakeAlert) -> None:
        ref = AlertKey("test@example.ca", "later", "2024-05-02T11:00:00-04:00")
        findings = validate(make_alert(msg_type=MsgType.UPDATE, references=(ref,)), profile="cap")
        assert "cap.postdated-reference" in rules(findings, "warning")

    def test_references_round_trip_through_xml(self, make_alert: MakeAlert) -> None:
        refs = (
            AlertKey("a@example.ca", "one", "2024-05-01T10:00:00-04:00"),
            AlertKey("a@example.ca", "two", "2024-05-01T11:00:00-00:00"),
        )
        alert = make_alert(msg_type=MsgType.UPDATE, references=refs)
        again = parse_alert(to_xml(alert))
        assert again.references == refs
        assert is_valid(validate(again))

    @pytest.mark.parametrize("field", ["effective", "onset"])
    def test_expires_after_effective_and_onset(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        field: str,
    ) -> None:
        info = make_info(**{field: SENT + timedelta(hours=7)})
        findings = validate(make_alert(infos=(info,)), profile="cap")
        bad = [f for f in findings if f.rule == "cap.expires-order"]
        assert bad
        assert bad[0].xpath == "/alert/info[1]/expires"
        assert field in bad[0].message

    def test_expires_after_sent(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        info = make_info(expires=SENT - timedelta(minutes=1))
        assert "cap.expires-order" in errors(make_alert(infos=(info,)), "cap")

    def test_polygon_open(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        ring = Polygon((Point(1, 1), Point(1, 2), Point(2, 2), Point(2, 1)))
        info = make_info(areas=(Area("x", polygons=(ring,)),))
        findings = validate(make_alert(infos=(info,)), profile="cap")
        bad = [f for f in findings if f.rule == "cap.polygon"]
        assert bad
        assert bad[0].xpath == "/alert/info[1]/area[1]/polygon[1]"
        assert "not closed" in bad[0].message

    def test_polygon_too_few_points(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        ring = Polygon((Point(1, 1), Point(1, 2), Point(1, 1)))
        info = make_info(areas=(Area("x", polygons=(ring,)),))
        assert "cap.polygon" in errors(make_alert(infos=(info,)), "cap")

    @pytest.mark.parametrize(("lat", "lon"), [(91.0, 0.0), (-90.5, 0.0), (0.0, 181.0)])
    def test_polygon_range(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        lat: float,
        lon: float,
    ) -> None:
        ring = Polygon((Point(lat, lon), Point(1, 2), Point(2, 2), Point(lat, lon)))
        info = make_info(areas=(Area("x", polygons=(ring,)),))
        assert "cap.polygon" in errors(make_alert(infos=(info,)), "cap")

    @pytest.mark.parametrize(
        ("lats", "lons"),
        [
            ((1.0, 1.0, 2.0, 1.0), (1.0, 2.0, 2.0, 1.0)),  # closed, in range
            ((1.0, 1.0, 2.0, 2.0), (1.0, 2.0, 2.0, 1.0)),  # open
            ((1.0, 1.0, 1.0), (1.0, 2.0, 1.0)),  # too few points
            ((), ()),  # none at all
            ((1.0, 95.0, 2.0, 1.0), (1.0, 2.0, 2.0, 1.0)),  # latitude out of range
            ((1.0, 1.0, 2.0, 1.0), (1.0, -180.5, 2.0, 1.0)),  # longitude out of range
            ((1.0, math.nan, 2.0, 1.0), (1.0, 2.0, 2.0, 1.0)),  # NaN amid in-range values
            ((1.0, 1.0, 2.0, 1.0), (1.0, 2.0, math.nan, 1.0)),
            ((math.inf, 1.0, 2.0, -math.inf), (1.0, 2.0, 2.0, 1.0)),
        ],
    )
    def test_polygon_rules_alike_on_points_and_on_coordinates(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        lats: tuple[float, ...],
        lons: tuple[float, ...],
    ) -> None:
        """A polygon read from a document is checked on its coordinates, one built in code
        on its points: the findings are the same."""

        def findings(ring: Polygon) -> list[Finding]:
            info = make_info(areas=(Area("x", polygons=(ring,)),))
            found = validate(make_alert(infos=(info,)), profile="cap", xsd=False)
            return [f for f in found if f.rule == "cap.polygon"]

        built = findings(Polygon(tuple(map(Point, lats, lons))))
        assert findings(Polygon.from_coordinates(lats, lons)) == built
        assert bool(built) == (lats != (1.0, 1.0, 2.0, 1.0) or lons != (1.0, 2.0, 2.0, 1.0))

    def test_nan_ring_closed_only_by_the_same_point(
        self, make_alert: MakeAlert, make_info: MakeInfo
    ) -> None:
        """Points compare their coordinates as tuples do: a NaN equals only itself, so a ring
        that ends on its very first point is closed and one that ends on another NaN point
        is not, however it was built."""
        first = Point(float("nan"), 1.0)
        other = Point(float("nan"), 1.0)  # another NaN object
        middle = (Point(1.0, 2.0), Point(2.0, 2.0))

        def closed(ring: Polygon) -> bool:
            info = make_info(areas=(Area("x", polygons=(ring,)),))
            found = validate(make_alert(infos=(info,)), profile="cap", xsd=False)
            return not any("not closed" in f.message for f in found)

        same, different = Polygon((first, *middle, first)), Polygon((first, *middle, other))
        assert closed(same)
        assert not closed(different)
        for ring in (same, different):
            lats, lons = ring.coordinates()
            assert closed(Polygon.from_coordinates(lats, lons)) == closed(ring)

    def test_circle(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        good = Circle(Point(43.6, -79.4), 0.0)
        bad_radius = Circle(Point(43.6, -79.4), -1.0)
        bad_center = Circle(Point(-79.4, 43.6 + 200), 3.0)
        info = make_info(areas=(Area("x", circles=(good, bad_radius, bad_center)),))
        findings = validate(make_alert(infos=(info,)), profile="cap")
        paths = {f.xpath for f in findings if f.rule == "cap.circle"}
        assert paths == {"/alert/info[1]/area[1]/circle[2]", "/alert/info[1]/area[1]/circle[3]"}

    @pytest.mark.parametrize(
        "area",
        [
            "<polygon>nan,1 1,2 2,2 nan,1</polygon>",
            "<polygon>1,inf 1,2 2,2 1,inf</polygon>",
            "<circle>1,1 nan</circle>",
            "<circle>-inf,1 5</circle>",
        ],
    )
    def test_non_finite_coordinates(self, make_alert: MakeAlert, area: str) -> None:
        data = to_xml(make_alert()).replace(
            b"<areaDesc>Toronto</areaDesc>", f"<areaDesc>Toronto</areaDesc>{area}".encode()
        )
        found = errors(parse_alert(data), "cap")
        assert found & {"cap.polygon", "cap.circle"}
        # Read as CAP 1.1, the model is written back as CAP 1.2 for the XSD: findings still,
        # not a crash on the NaN (ValueError from the number writer before).
        older = data.replace(b"emergency:cap:1.2", b"emergency:cap:1.1")
        assert errors(parse_alert(older), "cap") & {"cap.polygon", "cap.circle"}

    def test_non_finite_coordinates_of_a_built_alert(
        self, make_alert: MakeAlert, make_info: MakeInfo
    ) -> None:
        ring = (Point(math.nan, 1.0), Point(1.0, 2.0), Point(2.0, 2.0), Point(math.nan, 1.0))
        circle = Circle(Point(1.0, math.inf), 5.0)
        info = make_info(areas=(Area("x", polygons=(Polygon(ring),), circles=(circle,)),))
        found = errors(make_alert(infos=(info,)), "cap")
        assert {"cap.polygon", "cap.circle"} <= found

    def test_restriction_only_with_restricted(self, make_alert: MakeAlert) -> None:
        assert "cap.restriction-scope" in errors(make_alert(restriction="EOC only"), "cap")
        restricted = make_alert(scope=Scope.RESTRICTED, restriction="EOC only")
        assert "cap.restriction-scope" not in rules(validate(restricted, profile="cap"))

    def test_private_needs_addresses(self, make_alert: MakeAlert) -> None:
        assert "cap.addresses-scope" in errors(make_alert(scope=Scope.PRIVATE), "cap")
        ok = make_alert(scope=Scope.PRIVATE, addresses="eoc@example.ca")
        assert "cap.addresses-scope" not in errors(ok, "cap")

    @pytest.mark.parametrize("lang", ["en CA", "en_CA", "fr-CA-", "123456789", "abcdefghi"])
    def test_language_tag(self, make_alert: MakeAlert, make_info: MakeInfo, lang: str) -> None:
        assert "cap.language" in errors(make_alert(infos=(make_info(language=lang),)), "cap")

    def test_ceiling_needs_altitude(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        info = make_info(areas=(Area("x", ceiling=100.0),))
        assert "cap.ceiling" in errors(make_alert(infos=(info,)), "cap")


class TestResources:
    """derefUri content must be base64 and agree with size and digest."""

    content = b"ID3 fake audio" * 100

    def _alert(self, make_alert: MakeAlert, make_info: MakeInfo, **changes: Any) -> Alert:
        encoded = base64.b64encode(self.content).decode()
        resource = Resource(
            resource_desc="Broadcast Audio",
            mime_type="audio/mpeg",
            size=len(self.content),
            uri="audio.mp3",
            deref_uri=encoded,
            digest=hashlib.sha1(self.content).hexdigest(),
        )
        info = make_info(resources=(replace(resource, **changes),))
        return make_alert(infos=(info,))

    def test_consistent(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        findings = validate(self._alert(make_alert, make_info), profile="cap")
        assert not {r for r in rules(findings) if r.startswith("cap.resource")}

    def test_line_broken_base64(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        encoded = base64.encodebytes(self.content).decode()
        assert "\n" in encoded
        alert = self._alert(make_alert, make_info, deref_uri=encoded)
        assert is_valid(validate(alert, profile="cap"))

    def test_size_mismatch(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        alert = self._alert(make_alert, make_info, size=5)
        assert "cap.resource-size" in errors(alert, "cap")

    def test_digest_mismatch(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        alert = self._alert(make_alert, make_info, digest="0" * 40)
        assert "cap.resource-digest" in errors(alert, "cap")

    def test_naad_digest_of_base64_text(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
    ) -> None:
        encoded = base64.b64encode(self.content).decode()
        digest = hashlib.sha1(encoded.encode()).hexdigest()
        alert = self._alert(make_alert, make_info, digest=digest)
        findings = validate(alert, profile="cap-cp")
        assert is_valid(findings)
        assert "cap.resource-digest" in rules(findings, "info")

    @pytest.mark.parametrize("text", ["not*base64!", "AB=C", "A===", "ABC", "QUJD\u00e9"])
    def test_not_base64(self, make_alert: MakeAlert, make_info: MakeInfo, text: str) -> None:
        alert = self._alert(make_alert, make_info, deref_uri=text, size=None)
        assert "cap.resource-deref" in errors(alert, "cap")

    @pytest.mark.parametrize(("text", "size"), [("QQ==", 1), ("QUI=", 2), ("QUJD", 3)])
    def test_size_from_base64(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        text: str,
        size: int,
    ) -> None:
        alert = self._alert(make_alert, make_info, deref_uri=text, size=size, digest=None)
        assert not {r for r in errors(alert, "cap") if r.startswith("cap.resource")}
        wrong = self._alert(make_alert, make_info, deref_uri=text, size=size + 1, digest=None)
        assert "cap.resource-size" in errors(wrong, "cap")

    def test_relative_uri_without_content(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
    ) -> None:
        alert = self._alert(make_alert, make_info, deref_uri=None)
        assert "cap.resource-uri" in errors(alert, "cap")

    def test_naad_samples_with_embedded_files(self, corpus: Callable[..., bytes]) -> None:
        for name in (
            "naad-Sample2_CAPCP_with_Embedded_Large_Audio_File.xml",
            "naad-Sample3_CAPCP_with_Multiple_Embedded_Files.xml",
        ):
            findings = validate(parse_alert(corpus("cap-cp", name)))
            assert is_valid(findings), findings
            assert "cap.resource-digest" in rules(findings, "info")


class TestUtcOffset:
    """A zero offset: info under CAP and CAP-CP (ECCC writes -00:00), an error under IPAWS."""

    def test_capcp_accepts_minus_zero(self, make_alert: MakeAlert) -> None:
        alert = make_alert(sent=SENT.astimezone(UTC))
        findings = validate(alert, profile="cap-cp")
        assert is_valid(findings)
        assert "cap.utc-offset" in rules(findings, "info")

    def test_ipaws_refuses_zero_offset(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        alert = replace(ipaws_alert(make_alert, make_info), sent=SENT.astimezone(UTC))
        findings = validate(alert, profile="ipaws")
        bad = [f for f in findings if f.rule == "cap.utc-offset" and f.severity == "error"]
        assert [f.xpath for f in bad] == ["/alert/sent"]


class TestCapCp:
    """CAP-CP 0.4 rules, the event list, SGC location codes and SOREM layer parameters."""

    def test_detected_by_code(self, make_alert: MakeAlert) -> None:
        assert detect_profile(make_alert()) == "cap-cp"

    def test_version_code_required(self, make_alert: MakeAlert) -> None:
        assert "capcp.R3-version-code" in errors(make_alert(codes=()), "cap-cp")

    def test_info_required(self, make_alert: MakeAlert) -> None:
        assert "capcp.R5-info" in errors(make_alert(infos=()), "cap-cp")
        heartbeat = make_alert(infos=(), status=Status.SYSTEM, sender="NAADS-Heartbeat")
        assert "capcp.R5-info" not in errors(heartbeat, "cap-cp")

    def test_event_code_required(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        info = make_info(event_codes=(ValuePair("SAME", "HWW"),))
        findings = validate(make_alert(infos=(info,)), profile="cap-cp")
        assert "capcp.R8-event-code" in rules(findings, "error")

    def test_event_code_from_the_list(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        info = make_info(event_codes=(ValuePair("profile:CAP-CP:Event:0.4", "zombies"),))
        findings = validate(make_alert(infos=(info,)), profile="cap-cp")
        assert "capcp.event-list" in rules(findings, "warning")

    def test_established_event_name(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        fr = make_info(language="fr-CA", event="vent")
        findings = validate(make_alert(infos=(make_info(), fr)), profile="cap-cp")
        assert "capcp.R7-event-name" not in rules(findings)
        odd = make_info(language="fr-CA", event="wind")
        findings = validate(make_alert(infos=(make_info(), odd)), profile="cap-cp")
        notes = [f for f in findings if f.rule == "capcp.R7-event-name"]
        assert [(f.severity, f.xpath) for f in notes] == [("info", "/alert/info[2]/event")]

    def test_event_codes_must_match(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        en = make_info()
        fr = make_info(
            language="fr-CA",
            event="vent",
            event_codes=(ValuePair("profile:CAP-CP:Event:0.4", "snowfall"),),
        )
        assert "capcp.R2-event-codes-match" in errors(make_alert(infos=(en, fr)), "cap-cp")

    def test_area_and_location_required(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        assert "capcp.R10-area" in errors(make_alert(infos=(make_info(areas=()),)), "cap-cp")
        area = Area("Toronto", geocodes=(ValuePair("layer:EC-MSC-SMC:1.0:CLC", "041510"),))
        info = make_info(areas=(area,))
        assert "capcp.R9-location-code" in errors(make_alert(infos=(info,)), "cap-cp")

    @pytest.mark.parametrize(("value", "severity"), [("35A0", "error"), ("041510", "warning")])
    def test_location_syntax(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        value: str,
        severity: str,
    ) -> None:
        area = Area("x", geocodes=(ValuePair("profile:CAP-CP:Location:0.3", value),))
        findings = validate(make_alert(infos=(make_info(areas=(area,)),)), profile="cap-cp")
        assert "capcp.location-syntax" in rules(findings, severity)

    @pytest.mark.parametrize(
        "param",
        [
            ValuePair("layer:SOREM:1.0:Broadcast_Immediately", "yes please"),
            ValuePair("layer:SOREM:2.0:WirelessImmediate", "TRUE"),
            ValuePair("layer:SOREM:2.0:WirelessText", " "),
        ],
    )
    def test_sorem_parameters(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        param: ValuePair,
    ) -> None:
        info = make_info(parameters=(param,))
        assert "capcp.sorem" in errors(make_alert(infos=(info,)), "cap-cp")

    def test_wireless_text_length(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        long_text = make_info(parameters=(ValuePair("layer:SOREM:2.0:WirelessText", "x" * 601),))
        findings = validate(make_alert(infos=(long_text,)), profile="cap-cp")
        assert "capcp.sorem" in rules(findings, "warning")
        assert is_valid(findings)
        at_limit = make_info(parameters=(ValuePair("layer:SOREM:2.0:WirelessText", "x" * 600),))
        findings = validate(make_alert(infos=(at_limit,)), profile="cap-cp")
        assert "capcp.sorem" not in rules(findings)

    def test_sorem_good_values(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        info = make_info(
            parameters=(
                ValuePair("layer:SOREM:1.0:Broadcast_Immediately", "Yes"),
                ValuePair("layer:SOREM:2.0:WirelessImmediate", "No"),
                ValuePair("layer:SOREM:2.0:WirelessText", "Tornado warning for Toronto"),
            ),
        )
        assert "capcp.sorem" not in rules(validate(make_alert(infos=(info,)), profile="cap-cp"))

    @pytest.mark.parametrize(
        ("geocode", "param"),
        [
            (ValuePair("layer:EC-MSC-SMC:1.0:CLC", "41510"), None),
            (None, ValuePair("layer:EC-MSC-SMC:1.0:Broadcast_Intrusive", "maybe")),
        ],
    )
    def test_eccc_layer(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        geocode: ValuePair | None,
        param: ValuePair | None,
    ) -> None:
        area = Area(
            "Toronto",
            geocodes=(ValuePair("profile:CAP-CP:Location:0.3", "3520005"),)
            + ((geocode,) if geocode else ()),
        )
        info = make_info(areas=(area,), parameters=(param,) if param else ())
        findings = validate(make_alert(infos=(info,)), profile="cap-cp")
        assert "capcp.eccc-layer" in rules(findings, "warning")

    def test_bilingual_recommended(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        findings = validate(make_alert(), profile="cap-cp")
        assert "capcp.R6-languages" in rules(findings, "warning")
        fr = make_info(language="fr-CA", event="vent")
        findings = validate(make_alert(infos=(make_info(), fr)), profile="cap-cp")
        assert "capcp.R6-languages" not in rules(findings)

    def test_event_list_data(self) -> None:
        events = capcp_events()
        assert len(events) >= 140
        assert events["wind"].name_fr == "vent"
        assert events["snowfall"].name_fr == "neige"
        assert events["tornado"].name_en == "tornado"
        assert all(len(code) <= 12 for code in events)


class TestIpaws:
    """IPAWS profile v1.0 rules."""

    def test_valid(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        alert = ipaws_alert(make_alert, make_info)
        assert detect_profile(alert) == "ipaws"
        assert is_valid(validate(alert)), validate(alert)

    def test_version_code(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        alert = replace(ipaws_alert(make_alert, make_info), codes=())
        assert "ipaws.version-code" in errors(alert, "ipaws")

    def test_expires_required(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        assert "ipaws.expires" in errors(ipaws_alert(make_alert, make_info, expires=None))

    @pytest.mark.parametrize(
        "codes",
        [
            (),
            (ValuePair("SAME", "TO"),),
            (ValuePair("SAME", "tor"),),
            (ValuePair("SAME", "TOR"), ValuePair("SAME", "SVR")),
        ],
    )
    def test_one_same_event_code(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        codes: tuple[ValuePair, ...],
    ) -> None:
        alert = ipaws_alert(make_alert, make_info, event_codes=codes)
        assert "ipaws.same-event-code" in errors(alert)

    def test_same_geocode_digits(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        area = Area("Erie", geocodes=(ValuePair("SAME", "36029"),))
        assert "ipaws.same-geocode" in errors(ipaws_alert(make_alert, make_info, areas=(area,)))

    @pytest.mark.parametrize(
        ("param", "rule"),
        [
            (ValuePair("EAS-ORG", "NWS"), "ipaws.eas-org"),
            (ValuePair("BLOCKCHANNEL", "RADIO"), "ipaws.blockchannel"),
            (ValuePair("CMAMtext", "x" * 91), "ipaws.wea-text"),
            (ValuePair("CMAMlongtext", "x" * 361), "ipaws.wea-text"),
            (ValuePair("EAS-Must-Carry", "maybe"), "ipaws.eas-must-carry"),
        ],
    )
    def test_parameters(
        self,
        make_alert: MakeAlert,
        make_info: MakeInfo,
        param: ValuePair,
        rule: str,
    ) -> None:
        alert = ipaws_alert(make_alert, make_info, parameters=(param,))
        assert rule in errors(alert)

    def test_wea_text_at_limits(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        params = (
            ValuePair("EAS-ORG", "CIV"),
            ValuePair("CMAMtext", "x" * 90),
            ValuePair("CMAMlongtext", "y" * 360),
            ValuePair("BLOCKCHANNEL", "CMAS"),
        )
        assert is_valid(validate(ipaws_alert(make_alert, make_info, parameters=params)))

    def test_blocks_must_agree(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        en = ipaws_info(make_info)
        es = ipaws_info(
            make_info,
            language="es-US",
            categories=(Category.SAFETY,),
            event_codes=(ValuePair("SAME", "SVR"),),
        )
        found = errors(make_alert(codes=("IPAWSv1.0",), infos=(en, es)))
        assert {"ipaws.categories-match", "ipaws.event-codes-match"} <= found


class TestLargeAndConcurrent:
    """A 5 MB NAAD-size alert parses and validates; validation is safe from many threads."""

    def test_five_megabyte_embedded_audio(self, make_alert: MakeAlert, make_info: MakeInfo) -> None:
        audio = bytes(range(256)) * (3_800_000 // 256)
        encoded = base64.b64encode(audio).decode()
        resource = Resource(
            resource_desc="Broadcast Audio",
            mime_type="audio/mpeg",
            size=len(audio),
            uri="NAADS_mp3_EN.mp3",
            deref_uri=encoded,
            digest=hashlib.sha1(encoded.encode()).hexdigest(),
        )
        data = to_xml(make_alert(infos=(make_info(resources=(resource,)),)))
        assert 5_000_000 < len(data) < 8 * 1024 * 1024
        alert = parse_alert(data)
        assert alert.infos[0].resources[0].deref_uri == encoded
        findings = validate(alert)
        assert is_valid(findings), findings

    def test_threads(self, make_alert: MakeAlert, corpus: Callable[..., bytes]) -> None:
        good = to_xml(make_alert())
        bad = to_xml(make_alert()).replace(b"<scope>Public</scope>", b"")
        naad = corpus("cap-cp", "naad-Sample1_CAPCP_No_Attachment.xml")

        def run(i: int) -> tuple[int, int]:
            data = (good, bad, naad)[i % 3]
            return i % 3, len(validate_xsd(data))

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(run, range(60)))
        for kind, count in results:
            assert (count > 0) == (kind == 1)


class TestHeartbeat:
    """A NAAD heartbeat (System, no info, references the last alerts) parses and is valid."""

    def test_heartbeat(self) -> None:
        data = (
            b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            b"<identifier>urn:oid:2.49.0.1.124.1234567890.2024</identifier>"
            b"<sender>NAADS-Heartbeat</sender><sent>2024-05-01T16:00:00-00:00</sent>"
            b"<status>System</status><msgType>Alert</msgType><scope>Public</scope>"
            b"<references>cap-pac@canada.ca,urn:oid:2.49.0.1.124.1111111111.2024,"
            b"2024-05-01T15:58:00-00:00 cap-pac@canada.ca,urn:oid:2.49.0.1.124.2222222222.2024,"
            b"2024-05-01T15:59:00-00:00</references></alert>"
        )
        alert = parse_alert(data)
        assert alert.status is Status.SYSTEM
        assert alert.infos == ()
        assert [r.identifier for r in alert.references] == [
            "urn:oid:2.49.0.1.124.1111111111.2024",
            "urn:oid:2.49.0.1.124.2222222222.2024",
        ]
        assert detect_profile(alert) == "cap"
        assert is_valid(validate(alert))


class TestParsedTreeReuse:
    """Validation reuses the tree parse_alert just built, once, and only for the same bytes."""

    def test_handed_out_once(self, make_alert: MakeAlert) -> None:
        data = to_xml(make_alert())
        alert = parse_alert(data)
        copy = bytes(bytearray(data))
        assert recently_parsed(copy) is None
        assert recently_parsed(alert.raw) is not None
        assert recently_parsed(alert.raw) is None
        assert validate_xsd(alert.raw) == []
