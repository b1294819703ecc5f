"""CAP-CP -> IPAWS: identity, event, EAS parameters, WEA text, times, areas, languages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from cap_schemas.model import Alert, AlertKey, Circle, MsgType, Point, ValuePair
from cap_schemas.parse import parse_alert
from cap_schemas.serialize import to_xml
from cap_schemas.tables import Crosswalk, capcp_to_same
from cap_schemas.validate import is_valid, validate
from gateway.errors import ConfigError, TranslationError
from gateway.translate.capcp_ipaws import IpawsOptions, capcp_to_ipaws
from gateway.translate.common import derived_identifier
from tests.translate.conftest import SENT

#: The US counties facing Essex (3537) in the shipped crosswalk: Macomb, Monroe and Wayne,
#: Michigan (Lake St. Clair, the Detroit River), Cuyahoga, Erie, Lorain and Ottawa, Ohio
#: (Lake Erie).
FACING_ESSEX = ("026099", "026115", "026163", "039035", "039043", "039093", "039123")
OPTS = IpawsOptions(sender="eoc@wayne.example.gov", identifier_prefix="WAYNE-EOC")
BI = ValuePair("layer:SOREM:1.0:Broadcast_Immediately", "Yes")


def _ipaws_errors(alert: Alert) -> list[str]:
    return [
        str(f) for f in validate(replace(alert, raw=b""), profile="ipaws") if f.severity == "error"
    ]


class TestIdentity:
    """A new alert in the operator's namespace that references its source."""

    def test_namespace_and_reference(self, eccc_alert: Callable[..., Alert]) -> None:
        source = eccc_alert()
        result = capcp_to_ipaws(source, OPTS)
        assert result.sender == "eoc@wayne.example.gov"
        assert result.identifier == derived_identifier("WAYNE-EOC", source.key)
        assert result.references[0] == source.key
        assert result.codes == ("IPAWSv1.0",)
        assert str(source.key) in (result.note or "")

    def test_deterministic(self, eccc_alert: Callable[..., Alert]) -> None:
        assert to_xml(capcp_to_ipaws(eccc_alert(), OPTS)) == to_xml(
            capcp_to_ipaws(eccc_alert(), OPTS)
        )

    def test_update_references_our_earlier_translation(
        self, eccc_alert: Callable[..., Alert], reference: AlertKey
    ) -> None:
        original = eccc_alert(identifier=reference.identifier, sent=SENT - timedelta(hours=2))
        update = eccc_alert(msg_type=MsgType.UPDATE, references=(reference,))
        first = capcp_to_ipaws(original, OPTS)
        second = capcp_to_ipaws(update, OPTS)
        assert second.msg_type is MsgType.UPDATE
        assert first.key in second.references
        assert update.key in second.references

    def test_cancel_carried_through(
        self, eccc_alert: Callable[..., Alert], reference: AlertKey
    ) -> None:
        cancel = eccc_alert(msg_type=MsgType.CANCEL, references=(reference,))
        result = capcp_to_ipaws(cancel, OPTS)
        assert result.msg_type is MsgType.CANCEL
        assert len(result.references) == 2
        assert _ipaws_errors(result) == []


class TestEasParameters:
    """One SAME event, EAS-ORG, must-carry, WEA texts and channel blocks."""

    def test_one_same_event_and_org(self, eccc_alert: Callable[..., Alert]) -> None:
        result = capcp_to_ipaws(eccc_alert(same=None, alert_type="watch"), OPTS)
        for info in result.infos:
            assert [c.value for c in info.event_codes if c.name == "SAME"] == ["SVA"]
            assert info.event_code("profile:CAP-CP:Event:0.4") == "thunderstorm"
            assert info.parameter_values("EAS-ORG") == ("WXR",)

    def test_canada_only_same_code_replaced(self, eccc_alert: Callable[..., Alert]) -> None:
        result = capcp_to_ipaws(eccc_alert(capcp="flashFreeze", same="FSW"), OPTS)
        assert result.infos[0].event_code("SAME") == "SPS"

    def test_broadcast_immediately_is_must_carry(self, eccc_alert: Callable[..., Alert]) -> None:
        result = capcp_to_ipaws(eccc_alert(params=(BI,)), OPTS)
        assert all(i.parameter("EAS-Must-Carry") == "True" for i in result.infos)
        assert all(i.parameter(BI.name) is None for i in result.infos)

    def test_not_must_carry_otherwise(self, eccc_alert: Callable[..., Alert]) -> None:
        result = capcp_to_ipaws(eccc_alert(), OPTS)
        assert all(i.parameter("EAS-Must-Carry") is None for i in result.infos)

    def test_wireless_text_short(self, eccc_alert: Callable[..., Alert]) -> None:
        text = ValuePair("layer:SOREM:2.0:WirelessText", "Tornado warning: take shelter now.")
        result = capcp_to_ipaws(eccc_alert(params=(text,)), OPTS)
        assert result.infos[0].parameter("CMAMtext") == "Tornado warning: take shelter now."
        assert result.infos[0].parameter("CMAMlongtext") is None
        assert result.infos[1].parameter("CMAMtext") is None

    def test_wireless_text_long_is_cut_on_words(self, eccc_alert: Callable[..., Alert]) -> None:
        long = " ".join(["shelter"] * 80)
        text = ValuePair("layer:SOREM:2.0:WirelessText", long)
        info = capcp_to_ipaws(eccc_alert(params=(text,)), OPTS).infos[0]
        short, longer = info.parameter("CMAMtext") or "", info.parameter("CMAMlongtext") or ""
        assert len(short) <= 90
        assert len(longer) <= 360
        assert short.split() == ["shelter"] * len(short.split())
        assert long.startswith(longer)

    def test_no_composed_wea_text(self, eccc_alert: Callable[..., Alert]) -> None:
        info = capcp_to_ipaws(eccc_alert(), OPTS).infos[0]
        assert info.parameter("CMAMtext") is None

    def test_blockchannel(self, eccc_alert: Callable[..., Alert]) -> None:
        opts = replace(OPTS, blockchannels=("CMAS", "NWEM"))
        info = capcp_to_ipaws(eccc_alert(), opts).infos[0]
        assert info.parameter_values("BLOCKCHANNEL") == ("CMAS", "NWEM")

    def test_bad_blockchannel_option(self) -> None:
        with pytest.raises(ConfigError, match="blockchannel"):
            IpawsOptions.from_mapping({"blockchannel": ["RADIO"]})


class TestTimesAndAreas:
    """Local time zone on every time, expires always set, areas kept and crosswalked."""

    def test_times_in_operator_zone(self, eccc_alert: Callable[..., Alert]) -> None:
        result = capcp_to_ipaws(eccc_alert(), OPTS)
        assert result.sent == SENT
        assert result.sent.utcoffset() == timedelta(hours=-4)
        assert result.infos[0].expires is not None
        assert result.infos[0].expires.utcoffset() == timedelta(hours=-4)
        assert result.infos[0].parameter("timezone") == "EDT"

    def test_expires_always_set(self, eccc_alert: Callable[..., Alert]) -> None:
        result = capcp_to_ipaws(eccc_alert(expires=None), OPTS)
        assert all(i.expires == SENT + timedelta(hours=6) for i in result.infos)

    def test_crosswalk_adds_same_geocodes(self, eccc_alert: Callable[..., Alert]) -> None:
        area = capcp_to_ipaws(eccc_alert(), OPTS).infos[0].areas[0]
        assert area.geocode_values("SAME") == FACING_ESSEX
        assert area.geocode_values("profile:CAP-CP:Location:0.3") == ("3537",)
        assert area.polygons

    def test_circle_kept(self, eccc_alert: Callable[..., Alert]) -> None:
        source = eccc_alert()
        infos = tuple(
            replace(i, areas=(replace(i.areas[0], circles=(Circle(Point(42.0, -83.0), 10),)),))
            for i in source.infos
        )
        area = capcp_to_ipaws(replace(source, infos=infos), OPTS).infos[0].areas[0]
        assert area.circles == (Circle(Point(42.0, -83.0), 10),)

    def test_no_crosswalk_keeps_valid_alert(self, eccc_alert: Callable[..., Alert]) -> None:
        opts = replace(OPTS, crosswalk=Crosswalk.empty())
        result = capcp_to_ipaws(eccc_alert(), opts)
        assert result.infos[0].areas[0].geocode_values("SAME") == ()

    def test_french_block_kept(self, eccc_alert: Callable[..., Alert]) -> None:
        result = capcp_to_ipaws(eccc_alert(), OPTS)
        assert [i.language for i in result.infos] == ["en-CA", "fr-CA"]
        assert result.infos[1].event == "orages"
        assert result.infos[0].event_codes == result.infos[1].event_codes


class TestRefusalsAndValidity:
    """Results pass the IPAWS validator; messages with nothing to forward are refused."""

    def test_valid(self, eccc_alert: Callable[..., Alert]) -> None:
        assert _ipaws_errors(capcp_to_ipaws(eccc_alert(params=(BI,)), OPTS)) == []

    def test_heartbeat_refused(self, eccc_alert: Callable[..., Alert]) -> None:
        with pytest.raises(TranslationError, match="info"):
            capcp_to_ipaws(eccc_alert(infos=()), OPTS)

    def test_ack_refused(self, eccc_alert: Callable[..., Alert]) -> None:
        with pytest.raises(TranslationError, match="Ack"):
            capcp_to_ipaws(eccc_alert(msg_type=MsgType.ACK), OPTS)

    def test_bad_sender_option(self) -> None:
        with pytest.raises(ConfigError, match="sender"):
            IpawsOptions.from_mapping({"sender": "two words"})

    def test_bad_timezone_option(self) -> None:
        with pytest.raises(ConfigError, match="timezone"):
            IpawsOptions.from_mapping({"timezone": "Mars/Olympus"})


class TestCorpus:
    """Every published CAP-CP alert translates to a valid IPAWS alert."""

    def test_all(self, capcp_corpus: list[Alert]) -> None:
        assert len(capcp_corpus) >= 15
        for source in capcp_corpus:
            result = capcp_to_ipaws(source, OPTS)
            assert is_valid(validate(replace(result, raw=b""), profile="ipaws")), source.key
            assert parse_alert(to_xml(result)) == result
            assert result.references[0] == source.key

    def test_bilingual_eccc(self, capcp_corpus: list[Alert]) -> None:
        eccc = [a for a in capcp_corpus if a.sender.endswith(("canada.ca", "ec.gc.ca"))]
        assert eccc
        for source in eccc:
            result = capcp_to_ipaws(source, OPTS)
            assert {i.language[:2] for i in result.infos} == {"en", "fr"}
            assert result.infos[0].parameter("EAS-ORG") == "WXR"
            first = source.infos[0]
            mapped = capcp_to_same(
                first.event_code("profile:CAP-CP:Event:0.4") or "",
                first.parameter("layer:EC-MSC-SMC:1.0:Alert_Type"),
            )
            assert mapped is not None
            expected = first.event_code("SAME") or mapped.same
            assert result.infos[0].event_code("SAME") == expected

    def test_broadcast_immediately_sample(self, capcp_corpus: list[Alert]) -> None:
        bi = [a for a in capcp_corpus if any(i.parameter(BI.name) == "Yes" for i in a.infos)]
        assert bi
        for source in bi:
            info = capcp_to_ipaws(source, OPTS).infos[0]
            assert info.parameter("EAS-Must-Carry") == "True"
            if source.infos[0].parameter("layer:SOREM:2.0:WirelessText"):
                assert info.parameter("CMAMtext")


class TestAreasZone:
    """IPAWS times in the zone of the area the alert reaches (``timezone = "auto"``, the
    default), or in the route's fixed zone."""

    def test_county_zones(self) -> None:
        from gateway.translate.us_zones import county_zone, zone_of_same_codes  # noqa: PLC0415

        assert county_zone("53073") == "America/Los_Angeles"  # Whatcom, WA
        assert county_zone("16021") == "America/Los_Angeles"  # Boundary, ID (panhandle)
        assert county_zone("16001") == "America/Boise"  # Ada, ID
        assert county_zone("26053") == "America/Menominee"  # Gogebic, MI
        assert county_zone("26163") == "America/Detroit"  # Wayne, MI
        assert county_zone("38089") == "America/Denver"  # Stark, ND
        assert county_zone("38017") == "America/Chicago"  # Cass, ND
        assert county_zone("99001") is None
        assert zone_of_same_codes(["bad", "053000"]) == "America/Los_Angeles"
        assert zone_of_same_codes([]) is None

    def test_a_bc_alert_reaches_whatcom_in_pacific_time(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        alert = eccc_alert(sgc=("5915",), clc=())
        opts = IpawsOptions(sender="eoc@whatcom.example.gov", crosswalk=Crosswalk.default())
        out = capcp_to_ipaws(alert, opts)
        assert out.infos[0].areas[0].geocode_values("SAME") == ("053073",)
        assert out.sent.utcoffset() in (timedelta(hours=-7), timedelta(hours=-8))
        assert out.infos[0].parameter("timezone") in ("PDT", "PST")
        assert out.sent == alert.sent  # the same instant, written in the area's zone
        # A route that fixes the zone keeps it.
        fixed = capcp_to_ipaws(alert, replace(opts, timezone="America/Detroit"))
        assert fixed.sent.utcoffset() in (timedelta(hours=-4), timedelta(hours=-5))

    def test_no_us_county_falls_back_to_eastern(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(sgc=("2466",), clc=())  # Montreal: no county across the border
        out = capcp_to_ipaws(alert, IpawsOptions(sender="eoc@x.example.gov"))
        assert out.sent.utcoffset() in (timedelta(hours=-4), timedelta(hours=-5))
