"""Alerts as an Atom feed (RFC 4287) with each CAP document inside its entry.

The form partners' map tools read (the Canada–US experiments used Atom entries with the CAP
alert attached): one ``entry`` per alert -- its key as ``id``, the headline as ``title``,
the CAP bytes as ``content`` of type ``application/cap+xml`` (the XML element itself, not
escaped text, so a reader gets the signed alert unchanged) and a link to its page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from gateway.console.views import Found

__all__ = ["atom_feed"]

ATOM = "http://www.w3.org/2005/Atom"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _el(parent: etree._Element, name: str, text: str = "", **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ATOM}}}{name}", attrs)
    if text:
        child.text = text
    return child


def atom_feed(found: Sequence[Found], *, title: str, url: str, now: datetime) -> bytes:
    """The feed document (UTF-8 bytes)."""
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    _el(feed, "id", url)
    _el(feed, "title", title)
    _el(feed, "updated", now.isoformat())
    _el(feed, "link", rel="self", href=url)
    for item in found:
        stored = item.stored
        entry = _el(feed, "entry")
        _el(entry, "id", f"urn:borderlink:alert:{stored.key}")
        _el(entry, "title", stored.headline or stored.event or stored.key.identifier)
        _el(entry, "updated", stored.received_at.isoformat())
        author = _el(entry, "author")
        _el(author, "name", stored.sender_name or stored.key.sender)
        _el(entry, "category", term=stored.severity or "Unknown", label="severity")
        _el(entry, "link", rel="alternate", href=item.href)
        content = _el(entry, "content", type="application/cap+xml")
        try:
            content.append(etree.fromstring(stored.raw, _PARSER))
        except etree.XMLSyntaxError:
            content.text = stored.raw.decode("utf-8", "replace")
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8"))
