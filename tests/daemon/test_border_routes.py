"""Routes that cross the border: ``near_border_km`` and the demo's whole-border routes.

Through the daemon over a real Mosquitto: alerts go in on ``borderlink/in/cap`` and the
test reads what each route's sink publishes.
"""

from __future__ import annotations

import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cap_schemas.model import format_cap_datetime
from cap_schemas.parse import parse_alert
from cap_schemas.validate import is_valid, validate
from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    publish_all,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker

ROOT = Path(__file__).resolve().parents[2]
CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"

# Polygons ("lat,lon ..." as CAP writes them) south of the 49th parallel in Ferry County,
# Washington, where the border is the parallel: their northern edges lie 20 km and 200 km
# from it (0.18 and 1.80 degrees of latitude, 111.2 km each).
NEAR_20_KM = "48.63,-118.3 48.63,-118.0 48.81,-118.0 48.81,-118.3 48.63,-118.3"
FAR_200_KM = "47.0,-118.3 47.0,-118.0 47.19,-118.0 47.19,-118.3 47.0,-118.3"
# Surrey, British Columbia (census subdivision 5915004, in Greater Vancouver 5915).
SURREY = "49.03,-122.86 49.03,-122.68 49.21,-122.68 49.21,-122.86 49.03,-122.86"
# Around Ferndale, Whatcom County, Washington (SAME 053073).
WHATCOM = "48.80,-122.70 48.80,-122.50 48.92,-122.50 48.92,-122.70 48.80,-122.70"


def _times(zone: str = "UTC") -> tuple[str, str]:
    """Now and two hours later, in a zone (IPAWS wants the local offset, not -00:00)."""
    now = datetime.now(UTC).replace(microsecond=0).astimezone(ZoneInfo(zone))
    return format_cap_datetime(now), format_cap_datetime(now + timedelta(hours=2))


def surrey_tornado() -> bytes:
    """A CAP-CP tornado warning for Surrey, in English and French."""
    sent, expires = _times()

    def info(lang: str, event: str, headline: str, desc: str) -> str:
        return (
            f"<info><language>{lang}</language><category>Met</category><event>{event}</event>"
            "<responseType>Shelter</responseType><urgency>Immediate</urgency>"
            "<severity>Extreme</severity><certainty>Observed</certainty>"
            "<eventCode><valueName>profile:CAP-CP:Event:0.4</valueName><value>tornado</value>"
            f"</eventCode><expires>{expires}</expires><headline>{headline}</headline>"
            f"<description>{desc}</description><area><areaDesc>Surrey</areaDesc>"
            f"<polygon>{SURREY}</polygon><geocode><valueName>{CAPCP_LOCATION}</valueName>"
            "<value>5915004</value></geocode></area></info>"
        )

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>urn:oid:2.49.0.1.124.test.{uuid.uuid4().hex}</identifier>"
        f"<sender>surrey-test@borderlink.invalid</sender><sent>{sent}</sent>"
        "<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>"
        "<code>profile:CAP-CP:0.4</code><code>layer:SOREM:1.0</code>"
        + info("en-CA", "tornado", "tornado warning in effect", "A tornado was observed.")
        + info("fr-CA", "tornade", "avertissement de tornade", "Une tornade a été observée.")
        + "</alert>"
    ).encode()


def whatcom_hazmat(*, polygon: bool = True) -> bytes:
    """An IPAWS hazardous materials warning for Whatcom County (with or without a polygon:
    without, the county its SAME code names is what is measured)."""
    sent, expires = _times("America/Los_Angeles")
    shape = f"<polygon>{WHATCOM}</polygon>" if polygon else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>WHATCOM-HMW-{uuid.uuid4().hex}</identifier>"
        f"<sender>whatcom-test@borderlink.invalid</sender><sent>{sent}</sent>"
        "<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>"
        "<code>IPAWSv1.0</code><info><language>en-US</language><category>CBRNE</category>"
        "<event>Hazardous Materials Warning</event><responseType>Shelter</responseType>"
        "<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>"
        "<eventCode><valueName>SAME</valueName><value>HMW</value></eventCode>"
        f"<expires>{expires}</expires><headline>Hazardous Materials Warning</headline>"
        "<description>A chlorine leak at a plant near Ferndale.</description>"
        "<instruction>Stay indoors and close windows.</instruction>"
        "<parameter><valueName>EAS-ORG</valueName><value>CIV</value></parameter>"
        f"<area><areaDesc>Whatcom, WA</areaDesc>{shape}"
        "<geocode><valueName>SAME</valueName><value>053073</value></geocode></area>"
        "</info></alert>"
    ).encode()


def _demo_cross_border() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo configuration's cross-border sinks and routes, as written there."""
    demo = tomllib.loads((ROOT / "config" / "demo.toml").read_text(encoding="utf-8"))
    routes = [r for r in demo["route"] if r["name"] in {"canada-to-us", "us-to-canada"}]
    names = {s for r in routes for s in r["sinks"]}
    sinks = [s for s in demo["sink"] if s["name"] in names]
    assert len(routes) == 2
    assert len(sinks) == 2
    return sinks, routes


class TestFixtures:
    """The test alerts are valid in their profiles (the daemon rejects invalid input)."""

    def test_profiles(self) -> None:
        assert is_valid(validate(parse_alert(surrey_tornado()), profile="cap-cp"))
        assert is_valid(validate(parse_alert(whatcom_hazmat()), profile="ipaws"))
        assert is_valid(validate(parse_alert(whatcom_hazmat(polygon=False)), profile="ipaws"))


class TestNearBorderConfig:
    """``near_border_km`` is a number of km, 0 to 2000; anything else names the route."""

    @pytest.mark.parametrize(
        ("value", "message"),
        [("-1", "at least 0"), ('"50"', "must be a number"), ("5000", "at most 2000")],
    )
    def test_bad_values_refused(self, tmp_path: Path, value: str, message: str) -> None:
        path = daemon_toml(
            tmp_path,
            "mqtt://127.0.0.1:1",
            routes=f'[[route]]\nname = "x"\nsinks = ["out-cap"]\nmatch.near_border_km = {value}\n',
        )
        with pytest.raises(ConfigError, match=message) as raised:
            load(path)
        assert "route" in str(raised.value)
        assert "near_border_km" in str(raised.value)

    def test_value_read(self, tmp_path: Path) -> None:
        path = daemon_toml(
            tmp_path,
            "mqtt://127.0.0.1:1",
            routes='[[route]]\nname = "x"\nsinks = ["out-cap"]\nmatch.near_border_km = 50\n',
        )
        assert load(path).routes[0].match.near_border_km == 50.0
        default = load(daemon_toml(tmp_path, "mqtt://127.0.0.1:1"))
        assert default.routes[0].match.near_border_km is None


class TestNearBorderThroughTheDaemon:
    """A route with ``near_border_km = 50`` takes what lies within 50 km of the border."""

    async def test_polygon_circle_and_mapped_area(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        routes = (
            '[[route]]\nname = "border"\nsinks = ["out-cap"]\n'
            "[route.match]\nnear_border_km = 50\n\n"
            '[[route]]\nname = "all"\nsinks = ["out-json"]\n'
        )
        config = load(daemon_toml(tmp_path, mosquitto.url, routes=routes))
        none = ()
        near = cap(polygon=NEAR_20_KM, geocodes=none)
        far = cap(polygon=FAR_200_KM, geocodes=none)
        # A circle 60 km from the border with a 15 km radius reaches within 45 km of it;
        # the same centre with 5 km stays 55 km away.
        circle_in = cap(circle="48.45,-118.15 15", geocodes=none)
        circle_out = cap(circle="48.45,-118.15 5", geocodes=none)
        # No shape: the county named is measured (Whatcom touches the border, Yakima lies
        # some 150 km south of it).
        county_in = cap(geocodes=(("SAME", "053073"),))
        county_out = cap(geocodes=(("SAME", "053077"),))
        crossing = [near, circle_in, county_in]
        staying = [far, circle_out, county_out]
        everything = [*staying, *crossing]
        async with (
            subscriber(mosquitto, ["out/#"]) as out,
            running_daemon(config),
        ):
            await publish_all(mosquitto, everything)
            # Every alert was admitted and planned (the JSON route takes all of them).
            await out.wait_for(lambda: len(out.keys("out/json/")) == len(everything))
            await out.wait_for(lambda: len(out.keys("out/cap/")) == len(crossing))
        assert set(out.keys("out/cap/")) == {CapFactory.key_of(a) for a in crossing}


class TestDemoRoutesCoverTheWholeBorder:
    """The demo configuration's cross-border routes, run by the daemon: a Surrey tornado
    reaches the US IPAWS topic, a Whatcom County hazmat the Canadian CAP-CP topic."""

    async def test_surrey_and_whatcom_cross(self, mosquitto: Broker, tmp_path: Path) -> None:
        sinks, routes = _demo_cross_border()
        base = tomllib.loads(daemon_toml(tmp_path, mosquitto.url).read_text(encoding="utf-8"))
        base["sink"] = sinks
        base["route"] = routes
        base["mqtt"]["validation"] = "reject"
        config = parse_config(base, path=tmp_path / "borderlink.toml")
        tornado = surrey_tornado()
        hazmat = whatcom_hazmat()
        hazmat_mapped = whatcom_hazmat(polygon=False)
        async with (
            subscriber(mosquitto, ["borderlink/us/#", "borderlink/ca/#"]) as out,
            running_daemon(config),
        ):
            await publish_all(mosquitto, [tornado, hazmat, hazmat_mapped])
            await out.wait_for(
                lambda: (
                    len(out.on("borderlink/us/ipaws/")) == 1
                    and len(out.on("borderlink/ca/cap-cp/")) == 2
                ),
                within=30,
            )
        (us,) = out.on("borderlink/us/ipaws/")
        ipaws = parse_alert(us.payload)
        assert is_valid(validate(ipaws, profile="ipaws"))
        assert str(parse_alert(tornado).key) in {str(k) for k in ipaws.references}
        # Greater Vancouver faces Whatcom County: the crosswalk adds its SAME code.
        assert "053073" in ipaws.infos[0].areas[0].geocode_values("SAME")
        for message in out.on("borderlink/ca/cap-cp/"):
            capcp = parse_alert(message.payload)
            assert capcp.infos[-1].language == "fr-CA"
            sgc = capcp.infos[0].areas[0].geocode_values(CAPCP_LOCATION)
            assert {"5915", "5909"} <= set(sgc)  # Greater Vancouver, Fraser Valley
