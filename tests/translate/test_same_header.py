"""SAME header codec: golden vectors, round trips, rounding, year inference, hostile text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cap_schemas.errors import CapError
from cap_schemas.same import EOM, SameHeader, SameHeaderError, round_duration
from tests.helpers import corpus_dir

NOW = datetime(2026, 7, 1, tzinfo=UTC)
GOLDEN = (
    "ZCZC-WXR-RWT-020103-020209-020091-020121-029047-029165-029095-029037+0030-3650000-KEAX/NWS-",
    "ZCZC-EAS-RWT-012057-012081-012101-012103-012115+0030-2780415-WTSP/TV-",
    "ZCZC-PEP-NPT-000000+0030-2771820-TEST    -",
    "ZCZC-CIV-HMW-011001+0100-0702334-LLLLLLLL-",
    "ZCZC-WXR-SVR-012079-013019-013027-013075-013185-013173+0130-0462024-N0C4LL  -",
)


class TestGolden:
    """Published headers parse into their fields and write back byte for byte."""

    @pytest.mark.parametrize("text", GOLDEN)
    def test_round_trip(self, text: str) -> None:
        header = SameHeader.parse(text, now=NOW)
        assert header.to_text() == text

    def test_fields(self) -> None:
        header = SameHeader.parse(GOLDEN[0], now=NOW)
        assert header.originator == "WXR"
        assert header.event == "RWT"
        assert len(header.locations) == 8
        assert header.locations[0] == "020103"
        assert header.duration == timedelta(minutes=30)
        assert header.station == "KEAX/NWS"
        assert header.issued == datetime(2025, 12, 31, 0, 0, tzinfo=UTC)

    def test_corpus_decoder_outputs(self) -> None:
        folder = corpus_dir("same")
        for name in ("dsame-WXR-RWT.txt", "sameold-npt.22050.s16le.txt"):
            line = next(
                ln for ln in (folder / name).read_text().splitlines() if ln.startswith("ZCZC")
            )
            assert SameHeader.parse(line, now=NOW).to_text() == line.rstrip()

    def test_31_locations(self) -> None:
        codes = "-".join(f"0{n:05d}" for n in range(1, 32))
        text = f"ZCZC-EAS-DMO-{codes}+0015-0011122-NOCALL00-"
        assert len(SameHeader.parse(text, now=NOW).locations) == 31

    def test_missing_final_dash_is_read(self) -> None:
        header = SameHeader.parse("ZCZC-WXR-TOR-026163+0030-1001200-KDTX/NWS\r\n", now=NOW)
        assert header.to_text() == "ZCZC-WXR-TOR-026163+0030-1001200-KDTX/NWS-"

    def test_eom(self) -> None:
        assert EOM == "NNNN"

    def test_error_is_a_cap_error(self) -> None:
        assert issubclass(SameHeaderError, CapError)


class TestRounding:
    """Valid time rounds up: 15-minute steps to one hour, then 30-minute steps."""

    @pytest.mark.parametrize(
        ("minutes", "expected"),
        [
            (0.5, 15),
            (1, 15),
            (15, 15),
            (15.02, 30),
            (30, 30),
            (31, 45),
            (45, 45),
            (46, 60),
            (60, 60),
            (61, 90),
            (90, 90),
            (91, 120),
            (360, 360),
            (361, 390),
            (99 * 60 + 30, 99 * 60 + 30),
            (200 * 60, 99 * 60 + 30),
        ],
    )
    def test_boundaries(self, minutes: float, expected: int) -> None:
        assert round_duration(timedelta(minutes=minutes)) == timedelta(minutes=expected)

    @pytest.mark.parametrize("minutes", [0, -5])
    def test_expired(self, minutes: int) -> None:
        with pytest.raises(SameHeaderError, match="expired"):
            round_duration(timedelta(minutes=minutes))

    @pytest.mark.parametrize("ttt", ["0015", "0045", "0100", "0130", "9930"])
    def test_valid_steps_accepted(self, ttt: str) -> None:
        SameHeader.parse(f"ZCZC-CIV-CEM-036029+{ttt}-1001200-BORDERLK-", now=NOW)

    @pytest.mark.parametrize("ttt", ["0010", "0115", "0145", "0060"])
    def test_off_step_refused(self, ttt: str) -> None:
        with pytest.raises(SameHeaderError, match="valid time"):
            SameHeader.parse(f"ZCZC-CIV-CEM-036029+{ttt}-1001200-BORDERLK-", now=NOW)


class TestYear:
    """The header has no year: the latest one that does not put the issue time in the future."""

    def test_new_year_previous(self) -> None:
        now = datetime(2027, 1, 1, 0, 10, tzinfo=UTC)
        header = SameHeader.parse("ZCZC-WXR-TOR-026163+0030-3652355-KDTX/NWS-", now=now)
        assert header.issued == datetime(2026, 12, 31, 23, 55, tzinfo=UTC)

    def test_new_year_next(self) -> None:
        now = datetime(2026, 12, 31, 23, 58, tzinfo=UTC)
        header = SameHeader.parse("ZCZC-WXR-TOR-026163+0030-0010001-KDTX/NWS-", now=now)
        assert header.issued == datetime(2027, 1, 1, 0, 1, tzinfo=UTC)

    def test_a_header_is_never_from_next_year(self) -> None:
        now = datetime(2026, 11, 29, tzinfo=UTC)
        header = SameHeader.parse("ZCZC-WXR-RWT-026163+0030-3650000-KDTX/NWS-", now=now)
        assert header.issued == datetime(2025, 12, 31, tzinfo=UTC)

    def test_day_366_in_a_leap_year(self) -> None:
        now = datetime(2029, 1, 1, 1, 0, tzinfo=UTC)
        header = SameHeader.parse("ZCZC-WXR-TOR-026163+0030-3662300-KDTX/NWS-", now=now)
        assert header.issued == datetime(2028, 12, 31, 23, 0, tzinfo=UTC)

    def test_issue_time_written_in_utc(self) -> None:
        from zoneinfo import ZoneInfo  # noqa: PLC0415

        local = datetime(2026, 12, 31, 20, 30, tzinfo=ZoneInfo("America/Detroit"))
        header = SameHeader("WXR", "TOR", ("026163",), timedelta(minutes=30), local, "KDTX/NWS")
        assert header.to_text().endswith("+0030-0010130-KDTX/NWS-")


class TestHostile:
    """Anything that is not a conforming header is refused with the field at fault."""

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("", "prefix"),
            ("NNNN", "prefix"),
            ("ZCZC-XYZ-TOR-026163+0030-1001200-KDTX/NWS-", "originator"),
            ("ZCZC-WXR-TOR-02616+0030-1001200-KDTX/NWS-", "locations"),
            ("ZCZC-WXR-TOR-026163+0030-1001200-KDTX/NWSX-", "station"),
            ("ZCZC-WXR-TOR-026163+0030-1001200--", "station"),
            ("ZCZC-WXR-TOR-026163+00a0-1001200-KDTX/NWS-", "duration"),
            ("ZCZC-WXR-TOR-026163+0030-3672400-KDTX/NWS-", "issued"),
            ("ZCZC-WXR-TOR-026163+0030-0001200-KDTX/NWS-", "issued"),
            ("ZCZC-WXR-TOR-026163+0030-1002460-KDTX/NWS-", "issued"),
            ("ZCZC-WXR-tor-026163+0030-1001200-KDTX/NWS-", "event"),
            ("ZCZC-WXR-TOR+0030-1001200-KDTX/NWS-", "syntax"),
        ],
    )
    def test_refused(self, text: str, reason: str) -> None:
        with pytest.raises(SameHeaderError) as info:
            SameHeader.parse(text, now=NOW)
        assert info.value.reason == reason

    def test_32_locations_refused(self) -> None:
        codes = "-".join(f"0{n:05d}" for n in range(1, 33))
        with pytest.raises(SameHeaderError, match="31"):
            SameHeader.parse(f"ZCZC-EAS-DMO-{codes}+0015-0001122-NOCALL00-", now=NOW)

    def test_station_with_dash_refused(self) -> None:
        with pytest.raises(SameHeaderError, match="station"):
            SameHeader("WXR", "TOR", ("026163",), timedelta(minutes=30), NOW, "KD-X")

    @given(st.text(max_size=120))
    def test_random_text_parses_or_raises(self, text: str) -> None:
        try:
            header = SameHeader.parse(text, now=NOW)
        except SameHeaderError:
            return
        assert SameHeader.parse(header.to_text(), now=NOW) == header

    @given(
        st.sampled_from(["EAS", "CIV", "WXR", "PEP"]),
        st.from_regex(r"[A-Z]{3}", fullmatch=True),
        st.lists(st.from_regex(r"\d{6}", fullmatch=True), min_size=1, max_size=31),
        st.integers(min_value=1, max_value=99 * 60 + 30),
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
        ),
        st.from_regex(r"[A-Z0-9/][A-Z0-9/ ]{0,7}", fullmatch=True),
    )
    def test_model_round_trip(
        self,
        org: str,
        event: str,
        locations: list[str],
        minutes: int,
        issued: datetime,
        station: str,
    ) -> None:
        header = SameHeader(
            org,
            event,
            tuple(locations),
            round_duration(timedelta(minutes=minutes)),
            issued.replace(second=0, microsecond=0),
            station.ljust(8),
        )
        assert SameHeader.parse(header.to_text(), now=header.issued) == header
