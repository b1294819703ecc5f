"""AX.25 2.2 UI frames as KISS carries them: addresses, SSIDs, digipeater path; no flags, no FCS.

Source: "AX.25 Link Access Protocol for Amateur Packet Radio", version 2.2 (TAPR, 1998),
sections 3.12 (address field encoding) and 4.3.3.6 (UI frame, control 0x03); PID 0xF0 is
"no layer 3 protocol" (section 3.4 / figure 3.2).

Each address is seven bytes: six callsign characters shifted left one bit (space padded) and
an SSID byte ``CRRSSID0``: C is the command/response bit (the H "has been repeated" bit in a
digipeater address), RR are reserved (sent as 1), SSID 0-15, and the low bit marks the last
address of the field. A UI command frame sets C=1 in the destination and C=0 in the source.
The HDLC layer (flags, FCS, bit stuffing) lives in ``adapters.afsk``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import FrameError

UI_CONTROL = 0x03
PID_NO_LAYER3 = 0xF0
MAX_DIGIPEATERS = 8
MAX_INFO = 256

_CALL_RE = re.compile(r"^[A-Z0-9]{1,6}$")
_ADDR_RE = re.compile(r"^([A-Za-z0-9]{1,6})(?:-(\d{1,2}))?(\*?)$")


class AX25Error(FrameError):
    """An AX.25 frame or address is malformed (what and where in the message)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A station address: callsign (1-6 upper-case letters/digits) and SSID 0-15.

    ``repeated`` is the H bit of a digipeater address (shown as ``*`` in monitor format).
    """

    call: str
    ssid: int = 0
    repeated: bool = False

    def __post_init__(self) -> None:
        if not _CALL_RE.match(self.call):
            raise AX25Error(f"callsign {self.call!r} is not 1-6 upper-case letters or digits")
        if not 0 <= self.ssid <= 15:
            raise AX25Error(f"SSID {self.ssid} of {self.call} out of range 0-15")

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``CALL``, ``CALL-SSID`` or ``CALL-SSID*``; lower case is folded to upper."""
        m = _ADDR_RE.match(text.strip())
        if m is None:
            raise AX25Error(f"address {text!r} is not CALL or CALL-SSID (SSID 0-15)")
        ssid = int(m.group(2)) if m.group(2) else 0
        return cls(m.group(1).upper(), ssid, repeated=bool(m.group(3)))

    def __str__(self) -> str:
        base = self.call if self.ssid == 0 else f"{self.call}-{self.ssid}"
        return base + ("*" if self.repeated else "")

    @property
    def base(self) -> str:
        """``CALL-SSID`` without the repeated mark."""
        return self.call if self.ssid == 0 else f"{self.call}-{self.ssid}"

    def encode(self, *, last: bool, c_bit: bool) -> bytes:
        call = self.call.ljust(6).encode("ascii")
        ssid = 0x60 | (self.ssid << 1) | (0x80 if c_bit else 0) | (0x01 if last else 0)
        return bytes(c << 1 for c in call) + bytes([ssid])

    @classmethod
    def decode(cls, raw: bytes, *, where: str) -> tuple[Address, bool, bool]:
        """Decode seven bytes; return (address, c_or_h_bit, last)."""
        if len(raw) != 7:
            raise AX25Error(f"{where}: address field is {len(raw)} bytes, expected 7")
        for i, b in enumerate(raw[:6]):
            if b & 0x01:
                raise AX25Error(f"{where}: extension bit set in callsign byte {i}")
        chars = bytes(b >> 1 for b in raw[:6]).decode("ascii")
        call = chars.rstrip(" ")
        if " " in call or not _CALL_RE.match(call):
            raise AX25Error(f"{where}: callsign {chars!r} is not upper-case letters or digits")
        ssid_byte = raw[6]
        c_bit = bool(ssid_byte & 0x80)
        return cls(call, (ssid_byte >> 1) & 0x0F), c_bit, bool(ssid_byte & 0x01)


@dataclass(frozen=True, slots=True)
class Frame:
    """An AX.25 UI frame: destination, source, up to eight digipeaters and an info field."""

    destination: Address
    source: Address
    path: tuple[Address, ...] = ()
    info: bytes = b""
    control: int = UI_CONTROL
    pid: int = PID_NO_LAYER3

    def __post_init__(self) -> None:
        if len(self.path) > MAX_DIGIPEATERS:
            raise AX25Error(
                f"digipeater path has {len(self.path)} addresses, at most {MAX_DIGIPEATERS}"
            )
        if self.control != UI_CONTROL:
            raise AX25Error(f"control 0x{self.control:02X} is not a UI frame (0x03)")
        if len(self.info) > MAX_INFO:
            raise AX25Error(f"info field is {len(self.info)} bytes, at most {MAX_INFO}")

    def to_bytes(self) -> bytes:
        """The frame as KISS carries it: address field, control, PID, info."""
        out = bytearray(self.destination.encode(last=False, c_bit=True))
        out += self.source.encode(last=not self.path, c_bit=False)
        for i, digi in enumerate(self.path):
            out += digi.encode(last=i == len(self.path) - 1, c_bit=digi.repeated)
        out += bytes([self.control, self.pid])
        out += self.info
        return bytes(out)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Frame:
        """Decode a UI frame; anything else raises :class:`AX25Error` saying what and where."""
        if len(raw) < 16:
            raise AX25Error(f"frame is {len(raw)} bytes, a UI frame needs at least 16")
        dest, _, last = Address.decode(raw[0:7], where="destination")
        if last:
            raise AX25Error("address field ends after the destination (no source)")
        src, _, last = Address.decode(raw[7:14], where="source")
        offset = 14
        path: list[Address] = []
        while not last:
            if len(path) == MAX_DIGIPEATERS:
                raise AX25Error(f"more than {MAX_DIGIPEATERS} digipeaters in the address field")
            if offset + 7 > len(raw):
                raise AX25Error(f"address field truncated at offset {offset}")
            digi, h_bit, last = Address.decode(
                raw[offset : offset + 7], where=f"digipeater {len(path) + 1}"
            )
            path.append(Address(digi.call, digi.ssid, repeated=h_bit))
            offset += 7
        if offset + 2 > len(raw):
            raise AX25Error(f"frame ends at offset {offset} before control and PID")
        control, pid = raw[offset], raw[offset + 1]
        if control != UI_CONTROL:
            raise AX25Error(f"control byte 0x{control:02X} at offset {offset} is not UI (0x03)")
        info = raw[offset + 2 :]
        if len(info) > MAX_INFO:
            raise AX25Error(f"info field is {len(info)} bytes, at most {MAX_INFO}")
        return cls(dest, src, tuple(path), info, control, pid)

    def __str__(self) -> str:
        """Monitor (TNC2) format, as direwolf prints it: ``SRC>DEST,PATH:info``."""
        head = f"{self.source}>{self.destination}"
        if self.path:
            head += "," + ",".join(str(a) for a in self.path)
        return head + ":" + self.info.decode("latin-1")

    @classmethod
    def parse_monitor(cls, line: str) -> Frame:
        """Parse ``SRC>DEST,DIGI1,DIGI2:info`` (the inverse of :meth:`__str__`)."""
        head, sep, info = line.partition(":")
        if not sep:
            raise AX25Error(f"monitor line {line[:40]!r} has no ':' before the info field")
        src, sep, rest = head.partition(">")
        if not sep:
            raise AX25Error(f"monitor line {line[:40]!r} has no '>' after the source")
        addresses = rest.split(",")
        try:
            payload = info.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise AX25Error(f"info field has a character outside 8 bits at {exc.start}") from None
        return cls(
            destination=Address.parse(addresses[0]),
            source=Address.parse(src),
            path=tuple(Address.parse(a) for a in addresses[1:] if a),
            info=payload,
        )


def parse_path(text: str) -> tuple[Address, ...]:
    """A digipeater path from config: ``"WIDE1-1,WIDE2-1"`` (empty means direct)."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if len(parts) > MAX_DIGIPEATERS:
        raise AX25Error(f"path {text!r} has {len(parts)} digipeaters, at most {MAX_DIGIPEATERS}")
    return tuple(Address.parse(p) for p in parts)
