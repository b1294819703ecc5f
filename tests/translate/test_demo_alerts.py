"""The demo source's bundled alerts take every translation the demo routes name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.demo import codec
from cap_schemas.model import Alert, MsgType
from cap_schemas.parse import parse_alert
from cap_schemas.validate import is_valid, validate
from gateway.translate.registry import RENDERERS

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
        for name in (
            "01-ca-tornado-warning",
            "03-ca-tornado-warning-update",
            "04-ca-tornado-ended",
        ):
            rendered = RENDERERS["ipaws"](alerts[name], {"sender": "eoc@wayne.example.gov"})
            result = parse_alert(rendered.parts[0])
            assert is_valid(validate(result, profile="ipaws")), name
            # Essex faces Wayne County (the Detroit River) among others.
            assert "026163" in result.infos[0].areas[0].geocode_values("SAME")

    def test_cancel_references_the_translated_warning(self) -> None:
        alerts = _replay()
        opts = {"sender": "eoc@wayne.example.gov"}
        warning = parse_alert(RENDERERS["ipaws"](alerts["01-ca-tornado-warning"], opts).parts[0])
        update = RENDERERS["ipaws"](alerts["03-ca-tornado-warning-update"], opts).parts[0]
        ended = parse_alert(RENDERERS["ipaws"](alerts["04-ca-tornado-ended"], opts).parts[0])
        assert ended.msg_type is MsgType.CANCEL
        assert {warning.key, parse_alert(update).key} <= set(ended.references)

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
        assert b"-026163" in rendered.parts[0]


class TestRoutes:
    """The route examples of docs/translation.md load and plan the right translations."""

    def test_router_plans_translations(self, tmp_path: Path) -> None:
        from gateway.config import load_config  # noqa: PLC0415
        from gateway.ledger import Admission, Decision  # noqa: PLC0415
        from gateway.router import PlanContext, Router  # noqa: PLC0415

        doc = (Path(__file__).resolve().parents[2] / "docs" / "translation.md").read_text()
        block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
        config = tmp_path / "demo.toml"
        config.write_text(
            '[mqtt]\nbroker = "embedded"\nprefix = "borderlink"\n'
            + '[[source]]\nname = "demo"\ntype = "demo"\n\n'
            + block,
            encoding="utf-8",
        )
        router = Router(load_config(config))
        alerts = _replay()
        plans = {}
        for name, alert in alerts.items():
            profile = "ipaws" if "IPAWSv1.0" in alert.codes else "cap-cp"
            ctx = PlanContext(alert=alert, source="demo", profile=profile)
            planned = router.plan(ctx, Admission(alert.key, Decision.NEW))
            plans[name] = {p.sink: p for p in planned}
        warning = plans["01-ca-tornado-warning"]
        assert set(warning) >= {"mqtt-us-ipaws", "mqtt-radio-aprs", "mqtt-radio-pager"}
        ipaws = parse_alert(warning["mqtt-us-ipaws"].parts[0])
        assert ipaws.sender == "eoc@border.example.gov"
        assert all(len(p) <= 67 for p in warning["mqtt-radio-aprs"].parts)
        flood = plans["02-us-flash-flood-warning"]
        assert "mqtt-ca-capcp" in flood
        capcp = parse_alert(flood["mqtt-ca-capcp"].parts[0])
        assert capcp.infos[-1].language == "fr-CA"
        assert "mqtt-us-ipaws" not in flood
