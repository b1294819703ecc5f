"""Places an alert names, and their shapes from the shipped boundary files.

A CAP area without a polygon or a circle still names places by geocode: US counties by
SAME or FIPS6 code (``PSSCCC`` is county ``SSCCC``, ``SS000`` the whole state) or by NWS
county UGC (``MIC163`` is ``26163``), Canadian places by SGC code
(``profile:CAP-CP:Location:0.3``): a census division by its first four digits (``3537039`` is
in ``3537``, Essex), or, when the shipped file does not know the division (a bare 2-digit code
or a division made after 2021), the province by its first two.

The shapes come from ``gateway/console/geo/`` (sources and licences in ``SOURCES.md`` there):
``us-counties.geojson`` (Census Bureau), ``ca-divisions.geojson`` (Statistics Canada) and the
states and provinces of ``base.geojson`` (Natural Earth). Each file is read once, when first
needed. The console's map draws the same places (:mod:`gateway.console.mapdata`); the
routes measure them (:mod:`gateway.border`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cap_schemas.model import Area
from cap_schemas.tables import state_names
from gateway.translate.common import CAPCP_LOCATION

__all__ = [
    "Codes",
    "Ring",
    "Shape",
    "census_divisions",
    "geo_features",
    "geocodes",
    "shapes",
    "state_fips",
]

#: A closed ring of (longitude, latitude), as GeoJSON orders them.
Ring = tuple[tuple[float, float], ...]
#: The outer rings of a place (its holes are not kept: a place is measured as filled).
Shape = tuple[Ring, ...]


@dataclass(frozen=True, slots=True)
class Codes:
    """The places an alert without shapes names, as the boundary files key them."""

    same: tuple[str, ...] = ()
    ugc: tuple[str, ...] = ()
    sgc: tuple[str, ...] = ()
    counties: tuple[str, ...] = ()  # 5-digit FIPS
    states: tuple[str, ...] = ()  # 2-digit FIPS: a SAME code for a whole state
    divisions: tuple[str, ...] = ()  # 4-digit SGC: a census division
    provinces: tuple[str, ...] = ()  # 2-digit SGC: a code whose census division is unknown

    @property
    def mappable(self) -> bool:
        return bool(self.counties or self.states or self.divisions or self.provinces)


@functools.cache
def geo_features(name: str) -> tuple[dict[str, Any], ...]:
    """The features of a shipped boundary file (``base.geojson``, ``us-counties.geojson``,
    ``ca-divisions.geojson``), parsed once."""
    raw = resources.files("gateway.console.geo").joinpath(name).read_bytes()
    return tuple(json.loads(raw)["features"])


@functools.cache
def state_fips() -> dict[str, str]:
    """Postal abbreviation -> state FIPS (the Census Bureau's, through ``addfips``), for NWS
    UGC codes (``MIC163``) and the state boundaries."""
    text = resources.files("addfips").joinpath("data/states.csv").read_text(encoding="utf-8")
    rows = [line.split(",") for line in text.splitlines()[1:] if line.strip()]
    return {postal: fips for _name, postal, fips in rows}


@functools.cache
def census_divisions() -> frozenset[str]:
    """The 4-digit SGC codes of the census divisions the shipped file knows."""
    return frozenset(f["properties"]["sgc"] for f in geo_features("ca-divisions.geojson"))


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def geocodes(areas: Iterable[Area]) -> Codes:
    """The geocodes of some areas, and the boundary keys they come to."""
    areas = list(areas)
    same = _unique(v for a in areas for name in ("SAME", "FIPS6") for v in a.geocode_values(name))
    same = tuple(v for v in same if len(v) == 6 and v.isdigit())
    ugc = _unique(v.strip().upper() for a in areas for v in a.geocode_values("UGC"))
    sgc = _unique(v.strip() for a in areas for v in a.geocode_values(CAPCP_LOCATION))
    sgc = tuple(v for v in sgc if v.isdigit() and len(v) >= 2)
    counties = [v[1:] for v in same if not v.endswith("000")]
    states = [v[1:3] for v in same if v.endswith("000") and v[1:3] in state_names()]
    for code in ugc:  # SSCNNN: state, C for county (Z, a forecast zone, has no boundary here)
        fips = state_fips().get(code[:2])
        if len(code) == 6 and code[2] == "C" and code[3:].isdigit() and fips:
            counties.append(fips + code[3:])
    # SGC: PPDD (census division) or PPDDSSS (subdivision); the province when the division
    # is not one the shipped file knows (a bare PP, or a division made after the file).
    divisions = [v[:4] for v in sgc if v[:4] in census_divisions()]
    provinces = [v[:2] for v in sgc if v[:4] not in census_divisions() and v[:2] != "00"]
    return Codes(
        same=same,
        ugc=ugc,
        sgc=sgc,
        counties=_unique(counties),
        states=_unique(states),
        divisions=_unique(divisions),
        provinces=_unique(provinces),
    )


def _outer_rings(geometry: dict[str, Any]) -> Shape:
    polygons = (
        [geometry["coordinates"]]
        if geometry["type"] == "Polygon"
        else list(geometry["coordinates"])
    )
    return tuple(tuple((float(x), float(y)) for x, y in polygon[0]) for polygon in polygons)


@functools.cache
def shapes(kind: str) -> dict[str, Shape]:
    """Every place of one kind by its key: ``county`` (5-digit FIPS), ``division`` (4-digit
    SGC), ``state`` (2-digit FIPS) or ``province`` (2-digit SGC)."""
    if kind == "county":
        return {
            f["properties"]["fips"]: _outer_rings(f["geometry"])
            for f in geo_features("us-counties.geojson")
        }
    if kind == "division":
        return {
            f["properties"]["sgc"]: _outer_rings(f["geometry"])
            for f in geo_features("ca-divisions.geojson")
        }
    key = {"state": "fips", "province": "sgc"}[kind]
    return {
        f["properties"][key]: _outer_rings(f["geometry"])
        for f in geo_features("base.geojson")
        if f["properties"].get("kind") == "region" and key in f["properties"]
    }
