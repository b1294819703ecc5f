"""Code tables: completeness of the event map, locations, crosswalk."""

from __future__ import annotations

from importlib import resources

import pytest

from cap_schemas.tables import (
    Crosswalk,
    TableError,
    capcp_events,
    capcp_to_same,
    clc_names,
    event_map_to_capcp,
    event_map_to_same,
    fips_names,
    same_events,
    same_location_name,
    same_to_capcp,
    sgc_to_clc,
)

DATA_FILES = (
    "same_events.csv",
    "capcp_same_map.csv",
    "sgc_clc.csv",
    "clc_names.csv",
    "crosswalk_border.csv",
)


class TestEventMapCompleteness:
    """Every CAP-CP event and every SAME event has an explicit decision."""

    def test_every_capcp_event_maps_to_same(self) -> None:
        table = event_map_to_same()
        missing = [c for c in capcp_events() if (c, "*") not in table]
        assert missing == []

    def test_every_same_event_maps_to_capcp(self) -> None:
        table = event_map_to_capcp()
        missing = [c for c in same_events() if (c, "*") not in table]
        assert missing == []

    def test_map_names_only_known_codes(self) -> None:
        for entry in event_map_to_same().values():
            assert entry.capcp in capcp_events()
            assert entry.same in same_events()
        for entry in event_map_to_capcp().values():
            assert entry.capcp in capcp_events()
            assert entry.same in same_events()

    def test_to_same_targets_are_us_eas_codes(self) -> None:
        for entry in event_map_to_same().values():
            assert same_events()[entry.same].us_eas, entry

    def test_decisions_are_from_the_documented_set(self) -> None:
        decisions = {e.decision for e in event_map_to_same().values()}
        decisions |= {e.decision for e in event_map_to_capcp().values()}
        assert decisions <= {"eccc", "equivalent", "nearest", "none"}

    def test_no_equivalent_falls_back_to_cem(self) -> None:
        for entry in event_map_to_same().values():
            if entry.decision == "none":
                assert entry.same == "CEM"


class TestEcccPairs:
    """Environment Canada's own pairs come first, refined by the alert type."""

    @pytest.mark.parametrize(
        ("event", "kind", "same"),
        [
            ("snowfall", "warning", "WSW"),
            ("wind", "warning", "HWW"),
            ("thunderstorm", "watch", "SVA"),
            ("thunderstorm", "warning", "SVR"),
            ("thunderstorm", None, "SVR"),
            ("tornado", "watch", "TOA"),
            ("flood", "statement", "FLS"),
            ("flashFreeze", "warning", "SPS"),
        ],
    )
    def test_pairs(self, event: str, kind: str | None, same: str) -> None:
        mapping = capcp_to_same(event, kind)
        assert mapping is not None
        assert mapping.same == same

    def test_unknown_event_has_no_mapping(self) -> None:
        assert capcp_to_same("notAnEvent") is None

    def test_reverse(self) -> None:
        entry = same_to_capcp("SVA")
        assert entry is not None
        assert (entry.capcp, entry.alert_type) == ("thunderstorm", "watch")
        assert same_to_capcp("FSW") is not None
        assert not same_events()["FSW"].us_eas


class TestDataFiles:
    """Each data file names its source and date in its header lines."""

    @pytest.mark.parametrize("name", DATA_FILES)
    def test_header(self, name: str) -> None:
        text = resources.files("cap_schemas").joinpath(f"data/{name}").read_text("utf-8")
        header = [line for line in text.splitlines() if line.startswith("#")]
        joined = " ".join(header)
        assert "Source" in joined or "source" in joined
        assert "2026" in joined


class TestLocations:
    """SGC -> CLC, CLC names and US county names from the addfips data."""

    def test_sgc_to_clc(self) -> None:
        assert sgc_to_clc("3520") == ("043100",)
        assert sgc_to_clc("3526") == ("046700", "046710", "046720")
        assert sgc_to_clc("9999999") == ()

    def test_clc_names(self) -> None:
        assert clc_names()["043100"] == "Toronto"
        assert clc_names()["040000"] == "Ontario"

    def test_fips_names_come_from_addfips(self) -> None:
        assert fips_names()["53073"] == "Whatcom County, Washington"
        assert len(fips_names()) > 3000

    def test_same_location_names(self) -> None:
        assert same_location_name("026163") == "Wayne County, Michigan"
        assert same_location_name("036000") == "New York"
        assert same_location_name("000000") == "United States"
        assert same_location_name("043100", country="CA") == "Toronto"
        assert same_location_name("12345") is None


class TestCrosswalk:
    """A many-to-many table of US counties and Canadian census divisions."""

    def test_default_pairs(self) -> None:
        cw = Crosswalk.default()
        assert "3537" in cw.sgc_for_us("026163")
        assert "026163" in cw.us_for_sgc("3537")

    def test_subdivision_is_covered_by_its_division(self) -> None:
        # Niagara Falls (3526043) is in Niagara (3526): Chautauqua, Erie and Niagara, New
        # York, face it across Lake Erie and the Niagara River.
        assert Crosswalk.default().us_for_sgc("3526043") == ("036013", "036029", "036063")

    def test_subdivision_digit_ignored_for_us(self) -> None:
        cw = Crosswalk.default()
        assert cw.sgc_for_us("626163") == cw.sgc_for_us("026163")
        assert cw.sgc_for_us("626163")[0] == "3537"  # Wayne County, Michigan -> Essex

    def test_province_rows_do_not_swallow_divisions(self) -> None:
        cw = Crosswalk.from_text("us_same,sgc\n026163,35\n")
        assert cw.us_for_sgc("3537") == ()
        assert cw.us_for_sgc("35") == ("026163",)

    def test_malformed_row_is_refused_with_its_row(self) -> None:
        with pytest.raises(TableError, match="row 2"):
            Crosswalk.from_text("us_same,sgc\n026163,3537\n26163,3537\n")

    def test_missing_columns(self) -> None:
        with pytest.raises(TableError, match="expected columns"):
            Crosswalk.from_text("fips,division\n026163,3537\n")

    def test_missing_file(self, tmp_path: object) -> None:
        with pytest.raises(TableError, match="crosswalk"):
            Crosswalk.from_file("/nonexistent/crosswalk.csv")
