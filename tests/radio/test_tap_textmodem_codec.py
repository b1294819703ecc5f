"""TAP and text-modem codecs: golden vectors, splitting, hostile streams, properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.pager import tap
from adapters.pager.adapter import split_page
from adapters.textmodem.codec import Dialect, Event, LineDecoder, TextModemError
from gateway.errors import ConfigError, FrameError
from gateway.plaintext import clean
from hardware.faults import byte_at_a_time, with_garbage


class TestTapBlocks:
    """Blocks carry fields with the TAP 1.8 checksum; long pages split at 250 characters."""

    def test_spec_checksum_example(self) -> None:
        # TAP 1.8: STX "123" CR "ABC" CR ETX has the checksum "17;".
        assert tap.checksum(b"\x02123\rABC\r\x03") == b"17;"
        block = tap.Block(b"123\rABC\r")
        assert block.to_bytes() == b"\x02123\rABC\r\x0317;\r"
        assert tap.Block.from_bytes(block.to_bytes()) == block

    def test_bad_checksum_is_its_own_error(self) -> None:
        with pytest.raises(tap.TapChecksumError, match="does not match"):
            tap.Block.from_bytes(b"\x02123\rABC\r\x0317<\r")
        assert issubclass(tap.TapChecksumError, FrameError)

    def test_long_page_splits_with_etb_and_us(self) -> None:
        blocks = tap.encode_page("1001", "x" * 600)
        assert [b.terminator for b in blocks] == [tap.US, tap.US, tap.ETX]
        assert all(len(b.to_bytes()) <= 256 for b in blocks)
        assert tap.decode_fields(blocks) == ["1001", "x" * 600]
        # A split exactly at a field boundary uses ETB.
        at_boundary = tap.encode_page("12", "abc", max_block=3)
        assert at_boundary[0] == tap.Block(b"12\r", tap.ETB)

    def test_bad_input_refused(self) -> None:
        with pytest.raises(tap.TapError, match="pager ID"):
            tap.encode_page("12 34", "x")
        with pytest.raises(tap.TapError, match="control byte 0x07"):
            tap.Block(b"1\r\x07\r")
        with pytest.raises(tap.TapError, match="up to 6"):
            tap.login("TOOLONGPW")
        assert tap.login("ABC") == b"\x1bPG1ABC\r"

    def test_clean_and_split_page(self) -> None:
        assert clean("Alerte: évacuez\tmaintenant\x00!") == "Alerte: evacuez maintenant !"
        parts = split_page("word " * 60, 80)
        assert all(len(p) <= 80 for p in parts)
        assert parts[0].startswith("1/4 ")

    @given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=700))
    @settings(max_examples=100, deadline=None)
    def test_round_trip_any_message(self, message: str) -> None:
        blocks = tap.encode_page("7", message)
        wire = b"".join(b.to_bytes() for b in blocks)
        decoder = tap.RequestDecoder()
        requests = [r for chunk in byte_at_a_time(wire) for r in decoder.feed(chunk)]
        assert [r.kind for r in requests] == ["block"] * len(blocks)
        assert tap.decode_fields([r.block for r in requests if r.block]) == ["7", message]

    @given(st.binary(max_size=300))
    @settings(max_examples=300, deadline=None)
    def test_random_bytes_decode_or_raise_codec_error(self, data: bytes) -> None:
        with contextlib.suppress(tap.TapError):
            tap.Block.from_bytes(data)
        # The terminal side never raises: bad blocks become bad_block requests (NAK).
        for request in tap.RequestDecoder().feed(data):
            assert request.kind in {"wake", "login", "block", "bad_block", "logout"}
        with contextlib.suppress(tap.TapError):
            tap.ReplyDecoder().feed(data)


class TestTapDialogue:
    """Both decoders parse the dialogue of TAP 1.8, byte at a time and after line noise."""

    def test_terminal_replies(self) -> None:
        wire = b"ID=" + b"110 1.8\r\x06\r\x1b[p\r" + b"211 OK\r\x06\r\x15\r\x1e\r\x1b\x04\r"
        decoder = tap.ReplyDecoder()
        replies = [r for chunk in byte_at_a_time(wire) for r in decoder.feed(chunk)]
        assert [r.kind for r in replies] == [
            "id",
            "text",
            "ack",
            "go_ahead",
            "text",
            "ack",
            "nak",
            "rs",
            "disconnect",
        ]
        assert replies[1].text == "110 1.8"

    def test_requests_after_garbage(self) -> None:
        block = tap.encode_page("1001", "Test")[0].to_bytes()
        wire = with_garbage(b"\r" + tap.login("PW") + block + tap.LOGOUT, b"\x00\xffnoise")
        requests = tap.RequestDecoder().feed(wire)
        assert [r.kind for r in requests] == ["wake", "login", "block", "logout"]
        assert requests[1].password == "PW"

    def test_corrupted_block_becomes_bad_block(self) -> None:
        block = bytearray(tap.encode_page("1001", "Test")[0].to_bytes())
        block[3] ^= 0x01
        (request,) = tap.RequestDecoder().feed(bytes(block))
        assert request.kind == "bad_block"
        assert "checksum" in request.error

    def test_reply_without_cr_is_bounded(self) -> None:
        with pytest.raises(tap.TapError, match="without CR"):
            tap.ReplyDecoder().feed(b"x" * 600)


class TestTextModemDialect:
    """A dialect is templates and patterns from config; lines are split and bounded."""

    def test_default_dialect_both_sides(self) -> None:
        d = Dialect()
        wire = d.format_tx("CA-EAST", "hello")
        assert wire == b"AT+TXT=CA-EAST,hello\r\n"
        assert d.parse_tx(wire.decode().strip()) == ("CA-EAST", "hello")
        rx = d.format_rx("2001", "CA-EAST", "hi, there").decode().strip()
        assert d.classify(rx) == Event("rx", text="hi, there", sender="2001", dest="CA-EAST")
        assert d.classify("OK") == Event("ok")
        assert d.classify("ERROR: busy") == Event("error", reason="busy")
        assert d.classify("RING").kind == "other"

    def test_vendor_dialect_from_config(self) -> None:
        d = Dialect.from_mapping(
            {
                "tx": "AT+SDS={dest},{text}",
                "ok": "^OK$",
                "error": r"^\+CME ERROR: (?P<reason>.*)$",
                "rx": r"^\+SDS: (?P<sender>\d+),(?P<dest>\d+),(?P<text>.*)$",
                "max_text": 20,
                "init": ["ATE0"],
            }
        )
        assert d.format_tx("9001", "x") == b"AT+SDS=9001,x\r\n"
        assert d.classify("+CME ERROR: 35").reason == "35"
        assert d.classify("+SDS: 1002,9001,Help").sender == "1002"
        with pytest.raises(TextModemError, match="takes 20"):
            d.format_tx("9001", "x" * 21)
        with pytest.raises(TextModemError, match="separator"):
            d.format_tx("90,01", "x")

    def test_bad_dialects(self) -> None:
        with pytest.raises(ConfigError, match="regular expression"):
            Dialect(ok="(")
        with pytest.raises(ConfigError, match=r"\{dest\} and \{text\}"):
            Dialect(tx="AT+X={dest},{text},{extra}")

    def test_line_decoder(self) -> None:
        decoder = LineDecoder(max_line=10)
        lines = [
            x
            for c in byte_at_a_time(b"OK\r\n\r\n+RXT: a\rfar too long a line\nOK\n")
            for x in decoder.feed(c)
        ]
        assert lines == ["OK", "+RXT: a", "OK"]
        assert len(decoder.take_errors()) == 1

    @given(st.binary(max_size=400))
    @settings(max_examples=200, deadline=None)
    def test_random_bytes_never_break_the_decoder(self, data: bytes) -> None:
        decoder = LineDecoder(max_line=64)
        for line in decoder.feed(data):
            assert len(line) <= 64
            assert "\r" not in line
            assert "\n" not in line
            Dialect().classify(line)
        assert all(isinstance(e, TextModemError) for e in decoder.take_errors())
