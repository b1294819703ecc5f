"""The serial line protocol of EAS encoder/decoders (ENDECs), sans-IO.

ENDECs report each header they decode off the air, and take headers to originate, as lines
of ASCII on an RS-232 port: ``ZCZC-ORG-EEE-PSSCCC...+TTTT-JJJHHMM-LLLLLLLL-`` and ``NNNN``
for an end of message. Makes differ in the framing around the text, so it is configurable
(:class:`EndecFraming`): an optional prefix before the text (``"<ENDEC>"``, ``"\\x02"`` ...)
and the line terminator (CR LF by default; any of CR, LF or CR LF is accepted on input).

:class:`EndecCodec` is the stream decoder (``feed(bytes) -> list[EndecLine]``) and encoder
(``to_bytes(text)``). A line that is not a SAME header or EOM, an overlong line, or bytes
outside printable ASCII are rejected with :class:`EndecFrameError` (from :meth:`decode_line`),
reported in ``rejections`` (the adapter counts them in ``borderlink_input_rejected_total``)
and skipped; the decoder carries on with the next line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import structlog

from adapters.eas.same_modem import EOM, HEADER_RE
from gateway.errors import FrameError, Rejections

log = structlog.get_logger(__name__)

COMPONENT = "endec"
MAX_LINE = 512


class EndecFrameError(FrameError):
    """One line from an ENDEC is not a SAME header or EOM; says what and where."""

    def __init__(self, message: str, *, reason: str, offset: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.offset = offset


def _unescape(text: str) -> bytes:
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


@dataclass(frozen=True, slots=True)
class EndecFraming:
    """How an ENDEC frames a header on its serial line."""

    prefix: bytes = b""
    terminator: bytes = b"\r\n"
    max_line: int = MAX_LINE

    def __post_init__(self) -> None:
        if not self.terminator:
            raise ValueError("the ENDEC line terminator must not be empty")
        if self.max_line < 64:
            raise ValueError(f"max_line {self.max_line} is too short for a SAME header")

    @classmethod
    def from_options(cls, prefix: str = "", terminator: str = "\\r\\n") -> EndecFraming:
        """From configuration strings with backslash escapes (``"\\x02"``, ``"\\r\\n"``)."""
        return cls(prefix=_unescape(prefix), terminator=_unescape(terminator))


@dataclass(frozen=True, slots=True)
class EndecLine:
    """A header or EOM reported by (or sent to) an ENDEC."""

    kind: Literal["header", "eom"]
    text: str


@dataclass
class EndecCodec:
    """Stream decoder and encoder of ENDEC lines."""

    framing: EndecFraming = field(default_factory=EndecFraming)
    _buffer: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _discarding: bool = field(default=False, init=False, repr=False)
    _offset: int = field(default=0, init=False, repr=False)
    rejected: int = field(default=0, init=False)
    rejections: Rejections = field(default_factory=Rejections, init=False, repr=False)

    def to_bytes(self, text: str) -> bytes:
        """Frame a header (or ``NNNN``) for the ENDEC; raises EndecFrameError if invalid."""
        line = self.parse_text(text.encode("ascii", errors="replace"))
        return self.framing.prefix + line.text.encode("ascii") + self.framing.terminator

    def decode_line(self, raw: bytes, offset: int = 0) -> EndecLine:
        """One line (without terminator) to an EndecLine, or EndecFrameError."""
        line = raw
        prefix = self.framing.prefix
        if prefix:
            at = line.find(prefix)
            if at < 0:
                raise EndecFrameError(
                    f"line at byte {offset} lacks the framing prefix {prefix!r}: {raw[:40]!r}",
                    reason="no_prefix",
                    offset=offset,
                )
            offset += at + len(prefix)
            line = line[at + len(prefix) :]
        return self.parse_text(line.rstrip(self.framing.terminator), offset)

    def parse_text(self, raw: bytes, offset: int = 0) -> EndecLine:
        """Header or EOM text (no framing) to an EndecLine, or EndecFrameError."""
        line = raw.strip(b"\x00").lstrip(b" \t")
        trimmed = line.rstrip(b" \t")
        if trimmed.endswith(b"-") or trimmed == b"NNNN":
            line = trimmed  # trailing blanks after the text; a station's own spaces stay
        for i, byte in enumerate(line):
            if not 0x20 <= byte <= 0x7E:
                raise EndecFrameError(
                    f"byte 0x{byte:02X} at offset {offset + i} is not printable ASCII",
                    reason="not_ascii",
                    offset=offset + i,
                )
        text = line.decode("ascii")
        if text == EOM:
            return EndecLine("eom", EOM)
        # Some ENDECs leave out the trailing dash: accept it back.
        candidate = text if text.endswith("-") else text + "-"
        if HEADER_RE.fullmatch(candidate):
            return EndecLine("header", candidate)
        raise EndecFrameError(
            f"line at byte {offset} is not a SAME header or NNNN: {text[:60]!r}",
            reason="not_same",
            offset=offset,
        )

    def feed(self, data: bytes) -> list[EndecLine]:
        """Take bytes from the ENDEC; return the complete, valid lines."""
        out: list[EndecLine] = []
        for byte in data:
            if byte in (0x0D, 0x0A) or self._ends_with_terminator(byte):
                self._end_line(out)
                continue
            if self._discarding:
                continue
            self._buffer.append(byte)
            if len(self._buffer) > self.framing.max_line:
                self._reject(
                    EndecFrameError(
                        f"line at byte {self._offset} is longer than {self.framing.max_line} bytes",
                        reason="too_long",
                        offset=self._offset,
                    )
                )
                self._buffer.clear()
                self._discarding = True
        return out

    def _ends_with_terminator(self, byte: int) -> bool:
        term = self.framing.terminator
        if term in (b"\r\n", b"\r", b"\n"):
            return False  # handled by the CR/LF check
        if byte != term[-1]:
            return False
        if len(term) == 1:
            return True
        if self._buffer.endswith(term[:-1]):
            del self._buffer[-(len(term) - 1) :]
            return True
        return False

    def _end_line(self, out: list[EndecLine]) -> None:
        raw = bytes(self._buffer)
        start = self._offset
        self._offset += len(raw) + 1
        self._buffer.clear()
        if self._discarding:
            self._discarding = False
            return
        if not raw.strip(b" \t\x00"):
            return
        try:
            out.append(self.decode_line(raw, start))
        except EndecFrameError as exc:
            self._reject(exc)

    def _reject(self, exc: EndecFrameError) -> None:
        self.rejected += 1
        self.rejections.add(COMPONENT, exc.reason)
        log.warning("endec_line_rejected", reason=exc.reason, error=str(exc))
