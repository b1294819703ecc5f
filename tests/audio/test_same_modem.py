"""SAME encoder and streaming decoder: signal format, round trips, impairments, burst voting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.eas import same_modem as sm
from adapters.modem.fsk import FskModulator, to_pcm16
from tests.audio.conftest import add_noise

HEADER = "ZCZC-WXR-TOR-048439-048113+0045-1231200-KFWD/NWS-"
RATE = 22050


def bursts(texts: list[str], rate: int = RATE, levels: list[float] | None = None) -> np.ndarray:
    """One burst per text, each followed by 1 s of silence, with optional per-burst levels."""
    pieces = [np.zeros(rate // 2)]
    for i, text in enumerate(texts):
        modem = FskModulator(rate, mark=sm.MARK, space=sm.SPACE, baud=sm.BAUD, amplitude=0.5)
        burst = modem.modulate(sm.burst_bits(text))
        if levels:
            burst = burst * levels[i]
        pieces += [burst, np.zeros(rate)]
    return np.concatenate(pieces)


def transmission(header: str = HEADER, rate: int = RATE, **options: object) -> np.ndarray:
    opts = sm.EncoderOptions(rate=rate, attention=0.0, **options)  # type: ignore[arg-type]
    return np.concatenate([np.zeros(rate // 4), *sm.encode(header, opts), np.zeros(rate // 4)])


def texts(messages: list[sm.SameMessage]) -> list[str]:
    return [m.text for m in messages]


class TestEncoderFormat:
    """The encoder emits the 47 CFR 11.31 signal: preamble, LSB-first bytes, timing, tones."""

    def test_burst_bits_are_preamble_then_lsb_first_ascii(self) -> None:
        bits = sm.burst_bits("ZCZC").tolist()
        assert bits[:128] == [1, 1, 0, 1, 0, 1, 0, 1] * 16  # 0xAB, least significant bit first
        assert bits[128:136] == [0, 1, 0, 1, 1, 0, 1, 0]  # 'Z' = 0x5A
        assert len(bits) == 8 * (16 + 4)

    @pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
    def test_three_bursts_with_one_second_gaps_and_exact_bit_clock(self, rate: int) -> None:
        x = sm.encode_bursts(HEADER, rate)
        nbits = 8 * (16 + len(HEADER))
        burst = math.ceil(nbits * rate * 6 / 3125)  # 520 5/6 bit/s exactly
        assert x.size == 3 * (burst + rate)
        for k in range(3):
            start = k * (burst + rate)
            assert np.all(x[start + burst : start + burst + rate] == 0.0)
            assert np.abs(x[start : start + burst]).max() > 0.45

    @pytest.mark.parametrize(("bit", "freq"), [(1, 2083.333), (0, 1562.5)])
    def test_mark_and_space_frequencies(self, bit: int, freq: float) -> None:
        modem = FskModulator(48000, mark=sm.MARK, space=sm.SPACE, baud=sm.BAUD)
        x = modem.modulate(np.full(5208, bit))  # ten seconds
        spectrum = np.abs(np.fft.rfft(x))
        peak = np.argmax(spectrum) * 48000 / x.size
        assert peak == pytest.approx(freq, abs=0.2)

    def test_phase_is_continuous_across_bits_and_calls(self) -> None:
        modem = FskModulator(RATE, mark=sm.MARK, space=sm.SPACE, baud=sm.BAUD, amplitude=1.0)
        rng = np.random.default_rng(7)
        x = np.concatenate([modem.modulate(rng.integers(0, 2, 50)) for _ in range(20)])
        max_step = 2 * math.pi * float(sm.MARK) / RATE
        assert np.abs(np.diff(x)).max() <= max_step * 1.001

    def test_attention_signal_tones(self) -> None:
        for tone, freqs in (("eas", (853.0, 960.0)), ("nwr", (1050.0,))):
            opts = sm.EncoderOptions(rate=RATE, attention=1.0, attention_tone=tone, eom=False)
            chunks = list(sm.encode(HEADER, opts))
            attention = chunks[1]
            assert attention.size == RATE
            spectrum = np.abs(np.fft.rfft(attention))
            peaks = np.argsort(spectrum)[-len(freqs) :] * RATE / attention.size
            assert sorted(peaks) == pytest.approx(sorted(freqs), abs=1.5)

    def test_message_audio_is_consumed_lazily_between_attention_and_eom(self) -> None:
        consumed: list[int] = []

        def message() -> object:
            for i in range(3):
                consumed.append(i)
                yield np.full(100, 0.1)

        opts = sm.EncoderOptions(rate=RATE, attention=0.0)
        stream = sm.encode(HEADER, opts, message=message())  # type: ignore[arg-type]
        next(stream)
        assert consumed == []
        rest = list(stream)
        assert consumed == [0, 1, 2]
        assert sum(c.size for c in rest) > 300
        assert texts(sm.decode(np.concatenate([sm.encode_bursts(HEADER, RATE), *rest]))) == [
            HEADER,
            "NNNN",
        ]

    @pytest.mark.parametrize(
        "bad",
        [
            "ZCZC-WXR-TOR+0045-1231200-KFWD/NWS-",  # no location
            "ZCZC-WXR-TOR-04843-048113+0045-1231200-KFWD/NWS-",  # short location
            "ZCZC-WXR-TOR-048439+0045-1231200-KFWD-",  # station not 8 characters
            "ZCZC-WXR-TOR-" + "-".join(["048439"] * 32) + "+0045-1231200-KFWD/NWS-",
            "ZCZC-wxr-TOR-048439+0045-1231200-KFWD/NWS-",
            "NNNN",
            "",
        ],
    )
    def test_invalid_headers_are_refused(self, bad: str) -> None:
        with pytest.raises(sm.SameEncodeError):
            list(sm.encode(bad, sm.EncoderOptions(attention=0)))

    @pytest.mark.parametrize(
        "options",
        [{"rate": 7999}, {"rate": 48001}, {"attention": 26}, {"amplitude": 0}],
    )
    def test_out_of_range_options_are_refused(self, options: dict[str, float]) -> None:
        with pytest.raises(sm.SameEncodeError):
            sm.EncoderOptions(**options)  # type: ignore[arg-type]


class TestDecoderRoundTrip:
    """What the encoder makes, the decoder reads back at any rate and in any chunking."""

    @pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
    def test_round_trip_at_every_rate(self, rate: int) -> None:
        messages = sm.decode(transmission(rate=rate), rate)
        assert [(m.kind, m.text, m.bursts) for m in messages] == [
            ("header", HEADER, 3),
            ("eom", "NNNN", 3),
        ]

    def test_thirty_one_locations(self) -> None:
        header = "ZCZC-EAS-DMO-" + "-".join(f"0{i:02d}000" for i in range(31))
        header += "+0000-0011122-NOCALL00-"
        assert texts(sm.decode(transmission(header))) == [header, "NNNN"]

    def test_random_chunking_and_odd_byte_splits_give_the_same_events(self) -> None:
        x = transmission()
        raw = to_pcm16(x)
        rng = np.random.default_rng(3)
        decoder = sm.SameDecoder(RATE)
        events: list[sm.SameMessage] = []
        at = 0
        while at < len(raw):
            step = int(rng.integers(1, 3001))
            events += decoder.feed(raw[at : at + step])
            at += step
        events += decoder.flush()
        assert texts(events) == [HEADER, "NNNN"]

    def test_header_is_reported_as_soon_as_the_third_burst_ends(self) -> None:
        x = transmission()
        one = sm.decode(x)
        end_of_header = one[0].end
        decoder = sm.SameDecoder(RATE)
        first = decoder.feed(x[: end_of_header + RATE // 10])
        assert texts(first) == [HEADER]
        assert texts(decoder.feed(x[end_of_header + RATE // 10 :]) + decoder.flush()) == ["NNNN"]

    def test_int16_and_float_inputs_agree(self) -> None:
        x = transmission()
        as_int = np.frombuffer(to_pcm16(x), dtype="<i2")
        assert texts(sm.decode(as_int)) == texts(sm.decode(x))

    def test_bad_input_shapes_and_rates_are_refused(self) -> None:
        decoder = sm.SameDecoder(RATE)
        with pytest.raises(ValueError, match="mono"):
            decoder.feed(np.zeros((10, 2)))
        with pytest.raises(ValueError, match="int16"):
            decoder.feed(np.zeros(10, dtype=np.int32))
        with pytest.raises(ValueError, match="outside"):
            sm.SameDecoder(4000)


class TestDecoderImpairments:
    """The decoder tolerates what real receivers deliver: noise, offsets, levels, garbage."""

    def test_garbage_before_and_noise_throughout(self) -> None:
        rng = np.random.default_rng(11)
        x = np.concatenate([rng.normal(0, 0.3, 3 * RATE), transmission()])
        assert texts(sm.decode(add_noise(x, 3.0, seed=1))) == [HEADER, "NNNN"]

    @pytest.mark.parametrize("error", [-0.02, 0.02])
    def test_two_percent_clock_and_tone_error(self, error: float) -> None:
        # Audio made at rate*(1+error) and read as RATE: every frequency and the bit rate
        # are off by the same fraction, as with a sound card clock error.
        x = transmission(rate=round(RATE * (1 + error)))
        assert texts(sm.decode(add_noise(x, 10.0, seed=2), RATE)) == [HEADER, "NNNN"]

    def test_level_changes_between_bursts(self) -> None:
        x = bursts([HEADER] * 3, levels=[1.0, 0.02, 0.3])
        assert texts(sm.decode(add_noise(x, 15.0, seed=3))) == [HEADER]

    def test_weak_signal_below_zero_db(self) -> None:
        assert texts(sm.decode(add_noise(transmission(), -2.0, seed=4))) == [HEADER, "NNNN"]


def flip_char(text: str, index: int, bit: int = 0) -> str:
    return text[:index] + chr(ord(text[index]) ^ (1 << bit)) + text[index + 1 :]


class TestBurstVoting:
    """Bursts are combined bit by bit; only well-supported headers are let through."""

    def test_each_burst_corrupted_differently_still_decodes(self) -> None:
        # No two bursts are equal, so a 2-of-3 whole-header comparison finds nothing.
        corrupted = [flip_char(HEADER, 14), flip_char(HEADER, 30), flip_char(HEADER, 40)]
        assert len(set(corrupted)) == 3
        (message,) = sm.decode(bursts(corrupted))
        assert message.text == HEADER
        assert message.bursts == 3
        assert message.corrected == 3

    def test_two_agreeing_bursts_outweigh_one_confident_wrong_burst(self) -> None:
        # Soft votes straight into the combiner: bursts 1 and 2 agree everywhere but are
        # unsure of one bit; burst 3 is sure of the opposite. The soft sum follows burst 3,
        # which only one burst supports, so the decoder falls back to the agreeing pair.
        bits = np.unpackbits(np.frombuffer(HEADER.encode(), np.uint8), bitorder="little")
        signs = bits.reshape(-1, 8).astype(np.float64) * 2 - 1
        weak = 0.7 * signs
        weak[20, 3] = 0.3 * signs[20, 3]
        loud = signs.copy()
        loud[20, 3] = -signs[20, 3]
        bursts_ = [sm._Burst(weak, 0, 1), sm._Burst(weak.copy(), 2, 3), sm._Burst(loud, 4, 5)]
        decoder = sm.SameDecoder(RATE)
        assert decoder._decide(bursts_) == ("uncertain", flip_char(HEADER, 20, bit=3))
        message = decoder._combine(bursts_)
        assert message is not None
        assert (message.text, message.bursts) == (HEADER, 2)
        assert decoder.rejected == 0

    def test_two_clean_bursts_are_enough_after_the_hold_time(self) -> None:
        x = bursts([HEADER] * 2)
        decoder = sm.SameDecoder(RATE, hold=3.5)
        assert decoder.feed(x) == []
        later = decoder.feed(np.zeros(4 * RATE))
        assert [(m.text, m.bursts) for m in later] == [(HEADER, 2)]

    def test_single_burst_is_rejected_and_counted(self) -> None:
        decoder = sm.SameDecoder(RATE)
        assert decoder.feed(bursts([HEADER])) + decoder.flush() == []
        assert decoder.rejections.drain() == [("same_decoder", "single_burst", 1)]
        assert decoder.rejected == 1

    def test_two_disagreeing_bursts_are_rejected(self) -> None:
        decoder = sm.SameDecoder(RATE)
        assert decoder.feed(bursts([HEADER, flip_char(HEADER, 20)])) + decoder.flush() == []
        assert decoder.rejections.drain() == [("same_decoder", "uncertain", 1)]

    def test_heavily_corrupted_bursts_are_not_guessed(self) -> None:
        corrupted = []
        for k in range(3):
            text = HEADER
            for i in range(13, 40, 3):
                text = flip_char(text, i + k, bit=k % 3)
            corrupted.append(text)
        assert sm.decode(bursts(corrupted)) == []

    def test_invalid_layout_is_rejected(self) -> None:
        bad = "ZCZC-WXR-TOR-04843X+0045-1231200-KFWD/NWS-"
        decoder = sm.SameDecoder(RATE)
        assert decoder.feed(bursts([bad] * 3)) + decoder.flush() == []
        assert decoder.rejections.drain() == [("same_decoder", "invalid_header", 1)]

    def test_eom_then_header_are_separate_messages(self) -> None:
        x = np.concatenate([bursts(["NNNN"] * 2), bursts([HEADER] * 3)])
        assert [(m.kind, m.text) for m in sm.decode(x)] == [("eom", "NNNN"), ("header", HEADER)]

    def test_back_to_back_transmissions(self) -> None:
        other = HEADER.replace("TOR", "SVR")
        x = np.concatenate([transmission(), transmission(other)])
        assert texts(sm.decode(x)) == [HEADER, "NNNN", other, "NNNN"]


class TestDecoderHostileInput:
    """Arbitrary audio never raises and never yields a malformed header."""

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(min_size=0, max_size=20000), st.integers(1, 4000))
    def test_random_pcm_bytes(self, data: bytes, step: int) -> None:
        decoder = sm.SameDecoder(RATE)
        events: list[sm.SameMessage] = []
        for at in range(0, len(data), step):
            events += decoder.feed(data[at : at + step])
        events += decoder.flush()
        for event in events:
            assert event.text == "NNNN" or sm.HEADER_RE.fullmatch(event.text)

    def test_long_noise_keeps_memory_bounded(self) -> None:
        decoder = sm.SameDecoder(RATE)
        rng = np.random.default_rng(5)
        for _ in range(30):
            assert decoder.feed(rng.normal(0, 0.5, RATE)) == []
        # Only about one bit period of discriminator history is kept between chunks.
        assert len(decoder._demod.clock._d_tail) < 64
        assert decoder._group is None or len(decoder._group.bursts) <= 3
