"""The demo source's bundled alerts take every translation the demo routes name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cap_schemas.model import Alert, MsgType
from cap_schemas.parse import parse_alert
from cap_schemas.validate import is_valid, validate
from gateway.translate.registry import RENDERERS

codec = pytest.importorskip("adapters.demo.codec")
NOW = datetime(2026, 7, 14, 18, 0, tzinfo=UTC)


def _replay() -> dict[str, Alert]:
    earlier: dict[str, bytes] = {}
    for template in codec.bundled_templates():
        earlier[template.name] = codec.render(
            template, now=NOW, serial="1", lifetime=timedelta(hours=2), earlier=earlier
        )
    return {name: parse_alert(data) for name, data in earlier.items()}


class TestDemoAlerts:
    """The Canadian alerts reach IPAWS and SAME (US), the US alert reaches CAP-CP."""

    def test_canadian_to_ipaws(self) -> None:
        alerts = _replay()
        for name in ("01-ca-tornado-warning", "03-ca-tornado-ended"):
            rendered = RENDERERS["ipaws"](alerts[name], {"sender": "eoc@wayne.example.gov"})
            result = parse_alert(rendered.parts[0])
            assert is_valid(validate(result, profile="ipaws")), name
            assert result.infos[0].areas[0].geocode_values("SAME") == ("026163",)

    def test_cancel_references_the_translated_warning(self) -> None:
        alerts = _replay()
        opts = {"sender": "eoc@wayne.example.gov"}
        warning = parse_alert(RENDERERS["ipaws"](alerts["01-ca-tornado-warning"], opts).parts[0])
        ended = parse_alert(RENDERERS["ipaws"](alerts["03-ca-tornado-ended"], opts).parts[0])
        assert ended.msg_type is MsgType.CANCEL
        assert warning.key in ended.references

    def test_us_to_capcp(self) -> None:
        alert = _replay()["02-us-flash-flood-warning"]
        result = parse_alert(RENDERERS["cap-cp"](alert, {}).parts[0])
        assert is_valid(validate(replace(result, raw=b""), profile="cap-cp"))
        assert result.infos[-1].language == "fr-CA"

    @pytest.mark.parametrize("radio", ["aprs", "pager", "dmr", "generic"])
    def test_radio_text(self, radio: str) -> None:
        for alert in _replay().values():
            rendered = RENDERERS["text"](alert, {"radio": radio, "lang": "both"})
            assert rendered.parts

    def test_same_for_us_station(self) -> None:
        alert = _replay()["01-ca-tornado-warning"]
        rendered = RENDERERS["same"](
            alert, {"station": "WWJ/AM", "country": "US", "now": NOW + timedelta(minutes=1)}
        )
        assert rendered.parts[0].startswith(b"ZCZC-")
        assert b"-026163+" in rendered.parts[0]
