"""The shipped crosswalk covers the whole Canada-US border, land and water, and is what the
boundary geometry gives."""

from __future__ import annotations

import math

import pytest

from cap_schemas.tables import Crosswalk, same_location_name
from gateway.border import (
    border_lines,
    place_border_km,
    point_border_km,
    point_shape_km,
    shape_border_km,
)
from gateway.console.geo import crosswalk as build
from gateway.places import shapes

#: A place "touches" the border when it lies within this of the line: the border is drawn to
#: 3 km (Douglas-Peucker, coordinates rounded to 1 km), counties to 0.4 km and divisions to
#: 1 km, so a place that shares the line in the source data may sit up to about 5 km off it.
TOUCH_KM = 5.0

#: Shores that face the border across water, by name (public geography, not the geometry of
#: the shipped files): the Salish Sea, Dixon Entrance, the Great Lakes and their rivers, the
#: St. Lawrence, Passamaquoddy Bay.
WATER_COUNTIES = {
    "053055": "San Juan County, Washington",
    "053009": "Clallam County, Washington",
    "002198": "Prince of Wales-Hyder Census Area, Alaska",
    "027031": "Cook County, Minnesota",
    "026083": "Keweenaw County, Michigan",
    "026033": "Chippewa County, Michigan",
    "026141": "Presque Isle County, Michigan",
    "026007": "Alpena County, Michigan",
    "026063": "Huron County, Michigan",
    "026151": "Sanilac County, Michigan",
    "026147": "St. Clair County, Michigan",
    "026099": "Macomb County, Michigan",
    "026163": "Wayne County, Michigan",
    "026115": "Monroe County, Michigan",
    "039123": "Ottawa County, Ohio",
    "039043": "Erie County, Ohio",
    "039093": "Lorain County, Ohio",
    "039035": "Cuyahoga County, Ohio",
    "039085": "Lake County, Ohio",
    "039007": "Ashtabula County, Ohio",
    "042049": "Erie County, Pennsylvania",
    "036013": "Chautauqua County, New York",
    "036029": "Erie County, New York",
    "036063": "Niagara County, New York",
    "036073": "Orleans County, New York",
    "036055": "Monroe County, New York",
    "036117": "Wayne County, New York",
    "036075": "Oswego County, New York",
    "036045": "Jefferson County, New York",
    "036089": "St. Lawrence County, New York",
    "023029": "Washington County, Maine",
}
WATER_DIVISIONS = {
    "5917": "Capital",
    "5947": "Skeena-Queen Charlotte",
    "3558": "Thunder Bay",
    "3557": "Algoma",
    "3551": "Manitoulin",
    "3541": "Bruce",
    "3540": "Huron",
    "3538": "Lambton",
    "3537": "Essex",
    "3536": "Chatham-Kent",
    "3534": "Elgin",
    "3528": "Haldimand-Norfolk",
    "3526": "Niagara",
    "3520": "Toronto",
    "3518": "Durham",
    "3514": "Northumberland",
    "3513": "Prince Edward",
    "3510": "Frontenac",
    "3507": "Leeds and Grenville",
    "3501": "Stormont, Dundas and Glengarry",
    "1302": "Charlotte",
}
#: Places that do not face Canada or the US: Lake Michigan's shores (a US lake), Wisconsin's
#: Lake Superior shore (more than 100 km from the line, Minnesota's and Michigan's shores are
#: nearer), counties and divisions behind the border ones, Hamilton at the west end of Lake
#: Ontario (the line starts at the Niagara's mouth).
NOT_FACING_COUNTIES = ("017031", "055079", "026077", "055007", "053057", "053077", "036067")
NOT_FACING_DIVISIONS = ("3525", "3553", "5921", "4811", "2423")


@pytest.fixture(scope="module")
def table() -> Crosswalk:
    return Crosswalk.default()


def _counties(table: Crosswalk) -> set[str]:
    return {us for us, _ in table.pairs}


def _divisions(table: Crosswalk) -> set[str]:
    return {sgc for _, sgc in table.pairs}


class TestWholeBorder:
    """Every place touching the border line, and every shore facing it across water."""

    def test_every_place_touching_the_line_appears(self, table: Crosswalk) -> None:
        touching_us = {k for k in shapes("county") if place_border_km("county", k) <= TOUCH_KM}
        touching_ca = {k for k in shapes("division") if place_border_km("division", k) <= TOUCH_KM}
        # From the Arctic coast to the Bay of Fundy: 13 Alaska boroughs and census areas,
        # the whole 49th parallel, the St. Lawrence, Quebec, New Brunswick.
        assert len(touching_us) >= 60
        assert len(touching_ca) >= 45
        assert touching_us - {c[1:] for c in _counties(table)} == set()
        assert touching_ca - _divisions(table) == set()

    def test_every_shore_across_water_appears(self, table: Crosswalk) -> None:
        assert set(WATER_COUNTIES) - _counties(table) == set()
        assert set(WATER_DIVISIONS) - _divisions(table) == set()
        for code, name in WATER_COUNTIES.items():
            assert same_location_name(code) == name

    def test_places_that_face_nothing_do_not(self, table: Crosswalk) -> None:
        assert set(NOT_FACING_COUNTIES) & _counties(table) == set()
        assert set(NOT_FACING_DIVISIONS) & _divisions(table) == set()

    def test_pairs_face_each_other(self, table: Crosswalk) -> None:
        """A pair's places lie on either side of the same stretch of border: each within
        reach of the line, and of each other across it."""
        counties, divisions = shapes("county"), shapes("division")
        for us, sgc in table.pairs:
            county, division = counties[us[1:]], divisions[sgc]
            assert place_border_km("county", us[1:]) <= build.REACH_KM
            assert place_border_km("division", sgc) <= build.REACH_KM
            nearest = min(point_shape_km(p, division) for ring in county for p in ring)
            assert nearest <= 2 * build.REACH_KM + build.TIE_KM, (us, sgc, nearest)

    def test_surrey_and_whatcom(self, table: Crosswalk) -> None:
        assert "053073" in table.us_for_sgc("5915004")  # Surrey -> Whatcom County
        assert {"5915", "5909"} <= set(table.sgc_for_us("053073"))

    def test_committed_table_is_what_the_geometry_gives(self) -> None:
        committed = build.OUT.read_text(encoding="utf-8")
        assert build.table(build.pairs()) == committed


class TestBorderDistance:
    """Distances to the border line: land, lakes, sea."""

    def test_points(self) -> None:
        assert point_border_km(49.0, -100.0) < 1.5  # on the 49th parallel
        assert point_border_km(47.2, -100.0) == pytest.approx(199, abs=3)
        assert point_border_km(42.0, -81.5) < 20  # the middle of Lake Erie (90 km wide)
        assert point_border_km(48.40, -123.20) < 6  # Haro Strait's south end
        assert point_border_km(29.76, -95.37) > 1500  # Houston

    def test_shapes(self) -> None:
        square = ((-118.3, 48.63), (-118.0, 48.63), (-118.0, 48.81), (-118.3, 48.81))
        assert shape_border_km([(*square, square[0])]) == pytest.approx(20, abs=1.5)
        # With a limit below the distance the answer only has to lie above the limit.
        assert shape_border_km([(*square, square[0])], limit=10) > 10
        assert shape_border_km([(*square, square[0])], limit=30) == pytest.approx(20, abs=1.5)
        crossing = ((-100.1, 48.9), (-99.9, 48.9), (-99.9, 49.1), (-100.1, 49.1), (-100.1, 48.9))
        assert shape_border_km([crossing]) == 0
        assert shape_border_km([]) == math.inf

    def test_the_line_is_the_whole_border(self) -> None:
        points = [p for line in border_lines() for p in line]
        lons = [p[0] for p in points]
        lats = [p[1] for p in points]
        assert min(lons) < -141  # the Arctic coast and the Alaska panhandle
        assert max(lons) > -67.2  # the Bay of Fundy
        assert max(lats) > 69.6  # the Beaufort Sea
        assert min(lats) < 42.5  # the Gulf of Maine
