"""CAP -> SAME header by the ECIG rules, and SAME header -> CAP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cap_schemas.model import Alert, Area, MsgType, Point, Polygon, Scope, Status, ValuePair
from cap_schemas.same import SameHeader, SameHeaderError
from cap_schemas.same_cap import same_to_alert
from cap_schemas.validate import is_valid, validate
from gateway.errors import ConfigError, TranslationError
from gateway.translate.same import alert_to_same
from tests.helpers import corpus_dir
from tests.translate.conftest import SENT

#: The US counties facing Essex (3537) in the shipped crosswalk: Macomb, Monroe and Wayne,
#: Michigan (Lake St. Clair, the Detroit River), Cuyahoga, Erie, Lorain and Ottawa, Ohio
#: (Lake Erie).
FACING_ESSEX = ("026099", "026115", "026163", "039035", "039043", "039093", "039123")
NOW = SENT + timedelta(minutes=5)


class TestCapToSame:
    """ORG, EEE, locations, valid time, issue time and station per ECIG."""

    def test_eccc_alert(self, eccc_alert: Callable[..., Alert]) -> None:
        header = alert_to_same(eccc_alert(), station="BORDERLK", now=NOW)
        assert header.to_text() == "ZCZC-WXR-SVR-041420+0600-1951800-BORDERLK-"

    def test_keeps_the_alerts_own_same_code(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(same="SVA", alert_type="warning")
        assert alert_to_same(alert, station="X", now=NOW).event == "SVA"

    def test_mapping_when_no_same_code(self, eccc_alert: Callable[..., Alert]) -> None:
        watch = eccc_alert(same=None, alert_type="watch")
        warning = eccc_alert(same=None, alert_type="warning")
        assert alert_to_same(watch, station="X", now=NOW).event == "SVA"
        assert alert_to_same(warning, station="X", now=NOW).event == "SVR"

    def test_civil_originator(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(sender="ops@emergency.example.ca")
        assert alert_to_same(alert, station="X", now=NOW).originator == "CIV"

    def test_eas_org_parameter_wins(self, us_alert: Callable[..., Alert]) -> None:
        header = alert_to_same(us_alert(), station="KDTX/NWS", now=NOW)
        assert header.to_text() == "ZCZC-WXR-TOR-026163+0045-1951800-KDTX/NWS-"

    def test_sgc_through_clc_table(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(clc=(), sgc=("3526", "3520"))
        header = alert_to_same(alert, station="X", now=NOW)
        assert header.locations == ("046700", "046710", "046720", "043100")

    def test_31_locations_in_order(self, us_alert: Callable[..., Alert]) -> None:
        codes = tuple(f"0{26000 + n:05d}" for n in range(1, 41))
        header = alert_to_same(us_alert(same_codes=codes), station="X", now=NOW)
        assert header.locations == codes[:31]

    def test_duplicates_dropped(self, us_alert: Callable[..., Alert]) -> None:
        header = alert_to_same(
            us_alert(same_codes=("026163", "026163", "026147")), station="X", now=NOW
        )
        assert header.locations == ("026163", "026147")

    @pytest.mark.parametrize(
        ("minutes", "ttt"),
        [(1, "0015"), (15, "0015"), (16, "0030"), (45, "0045"), (46, "0100"), (61, "0130")],
    )
    def test_duration_rounding(
        self, eccc_alert: Callable[..., Alert], minutes: int, ttt: str
    ) -> None:
        alert = eccc_alert(expires=SENT + timedelta(minutes=minutes))
        header = alert_to_same(alert, station="X", now=SENT)
        assert f"+{ttt}-" in header.to_text()

    def test_issue_time_across_new_year(self, eccc_alert: Callable[..., Alert]) -> None:
        sent = datetime(2026, 12, 31, 23, 50, tzinfo=UTC)
        alert = eccc_alert(sent=sent)
        alert = replace(
            alert,
            infos=tuple(replace(i, expires=sent + timedelta(hours=1)) for i in alert.infos),
        )
        header = alert_to_same(alert, station="X", now=sent)
        assert "-3652350-" in header.to_text()
        back = SameHeader.parse(header.to_text(), now=datetime(2027, 1, 1, 0, 5, tzinfo=UTC))
        assert back.issued == sent

    def test_update_is_aired(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(msg_type=MsgType.UPDATE)
        assert alert_to_same(alert, station="X", now=NOW).event == "SVR"


class TestCapToSameRefusals:
    """An alert that may not be aired gets no header, and the reason says why."""

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"status": Status.TEST}, "status Test"),
            ({"status": Status.EXERCISE}, "status Exercise"),
            ({"scope": Scope.RESTRICTED, "restriction": "x"}, "scope Restricted"),
            ({"msg_type": MsgType.CANCEL}, "Cancel is never aired"),
            ({"infos": ()}, "no <info>"),
        ],
    )
    def test_refused(
        self, eccc_alert: Callable[..., Alert], change: dict[str, object], reason: str
    ) -> None:
        with pytest.raises(TranslationError, match=reason):
            alert_to_same(eccc_alert(**change), station="X", now=NOW)

    def test_expired(self, eccc_alert: Callable[..., Alert]) -> None:
        with pytest.raises(TranslationError, match="expired"):
            alert_to_same(eccc_alert(), station="X", now=SENT + timedelta(hours=7))

    def test_no_expires(self, eccc_alert: Callable[..., Alert]) -> None:
        with pytest.raises(TranslationError, match="expires"):
            alert_to_same(eccc_alert(expires=None), station="X", now=NOW)

    def test_no_event(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert()
        alert = replace(alert, infos=(replace(alert.infos[0], event_codes=()),))
        with pytest.raises(TranslationError, match="eventCode"):
            alert_to_same(alert, station="X", now=NOW)

    def test_no_location(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert(areas=(Area("somewhere"),))
        with pytest.raises(TranslationError, match="location"):
            alert_to_same(alert, station="X", now=NOW)


class TestSameToCap:
    """A received header becomes a CAP alert marked as unauthenticated."""

    def test_weekly_test(self) -> None:
        header = SameHeader.parse(
            "ZCZC-WXR-RWT-020103-029095+0030-3650000-KEAX/NWS-",
            now=datetime(2027, 1, 2, tzinfo=UTC),
        )
        alert = same_to_alert(header)
        assert alert.status is Status.TEST
        assert alert.sent == datetime(2026, 12, 31, 0, 0, tzinfo=UTC)
        assert alert.expires == datetime(2026, 12, 31, 0, 30, tzinfo=UTC)
        info = alert.infos[0]
        assert info.event == "Required Weekly Test"
        assert info.areas[0].area_desc == "Leavenworth County, Kansas; Jackson County, Missouri"
        assert info.parameter("borderlink:authenticated") == "false"
        assert "unauthenticated" in (alert.note or "")
        assert is_valid(validate(alert))

    @pytest.mark.parametrize("event", ["RWT", "RMT", "NPT", "DMO"])
    def test_tests(self, event: str) -> None:
        header = SameHeader.parse(f"ZCZC-EAS-{event}-000000+0015-1001200-X-", now=NOW)
        assert same_to_alert(header).status is Status.TEST

    def test_warning_is_actual(self) -> None:
        header = SameHeader.parse("ZCZC-WXR-TOR-026163+0045-1951800-KDTX/NWS-", now=NOW)
        alert = same_to_alert(header)
        assert alert.status is Status.ACTUAL
        assert alert.infos[0].event_code("SAME") == "TOR"
        assert alert.infos[0].areas[0].geocodes == (ValuePair("SAME", "026163"),)

    def test_canadian_locations(self) -> None:
        header = SameHeader.parse("ZCZC-WXR-SVR-043100+0100-1951800-EC/GC/CA-", now=NOW)
        alert = same_to_alert(header, country="CA")
        assert alert.infos[0].areas[0].area_desc == "Toronto"
        assert alert.infos[0].language == "en-CA"

    def test_same_header_from_two_stations_is_one_alert(self) -> None:
        a = SameHeader.parse("ZCZC-WXR-TOR-026163+0045-1951800-KDTX/NWS-", now=NOW)
        b = SameHeader.parse("ZCZC-WXR-TOR-026163+0045-1951800-WWJ/AM  -", now=NOW)
        assert same_to_alert(a).identifier == same_to_alert(b).identifier

    def test_unknown_event_named(self) -> None:
        header = SameHeader.parse("ZCZC-CIV-XYZ-026163+0045-1951800-X-", now=NOW)
        assert same_to_alert(header).infos[0].event == "SAME event XYZ"

    def test_round_trip(self, us_alert: Callable[..., Alert]) -> None:
        header = alert_to_same(us_alert(), station="KDTX/NWS", now=NOW)
        again = alert_to_same(same_to_alert(header), station="KDTX/NWS", now=NOW)
        assert again == header


class TestCountry:
    """A header aired in the other country takes that country's codes via the crosswalk."""

    def test_canadian_alert_on_us_station(self, eccc_alert: Callable[..., Alert]) -> None:
        header = alert_to_same(eccc_alert(), station="WWJ/AM", now=NOW, country="US")
        assert header.locations == FACING_ESSEX

    def test_canada_only_event_mapped_for_us(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(capcp="flashFreeze", same="FSW")
        assert alert_to_same(alert, station="X", now=NOW, country="US").event == "SPS"
        assert alert_to_same(alert, station="X", now=NOW, country="CA").event == "FSW"

    def test_us_alert_on_canadian_station(self, us_alert: Callable[..., Alert]) -> None:
        header = alert_to_same(us_alert(), station="CKLW/AM", now=NOW, country="CA")
        assert header.locations == ("041420", "041310", "041320")  # Essex, Lambton

    def test_nothing_across_the_border(self, us_alert: Callable[..., Alert]) -> None:
        # An Alaska borough with no crosswalk row, drawn around Fairbanks: no Canadian zone.
        ring = ((64.7, -148.0), (64.7, -147.5), (65.0, -147.5), (65.0, -148.0), (64.7, -148.0))
        fairbanks = Area(
            area_desc="Fairbanks North Star, AK",
            polygons=(Polygon(tuple(Point(lat, lon) for lat, lon in ring)),),
            geocodes=(ValuePair("SAME", "002090"),),
        )
        with pytest.raises(TranslationError, match="location"):
            alert_to_same(us_alert(areas=(fairbanks,)), station="X", now=NOW, country="CA")

    def test_bad_country(self, us_alert: Callable[..., Alert]) -> None:
        with pytest.raises(ConfigError, match="country"):
            alert_to_same(us_alert(), station="X", now=NOW, country="MX")


class TestCorpus:
    """Published and logged headers read back; corpus alerts get a header or a reason."""

    def test_logged_headers_to_cap(self) -> None:
        folder = corpus_dir("same")
        lines = [
            line.strip()
            for name in (
                "quantumendec-SameHistory.txt",
                "dsame-WXR-RWT.txt",
                "sameold-two_and_two.22050.s16le.txt",
                "sameold-npt.22050.s16le.txt",
            )
            for line in (folder / name).read_text().splitlines()
            if line.startswith("ZCZC-")
        ]
        assert len(lines) >= 15
        for line in lines:
            header = SameHeader.parse(line, now=NOW)
            assert header.to_text() == line
            alert = same_to_alert(header, country="CA" if "QUANTUM" in line else "US")
            assert is_valid(validate(alert)), line

    def test_dummy_header_refused(self) -> None:
        text = (corpus_dir("same") / "sameold-long_message.22050.s16le.txt").read_text()
        line = next(ln for ln in text.splitlines() if ln.startswith("ZCZC-"))
        with pytest.raises(SameHeaderError, match=r"out of range|valid time"):
            SameHeader.parse(line, now=NOW)

    def test_canadian_corpus_gets_headers(self, capcp_corpus: list[Alert]) -> None:
        for alert in capcp_corpus:
            header = alert_to_same(alert, station="BORDERLK", now=alert.sent)
            info = alert.info_for("en") or alert.infos[0]
            own = info.event_code("SAME")
            if own:
                assert header.event == own
            assert header.originator == (
                "WXR" if alert.sender.endswith(("canada.ca", "ec.gc.ca")) else "CIV"
            )

    def test_us_corpus_gets_header_or_reason(self, us_corpus: list[Alert]) -> None:
        aired = 0
        for alert in us_corpus:
            info = alert.infos[0]
            has_location = any(g.name in ("SAME", "FIPS6") for a in info.areas for g in a.geocodes)
            if info.event_code("SAME") and has_location:
                header = alert_to_same(alert, station="BORDERLK", now=alert.sent)
                assert header.event == info.event_code("SAME")
                aired += 1
            else:
                with pytest.raises(TranslationError, match=r"^no SAME header: "):
                    alert_to_same(alert, station="BORDERLK", now=alert.sent)
        assert aired >= 3
