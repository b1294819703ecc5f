"""Make ``clc_zones.csv`` and ``sgc_points.csv`` from Environment Canada's attribute tables,
and measure how far a point rule agrees with ``sgc_clc.csv``.

Run by hand (the outputs are committed; nothing runs this at run time)::

    python -m cap_schemas.build_clc_zones --zones CLC_Base_Zone.csv --points CAP-CP_Geocodes.csv
    python -m cap_schemas.build_clc_zones --measure   # the figures, from the shipped tables
    python -m cap_schemas.build_clc_zones --alerts ECCC-ALERT.xml ...   # check against alerts

Inputs (see ``cap_schemas/data/SOURCES.md`` for where they come from):

* the attribute table of the ``land_CLCBaseZone`` layer (hybrid depiction) of the MSC
  Geography Package: one row per CLC base zone with ``CLC``, ``NAME``, ``NOM``,
  ``PROVINCE_C``, ``LAT_DD``, ``LON_DD``, ``AREA_KM2``;
* the CAP-CP location list with reference points: one row per census subdivision with
  ``CAPCPGCODE``, ``LAT_DD``, ``LON_DD``, ``PROVINCE_C``.

Outputs keep what the translations need: a zone's code, province, names, reference point
(4 decimals, about 11 m) and area (km², whole); a subdivision's code and reference point.

*Measure* places each subdivision's reference point in the base zone of its province whose
reference point is nearest relative to the zone's size (distance divided by the radius of a
disc of the zone's area) and compares that zone with the codes ``sgc_clc.csv`` gives the
subdivision. Without the zone polygons this is an estimate, which is why it checks the table
and does not replace it.

*Alerts* checks the point rule, ``sgc_clc.csv`` and the polygon step against Environment
Canada's own alerts, whose every area names its CLC zone, the census subdivisions in it, and
the zone's polygon (:func:`check_alerts`).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cap_schemas.errors import CapError
from cap_schemas.location_shapes import PROVINCES, distance_km

CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"
ECCC_CLC = "layer:EC-MSC-SMC:1.0:CLC"

ZONE_COLUMNS = ("clc", "province", "lat", "lon", "area_km2", "name", "nom")
POINT_COLUMNS = ("sgc", "lat", "lon")
ZONES_HEADER = (
    "# Environment Canada CLC base zones (Canadian SAME location codes): code, province, "
    "reference point (WGS 84, 4 decimals), area in km2, English and French names.",
    "# Source: Environment and Climate Change Canada, MSC Geography Package, layer "
    "land_CLCBaseZone (hybrid depiction), attribute table CLC_Base_Zone.csv; "
    "Open Government Licence - Canada. Obtained from the public repository "
    "meowraii/haze-weather-radio, scripts/util/csv_base/CLC_Base_Zone.csv @ ca5a890888 "
    "(blob 257c597908). Made by python -m cap_schemas.build_clc_zones.",
)
POINTS_HEADER = (
    "# CAP-CP locations (Statistics Canada census subdivisions) with Environment Canada's "
    "reference point for each (WGS 84, 4 decimals).",
    "# Source: Environment and Climate Change Canada, CAP-CP location list CAP-CP_Geocodes.csv "
    "(columns NAME, NOM, CAPCPGCODE, LAT_DD, LON_DD, PROVINCE_C); Open Government Licence - "
    "Canada. Obtained from the public repository meowraii/haze-weather-radio, "
    "scripts/util/csv_base/CAP-CP_Geocodes.csv @ ca5a890888 (blob 62d1590b06). "
    "Made by python -m cap_schemas.build_clc_zones.",
)


class BuildError(ValueError):
    """An input table lacks a column or holds a value that is not what it should be."""


def _read(path: Path, needed: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV file (row 2 is the first after the header line)."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in needed if c not in (reader.fieldnames or ())]
        if missing:
            msg = f"{path.name}: missing column(s) {', '.join(missing)}"
            raise BuildError(msg)
        return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]


def _coordinate(value: str, where: str, limit: float) -> str:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not -limit <= number <= limit:
        msg = f"{where}: {value!r} is not a coordinate"
        raise BuildError(msg)
    return f"{number:.4f}"


def zones_table(path: Path) -> str:
    """``clc_zones.csv`` made from the base zone attribute table at ``path``."""
    rows = _read(path, ("CLC", "NAME", "NOM", "PROVINCE_C", "LAT_DD", "LON_DD", "AREA_KM2"))
    out = io.StringIO()
    out.write("\n".join(ZONES_HEADER) + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ZONE_COLUMNS)
    numbered = sorted(enumerate(rows, start=2), key=lambda item: item[1]["CLC"].zfill(6))
    for number, row in numbered:
        code, where = row["CLC"].zfill(6), f"{path.name} row {number}"
        if len(code) != 6 or not code.isdigit():
            msg = f"{where}: CLC {row['CLC']!r} is not six digits"
            raise BuildError(msg)
        writer.writerow(
            [
                code,
                row["PROVINCE_C"],
                _coordinate(row["LAT_DD"], where, 90),
                _coordinate(row["LON_DD"], where, 180),
                str(round(float(row["AREA_KM2"]))),
                row["NAME"],
                row["NOM"],
            ]
        )
    return out.getvalue()


def points_table(path: Path) -> str:
    """``sgc_points.csv`` made from the CAP-CP location list at ``path``."""
    rows = _read(path, ("CAPCPGCODE", "LAT_DD", "LON_DD", "PROVINCE_C"))
    out = io.StringIO()
    out.write("\n".join(POINTS_HEADER) + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(POINT_COLUMNS)
    numbered = sorted(enumerate(rows, start=2), key=lambda item: item[1]["CAPCPGCODE"])
    for number, row in numbered:
        code, where = row["CAPCPGCODE"], f"{path.name} row {number}"
        if len(code) != 7 or not code.isdigit() or PROVINCES.get(code[:2]) != row["PROVINCE_C"]:
            msg = f"{where}: {code!r} is not a census subdivision of {row['PROVINCE_C']!r}"
            raise BuildError(msg)
        lat = _coordinate(row["LAT_DD"], where, 90)
        writer.writerow([code, lat, _coordinate(row["LON_DD"], where, 180)])
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Agreement:
    """How the point rule compares with ``sgc_clc.csv`` over the census subdivisions."""

    points: int  # subdivisions with a reference point
    listed: int  # of those, listed in sgc_clc.csv with codes below province level
    same: int  # the point's zone is one of the listed codes
    within: int  # ... or lies inside one of them (a listed region code that contains it)
    province_only: int  # listed only with whole-province codes (the point would narrow)

    def lines(self) -> list[str]:
        def share(n: int) -> str:
            return f"{n / self.listed:.1%}" if self.listed else "-"

        return [
            f"subdivisions with an ECCC reference point: {self.points}",
            f"of them mapped below province level by sgc_clc.csv: {self.listed}",
            f"point zone is one of the table's codes: {self.same} ({share(self.same)})",
            f"... or inside one of them: {self.within} ({share(self.within)})",
            f"mapped only to whole provinces by the table: {self.province_only}",
        ]


def _contains(region: str, zone: str) -> bool:
    """Whether CLC ``region`` is ``zone`` or a larger region whose code prefixes it
    (``044400`` contains ``044420``)."""
    stem = region.rstrip("0")
    return region == zone or (len(stem) >= 3 and zone.startswith(stem))


def point_zone(lat: float, lon: float, zones: Sequence[tuple[str, float, float, float]]) -> str:
    """The zone whose reference point is nearest to (lat, lon) relative to the zone's size;
    ``zones``: (code, lat, lon, area km²)."""

    def reach(zone: tuple[str, float, float, float]) -> float:
        radius = math.sqrt(max(zone[3], 1.0) / math.pi)
        return distance_km(lat, lon, zone[1], zone[2]) / radius

    return min(zones, key=reach)[0]


def measure(
    zones: Sequence[Mapping[str, str]],
    points: Sequence[Mapping[str, str]],
    table: Mapping[str, tuple[str, ...]],
    wide: frozenset[str],
) -> Agreement:
    """Compare the point rule with ``table`` (SGC -> CLC codes); ``wide``: the
    whole-province codes."""
    by_province: dict[str, list[tuple[str, float, float, float]]] = {}
    for z in zones:
        item = (z["clc"], float(z["lat"]), float(z["lon"]), float(z["area_km2"]))
        by_province.setdefault(z["province"], []).append(item)
    listed = same = within = province_only = 0
    for p in points:
        codes = table.get(p["sgc"], ())
        if not codes:
            continue
        if all(c in wide for c in codes):
            province_only += 1
            continue
        if any(c in wide for c in codes):
            continue
        candidates = by_province.get(PROVINCES.get(p["sgc"][:2], ""), [])
        if not candidates:
            continue
        zone = point_zone(float(p["lat"]), float(p["lon"]), candidates)
        listed += 1
        same += zone in codes
        within += any(_contains(c, zone) for c in codes)
    return Agreement(len(points), listed, same, within, province_only)


def measure_shipped() -> Agreement:
    """:func:`measure` on the tables shipped in ``cap_schemas/data``."""
    from cap_schemas.tables import _data, sgc_entries  # noqa: PLC0415 - tables on demand

    zones = _data("clc_zones.csv", ZONE_COLUMNS)
    points = _data("sgc_points.csv", POINT_COLUMNS)
    entries = sgc_entries()
    table = {sgc: e.source_clcs or e.clcs for sgc, e in entries.items()}
    wide = frozenset(
        c for e in entries.values() if e.scale in ("N", "PT") for c in (e.source_clcs or e.clcs)
    )
    return measure(zones, points, table, wide)


@dataclass(frozen=True, slots=True)
class AlertCheck:
    """Environment Canada's alerts as the referee: each area names its CLC zone with the
    census subdivisions it covers, and draws the zone as a polygon."""

    alerts: int
    pairs: int  # distinct (subdivision, zones) pairs of English areas
    point_agrees: int  # the point rule names one of the area's zones (or a zone inside one)
    table_agrees: int  # sgc_clc.csv (clc) names one of them, a region of one, or one inside
    table_province_only: int  # sgc_clc.csv maps the subdivision only to its province
    areas: int  # distinct areas with a polygon and a CLC code
    shape_finds: int  # the polygon step (codes removed) finds one of them (or one inside)
    shape_exact: int  # ... exactly the area's zones
    shape_others: int  # zones it gives that the area does not name (nor any region of)

    def lines(self) -> list[str]:
        return [
            f"alerts: {self.alerts}",
            f"subdivision-zone pairs: {self.pairs}; point rule agrees {self.point_agrees}; "
            f"sgc_clc.csv agrees {self.table_agrees} "
            f"(maps {self.table_province_only} only to a province)",
            f"areas with a polygon: {self.areas}; the polygon step finds the zone in "
            f"{self.shape_finds}, exactly in {self.shape_exact}, "
            f"{self.shape_others} other zones in all",
        ]


def check_alerts(paths: Sequence[Path]) -> AlertCheck:
    """Compare the point rule, ``sgc_clc.csv`` and the polygon step with the CLC zones
    Environment Canada's alerts at ``paths`` name (English info blocks)."""
    from cap_schemas.location_shapes import clc_zones, sgc_points, shape_zones  # noqa: PLC0415
    from cap_schemas.model import Area  # noqa: PLC0415
    from cap_schemas.parse import parse_alert  # noqa: PLC0415
    from cap_schemas.tables import sgc_entry  # noqa: PLC0415

    zones: dict[str, list[tuple[str, float, float, float]]] = {}
    for z in clc_zones().values():
        zones.setdefault(z.province, []).append((z.clc, z.point.lat, z.point.lon, z.area_km2))
    pairs: dict[tuple[str, frozenset[str]], None] = {}
    shapes: dict[tuple[frozenset[str], tuple[object, ...]], Area] = {}
    for path in paths:
        for info in parse_alert(path.read_bytes()).infos:
            if not info.language.lower().startswith("en"):
                continue
            for area in info.areas:
                named = frozenset(area.geocode_values(ECCC_CLC))
                if not named:
                    continue
                for sgc in area.geocode_values(CAPCP_LOCATION):
                    if len(sgc) == 7:
                        pairs[(sgc, named)] = None
                if area.polygons:
                    bare = Area(area.area_desc, area.polygons, area.circles)
                    shapes.setdefault((named, area.polygons[0].points[:3]), bare)
    point_agrees = table_agrees = province_only = 0
    for sgc, named in pairs:
        point = sgc_points().get(sgc)
        candidates = zones.get(PROVINCES.get(sgc[:2], ""), [])
        if point is not None and candidates:
            zone = point_zone(point.lat, point.lon, candidates)
            point_agrees += any(_contains(c, zone) for c in named)
        entry = sgc_entry(sgc)
        codes = entry.clcs if entry is not None else ()
        table_agrees += any(_contains(c, n) or _contains(n, c) for c in codes for n in named)
        province_only += bool(codes) and all(c.endswith("0000") for c in codes)
    finds = exact = others = 0
    for (named, _), area in shapes.items():
        found = {z.clc for z in shape_zones(area)}
        inside = {f for f in found if any(_contains(c, f) for c in named)}
        finds += bool(inside)
        exact += found == named
        others += len(found - inside)
    return AlertCheck(
        len(paths),
        len(pairs),
        point_agrees,
        table_agrees,
        province_only,
        len(shapes),
        finds,
        exact,
        others,
    )


def _data_path(name: str) -> Path:
    return Path(str(resources.files("cap_schemas").joinpath(f"data/{name}")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_schemas.build_clc_zones")
    parser.add_argument("--zones", type=Path, help="CLC_Base_Zone.csv (attribute table)")
    parser.add_argument("--points", type=Path, help="CAP-CP_Geocodes.csv (reference points)")
    parser.add_argument("--measure", action="store_true", help="print the agreement figures")
    parser.add_argument(
        "--alerts", type=Path, nargs="+", default=[], help="Environment Canada CAP alerts to check"
    )
    args = parser.parse_args(argv)
    try:
        if args.zones is not None:
            _data_path("clc_zones.csv").write_text(zones_table(args.zones), encoding="utf-8")
        if args.points is not None:
            _data_path("sgc_points.csv").write_text(points_table(args.points), encoding="utf-8")
        if args.measure or args.zones is not None or args.points is not None:
            sys.stdout.write("\n".join(measure_shipped().lines()) + "\n")
        if args.alerts:
            sys.stdout.write("\n".join(check_alerts(args.alerts).lines()) + "\n")
    except (OSError, BuildError, CapError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
