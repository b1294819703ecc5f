"""KISS, AX.25 and APRS codecs: golden vectors, round trips, hostile streams, properties."""

from __future__ import annotations

import contextlib
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kiss import aprs, ax25, kiss
from gateway.errors import FrameError
from gateway.plaintext import APRS_BULLETIN, APRS_MESSAGE
from hardware.faults import byte_at_a_time, with_garbage

# AX.25 2.2 section 3.12: each callsign byte shifted left one bit; SSID byte CRRSSIDE.
# APRS (dest, C=1) / N0CALL (source, C=0, last) / UI / no layer 3 / ">Hi"
GOLDEN_AX25 = bytes.fromhex(
    "82a0a4a64040"  # "APRS  "
    "e0"  # SSID byte: C bit set, reserved bits 11, SSID 0
    "9c6086829898"  # "N0CALL"
    "61"  # SSID byte: reserved bits 11, SSID 0, last address
    "03f0"  # UI, no layer 3
    "3e4869"  # ">Hi"
)
# Same with SSIDs and a two-hop path, the first hop already repeated (H bit):
# VE3XYZ-7>APZBDL,WIDE1-1*,WIDE2-1::BLN1     :x
GOLDEN_PATH = (
    bytes(c << 1 for c in b"APZBDL")
    + b"\xe0"
    + bytes(c << 1 for c in b"VE3XYZ")
    + bytes([0x60 | (7 << 1)])
    + bytes(c << 1 for c in b"WIDE1 ")
    + bytes([0x80 | 0x60 | (1 << 1)])
    + bytes(c << 1 for c in b"WIDE2 ")
    + bytes([0x60 | (1 << 1) | 1])
    + b"\x03\xf0:BLN1     :x"
)


class TestKissGolden:
    """KISS frames match the byte sequences of the KISS specification, escapes included."""

    def test_data_frame_bytes(self) -> None:
        assert kiss.data_frame(b"AB").to_bytes() == b"\xc0\x00AB\xc0"

    def test_escapes_fend_and_fesc(self) -> None:
        frame = kiss.data_frame(b"\xc0x\xdb", port=2)
        assert frame.to_bytes() == b"\xc0\x20\xdb\xdcx\xdb\xdd\xc0"
        assert kiss.KissFrame.from_bytes(frame.to_bytes()) == frame

    def test_parameter_commands(self) -> None:
        assert kiss.txdelay(500).to_bytes() == b"\xc0\x01\x32\xc0"
        assert kiss.persistence(63, port=1).to_bytes() == b"\xc0\x12\x3f\xc0"
        assert kiss.slot_time(100).to_bytes() == b"\xc0\x03\x0a\xc0"
        assert kiss.tx_tail(30).to_bytes() == b"\xc0\x04\x03\xc0"
        assert kiss.full_duplex(True, port=15).to_bytes() == b"\xc0\xf5\x01\xc0"
        assert kiss.set_hardware(b"\x01\x02").to_bytes() == b"\xc0\x06\x01\x02\xc0"
        assert kiss.exit_kiss().to_bytes() == b"\xc0\xff\xc0"
        assert kiss.KissFrame.from_bytes(b"\xc0\xff\xc0").command is kiss.Command.RETURN
        assert kiss.KissFrame.from_bytes(b"\xc0\x01\x32\xc0").value == 50

    def test_bad_values_refused(self) -> None:
        with pytest.raises(kiss.KissFrameError, match="port 16"):
            kiss.data_frame(b"x", port=16)
        with pytest.raises(kiss.KissFrameError, match="out of range"):
            kiss.txdelay(3000)
        with pytest.raises(kiss.KissFrameError, match="one byte"):
            kiss.KissFrame.from_bytes(b"\xc0\x01\x01\x02\xc0")
        with pytest.raises(kiss.KissFrameError, match="FESC followed by 0x41"):
            kiss.KissFrame.from_bytes(b"\xc0\x00\xdbA\xc0")
        with pytest.raises(kiss.KissFrameError, match="unknown KISS command 0x9"):
            kiss.KissFrame.from_bytes(b"\xc0\x09\xc0")


class TestKissStream:
    """The stream decoder resyncs: garbage, split reads and bad frames never lose good frames."""

    FRAMES: ClassVar[list[kiss.KissFrame]] = [
        kiss.data_frame(bytes(range(256))),
        kiss.data_frame(b"\xc0\xc0\xdb"),
        kiss.txdelay(300),
    ]

    def wire(self) -> bytes:
        return b"".join(f.to_bytes() for f in self.FRAMES)

    def test_whole(self) -> None:
        assert kiss.KissDecoder().feed(self.wire()) == self.FRAMES

    def test_byte_at_a_time(self) -> None:
        decoder = kiss.KissDecoder()
        out = [f for chunk in byte_at_a_time(self.wire()) for f in decoder.feed(chunk)]
        assert out == self.FRAMES

    def test_garbage_prefix_is_discarded(self) -> None:
        decoder = kiss.KissDecoder()
        assert decoder.feed(with_garbage(self.wire(), b"\x00\xffATZ\r\ngarbage")) == self.FRAMES
        assert decoder.discarded == 14
        assert decoder.take_errors() == []

    def test_bad_frame_between_good_ones(self) -> None:
        decoder = kiss.KissDecoder()
        wire = self.FRAMES[0].to_bytes() + b"\xc0\x00\xdb\x01\xc0" + self.FRAMES[1].to_bytes()
        assert decoder.feed(wire) == self.FRAMES[:2]
        errors = decoder.take_errors()
        assert len(errors) == 1
        assert "offset" in str(errors[0])

    def test_back_to_back_fends_and_empty_frames(self) -> None:
        wire = b"\xc0\xc0\xc0" + self.FRAMES[2].to_bytes() + b"\xc0\xc0"
        assert kiss.KissDecoder().feed(wire) == [self.FRAMES[2]]

    def test_oversize_frame_is_refused_and_resynced(self) -> None:
        decoder = kiss.KissDecoder(max_frame=64)
        wire = b"\xc0\x00" + b"A" * 500 + self.FRAMES[2].to_bytes()
        assert decoder.feed(wire) == [self.FRAMES[2]]
        assert "exceeds 64 bytes" in str(decoder.take_errors()[0])

    @given(st.binary(max_size=600))
    @settings(max_examples=300, deadline=None)
    def test_random_bytes_decode_or_raise_codec_error(self, data: bytes) -> None:
        with contextlib.suppress(kiss.KissFrameError):
            kiss.KissFrame.from_bytes(data)
        decoder = kiss.KissDecoder()
        for frame in decoder.feed(data):
            # Whatever decodes re-encodes to a frame that decodes the same.
            assert kiss.KissFrame.from_bytes(frame.to_bytes()) == frame
        assert all(isinstance(e, kiss.KissFrameError) for e in decoder.errors)

    @given(st.lists(st.tuples(st.integers(0, 15), st.binary(max_size=300)), max_size=8))
    @settings(max_examples=100, deadline=None)
    def test_round_trip_any_payloads(self, items: list[tuple[int, bytes]]) -> None:
        frames = [kiss.data_frame(data, port) for port, data in items]
        wire = b"".join(f.to_bytes() for f in frames)
        decoder = kiss.KissDecoder()
        out = [f for chunk in byte_at_a_time(wire) for f in decoder.feed(chunk)]
        assert out == frames


class TestAX25:
    """AX.25 UI frames encode addresses, SSIDs and the digipeater path per AX.25 2.2."""

    def test_golden_minimal(self) -> None:
        frame = ax25.Frame(ax25.Address("APRS"), ax25.Address("N0CALL"), info=b">Hi")
        assert frame.to_bytes() == GOLDEN_AX25
        assert ax25.Frame.from_bytes(GOLDEN_AX25) == frame
        assert str(frame) == "N0CALL>APRS:>Hi"

    def test_golden_with_path(self) -> None:
        frame = ax25.Frame.parse_monitor("VE3XYZ-7>APZBDL,WIDE1-1*,WIDE2-1::BLN1     :x")
        assert frame.to_bytes() == GOLDEN_PATH
        decoded = ax25.Frame.from_bytes(GOLDEN_PATH)
        assert decoded == frame
        assert decoded.path[0].repeated
        assert str(decoded) == "VE3XYZ-7>APZBDL,WIDE1-1*,WIDE2-1::BLN1     :x"

    def test_eight_digipeaters_maximum(self) -> None:
        path = tuple(ax25.Address("DIGI", i) for i in range(8))
        frame = ax25.Frame(ax25.Address("APRS"), ax25.Address("N0CALL"), path, b"x")
        assert ax25.Frame.from_bytes(frame.to_bytes()) == frame
        with pytest.raises(ax25.AX25Error, match="at most 8"):
            ax25.Frame(ax25.Address("APRS"), ax25.Address("N0CALL"), (*path, path[0]))
        # Nine addresses on the wire: the decoder stops at eight.
        nine = frame.to_bytes()[:-3]
        nine = nine[:-1] + bytes([nine[-1] & 0xFE]) + path[0].encode(last=True, c_bit=False)
        with pytest.raises(ax25.AX25Error, match="more than 8"):
            ax25.Frame.from_bytes(nine + b"\x03\xf0x")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("TOOLONG7", "not CALL"),
            ("N0CALL-16", "out of range"),
            ("N0-CALL", "not CALL"),
            ("", "not CALL"),
        ],
    )
    def test_bad_addresses(self, text: str, message: str) -> None:
        with pytest.raises(ax25.AX25Error, match=message):
            ax25.Address.parse(text)

    def test_lower_case_is_folded(self) -> None:
        assert ax25.Address.parse("ve3xyz-7") == ax25.Address("VE3XYZ", 7)

    def test_non_ui_and_truncated_frames_refused(self) -> None:
        with pytest.raises(ax25.AX25Error, match="not UI"):
            ax25.Frame.from_bytes(GOLDEN_AX25[:14] + b"\x3f\xf0")
        with pytest.raises(ax25.AX25Error, match="at least 16"):
            ax25.Frame.from_bytes(GOLDEN_AX25[:10])
        bad = bytearray(GOLDEN_AX25)
        bad[2] |= 1
        with pytest.raises(ax25.AX25Error, match="destination: extension bit"):
            ax25.Frame.from_bytes(bytes(bad))

    @given(st.binary(max_size=120))
    @settings(max_examples=300, deadline=None)
    def test_random_bytes_decode_or_raise_codec_error(self, data: bytes) -> None:
        try:
            frame = ax25.Frame.from_bytes(data)
        except ax25.AX25Error:
            return
        assert ax25.Frame.from_bytes(frame.to_bytes()) == frame


class TestAprs:
    """APRS 1.0.1 chapter 14 formats: messages, acks, rejs, bulletins, group bulletins."""

    @pytest.mark.parametrize(
        ("info", "packet"),
        [
            # Examples from APRS 1.0.1 chapter 14.
            (b":WU2Z     :Testing", aprs.Message("WU2Z", "Testing")),
            (b":WU2Z     :Testing{003", aprs.Message("WU2Z", "Testing", "003")),
            (b":KB2ICI-14:ack003", aprs.Ack("KB2ICI-14", "003")),
            (b":KB2ICI-14:rej003", aprs.Rej("KB2ICI-14", "003")),
            (
                b":BLN3     :Snow expected in Tampa RSN",
                aprs.Bulletin("3", "Snow expected in Tampa RSN"),
            ),
            (
                b":BLNQ     :Mt St Helen digi will be QRT this weekend",
                aprs.Bulletin("Q", "Mt St Helen digi will be QRT this weekend"),
            ),
            (
                b":BLN4WX   :Stand by your snowplows",
                aprs.Bulletin("4", "Stand by your snowplows", "WX"),
            ),
        ],
    )
    def test_golden(self, info: bytes, packet: aprs.Packet) -> None:
        assert aprs.decode(info) == packet
        assert packet.to_info() == info

    def test_reply_ack_extension_and_trailing_newline(self) -> None:
        assert aprs.decode(b":N0CALL   :Hello{12}AB\r\n") == aprs.Message("N0CALL", "Hello", "12")

    def test_not_a_message(self) -> None:
        assert aprs.decode(b"!4903.50N/07201.75W-Test") is None

    @pytest.mark.parametrize(
        ("info", "message"),
        [
            (b":SHORT:text", "9-character field"),
            (b":         :text", "blank"),
            (b":N0CALL   :pipe|here", "forbidden character '|' at position 4"),
            (b":N0CALL   :" + b"x" * 68, "68 characters, at most 67"),
            (b":N0CALL   :caf\xe9", "non-ASCII byte at offset 14"),
            (b":N0CALL   :hi{123456", "not 1-5 letters"),
        ],
    )
    def test_malformed(self, info: bytes, message: str) -> None:
        with pytest.raises(aprs.AprsError, match=message):
            aprs.decode(info)

    def test_text_profiles(self) -> None:
        """The codec's limits and the radio text profiles are one definition."""
        assert (aprs.MAX_TEXT, aprs.MESSAGE_FORBIDDEN) == (67, "|~{")
        assert APRS_MESSAGE.parts("Évacuation | route 17 fermée {urgent} ~ now\n") == [
            "Evacuation route 17 fermee urgent} now"
        ]
        assert APRS_BULLETIN.parts("a{b|c~d") == ["a{bcd"]
        chunks = APRS_MESSAGE.parts("word " * 40)
        assert all(len(c) <= 67 for c in chunks)
        assert " ".join(chunks) == ("word " * 40).strip()
        assert APRS_MESSAGE.parts("x" * 150) == ["x" * 67, "x" * 67, "x" * 16]

    def test_message_numbers_wrap(self) -> None:
        numbers = aprs.MessageNumbers(start=99998)
        assert [numbers.next() for _ in range(3)] == ["99998", "99999", "1"]

    @given(st.binary(max_size=100))
    @settings(max_examples=300, deadline=None)
    def test_random_bytes_decode_or_raise_codec_error(self, data: bytes) -> None:
        try:
            packet = aprs.decode(b":" + data)
        except aprs.AprsError:
            return
        assert packet is not None
        assert aprs.decode(packet.to_info()) == packet

    def test_errors_are_frame_errors(self) -> None:
        assert issubclass(aprs.AprsError, FrameError)
        assert issubclass(ax25.AX25Error, FrameError)
        assert issubclass(kiss.KissFrameError, FrameError)
