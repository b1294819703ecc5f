"""HDLC framing and the Bell 202 AFSK1200 modem, against multimon-ng and direwolf."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.afsk import afsk1200, hdlc
from adapters.afsk.fsk import FskModulator
from adapters.afsk.ptt import NoPtt, SerialPtt, keyed
from adapters.kiss.ax25 import Frame
from gateway.errors import AdapterConnectionError, ConfigError, FrameError
from gateway.metrics import INPUT_REJECTED
from tests.audio.conftest import add_noise, read_wav, write_raw, write_wav
from tests.helpers import require_tool


def ax25(text: str) -> bytes:
    return Frame.parse_monitor(text).to_bytes()


FRAMES = [
    ax25("VE3XYZ-7>APRS,WIDE1-1,WIDE2-1:>borderlink test 1"),
    ax25("KB1ABC>BEACON::BLN1     :Tornado warning Essex County until 1600"),
    ax25("N0CALL-15>APZBLK:!4237.14N/07120.83W#" + "x" * 150),
]


class TestHdlcPrimitives:
    """FCS, bit stuffing and NRZI follow AX.25 / ISO 3309."""

    def test_fcs_golden_vector(self) -> None:
        # CRC-16/X-25 check value of "123456789" is 0x906E (sent low byte first).
        assert hdlc.fcs(b"123456789") == bytes([0x6E, 0x90])
        assert hdlc.check_fcs(b"123456789" + hdlc.fcs(b"123456789"))
        assert not hdlc.check_fcs(b"123456780" + hdlc.fcs(b"123456789"))

    def test_bit_stuffing_inserts_a_zero_after_five_ones(self) -> None:
        assert hdlc.stuff([1] * 5) == [1, 1, 1, 1, 1, 0]
        assert hdlc.stuff([1] * 12) == [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1]
        assert hdlc.stuff([1, 1, 0, 1, 1, 1]) == [1, 1, 0, 1, 1, 1]

    def test_frame_bits_have_flags_and_no_six_ones_inside(self) -> None:
        bits = hdlc.frame_bits(b"\xff" * 20, leading_flags=2, trailing_flags=1).tolist()
        flag = [0, 1, 1, 1, 1, 1, 1, 0]
        assert bits[:16] == flag * 2
        assert bits[-8:] == flag
        body = "".join(map(str, bits[16:-8]))
        assert "111111" not in body

    def test_nrzi_zero_toggles_one_keeps(self) -> None:
        levels, last = hdlc.nrzi_encode(np.array([1, 0, 0, 1, 1, 0], dtype=np.int8), level=1)
        assert levels.tolist() == [1, 0, 1, 1, 1, 0]
        assert last == 0

    def test_framing_limits(self) -> None:
        with pytest.raises(hdlc.HdlcError):
            hdlc.frame_bits(b"")
        with pytest.raises(hdlc.HdlcError):
            hdlc.frame_bits(b"x" * (hdlc.MAX_FRAME + 1))
        assert issubclass(hdlc.HdlcError, FrameError)


def deframe(bits: list[int]) -> list[bytes]:
    return [f.data for f in hdlc.HdlcDecoder().feed(bits)]


class TestHdlcDecoder:
    """The deframer finds good frames in any bit stream and drops the rest."""

    def test_round_trip_bit_by_bit(self) -> None:
        decoder = hdlc.HdlcDecoder()
        out = []
        for frame in FRAMES:
            for bit in hdlc.frame_bits(frame).tolist():
                out += decoder.feed([bit])
        assert [f.data for f in out] == FRAMES

    def test_garbage_prefix_and_bad_fcs_is_counted(self) -> None:
        rng = np.random.default_rng(1)
        garbage = rng.integers(0, 2, 2000).tolist()
        good = hdlc.frame_bits(FRAMES[0]).tolist()
        bad = hdlc.frame_bits(FRAMES[1]).tolist()
        bad[100] ^= 1
        before = INPUT_REJECTED.value(component="hdlc", reason="bad_fcs")
        assert deframe(garbage + bad + good) == [FRAMES[0]]
        assert INPUT_REJECTED.value(component="hdlc", reason="bad_fcs") >= before + 1

    def test_abort_drops_the_frame(self) -> None:
        bits = hdlc.frame_bits(FRAMES[0]).tolist()
        aborted = [*bits[:200], 1, 1, 1, 1, 1, 1, 1, *bits[-8:]]
        assert deframe(aborted) == []

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 1), max_size=4000))
    def test_random_bits_never_raise_and_only_yield_checked_frames(self, bits: list[int]) -> None:
        for frame in hdlc.HdlcDecoder().feed(bits):
            assert hdlc.check_fcs(frame.data + hdlc.fcs(frame.data))

    @settings(max_examples=40, deadline=None)
    @given(st.binary(min_size=15, max_size=300))
    def test_any_frame_round_trips(self, data: bytes) -> None:
        assert deframe(hdlc.frame_bits(data).tolist()) == [data]


def our_audio(rate: int, frames: list[bytes] = FRAMES) -> np.ndarray:
    pieces = []
    for frame in frames:
        pieces += [afsk1200.modulate([frame], rate), np.zeros(rate // 3)]
    return np.concatenate(pieces)


class TestAfskRoundTrip:
    """Our demodulator reads our modulator at the usual sound-card rates and impairments."""

    @pytest.mark.parametrize("rate", [22050, 44100, 48000])
    def test_round_trip(self, rate: int) -> None:
        demod = afsk1200.Afsk1200Demodulator(rate)
        assert [f.data for f in demod.feed(our_audio(rate))] == FRAMES

    def test_chunked_int16_input(self) -> None:
        x = (our_audio(44100) * 32767).astype(np.int16)
        demod = afsk1200.Afsk1200Demodulator(44100)
        out = []
        for at in range(0, x.size, 777):
            out += demod.feed(x[at : at + 777])
        assert [f.data for f in out] == FRAMES

    def test_noise_and_clock_error(self) -> None:
        x = our_audio(round(44100 * 1.01))  # 1 % fast sound card
        demod = afsk1200.Afsk1200Demodulator(44100)
        assert [f.data for f in demod.feed(add_noise(x, 8.0, seed=2))] == FRAMES

    def test_several_frames_in_one_transmission(self) -> None:
        x = afsk1200.modulate(FRAMES, 44100)
        assert [f.data for f in afsk1200.Afsk1200Demodulator(44100).feed(x)] == FRAMES

    def test_repair_recovers_a_frame_with_one_weak_wrong_bit(self) -> None:
        rate = 44100
        bits = hdlc.frame_bits(FRAMES[0], leading_flags=30)
        levels, _ = hdlc.nrzi_encode(bits)
        wrong = levels.copy()
        target = 30 * 8 + 300
        wrong[target] ^= 1

        def audio(lv: np.ndarray) -> np.ndarray:
            return FskModulator(
                rate, mark=Fraction(1200), space=Fraction(2200), baud=Fraction(1200)
            ).modulate(lv)

        good, bad = audio(levels), audio(wrong)
        spb = rate / 1200
        a, b = int(target * spb), int((target + 1) * spb)
        x = good.copy()
        # In that one bit the wrong tone is slightly stronger: a weak, wrong decision.
        x[a:b] = 0.35 * good[a:b] + 0.65 * bad[a:b]
        x = np.concatenate([np.zeros(1000), x, np.zeros(1000)])
        assert afsk1200.Afsk1200Demodulator(rate).feed(x) == []
        fixer = afsk1200.Afsk1200Demodulator(rate, repair=8)
        fixed = fixer.feed(x)
        assert [(f.data, f.repaired) for f in fixed] == [(FRAMES[0], 1)]
        assert fixer.repaired == 1

    def test_repair_never_invents_frames_from_noise(self) -> None:
        rng = np.random.default_rng(9)
        demod = afsk1200.Afsk1200Demodulator(44100, repair=8)
        assert demod.feed(rng.normal(0, 0.3, 44100 * 20)) == []


class TestAfskReferees:
    """multimon-ng and direwolf's atest decode our audio; we decode direwolf's gen_packets."""

    def test_multimon_decodes_our_frames(self, tmp_path: Path) -> None:
        require_tool("multimon-ng")
        path = write_raw(tmp_path / "afsk.raw", our_audio(22050))
        out = subprocess.run(
            ["multimon-ng", "-q", "-c", "-A", "-a", "AFSK1200", "-t", "raw", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        got = [line.removeprefix("APRS: ") for line in out.splitlines() if "APRS: " in line]
        assert got == [str(Frame.from_bytes(f)) for f in FRAMES]

    def test_atest_decodes_our_frames(self, tmp_path: Path) -> None:
        atest = require_tool("atest")
        path = write_wav(tmp_path / "afsk.wav", our_audio(44100), 44100)
        out = subprocess.run(
            [atest, str(path)], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        clean = re.sub(r"\x1b\[[0-9;]*m", "", out)
        assert f"{len(FRAMES)} packets decoded" in clean
        for frame in FRAMES:
            assert str(Frame.from_bytes(frame)) in clean

    def test_we_decode_gen_packets(self, tmp_path: Path) -> None:
        gen = require_tool("gen_packets")
        path = tmp_path / "gen.wav"
        monitor = tmp_path / "frames.txt"
        lines = [
            "W1AW>APRS,WIDE2-1:>Hello from gen_packets",
            "VE3ABC-9>APDW16:!4500.00N/07500.00W-Ottawa",
            "K1ABC>APRS::BLN2     :Flood watch in effect",
        ]
        monitor.write_text("\n".join(lines) + "\n", encoding="ascii")
        subprocess.run(
            [gen, "-r", "44100", "-o", str(path), str(monitor)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        rate, x = read_wav(path)
        demod = afsk1200.Afsk1200Demodulator(rate)
        frames = demod.feed(x) + demod.flush()
        # gen_packets keeps the line end of its input in the info field.
        assert [str(Frame.from_bytes(f.data)).rstrip("\r\n") for f in frames] == lines


class TestPtt:
    """PTT drives RTS or DTR and is always released."""

    def test_rts_keys_and_releases(self) -> None:
        ptt = SerialPtt("loop://", line="rts")
        assert ptt.port.cts is False  # loop:// wires RTS to CTS
        with keyed(ptt):
            assert ptt.port.cts is True
            assert ptt.keyed_now
        assert ptt.port.cts is False
        ptt.close()

    def test_inverted_dtr_released_on_error(self) -> None:
        ptt = SerialPtt("loop://", line="dtr", invert=True)
        assert ptt.port.dsr is True  # idle = high when inverted
        seen: list[bool] = []

        def transmit() -> None:
            with keyed(ptt):
                seen.append(ptt.port.dsr)
                raise RuntimeError("sound card failed")

        with pytest.raises(RuntimeError):
            transmit()
        assert seen == [False]
        assert ptt.port.dsr is True
        ptt.close()

    def test_watchdog_and_limits(self) -> None:
        now = [0.0]
        ptt = SerialPtt("loop://", max_seconds=5.0, monotonic=lambda: now[0])
        ptt.key()
        now[0] = 6.0
        ptt.check_watchdog()
        assert not ptt.keyed_now
        assert ptt.port.cts is False
        with pytest.raises(ValueError, match="PTT limit"), keyed(NoPtt(), seconds=90, limit=60):
            pass

    def test_bad_configuration(self) -> None:
        with pytest.raises(ConfigError):
            SerialPtt("loop://", line="cts")  # type: ignore[arg-type]
        with pytest.raises(AdapterConnectionError):
            SerialPtt("/nonexistent/ttyUSB9")


class TestAfskBounds:
    """Hours of noise keep the receiver's memory bounded."""

    def test_noise_without_flags(self) -> None:
        demod = afsk1200.Afsk1200Demodulator(22050, repair=4)
        rng = np.random.default_rng(4)
        for _ in range(20):
            # A steady mark tone: no transitions, so no flag ever appears.
            demod.feed(0.5 * np.sin(2 * np.pi * 1200 * np.arange(22050) / 22050))
            demod.feed(rng.normal(0, 0.01, 100))
        assert demod.held_bits <= afsk1200._MAX_CANDIDATE_BITS
