"""Location codes never widen an alert silently: derived province- or state-wide codes for a
smaller area are refused with the reason unless the route says ``widen = "province"``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.demo import codec
from cap_schemas.build_sgc_clc import build
from cap_schemas.location_areas import Scale, code_area, sgc_scale
from cap_schemas.model import Alert, Area, ValuePair
from cap_schemas.parse import parse_alert
from cap_schemas.tables import Crosswalk, sgc_entry
from gateway.errors import ConfigError, LocationWideningError, TranslationError
from gateway.translate.capcp_ipaws import IpawsOptions, capcp_to_ipaws
from gateway.translate.locations import widen_option
from gateway.translate.same import alert_to_same
from tests.translate.conftest import SENT

NOW = SENT + timedelta(minutes=5)
ROOT = Path(__file__).resolve().parents[2]
CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"
ECCC_CLC = "layer:EC-MSC-SMC:1.0:CLC"

# Whatcom County WA (Washington state-wide and the whole country as wrong-scale rows).
STATE_ROW = Crosswalk.from_text("us_same,sgc\n053000,5915\n053073,5909\n")
NATION_ROW = Crosswalk.from_text("us_same,sgc\n000000,5915\n")
# San Juan County WA faces Capital BC, a division the CLC table maps to all of BC.
SAN_JUAN = Crosswalk.from_text("us_same,sgc\n053055,5917\n")


def header(alert: Alert, **kw: object) -> tuple[str, ...]:
    return alert_to_same(alert, station="BORDERLK", now=NOW, **kw).locations  # type: ignore[arg-type]


class TestCanadianCodes:
    """The issue's findings: a municipality no longer gets its whole province's code."""

    def test_surrey_gets_its_divisions_regions_not_british_columbia(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        alert = eccc_alert(clc=(), sgc=("5915004",))
        codes = header(alert, country="CA")
        assert "080000" not in codes
        assert codes == ("081200", "081300", "081400", "081500", "082600")

    def test_demo_windsor_header_has_no_ontario_code(self) -> None:
        alert = _demo_warning()
        made = alert_to_same(alert, station="BORDERLK", now=alert.sent + timedelta(minutes=1))
        assert made.locations == ("041420",)  # Windsor and Pelee are both in Essex

    def test_municipality_mapped_to_its_province_is_refused_with_the_reason(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        alert = eccc_alert(clc=(), sgc=("5917010",))  # Sidney, BC: the table says all of BC
        with pytest.raises(LocationWideningError) as info:
            header(alert, country="CA")
        reason = str(info.value)
        assert reason.startswith("no SAME header: ")
        assert "080000 British Columbia (whole province or territory)" in reason
        assert "SGC 5917010 Sidney (census subdivision)" in reason
        assert 'widen = "province"' in reason

    def test_widen_province_allows_it(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(clc=(), sgc=("5917010",))
        assert header(alert, country="CA", widen="province") == ("080000",)

    def test_the_alerts_own_province_code_is_kept(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(clc=("080000",), sgc=("5917010",))
        assert header(alert, country="CA") == ("080000",)

    def test_a_province_wide_alert_gets_its_province(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        assert header(eccc_alert(clc=(), sgc=("59",)), country="CA") == ("080000",)

    def test_a_code_the_alert_also_names_province_wide_is_not_a_widening(
        self, eccc_alert: Callable[..., Alert]
    ) -> None:
        alert = eccc_alert(clc=(), sgc=("5917010", "59"))
        assert header(alert, country="CA") == ("080000",)

    def test_each_area_gets_its_own_codes(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert()
        info = alert.infos[0]
        second = Area(area_desc="Toronto", geocodes=(ValuePair(CAPCP_LOCATION, "3520005"),))
        alert = replace(alert, infos=(replace(info, areas=(*info.areas, second)),))
        # The first area names its CLC region; the second only its SGC code.
        assert header(alert, country="CA") == ("041420", "043100")


class TestUsCodes:
    """The same rule for US codes: a state-wide 0SS000 for a smaller area is refused."""

    def test_state_row_refused_for_a_division(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(sgc=("5915",))
        with pytest.raises(LocationWideningError, match=r"053000 Washington \(whole state\)"):
            header(alert, country="US", crosswalk=STATE_ROW)

    def test_state_row_with_widen_province(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(sgc=("5915",))
        codes = header(alert, country="US", crosswalk=STATE_ROW, widen="province")
        assert codes == ("053000",)

    def test_national_code_never_allowed(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(sgc=("5915",))
        with pytest.raises(LocationWideningError, match="national code is never allowed"):
            header(alert, country="US", crosswalk=NATION_ROW, widen="province")

    def test_county_alert_to_a_province_wide_clc_refused(
        self, us_alert: Callable[..., Alert]
    ) -> None:
        alert = us_alert(same_codes=("053055",))
        with pytest.raises(LocationWideningError) as info:
            header(alert, country="CA", crosswalk=SAN_JUAN)
        assert "053055 San Juan County, Washington (county)" in str(info.value)
        assert header(alert, country="CA", crosswalk=SAN_JUAN, widen="province") == ("080000",)

    def test_the_alerts_own_state_code_is_kept(self, us_alert: Callable[..., Alert]) -> None:
        assert header(us_alert(same_codes=("026000",))) == ("026000",)


class TestIpaws:
    """CAP-CP -> IPAWS adds no state-wide SAME code for a smaller Canadian area."""

    def test_state_row_refused(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(sgc=("5915",))
        with pytest.raises(LocationWideningError, match="not translated to IPAWS"):
            capcp_to_ipaws(alert, IpawsOptions(crosswalk=STATE_ROW), check=False)

    def test_state_row_with_widen(self, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert(sgc=("5915",))
        made = capcp_to_ipaws(
            alert, IpawsOptions(crosswalk=STATE_ROW, widen="province"), check=False
        )
        assert made.infos[0].areas[0].geocode_values("SAME") == ("053000",)

    def test_widen_option_checked(self) -> None:
        with pytest.raises(ConfigError, match="widen 'state' is not one of none, province"):
            IpawsOptions.from_mapping({"widen": "state"})
        with pytest.raises(ConfigError, match="must be a string"):
            widen_option({"widen": True})
        with pytest.raises(ConfigError, match="widen 'all'"):
            alert_to_same(_demo_warning(), station="X", widen="all")

    def test_widening_is_a_translation_error(self) -> None:
        assert issubclass(LocationWideningError, TranslationError)


def _demo_warning() -> Alert:
    """The demo source's Windsor tornado warning (Windsor 3537039 and Pelee 3537001)."""
    template = next(t for t in codec.bundled_templates() if t.name == "01-ca-tornado-warning")
    raw = codec.render(template, now=NOW, serial="1", lifetime=timedelta(hours=2), earlier={})
    return parse_alert(raw)


class TestAreas:
    """Each code's area: its scale and a name an operator recognises."""

    @pytest.mark.parametrize(
        ("code", "country", "scale", "name", "kind"),
        [
            ("000000", "CA", Scale.NATION, "All of Canada", "all of Canada"),
            ("040000", "CA", Scale.PROVINCE, "Ontario", "whole province or territory"),
            (
                "010000",
                "CA",
                Scale.PROVINCE,
                "New Brunswick, Nova Scotia, Prince Edward Island",
                "3 whole provinces or territories",
            ),
            ("041420", "CA", Scale.DIVISION, "Essex", "forecast region"),
            ("001110", "CA", Scale.DIVISION, "Juan de Fuca Strait", "marine zone"),
            ("002200", "CA", Scale.PROVINCE, "Great Lakes", "whole marine area"),
            ("000000", "US", Scale.NATION, "United States", "the whole country"),
            ("026000", "US", Scale.PROVINCE, "Michigan", "whole state"),
            ("026163", "US", Scale.DIVISION, "Wayne County, Michigan", "county"),
            ("126163", "US", Scale.SUBDIVISION, "Wayne County, Michigan", "part 1 of the county"),
        ],
    )
    def test_code_area(self, code: str, country: str, scale: Scale, name: str, kind: str) -> None:
        area = code_area(code, country)
        assert (area.scale, area.name, area.kind) == (scale, name, kind)

    def test_sgc_scale(self) -> None:
        assert sgc_scale("5915004") == (Scale.SUBDIVISION, "census subdivision")
        assert sgc_scale("5915") == (Scale.DIVISION, "census division")
        assert sgc_scale("59") == (Scale.PROVINCE, "province or territory")
        assert sgc_scale("00") == (Scale.NATION, "Canada")
        assert sgc_scale("9999999") == (Scale.SUBDIVISION, "census subdivision")


class TestTable:
    """sgc_clc.csv is what its build makes, and says where each row's codes come from."""

    def table(self) -> str:
        return (ROOT / "cap_schemas/data/sgc_clc.csv").read_text(encoding="utf-8")

    def test_committed_table_is_the_builds_output(self) -> None:
        made, coverage = build(self.table())
        assert made == self.table()
        assert (coverage.subdivisions, coverage.below_before, coverage.below_after) == (
            5286,
            1450,
            2718,
        )
        assert "# Coverage: 2718 of 5286 census subdivisions (51.4%)" in made

    def test_rows_keep_the_source_codes(self) -> None:
        surrey = sgc_entry("5915004")
        assert surrey is not None
        assert (surrey.basis, surrey.source_clcs) == ("division", ("080000",))
        windsor = sgc_entry("3537039")
        assert windsor is not None
        assert (windsor.basis, windsor.clcs, windsor.source_clcs) == (
            "source",
            ("041420",),
            ("041420",),
        )

    def test_build_narrows_only_from_province_to_division(self) -> None:
        text = (
            "sgc,clc,scale,name\n59,080000,PT,British Columbia\n"
            "5915,081300,CD,Greater Vancouver\n5915004,080000,CSD,Surrey\n"
            "5917,080000,CD,Capital\n5917010,080000,CSD,Sidney\n"
            "5909052,082710,CSD,Abbotsford\n"
        )
        made, coverage = build(text)
        rows = [line for line in made.splitlines() if not line.startswith("#")]
        assert rows[1:] == [
            "59,080000,PT,British Columbia,source,080000",
            "5915,081300,CD,Greater Vancouver,source,081300",
            "5915004,081300,CSD,Surrey,division,080000",
            "5917,080000,CD,Capital,source,080000",
            "5917010,080000,CSD,Sidney,source,080000",
            "5909052,082710,CSD,Abbotsford,source,082710",
        ]
        assert (coverage.subdivisions, coverage.below_before, coverage.below_after) == (3, 1, 2)
        assert build(made)[0] == made  # a second run changes nothing
