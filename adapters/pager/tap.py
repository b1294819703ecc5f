"""TAP, the Telocator Alphanumeric Protocol (version 1.8), sans-IO: both ends of the link.

Source: "Telocator Alphanumeric Protocol (TAP) Version 1.8", PCIA (1994), sections on logon,
transaction blocks, checksum and logoff.

Dialogue (remote entry device = us, terminal = the paging terminal)::

    us:        CR (every 2 s, up to 3 times)      terminal: "ID="
    us:        ESC "PG1" password CR              terminal: [text CR] ACK CR   (or NAK CR,
                                                            or ESC EOT CR = go away)
                                                  terminal: ESC "[p" CR        (go ahead)
    us:        STX pagerid CR message CR ETX ccc CR
                                                  terminal: [text CR] ACK CR   accepted
                                                            NAK CR             bad checksum: resend
                                                            RS CR              refused: next page
                                                            ESC EOT CR         disconnect
    us:        EOT CR                             terminal: [text CR] ESC EOT CR

A block holds at most 256 characters: STX, up to 250 characters of fields, the terminator
(ETX last block, ETB when the page continues at a field boundary, US when a field continues
in the next block), a three-character checksum and CR. The checksum is the sum of the 7-bit
values of every character from STX through the terminator, its low 12 bits written as three
nibbles each added to 0x30 (``STX 123 CR ABC CR ETX`` -> ``17;``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import FrameError

STX = 0x02
ETX = 0x03
EOT = 0x04
ACK = 0x06
NAK = 0x15
RS = 0x1E
US = 0x1F
ETB = 0x17
ESC = 0x1B
CR = 0x0D

MAX_BLOCK_DATA = 250
MAX_LINE = 512
LOGIN_PREFIX = b"\x1bPG1"
GO_AHEAD = b"\x1b[p"
DISCONNECT = b"\x1b\x04"
_PAGER_ID_RE = re.compile(r"^[0-9A-Za-z]{1,16}$")


class TapError(FrameError):
    """A TAP block or reply is malformed."""


class TapChecksumError(TapError):
    """A block's checksum does not match its content (the terminal answers NAK)."""


def checksum(block: bytes) -> bytes:
    """The three-character checksum of ``block`` (STX through the terminator, inclusive)."""
    total = sum(b & 0x7F for b in block) & 0xFFF
    return bytes([0x30 + ((total >> 8) & 0xF), 0x30 + ((total >> 4) & 0xF), 0x30 + (total & 0xF)])


@dataclass(frozen=True, slots=True)
class Block:
    """One transmission block: ``content`` (fields, each followed by CR) and its terminator."""

    content: bytes
    terminator: int = ETX

    def __post_init__(self) -> None:
        if self.terminator not in {ETX, ETB, US}:
            raise TapError(f"block terminator 0x{self.terminator:02X} is not ETX, ETB or US")
        if len(self.content) > MAX_BLOCK_DATA:
            raise TapError(f"block content is {len(self.content)} characters, at most 250")
        for i, b in enumerate(self.content):
            if (b < 0x20 and b != CR) or b > 0x7E:
                raise TapError(f"block content has control byte 0x{b:02X} at offset {i}")

    def to_bytes(self) -> bytes:
        body = bytes([STX]) + self.content + bytes([self.terminator])
        return body + checksum(body) + bytes([CR])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Block:
        """Decode ``STX ... term ccc CR``; a wrong checksum raises :class:`TapChecksumError`."""
        if len(raw) < 6 or raw[0] != STX or raw[-1] != CR:
            raise TapError("block does not start with STX and end with CR")
        body, received = raw[:-4], raw[-4:-1]
        terminator = body[-1]
        if terminator not in {ETX, ETB, US}:
            raise TapError(f"block terminator 0x{terminator:02X} is not ETX, ETB or US")
        expected = checksum(body)
        if received != expected:
            raise TapChecksumError(
                f"block checksum {received!r} does not match {expected!r} "
                f"(block of {len(raw)} bytes)"
            )
        return cls(body[1:-1], terminator)


def encode_page(pager_id: str, message: str, *, max_block: int = MAX_BLOCK_DATA) -> list[Block]:
    """The blocks of one page: fields ``pager_id`` and ``message``, split to ``max_block``."""
    if not _PAGER_ID_RE.match(pager_id):
        raise TapError(f"pager ID {pager_id!r} is not 1-16 letters or digits")
    if not 2 <= max_block <= MAX_BLOCK_DATA:
        raise TapError(f"block size {max_block} out of range 2-{MAX_BLOCK_DATA}")
    content = (pager_id + "\r" + message + "\r").encode("ascii")
    blocks: list[Block] = []
    i = 0
    while i < len(content):
        chunk = content[i : i + max_block]
        i += len(chunk)
        if i >= len(content):
            terminator = ETX
        elif chunk.endswith(b"\r"):
            terminator = ETB
        else:
            terminator = US
        blocks.append(Block(chunk, terminator))
    return blocks


def decode_fields(blocks: list[Block]) -> list[str]:
    """Join a transaction's blocks back into its fields."""
    content = b"".join(b.content for b in blocks)
    if not content.endswith(b"\r"):
        raise TapError("last field is not terminated by CR")
    return content[:-1].decode("ascii").split("\r")


def login(password: str = "") -> bytes:
    """The logon sequence for automatic (PG1) entry."""
    if len(password) > 6 or not password.isascii() or not (password.isalnum() or not password):
        raise TapError("TAP password is up to 6 letters or digits")
    return LOGIN_PREFIX + password.encode("ascii") + b"\r"


LOGOUT = bytes([EOT, CR])


# -- the sender's view of the terminal's replies ----------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    """One reply from the terminal: ``kind`` is id, ack, nak, rs, disconnect, go_ahead, text."""

    kind: str
    text: str = ""


class ReplyDecoder:
    """Splits the terminal's output into :class:`Reply` items (``ID=`` comes without CR)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self._buf += data
        out: list[Reply] = []
        while True:
            idx = self._buf.find(b"ID=")
            cr = self._buf.find(b"\r")
            if idx != -1 and (cr == -1 or idx < cr):
                if idx:
                    out.append(Reply("text", self._buf[:idx].decode("ascii", "replace")))
                del self._buf[: idx + 3]
                out.append(Reply("id"))
                continue
            if cr == -1:
                if len(self._buf) > MAX_LINE:
                    raise TapError(f"terminal sent {len(self._buf)} bytes without CR")
                return out
            line = bytes(self._buf[:cr]).lstrip(b"\n")
            del self._buf[: cr + 1]
            out.append(_classify(line))

    def reset(self) -> None:
        self._buf.clear()


def _classify(line: bytes) -> Reply:
    if line == bytes([ACK]):
        return Reply("ack")
    if line == bytes([NAK]):
        return Reply("nak")
    if line == bytes([RS]):
        return Reply("rs")
    if line == DISCONNECT:
        return Reply("disconnect")
    if line == GO_AHEAD:
        return Reply("go_ahead")
    return Reply("text", line.decode("ascii", "replace"))


# -- the terminal's view of the sender ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    """One request from the sender: ``kind`` is wake, login, block, bad_block, logout."""

    kind: str
    password: str = ""
    block: Block | None = None
    error: str = ""


class RequestDecoder:
    """The terminal side: CR (wake-up), ESC PG1 logon, blocks (checksum checked), EOT logoff."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Request]:
        self._buf += data
        out: list[Request] = []
        while self._buf:
            first = self._buf[0]
            if first in {CR, 0x0A}:
                del self._buf[0]
                if first == CR:
                    out.append(Request("wake"))
                continue
            if first == ESC:
                cr = self._buf.find(b"\r")
                if cr == -1:
                    break
                line = bytes(self._buf[:cr])
                del self._buf[: cr + 1]
                if line.startswith(LOGIN_PREFIX):
                    out.append(Request("login", password=line[4:].decode("ascii", "replace")))
                else:
                    out.append(Request("bad_block", error=f"unknown escape sequence {line!r}"))
                continue
            if first == EOT:
                if len(self._buf) < 2:
                    break
                del self._buf[:2]
                out.append(Request("logout"))
                continue
            if first == STX:
                end = -1
                for i in range(1, len(self._buf)):
                    if self._buf[i] in (ETX, ETB, US):
                        end = i
                        break
                if end == -1:
                    if len(self._buf) > MAX_BLOCK_DATA + 6:
                        del self._buf[0]
                        out.append(Request("bad_block", error="block longer than 256 characters"))
                        continue
                    break
                if len(self._buf) < end + 5:
                    break
                raw = bytes(self._buf[: end + 5])
                del self._buf[: end + 5]
                try:
                    out.append(Request("block", block=Block.from_bytes(raw)))
                except TapError as exc:
                    out.append(Request("bad_block", error=str(exc)))
                continue
            # Line noise outside a block: skip a byte and resync on the next STX/ESC/EOT/CR.
            del self._buf[0]
        return out
