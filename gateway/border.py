"""The Canada-US border as lines, and how far a place or a CAP area lies from it.

The line is the land and lake boundary of the console's base map (``base.geojson``, the
arcs both countries' outlines share in Natural Earth 1:50m: the 141st meridian, the Alaska
panhandle, the 49th parallel, Lake of the Woods, the Great Lakes and their rivers, the St.
Lawrence, the Quebec and New Brunswick land line, the St. Croix) and, at sea, :data:`SEA`:

* Passamaquoddy Bay, Grand Manan Channel and the Gulf of Maine, the Strait of Juan de Fuca's
  mouth and Dixon Entrance: Natural Earth 1:50m ``admin_0_boundary_lines_maritime_indicator``
  (public domain; coordinates rounded to 0.001 degree);
* the Salish Sea (the 49th parallel across Boundary Bay and the Strait of Georgia, Boundary
  Pass, Haro Strait and the Strait of Juan de Fuca), which no shipped file carries: written
  here along "the middle of the channel which separates the continent from Vancouver's
  Island, and thence southerly through the middle of the said channel, and of Fuca's
  Straits, to the Pacific Ocean" (Treaty of Washington, 1846, art. I; the Haro Strait
  channel by the 1872 arbitration) through the channels' middles between the shipped county
  and division shorelines -- good to about 5 km, the base map's own precision (3 km).

Distances are planar on a local equirectangular projection (the latitude of the measured
shape), good to a fraction of a percent at the tens to hundreds of kilometres that matter
here. The line is cut into runs of a few segments, each with its box; a measure visits the
runs nearest first and stops at the first run whose box is farther than what it found (or
than the distance asked about): an alert polygon is judged in tens of microseconds near the
border and under a millisecond far from it, a county measured in a few milliseconds, once.

A CAP area is measured by its polygons and circles; an area with neither by the places its
geocodes name (:func:`gateway.places.geocodes`), each measured once and remembered.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cap_schemas.model import Area
from gateway.places import Ring, Shape, geo_features, geocodes, shapes

__all__ = [
    "SEA",
    "area_border_km",
    "border_lines",
    "near_border",
    "place_border_km",
    "point_border_km",
    "point_shape_km",
    "preload",
    "shape_border_km",
]

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = math.radians(1) * EARTH_RADIUS_KM
RUN = 8  # segments per run

Point = tuple[float, float]  # (lon, lat)

#: The boundary at sea, (lon, lat) lines; see the module docstring for the sources.
SEA: tuple[tuple[Point, ...], ...] = (
    # Salish Sea: written from the 1846 treaty's words (see above), west to the mouth of the
    # Strait of Juan de Fuca where Natural Earth's line begins.
    (
        (-122.79, 48.99),
        (-123.32, 49.0),
        (-123.02, 48.83),
        (-123.27, 48.70),
        (-123.22, 48.47),
        (-123.25, 48.30),
        (-123.70, 48.25),
        (-124.05, 48.30),
        (-124.40, 48.40),
        (-124.760, 48.495),
    ),
    # Natural Earth: the Strait of Juan de Fuca's mouth, westward.
    (
        (-124.760, 48.495),
        (-124.988, 48.500),
        (-125.097, 48.469),
        (-125.381, 48.338),
        (-125.897, 48.184),
        (-126.088, 48.096),
    ),
    # Natural Earth: Dixon Entrance, from the Portland Canal's mouth westward.
    (
        (-130.57, 54.77),
        (-130.622, 54.709),
        (-130.656, 54.654),
        (-130.895, 54.690),
        (-131.079, 54.771),
        (-131.217, 54.703),
        (-131.323, 54.616),
        (-131.533, 54.517),
        (-131.634, 54.508),
        (-132.049, 54.364),
        (-132.395, 54.414),
        (-132.638, 54.409),
        (-133.234, 54.517),
        (-133.824, 54.343),
        (-134.181, 54.261),
    ),
    # Natural Earth: the St. Croix's mouth, Passamaquoddy Bay, the Grand Manan Channel and
    # the Gulf of Maine.
    (
        (-67.13, 45.17),
        (-67.083, 45.119),
        (-66.926, 45.060),
        (-66.824, 44.985),
        (-66.811, 44.916),
        (-66.904, 44.776),
        (-66.933, 44.738),
        (-66.963, 44.660),
        (-67.011, 44.616),
        (-67.038, 44.561),
        (-67.045, 44.510),
        (-67.052, 44.478),
        (-67.039, 44.424),
        (-67.043, 44.362),
        (-67.145, 44.236),
        (-67.280, 44.187),
        (-67.353, 43.983),
        (-67.491, 43.595),
        (-67.548, 43.436),
        (-67.638, 43.184),
        (-67.744, 42.887),
        (-67.649, 42.760),
        (-67.469, 42.519),
    ),
)


@functools.cache
def border_lines() -> tuple[tuple[Point, ...], ...]:
    """The whole border: the base map's land and lake lines, then :data:`SEA`."""
    land = next(
        f["geometry"]["coordinates"]
        for f in geo_features("base.geojson")
        if f["properties"].get("kind") == "border"
    )
    lines = [tuple((float(x), float(y)) for x, y in line) for line in land]
    return (*lines, *SEA)


@dataclass(frozen=True, slots=True)
class _Run:
    """A few consecutive segments of the border and their box."""

    points: tuple[Point, ...]
    west: float
    south: float
    east: float
    north: float


@functools.cache
def _runs() -> tuple[_Run, ...]:
    runs = []
    for line in border_lines():
        for start in range(0, max(1, len(line) - 1), RUN):
            points = line[start : start + RUN + 1]
            lons = [p[0] for p in points]
            lats = [p[1] for p in points]
            runs.append(_Run(points, min(lons), min(lats), max(lons), max(lats)))
    return tuple(runs)


def _box(rings: Iterable[Sequence[Point]]) -> tuple[float, float, float, float]:
    lons = [p[0] for ring in rings for p in ring]
    lats = [p[1] for ring in rings for p in ring]
    return min(lons), min(lats), max(lons), max(lats)


def _gap_km(box: tuple[float, float, float, float], run: _Run, k: float) -> float:
    """The least distance between a box and a run's box, in the projection's metric."""
    west, south, east, north = box
    dx = max(0.0, run.west - east, west - run.east)
    dy = max(0.0, run.south - north, south - run.north)
    return math.hypot(dx * k, dy) * KM_PER_DEGREE


def _inside(p: Point, ring: Sequence[Point]) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        (xi, yi), (xj, yj) = ring[i], ring[j]
        if (yi > p[1]) != (yj > p[1]) and p[0] < (xj - xi) * (p[1] - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _point_segment(p: Point, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = dx * dx + dy * dy
    t = (
        0.0
        if length == 0
        else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length))
    )
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def _cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    def orient(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = orient(c, d, a), orient(c, d, b)
    d3, d4 = orient(a, b, c), orient(a, b, d)
    return (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0)


def _project(points: Sequence[Point], k: float) -> list[Point]:
    return [(x * k, y) for x, y in points]


def _rings_to_run(rings: Sequence[Sequence[Point]], run: _Run, k: float) -> float:
    """Distance in degrees of latitude (projected) between some rings and a run: 0 when
    they cross or the run lies inside a ring."""
    line = _project(run.points, k)
    best = math.inf
    for raw in rings:
        ring = _project(raw, k)
        if len(ring) > 2 and any(_inside(p, ring) for p in line):
            return 0.0
        edges = list(zip(ring, ring[1:] or ring, strict=False))
        for a, b in edges:
            for c, d in itertools.pairwise(line):
                if _cross(a, b, c, d):
                    return 0.0
                best = min(
                    best,
                    _point_segment(a, c, d),
                    _point_segment(b, c, d),
                    _point_segment(c, a, b),
                    _point_segment(d, a, b),
                )
    return best


def shape_border_km(rings: Sequence[Sequence[Point]], limit: float = math.inf) -> float:
    """Distance in km from a shape (rings of (lon, lat); a ring of one point is a point) to
    the border: 0 when the shape crosses the border or holds a piece of it. With a ``limit``
    the distance is exact up to it; beyond it, some value above it (the search stops)."""
    rings = [r for r in rings if r]
    if not rings:
        return math.inf
    box = _box(rings)
    k = math.cos(math.radians((box[1] + box[3]) / 2))
    best = math.inf
    for gap, run in sorted(((_gap_km(box, run, k), run) for run in _runs()), key=_first):
        if gap >= best or gap > limit:
            break
        best = min(best, _rings_to_run(rings, run, k) * KM_PER_DEGREE)
        if best == 0:
            break
    return best


def _first(pair: tuple[float, _Run]) -> float:
    return pair[0]


def point_shape_km(point: Point, rings: Sequence[Sequence[Point]]) -> float:
    """Distance in km from a point (lon, lat) to a shape: 0 inside one of its rings."""
    k = math.cos(math.radians(point[1]))
    (p,) = _project([point], k)
    best = math.inf
    for raw in rings:
        ring = _project(raw, k)
        if len(ring) > 2 and _inside(p, ring):
            return 0.0
        for a, b in zip(ring, ring[1:] or ring, strict=False):
            best = min(best, _point_segment(p, a, b))
    return best * KM_PER_DEGREE


def point_border_km(lat: float, lon: float, limit: float = math.inf) -> float:
    """Distance in km from a point to the border (exact up to ``limit``)."""
    return shape_border_km([((lon, lat),)], limit)


@functools.cache
def place_border_km(kind: str, key: str) -> float | None:
    """Distance in km from a shipped place (``county`` FIPS, ``division`` SGC, ``state``
    FIPS, ``province`` SGC) to the border, measured once; None for a place not shipped."""
    shape: Shape | None = shapes(kind).get(key)
    return None if shape is None else shape_border_km(shape)


def area_border_km(area: Area, limit: float = math.inf) -> float | None:
    """Distance in km from a CAP area to the border: its polygons and circles (a circle's
    edge), or, for an area with neither, the places its geocodes name. None when the area
    says nothing that can be placed. Exact up to ``limit``, above it beyond."""
    rings: list[Ring] = [tuple((p.lon, p.lat) for p in poly.points) for poly in area.polygons]
    found = [shape_border_km(rings, limit)] if rings else []
    found += [
        max(0.0, point_border_km(c.center.lat, c.center.lon, limit + c.radius_km) - c.radius_km)
        for c in area.circles
    ]
    if not found:
        codes = geocodes([area])
        keyed = (
            [("county", c) for c in codes.counties]
            + [("state", s) for s in codes.states]
            + [("division", d) for d in codes.divisions]
            + [("province", p) for p in codes.provinces]
        )
        found = [d for kind, key in keyed if (d := place_border_km(kind, key)) is not None]
    return min(found) if found else None


def near_border(area: Area, km: float) -> bool:
    """Whether a CAP area lies within ``km`` of the border (an area that cannot be placed
    does not)."""
    distance = area_border_km(area, km)
    return distance is not None and distance <= km


def preload() -> None:
    """Read the border and the boundary files now (a route that measures distance to the
    border calls this when the configuration is loaded, not on the first alert)."""
    _runs()
    for kind in ("county", "division", "state", "province"):
        shapes(kind)
