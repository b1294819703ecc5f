"""The project's shared pieces: CLI discovery, metrics text, the CAP key."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cap_schemas.model import AlertKey, format_cap_datetime
from gateway.cli import build_parser
from gateway.metrics import Registry
from tests.conftest import _live_children


class TestCapTimes:
    """CAP times are written with seconds and an explicit offset; UTC as -00:00."""

    def test_utc_is_written_minus_zero(self) -> None:
        assert format_cap_datetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
            "2024-01-02T03:04:05-00:00"
        )

    def test_offsets_keep_their_sign(self) -> None:
        tz = timezone(timedelta(hours=-5, minutes=-30))
        assert format_cap_datetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz)).endswith("-05:30")
        tz = timezone(timedelta(hours=9, minutes=30))
        assert format_cap_datetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz)).endswith("+09:30")

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone"):
            format_cap_datetime(datetime(2024, 1, 2))


class TestAlertKey:
    """A references triple reads back into the key of the alert it names."""

    def test_round_trip(self) -> None:
        key = AlertKey("cap-pac@canada.ca", "urn:oid:2.49.0.1.124.1", "2022-10-10T04:49:30-00:00")
        assert AlertKey.from_reference(str(key)) == key

    @pytest.mark.parametrize("bad", ["a,b", "a,,c", "a,b,c,d", ""])
    def test_malformed_triples_are_refused(self, bad: str) -> None:
        with pytest.raises(ValueError, match="triple"):
            AlertKey.from_reference(bad)


class TestMetrics:
    """The registry renders Prometheus text with labels and cumulative buckets."""

    def test_counter_and_histogram_text(self) -> None:
        reg = Registry()
        c = reg.counter("x_total", "things", ("kind",))
        c.inc(kind="a")
        c.inc(2, kind="a")
        h = reg.histogram("lat_seconds", "latency")
        h.observe(0.003)
        h.observe(20)
        text = reg.render()
        assert 'x_total{kind="a"} 3' in text
        assert 'lat_seconds_bucket{le="0.005"} 1' in text
        assert 'lat_seconds_bucket{le="+Inf"} 2' in text
        assert "lat_seconds_count 2" in text

    def test_labels_must_be_the_metrics_own(self) -> None:
        reg = Registry()
        c = reg.counter("z_total", "z", ("sink", "outcome"))
        c.inc(sink="out", outcome="ok")
        c.inc(outcome="ok", sink=7)  # type: ignore[arg-type] # a value is shown as text
        assert c.value(sink="out", outcome="ok") == 1
        assert c.value(sink="7", outcome="ok") == 1
        for wrong in ({"sink": "out"}, {"sink": "out", "state": "ok"}, {}):
            with pytest.raises(ValueError, match=r"z_total takes labels \('sink', 'outcome'\)"):
                c.inc(**wrong)

    def test_same_name_other_labels_is_an_error(self) -> None:
        reg = Registry()
        reg.counter("y_total", "y", ("a",))
        with pytest.raises(ValueError, match="already registered"):
            reg.counter("y_total", "y", ("b",))


def test_cli_lists_its_commands() -> None:
    parser = build_parser()
    assert parser.prog == "borderlink"


class TestLeakCheck:
    """The after-test leak check sees a running child process and stops seeing it once reaped."""

    def test_running_child_is_seen(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert child.pid in _live_children()
        finally:
            child.kill()
            child.wait()
        assert child.pid not in _live_children()
