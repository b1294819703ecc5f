"""``borderlink same encode|decode``: files, raw PCM, stdin, and multimon-ng compatible output."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from adapters.eas import same_modem as sm
from adapters.modem.fsk import to_pcm16
from gateway.cli import main
from tests.audio.conftest import read_wav
from tests.helpers import require_tool

HEADER = "ZCZC-EAS-RWT-012057-012081+0030-2780415-WTSP/TV -"


@pytest.fixture(autouse=True)
def _logging_without_cached_streams(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI configures structlog to cache loggers bound to the current stderr; under
    capsys that stream is closed after each test, so tests route logs through the standard
    library instead and leave no cached logger behind."""

    def configure(**_kwargs: object) -> None:
        structlog.configure(
            logger_factory=structlog.stdlib.LoggerFactory(),
            cache_logger_on_first_use=False,
        )

    monkeypatch.setattr("gateway.logging.configure", configure)
    yield
    structlog.reset_defaults()


class TestSameCommand:
    """The command writes decodable audio and prints EAS: lines like multimon-ng."""

    def test_encode_wav_then_decode(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "alert.wav"
        assert main(["same", "encode", HEADER, "-o", str(out), "--attention", "1"]) == 0
        rate, x = read_wav(out)
        assert rate == 22050
        # bursts + gaps, 1 s attention, 0.5 s pause, EOM bursts + gaps
        assert x.size > 22050 * 5
        capsys.readouterr()
        assert main(["same", "decode", str(out)]) == 0
        assert capsys.readouterr().out.splitlines() == [f"EAS: {HEADER}", "EAS: NNNN"]

    def test_encode_raw_at_another_rate_without_eom(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "alert.raw"
        args = ["same", "encode", HEADER, "-o", str(out), "--raw", "--rate", "48000"]
        assert main([*args, "--attention", "0", "--no-eom"]) == 0
        assert out.read_bytes()[:4] != b"RIFF"
        capsys.readouterr()
        assert main(["same", "decode", str(out), "--raw", "--rate", "48000"]) == 0
        assert capsys.readouterr().out.splitlines() == [f"EAS: {HEADER}"]

    def test_decode_from_stdin_like_multimon(self, tmp_path: Path) -> None:
        x = sm.encode_bursts(HEADER, 22050)
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "same", "decode", "-"],
            input=to_pcm16(x),
            capture_output=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert result.returncode == 0
        assert result.stdout.decode().splitlines() == [f"EAS: {HEADER}"]
        # What it decodes is its output; its log says nothing more unless asked.
        assert result.stderr == b""
        asked = subprocess.run(
            [sys.executable, "-m", "gateway", "--log-level", "info", "same", "decode", "-"],
            input=to_pcm16(x),
            capture_output=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert b"same_message_decoded" in asked.stderr

    def test_multimon_reads_the_encoded_wav(self, tmp_path: Path) -> None:
        binary = require_tool("multimon-ng")
        require_tool("sox")
        out = tmp_path / "alert.wav"
        assert main(["same", "encode", HEADER, "-o", str(out), "--attention", "1"]) == 0
        lines = subprocess.run(
            [binary, "-q", "-c", "-a", "EAS", "-t", "wav", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.splitlines()
        assert f"EAS: {HEADER}" in lines

    def test_spoken_message(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        require_tool("espeak-ng")
        out = tmp_path / "spoken.wav"
        args = ["same", "encode", HEADER, "-o", str(out), "--attention", "0"]
        assert main([*args, "--speak", "This is a test of the alert system."]) == 0
        _, with_speech = read_wav(out)
        silent = ["same", "encode", HEADER, "-o", str(tmp_path / "silent.wav")]
        assert main([*silent, "--attention", "0"]) == 0
        _, without = read_wav(tmp_path / "silent.wav")
        assert with_speech.size > without.size + 22050
        capsys.readouterr()
        assert main(["same", "decode", str(out)]) == 0
        assert capsys.readouterr().out.splitlines() == [f"EAS: {HEADER}", "EAS: NNNN"]

    def test_bad_header_and_bad_input_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["same", "encode", "ZCZC-bad", "-o", str(tmp_path / "x.wav")]) == 2
        assert "not a SAME header" in capsys.readouterr().err
        assert main(["same", "decode", str(tmp_path / "missing.wav")]) == 2
        assert "missing.wav" in capsys.readouterr().err
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
        assert main(["same", "decode", str(broken)]) == 2
        assert main(["same", "encode", HEADER, "-o", str(tmp_path), "--attention", "0"]) == 2

    @pytest.mark.parametrize(
        ("head", "said"),
        [
            (b"OggS\x00\x02" + b"\x00" * 50, "Ogg audio is not read here"),
            (b"fLaC\x00\x00\x00\x22" + b"\x00" * 50, "FLAC audio is not read here"),
            (b"ID3\x04\x00" + b"\x00" * 50, "MP3 audio is not read here"),
            (b"", "the file is empty"),
            (b"\x01\x02\x03" * 100, "not a WAV file; give --raw"),
        ],
    )
    def test_unreadable_audio_is_an_error_not_silence(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], head: bytes, said: str
    ) -> None:
        """An OGG recording used to print nothing and exit 0, as if it held no header."""
        path = tmp_path / "recording"
        path.write_bytes(head)
        assert main(["same", "decode", str(path)]) == 2
        assert said in capsys.readouterr().err
