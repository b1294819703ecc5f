"""APRS 1.0.1 messages, acknowledgements, rejections and bulletins (the ``:`` data type).

Source: APRS Protocol Reference 1.0.1 (APRS Working Group, 2000), chapter 14 "Messages,
Bulletins and Announcements":

- message ``:ADDRESSEE:text{NNNNN`` — addressee a fixed 9-character space-padded field,
  text at most 67 characters of printable ASCII except ``|``, ``~`` and ``{``, message
  number up to 5 alphanumerics; a numbered message is answered ``:SENDER   :ackNNNNN`` or
  ``:SENDER   :rejNNNNN``;
- bulletin ``:BLNn     :text`` (n = 0-9), announcement ``:BLNx     :text`` (x = A-Z),
  group bulletin ``:BLNnGGGGG:text`` (group name up to 5 characters); text at most 67
  characters without ``|`` and ``~``; bulletins are never acknowledged.

The APRS 1.1 reply-ack extension (``{MM}AA``) is read: the part before ``}`` is the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import FrameError
from gateway.plaintext import APRS_BULLETIN, APRS_MESSAGE

MAX_TEXT = APRS_MESSAGE.budget
ADDRESSEE_WIDTH = 9
_NUMBER_RE = re.compile(r"^[A-Za-z0-9]{1,5}$")
_ADDRESSEE_RE = re.compile(r"^[\x21-\x7e]{1,9}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9]{0,5}$")
MESSAGE_FORBIDDEN = APRS_MESSAGE.forbidden
BULLETIN_FORBIDDEN = APRS_BULLETIN.forbidden


class AprsError(FrameError):
    """An APRS message-type packet is malformed (what and where in the message)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A directed message; ``number`` set means the receiver must acknowledge it."""

    addressee: str
    text: str
    number: str | None = None

    def __post_init__(self) -> None:
        _check_addressee(self.addressee)
        _check_text(self.text, MESSAGE_FORBIDDEN, "message")
        if self.number is not None and not _NUMBER_RE.match(self.number):
            raise AprsError(f"message number {self.number!r} is not 1-5 letters or digits")

    def to_info(self) -> bytes:
        tail = "" if self.number is None else "{" + self.number
        return _head(self.addressee) + (self.text + tail).encode("ascii")


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledgement of message ``number`` sent back to ``addressee`` (the original sender)."""

    addressee: str
    number: str

    def __post_init__(self) -> None:
        _check_addressee(self.addressee)
        if not _NUMBER_RE.match(self.number):
            raise AprsError(f"ack number {self.number!r} is not 1-5 letters or digits")

    def to_info(self) -> bytes:
        return _head(self.addressee) + b"ack" + self.number.encode("ascii")


@dataclass(frozen=True, slots=True)
class Rej:
    """Rejection of message ``number``."""

    addressee: str
    number: str

    def __post_init__(self) -> None:
        _check_addressee(self.addressee)
        if not _NUMBER_RE.match(self.number):
            raise AprsError(f"rej number {self.number!r} is not 1-5 letters or digits")

    def to_info(self) -> bytes:
        return _head(self.addressee) + b"rej" + self.number.encode("ascii")


@dataclass(frozen=True, slots=True)
class Bulletin:
    """A general bulletin (``ident`` 0-9), announcement (A-Z) or group bulletin (``group``)."""

    ident: str
    text: str
    group: str = ""

    def __post_init__(self) -> None:
        if len(self.ident) != 1 or not (self.ident.isdigit() or "A" <= self.ident <= "Z"):
            raise AprsError(f"bulletin identifier {self.ident!r} is not one of 0-9 or A-Z")
        if not _GROUP_RE.match(self.group):
            raise AprsError(f"bulletin group {self.group!r} is not up to 5 letters or digits")
        _check_text(self.text, BULLETIN_FORBIDDEN, "bulletin")

    @property
    def addressee(self) -> str:
        return f"BLN{self.ident}{self.group}"

    def to_info(self) -> bytes:
        return _head(self.addressee) + self.text.encode("ascii")


Packet = Message | Ack | Rej | Bulletin


def _head(addressee: str) -> bytes:
    return b":" + addressee.ljust(ADDRESSEE_WIDTH).encode("ascii") + b":"


def _check_addressee(addressee: str) -> None:
    if not _ADDRESSEE_RE.match(addressee):
        raise AprsError(f"addressee {addressee!r} is not 1-9 printable ASCII characters")


def _check_text(text: str, forbidden: str, what: str) -> None:
    if len(text) > MAX_TEXT:
        raise AprsError(f"{what} text is {len(text)} characters, at most {MAX_TEXT}")
    for i, ch in enumerate(text):
        if not " " <= ch <= "~" or ch in forbidden:
            raise AprsError(f"{what} text has forbidden character {ch!r} at position {i}")


def decode(info: bytes) -> Packet | None:
    """Decode an AX.25 info field; ``None`` when it is not a message-type (``:``) packet.

    A ``:`` packet that breaks the format raises :class:`AprsError`. Trailing CR/LF (which
    some stations append) is ignored.
    """
    if not info.startswith(b":"):
        return None
    body = info.rstrip(b"\r\n")
    if len(body) < 11 or body[10:11] != b":":
        raise AprsError("message addressee is not a 9-character field between ':' and ':'")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AprsError(f"message has a non-ASCII byte at offset {exc.start}") from None
    addressee = text[1:10].rstrip(" ")
    content = text[11:]
    if not addressee:
        raise AprsError("message addressee is blank")
    if addressee.startswith("BLN") and len(addressee) >= 4:
        return Bulletin(addressee[3], content, addressee[4:])
    if content[:3] in {"ack", "rej"} and _NUMBER_RE.match(content[3:].split("}")[0] or "-"):
        acked = content[3:].split("}")[0]
        return Ack(addressee, acked) if content[:3] == "ack" else Rej(addressee, acked)
    number: str | None = None
    if "{" in content:
        content, _, tail = content.partition("{")
        number = tail.split("}")[0]
    return Message(addressee, content, number)


class MessageNumbers:
    """Message numbers 1..99999 in turn (five digits fit the APRS 1.0.1 field)."""

    def __init__(self, start: int = 1) -> None:
        self._next = max(1, start)

    def next(self) -> str:
        value = self._next
        self._next = 1 if value >= 99999 else value + 1
        return str(value)
