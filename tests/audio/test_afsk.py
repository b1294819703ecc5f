"""HDLC framing and the Bell 202 AFSK1200 modem, against multimon-ng and direwolf."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.afsk import afsk1200
from adapters.afsk.ptt import NoPtt, SerialPtt, keyed
from adapters.kiss.ax25 import Frame
from adapters.modem import hdlc
from adapters.modem.fsk import FskDemodulator, FskModulator, SpectralLineClock
from gateway.errors import AdapterConnectionError, ConfigError, FrameError, Rejections
from gateway.metrics import INPUT_REJECTED, count_rejections
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
        decoder = hdlc.HdlcDecoder()
        assert [f.data for f in decoder.feed(garbage + bad + good)] == [FRAMES[0]]
        # The codec reports; it does not count (its owner does, with count_rejections).
        assert decoder.rejections.total["hdlc", "bad_fcs"] >= 1
        assert INPUT_REJECTED.value(component="hdlc", reason="bad_fcs") == before
        count_rejections(decoder.rejections)
        assert INPUT_REJECTED.value(component="hdlc", reason="bad_fcs") >= before + 1
        quiet = hdlc.HdlcDecoder(count=False)
        assert [f.data for f in quiet.feed(bad + good)] == [FRAMES[0]]
        assert quiet.bad_fcs == 1
        assert not quiet.rejections.total

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
        # In that one bit the wrong tone is far stronger: a wrong decision (sequence
        # detection still hears the right tone, phase-continuous with its neighbours, when
        # it has a third of the power, so the wrong one takes nine tenths of the amplitude).
        x[a:b] = 0.1 * good[a:b] + 0.9 * bad[a:b]
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


def lines(ptt: SerialPtt) -> Any:
    """The port's modem lines (a loop:// port, whose stubs do not declare cts and dsr)."""
    return ptt.port


class TestPtt:
    """PTT drives RTS or DTR and is always released."""

    def test_rts_keys_and_releases(self) -> None:
        ptt = SerialPtt("loop://", line="rts")
        assert lines(ptt).cts is False  # loop:// wires RTS to CTS
        with keyed(ptt):
            assert lines(ptt).cts is True
            assert ptt.keyed_now
        assert lines(ptt).cts is False
        ptt.close()

    def test_inverted_dtr_released_on_error(self) -> None:
        ptt = SerialPtt("loop://", line="dtr", invert=True)
        assert lines(ptt).dsr is True  # idle = high when inverted
        seen: list[bool] = []

        def transmit() -> None:
            with keyed(ptt):
                seen.append(lines(ptt).dsr)
                raise RuntimeError("sound card failed")

        with pytest.raises(RuntimeError):
            transmit()
        assert seen == [False]
        assert lines(ptt).dsr is True
        ptt.close()

    def test_watchdog_and_limits(self) -> None:
        now = [0.0]
        ptt = SerialPtt("loop://", max_seconds=5.0, monotonic=lambda: now[0])
        ptt.key()
        now[0] = 6.0
        ptt.check_watchdog()
        assert not ptt.keyed_now
        assert lines(ptt).cts is False
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


def tone_levels(frame: bytes, flags: int) -> np.ndarray:
    levels, _ = hdlc.nrzi_encode(hdlc.frame_bits(frame, leading_flags=flags))
    return levels


def modem(rate: int, amplitude: float = 1.0) -> FskModulator:
    return FskModulator(
        rate,
        mark=Fraction(1200),
        space=Fraction(2200),
        baud=Fraction(1200),
        amplitude=amplitude,
    )


def white(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """Noise against a unit-amplitude tone (power 0.5), whatever the signal's level now."""
    rng = np.random.default_rng(seed)
    return x + rng.normal(0.0, np.sqrt(0.5 / 10 ** (snr_db / 10)), size=x.size)


def decode(
    x: np.ndarray,
    rate: int,
    *,
    repair: int = 0,
    pairs: int = 0,
    slicers: tuple[afsk1200.Slicer, ...] = afsk1200.SLICERS,
    decisions: tuple[afsk1200.Decision, ...] = afsk1200.DECISIONS,
    chunk: int = 4096,
) -> list[hdlc.HdlcFrame]:
    demod = afsk1200.Afsk1200Demodulator(
        rate, repair=repair, pairs=pairs, slicers=slicers, decisions=decisions
    )
    out: list[hdlc.HdlcFrame] = []
    for at in range(0, x.size, chunk):
        out += demod.feed(x[at : at + chunk])
    return out + demod.flush()


class TestAfskChannel:
    """Level steps, sound-card clock errors that change mid-stream and long preambles do not
    cost frames: the bit clock has no loop to lose lock and the discriminator ignores level."""

    def test_level_step_and_clock_error_change_mid_stream(self) -> None:
        rate = 22050
        pieces = [np.zeros(rate // 4)]
        # Three transmissions back to back: a fast card, a slow one, then nominal, each
        # with a level step of 10 dB (down, up, down) between its two frames.
        low = 10 ** (-10 / 20)
        for error, gains in ((0.015, (1.0, low)), (-0.015, (low, 1.0)), (0.0, (1.0, low))):
            tx = afsk1200.Afsk1200Modulator(round(rate * (1 + error)), amplitude=1.0)
            for frame, gain in zip(FRAMES[:2], gains, strict=True):
                pieces += [gain * tx.modulate([frame]), np.zeros(rate // 10)]
        x = white(np.concatenate(pieces), 14.0, seed=7)  # the weak frames sit at 4 dB
        got = [f.data for f in decode(x, rate)]
        assert got == [FRAMES[0], FRAMES[1]] * 3

    def test_clock_error_steps_inside_one_frame(self) -> None:
        rate = 44100
        levels = tone_levels(FRAMES[2], flags=40)
        half = levels.size // 2 + 3
        fast = modem(round(rate * 1.02)).modulate(levels[:half])
        slow = modem(round(rate * 0.99)).modulate(levels[half:])
        x = white(np.concatenate([np.zeros(5000), fast, slow, np.zeros(5000)]), 10.0, seed=3)
        assert [f.data for f in decode(x, rate)] == [FRAMES[2]]

    @pytest.mark.parametrize("error", [-0.02, 0.02])
    def test_long_flag_preamble_after_noise(self, error: float) -> None:
        rate = 22050
        tx = afsk1200.Afsk1200Modulator(round(rate * (1 + error)), amplitude=1.0, txdelay=1.5)
        x = np.concatenate([np.zeros(rate), tx.modulate([FRAMES[1]]), np.zeros(rate // 10)])
        assert [f.data for f in decode(white(x, 8.0, seed=11), rate)] == [FRAMES[1]]

    @settings(max_examples=10, deadline=None)
    @given(st.lists(st.integers(1, 5000), min_size=1, max_size=40))
    def test_any_chunking_gives_the_same_frames(self, sizes: list[int]) -> None:
        x = white(afsk1200.modulate(FRAMES[:2], 22050, amplitude=1.0), 12.0, seed=5)
        demod = afsk1200.Afsk1200Demodulator(22050)
        out: list[hdlc.HdlcFrame] = []
        at, i = 0, 0
        while at < x.size:
            size = sizes[i % len(sizes)]
            out += demod.feed(x[at : at + size])
            at, i = at + size, i + 1
        assert [f.data for f in out + demod.flush()] == FRAMES[:2]

    def test_flush_delivers_a_frame_that_ends_with_the_recording(self) -> None:
        x = afsk1200.modulate([FRAMES[0]], 44100, txtail=0.0)
        demod = afsk1200.Afsk1200Demodulator(44100)
        assert demod.feed(x) == []  # the closing flag is still inside the clock's window
        assert [f.data for f in demod.flush()] == [FRAMES[0]]


def tilted(x: np.ndarray, rate: int, db_per_khz: float) -> np.ndarray:
    """``x`` through a filter whose gain changes by ``db_per_khz`` per kHz above 1200 Hz (so
    the space tone is that many dB louder than the mark): the twist of a radio path."""
    spectrum = np.fft.rfft(x)
    freq = np.fft.rfftfreq(x.size, 1 / rate)
    gain = np.minimum(10 ** (db_per_khz * (freq - 1200) / 1000 / 20), 10 ** (abs(db_per_khz) / 10))
    return np.fft.irfft(spectrum * gain, x.size)


class TestAfskTwist:
    """A frame whose tones differ in level by 9 dB (de-emphasis, or pre-emphasis that was not
    undone) still decodes in moderate noise."""

    @pytest.mark.parametrize("twist", [-9.0, 9.0])
    def test_strong_twist(self, twist: float) -> None:
        rate = 22050
        x = np.concatenate([np.zeros(rate // 4), afsk1200.modulate(FRAMES, rate), np.zeros(2000)])
        x = tilted(x, rate, twist)
        got = decode(add_noise(x, 8.0, seed=int(twist) + 40), rate)
        assert [f.data for f in got] == FRAMES


def beacons(count: int, seed: int) -> list[bytes]:
    """``count`` different APRS frames of 60 to 70 bytes."""
    rng = np.random.default_rng(seed)
    return [
        ax25(
            f"VE3BLK-{i % 16}>APZBLK,WIDE1-1:>beacon {i:03d} "
            + "".join(chr(int(c)) for c in rng.integers(0x41, 0x5B, 24))
        )
        for i in range(count)
    ]


def transmissions(frames: list[bytes], rate: int) -> np.ndarray:
    """Each frame in its own transmission, with a quarter second of silence around it."""
    pieces = [np.zeros(rate // 4)]
    for frame in frames:
        pieces += [afsk1200.modulate([frame], rate, amplitude=1.0), np.zeros(rate // 4)]
    return np.concatenate(pieces)


class TestAfskSequenceDecision:
    """Deciding each bit with its neighbours, from the phase-continuous signal, hears weak
    frames that bit-by-bit decisions lose, invents none, and streams like the rest."""

    def test_hears_frames_that_bit_by_bit_decisions_lose(self) -> None:
        rate = 22050
        frames = beacons(20, seed=7)
        x = white(transmissions(frames, rate), 0.0, seed=8)
        by_sequence = [f.data for f in decode(x, rate, decisions=("sequence",))]
        by_level = [f.data for f in decode(x, rate, decisions=("level",))]
        by_tones = [f.data for f in decode(x, rate, decisions=("tones",))]
        assert set(by_sequence) <= set(frames)
        assert len(by_sequence) == len(set(by_sequence))
        assert len(by_sequence) >= max(len(by_level), len(by_tones)) + 4

    def test_chunking_does_not_change_the_frames(self) -> None:
        rate = 22050
        x = white(transmissions(FRAMES, rate), 6.0, seed=9)
        whole = decode(x, rate, decisions=("sequence",), chunk=x.size)
        assert [f.data for f in whole] == FRAMES
        for chunk in (1000, 97):
            assert decode(x, rate, decisions=("sequence",), chunk=chunk) == whole

    def test_clock_error_and_level(self) -> None:
        rate = 44100
        for error, gain in ((0.01, 1.0), (-0.01, 0.1), (0.0, 0.001)):
            x = our_audio(round(rate * (1 + error)))
            noisy = gain * white(x, 6.0, seed=3)
            got = decode(noisy, rate, decisions=("sequence",))
            assert [f.data for f in got] == FRAMES, (error, gain)

    @pytest.mark.parametrize("twist", [-9.0, 9.0])
    def test_twist(self, twist: float) -> None:
        rate = 22050
        x = tilted(transmissions(FRAMES, rate), rate, twist)
        got = decode(add_noise(x, 6.0, seed=int(twist) + 50), rate, decisions=("sequence",))
        assert [f.data for f in got] == FRAMES

    def test_no_frames_from_noise(self) -> None:
        rng = np.random.default_rng(23)
        x = rng.normal(0.0, 0.3, 22050 * 30)
        assert decode(x, 22050, decisions=("sequence",), repair=12, pairs=8) == []


class TestAfskSlicers:
    """Several slicers share one discriminator; each frame comes out once, in order."""

    def test_two_slicers_pass_each_frame_once(self) -> None:
        x = white(afsk1200.modulate(FRAMES, 22050, amplitude=1.0), 10.0, seed=1)
        x = np.concatenate([x, x])  # the same frames again, a transmission later
        got = decode(x, 22050, slicers=((32.0, 0.0), (24.0, -0.15)))
        assert [f.data for f in got] == FRAMES * 2

    def test_rejects_are_counted_once(self) -> None:
        levels = tone_levels(FRAMES[0], flags=20)
        levels[20 * 8 + 100] ^= 1  # a strong wrong bit: the FCS fails
        x = np.concatenate([np.zeros(2000), modem(22050).modulate(levels), np.zeros(4000)])
        demod = afsk1200.Afsk1200Demodulator(22050, slicers=((32.0, 0.0), (32.0, 0.1)))
        assert demod.feed(x) + demod.flush() == []
        # One report for the frame, however many slicers saw it; the owner counts it.
        assert demod.rejections.drain() == [("hdlc", "bad_fcs", 1)]

    def test_bad_options(self) -> None:
        with pytest.raises(ValueError, match="slicer"):
            afsk1200.Afsk1200Demodulator(22050, slicers=())
        with pytest.raises(ValueError, match="bit decision"):
            afsk1200.Afsk1200Demodulator(22050, decisions=())
        with pytest.raises(ValueError, match="unknown bit decision"):
            afsk1200.Afsk1200Demodulator(22050, decisions=("coherent",))
        with pytest.raises(ValueError, match="repair"):
            afsk1200.Afsk1200Demodulator(22050, repair=-1)
        with pytest.raises(ValueError, match="pairs"):
            afsk1200.Afsk1200Demodulator(22050, pairs=-2)
        with pytest.raises(ValueError, match="samples per bit"):
            SpectralLineClock(3000, 1200)


class TestSpectralLineClock:
    """The feed-forward clock samples each bit once, follows a clock error and does not
    depend on how the input is chunked."""

    def test_follows_a_clock_error(self) -> None:
        rate = 22050
        rng = np.random.default_rng(2)
        levels = rng.integers(0, 2, 3000)
        x = modem(round(rate * 1.015)).modulate(levels)
        demod = FskDemodulator(rate, mark=1200, space=2200, baud=1200)
        clock = SpectralLineClock(rate, 1200)
        soft = clock.feed(demod.discriminator(x))
        assert clock.clock_error == pytest.approx(0.015, abs=0.002)
        got = (soft.values > 0).astype(int)
        # The same levels come out, after the filters' delay of a bit or so.
        text, want = "".join(map(str, got)), "".join(map(str, levels[50:2900]))
        assert want in text
        assert np.all(np.diff(soft.positions) > 0)

    def test_chunking_does_not_change_the_bits(self) -> None:
        rate = 44100
        rng = np.random.default_rng(3)
        x = white(modem(round(rate * 0.99)).modulate(rng.integers(0, 2, 1200)), 6.0, seed=4)
        d = FskDemodulator(rate, mark=1200, space=2200, baud=1200).discriminator(x)
        whole = SpectralLineClock(rate, 1200).feed(d)
        clock = SpectralLineClock(rate, 1200)
        parts = [clock.feed(d[at : at + 999]) for at in range(0, d.size, 999)]
        values = np.concatenate([p.values for p in parts])
        positions = np.concatenate([p.positions for p in parts])
        assert values.size == whole.values.size
        assert np.abs(positions - whole.positions).max() <= 1
        assert np.array_equal(values > 0, whole.values > 0)


class TestAfskRepairSafety:
    """Repair recovers weak bits but never invents a frame: not from noise, not from a real
    frame with more wrong bits than it may flip."""

    def test_pairs_recover_two_weak_wrong_bits(self) -> None:
        rate = 44100
        levels = tone_levels(FRAMES[0], flags=30)
        wrong = levels.copy()
        targets = (30 * 8 + 120, 30 * 8 + 300)
        for target in targets:
            wrong[target] ^= 1
        good, bad = modem(rate, 0.5).modulate(levels), modem(rate, 0.5).modulate(wrong)
        spb = rate / 1200
        x = good.copy()
        for target in targets:
            a, b = int(target * spb), int((target + 1) * spb)
            # The wrong tone dominates, but the right one, in phase with its neighbours,
            # leaves the decisions doubtful.
            x[a:b] = 0.1 * good[a:b] + 0.9 * bad[a:b]
        x = np.concatenate([np.zeros(1000), x, np.zeros(1000)])
        assert decode(x, rate, repair=12) == []
        fixed = decode(x, rate, repair=12, pairs=8)
        assert [(f.data, f.repaired) for f in fixed] == [(FRAMES[0], 2)]

    def test_a_wrong_bit_that_looks_certain_is_not_flipped(self) -> None:
        rate = 44100
        levels = tone_levels(FRAMES[0], flags=30)
        wrong = levels.copy()
        target = 30 * 8 + 300
        wrong[target] ^= 1
        good, bad = modem(rate, 0.5).modulate(levels), modem(rate, 0.5).modulate(wrong)
        spb = rate / 1200
        a, b = int(target * spb), int((target + 1) * spb)

        def with_wrong_share(share: float) -> np.ndarray:
            x = good.copy()
            x[a:b] = (1 - share) * good[a:b] + share * bad[a:b]
            return np.concatenate([np.zeros(1000), x, np.zeros(1000)])

        # A doubtful wrong bit is repaired: the wrong tone dominates, but the right one is
        # still there, in phase with its neighbours. A wrong bit sent as such (the whole
        # signal phase-continuous through it) is as certain as the rest and is not: such a
        # frame is what a damaged source or interference leaves, and flipping guesses there
        # invents frames.
        assert decode(with_wrong_share(0.9), rate) == []
        assert [f.data for f in decode(with_wrong_share(0.9), rate, repair=12)] == [FRAMES[0]]
        sent_wrong = np.concatenate([np.zeros(1000), bad, np.zeros(1000)])
        assert decode(sent_wrong, rate, repair=12, pairs=8) == []
        assert decode(white(sent_wrong, 12.0, seed=5), rate, repair=12, pairs=8) == []

    def test_no_frames_from_two_minutes_of_noise(self) -> None:
        rng = np.random.default_rng(21)
        demod = afsk1200.Afsk1200Demodulator(22050, repair=12, pairs=8)
        for _ in range(24):
            x = np.clip(rng.normal(0.0, 0.3, 22050 * 5), -1, 1)
            assert demod.feed((x * 32767).astype(np.int16)) == []
        assert demod.flush() == []
        assert demod.held_bits <= afsk1200._MAX_CANDIDATE_BITS

    def test_no_frames_from_frames_with_three_wrong_bits(self) -> None:
        rng = np.random.default_rng(22)
        rate = 22050
        pieces = []
        for i in range(40):
            frame = ax25(f"VE3BLK-{i % 16}>APZBLK,WIDE1-1:>corrupted {i:03d} " + "Z" * 20)
            levels = tone_levels(frame, flags=6)
            for at in rng.choice(np.arange(56, levels.size - 8), size=3, replace=False):
                levels[at] ^= 1
            pieces += [np.zeros(rate // 20), modem(rate).modulate(levels)]
        x = white(np.concatenate([*pieces, np.zeros(rate // 10)]), 12.0, seed=23)
        assert decode(x, rate, repair=12, pairs=8) == []


def segmented_frames(bits: list[int], chunk: int) -> list[bytes]:
    """Frames found by the vectorised flag hunter + unstuffing + FCS check."""
    segmenter = hdlc.FlagSegmenter()
    found = []
    for at in range(0, len(bits), chunk):
        part = np.asarray(bits[at : at + chunk], dtype=np.int8)
        for segment in segmenter.feed(part, part.astype(np.float64)):
            data = hdlc.unstuff_octets(segment.bits)
            if data is not None and len(data) >= hdlc.MIN_FRAME + 2 and hdlc.check_fcs(data):
                found.append(data[:-2])
    return found


class TestFlagSegmenter:
    """The vectorised deframer the receiver uses finds exactly what the bit-by-bit
    HdlcDecoder finds, however the bits are chunked."""

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.binary(min_size=15, max_size=80), min_size=1, max_size=4),
        st.lists(st.integers(0, 1), max_size=300),
        st.integers(1, 500),
    )
    def test_agrees_with_the_bit_by_bit_decoder(
        self, frames: list[bytes], garbage: list[int], chunk: int
    ) -> None:
        bits = list(garbage)
        for data in frames:
            bits += hdlc.frame_bits(data, leading_flags=2).tolist() + garbage[:37]
        assert segmented_frames(bits, chunk) == deframe(bits)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 1), max_size=4000), st.integers(1, 700))
    def test_random_bits_agree(self, bits: list[int], chunk: int) -> None:
        assert segmented_frames(bits, chunk) == deframe(bits)

    def test_unstuff_round_trip_and_abort(self) -> None:
        data = b"\xff\x7e\x00" * 7
        body = hdlc.frame_bits(data)[8:-8]
        assert hdlc.unstuff_octets(body) == data + hdlc.fcs(data)
        aborted = np.concatenate([body[:40], np.ones(7, dtype=np.int8), body[40:]])
        assert hdlc.unstuff_octets(aborted) is None
        assert hdlc.unstuff_octets(body[:-3]) is None  # not whole octets
        assert hdlc.unstuff_octets(np.zeros(0, dtype=np.int8)) is None

    def test_overlong_stretch_is_dropped_and_counted(self) -> None:
        tally = Rejections()
        segmenter = hdlc.FlagSegmenter(rejections=tally)
        flag = np.asarray([0, 1, 1, 1, 1, 1, 1, 0], dtype=np.int8)
        filler = np.tile(np.asarray([1, 1, 0], dtype=np.int8), 2000)  # no flag, no abort
        for part in (flag, filler, flag):
            assert segmenter.feed(part, part.astype(np.float64)) == []
        assert tally.drain() == [("hdlc", "too_long", 1)]
        assert segmenter.held <= 8 * (hdlc.MAX_FRAME + 2) * 6 // 5 + 8


class TestAfskHostileInput:
    """Broken float input (NaN, infinity, huge values) is counted and treated as silence; the
    receiver keeps decoding what comes after."""

    def test_non_finite_and_huge_samples(self) -> None:
        demod = afsk1200.Afsk1200Demodulator(22050)
        x = np.random.default_rng(1).normal(0.0, 0.1, 22050)
        x[100:200] = np.nan
        x[300] = np.inf
        x[400:500] = 1e300
        assert demod.feed(x) == []
        assert demod.rejections.total["afsk1200", "non_finite_samples"] == 1
        got = demod.feed(afsk1200.modulate(FRAMES, 22050)) + demod.flush()
        assert [f.data for f in got] == FRAMES

    def test_empty_and_odd_input(self) -> None:
        demod = afsk1200.Afsk1200Demodulator(22050)
        assert demod.feed(np.zeros(0)) == []
        assert demod.feed(b"") == []
        with pytest.raises(ValueError, match="odd number of bytes"):
            demod.feed(b"\x00\x01\x02")
        with pytest.raises(ValueError, match="mono"):
            demod.feed(np.zeros((10, 2)))
        assert demod.feed(np.full(5, 5.0)) == []

    def test_sample_at_a_time(self) -> None:
        rate = 8000
        x = afsk1200.modulate([FRAMES[0]], rate, txdelay=0.1)
        got = decode(np.concatenate([np.zeros(500), x]), rate, chunk=1)
        assert [f.data for f in got] == [FRAMES[0]]
