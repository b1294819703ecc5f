"""Cutting a byte stream into CAP documents, sans-IO, and naming a document from its head.

Feeds and streams deliver CAP XML documents back to back with no framing of their own (the NAAD
System's TCP streams) or wrapped in an envelope (an IPAWS-OPEN ``alerts`` answer, an NWS feed).
:class:`CapStreamSplitter` cuts them on the ``alert`` root, incrementally and in bounded memory,
and survives what a long-lived stream throws at it:

* a document split over any number of reads, or several documents in one read;
* an XML declaration (in any encoding: the splitter works on bytes and keeps the declaration
  with its document, so an ISO-8859-1 document still decodes) or none;
* garbage between documents (skipped, reported once per run as ``garbage``);
* a document cut short by the start of the next one (``truncated``), or one longer than the
  size cap (``oversize``: discarded while streaming, never buffered past the cap, then resync at
  the next ``<?xml`` or ``<alert``);
* comments and CDATA sections inside a document (a ``</alert>`` in them does not end it).

The splitter never raises on input: it returns :class:`Document` and :class:`Discarded`
events; counting the discards is the caller's business (the adapters count each in
``borderlink_input_rejected_total``). :func:`peek_key` reads ``(sender, identifier, sent)``
from a document's head without parsing it all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cap_schemas.errors import CapParseError
from cap_schemas.model import AlertKey, format_cap_datetime
from cap_schemas.parse import parse_cap_time

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "DEFAULT_MAX_PROLOG_BYTES",
    "HEAD_BYTES",
    "CapStreamSplitter",
    "Discarded",
    "Document",
    "Event",
    "canonical_key",
    "peek_key",
]

#: The NAAD System accepts alerts up to 5 MB (embedded audio); a margin covers the signatures
#: and base64 overhead around that.
DEFAULT_MAX_DOCUMENT_BYTES = 6 * 1024 * 1024

#: An XML declaration plus comments and processing instructions before ``<alert`` (NWS puts a
#: stylesheet PI and a comment block there) must fit in this many bytes.
DEFAULT_MAX_PROLOG_BYTES = 8 * 1024

#: A run of garbage is reported once it reaches this size even if no document follows yet.
GARBAGE_REPORT_BYTES = 64 * 1024

_WS = b" \t\r\n"
# The longest token the scanners look for, minus one: a partial token at the end of the buffer
# is rescanned when more bytes arrive. ``</`` + 64-byte prefix + ``:alert`` + one byte.
_LOOKBACK = 80
_NAME = rb"[A-Za-z_][A-Za-z0-9_.\-]{0,63}"
# Where a document can start: an XML declaration, or an ``alert`` start tag with any prefix.
_START = re.compile(rb"<\?xml[\s?]|<(" + _NAME + rb":)?alert[\s/>]")
# Inside a document: comments and CDATA (skipped), a new declaration or a nested ``alert`` start
# tag (the current document was cut short), an ``alert`` end tag.
_INNER = re.compile(
    rb"<!--|<!\[CDATA\[|<\?xml[\s?]|</("
    + _NAME
    + rb":)?alert[\s>]|<(?:"
    + _NAME
    + rb":)?alert[\s/>]"
)
# What may stand between an XML declaration and the root element.
_PROLOG_OK = re.compile(rb"(?:[ \t\r\n]|<!--.*?-->|<\?(?!xml[\s?]).*?\?>)*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Document:
    """One complete document as it was on the wire (declaration included when there was one).

    ``offset`` is the position of its first byte in the stream since the splitter was created.
    """

    raw: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Discarded:
    """Bytes the splitter skipped: ``reason`` is ``garbage``, ``truncated`` or ``oversize``."""

    reason: str
    size: int
    offset: int
    message: str


Event = Document | Discarded

_OUTSIDE, _PROLOG, _INSIDE, _SKIP = range(4)
_NORMAL, _COMMENT, _CDATA, _START_TAG = range(4)


class CapStreamSplitter:
    """Incremental splitter of a CAP document stream: push bytes in, pull documents out.

    Memory is bounded by the size cap: a document that grows past ``max_document_bytes`` is
    dropped as it streams (reported once as ``oversize``) and the splitter resyncs at the next
    document start. Every byte is examined a bounded number of times, so a 5 MB document fed one
    byte at a time costs the same as one fed whole.
    """

    def __init__(
        self,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_prolog_bytes: int = DEFAULT_MAX_PROLOG_BYTES,
    ) -> None:
        if max_document_bytes < 64:
            msg = f"max_document_bytes must be at least 64, got {max_document_bytes}"
            raise ValueError(msg)
        self.max_document_bytes = max_document_bytes
        self.max_prolog_bytes = max_prolog_bytes
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0]
        self._pos = 0  # where scanning resumes in _buf
        self._state = _OUTSIDE
        self._sub = _NORMAL
        self._qname = b""
        self._garbage = 0
        self._garbage_offset = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a document (never above the size cap)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        """Take the next bytes of the stream; return the documents (and discards) they complete."""
        if data:
            self._buf += data
        events: list[Event] = []
        while self._step(events):
            pass
        if self._garbage >= GARBAGE_REPORT_BYTES:
            self._flush_garbage(events)
        return events

    def close(self) -> list[Event]:
        """The stream ended: report what was pending and start afresh."""
        events: list[Event] = []
        if self._state in (_PROLOG, _INSIDE) and self._buf:
            self._discard(events, "truncated", len(self._buf), "stream ended inside a document")
        elif self._buf:
            self._skip(len(self._buf))
        self._flush_garbage(events)
        self._buf.clear()
        self._state, self._sub, self._pos = _OUTSIDE, _NORMAL, 0
        return events

    # -- internals ----------------------------------------------------------------------------

    def _skip(self, count: int) -> None:
        """Drop ``count`` bytes from the front of the buffer, counting any non-blank as garbage."""
        if count <= 0:
            return
        dropped = bytes(self._buf[:count])
        noise = len(dropped.translate(None, _WS))
        if noise:
            if self._garbage == 0:
                self._garbage_offset = self._offset
            self._garbage += noise
        self._drop(count)

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self._offset += count
        self._pos = max(0, self._pos - count)

    def _flush_garbage(self, events: list[Event]) -> None:
        if self._garbage:
            events.append(
                Discarded(
                    "garbage",
                    self._garbage,
                    self._garbage_offset,
                    f"{self._garbage} bytes that are not a CAP document skipped from stream "
                    f"offset {self._garbage_offset}",
                )
            )
            self._garbage = 0

    def _discard(self, events: list[Event], reason: str, count: int, what: str) -> None:
        self._flush_garbage(events)
        events.append(
            Discarded(
                reason,
                count,
                self._offset,
                f"{what} ({count} bytes from stream offset {self._offset})",
            )
        )
        self._drop(count)

    def _begin_document(self, match: re.Match[bytes]) -> None:
        prefix = match.group(1) or b""
        self._qname = prefix + b"alert"
        self._state, self._sub = _INSIDE, _START_TAG
        self._pos = match.end() - 1

    def _step(self, events: list[Event]) -> bool:
        buf = self._buf
        if self._state == _OUTSIDE:
            match = _START.search(buf, self._pos)
            if match is None:
                self._skip(len(buf) - _LOOKBACK)
                self._pos = 0
                return False
            self._skip(match.start())
            self._pos = 0
            if buf.startswith(b"<?xml"):
                self._state, self._pos = _PROLOG, 5
                return True
            match = _START.match(buf)
            assert match is not None
            self._begin_document(match)
            return True

        if self._state == _PROLOG:
            return self._step_prolog()

        if self._state == _SKIP:
            match = _START.search(buf, self._pos)
            if match is None:
                self._drop(max(0, len(buf) - _LOOKBACK))
                self._pos = 0
                return False
            self._drop(match.start())
            self._state, self._pos = _OUTSIDE, 0
            return True

        return self._step_inside(events)

    def _step_prolog(self) -> bool:
        buf = self._buf
        decl_end = buf.find(b"?>", 5)
        if decl_end < 0:
            if len(buf) > self.max_prolog_bytes:
                self._demote()
                return True
            return False
        match = _START.search(buf, decl_end + 2)
        if match is None:
            if len(buf) > self.max_prolog_bytes:
                self._demote()
                return True
            return False
        between = bytes(buf[decl_end + 2 : match.start()])
        if (
            match.group().startswith(b"<?xml")
            or match.start() > self.max_prolog_bytes
            or _PROLOG_OK.fullmatch(between) is None
        ):
            # A declaration with no document of its own: it and whatever follows it up to the
            # next start are garbage.
            self._demote()
            return True
        self._begin_document(match)
        return True

    def _demote(self) -> None:
        self._state, self._pos = _OUTSIDE, 1
        self._skip(1)

    def _step_inside(self, events: list[Event]) -> bool:
        buf = self._buf
        if self._pos > self.max_document_bytes:
            self._flush_garbage(events)
            events.append(
                Discarded(
                    "oversize",
                    self._pos,
                    self._offset,
                    f"document from stream offset {self._offset} exceeds "
                    f"{self.max_document_bytes} bytes; skipped to the next document",
                )
            )
            self._drop(self._pos)
            self._state, self._sub, self._pos = _SKIP, _NORMAL, 0
            return True
        if self._sub == _START_TAG:
            gt = buf.find(b">", self._pos)
            if gt < 0:
                self._pos = len(buf)
                return False
            self._sub = _NORMAL
            if buf[gt - 1 : gt] == b"/":  # <alert/>: an empty document, complete as it is
                return self._emit(events, gt + 1)
            self._pos = gt + 1
            return True
        if self._sub in (_COMMENT, _CDATA):
            closer = b"-->" if self._sub == _COMMENT else b"]]>"
            end = buf.find(closer, self._pos)
            if end < 0:
                self._pos = max(self._pos, len(buf) - 2)
                return False
            self._sub, self._pos = _NORMAL, end + 3
            return True
        match = _INNER.search(buf, self._pos)
        if match is None:
            self._pos = max(self._pos, len(buf) - _LOOKBACK)
            return False
        token = match.group()
        if token == b"<!--":
            self._sub, self._pos = _COMMENT, match.end()
            return True
        if token == b"<![CDATA[":
            self._sub, self._pos = _CDATA, match.end()
            return True
        if token.startswith(b"</"):
            if (match.group(1) or b"") + b"alert" != self._qname:
                self._pos = match.end()
                return True
            gt = buf.find(b">", match.end() - 1)
            if gt < 0:
                self._pos = match.start()
                return False
            return self._emit(events, gt + 1)
        # A new declaration or a nested <alert>: CAP never nests alerts, so the current document
        # was cut short (a dropped connection upstream, bytes lost). Keep the new start.
        self._discard(events, "truncated", match.start(), "document cut short by a new one")
        self._state, self._sub, self._pos = _OUTSIDE, _NORMAL, 0
        return True

    def _emit(self, events: list[Event], end: int) -> bool:
        self._flush_garbage(events)
        if end > self.max_document_bytes:
            self._discard(events, "oversize", end, "document exceeds the size cap")
        else:
            events.append(Document(bytes(self._buf[:end]), self._offset))
            self._drop(end)
        self._state, self._sub, self._pos = _OUTSIDE, _NORMAL, 0
        return True



HEAD_BYTES = 64 * 1024


def _head_field(head: bytes, name: bytes) -> str | None:
    match = re.search(rb"<(?:" + _NAME + rb":)?" + name + rb">\s*([^<]*?)\s*</", head)
    if match is None:
        return None
    try:
        return match.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return match.group(1).decode("latin-1")


def canonical_key(sender: str, identifier: str, sent: str) -> AlertKey:
    """The ledger's key for a triple: ``sent`` rewritten the way :attr:`Alert.key` writes it."""
    try:
        when = parse_cap_time(sent, lenient=True)
    except CapParseError:
        return AlertKey(sender, identifier, sent)
    return AlertKey(sender, identifier, format_cap_datetime(when))


def peek_key(raw: bytes) -> AlertKey | None:
    """Read ``(sender, identifier, sent)`` from the head of a document without parsing it all.

    CAP's strict element order puts the three first, so a 5 MB alert is not parsed twice just
    to learn its name. Returns None when any of them is missing.
    """
    head = raw[:HEAD_BYTES]
    identifier = _head_field(head, b"identifier")
    sender = _head_field(head, b"sender")
    sent = _head_field(head, b"sent")
    if not (identifier and sender and sent):
        return None
    return canonical_key(sender, identifier, sent)
