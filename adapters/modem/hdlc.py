"""HDLC framing as AX.25 uses it on the air (sans-IO): flags, bit stuffing, NRZI and the FCS.

On the air a frame is ``flag, data, FCS, flag`` where the flag is 0x7E, every octet is sent
least significant bit first, a 0 is stuffed after five consecutive 1s inside the frame (so six
1s only occur in a flag), and the line code is NRZI: a 0 bit toggles the tone, a 1 keeps it.
The FCS is CRC-16-CCITT as in X.25 / ISO 3309 (reflected polynomial 0x8408, initial value
0xFFFF, final complement), sent low byte first; a receiver running the CRC over data and FCS
finds the constant residue 0xF0B8 (AX.25 2.2 section 3.8; RFC 1662 appendix C).

This layer knows nothing of addresses: it frames and deframes raw frame bytes (what KISS
carries, what :class:`adapters.kiss.ax25.Frame` produces). :class:`HdlcDecoder` deframes bit by
bit; :class:`FlagSegmenter` with :func:`unstuff_octets` does the same work with numpy and keeps
each stretch's soft values, for the AFSK receiver's soft-decision repair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog

from gateway.errors import FrameError, Rejections

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

    Frames of a plausible length with a bad FCS, and overlong frames, are dropped and reported
    in :attr:`rejections` (component ``hdlc``, for the owner to count); fragments too short or
    not a whole number of octets (what noise between two chance flags looks like) and aborts
    (seven 1s) are dropped silently. The decoder then waits for the next flag. ``count=False``
    keeps them out of the tally and the log (for checking bits that are not received input).
    """

    def __init__(
        self, *, min_length: int = MIN_FRAME, max_length: int = MAX_FRAME, count: bool = True
    ) -> None:
        self._min = min_length
        self._count = count
        self.rejections = Rejections()
        self._max = max_length
        self._ones = 0
        self._in_frame = False
        self._byte = 0
        self._nbits = 0
        self._buf = bytearray()
        self.bad_fcs = 0

    def feed(self, bits: Iterable[int]) -> list[HdlcFrame]:
        frames: list[HdlcFrame] = []
        ones = self._ones
        in_frame = self._in_frame
        byte, nbits, buf = self._byte, self._nbits, self._buf
        for bit in bits:
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
                    if in_frame:
                        self._finish(buf, nbits, frames)
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

    def _finish(self, buf: bytearray, nbits: int, frames: list[HdlcFrame]) -> None:
        # The flag's own leading 0 and five... bits were clocked into the buffer before the
        # sixth 1 identified it: exactly 7 bits of the flag (0111111) are pending in nbits.
        if not buf and nbits <= 7:
            return  # back-to-back flags
        if nbits != 7 or len(buf) < self._min + 2:
            return  # noise between flags, not a frame: nothing to count
        data = bytes(buf)
        if not check_fcs(data):
            self.bad_fcs += 1
            self._reject("bad_fcs")
            return
        frames.append(HdlcFrame(data[:-2]))

    def _reject(self, reason: str) -> None:
        if not self._count:
            return
        self.rejections.add(COMPONENT, reason)
        log.debug("hdlc_frame_rejected", reason=reason)


def unstuff_octets(bits: npt.ArrayLike) -> bytes | None:
    """The octets carried by the (NRZI-decoded) bits between two flags: stuffed zeros
    removed, packed least significant bit first. None if six 1s in a row occur (an abort) or
    the bits do not make whole octets."""
    data = np.asarray(bits, dtype=np.int8)
    if data.size == 0:
        return None
    index = np.arange(data.size)
    # Ones in a row up to and including each bit (the bit before the segment is a flag's 0).
    last_zero = np.maximum.accumulate(np.where(data == 0, index, -1))
    run = index - last_zero
    if int(run.max()) >= 6:
        return None
    stuffed = np.zeros(data.size, dtype=bool)
    stuffed[5:] = (data[5:] == 0) & (run[4:-1] == 5)
    kept = data[~stuffed]
    if kept.size % 8 or kept.size == 0:
        return None
    return np.packbits(kept.astype(np.uint8), bitorder="little").tobytes()


@dataclass(frozen=True, slots=True)
class Segment:
    """The line between two flags: ``bits`` NRZI-decoded, ``soft`` the raw soft value of each
    line bit (sign = tone), ``reference`` the soft value of the bit just before (the last bit
    of the opening flag), ``end`` the index in the last ``feed`` of the closing flag's last
    bit."""

    bits: Bits
    soft: npt.NDArray[np.float64]
    reference: float
    end: int


_FLAG_PATTERN = re.compile(b"(?=01111110)")


class FlagSegmenter:
    """Vectorised flag hunting: ``feed(bits, soft)`` returns the stretches between flags that
    could hold a frame (whole frames' worth of line bits, no abort), for an HDLC frame check
    and soft-decision repair. Only the bits since the last flag are kept, and no more than the
    longest frame: a stretch that grows beyond that is dropped (reported ``too_long`` when no
    abort was seen in it, in ``rejections`` when given)."""

    def __init__(self, *, rejections: Rejections | None = None) -> None:
        self._rejections = rejections
        self._tail = b"0"  # the last line bits (as text), for a flag across two calls
        self._bits = np.zeros(0, dtype=np.int8)
        self._soft = np.zeros(0)
        self._reference = 0.0
        self._whole = False  # the stretch so far starts right after a flag

    @property
    def held(self) -> int:
        """Line bits held since the last flag."""
        return int(self._bits.size)

    def feed(self, bits: Bits, soft: npt.NDArray[np.float64]) -> list[Segment]:
        text = self._tail + (bits.astype(np.uint8) + 48).tobytes()
        shift = len(self._tail)
        all_bits = np.concatenate((self._bits, bits))
        all_soft = np.concatenate((self._soft, soft))
        held = self._bits.size
        start = 0
        out: list[Segment] = []
        for match in _FLAG_PATTERN.finditer(text):
            last = match.start() + 7 - shift  # index in ``bits`` of the flag's last 0
            if last < 0:
                continue  # found in the previous call
            at = held + last
            first = at - 7  # the flag's opening 0
            if self._whole and _MIN_BITS <= first - start <= _MAX_BITS:
                out.append(
                    Segment(all_bits[start:first], all_soft[start:first], self._reference, last)
                )
            self._reference = float(all_soft[at])
            self._whole = True
            start = at + 1
        self._bits, self._soft = all_bits[start:], all_soft[start:]
        if self._bits.size > _MAX_BITS + 8:
            if self._whole and self._rejections is not None:
                line = (self._bits.astype(np.uint8) + 48).tobytes()
                if b"1111111" not in line:
                    self._rejections.add(COMPONENT, "too_long")
            self._whole = False
            self._bits, self._soft = self._bits[:0], self._soft[:0]
        self._tail = text[-7:]
        return out


# Line bits of the shortest frame (no stuffing) and of the longest (worst-case stuffing).
_MIN_BITS = 8 * (MIN_FRAME + 2)
_MAX_BITS = 8 * (MAX_FRAME + 2) * 6 // 5
