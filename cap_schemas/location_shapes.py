"""Which Environment Canada CLC zones an alert's polygon or circle reaches.

Environment Canada publishes its CLC zones as polygons (the ``land_CLCBaseZone`` layer of
the MSC Geography Package); those polygons are not shipped here (``data/SOURCES.md`` says
why). What is shipped are Environment Canada's *reference points*: one per CLC base zone
(``clc_zones.csv``) and one per census subdivision (``sgc_points.csv``). A shape reaches a
zone, by the one rule of :func:`shape_zones`, when it contains

* the zone's own reference point, or
* the reference point of a census subdivision that ``sgc_clc.csv`` maps to that zone, below
  province level (a subdivision the table maps only to a whole province adds nothing).

A zone the shape only grazes, between reference points, is not reached: the rule never adds
a zone on a guess, and a shape that contains no reference point gives no zone at all. It
never gives a province-wide code, nor the table's placeholder zones outside Canada
(``000001`` Saint Pierre and Miquelon, ``000002``, ``000003``).

Geometry is plain: a polygon is a ring of (lat, lon) points with straight edges in degrees
(even-odd rule; a point on an edge counts as inside); a circle is every point within its
radius along the Earth's surface (a sphere of radius 6371.0088 km).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from cap_schemas.model import Area, Circle, Point, Polygon
from cap_schemas.tables import _data, sgc_entries

__all__ = [
    "EARTH_RADIUS_KM",
    "PROVINCES",
    "ShapeZone",
    "Zone",
    "clc_zones",
    "distance_km",
    "in_circle",
    "in_polygon",
    "sgc_points",
    "shape_zones",
]

EARTH_RADIUS_KM = 6371.0088
_WIDE_SCALES = ("N", "PT", "WB")
# Statistics Canada province and territory codes (an SGC code's first two digits). The zone
# table also holds placeholder zones for Saint Pierre and Miquelon, Minnesota and Washington,
# which are not Canadian SAME codes.
PROVINCES = {
    "10": "NL",
    "11": "PE",
    "12": "NS",
    "13": "NB",
    "24": "QC",
    "35": "ON",
    "46": "MB",
    "47": "SK",
    "48": "AB",
    "59": "BC",
    "60": "YT",
    "61": "NT",
    "62": "NU",
}
_PROVINCES = frozenset(PROVINCES.values())


@dataclass(frozen=True, slots=True)
class Zone:
    """One CLC base zone of ``clc_zones.csv``."""

    clc: str
    province: str
    point: Point
    area_km2: float
    name: str
    nom: str


@dataclass(frozen=True, slots=True)
class ShapeZone:
    """A zone a shape reaches, and the first reference point that showed it (``via``: the
    zone's own point, or an SGC code)."""

    clc: str
    via: str  # "zone" or the 7-digit SGC code
    point: Point


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlat, dlon = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dlat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _on_edge(point: Point, a: Point, b: Point) -> bool:
    cross = (b.lon - a.lon) * (point.lat - a.lat) - (b.lat - a.lat) * (point.lon - a.lon)
    if abs(cross) > 1e-12:
        return False
    return min(a.lon, b.lon) <= point.lon <= max(a.lon, b.lon) and min(
        a.lat, b.lat
    ) <= point.lat <= max(a.lat, b.lat)


def in_polygon(point: Point, polygon: Polygon) -> bool:
    """Whether ``point`` lies inside ``polygon`` or on its boundary (even-odd rule)."""
    ring = polygon.points
    inside = False
    for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
        if _on_edge(point, a, b):
            return True
        if (a.lat > point.lat) != (b.lat > point.lat):
            crossing = a.lon + (point.lat - a.lat) * (b.lon - a.lon) / (b.lat - a.lat)
            if point.lon < crossing:
                inside = not inside
    return inside


def in_circle(point: Point, circle: Circle) -> bool:
    """Whether ``point`` lies within the circle (on it counts)."""
    centre = circle.center
    return distance_km(point.lat, point.lon, centre.lat, centre.lon) <= circle.radius_km


@dataclass(frozen=True, slots=True)
class _Box:
    south: float
    west: float
    north: float
    east: float

    def holds(self, point: Point) -> bool:
        return self.south <= point.lat <= self.north and self.west <= point.lon <= self.east


def _polygon_box(polygon: Polygon) -> _Box:
    lats = [p.lat for p in polygon.points]
    lons = [p.lon for p in polygon.points]
    return _Box(min(lats), min(lons), max(lats), max(lons))


def _circle_box(circle: Circle) -> _Box:
    c = circle.center
    dlat = math.degrees(circle.radius_km / EARTH_RADIUS_KM)
    cos = math.cos(math.radians(c.lat))
    dlon = 180.0 if cos < 1e-6 else min(180.0, dlat / cos)
    return _Box(c.lat - dlat, c.lon - dlon, c.lat + dlat, c.lon + dlon)


def _contains(area: Area, point: Point, boxes: list[_Box]) -> bool:
    if not any(box.holds(point) for box in boxes):
        return False
    return any(in_polygon(point, p) for p in area.polygons) or any(
        in_circle(point, c) for c in area.circles
    )


@functools.cache
def clc_zones() -> Mapping[str, Zone]:
    """Every CLC base zone of ``clc_zones.csv``, by code."""
    columns = ("clc", "province", "lat", "lon", "area_km2", "name", "nom")
    return {
        row["clc"]: Zone(
            row["clc"],
            row["province"],
            Point(float(row["lat"]), float(row["lon"])),
            float(row["area_km2"]),
            row["name"],
            row["nom"],
        )
        for row in _data("clc_zones.csv", columns)
    }


@functools.cache
def sgc_points() -> Mapping[str, Point]:
    """Environment Canada's reference point of each census subdivision (``sgc_points.csv``)."""
    return {
        row["sgc"]: Point(float(row["lat"]), float(row["lon"]))
        for row in _data("sgc_points.csv", ("sgc", "lat", "lon"))
    }


@functools.cache
def _point_zones() -> tuple[tuple[str, Point, tuple[str, ...]], ...]:
    """Every reference point with the zones it stands for: (via, point, CLC codes)."""
    entries = sgc_entries()
    wide = frozenset(c for e in entries.values() if e.scale in _WIDE_SCALES for c in e.clcs)
    out: list[tuple[str, Point, tuple[str, ...]]] = [
        ("zone", z.point, (z.clc,)) for z in clc_zones().values() if z.province in _PROVINCES
    ]
    for sgc, point in sgc_points().items():
        entry = entries.get(sgc)
        codes = tuple(c for c in entry.clcs if c not in wide) if entry is not None else ()
        if codes:
            out.append((sgc, point, codes))
    return tuple(out)


def shape_zones(area: Area) -> tuple[ShapeZone, ...]:
    """The CLC zones the area's polygons and circles reach (the rule of the module
    docstring), in the order their reference points are met, without repeats."""
    boxes = [_polygon_box(p) for p in area.polygons] + [_circle_box(c) for c in area.circles]
    if not boxes:
        return ()
    found: dict[str, ShapeZone] = {}
    for via, point, codes in _point_zones():
        if _contains(area, point, boxes):
            for code in codes:
                found.setdefault(code, ShapeZone(code, via, point))
    return tuple(found.values())
