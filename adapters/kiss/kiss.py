"""KISS framing (KA9Q/K3MC), sans-IO.

Source: the KISS specification (Chepponis and Karn, "The KISS TNC: A simple Host-to-TNC
communications protocol", ARRL 6th Computer Networking Conference, 1987; ax25.net/kiss.aspx).

A frame on the wire is ``FEND type data... FEND``; in the data 0xC0 is sent as ``FESC TFEND``
and 0xDB as ``FESC TFESC``. The type byte carries the TNC port in its high nibble and the
command in its low nibble; ``0xFF`` alone leaves KISS mode. Back-to-back FENDs are allowed and
an empty frame is ignored.

:class:`KissDecoder` is the stream decoder: ``feed(data) -> list[KissFrame]``. A frame that
cannot be decoded (bad escape, unknown command, oversize) is not returned: it is kept in
:attr:`KissDecoder.errors` (a :class:`KissFrameError` naming what and where), and the decoder
resyncs at the next FEND, so one bad frame never costs the frames around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from gateway.errors import FrameError

FEND = 0xC0
FESC = 0xDB
TFEND = 0xDC
TFESC = 0xDD

MAX_PORT = 15
# Longer than any AX.25 frame (256-byte info, 8 digipeaters) with room to spare; a stream
# that never sends FEND cannot make the decoder grow without bound.
DEFAULT_MAX_FRAME = 2048
_FEND_BYTE = b"\xc0"


class KissFrameError(FrameError):
    """A KISS frame could not be decoded (bad escape, bad type byte, oversize)."""


class Command(IntEnum):
    """The low nibble of the type byte (``RETURN`` is the whole byte 0xFF)."""

    DATA = 0x0
    TXDELAY = 0x1
    PERSISTENCE = 0x2
    SLOT_TIME = 0x3
    TX_TAIL = 0x4
    FULL_DUPLEX = 0x5
    SET_HARDWARE = 0x6
    RETURN = 0xFF


_PARAMETER_COMMANDS = {
    Command.TXDELAY,
    Command.PERSISTENCE,
    Command.SLOT_TIME,
    Command.TX_TAIL,
    Command.FULL_DUPLEX,
}


def escape(data: bytes) -> bytes:
    """KISS-escape FEND and FESC inside a frame's data."""
    return data.replace(bytes([FESC]), bytes([FESC, TFESC])).replace(
        bytes([FEND]), bytes([FESC, TFEND])
    )


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape`; a FESC not followed by TFEND/TFESC is a :class:`KissFrameError`."""
    if FESC not in data:
        return data
    pieces = data.split(bytes([FESC]))
    out = bytearray(pieces[0])
    offset = len(pieces[0])
    for piece in pieces[1:]:
        if not piece:
            what = "frame ends with FESC" if offset == len(data) - 1 else "FESC followed by 0xDB"
            raise KissFrameError(f"{what} at offset {offset}")
        code = piece[0]
        if code == TFEND:
            out.append(FEND)
        elif code == TFESC:
            out.append(FESC)
        else:
            raise KissFrameError(
                f"FESC followed by 0x{code:02X} at offset {offset} (expected TFEND or TFESC)"
            )
        out += piece[1:]
        offset += 1 + len(piece)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class KissFrame:
    """One KISS frame: a port (0-15), a command and its data (unescaped)."""

    port: int
    command: Command
    data: bytes = b""

    def __post_init__(self) -> None:
        if self.command is Command.RETURN:
            if self.data:
                raise KissFrameError("the Return command carries no data")
            return
        if not 0 <= self.port <= MAX_PORT:
            raise KissFrameError(f"KISS port {self.port} out of range 0-{MAX_PORT}")
        if self.command in _PARAMETER_COMMANDS and len(self.data) != 1:
            raise KissFrameError(
                f"{self.command.name} takes one byte of data, got {len(self.data)}"
            )

    @property
    def type_byte(self) -> int:
        if self.command is Command.RETURN:
            return 0xFF
        return (self.port << 4) | int(self.command)

    @property
    def value(self) -> int:
        """The parameter of TXDELAY/PERSISTENCE/SLOT_TIME/TX_TAIL/FULL_DUPLEX."""
        if self.command not in _PARAMETER_COMMANDS:
            raise KissFrameError(f"{self.command.name} has no single-byte parameter")
        return self.data[0]

    def to_bytes(self) -> bytes:
        """The frame on the wire, FEND to FEND."""
        # The type byte is escaped like the data: port 12 data frames have type 0xC0.
        return bytes([FEND]) + escape(bytes([self.type_byte]) + self.data) + bytes([FEND])

    @classmethod
    def from_bytes(cls, raw: bytes) -> KissFrame:
        """Decode exactly one frame (FENDs around it optional); raise :class:`KissFrameError`."""
        body = raw.strip(bytes([FEND]))
        if FEND in body:
            raise KissFrameError(f"FEND inside frame at offset {body.index(FEND)}")
        if not body:
            raise KissFrameError("empty frame")
        return cls._from_body(body)

    @classmethod
    def _from_body(cls, escaped: bytes) -> KissFrame:
        body = unescape(escaped)
        type_byte = body[0]
        if type_byte == 0xFF:
            if len(body) != 1:
                raise KissFrameError("Return (0xFF) frame carries data")
            return cls(0, Command.RETURN)
        try:
            command = Command(type_byte & 0x0F)
        except ValueError:
            raise KissFrameError(
                f"unknown KISS command 0x{type_byte & 0x0F:X} in type byte 0x{type_byte:02X}"
            ) from None
        return cls(type_byte >> 4, command, body[1:])


def data_frame(payload: bytes, port: int = 0) -> KissFrame:
    """A data frame carrying one AX.25 frame (no flags, no FCS)."""
    return KissFrame(port, Command.DATA, payload)


def txdelay(ms: int, port: int = 0) -> KissFrame:
    """TXDELAY in milliseconds (sent in 10 ms units, 0-2550 ms)."""
    return KissFrame(port, Command.TXDELAY, bytes([_units(ms, "TXDELAY")]))


def persistence(p: int, port: int = 0) -> KissFrame:
    """Persistence parameter p (0-255); the TNC transmits with probability (p+1)/256."""
    if not 0 <= p <= 255:
        raise KissFrameError(f"persistence {p} out of range 0-255")
    return KissFrame(port, Command.PERSISTENCE, bytes([p]))


def slot_time(ms: int, port: int = 0) -> KissFrame:
    """Slot time in milliseconds (10 ms units)."""
    return KissFrame(port, Command.SLOT_TIME, bytes([_units(ms, "slot time")]))


def tx_tail(ms: int, port: int = 0) -> KissFrame:
    """TX tail in milliseconds (10 ms units)."""
    return KissFrame(port, Command.TX_TAIL, bytes([_units(ms, "TX tail")]))


def full_duplex(on: bool, port: int = 0) -> KissFrame:
    return KissFrame(port, Command.FULL_DUPLEX, bytes([1 if on else 0]))


def set_hardware(data: bytes, port: int = 0) -> KissFrame:
    """Device-specific SetHardware command."""
    return KissFrame(port, Command.SET_HARDWARE, data)


def exit_kiss() -> KissFrame:
    """Leave KISS mode (``C0 FF C0``)."""
    return KissFrame(0, Command.RETURN)


def _units(ms: int, what: str) -> int:
    if not 0 <= ms <= 2550:
        raise KissFrameError(f"{what} {ms} ms out of range 0-2550")
    return round(ms / 10)


class KissDecoder:
    """Stream decoder: push bytes in with :meth:`feed`, get complete frames out.

    Bytes before the first FEND are discarded (counted in :attr:`discarded`). Bad frames are
    appended to :attr:`errors` and skipped; :meth:`take_errors` drains them.
    """

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False
        self._overflow = False
        self._offset = 0  # stream offset of the next byte fed
        self._frame_start = 0
        self.discarded = 0
        self.errors: list[KissFrameError] = []

    def take_errors(self) -> list[KissFrameError]:
        errors, self.errors = self.errors, []
        return errors

    def feed(self, data: bytes) -> list[KissFrame]:
        frames: list[KissFrame] = []
        start = 0
        n = len(data)
        while start < n:
            idx = data.find(_FEND_BYTE, start)
            end = n if idx == -1 else idx
            if end > start:
                if not self._in_frame:
                    self.discarded += end - start
                elif not self._overflow:
                    room = self.max_frame - len(self._buf)
                    if end - start > room:
                        self._overflow = True
                    else:
                        self._buf += data[start:end]
            if idx == -1:
                break
            self._close_frame(frames)
            self._frame_start = self._offset + idx + 1
            start = idx + 1
        self._offset += n
        return frames

    def _close_frame(self, frames: list[KissFrame]) -> None:
        """A FEND: finish the frame in progress (if any) and start a new one."""
        if self._in_frame and self._overflow:
            self.errors.append(
                KissFrameError(
                    f"frame at stream offset {self._frame_start} exceeds {self.max_frame} bytes"
                )
            )
        elif self._in_frame and self._buf:
            try:
                frames.append(KissFrame._from_body(bytes(self._buf)))
            except KissFrameError as exc:
                self.errors.append(
                    KissFrameError(f"frame at stream offset {self._frame_start}: {exc}")
                )
        self._buf.clear()
        self._overflow = False
        self._in_frame = True
