"""Write an :class:`~cap_schemas.model.Alert` as a CAP 1.2 document.

The output follows the element order of the CAP 1.2 XSD, writes times with seconds and an
explicit offset, and parses back (with :func:`cap_schemas.parse.parse_alert`) into an equal
alert. Signatures are not part of the model: a serialised alert is unsigned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from lxml import etree

from cap_schemas.model import (
    CAP12_NS,
    Alert,
    AlertKey,
    Area,
    Circle,
    Info,
    Point,
    Polygon,
    Resource,
    ValuePair,
    format_cap_datetime,
)

__all__ = ["format_number", "format_point", "to_element", "to_xml"]

_NSMAP = {None: CAP12_NS}


def _tag(name: str) -> str:
    return f"{{{CAP12_NS}}}{name}"


def format_number(value: float) -> str:
    """A decimal without exponent that reads back as the same float (``NaN``, ``INF`` and
    ``-INF`` as XML Schema writes them: a model read from CAP 1.0/1.1 may hold them, and its
    CAP 1.2 form must still be written for the rules to refuse)."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("INF" if value > 0 else "-INF")
    if value == int(value) and abs(value) < 1e15:
        text = repr(float(value))  # "45.0"
    else:
        text = repr(value)
    if "e" in text or "E" in text:
        text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text


def format_point(point: Point) -> str:
    return f"{format_number(point.lat)},{format_number(point.lon)}"


def _polygon(polygon: Polygon) -> str:
    return " ".join(format_point(p) for p in polygon.points)


def _circle(circle: Circle) -> str:
    return f"{format_point(circle.center)} {format_number(circle.radius_km)}"


def _references(keys: Iterable[AlertKey]) -> str:
    return " ".join(
        f"{k.sender},{k.identifier},{k.sent}" if k.sent else f"{k.sender},{k.identifier}"
        for k in keys
    )


class _Builder:
    def __init__(self, root: etree._Element) -> None:
        self.root = root

    @staticmethod
    def add(parent: etree._Element, name: str, value: str | None) -> None:
        if value is None:
            return
        child = etree.SubElement(parent, _tag(name))
        child.text = value

    def add_time(self, parent: etree._Element, name: str, value: datetime | None) -> None:
        if value is not None:
            self.add(parent, name, format_cap_datetime(value))

    def add_pairs(self, parent: etree._Element, name: str, pairs: Iterable[ValuePair]) -> None:
        for pair in pairs:
            el = etree.SubElement(parent, _tag(name))
            self.add(el, "valueName", pair.name)
            self.add(el, "value", pair.value)

    def info(self, info: Info) -> None:
        el = etree.SubElement(self.root, _tag("info"))
        self.add(el, "language", info.language)
        for category in info.categories:
            self.add(el, "category", category.value)
        self.add(el, "event", info.event)
        for response in info.response_types:
            self.add(el, "responseType", response.value)
        self.add(el, "urgency", info.urgency.value)
        self.add(el, "severity", info.severity.value)
        self.add(el, "certainty", info.certainty.value)
        self.add(el, "audience", info.audience)
        self.add_pairs(el, "eventCode", info.event_codes)
        self.add_time(el, "effective", info.effective)
        self.add_time(el, "onset", info.onset)
        self.add_time(el, "expires", info.expires)
        self.add(el, "senderName", info.sender_name)
        self.add(el, "headline", info.headline)
        self.add(el, "description", info.description)
        self.add(el, "instruction", info.instruction)
        self.add(el, "web", info.web)
        self.add(el, "contact", info.contact)
        self.add_pairs(el, "parameter", info.parameters)
        for resource in info.resources:
            self.resource(el, resource)
        for area in info.areas:
            self.area(el, area)

    def resource(self, parent: etree._Element, resource: Resource) -> None:
        el = etree.SubElement(parent, _tag("resource"))
        self.add(el, "resourceDesc", resource.resource_desc)
        self.add(el, "mimeType", resource.mime_type)
        if resource.size is not None:
            self.add(el, "size", str(resource.size))
        self.add(el, "uri", resource.uri)
        self.add(el, "derefUri", resource.deref_uri)
        self.add(el, "digest", resource.digest)

    def area(self, parent: etree._Element, area: Area) -> None:
        el = etree.SubElement(parent, _tag("area"))
        self.add(el, "areaDesc", area.area_desc)
        for polygon in area.polygons:
            self.add(el, "polygon", _polygon(polygon))
        for circle in area.circles:
            self.add(el, "circle", _circle(circle))
        self.add_pairs(el, "geocode", area.geocodes)
        if area.altitude is not None:
            self.add(el, "altitude", format_number(area.altitude))
        if area.ceiling is not None:
            self.add(el, "ceiling", format_number(area.ceiling))


def to_element(alert: Alert) -> etree._Element:
    """The alert as a CAP 1.2 ``alert`` element (default namespace, XSD element order)."""
    root = etree.Element(_tag("alert"), nsmap=_NSMAP)
    b = _Builder(root)
    b.add(root, "identifier", alert.identifier)
    b.add(root, "sender", alert.sender)
    b.add_time(root, "sent", alert.sent)
    b.add(root, "status", alert.status.value)
    b.add(root, "msgType", alert.msg_type.value)
    b.add(root, "source", alert.source)
    b.add(root, "scope", alert.scope.value)
    b.add(root, "restriction", alert.restriction)
    b.add(root, "addresses", alert.addresses)
    for code in alert.codes:
        b.add(root, "code", code)
    b.add(root, "note", alert.note)
    if alert.references:
        b.add(root, "references", _references(alert.references))
    b.add(root, "incidents", alert.incidents)
    for info in alert.infos:
        b.info(info)
    return root


def to_xml(alert: Alert, *, pretty: bool = False) -> bytes:
    """The alert as CAP 1.2 bytes (UTF-8, with an XML declaration)."""
    return etree.tostring(
        to_element(alert),
        xml_declaration=True,
        encoding="UTF-8",
        pretty_print=pretty,
    )
