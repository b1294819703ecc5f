"""Make ``cap_schemas/data/crosswalk_border.csv`` -- every US county and every Canadian census
division that faces the other country, paired with the places facing it -- from the shipped
boundary geometry.

Run by hand when the boundary files or the border change (the output is committed; the
daemon never runs this)::

    python -m gateway.console.geo.crosswalk            # writes the table
    python -m gateway.console.geo.crosswalk --check    # exit 1 when the committed table differs

Inputs (sources and licences in ``SOURCES.md`` beside this file): the border line of
:mod:`gateway.border` (land, lakes, rivers and sea), US counties (``us-counties.geojson``,
Census Bureau cartographic boundaries) and census divisions (``ca-divisions.geojson``,
Statistics Canada cartographic boundaries).

Method. The border is walked in steps of :data:`STEP_KM`. At each point the nearest US
county and the nearest census division are found; a place *faces* the border there when it
is no farther than the nearest of its country plus :data:`TIE_KM`, and the nearest is at most
:data:`REACH_KM` away. Every US county facing a point is paired with every division facing
the same point (many-to-many), so each county is paired with the divisions across from it.

* On land the nearest places touch the line (distance 0 up to the simplification of the
  files: the border is drawn to 3 km, counties to 0.4 km, divisions to 1 km); :data:`TIE_KM`
  keeps both places at a corner where two of them meet the border.
* On water the files are cut at the shoreline (cartographic boundary files), so a place
  across a lake or a strait never touches the line; it faces it where it is the nearest
  shore. :data:`REACH_KM` is the widest such gap: Lake Superior, where the line runs up to
  95 km from the nearest US shore (north of Alger County) and 90 km from the nearest
  Canadian one (south of Thunder Bay); every other lake, river and strait is narrower. Only
  the open-sea end of the Gulf of Maine line (the Hague line south of about 43 degrees N)
  runs farther from both shores and pairs nothing there.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from cap_schemas.tables import same_location_name
from gateway.border import border_lines, place_border_km, point_shape_km
from gateway.console.geo.build import PROVINCES
from gateway.places import Shape, geo_features, shapes

STEP_KM = 2.0
TIE_KM = 3.0
REACH_KM = 100.0
BUILT = "2026-12"  # the month the table was last made (its header says so)

OUT = Path(__file__).resolve().parents[3] / "cap_schemas" / "data" / "crosswalk_border.csv"

HEADER = "".join(
    f"# {line}\n"
    for line in (
        "Canada-US border crosswalk: every US county (SAME code PSSCCC = 0 + state and county"
        " FIPS) that faces Canada and every Statistics Canada census division (SGC) that faces"
        " the US, across the land or water boundary, each paired with the places facing it."
        " Many-to-many; a deployment may supply its own table (route option"
        ' crosswalk = "path.csv") with the same columns.',
        "Source: US Census Bureau cartographic boundary counties 2017 (public domain),"
        " Statistics Canada 2021 census division cartographic boundary file (Open Government"
        " Licence - Canada), the Canada-US border from Natural Earth 1:50m (public domain) with"
        " the Salish Sea channel line written from the 1846 treaty; as shipped in"
        " gateway/console/geo (SOURCES.md there). Names: addfips (Census Bureau) and"
        f" Statistics Canada. Built {BUILT}.",
        f"Method: python -m gateway.console.geo.crosswalk -- the border is walked every"
        f" {STEP_KM:g} km; at each point the nearest county and the nearest division (and any"
        f" within {TIE_KM:g} km of the nearest) face it and are paired, when the nearest is at"
        f" most {REACH_KM:g} km away (a shore across a lake or a strait).",
    )
)


def _walk(step_km: float) -> Iterator[tuple[float, float]]:
    """Points along the border, about ``step_km`` apart, as (lon, lat)."""
    for line in border_lines():
        yield line[0]
        for (x1, y1), (x2, y2) in itertools.pairwise(line):
            k = math.cos(math.radians((y1 + y2) / 2))
            length = math.hypot((x2 - x1) * k, y2 - y1) * 111.2
            n = max(1, math.ceil(length / step_km))
            for i in range(1, n + 1):
                yield x1 + (x2 - x1) * i / n, y1 + (y2 - y1) * i / n


def _candidates(kind: str) -> dict[str, Shape]:
    """Places that can be nearest to a border point within reach."""
    return {
        key: shape
        for key, shape in shapes(kind).items()
        if (place_border_km(kind, key) or 0.0) <= REACH_KM + TIE_KM
    }


def _facing(point: tuple[float, float], places: dict[str, Shape]) -> list[str]:
    distances = {key: point_shape_km(point, shape) for key, shape in places.items()}
    nearest = min(distances.values(), default=math.inf)
    if nearest > REACH_KM:
        return []
    return sorted(key for key, d in distances.items() if d <= nearest + TIE_KM)


def _near(point: tuple[float, float], boxes: dict[str, tuple[float, ...]]) -> list[str]:
    """Keys of the places whose box lies within reach of a point (a cheap first cut)."""
    lon, lat = point
    dlat = (REACH_KM + TIE_KM) / 111.2
    dlon = dlat / max(0.05, math.cos(math.radians(lat)))
    return [
        key
        for key, (west, south, east, north) in boxes.items()
        if west - dlon <= lon <= east + dlon and south - dlat <= lat <= north + dlat
    ]


def _boxes(places: dict[str, Shape]) -> dict[str, tuple[float, ...]]:
    out: dict[str, tuple[float, ...]] = {}
    for key, shape in places.items():
        lons = [p[0] for ring in shape for p in ring]
        lats = [p[1] for ring in shape for p in ring]
        out[key] = (min(lons), min(lats), max(lons), max(lats))
    return out


def pairs() -> list[tuple[str, str]]:
    """(5-digit county FIPS, 4-digit SGC) pairs facing each other, sorted."""
    counties, divisions = _candidates("county"), _candidates("division")
    county_boxes, division_boxes = _boxes(counties), _boxes(divisions)
    found: set[tuple[str, str]] = set()
    for point in _walk(STEP_KM):
        us = _facing(point, {k: counties[k] for k in _near(point, county_boxes)})
        ca = _facing(point, {k: divisions[k] for k in _near(point, division_boxes)})
        found.update((c, d) for c in us for d in ca)
    return sorted(found)


def _division_names() -> dict[str, str]:
    province = {sgc: name for sgc, name, _fr in PROVINCES.values()}
    return {
        f["properties"]["sgc"]: f"{f['properties']['name']}, {province[f['properties']['pr']]}"
        for f in geo_features("ca-divisions.geojson")
    }


def table(found: Sequence[tuple[str, str]]) -> str:
    names = _division_names()
    out = io.StringIO()
    out.write(HEADER)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("us_same", "sgc", "note"))
    for fips, sgc in found:
        same = "0" + fips
        note = f"{same_location_name(same) or fips} - {names[sgc]}"
        writer.writerow((same, sgc, note))
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed table")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = table(pairs())
    if args.check:
        if args.out.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{args.out} differs from what the geometry gives\n")
            raise SystemExit(1)
        return
    args.out.write_text(text, encoding="utf-8")
    rows = text.count("\n") - HEADER.count("\n") - 1
    sys.stdout.write(f"{args.out.name}: {rows} pairs\n")


if __name__ == "__main__":
    main()
