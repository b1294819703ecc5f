"""Reading an Atom feed of CAP alerts (sans-IO): which entries there are, and where each
entry's CAP document is.

An entry carries its alert in one of three ways, tried in this order: a CAP ``alert``
element inside its ``content`` (borderlink's history export); a link of a CAP media type
(``application/common-alerting-protocol+xml``, ``application/cap+xml``) as ``enclosure`` or
``alternate`` (borderlink's partner feed, MASAS); or none (the entry is skipped and counted).
The feed is parsed by the hardened parser of the CAP library (no DTD, entities or network;
size and depth caps), so a hostile feed is refused with its line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

from lxml import etree

from adapters.feeds.base import FeedError
from cap_schemas.errors import CapParseError
from cap_schemas.parse import ParseLimits, parse_xml

__all__ = ["FeedEntry", "parse_feed"]

ATOM = "http://www.w3.org/2005/Atom"
CAP_NAMESPACES = (
    "urn:oasis:names:tc:emergency:cap:1.2",
    "urn:oasis:names:tc:emergency:cap:1.1",
    "urn:oasis:names:tc:emergency:cap:1.0",
)
CAP_TYPES = ("application/common-alerting-protocol+xml", "application/cap+xml")
# A borderlink partner feed also lists incident reports: not alerts, passed over uncounted.
INCIDENT_TYPE = "application/vnd.borderlink.incident+json"


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry: its Atom id, and its CAP document inline or at ``cap_url``."""

    id: str
    updated: str
    cap_url: str | None = None
    inline: bytes | None = None


def _inline(entry: etree._Element) -> bytes | None:
    content = entry.find(f"{{{ATOM}}}content")
    if content is None:
        return None
    for ns in CAP_NAMESPACES:
        alert = content.find(f"{{{ns}}}alert")
        if alert is not None:
            return bytes(etree.tostring(alert, encoding="UTF-8", xml_declaration=True))
    return None


def _cap_link(entry: etree._Element, base: str) -> str | None:
    links = entry.findall(f"{{{ATOM}}}link")
    for rel in ("enclosure", "alternate"):
        for link in links:
            if link.get("rel", "alternate") == rel and link.get("type", "") in CAP_TYPES:
                href = link.get("href")
                if href:
                    return urljoin(base, href)
    return None


def _is_incident(entry: etree._Element) -> bool:
    return any(link.get("type") == INCIDENT_TYPE for link in entry.findall(f"{{{ATOM}}}link"))


def parse_feed(
    data: bytes, *, base_url: str, limits: ParseLimits | None = None
) -> tuple[list[FeedEntry], int]:
    """The entries of a feed, and how many carried no CAP alert (skipped).

    Raises :class:`~adapters.feeds.base.FeedError` for a document that is not an Atom feed,
    or that the hardened parser refuses (``reason`` ``malformed`` or ``hostile``).
    """
    try:
        root = parse_xml(data) if limits is None else parse_xml(data, limits=limits)
    except CapParseError as exc:
        reason = "hostile" if type(exc).__name__ == "CapHostileError" else "malformed"
        raise FeedError(f"the feed is not usable XML: {exc}", reason=reason) from None
    if root.tag != f"{{{ATOM}}}feed":
        raise FeedError(f"the document is {root.tag!r}, not an Atom feed", reason="not_atom")
    entries, skipped = [], 0
    for entry in root.findall(f"{{{ATOM}}}entry"):
        ident = (entry.findtext(f"{{{ATOM}}}id") or "").strip()
        updated = (entry.findtext(f"{{{ATOM}}}updated") or "").strip()
        inline = _inline(entry)
        url = None if inline is not None else _cap_link(entry, base_url)
        if inline is None and url is None and _is_incident(entry):
            continue
        if not ident or (inline is None and url is None):
            skipped += 1
            continue
        entries.append(FeedEntry(ident, updated, url, inline))
    return entries, skipped
