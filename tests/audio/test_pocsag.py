"""POCSAG encoder: codewords, batches, audio, and multimon-ng as referee."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.pager import pocsag
from tests.audio.conftest import add_noise, write_raw
from tests.helpers import require_tool

PAGES = [
    pocsag.Page(1234567, "Tornado warning Essex County. Take shelter now!", "alpha"),
    pocsag.Page(8, "5551234-911", "numeric"),
    pocsag.Page(2000001, "", "tone"),
    pocsag.Page(77, "U 12-34 (5)", "numeric"),
]


class TestCodewords:
    """BCH(31,21) with even parity, sync and idle words, frame placement (ITU-R M.584)."""

    def test_sync_and_idle_are_valid_codewords(self) -> None:
        for word in (pocsag.SYNC, pocsag.IDLE):
            assert pocsag.syndrome(word) == 0
            assert word.bit_count() % 2 == 0
            assert pocsag.codeword(word >> 11) == word

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, (1 << 21) - 1), st.integers(0, 31))
    def test_single_bit_errors_are_corrected(self, data: int, bit: int) -> None:
        word = pocsag.codeword(data)
        assert word.bit_count() % 2 == 0
        fixed = pocsag.correct(word ^ (1 << bit))
        assert fixed is not None
        assert fixed[0] == word

    def test_batch_layout_and_frame_position(self) -> None:
        words = pocsag.encode_codewords([pocsag.Page(8 * 100 + 5, "1", "numeric")])
        assert words[0] == pocsag.SYNC
        assert len(words) % 17 == 0
        slots = words[1:17]
        assert slots[:10] == [pocsag.IDLE] * 10  # frames 0-4 idle
        assert slots[10] >> 31 == 0  # address codeword in frame 5
        assert (slots[10] >> 13) & 0x3FFFF == 100
        assert slots[11] >> 31 == 1  # the message follows

    def test_long_message_crosses_batches(self) -> None:
        page = pocsag.Page(7, "x" * 120, "alpha")
        words = pocsag.encode_codewords([page])
        assert len(words) >= 3 * 17
        assert all(words[i] == pocsag.SYNC for i in range(0, len(words), 17))
        decoded = pocsag.PocsagDecoder().feed(_bits(words)) + pocsag.PocsagDecoder().flush()
        assert [(p.address, p.alpha) for p in decoded] == [(7, "x" * 120)]

    @pytest.mark.parametrize(
        ("page", "error"),
        [
            ({"address": 1 << 21, "message": "1", "kind": "numeric"}, "address"),
            ({"address": 1, "message": "12A", "kind": "numeric"}, "numeric"),
            ({"address": 1, "message": "é", "kind": "alpha"}, "non-ASCII"),
            ({"address": 1, "message": "x", "kind": "tone"}, "tone"),
            ({"address": 1, "message": "x", "kind": "alpha", "function": 4}, "function"),
        ],
    )
    def test_invalid_pages_are_refused(self, page: dict[str, object], error: str) -> None:
        with pytest.raises(pocsag.PocsagError, match=error):
            pocsag.Page(**page)  # type: ignore[arg-type]

    def test_preamble(self) -> None:
        bits = pocsag.encode_bits(PAGES[:1]).tolist()
        assert bits[:576] == [1, 0] * 288
        sync = [(pocsag.SYNC >> (31 - i)) & 1 for i in range(32)]
        assert bits[576:608] == sync


def _bits(words: list[int]) -> list[int]:
    return [(w >> (31 - i)) & 1 for w in words for i in range(32)]


class TestRoundTrip:
    """Our baseband receiver reads our transmissions at every rate, through noise."""

    @pytest.mark.parametrize("baud", [512, 1200, 2400])
    def test_audio_round_trip(self, baud: int) -> None:
        x = np.concatenate([np.zeros(2000), pocsag.encode_audio(PAGES, baud=baud), np.zeros(2000)])
        rx = pocsag.PocsagReceiver(baud=baud)
        pages = rx.feed(add_noise(x, 6.0, seed=baud)) + rx.flush()
        assert [(p.address, p.function) for p in pages] == [
            (1234567, 3),
            (8, 0),
            (2000001, 1),
            (77, 0),
        ]
        assert pages[0].alpha == PAGES[0].message
        assert pages[1].numeric == "5551234-911"
        assert pages[3].numeric == "U 12-34 [5]"

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.integers(0, 1), max_size=3000))
    def test_random_bits_never_raise(self, bits: list[int]) -> None:
        decoder = pocsag.PocsagDecoder()
        decoder.feed(bits)
        decoder.flush()


class TestMultimonDecodesOurPages:
    """multimon-ng POCSAG512/1200/2400 decodes our numeric, alphanumeric and tone pages."""

    @pytest.mark.parametrize("baud", [512, 1200, 2400])
    def test_multimon(self, tmp_path: Path, baud: int) -> None:
        binary = require_tool("multimon-ng")
        x = np.concatenate([np.zeros(2205), pocsag.encode_audio(PAGES, baud=baud), np.zeros(2205)])
        path = write_raw(tmp_path / "pocsag.raw", x)
        out = subprocess.run(
            [binary, "-q", "-c", "-a", f"POCSAG{baud}", "-t", "raw", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.splitlines()
        prefix = f"POCSAG{baud}: Address: "
        assert len(out) == 4
        assert out[0].startswith(f"{prefix}1234567  Function: 3  Alpha:   {PAGES[0].message}")
        assert out[1].startswith(f"{prefix}      8  Function: 0  Numeric: 5551234-911")
        assert out[2].strip() == f"{prefix}2000001  Function: 1"
        assert out[3].startswith(f"{prefix}     77  Function: 0  Numeric: U 12-34 [5]")


class TestDecoderBounds:
    """A stream of message codewords that never ends cannot grow the decoder without bound."""

    def test_runaway_message_is_cut(self) -> None:
        decoder = pocsag.PocsagDecoder()
        address = pocsag.codeword((5 << 2) | 3)
        body = [pocsag.codeword((1 << 20) | 0x12345)] * 15
        words = [pocsag.SYNC, address, *body]
        for _ in range(40):
            words += [pocsag.SYNC, *([pocsag.codeword((1 << 20) | 0x12345)] * 16)]
        pages = decoder.feed(_bits(words))
        # The page is delivered at the cap; the orphan codewords after it are ignored.
        assert [p.address for p in pages] == [40]
        assert len(pages[0].alpha) <= pocsag.MAX_MESSAGE_CODEWORDS * 20 // 7
        assert decoder._chunks == []
        assert decoder.flush() == []


class TestPolarity:
    """1 is the low level: multimon-ng reads it as is, and the inverted signal only with -i."""

    def test_inverted_baseband_needs_multimon_invert_flag(self, tmp_path: Path) -> None:
        binary = require_tool("multimon-ng")
        bits = pocsag.encode_bits(PAGES[1:2])
        x = pocsag.modulate(bits, baud=1200, invert=True)
        path = write_raw(tmp_path / "inv.raw", np.concatenate([np.zeros(2205), x]))

        def run(*flags: str) -> str:
            return subprocess.run(
                [binary, "-q", "-c", *flags, "-a", "POCSAG1200", "-t", "raw", str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout

        assert "5551234-911" not in run()
        assert "5551234-911" in run("-i")
        rx = pocsag.PocsagReceiver(baud=1200, invert=True)
        assert [p.numeric for p in rx.feed(x) + rx.flush()] == ["5551234-911"]
