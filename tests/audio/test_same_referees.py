"""SAME against independent implementations and real recordings.

multimon-ng decodes what our encoder makes; our decoder decodes minimodem's SAME modulator and
the real recordings of the shared corpus (sameold samples, the dsame NOAA Weather Radio test).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from adapters.eas import same_modem as sm
from tests.audio.conftest import read_wav, write_raw
from tests.helpers import corpus_dir, require_tool

RATE = 22050

# 47 CFR 11.31(e) and the later NWSI 10-1712 / FCC additions (reference standards.md 4.4).
EVENT_CODES = [
    "EAN",
    "EAT",
    "NIC",
    "NPT",
    "RMT",
    "RWT",
    "ADR",
    "AVW",
    "AVA",
    "BZW",
    "CAE",
    "CDW",
    "CEM",
    "CFW",
    "CFA",
    "DSW",
    "EQW",
    "EVI",
    "FRW",
    "FFW",
    "FFA",
    "FFS",
    "FLW",
    "FLA",
    "FLS",
    "HMW",
    "HWW",
    "HWA",
    "HUW",
    "HUA",
    "HLS",
    "LEW",
    "LAE",
    "NMN",
    "TOE",
    "NUW",
    "DMO",
    "RHW",
    "SVR",
    "SVA",
    "SVS",
    "SPW",
    "SMW",
    "SPS",
    "TOR",
    "TOA",
    "TRW",
    "TRA",
    "TSW",
    "TSA",
    "VOW",
    "WSW",
    "WSA",
    "BLU",
    "EWW",
    "SSA",
    "SSW",
    "SQW",
    "FSW",
]
ORIGINATORS = ("EAS", "CIV", "WXR", "PEP")


def many_headers() -> list[str]:
    """Every event code once, with 1 to 31 locations cycling so every count appears."""
    headers = []
    for i, event in enumerate(EVENT_CODES):
        count = i % 31 + 1
        locations = "-".join(
            f"{(i + k) % 10}{(k * 7 + i) % 100:02d}{(k * 37 + i) % 1000:03d}" for k in range(count)
        )
        station = ["KEAX/NWS", "WTSP/TV ", "EC/GC/CA", "TEST    "][i % 4]
        headers.append(
            f"ZCZC-{ORIGINATORS[i % 4]}-{event}-{locations}+{(i % 4 + 1) * 15:04d}-"
            f"{(i * 7) % 366 + 1:03d}{i % 24:02d}{(i * 13) % 60:02d}-{station}-"
        )
    return headers


@pytest.fixture(scope="module")
def many_audio(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, np.ndarray]:
    headers = many_headers()
    pieces = []
    for header in headers:
        pieces.append(sm.encode_bursts(header, RATE))
        pieces.append(np.zeros(RATE))
    x = np.concatenate(pieces)
    path = write_raw(tmp_path_factory.mktemp("same") / "many.raw", x)
    return headers, path, x


class TestMultimonDecodesOurHeaders:
    """multimon-ng -a EAS prints every header our encoder makes (all event codes, 1-31 places)."""

    def test_every_event_code_and_location_count(
        self, many_audio: tuple[list[str], Path, np.ndarray]
    ) -> None:
        headers, path, _ = many_audio
        require_tool("multimon-ng")
        lines = subprocess.run(
            ["multimon-ng", "-q", "-c", "-a", "EAS", "-t", "raw", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout.splitlines()
        decoded = [line.removeprefix("EAS: ") for line in lines if line.startswith("EAS: ZCZC")]
        assert decoded == headers
        assert {len(h.split("+")[0].split("-")) - 3 for h in headers} == set(range(1, 32))

    def test_our_decoder_reads_the_same_audio(
        self, many_audio: tuple[list[str], Path, np.ndarray]
    ) -> None:
        headers, _, x = many_audio
        decoder = sm.SameDecoder(RATE)
        found = []
        for at in range(0, x.size, 65536):
            found += decoder.feed(x[at : at + 65536])
        found += decoder.flush()
        assert [m.text for m in found] == headers

    def test_full_transmission_with_attention_and_eom(self, tmp_path: Path) -> None:
        require_tool("multimon-ng")
        header = "ZCZC-CIV-EVI-036001-036083+0100-0702334-BORDERLN-"
        opts = sm.EncoderOptions(rate=RATE, attention=1.0)
        path = write_raw(tmp_path / "full.raw", np.concatenate(list(sm.encode(header, opts))))
        lines = subprocess.run(
            ["multimon-ng", "-q", "-c", "-a", "EAS", "-t", "raw", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.splitlines()
        assert f"EAS: {header}" in lines
        assert "EAS: NNNN" in lines


class TestWeDecodeMinimodem:
    """minimodem's SAME modulator (--tx same) is read by our decoder.

    minimodem sends the bytes it is given with SAME's framing (8 data bits, LSB first, no
    start or stop bits), so the 0xAB preamble is part of the input; it makes one burst per
    run, and the three bursts are joined with 1 s of silence here.
    """

    @pytest.mark.parametrize("rate", [22050, 48000])
    def test_minimodem_bursts(self, tmp_path: Path, rate: int) -> None:
        binary = require_tool("minimodem")
        header = "ZCZC-WXR-SVR-012079-013019-013027+0130-0462024-N0C4LL  -"
        wav = tmp_path / "mm.wav"
        subprocess.run(
            [binary, "--tx", "same", "-R", str(rate), "-f", str(wav)],
            input=b"\xab" * 16 + header.encode("ascii"),
            check=True,
            timeout=60,
        )
        wav_rate, burst = read_wav(wav)
        assert wav_rate == rate
        gap = np.zeros(rate)
        x = np.concatenate([gap, burst, gap, burst, gap, burst, gap])
        assert [m.text for m in sm.decode(x, rate)] == [header]


def expected_lines(path: Path) -> list[str]:
    return [
        line.rstrip("\n")
        for line in path.read_text(encoding="ascii").splitlines()
        if line.strip() and line.strip() != "+OK"
    ]


class TestRealRecordings:
    """The corpus recordings decode to the headers their sources published."""

    @pytest.mark.parametrize("name", ["npt", "two_and_two", "long_message"])
    def test_sameold_samples(self, name: str) -> None:
        folder = corpus_dir("same")
        data = (folder / f"sameold-{name}.22050.s16le.bin").read_bytes()
        want = expected_lines(folder / f"sameold-{name}.22050.s16le.txt")
        assert [m.text for m in sm.decode(data, 22050)] == want

    @pytest.mark.parametrize("rate", [22050, 44100])
    def test_dsame_weather_radio_recording(self, tmp_path: Path, rate: int) -> None:
        folder = corpus_dir("same")
        sox = require_tool("sox")
        raw = tmp_path / "dsame.raw"
        subprocess.run(
            [
                sox,
                "-V1",
                str(folder / "dsame-WXR-RWT.ogg"),
                "-t",
                "raw",
                "-r",
                str(rate),
                "-e",
                "signed",
                "-b",
                "16",
                "-c",
                "1",
                str(raw),
            ],
            check=True,
            timeout=60,
        )
        want = (folder / "dsame-WXR-RWT.txt").read_text(encoding="ascii").strip()
        messages = sm.decode(raw.read_bytes(), rate)
        assert [m.text for m in messages] == [want, "NNNN"]
        assert messages[0].bursts == 3
