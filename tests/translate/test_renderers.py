"""Renderers named by routes, and the ``borderlink translate`` command."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cap_schemas.edxl import validate_edxl, wrap
from cap_schemas.model import Alert, Status
from cap_schemas.parse import parse_alert
from cap_schemas.same import SameHeader
from cap_schemas.serialize import to_xml
from cap_schemas.validate import is_valid, validate
from gateway.cli import main
from gateway.errors import ConfigError, TranslationError
from gateway.translate.incident import text_to_incident
from gateway.translate.registry import RENDERERS, check_options, get_renderer
from tests.translate.conftest import SENT


class TestRegistry:
    """Every translation is registered under the name routes use."""

    @pytest.mark.parametrize(
        "name", ["ipaws", "cap-cp", "same", "text", "edxl", "incident", "incident-text"]
    )
    def test_registered(self, name: str) -> None:
        assert get_renderer(name) is RENDERERS[name]

    def test_ipaws(self, eccc_alert: Callable[..., Alert]) -> None:
        rendered = RENDERERS["ipaws"](eccc_alert(), {"sender": "eoc@x.gov", "blockchannel": "CMAS"})
        alert = parse_alert(rendered.parts[0])
        assert rendered.content_type == "application/cap+xml"
        assert alert.sender == "eoc@x.gov"
        assert is_valid(validate(alert, profile="ipaws"))
        assert rendered.attributes["derived_from"] == str(eccc_alert().key)

    def test_capcp(self, us_alert: Callable[..., Alert]) -> None:
        rendered = RENDERERS["cap-cp"](us_alert(), {})
        assert is_valid(validate(parse_alert(rendered.parts[0]), profile="cap-cp"))

    def test_capcp_with_crosswalk_file(
        self, us_alert: Callable[..., Alert], tmp_path: Path
    ) -> None:
        path = tmp_path / "cw.csv"
        path.write_text("# test\nus_same,sgc\n022071,2466\n", encoding="utf-8")
        rendered = RENDERERS["cap-cp"](us_alert(same_codes=("022071",)), {"crosswalk": str(path)})
        alert = parse_alert(rendered.parts[0])
        assert alert.infos[0].areas[0].geocode_values("profile:CAP-CP:Location:0.3") == ("2466",)

    def test_bad_options_fail_the_delivery_only(self, us_alert: Callable[..., Alert]) -> None:
        with pytest.raises(TranslationError, match="crosswalk"):
            RENDERERS["cap-cp"](us_alert(), {"crosswalk": "/nonexistent.csv"})

    @pytest.mark.parametrize(
        ("name", "options", "what"),
        [
            ("ipaws", {"sender": "a b"}, "sender"),
            ("ipaws", {"blockchannel": ["TV"]}, "blockchannel"),
            ("ipaws", {"default_hours": "6"}, "default_hours"),
            ("cap-cp", {"crosswalk": "/nonexistent.csv"}, "crosswalk"),
            ("cap-cp", {"fallback_sgc": "x"}, "fallback_sgc"),
            ("same", {"station": "TOO-LONG-ID"}, "station"),
            ("same", {"country": "MX"}, "country"),
            ("text", {"radio": "smoke"}, "radio"),
            ("text", {"lang": "de"}, "lang"),
            ("text", {"budget": 5}, "budget"),
            ("edxl", {"version": "3.0"}, "version"),
            ("nonexistent", {}, "unknown translation"),
        ],
    )
    def test_options_checked_at_load(
        self, name: str, options: dict[str, object], what: str
    ) -> None:
        with pytest.raises(ConfigError, match=what):
            check_options(name, options)

    @pytest.mark.parametrize(
        ("name", "options"),
        [
            (
                "ipaws",
                {"sender": "eoc@x.gov", "blockchannel": ["CMAS"], "timezone": "America/Detroit"},
            ),
            ("cap-cp", {"fallback_sgc": "3537", "crosswalk": "none"}),
            ("same", {"station": "WWJ/AM", "country": "US"}),
            ("text", {"radio": "aprs", "lang": "both"}),
            ("edxl", {"version": "1.0"}),
            ("identity", {}),
            ("incident", {}),
        ],
    )
    def test_good_options(self, name: str, options: dict[str, object]) -> None:
        check_options(name, options)

    def test_same(self, eccc_alert: Callable[..., Alert]) -> None:
        rendered = RENDERERS["same"](
            eccc_alert(), {"station": "CKLW/AM", "now": SENT + timedelta(minutes=1)}
        )
        header = SameHeader.parse(rendered.parts[0].decode("ascii"), now=SENT)
        assert header.station == "CKLW/AM "
        assert rendered.attributes["eom"] == "NNNN"

    def test_same_refuses_tests(self, eccc_alert: Callable[..., Alert]) -> None:
        with pytest.raises(TranslationError, match="status Test"):
            RENDERERS["same"](eccc_alert(status=Status.TEST), {"now": SENT})

    def test_text(self, eccc_alert: Callable[..., Alert]) -> None:
        rendered = RENDERERS["text"](eccc_alert(), {"radio": "aprs", "lang": "both"})
        assert rendered.content_type == "text/plain; charset=us-ascii"
        assert all(len(p) <= 67 for p in rendered.parts)
        assert rendered.attributes["priority"] == "URGENT"

    def test_edxl(self, eccc_alert: Callable[..., Alert]) -> None:
        rendered = RENDERERS["edxl"](eccc_alert(), {"version": "1.0"})
        assert validate_edxl(rendered.parts[0]) == []

    def test_incident_text(self, eccc_alert: Callable[..., Alert]) -> None:
        rendered = RENDERERS["incident-text"](eccc_alert(), {})
        incident = text_to_incident(rendered.parts[0].decode())
        assert incident.incident_id == eccc_alert().identifier
        assert incident.location is not None


class TestCommand:
    """``borderlink translate`` prints the translation; exit 1 when refused, 2 unreadable."""

    def _run(
        self, argv: list[str], capsys: pytest.CaptureFixture[str], stdin: bytes = b""
    ) -> tuple[int, str, str]:
        if stdin:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
        try:
            code = main(["translate", *argv])
        finally:
            sys.stdin = sys.__stdin__
        out = capsys.readouterr()
        return code, out.out, out.err

    def test_to_ipaws(
        self, tmp_path: Path, eccc_alert: Callable[..., Alert], capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "a.xml"
        path.write_bytes(to_xml(eccc_alert()))
        code, out, _ = self._run([str(path), "--to", "ipaws", "--sender", "eoc@x.gov"], capsys)
        assert code == 0
        assert "<code>IPAWSv1.0</code>" in out

    def test_envelope_without_alert_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An EDXL-DE envelope of something else used to print nothing and exit 0."""
        path = tmp_path / "report.xml"
        path.write_bytes(
            wrap(
                [("application/json", b'{"note": "no alert here"}')],
                version="2.0",
                distribution_id="d-1",
                sender_id="eoc@example.org",
                sent=datetime(2026, 12, 4, tzinfo=UTC),
                expires=datetime(2026, 12, 5, tzinfo=UTC),
            )
        )
        code, out, err = self._run([str(path), "--to", "text"], capsys)
        assert code == 2
        assert out == ""
        assert "carries no CAP alert" in err

    def test_to_text(
        self, tmp_path: Path, eccc_alert: Callable[..., Alert], capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "a.xml"
        path.write_bytes(to_xml(eccc_alert()))
        code, out, _ = self._run(
            [str(path), "--to", "text", "--radio", "aprs", "--lang", "fr"], capsys
        )
        assert code == 0
        lines = out.splitlines()
        assert lines[0].startswith("URGENT 1/")
        assert all(len(line) <= 67 for line in lines)

    def test_same_refused(
        self, tmp_path: Path, eccc_alert: Callable[..., Alert], capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "a.xml"
        path.write_bytes(to_xml(eccc_alert()))
        code, _, err = self._run([str(path), "--to", "same"], capsys)
        assert code == 1
        assert "expired" in err

    def test_same_with_now(
        self, tmp_path: Path, eccc_alert: Callable[..., Alert], capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "a.xml"
        path.write_bytes(to_xml(eccc_alert()))
        code, out, _ = self._run(
            [str(path), "--to", "same", "--now", "2026-07-14T18:01:00+00:00"], capsys
        )
        assert code == 0
        assert out.strip() == "ZCZC-WXR-SVR-041420+0600-1951800-BORDERLK-"

    def test_unreadable(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "a.xml"
        path.write_bytes(b"<not-cap/>")
        code, _, err = self._run([str(path), "--to", "ipaws"], capsys)
        assert code == 2
        assert "not readable" in err

    def test_same_header_to_cap(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "h.txt"
        path.write_text("EAS: ZCZC-WXR-TOR-026163+0045-1951800-KDTX/NWS-\n")
        code, out, _ = self._run([str(path), "--to", "cap", "--now", "2026-07-14T18:05:00"], capsys)
        assert code == 0
        alert = parse_alert(out.encode())
        assert alert.infos[0].event == "Tornado Warning"

    def test_bad_same_header(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "h.txt"
        path.write_text("ZCZC-garbage")
        code, _, err = self._run([str(path), "--to", "cap"], capsys)
        assert code == 2
        assert "not a SAME header" in err

    def test_edxl_input(
        self, tmp_path: Path, eccc_alert: Callable[..., Alert], capsys: pytest.CaptureFixture[str]
    ) -> None:
        from gateway.translate.edxl import cap_to_edxl  # noqa: PLC0415

        path = tmp_path / "e.xml"
        path.write_bytes(cap_to_edxl(eccc_alert(), version="1.0"))
        code, out, _ = self._run([str(path), "--to", "text", "--budget", "200"], capsys)
        assert code == 0
        assert out.startswith("URGENT Severe Thunderstorm Warning")


class TestCrosswalkFile:
    """A crosswalk file is read once and again only when it changes."""

    def test_reloaded_when_changed(self, us_alert: Callable[..., Alert], tmp_path: Path) -> None:
        import os  # noqa: PLC0415

        path = tmp_path / "cw.csv"
        path.write_text("us_same,sgc\n022071,2466\n", encoding="utf-8")
        alert = us_alert(same_codes=("022071",))
        first = parse_alert(RENDERERS["cap-cp"](alert, {"crosswalk": str(path)}).parts[0])
        path.write_text("us_same,sgc\n022071,2465\n", encoding="utf-8")
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        second = parse_alert(RENDERERS["cap-cp"](alert, {"crosswalk": str(path)}).parts[0])
        code = "profile:CAP-CP:Location:0.3"
        assert first.infos[0].areas[0].geocode_values(code) == ("2466",)
        assert second.infos[0].areas[0].geocode_values(code) == ("2465",)
