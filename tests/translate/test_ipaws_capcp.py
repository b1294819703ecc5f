"""IPAWS/NWS -> CAP-CP: event, Broadcast Immediately, areas, the composed French block."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from cap_schemas.model import (
    Alert,
    AlertKey,
    Area,
    Certainty,
    MsgType,
    Severity,
    Status,
    Urgency,
    ValuePair,
)
from cap_schemas.parse import parse_alert
from cap_schemas.serialize import to_xml
from cap_schemas.tables import Crosswalk
from cap_schemas.validate import is_valid, validate
from gateway.errors import ConfigError, TranslationError
from gateway.translate.ipaws_capcp import (
    INSTRUCTION_FR,
    UNTRANSLATED_FR,
    CapCpOptions,
    french_county,
    ipaws_to_capcp,
)

OPTS = CapCpOptions(sender="ops@essex.example.ca", identifier_prefix="ESSEX-EOC")
BI = "layer:SOREM:1.0:Broadcast_Immediately"


def _capcp_errors(alert: Alert) -> list[str]:
    return [
        str(f) for f in validate(replace(alert, raw=b""), profile="cap-cp") if f.severity == "error"
    ]


class TestEventAndIdentity:
    """A CAP-CP event code beside the SAME one; a new identity referencing the source."""

    def test_event(self, us_alert: Callable[..., Alert]) -> None:
        result = ipaws_to_capcp(us_alert(), OPTS)
        assert result.codes == ("profile:CAP-CP:0.4", "layer:SOREM:1.0")
        for info in result.infos:
            assert info.event_code("profile:CAP-CP:Event:0.4") == "tornado"
            assert info.event_code("SAME") == "TOR"
        assert result.references == (us_alert().key,)
        assert result.sender == "ops@essex.example.ca"

    def test_event_from_name_when_no_code(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert()
        alert = replace(alert, infos=(replace(alert.infos[0], event_codes=()),))
        assert ipaws_to_capcp(alert, OPTS).infos[0].event_code("profile:CAP-CP:Event:0.4") == (
            "tornado"
        )

    def test_unknown_event_is_other(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert()
        info = replace(alert.infos[0], event="Beach Hazards Statement", event_codes=())
        result = ipaws_to_capcp(replace(alert, infos=(info,)), OPTS)
        assert result.infos[0].event_code("profile:CAP-CP:Event:0.4") == "other"
        assert result.infos[-1].event == "autre (en anglais : Beach Hazards Statement)"

    def test_update_and_cancel(self, us_alert: Callable[..., Alert], reference: AlertKey) -> None:
        for kind in (MsgType.UPDATE, MsgType.CANCEL):
            result = ipaws_to_capcp(us_alert(msg_type=kind, references=(reference,)), OPTS)
            assert result.msg_type is kind
            assert len(result.references) == 2
            assert _capcp_errors(result) == []


class TestBroadcastImmediately:
    """Yes for must-carry or Extreme + Immediate + Observed/Likely, Actual only."""

    def test_must_carry(self, us_alert: Callable[..., Alert]) -> None:
        result = ipaws_to_capcp(us_alert(params=(ValuePair("EAS-Must-Carry", "True"),)), OPTS)
        assert {i.parameter(BI) for i in result.infos} == {"Yes"}

    def test_extreme_immediate(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert(severity=Severity.EXTREME, urgency=Urgency.IMMEDIATE)
        assert ipaws_to_capcp(alert, OPTS).infos[0].parameter(BI) == "Yes"

    def test_extreme_possible_is_not(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert(severity=Severity.EXTREME, certainty=Certainty.POSSIBLE)
        assert ipaws_to_capcp(alert, OPTS).infos[0].parameter(BI) == "No"

    def test_severe_is_not(self, us_alert: Callable[..., Alert]) -> None:
        assert ipaws_to_capcp(us_alert(), OPTS).infos[0].parameter(BI) == "No"

    def test_test_message_never(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert(status=Status.TEST, params=(ValuePair("EAS-Must-Carry", "True"),))
        assert ipaws_to_capcp(alert, OPTS).infos[0].parameter(BI) == "No"


class TestFrenchBlock:
    """An fr-CA block is always composed from structured fields."""

    def test_composed(self, us_alert: Callable[..., Alert]) -> None:
        result = ipaws_to_capcp(us_alert(), OPTS)
        fr = result.infos[-1]
        assert fr.language == "fr-CA"
        assert fr.event == "Avertissement de tornade"
        assert fr.headline == (
            "Avertissement de tornade en vigueur pour comté de Wayne (Michigan, É.-U.) "
            "jusqu'au 14 juillet 2026 à 14 h 45 (UTC-04:00)"
        )
        assert fr.parameter("profile:CAP-CP:0.4:AutoTranslated") == "Yes"
        assert (fr.description or "").startswith(UNTRANSLATED_FR)
        assert "a severe thunderstorm capable" in (fr.description or "")
        assert (fr.instruction or "").startswith(INSTRUCTION_FR)
        assert fr.areas[0].area_desc == (
            "comté de Wayne (Michigan, É.-U.) — en face de : Essex, Lambton"
        )
        assert fr.event_codes == result.infos[0].event_codes

    def test_english_block_kept(self, us_alert: Callable[..., Alert]) -> None:
        en = ipaws_to_capcp(us_alert(), OPTS).infos[0]
        assert en.language == "en-US"
        assert en.description == us_alert().infos[0].description
        assert en.parameter("profile:CAP-CP:0.4:AutoTranslated") is None

    def test_cancel_headline(self, us_alert: Callable[..., Alert], reference: AlertKey) -> None:
        result = ipaws_to_capcp(us_alert(msg_type=MsgType.CANCEL, references=(reference,)), OPTS)
        assert (result.infos[-1].headline or "").startswith("Annulé : ")

    def test_spanish_block_dropped(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert()
        spanish = replace(alert.infos[0], language="es-US", headline="Aviso de tornado")
        result = ipaws_to_capcp(replace(alert, infos=(*alert.infos, spanish)), OPTS)
        assert [i.language for i in result.infos] == ["en-US", "fr-CA"]

    @pytest.mark.parametrize(
        ("code", "name"),
        [
            ("053073", "comté de Whatcom (Washington, É.-U.)"),
            ("022001", "paroisse d'Acadia (Louisiana, É.-U.)"),
            ("036000", "New York (É.-U.)"),
            ("099999", None),
        ],
    )
    def test_county_names(self, code: str, name: str | None) -> None:
        assert french_county(code) == name

    def test_wea_text_becomes_wireless_text(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert(params=(ValuePair("CMAMtext", "Tornado Warning: take shelter now"),))
        en = ipaws_to_capcp(alert, OPTS).infos[0]
        assert en.parameter("layer:SOREM:2.0:WirelessText") == "Tornado Warning: take shelter now"


class TestAreas:
    """Areas reach Canada through the crosswalk; polygons and circles kept."""

    def test_geocodes_and_geometry(self, us_alert: Callable[..., Alert]) -> None:
        area = ipaws_to_capcp(us_alert(), OPTS).infos[0].areas[0]
        # Wayne County faces Essex, and Lambton across Lake St. Clair.
        assert area.geocode_values("profile:CAP-CP:Location:0.3") == ("3537", "3538")
        assert area.geocode_values("SAME") == ("026163",)
        assert area.polygons
        assert area.circles

    def test_unplaced_area_left_out(self, us_alert: Callable[..., Alert]) -> None:
        areas = (
            Area("Wayne", geocodes=(ValuePair("SAME", "026163"),)),
            Area("Orleans, LA", geocodes=(ValuePair("SAME", "022071"),)),
        )
        result = ipaws_to_capcp(us_alert(areas=areas), OPTS)
        assert [a.area_desc for a in result.infos[0].areas] == ["Wayne"]

    def test_nothing_placed_is_refused(self, us_alert: Callable[..., Alert]) -> None:
        with pytest.raises(TranslationError, match="crosswalk"):
            ipaws_to_capcp(us_alert(same_codes=("022071",)), OPTS)

    def test_fallback_sgc(self, us_alert: Callable[..., Alert]) -> None:
        opts = replace(OPTS, fallback_sgc="3537")
        area = ipaws_to_capcp(us_alert(same_codes=("022071",)), opts).infos[0].areas[0]
        assert area.geocode_values("profile:CAP-CP:Location:0.3") == ("3537",)

    def test_bad_fallback_option(self) -> None:
        with pytest.raises(ConfigError, match="fallback_sgc"):
            CapCpOptions.from_mapping({"fallback_sgc": "Essex"})


class TestCorpus:
    """Every published IPAWS and NWS alert translates to a valid CAP-CP alert."""

    def test_all(self, us_corpus: list[Alert]) -> None:
        assert len(us_corpus) >= 8
        opts = replace(OPTS, crosswalk=Crosswalk.empty(), fallback_sgc="3537")
        for source in us_corpus:
            result = ipaws_to_capcp(source, opts)
            assert _capcp_errors(result) == [], source.key
            assert result.infos[-1].language == "fr-CA"
            assert parse_alert(to_xml(result)) == result
            assert is_valid(validate(replace(result, raw=b""), profile="cap-cp"))
