"""Every command as a script runs it: a subprocess on a real file, its output (``--json``
parsed and its fields read), its exit code, and an error that says what and where. Every
``--help`` ends with its exit codes, in words a terminal shows as they are.

The commands that need a running gateway (``alerts``, ``watch``) or a peer (``tcp``,
``loopback``) are run the same way beside their daemon or simulator, in tests/daemon and
tests/radio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cap_schemas.validate import PROFILES
from gateway.cli import build_parser
from gateway.commands import CONVENTION, _fill, exit_codes, plain
from gateway.commands.validate import PROFILES as VALIDATE_PROFILES
from tests.helpers import corpus_dir, free_port

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "hardware" / "feed_alerts"
TORNADO = ALERTS / "naad" / "eccc-tornado-warning-on.xml"  # bilingual CAP-CP, unsigned
DEMO = ROOT / "config" / "demo.toml"
HEADER = "ZCZC-WXR-TOR-048439+0045-1231200-KFWD/NWS-"
SIM_NAAD = (sys.executable, "-m", "gateway", "sim", "naad", "--heartbeat", "0")


def borderlink(
    *argv: str, stdin: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``borderlink ARGV`` as a script runs it, from the repository's root."""
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        return subprocess.run(  # noqa: PLW1510 - the exit status is asserted
            [sys.executable, "-m", "gateway", *argv],
            stdin=source,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command line that has a --help: the commands, their actions and kinds."""
    yield path
    for action in parser._actions:  # argparse keeps its sub-commands among its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


EVERY_HELP = sorted(_commands(build_parser()))


def _codes(help_text: str) -> list[str]:
    """The lines after 'exit codes:' (a code's further lines are indented deeper)."""
    return help_text.split("\nexit codes:\n", 1)[1].splitlines()


class TestHelp:
    """Each --help ends with the exit codes of its command, one a line, in plain words."""

    @pytest.mark.parametrize("path", EVERY_HELP, ids=lambda p: " ".join(p) or "borderlink")
    def test_every_help_lists_its_exit_codes(self, path: tuple[str, ...]) -> None:
        done = borderlink(*path, "--help")
        assert done.returncode == 0, done.stderr
        help_text = done.stdout
        listed = [line.split()[0] for line in _codes(help_text) if line[:3].strip()]
        assert listed[0] == "0"
        assert {int(code) for code in listed} <= set(CONVENTION)
        for markup in ("``", ":mod:", ":class:", ":func:", ":data:"):
            assert markup not in help_text, (path, markup)

    def test_top_level_help_gives_the_convention(self) -> None:
        out = borderlink("--help").stdout
        assert "lists its exit codes" in " ".join(out.split())
        assert [line.split()[0] for line in _codes(out) if line[:3].strip()] == ["0", "1", "2"]

    def test_plain_words_and_lists_kept_whole(self) -> None:
        text = "``--json`` is :mod:`hardware.rf_channel`'s, :class:`~gateway.errors.ConfigError`"
        assert plain(text) == "'--json' is rf_channel's, ConfigError"
        lines = _fill(exit_codes({0: "done " * 12, 2: "not"}), 40, "").splitlines()
        assert lines[0] == "exit codes:"
        assert lines[1].startswith("  0  done done")
        assert lines[2].startswith("     done")  # under the meaning, not under the code
        assert lines[-1] == "  2  not"
        assert _fill("a\nrunning   text", 40, "  ") == "  a running text"

    def test_validate_offers_the_profiles_of_the_library(self) -> None:
        assert VALIDATE_PROFILES == PROFILES


class TestValidate:
    """validate: 0 valid, 1 invalid with rule and XPath, 2 unreadable naming the file."""

    def test_valid_file_as_text_and_json(self) -> None:
        done = borderlink("validate", str(TORNADO))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{TORNADO}: valid (profile cap-cp, CAP 1.2;")
        done = borderlink("validate", "--json", str(TORNADO))
        assert done.returncode == 0, done.stderr
        [result] = json.loads(done.stdout)
        assert result["status"] == "valid"
        assert result["profile"] == "cap-cp"
        assert result["key"].startswith("cap-pac@canada.ca,urn:oid:2.49.0.1.124.1877240121.2025,")
        assert {f["severity"] for f in result["findings"]} <= {"warning", "info"}

    def test_invalid_and_missing_files(self, tmp_path: Path) -> None:
        broken = tmp_path / "space-in-identifier.xml"
        broken.write_bytes(TORNADO.read_bytes().replace(b"urn:oid:2.49", b"urn:oid 2.49", 1))
        done = borderlink("validate", "--json", str(broken))
        assert done.returncode == 1
        [result] = json.loads(done.stdout)
        errors = [f for f in result["findings"] if f["severity"] == "error"]
        assert ("cap.identifier", "/alert/identifier") in {(f["rule"], f["xpath"]) for f in errors}
        missing = tmp_path / "nowhere.xml"
        done = borderlink("validate", str(broken), str(missing))
        assert done.returncode == 2
        assert f"{missing}: UNREADABLE: cannot read the file" in done.stdout


def tornado_for(tmp_path: Path, *sgc: str, polygon: str = "") -> Path:
    """The ECCC tornado warning with its first area's geocodes replaced by ``sgc`` codes
    (and its polygon by ``polygon``)."""
    source = TORNADO.read_text(encoding="utf-8")
    start, end = source.index("<area>"), source.index("</area>") + len("</area>")
    geocodes = "".join(
        f"<geocode><valueName>profile:CAP-CP:Location:0.3</valueName><value>{code}</value>"
        "</geocode>"
        for code in sgc
    )
    shape = f"<polygon>{polygon}</polygon>" if polygon else ""
    area = f"<area><areaDesc>{' - '.join(sgc) or 'shape'}</areaDesc>{shape}{geocodes}</area>"
    path = tmp_path / "tornado.xml"
    path.write_text(source[:start] + area + source[end:], encoding="utf-8")
    return path


class TestInspect:
    """inspect: the facts as text or one JSON object; 2 for a file or anchor it cannot read."""

    def test_text_and_json_tell_the_same_story(self) -> None:
        text = borderlink("inspect", str(TORNADO))
        assert text.returncode == 0, text.stderr
        assert "languages:  en-CA, fr-CA" in text.stdout
        assert "source:     Env. Can. - Storm Prediction Centre - Ontario" in text.stdout
        done = borderlink("inspect", "--json", str(TORNADO))
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert seen["file"] == str(TORNADO)
        assert (seen["sender"], seen["identifier"], seen["msg_type"]) == (
            "cap-pac@canada.ca",
            "urn:oid:2.49.0.1.124.1877240121.2025",
            "Alert",
        )
        assert seen["sent"] == "2025-07-14T19:42:10-00:00"
        assert seen["languages"] == ["en-CA", "fr-CA"]
        assert (seen["version"], seen["profile"], seen["country"]) == ("1.2", "cap-cp", "ca")
        english, french = seen["infos"]
        assert (english["event"], french["event"]) == ("tornado", "tornade")
        assert english["event_codes"]["SAME"] == ["TOR"]
        assert english["categories"] == ["Met"]
        assert english["response_types"] == ["Shelter"]
        assert english["expires"] == "2025-07-14T20:42:10-00:00"
        assert english["areas"][0]["desc"] == "Prescott and Russell"
        assert seen["signatures"]["count"] == 0
        assert seen["signatures"]["state"] == "unsigned"
        assert seen["provenance"] == {
            "trust": "anonymous",
            "source": "Env. Can. - Storm Prediction Centre - Ontario",
            "note": None,
            "incidents": None,
        }
        assert seen["validation"]["valid"] is True
        severities = [f["severity"] for f in seen["validation"]["findings"]]
        assert seen["validation"]["warnings"] == severities.count("warning") == 2
        assert "validation: valid under cap-cp (0 error(s), 2 warning(s))" in text.stdout

    def test_each_location_code_with_its_area(self, tmp_path: Path) -> None:
        # Sidney (5917010) is mapped to all of British Columbia; Surrey (5915004) to its
        # division's forecast regions.
        path = tornado_for(tmp_path, "5917010", "5915004")
        seen = json.loads(borderlink("inspect", "--json", str(path)).stdout)
        canada = seen["infos"][0]["locations"]["CA"]
        assert canada[0] == {
            "code": "080000",
            "area": "British Columbia",
            "kind": "whole province or territory",
            "scale": "province",
            "from": "SGC 5917010 Sidney (census subdivision)",
            "widens": True,
        }
        assert [c["code"] for c in canada[1:]] == ["081200", "081300", "081400", "081500", "082600"]
        assert all(not c["widens"] for c in canada[1:])
        assert canada[2]["from"] == (
            "SGC 5915004 Surrey (census subdivision, through its census division 5915)"
        )
        # the counties facing Greater Vancouver and Capital across the border (the crosswalk)
        assert [c["code"] for c in seen["infos"][0]["locations"]["US"]] == [
            "053009",
            "053055",
            "053073",
        ]
        text = borderlink("inspect", str(path)).stdout
        assert (
            "  SAME CA 080000: British Columbia (whole province or territory) from SGC 5917010"
            ' Sidney (census subdivision) -- WIDENS the alert: refused unless the route says'
            ' widen = "province"'
        ) in text
        assert (
            "  SAME US 053009: Clallam County, Washington (county) from SGC 5917010 Sidney"
            " (census subdivision) through the crosswalk"
        ) in text

    def test_a_polygon_only_area_shows_the_zones_it_reaches(self, tmp_path: Path) -> None:
        # No geocode; a polygon around Windsor's reference point.
        windsor = "42.25,-83.05 42.25,-82.93 42.33,-82.93 42.33,-83.05 42.25,-83.05"
        path = tornado_for(tmp_path, polygon=windsor)
        seen = json.loads(borderlink("inspect", "--json", str(path)).stdout)
        assert seen["infos"][0]["locations"]["CA"][0] == {
            "code": "041420",
            "area": "Essex",
            "kind": "forecast region",
            "scale": "division",
            "from": "the alert's polygon, which contains the reference point of SGC 3537039"
            " Windsor (census subdivision)",
            "widens": False,
        }
        text = borderlink("inspect", str(path)).stdout
        assert (
            "  SAME CA 041420: Essex (forecast region) from the alert's polygon, which contains"
            " the reference point of SGC 3537039 Windsor (census subdivision)\n"
        ) in text

    def test_unreadable_file_or_anchor_is_2_and_named(self, tmp_path: Path) -> None:
        missing = tmp_path / "nowhere.xml"
        done = borderlink("inspect", "--json", str(missing))
        assert done.returncode == 2
        assert done.stdout == ""
        assert f"{missing}: cannot read the file" in done.stderr
        anchor = tmp_path / "nowhere.pem"
        done = borderlink("inspect", "--trust", str(anchor), str(TORNADO))
        assert done.returncode == 2
        assert f"trust anchor file '{anchor}' cannot be read" in done.stderr


class TestTranslate:
    """translate: 0 translated, 1 an alert the target cannot express, 2 a bad option value."""

    def test_same_header_then_back_to_cap(self, tmp_path: Path) -> None:
        done = borderlink("translate", str(TORNADO), "--to", "same", "--now", "2025-07-14T19:45")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().startswith("ZCZC-")
        header = tmp_path / "header.txt"
        header.write_text(done.stdout)
        back = borderlink("translate", str(header), "--to", "cap", "--now", "2025-07-14T19:45")
        assert back.returncode == 0, back.stderr
        assert "<event>Tornado Warning</event>" in back.stdout

    def test_expired_is_1_and_a_bad_option_is_2(self) -> None:
        expired = borderlink("translate", str(TORNADO), "--to", "same")
        assert expired.returncode == 1
        assert "no SAME header: expired" in expired.stderr
        bad = borderlink("translate", str(TORNADO), "--to", "ipaws", "--timezone", "Nowhere/X")
        assert bad.returncode == 2
        assert f"{TORNADO}: " in bad.stderr
        assert "timezone 'Nowhere/X' is not an IANA zone name" in bad.stderr

    def test_widening_is_1_with_the_reason_unless_widen_province(self, tmp_path: Path) -> None:
        path = tornado_for(tmp_path, "5917010")  # Sidney, BC: the table says all of BC
        now = ("--now", "2025-07-14T19:45", "--country", "CA")
        refused = borderlink("translate", str(path), "--to", "same", *now)
        assert refused.returncode == 1
        assert "080000 British Columbia (whole province or territory)" in refused.stderr
        assert 'widen = "province"' in refused.stderr
        done = borderlink("translate", str(path), "--to", "same", *now, "--widen", "province")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ZCZC-WXR-TOR-080000+")

    @pytest.mark.parametrize(("choice", "headers"), [(None, 2), ("split", 2), ("first", 1)])
    def test_over_31_places(self, tmp_path: Path, choice: str | None, headers: int) -> None:
        source = TORNADO.read_text(encoding="utf-8")
        start, end = source.index("<area>"), source.index("</area>") + len("</area>")
        counties = [f"026{n:03d}" for n in range(1, 67, 2)]  # 33 Michigan counties
        geocodes = "".join(
            f"<geocode><valueName>SAME</valueName><value>{c}</value></geocode>" for c in counties
        )
        path = tmp_path / "wide.xml"
        area = f"<area><areaDesc>Michigan</areaDesc>{geocodes}</area>"
        path.write_text(source[:start] + area + source[end:], encoding="utf-8")
        extra = ("--over-31", choice) if choice else ()
        done = borderlink(
            "translate", str(path), "--to", "same", "--now", "2025-07-14T19:45", *extra
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.split()
        assert len(lines) == headers
        aired = [c for line in lines for c in line.split("+")[0].split("-")[3:]]
        assert aired == (counties if headers == 2 else counties[:31])


class TestCheckConfig:
    """check-config --json: one object, valid or not, each error with its place."""

    def test_demo_is_valid(self) -> None:
        done = borderlink("check-config", "--json", str(DEMO))
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert seen["valid"] is True
        assert seen["errors"] == []
        assert seen["counts"]["sources"] >= 1
        assert set(seen["counts"]) == {"sources", "sinks", "routes", "simulators"}

    def test_error_names_its_place(self, tmp_path: Path) -> None:
        config = tmp_path / "demo.toml"
        text = DEMO.read_text(encoding="utf-8")
        config.write_text(text.replace('sinks = ["mqtt-cap", "mqtt-json"]', 'sinks = ["ghost"]', 1))
        done = borderlink("check-config", "--json", str(config))
        assert done.returncode == 2
        seen = json.loads(done.stdout)
        assert (seen["valid"], seen["counts"]) == (False, None)
        [error] = seen["errors"]
        assert error["place"] == 'route #1 "everything".sinks'
        assert error["variable"] is None
        assert error["message"].startswith("no sink named 'ghost'; defined: ")
        assert error["text"] == f"{config}: {error['place']}: {error['message']}"
        text_done = borderlink("check-config", str(config))
        assert (text_done.returncode, text_done.stdout) == (2, "")
        assert f"borderlink: {error['text']}" in text_done.stderr

    def test_a_variable_and_an_unreadable_file(self, tmp_path: Path) -> None:
        done = borderlink(
            "check-config", "--json", str(DEMO), env={"BORDERLINK_HTTP__PORT": "eighty"}
        )
        assert done.returncode == 2
        [error] = json.loads(done.stdout)["errors"]
        assert (error["place"], error["variable"]) == ("http.port", "BORDERLINK_HTTP__PORT")
        assert error["message"] == "must be an integer, got 'eighty'"
        missing = tmp_path / "nowhere.toml"
        done = borderlink("check-config", "--json", str(missing))
        assert done.returncode == 2
        [error] = json.loads(done.stdout)["errors"]
        assert error["place"] is None
        assert error["message"] == "cannot read: No such file or directory"


class TestSame:
    """same encode writes audio; same decode --json gives each header's fields."""

    def test_encode_then_decode_as_json(self, tmp_path: Path) -> None:
        wav = tmp_path / "tor.wav"
        done = borderlink("same", "encode", HEADER, "-o", str(wav), "--attention", "1")
        assert done.returncode == 0, done.stderr
        done = borderlink("same", "decode", "--json", str(wav))
        assert done.returncode == 0, done.stderr
        header, eom = (json.loads(line) for line in done.stdout.splitlines())
        assert header["kind"] == "header"
        assert header["raw"] == HEADER
        assert (header["originator"], header["event"], header["station"]) == (
            "WXR",
            "TOR",
            "KFWD/NWS",
        )
        assert header["locations"] == ["048439"]
        assert header["duration_minutes"] == 45
        assert header["issued"].endswith("T12:00:00-00:00")
        assert header["expires"].endswith("T12:45:00-00:00")
        assert header["bursts"] == 3
        assert header["error"] is None
        assert 0 <= header["seconds"] < eom["seconds"]
        assert (eom["kind"], eom["raw"], eom["event"]) == ("eom", "NNNN", None)
        assert set(eom) == set(header)

    def test_header_heard_but_not_valid_says_why(self) -> None:
        recording = corpus_dir("same") / "sameold-long_message.22050.s16le.bin"
        done = borderlink("same", "decode", "--json", "--raw", "--rate", "22050", str(recording))
        assert done.returncode == 0, done.stderr
        [header] = [json.loads(line) for line in done.stdout.splitlines()]
        assert header["raw"].startswith("ZCZC-EAS-DMO-")
        assert header["event"] is None
        assert "issue time '0001122' is out of range" in header["error"]

    def test_errors_are_2_and_named(self, tmp_path: Path) -> None:
        missing = tmp_path / "nowhere.wav"
        done = borderlink("same", "decode", "--json", str(missing))
        assert done.returncode == 2
        [line] = done.stdout.splitlines()
        failure = json.loads(line)
        assert failure["kind"] == "error"
        assert str(missing) in failure["error"]
        assert f"borderlink same decode: {missing}" in done.stderr
        done = borderlink("same", "encode", "ZCZC-bad", "-o", str(tmp_path / "x.wav"))
        assert done.returncode == 2
        assert "not a SAME header" in done.stderr


class TestRun:
    """run: 2 for a refused configuration (its key path named), 1 when it cannot start."""

    def test_refused_configuration_names_the_key(self, tmp_path: Path) -> None:
        config = tmp_path / "demo.toml"
        config.write_text(
            DEMO.read_text(encoding="utf-8").replace("drain_timeout = 10", "drain_timeout = -1")
        )
        done = borderlink("run", str(config))
        assert done.returncode == 2
        assert f"borderlink: {config}: gateway.drain_timeout: must be at least" in done.stderr

    def test_taken_port_is_1_with_the_address_and_no_traceback(self, tmp_path: Path) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            config = tmp_path / "gateway.toml"
            config.write_text(
                f'[gateway]\ndata_dir = "{tmp_path}"\n[mqtt]\nenabled = false\n'
                f'[http]\nhost = "127.0.0.1"\nport = {port}\n'
            )
            done = borderlink("run", str(config))
        assert done.returncode == 1
        assert f"('127.0.0.1', {port})" in done.stderr
        assert "Traceback" not in done.stderr


class TestMqttPasswd:
    """mqtt-passwd reads the password from standard input (here a file)."""

    def test_account_line_from_a_password_file(self, tmp_path: Path) -> None:
        secret = tmp_path / "password"
        secret.write_text("s3cret\n")
        done = borderlink("mqtt-passwd", "unit-9", stdin=secret)
        assert done.returncode == 0, done.stderr
        name, _, stored = done.stdout.strip().partition(":")
        assert name == "unit-9"
        assert stored.startswith("scrypt$")

    def test_bad_name_and_empty_password_are_2(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty"
        empty.write_text("")
        done = borderlink("mqtt-passwd", "unit-9", stdin=empty)
        assert done.returncode == 2
        assert "no password on standard input" in done.stderr
        done = borderlink("mqtt-passwd", "bad name", stdin=empty)
        assert done.returncode == 2
        assert "'bad name': 1-64 letters" in done.stderr


def _first_line(proc: subprocess.Popen[str], within: float = 30.0) -> str:
    """The first line a simulator prints, waited for up to ``within`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                return proc.stdout.readline()
    msg = f"no line from {proc.args!r} in {within} s"
    raise TimeoutError(msg)


class TestSim:
    """sim: a JSON line with the ports, 0 on SIGTERM or SIGINT, 2 on a port it cannot take."""

    @pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
    def test_naad_replays_a_folder_and_stops_cleanly(self, stop: signal.Signals) -> None:
        proc = subprocess.Popen(
            [*SIM_NAAD, "--alerts", str(ALERTS / "naad"), "--port", "0", "--archive-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            ready = json.loads(_first_line(proc))
            assert ready["alerts"] == len(list((ALERTS / "naad").glob("*.xml")))
            [stream] = ready["streams"]
            host, port = stream.removeprefix("tcp://").split(":")
            with socket.create_connection((host, int(port)), timeout=5):
                pass
        finally:
            proc.send_signal(stop)
            code = proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        assert code == 0

    @pytest.mark.parametrize(
        "argv",
        [
            ("naad", "--port"),
            ("ipaws", "--port"),
            ("nws", "--port"),
            ("endec", "--port"),
            ("tnc", "--loopback", "--tcp"),
            ("raw", "--tcp"),
        ],
    )
    def test_a_taken_port_is_2_and_named(self, argv: tuple[str, ...]) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            where = f"127.0.0.1:{port}" if argv[-1] == "--tcp" else str(port)
            done = borderlink("sim", *argv, where)
        assert done.returncode == 2
        assert done.stderr.startswith(f"borderlink sim {argv[0]}: ")
        assert f"('127.0.0.1', {port})" in done.stderr
        assert "Traceback" not in done.stderr

    def test_an_unreadable_folder_is_2_and_named(self, tmp_path: Path) -> None:
        missing = tmp_path / "nowhere"
        done = borderlink("sim", "ipaws", "--alerts", str(missing), "--port", str(free_port()))
        assert done.returncode == 2
        assert str(missing) in done.stderr
