"""HDLC framing as AX.25 uses it on the air (sans-IO): flags, bit stuffing, NRZI and the FCS.

On the air a frame is ``flag, data, FCS, flag`` where the flag is 0x7E, every octet is sent
least significant bit first, a 0 is stuffed after five consecutive 1s inside the frame (so six
1s only occur in a flag), and the line code is NRZI: a 0 bit toggles the tone, a 1 keeps it.
The FCS is CRC-16-CCITT as in X.25 / ISO 3309 (reflected polynomial 0x8408, initial value
0xFFFF, final complement), sent low byte first; a receiver running the CRC over data and FCS
finds the constant residue 0xF0B8 (AX.25 2.2 section 3.8; RFC 1662 appendix C).

This layer knows nothing of addresses: it frames and deframes raw frame bytes (what KISS
carries, what :class:`adapters.kiss.ax25.Frame` produces).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog

from gateway.errors import FrameError
from gateway.metrics import INPUT_REJECTED

log = structlog.get_logger(__name__)

FLAG = 0x7E
GOOD_RESIDUE = 0xF0B8
MIN_FRAME = 15  # shortest AX.25 frame without FCS: two addresses and a control byte
MAX_FRAME = 330  # 2 + 8 digipeaters of addresses, control, PID, 256 info, margin
COMPONENT = "hdlc"

Bits = npt.NDArray[np.int8]


class HdlcError(FrameError):
    """A frame cannot be framed for the air (too long, empty)."""


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """Run the X.25 CRC register over ``data`` (no final complement)."""
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def fcs(data: bytes) -> bytes:
    """The two FCS octets to append to ``data`` (low byte first)."""
    value = crc16(data) ^ 0xFFFF
    return bytes((value & 0xFF, value >> 8))


def check_fcs(frame_with_fcs: bytes) -> bool:
    """True when the last two octets are the FCS of the rest."""
    return len(frame_with_fcs) >= 3 and crc16(frame_with_fcs) == GOOD_RESIDUE


def octets_to_bits(data: bytes) -> Bits:
    """Octets as bits, least significant bit first."""
    bits: Bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little").astype(
        np.int8
    )
    return bits


def stuff(bits: Iterable[int]) -> list[int]:
    """Insert a 0 after every run of five 1s."""
    out: list[int] = []
    ones = 0
    for bit in bits:
        out.append(bit)
        if bit:
            ones += 1
            if ones == 5:
                out.append(0)
                ones = 0
        else:
            ones = 0
    return out


_FLAG_BITS = [0, 1, 1, 1, 1, 1, 1, 0]


def frame_bits(data: bytes, *, leading_flags: int = 1, trailing_flags: int = 1) -> Bits:
    """The bits of one frame on the air before NRZI: flags, stuffed data + FCS, flags."""
    if not data:
        raise HdlcError("cannot frame an empty frame")
    if len(data) > MAX_FRAME:
        raise HdlcError(f"frame is {len(data)} bytes, at most {MAX_FRAME}")
    body = stuff(octets_to_bits(data + fcs(data)).tolist())
    bits = _FLAG_BITS * max(leading_flags, 1) + body + _FLAG_BITS * max(trailing_flags, 1)
    return np.asarray(bits, dtype=np.int8)


def nrzi_encode(bits: Bits, level: int = 1) -> tuple[Bits, int]:
    """NRZI: a 0 toggles the line level, a 1 keeps it. Returns the levels and the last level."""
    toggles = (np.asarray(bits) == 0).astype(np.int64)
    levels = (level + np.cumsum(toggles)) % 2
    # level + number of toggles so far, mod 2: with level=1 and no toggles the line stays 1.
    out: Bits = levels.astype(np.int8)
    last = int(out[-1]) if out.size else level
    return out, last


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """A frame whose FCS checked; ``data`` excludes the FCS. ``repaired`` bits were flipped."""

    data: bytes
    repaired: int = 0


class HdlcDecoder:
    """Streaming deframer: ``feed(bits)`` (already NRZI-decoded) returns the good frames.

    Frames of a plausible length with a bad FCS, and overlong frames, are dropped and counted
    in ``borderlink_input_rejected_total{component="hdlc"}``; fragments too short or not a
    whole number of octets (what noise between two chance flags looks like) and aborts (seven
    1s) are dropped silently. The decoder then waits for the next flag. ``count=False`` keeps
    the count out of the metric (for a second slicer over the same audio).
    """

    def __init__(
        self, *, min_length: int = MIN_FRAME, max_length: int = MAX_FRAME, count: bool = True
    ) -> None:
        self._min = min_length
        self._count = count
        self._max = max_length
        self._ones = 0
        self._in_frame = False
        self._byte = 0
        self._nbits = 0
        self._buf = bytearray()
        self.bad_fcs = 0
        # For each frame the last ``feed`` returned, the index in its input of the bit that
        # completed it (the last bit of the closing flag).
        self.ends: list[int] = []

    def feed(self, bits: Iterable[int]) -> list[HdlcFrame]:
        frames: list[HdlcFrame] = []
        self.ends = []
        ones = self._ones
        in_frame = self._in_frame
        byte, nbits, buf = self._byte, self._nbits, self._buf
        for at, bit in enumerate(bits):
            if bit:
                ones += 1
                if ones > 6:  # abort or idle line: drop what we had
                    in_frame = False
                    continue
                if in_frame:
                    byte |= 1 << nbits
                    nbits += 1
            else:
                if ones == 6:  # a flag: end the frame in progress, start a new one
                    if in_frame and self._finish(buf, nbits, frames):
                        self.ends.append(at)
                    in_frame = True
                    byte, nbits, buf = 0, 0, bytearray()
                    ones = 0
                    continue
                if ones == 5:  # a stuffed zero: drop it
                    ones = 0
                    continue
                ones = 0
                if in_frame:
                    nbits += 1
            if in_frame and nbits == 8:
                buf.append(byte)
                byte, nbits = 0, 0
                if len(buf) > self._max + 2:
                    in_frame = False
                    self._reject("too_long")
        self._ones, self._in_frame = ones, in_frame
        self._byte, self._nbits, self._buf = byte, nbits, buf
        return frames

    def _finish(self, buf: bytearray, nbits: int, frames: list[HdlcFrame]) -> bool:
        # The flag's own leading 0 and five... bits were clocked into the buffer before the
        # sixth 1 identified it: exactly 7 bits of the flag (0111111) are pending in nbits.
        if not buf and nbits <= 7:
            return False  # back-to-back flags
        if nbits != 7 or len(buf) < self._min + 2:
            return False  # noise between flags, not a frame: nothing to count
        data = bytes(buf)
        if not check_fcs(data):
            self.bad_fcs += 1
            self._reject("bad_fcs")
            return False
        frames.append(HdlcFrame(data[:-2]))
        return True

    def _reject(self, reason: str) -> None:
        if not self._count:
            return
        INPUT_REJECTED.inc(component=COMPONENT, reason=reason)
        log.debug("hdlc_frame_rejected", reason=reason)
