"""The NAAD System wire format, sans-IO: heartbeats and the archive.

The NAAD System streams (``streaming1``/``streaming2.naad-adna.pelmorex.com:8080``, NAADS 2.0
over TLS on 8443) carry CAP XML documents back to back with no framing at all: each runs from
``<alert ...>`` to ``</alert>``, sometimes preceded by an XML declaration. The NAADS LMD user
guide and the reference clients (VE3LSR/pynaads, ApatheticDELL/QuantumENDEC) split on the
``</alert>`` terminator; so does the CAP library's :class:`cap_schemas.stream.CapStreamSplitter`,
which this adapter (and the IPAWS and NWS feeds) use.

This module reads heartbeats (``sender`` beginning ``NAADS-Heartbeat``, ``status`` System,
``references`` = the last alerts sent on the stream) and builds archive URLs with the
substitutions of the NAAD short-term repository (``-`` and ``:`` become ``_``, ``+`` becomes
``p``; source: alerting/alerts-naads ``pkg/processor/fetch.go``, ApatheticDELL/QuantumENDEC).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from cap_schemas.errors import CapParseError
from cap_schemas.model import AlertKey
from cap_schemas.parse import ParseLimits, parse_cap_time, parse_xml
from cap_schemas.stream import HEAD_BYTES, canonical_key
from gateway.errors import ConfigError, FrameError

__all__ = [
    "DEFAULT_ARCHIVE_TEMPLATES",
    "HEARTBEAT_SENDER_PREFIX",
    "Heartbeat",
    "HeartbeatError",
    "HeartbeatReference",
    "archive_component",
    "archive_url",
    "check_archive_template",
    "looks_like_heartbeat",
    "read_heartbeat",
]

HEARTBEAT_SENDER_PREFIX = "NAADS-Heartbeat"

#: The short-term archive (standards note §2.5): capcp1 first, capcp2 as its mirror.
DEFAULT_ARCHIVE_TEMPLATES = (
    "http://capcp1.naad-adna.pelmorex.com/{date}/{sent}I{identifier}.xml",
    "http://capcp2.naad-adna.pelmorex.com/{date}/{sent}I{identifier}.xml",
)

# ---------------------------------------------------------------------------------------------
# Identity, heartbeats, archive

class HeartbeatError(FrameError):
    """A document claims to be a NAADS heartbeat but cannot be read as one."""


@dataclass(frozen=True, slots=True)
class HeartbeatReference:
    """One alert a heartbeat lists: its ledger key and the ``sent`` text as written (for URLs)."""

    key: AlertKey
    sent_text: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    identifier: str
    sender: str
    sent: str
    references: tuple[HeartbeatReference, ...]
    #: Triples that could not be read (counted, not fetched).
    bad_references: tuple[str, ...] = ()


def looks_like_heartbeat(raw: bytes) -> bool:
    """Cheap first test: heartbeats are small and name their sender near the top."""
    return len(raw) <= HEAD_BYTES and HEARTBEAT_SENDER_PREFIX.encode() in raw


def read_heartbeat(raw: bytes) -> Heartbeat | None:
    """Read a heartbeat; None when the document is not one (it is then an ordinary alert).

    Raises :class:`HeartbeatError` when the document is malformed XML or names the heartbeat
    sender but lacks what a heartbeat must carry.
    """
    if not looks_like_heartbeat(raw):
        return None
    try:
        root = parse_xml(raw, limits=ParseLimits(max_bytes=HEAD_BYTES, max_depth=8))
    except CapParseError as exc:
        raise HeartbeatError(f"heartbeat candidate is not well-formed XML: {exc}") from None
    fields: dict[str, str] = {}
    for child in root:
        if not isinstance(child.tag, str):
            continue
        local = child.tag.rsplit("}", 1)[-1]
        if (
            local in ("identifier", "sender", "sent", "status", "references")
            and local not in fields
        ):
            fields[local] = (child.text or "").strip()
    sender = fields.get("sender", "")
    if not sender.startswith(HEARTBEAT_SENDER_PREFIX) or fields.get("status") != "System":
        return None
    if not fields.get("identifier") or not fields.get("sent"):
        raise HeartbeatError("heartbeat lacks <identifier> or <sent>")
    refs: list[HeartbeatReference] = []
    bad: list[str] = []
    for triple in fields.get("references", "").split():
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            bad.append(triple)
            continue
        ref_sender, ref_identifier, ref_sent = parts
        try:
            parse_cap_time(ref_sent, lenient=True)
        except CapParseError:
            bad.append(triple)
            continue
        refs.append(
            HeartbeatReference(canonical_key(ref_sender, ref_identifier, ref_sent), ref_sent)
        )
    return Heartbeat(fields["identifier"], sender, fields["sent"], tuple(refs), tuple(bad))


def archive_component(text: str) -> str:
    """The archive's file-name form of a ``sent`` or ``identifier`` value."""
    return text.replace("-", "_").replace("+", "p").replace(":", "_")


_TEMPLATE_FIELDS = frozenset({"date", "sent", "identifier", "sender"})


def check_archive_template(template: str, *, where: str = "archive_templates") -> str:
    """Refuse a template that is not an http(s) URL or names an unknown placeholder."""
    parts = urlsplit(template.replace("{", "").replace("}", ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: {template!r} is not an http:// or https:// URL template")
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in _TEMPLATE_FIELDS:
            allowed = ", ".join(sorted(_TEMPLATE_FIELDS))
            raise ConfigError(f"{where}: {template!r} uses {{{name}}}; allowed: {allowed}")
    return template


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def archive_url(template: str, ref: HeartbeatReference) -> str:
    """The URL of one referenced alert in the archive laid out by ``template``.

    The date folder is the date part of ``sent`` as written (its own offset, not converted).
    """
    date = ref.sent_text[:10]
    if _DATE.fullmatch(date) is None:
        msg = f"sent {ref.sent_text!r} has no date part"
        raise ValueError(msg)
    safe = "._~"
    return template.format(
        date=date,
        sent=quote(archive_component(ref.sent_text), safe=safe),
        identifier=quote(archive_component(ref.key.identifier), safe=safe),
        sender=quote(archive_component(ref.key.sender), safe=safe + "@"),
    )
