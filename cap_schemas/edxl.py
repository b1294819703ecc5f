"""EDXL-DE 1.0 and 2.0 envelopes: wrap CAP (or other content) and unwrap it, with XSD checks.

* :func:`wrap` builds an ``EDXLDistribution`` (1.0) or ``edxlDistribution`` (2.0) carrying
  CAP documents in ``embeddedXMLContent`` (the alert's original bytes are embedded as they
  are, so enveloped signatures stay intact) and other payloads as base64 non-XML content.
* :func:`unwrap` reads either version (hardened parser), returning the envelope fields and
  its contents; :func:`unwrap_alerts` returns the CAP alerts inside, whether the CAP elements
  use a prefix (``cap:alert``) or a default namespace.
* :func:`validate_edxl` checks an envelope against ``xsd/edxl-de-1.0.xsd`` or
  ``xsd/edxl-de-2.0.xsd``.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from lxml import etree

from cap_schemas.errors import CapParseError
from cap_schemas.model import CAP10_NS, CAP11_NS, CAP12_NS, Alert, format_cap_datetime
from cap_schemas.parse import (
    SCHEMA_COMPILE_LOCK,
    ParseLimits,
    parse_alert_element,
    parse_xml,
)
from cap_schemas.rules import ERROR, Finding

__all__ = [
    "DE1_NS",
    "DE2_NS",
    "Content",
    "EdxlError",
    "Envelope",
    "unwrap",
    "unwrap_alerts",
    "validate_edxl",
    "wrap",
]

DE1_NS = "urn:oasis:names:tc:emergency:EDXL:DE:1.0"
DE2_NS = "urn:oasis:names:tc:emergency:EDXL:DE:2.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
_CAP_NAMESPACES = (CAP12_NS, CAP11_NS, CAP10_NS)
_ROOTS = {
    f"{{{DE1_NS}}}EDXLDistribution": "1.0",
    f"{{{DE2_NS}}}edxlDistribution": "2.0",
    f"{{{DE2_NS}}}EDXLDistribution": "2.0",
}
_local = threading.local()


class EdxlError(CapParseError):
    """The bytes are not an EDXL-DE envelope we accept."""


@dataclass(frozen=True, slots=True)
class Content:
    """One content object: an XML element (serialised) or non-XML bytes with a MIME type."""

    mime_type: str
    data: bytes
    description: str | None = None
    xml_root: str | None = None  # "{namespace}local" of embedded XML


@dataclass(frozen=True, slots=True)
class Envelope:
    version: str
    distribution_id: str
    sender_id: str
    sent: str
    status: str
    kind: str
    expires: str | None
    contents: tuple[Content, ...]


def _el(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        child.text = text
    return child


def wrap(
    payloads: Sequence[bytes | tuple[str, bytes]],
    *,
    version: str,
    distribution_id: str,
    sender_id: str,
    sent: datetime,
    status: str = "Actual",
    kind: str = "Report",
    expires: datetime | None = None,
    language: str | None = None,
    description: str | None = None,
) -> bytes:
    """An envelope carrying ``payloads``: XML documents as bytes, other content as
    ``(mime_type, bytes)``. Version ``"1.0"`` or ``"2.0"`` (2.0 requires ``expires``)."""
    if version == "1.0":
        ns = DE1_NS
        root = etree.Element(f"{{{ns}}}EDXLDistribution", nsmap={None: ns})
    elif version == "2.0":
        ns = DE2_NS
        if expires is None:
            msg = "EDXL-DE 2.0 requires dateTimeExpires"
            raise ValueError(msg)
        root = etree.Element(f"{{{ns}}}edxlDistribution", nsmap={None: ns, "xlink": XLINK_NS})
        root.set(f"{{{XLINK_NS}}}type", "extended")
    else:
        msg = f"EDXL-DE version {version!r} is not 1.0 or 2.0"
        raise ValueError(msg)
    _el(root, ns, "distributionID", distribution_id)
    _el(root, ns, "senderID", sender_id)
    _el(root, ns, "dateTimeSent", format_cap_datetime(sent))
    if version == "2.0" and expires is not None:
        _el(root, ns, "dateTimeExpires", format_cap_datetime(expires))
    _el(root, ns, "distributionStatus", status)
    _el(root, ns, "distributionType" if version == "1.0" else "distributionKind", kind)
    if version == "1.0":
        _el(root, ns, "combinedConfidentiality", "Unclassified")
        if language:
            _el(root, ns, "language", language)
        holder = root
    else:
        if language:
            descriptor = _el(root, ns, "descriptor")
            descriptor.set(f"{{{XLINK_NS}}}type", "resource")
            _el(descriptor, ns, "language", language)
        holder = _el(root, ns, "content")
        holder.set(f"{{{XLINK_NS}}}type", "resource")
    for payload in payloads:
        obj = _el(holder, ns, "contentObject")
        if version == "1.0":
            if description:
                _el(obj, ns, "contentDescription", description)
        else:
            obj.set(f"{{{XLINK_NS}}}type", "resource")
            if description:
                _el(_el(obj, ns, "contentDescriptor"), ns, "contentDescription", description)
        if isinstance(payload, tuple):
            mime, data = payload
            body = _el(obj, ns, "nonXMLContent" if version == "1.0" else "otherContent")
            _el(body, ns, "mimeType", mime)
            _el(body, ns, "size", str(len(data)))
            _el(body, ns, "contentData", base64.b64encode(data).decode("ascii"))
        else:
            body = _el(obj, ns, "xmlContent" if version == "1.0" else "contentXML")
            embedded = _el(body, ns, "embeddedXMLContent")
            embedded.append(parse_xml(payload))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _text(parent: etree._Element, ns: str, name: str) -> str | None:
    child = parent.find(f"{{{ns}}}{name}")
    return None if child is None or child.text is None else child.text.strip()


def _required(parent: etree._Element, ns: str, name: str) -> str:
    value = _text(parent, ns, name)
    if not value:
        msg = f"EDXL-DE envelope has no <{name}>"
        raise EdxlError(msg, line=parent.sourceline, reason="not_edxl")
    return value


def _root(data: bytes | etree._Element, limits: ParseLimits) -> tuple[etree._Element, str]:
    root = data if isinstance(data, etree._Element) else parse_xml(data, limits=limits)
    version = _ROOTS.get(str(root.tag))
    if version is None:
        msg = f"root element {root.tag!r} is not an EDXL-DE 1.0 or 2.0 distribution"
        raise EdxlError(msg, line=root.sourceline, reason="not_edxl")
    return root, version


def looks_like_edxl(data: bytes) -> bool:
    """Whether a document's head names an EDXL-DE distribution (1.0 ``EDXLDistribution``,
    2.0 ``edxlDistribution``); the parse that follows decides for certain."""
    head = data[:4096]
    return b"EDXLDistribution" in head or b"edxlDistribution" in head


def unwrap(data: bytes, *, limits: ParseLimits = ParseLimits()) -> Envelope:  # noqa: B008 -- frozen
    """The envelope fields and every content object."""
    root, version = _root(data, limits)
    ns = DE1_NS if version == "1.0" else DE2_NS
    contents: list[Content] = []
    objects = root.iter(f"{{{ns}}}contentObject")
    for obj in objects:
        desc = _text(obj, ns, "contentDescription")
        if desc is None:
            cd = obj.find(f"{{{ns}}}contentDescriptor")
            desc = _text(cd, ns, "contentDescription") if cd is not None else None
        for embedded in obj.iter(f"{{{ns}}}embeddedXMLContent"):
            for child in embedded:
                if not isinstance(child.tag, str):
                    continue
                contents.append(
                    Content(
                        "application/xml",
                        etree.tostring(child),
                        desc,
                        str(child.tag),
                    )
                )
        for name in ("nonXMLContent", "otherContent"):
            for body in obj.findall(f"{{{ns}}}{name}"):
                mime = _text(body, ns, "mimeType") or "application/octet-stream"
                raw = _text(body, ns, "contentData") or ""
                try:
                    payload = base64.b64decode("".join(raw.split()), validate=True)
                except (binascii.Error, ValueError):
                    msg = "EDXL-DE contentData is not base64"
                    raise EdxlError(msg, line=body.sourceline, reason="bad_value") from None
                contents.append(Content(mime, payload, desc))
    return Envelope(
        version=version,
        distribution_id=_required(root, ns, "distributionID"),
        sender_id=_required(root, ns, "senderID"),
        sent=_required(root, ns, "dateTimeSent"),
        status=_required(root, ns, "distributionStatus"),
        kind=_required(root, ns, "distributionType" if version == "1.0" else "distributionKind"),
        expires=_text(root, ns, "dateTimeExpires"),
        contents=tuple(contents),
    )


def unwrap_alerts(data: bytes, *, limits: ParseLimits = ParseLimits()) -> list[Alert]:  # noqa: B008 -- frozen
    """Every CAP alert inside an EDXL-DE envelope (prefixed or default namespace)."""
    root, version = _root(data, limits)
    ns = DE1_NS if version == "1.0" else DE2_NS
    tags = {f"{{{cap}}}alert" for cap in _CAP_NAMESPACES}
    return [
        parse_alert_element(child, raw=etree.tostring(child))
        for embedded in root.iter(f"{{{ns}}}embeddedXMLContent")
        for child in embedded
        if isinstance(child.tag, str) and child.tag in tags
    ]


def _schema(version: str) -> etree.XMLSchema:
    cache: dict[str, etree.XMLSchema] = getattr(_local, "schemas", {})
    _local.schemas = cache
    if version not in cache:
        name = "edxl-de-1.0.xsd" if version == "1.0" else "edxl-de-2.0.xsd"
        with resources.as_file(resources.files("cap_schemas").joinpath(f"xsd/{name}")) as path:
            parser = etree.XMLParser(resolve_entities=False, no_network=True)
            with SCHEMA_COMPILE_LOCK:
                cache[version] = etree.XMLSchema(etree.parse(str(path), parser))
    return cache[version]


def validate_edxl(data: bytes, *, limits: ParseLimits = ParseLimits()) -> list[Finding]:  # noqa: B008 -- frozen
    """XSD findings for an EDXL-DE 1.0 or 2.0 envelope (empty when valid)."""
    try:
        root, version = _root(data, limits)
    except CapParseError as exc:
        return [Finding(ERROR, "edxl", "/", str(exc))]
    schema = _schema(version)
    if schema.validate(root.getroottree()):
        return []
    return [
        Finding(ERROR, "edxl.xsd", entry.path or "/", f"line {entry.line}: {entry.message}")
        for entry in schema.error_log
    ]
