"""IPAWS-OPEN feed responses, sans-IO: URLs, the ``alerts`` envelope.

A ``GET .../rest/<feed>/recent/<timestamp>`` answers with the alerts posted since the
timestamp, wrapped in one envelope (public clients and the IPAWS-OPEN message list model
agree on its shape)::

    <ns1:alerts xmlns:ns1="http://gov.fema.ipaws.services/feed">
      <alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"> ... </alert>
      ...
    </ns1:alerts>

:func:`extract_alerts` returns each ``alert`` as a document of its own. Signatures cover the
original bytes, so the exact byte range of each alert is kept when it stands alone (the usual
case: each carries its own CAP namespace declaration); an alert that leans on a namespace
declared by the envelope is re-serialised instead. Sources for the feed names, the 2-minute
polling floor and the envelope: standards note §3.5 (KR8MER/eas-station relaying FEMA PMO
guidance).
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from adapters.feeds.base import FeedError
from cap_schemas.errors import CapParseError
from cap_schemas.model import CAP10_NS, CAP11_NS, CAP12_NS
from cap_schemas.parse import ParseLimits, parse_xml
from cap_schemas.stream import CapStreamSplitter, Document

__all__ = [
    "DEFAULT_BASE_URL",
    "FEEDS",
    "FeedError",
    "extract_alerts",
    "recent_url",
]

DEFAULT_BASE_URL = "https://apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest"
STAGING_BASE_URL = "https://tdl.apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest"
FEEDS = ("eas", "nwem", "PublicWEA", "public", "public_non_eas")
CAP_NAMESPACES = frozenset({CAP12_NS, CAP11_NS, CAP10_NS})


def format_timestamp(when: datetime) -> str:
    """The ``recent/<timestamp>`` form: ISO-8601 in UTC, seconds, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recent_url(base_url: str, feed: str, since: datetime) -> str:
    return f"{base_url.rstrip('/')}/{feed}/recent/{format_timestamp(since)}"


def _local(tag: object) -> tuple[str | None, str]:
    if not isinstance(tag, str):
        return None, ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def _standalone(raw: bytes, limits: ParseLimits) -> bool:
    try:
        root = parse_xml(raw, limits=limits)
    except CapParseError:
        return False
    ns, local = _local(root.tag)
    return local == "alert" and ns in CAP_NAMESPACES


def extract_alerts(body: bytes, *, max_bytes: int) -> list[bytes]:
    """Every CAP alert of a feed response, each as a standalone document.

    Raises :class:`FeedError` when the body is not XML (``reason="syntax"`` and the parser's
    reasons: ``doctype``, ``entity``, ``too_large``...) or not an IPAWS envelope
    (``reason="not_feed"``).
    """
    limits = ParseLimits(max_bytes=max_bytes, max_depth=64)
    try:
        root = parse_xml(body, limits=limits)
    except CapParseError as exc:
        raise FeedError(f"feed response refused: {exc}", reason=exc.reason) from None
    ns, local = _local(root.tag)
    if local == "alert" and ns in CAP_NAMESPACES:
        return [body]
    if local != "alerts":
        raise FeedError(
            f"feed response has root <{local or root.tag!s}>, expected <alerts>",
            reason="not_feed",
        )
    elements = [
        c for c in root if _local(c.tag)[1] == "alert" and _local(c.tag)[0] in CAP_NAMESPACES
    ]
    if not elements:
        return []
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
    declaration = b""
    if encoding not in ("UTF-8", "UTF8", "US-ASCII", "ASCII"):
        declaration = f'<?xml version="1.0" encoding="{encoding}"?>\n'.encode("ascii")
    splitter = CapStreamSplitter(max_document_bytes=max_bytes)
    slices = [e.raw for e in (*splitter.feed(body), *splitter.close()) if isinstance(e, Document)]
    out: list[bytes] = []
    for index, element in enumerate(elements):
        if len(slices) == len(elements):
            candidate = declaration + slices[index]
            if _standalone(candidate, limits):
                out.append(candidate)
                continue
        out.append(etree.tostring(element, encoding="UTF-8", xml_declaration=True))
    return out
