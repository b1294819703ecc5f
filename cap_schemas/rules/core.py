"""CAP 1.2 rules that the XSD cannot express (OASIS CAP 1.2 §3.2-3.3).

Rule ids start with ``cap.``. A few severities depend on the profile the alert is checked
against (``profile`` is "cap", "cap-cp" or "ipaws"), notably the zero UTC offset: see
:func:`_zero_offset_severity`.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Iterator, Sequence
from datetime import datetime

from cap_schemas.model import Alert, Area, Info, MsgType, Resource, Scope, format_cap_datetime
from cap_schemas.parse import parse_cap_time
from cap_schemas.rules import ERROR, INFO, WARNING, Finding, area_path, info_path

# identifier / sender: "MUST NOT include spaces, commas or restricted characters (< and &)".
_BAD_ID_CHARS = re.compile(r"[\s,<&]")
# RFC 3066 language tag (xs:language is the same shape).
_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_SHA1_HEX = re.compile(r"^[0-9A-Fa-f]{40}$")
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_MARKUP = re.compile(r"<[A-Za-z/!]")


def _zero_offset_severity(profile: str, field: str) -> str:
    """How bad a zero UTC offset is.

    CAP 1.2 writes UTC as ``-00:00`` and ECCC / NAAD do so on every message, so it is only
    noted (info) under the plain CAP and CAP-CP rules. The IPAWS profile requires ``sent`` and
    ``expires`` to carry the (local) time zone offset and treats a zero offset as missing
    zone information: an error there (as google/cap-library's IPAWS profile does).
    """
    if profile == "ipaws" and field in ("sent", "expires"):
        return ERROR
    return INFO


def check(alert: Alert, profile: str) -> Iterator[Finding]:
    """All CAP 1.2 semantic rules."""
    yield from _version(alert)
    yield from _identity(alert)
    yield from _scope(alert)
    yield from _references(alert)
    yield from _times(alert, profile)
    for i, info in enumerate(alert.infos):
        yield from _info(info, i)
        for j, area in enumerate(info.areas):
            yield from _area(area, i, j)
        for k, resource in enumerate(info.resources):
            yield from _resource(resource, f"{info_path(i)}/resource[{k + 1}]", profile)


def _version(alert: Alert) -> Iterator[Finding]:
    if alert.version != "1.2":
        yield Finding(
            INFO,
            "cap.version",
            "/alert",
            f"CAP {alert.version} document, read and checked as CAP 1.2",
        )


def _id_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    bad = _BAD_ID_CHARS.search(value)
    if bad:
        char = bad.group()
        shown = "a space" if char.isspace() else repr(char)
        return f"contains {shown} (spaces, commas, < and & are not allowed)"
    return None


def _identity(alert: Alert) -> Iterator[Finding]:
    for field, value in (("identifier", alert.identifier), ("sender", alert.sender)):
        problem = _id_problem(value)
        if problem:
            yield Finding(ERROR, f"cap.{field}", f"/alert/{field}", f"<{field}> {problem}")


def _scope(alert: Alert) -> Iterator[Finding]:
    if alert.restriction and alert.scope is not Scope.RESTRICTED:
        yield Finding(
            ERROR,
            "cap.restriction-scope",
            "/alert/restriction",
            f"<restriction> is only used with scope Restricted (scope is {alert.scope})",
        )
    if alert.scope is Scope.RESTRICTED and not alert.restriction:
        yield Finding(
            WARNING,
            "cap.restriction-scope",
            "/alert/scope",
            "scope Restricted without a <restriction> saying who may receive it",
        )
    if alert.scope is Scope.PRIVATE and not alert.addresses:
        yield Finding(
            ERROR,
            "cap.addresses-scope",
            "/alert/scope",
            "scope Private requires <addresses>",
        )
    if alert.addresses and alert.scope is Scope.PUBLIC:
        yield Finding(
            WARNING,
            "cap.addresses-scope",
            "/alert/addresses",
            "<addresses> on a Public alert is ignored (it belongs to scope Private)",
        )


def _references(alert: Alert) -> Iterator[Finding]:
    if alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL) and not alert.references:
        yield Finding(
            ERROR,
            "cap.references-required",
            "/alert/msgType",
            f"a {alert.msg_type} must name the message(s) it replaces in <references>",
        )
    own = (alert.sender, alert.identifier)  # the sender and identifier of alert.key
    for n, ref in enumerate(alert.references, start=1):
        where = "/alert/references"
        for field, value in (("sender", ref.sender), ("identifier", ref.identifier)):
            problem = _id_problem(value)
            if problem:
                yield Finding(
                    ERROR,
                    "cap.references-syntax",
                    where,
                    f"reference {n}: {field} {value!r} {problem}",
                )
        if not ref.sent:
            yield Finding(
                ERROR,
                "cap.references-syntax",
                where,
                f"reference {n} ({ref}) has no sent time",
            )
            continue
        try:
            ref_sent = parse_cap_time(ref.sent, where=f"reference {n}")
        except ValueError as exc:
            yield Finding(ERROR, "cap.references-syntax", where, str(exc))
            continue
        if (ref.sender, ref.identifier) == own and (ref_sent == alert.sent):
            yield Finding(
                ERROR,
                "cap.self-reference",
                where,
                f"reference {n} names this message itself",
            )
        elif ref_sent > alert.sent:
            yield Finding(
                WARNING,
                "cap.postdated-reference",
                where,
                f"reference {n} was sent {ref.sent}, after this message",
            )


def _times(alert: Alert, profile: str) -> Iterator[Finding]:
    def zero(value: datetime | None, field: str, xpath: str) -> Iterator[Finding]:
        if value is not None and value.utcoffset() is not None and not value.utcoffset():
            yield Finding(
                _zero_offset_severity(profile, field),
                "cap.utc-offset",
                xpath,
                f"<{field}> {format_cap_datetime(value)} is given in UTC, not local time",
            )

    yield from zero(alert.sent, "sent", "/alert/sent")
    for i, info in enumerate(alert.infos):
        base = info_path(i)
        for field in ("effective", "onset", "expires"):
            yield from zero(getattr(info, field), field, f"{base}/{field}")
        if info.expires is None:
            continue
        for field, other in (
            ("sent", alert.sent),
            ("effective", info.effective),
            ("onset", info.onset),
        ):
            if other is not None and info.expires <= other:
                yield Finding(
                    ERROR,
                    "cap.expires-order",
                    f"{base}/expires",
                    f"<expires> {format_cap_datetime(info.expires)} is not after <{field}> "
                    f"{format_cap_datetime(other)}",
                )


def _info(info: Info, i: int) -> Iterator[Finding]:
    base = info_path(i)
    if not _LANGUAGE.match(info.language):
        yield Finding(
            ERROR,
            "cap.language",
            f"{base}/language",
            f"<language> {info.language!r} is not an RFC 3066 language tag",
        )
    if not info.event.strip():
        yield Finding(WARNING, "cap.empty-text", f"{base}/event", "<event> is empty")
    for field in ("headline", "description", "instruction"):
        text = getattr(info, field)
        if text and _MARKUP.search(text):
            yield Finding(
                WARNING,
                "cap.markup-in-text",
                f"{base}/{field}",
                f"<{field}> contains markup; CAP text is plain text",
            )


def _point_problem(lat: float, lon: float) -> str | None:
    if not (-90.0 <= lat <= 90.0) or lat != lat:  # noqa: PLR0124 - NaN check
        return f"latitude {lat} is outside -90..90"
    if not (-180.0 <= lon <= 180.0) or lon != lon:  # noqa: PLR0124 - NaN check
        return f"longitude {lon} is outside -180..180 (CAP writes latitude first)"
    return None


def _ends_meet(values: Sequence[float]) -> bool:
    """Whether the first and last coordinates make equal points: ``Point`` equality compares
    ``(lat, lon)`` tuples, which take the very same float object (a NaN too) as equal.

    Compared as one-item slices so that the sequence comparison sees the float objects
    themselves (a compiled build would otherwise unbox them and lose their identity).
    """
    return values[:1] == values[-1:]


def _in_range(values: Sequence[float], limit: float) -> bool:
    """Every value within -limit..limit (True for none); a NaN fails both comparisons.

    One pass of comparisons (compiled: a loop on the unboxed values, no sort, no sum).
    """
    return all(-limit <= value <= limit for value in values)


def _area(area: Area, i: int, j: int) -> Iterator[Finding]:
    base = area_path(i, j)
    if not area.area_desc.strip():
        yield Finding(WARNING, "cap.empty-text", f"{base}/areaDesc", "<areaDesc> is empty")
    for n, polygon in enumerate(area.polygons, start=1):
        where = f"{base}/polygon[{n}]"
        # Checked on the coordinates: a polygon read from a document builds no Point here.
        lats, lons = polygon.coordinates()
        if len(lats) < 4:
            yield Finding(
                ERROR,
                "cap.polygon",
                where,
                f"a polygon needs at least 4 points (first = last), has {len(lats)}",
            )
        elif not (_ends_meet(lats) and _ends_meet(lons)):
            yield Finding(
                ERROR,
                "cap.polygon",
                where,
                "the polygon is not closed: its first and last points differ",
            )
        if _in_range(lats, 90.0) and _in_range(lons, 180.0):
            continue
        for point in polygon.points:
            problem = _point_problem(point.lat, point.lon)
            if problem:
                yield Finding(ERROR, "cap.polygon", where, problem)
                break
    for n, circle in enumerate(area.circles, start=1):
        where = f"{base}/circle[{n}]"
        problem = _point_problem(circle.center.lat, circle.center.lon)
        if problem:
            yield Finding(ERROR, "cap.circle", where, problem)
        if not circle.radius_km >= 0:
            yield Finding(
                ERROR,
                "cap.circle",
                where,
                f"radius {circle.radius_km} km is negative",
            )
    if area.ceiling is not None and area.altitude is None:
        yield Finding(
            ERROR, "cap.ceiling", f"{base}/ceiling", "<ceiling> is only used with <altitude>"
        )
    if area.ceiling is not None and area.altitude is not None and area.ceiling < area.altitude:
        yield Finding(ERROR, "cap.ceiling", f"{base}/ceiling", "<ceiling> is below <altitude>")


def _resource(resource: Resource, base: str, profile: str) -> Iterator[Finding]:
    if resource.size is not None and resource.size < 0:
        yield Finding(ERROR, "cap.resource-size", f"{base}/size", "<size> is negative")
    if resource.digest is not None and not _SHA1_HEX.match(resource.digest):
        yield Finding(
            WARNING,
            "cap.resource-digest",
            f"{base}/digest",
            "<digest> is not a SHA-1 hash (40 hexadecimal digits)",
        )
    if resource.uri and not _ABSOLUTE_URI.match(resource.uri) and not resource.deref_uri:
        yield Finding(
            ERROR,
            "cap.resource-uri",
            f"{base}/uri",
            "a relative <uri> names content that must be carried in <derefUri>",
        )
    if resource.deref_uri is None:
        return
    text = resource.deref_uri
    if any(ws in text for ws in (" ", "\n", "\r", "\t")):
        text = "".join(text.split())  # base64 is often wrapped at 76 characters
    encoded = text.encode("ascii", errors="replace")
    size = _base64_size(encoded)
    if size is None:
        yield Finding(
            ERROR, "cap.resource-deref", f"{base}/derefUri", "<derefUri> is not valid base64"
        )
        return
    if resource.size is not None and resource.size != size:
        yield Finding(
            ERROR,
            "cap.resource-size",
            f"{base}/size",
            f"<size> says {resource.size} bytes, <derefUri> holds {size}",
        )
    if resource.digest is None or not _SHA1_HEX.match(resource.digest):
        return
    wanted = resource.digest.lower()
    # The NAAD System hashes the base64 text rather than the decoded file; that check is
    # cheap (no decoding), so it goes first.
    if hashlib.sha1(encoded).hexdigest() == wanted:  # noqa: S324 - CAP mandates SHA-1
        yield Finding(
            INFO if profile == "cap-cp" else WARNING,
            "cap.resource-digest",
            f"{base}/digest",
            "<digest> is the SHA-1 of the base64 text, not of the decoded content "
            "(NAAD System convention)",
        )
        return
    try:
        content = binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error:
        yield Finding(
            ERROR, "cap.resource-deref", f"{base}/derefUri", "<derefUri> is not valid base64"
        )
        return
    if hashlib.sha1(content).hexdigest() != wanted:  # noqa: S324 - CAP mandates SHA-1
        yield Finding(
            ERROR,
            "cap.resource-digest",
            f"{base}/digest",
            "<digest> does not match the content of <derefUri>",
        )


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _base64_size(encoded: bytes) -> int | None:
    """Decoded length of strict base64 (no decoding done), or None when it is not base64."""
    if len(encoded) % 4:
        return None
    padding = 2 if encoded.endswith(b"==") else 1 if encoded.endswith(b"=") else 0
    # Whatever is not in the alphabet must be exactly the trailing padding.
    if encoded.translate(None, _B64_ALPHABET) != b"=" * padding:
        return None
    return len(encoded) // 4 * 3 - padding
