"""The map's data: alerts in force as GeoJSON from a real ledger, and the shipped boundaries."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.demo.codec import bundled_templates, render
from cap_schemas.model import Area, ValuePair
from cap_schemas.parse import parse_alert
from gateway.console.mapdata import alert_features, boundaries, geo_file, geocodes
from gateway.console.views import ParsedCache
from gateway.storage.sqlite import SqliteLedger
from tests.daemon.conftest import CapFactory
from tests.ledger.conftest import T0, FakeClock, Planner, clock, ledger, open_ledger

__all__ = ["clock", "ledger", "open_ledger"]  # fixtures of the ledger suite, used here

cap = CapFactory(sender="map@borderlink.invalid")
WINDSOR = "42.0,-83.0 43.0,-83.0 43.0,-81.0 42.0,-81.0 42.0,-83.0"
CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"


def _features(led: SqliteLedger, clock: FakeClock, *raws: bytes) -> list[dict[str, Any]]:
    for raw in raws:
        led.admit(parse_alert(raw), source="http", received_at=T0, plan=Planner(sinks=("feed",)))
    collection = alert_features(led, clock.now(), ParsedCache())
    assert collection["type"] == "FeatureCollection"
    features: list[dict[str, Any]] = collection["features"]
    return features


def _codes(*pairs: tuple[str, str]) -> dict[str, tuple[str, ...]]:
    found = geocodes([Area("here", geocodes=tuple(ValuePair(n, v) for n, v in pairs))])
    return {
        "fips": found.counties,
        "states": found.states,
        "divisions": found.divisions,
        "provinces": found.provinces,
    }


def _bbox(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    points: list[list[float]] = []
    stack: list[Any] = [geometry["coordinates"]]
    while stack:
        item = stack.pop()
        if item and isinstance(item[0], float | int):
            points.append(item)
        else:
            stack.extend(item)
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return min(lons), min(lats), max(lons), max(lats)


class TestShapes:
    """CAP writes latitude first; GeoJSON longitude first. Circles keep their radius."""

    def test_a_polygon_is_lon_lat(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        (feature,) = _features(
            ledger, clock, cap(severity="Severe", headline="Essex", polygon=WINDSOR, sent=T0)
        )
        assert feature["geometry"]["type"] == "Polygon"
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == [-83.0, 42.0]
        assert ring[2] == [-81.0, 43.0]
        assert ring[0] == ring[-1]
        properties = feature["properties"]
        assert properties["shape"] == "polygon"
        assert properties["severity"] == "Severe"
        assert properties["headline"] == "Essex"
        assert properties["href"].startswith("/alerts/map@borderlink.invalid,")
        assert "fips" not in properties  # a shape says where: its geocodes are not looked up

    def test_a_circle_is_a_point_with_its_radius_in_metres(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        (feature,) = _features(ledger, clock, cap(circle="45.5,-73.6 40", sent=T0))
        assert feature["geometry"] == {"type": "Point", "coordinates": [-73.6, 45.5]}
        assert feature["properties"]["shape"] == "circle"
        assert feature["properties"]["radius_m"] == 40_000.0

    def test_a_bilingual_alert_draws_its_polygon_once(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        template = next(t for t in bundled_templates() if t.name == "01-ca-tornado-warning")
        raw = render(
            template,
            now=datetime.now(UTC),
            serial=uuid.uuid4().hex[:8],
            lifetime=timedelta(hours=1),
            earlier={},
        )
        alert = parse_alert(raw)
        assert len(alert.infos) == 2
        ledger.admit(alert, source="naad", received_at=clock.now(), plan=Planner(sinks=("f",)))
        features = alert_features(ledger, clock.now(), ParsedCache())["features"]
        assert [f["properties"]["shape"] for f in features] == ["polygon"]
        assert features[0]["geometry"]["coordinates"][0][0] == [-83.15, 42.05]

    def test_most_severe_first(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        features = _features(
            ledger,
            clock,
            cap(severity="Minor", polygon=WINDSOR, sent=T0),
            cap(severity="Extreme", circle="45.5,-73.6 10", sent=T0),
        )
        assert [f["properties"]["severity"] for f in features] == ["Extreme", "Minor"]


class TestNamedAreas:
    """An alert without shapes is drawn by the places its geocodes name."""

    def test_a_same_only_alert_carries_its_county(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        (feature,) = _features(
            ledger, clock, cap(headline="Wayne", geocodes=(("SAME", "026163"),), sent=T0)
        )
        assert feature["geometry"] is None
        properties = feature["properties"]
        assert properties["shape"] == "area"
        assert properties["same"] == ["026163"]
        assert properties["fips"] == ["26163"]
        assert properties["states"] == properties["divisions"] == properties["provinces"] == []

    def test_codes_come_to_boundary_keys(self) -> None:
        assert _codes(("SAME", "026000"), ("FIPS6", "039095")) == {
            "fips": ("39095",),  # Lucas County OH
            "states": ("26",),  # all of Michigan
            "divisions": (),
            "provinces": (),
        }
        # NWS: a county UGC is the state's FIPS and the county's; a forecast zone has no shape.
        assert _codes(("UGC", "MIC163"), ("UGC", "MIZ076"))["fips"] == ("26163",)

    def test_a_capcp_code_is_its_census_division(self) -> None:
        # A census subdivision (Windsor, 3537039) is drawn as its division (Essex, 3537);
        # a division as itself; two codes in one division fill it once.
        assert _codes(
            (CAPCP_LOCATION, "3537039"), (CAPCP_LOCATION, "3537"), (CAPCP_LOCATION, "5915022")
        ) == {"fips": (), "states": (), "divisions": ("3537", "5915"), "provinces": ()}

    def test_an_unknown_division_falls_back_to_its_province(self) -> None:
        # 3599 is no census division (a code from after the boundary file, or a typo): the
        # province is the best the map can do; a bare province code is the province.
        assert _codes((CAPCP_LOCATION, "3599001"), (CAPCP_LOCATION, "59")) == {
            "fips": (),
            "states": (),
            "divisions": (),
            "provinces": ("35", "59"),
        }
        mixed = _codes((CAPCP_LOCATION, "3537039"), (CAPCP_LOCATION, "3599"))
        assert mixed["divisions"] == ("3537",)
        assert mixed["provinces"] == ("35",)

    def test_a_capcp_only_alert_carries_its_division(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        (feature,) = _features(ledger, clock, cap(geocodes=((CAPCP_LOCATION, "3537039"),), sent=T0))
        assert feature["geometry"] is None
        assert feature["properties"]["sgc"] == ["3537039"]
        assert feature["properties"]["divisions"] == ["3537"]
        assert feature["properties"]["provinces"] == []

    def test_nothing_known_is_left_off_the_map(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        assert _features(ledger, clock, cap(geocodes=(("SAME", "nonsense"),), sent=T0)) == []


class TestBoundaries:
    """The shipped files: what they key, and that they stay light."""

    def test_base_has_both_countries_the_border_and_every_province(self) -> None:
        base = json.loads(geo_file("base.geojson").raw)
        kinds = [f["properties"]["kind"] for f in base["features"]]
        assert kinds.count("border") == 1
        countries = {
            f["properties"]["country"]
            for f in base["features"]
            if f["properties"]["kind"] == "country"
        }
        assert countries == {"ca", "us"}
        regions = [f["properties"] for f in base["features"] if f["properties"]["kind"] == "region"]
        provinces = {r["sgc"]: r["code"] for r in regions if r["country"] == "ca"}
        assert len(provinces) == 13
        assert provinces["35"] == "ON"
        states = {r["fips"]: r["name"] for r in regions if r["country"] == "us"}
        assert states["26"] == "Michigan"
        assert len(geo_file("base.geojson").gzipped) <= 300 * 1024

    def test_counties_by_fips(self) -> None:
        counties = json.loads(geo_file("us-counties.geojson").raw)["features"]
        by_fips = {f["properties"]["fips"]: f for f in counties}
        assert len(by_fips) > 3100
        assert by_fips["26163"]["properties"]["name"] == "Wayne, Michigan"
        assert by_fips["51610"]["geometry"]["type"] == "Polygon"  # a line in the source
        assert all(len(fips) == 5 and fips.isdigit() for fips in by_fips)
        assert len(geo_file("us-counties.geojson").gzipped) <= 1024 * 1024

    def test_census_divisions_by_sgc(self) -> None:
        divisions = json.loads(geo_file("ca-divisions.geojson").raw)["features"]
        by_id = {f["id"]: f for f in divisions}
        assert 280 <= len(by_id) <= 300  # 293 in the 2021 Census
        assert all(
            f["id"] == f"sgc-{f['properties']['sgc']}" and len(f["properties"]["sgc"]) == 4
            for f in divisions
        )
        assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in divisions)
        essex = by_id["sgc-3537"]
        assert essex["properties"]["name"] == "Essex"
        west, south, east, north = _bbox(essex["geometry"])
        assert -83.3 < west < east < -82.3  # Windsor to Leamington
        assert 41.6 < south < north < 42.5  # Pelee Island to the Detroit River
        vancouver = by_id["sgc-5915"]
        assert vancouver["properties"]["name"] == "Greater Vancouver"
        west, south, east, north = _bbox(vancouver["geometry"])
        assert -123.6 < west < east < -122.2
        assert 48.9 < south < north < 49.8
        assert len(geo_file("ca-divisions.geojson").gzipped) <= 400 * 1024

    async def test_served_gzip_and_cached_by_digest(self) -> None:
        app = web.Application()
        app.router.add_get("/map/geo/{name}", boundaries)
        async with TestClient(TestServer(app)) as client:
            answer = await client.get(
                "/map/geo/base.geojson", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
            )
            assert answer.status == 200
            assert answer.headers["Content-Encoding"] == "gzip"
            assert "immutable" in answer.headers["Cache-Control"]
            body = await answer.read()
            assert gzip.decompress(body) == geo_file("base.geojson").raw
            etag = answer.headers["ETag"]
            again = await client.get("/map/geo/base.geojson", headers={"If-None-Match": etag})
            assert again.status == 304
            missing = await client.get("/map/geo/secrets.txt")
            assert missing.status == 404
