"""Hardened parsing of CAP documents into the :mod:`cap_schemas.model`.

Every byte that reaches borderlink from outside is hostile until proven otherwise, so the XML
layer refuses, before anything is expanded or fetched:

* a document type declaration of any kind (internal subset, external DTD, entity
  declarations): ``reason="doctype"`` / ``"entity"``;
* XInclude elements (never processed, refused outright): ``"xinclude"``;
* input over :attr:`ParseLimits.max_bytes` (``"too_large"``) or nested deeper than
  :attr:`ParseLimits.max_depth` (``"too_deep"``);
* NUL bytes (``"nul"``), bytes that are not valid in the declared encoding (``"encoding"``),
  and malformed XML (``"syntax"``), always with line and column.

The parser never touches the file system or the network: entities are not resolved, no DTD
is loaded, network access is switched off and processing instructions such as
``xml-stylesheet`` (found in NWS alerts) are kept inert.

CAP 1.1 and 1.0 documents are read into the CAP 1.2 model; every adjustment made on the way
(deprecated certainty, dropped ``password``, ``Z`` time zones...) is reported as a warning by
:func:`parse_alert_with_warnings`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import TypeVar

from lxml import etree

from cap_schemas.errors import CapHostileError, CapParseError
from cap_schemas.model import (
    CAP10_NS,
    CAP11_NS,
    CAP12_NS,
    XMLDSIG_NS,
    Alert,
    AlertKey,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    Point,
    Polygon,
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
    format_cap_datetime,
)

# libxml2 compiles an XML schema with process-wide state that is set up on first use and is
# not safe to build from two threads at once (two gateways' first alerts parsed together
# failed with "xmlSchemaPValAttrNodeValue, the given type is not a built-in type"): every
# schema compilation of the library holds this lock. Validating with a compiled schema does
# not need it.
SCHEMA_COMPILE_LOCK = threading.Lock()

__all__ = [
    "CAP_NAMESPACES",
    "ParseLimits",
    "parse_alert",
    "parse_alert_element",
    "parse_alert_with_warnings",
    "parse_cap_time",
    "parse_xml",
]

XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"},
)

#: CAP namespace -> version string.
CAP_NAMESPACES = {CAP12_NS: "1.2", CAP11_NS: "1.1", CAP10_NS: "1.0"}

# libxml2 refuses documents nested deeper than this unless XML_PARSE_HUGE is set (we never set
# it); a configured max_depth above it is therefore capped by the library.
LIBXML2_MAX_DEPTH = 256


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Resource caps applied before and during parsing.

    The default size admits NAAD alerts with embedded audio (the NAAD System allows 5 MB).
    """

    max_bytes: int = 8 * 1024 * 1024
    max_depth: int = 64
    # Blocks of one alert: far above any real alert (NAAD: a few infos, tens of areas), far
    # below what makes reading and routing one alert cost seconds.
    max_infos: int = 64
    max_areas: int = 2048
    max_resources: int = 128


DEFAULT_LIMITS = ParseLimits()


_parsers = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser: lxml parsers keep an error log and are not thread-safe, but one
    thread may reuse its own (each parse starts with a clean error log)."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=False,
            collect_ids=False,
            remove_pis=False,
        )
        _parsers.parser = parser
    return parser


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


_NON_BLANK = re.compile(rb"[^ \t\r\n]")


_ENCODING_DECL = re.compile(
    rb"""^(?:\xef\xbb\xbf)?<\?xml\s[^>]*?encoding\s*=\s*["']([^"']*)["']""",
)
# ASCII-compatible encodings only: the prolog scan below reads bytes as ASCII, so an encoding
# such as UTF-7 or EBCDIC could hide a DOCTYPE from it.
ACCEPTED_ENCODINGS = frozenset(
    {
        "utf-8",
        "utf8",
        "us-ascii",
        "ascii",
        "iso-8859-1",
        "iso8859-1",
        "latin1",
        "latin-1",
        "iso-8859-15",
        "windows-1252",
        "cp1252",
    },
)


def _check_declared_encoding(data: bytes) -> None:
    match = _ENCODING_DECL.match(data[:512])
    if match is None:
        return
    name = match.group(1).decode("ascii", errors="replace")
    if name.strip().lower() not in ACCEPTED_ENCODINGS:
        line, column = _line_col(data, match.start(1))
        raise CapParseError(
            f"declared encoding {name!r} is not accepted (UTF-8 or ISO-8859-1 expected)",
            line=line,
            column=column,
            reason="encoding",
        )


def _check_prolog(data: bytes) -> None:
    """Walk the prolog (everything before the root element) and refuse any declaration.

    Only the XML declaration, processing instructions, comments and white space may precede
    the root element. Anything that begins with ``<!`` and is not a comment is a document type
    declaration (possibly carrying entity declarations): it is refused here, before lxml sees a
    single byte, so that nothing can ever be expanded.
    """
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    size = len(data)
    while pos < size:
        byte = data[pos : pos + 1]
        if byte in (b" ", b"\t", b"\r", b"\n"):
            pos += 1
            continue
        if data.startswith(b"<?", pos):
            end = data.find(b"?>", pos + 2)
            if end < 0:
                return  # unterminated: lxml reports the syntax error with its position
            pos = end + 2
            continue
        if data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                return
            pos = end + 3
            continue
        if data.startswith(b"<!", pos):
            line, column = _line_col(data, pos)
            head = data[pos : pos + 9].upper()
            if head.startswith(b"<!ENTITY"):
                raise CapHostileError(
                    "entity declarations are not accepted",
                    line=line,
                    column=column,
                    reason="entity",
                )
            has_entities = b"<!ENTITY" in data[pos : pos + 65536]
            raise CapHostileError(
                "document type declarations are not accepted"
                + (" (it declares entities)" if has_entities else ""),
                line=line,
                column=column,
                reason="entity" if has_entities else "doctype",
            )
        if byte != b"<":
            # Also what an EBCDIC or other non-ASCII-compatible document looks like here.
            line, column = _line_col(data, pos)
            raise CapParseError(
                "malformed XML: content before the root element",
                line=line,
                column=column,
                reason="syntax",
            )
        return  # the root element


def _syntax_error(exc: etree.XMLSyntaxError) -> CapParseError:
    line, column = exc.position if exc.position else (exc.lineno, None)
    message = str(exc.msg).strip().split("\n")[0]
    # Strip lxml's own ", line N, column M" suffix: CapParseError adds the position itself.
    message = re.sub(r", line \d+, column \d+$", "", message)
    code = exc.code
    types = etree.ErrorTypes
    if code == types.ERR_RESOURCE_LIMIT and "depth" in message.lower():
        return CapHostileError(
            f"document nested too deeply ({message})",
            line=line,
            column=column,
            reason="too_deep",
        )
    if code == types.ERR_RESOURCE_LIMIT:
        return CapHostileError(message, line=line, column=column, reason="too_large")
    if code in (
        types.ERR_UNDECLARED_ENTITY,
        types.WAR_UNDECLARED_ENTITY,
        types.ERR_ENTITY_IS_EXTERNAL,
        types.ERR_ENTITY_IS_PARAMETER,
        types.ERR_UNPARSED_ENTITY,
        types.ERR_ENTITY_LOOP,
    ):
        return CapHostileError(
            f"entity reference refused ({message})",
            line=line,
            column=column,
            reason="entity",
        )
    if code in (
        types.ERR_INVALID_ENCODING,
        types.ERR_UNKNOWN_ENCODING,
        types.ERR_UNSUPPORTED_ENCODING,
    ):
        return CapParseError(
            f"invalid character encoding ({message})",
            line=line,
            column=column,
            reason="encoding",
        )
    if "encoding" in message.lower() or "utf-8" in message.lower():
        return CapParseError(message, line=line, column=column, reason="encoding")
    return CapParseError(f"malformed XML: {message}", line=line, column=column, reason="syntax")


# Compiled XPath objects are kept per thread: lxml does not promise they are thread-safe.
_probes = threading.local()

# Elements of either XInclude namespace (never processed; their presence alone is refused).
_XINCLUDE_TAGS = ("{http://www.w3.org/2001/XInclude}*", "{http://www.w3.org/2003/XInclude}*")
# The blocks whose number is capped (in any namespace), then the XInclude elements: one walk
# of the tree finds them all.
_CAPPED_BLOCKS = ("info", "area", "resource")
_WATCHED_TAGS = tuple(f"{{*}}{name}" for name in _CAPPED_BLOCKS) + _XINCLUDE_TAGS


def _probe(query: str) -> etree.XPath:
    cache: dict[str, etree.XPath] | None = getattr(_probes, "cache", None)
    if cache is None:
        cache = {}
        _probes.cache = cache
    probe = cache.get(query)
    if probe is None:
        probe = etree.XPath(query)
        cache[query] = probe
    return probe


def _first(tree: etree._ElementTree, query: str) -> etree._Element | None:
    found = _probe(query)(tree)
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


def _too_deep(root: etree._Element, max_depth: int) -> etree._Element | None:
    """The first element deeper than ``max_depth`` (root = depth 1), or None."""
    if max_depth >= LIBXML2_MAX_DEPTH:
        return None
    return _first(root.getroottree(), "/*" * (max_depth + 1) + "[1]")


def parse_xml(data: object, *, limits: ParseLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted XML bytes into an lxml element, refusing anything dangerous.

    ``data`` should be ``bytes`` (or a ``bytearray``/``memoryview``); it is typed ``object``
    so that anything else gets the :class:`CapParseError` below from the compiled module
    too, not a ``TypeError`` at its boundary.

    Raises :class:`CapHostileError` for attacks and resource bombs and
    :class:`CapParseError` for input that is simply not well-formed; both carry a line and
    column where known and a stable ``reason``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CapParseError(
            f"expected bytes, got {type(data).__name__}",
            reason="syntax",
        )
    return _parse_bytes(bytes(data), limits)


def _parse_bytes(data: bytes, limits: ParseLimits) -> etree._Element:
    """:func:`parse_xml` of input known to be bytes."""
    if len(data) > limits.max_bytes:
        raise CapHostileError(
            f"input of {len(data)} bytes exceeds the limit of {limits.max_bytes} bytes",
            reason="too_large",
        )
    if _NON_BLANK.search(data) is None:
        raise CapParseError("empty document", line=1, column=1, reason="syntax")
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        raise CapParseError(
            "UTF-16/UTF-32 documents are not accepted; CAP is exchanged in UTF-8",
            line=1,
            column=1,
            reason="encoding",
        )
    _check_declared_encoding(data)
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = _line_col(data, nul)
        raise CapParseError("NUL byte in input", line=line, column=column, reason="nul")
    _check_prolog(data)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc) from None
    tree = root.getroottree()
    docinfo = tree.docinfo
    if docinfo.internalDTD is not None or docinfo.doctype or docinfo.system_url:
        raise CapHostileError("document type declarations are not accepted", reason="doctype")
    deep = _too_deep(root, limits.max_depth)
    if deep is not None:
        raise CapHostileError(
            f"document nested deeper than {limits.max_depth} levels",
            line=deep.sourceline,
            reason="too_deep",
        )
    counts = dict.fromkeys(_CAPPED_BLOCKS, 0)
    xinclude: etree._Element | None = None
    for element in root.iter(*_WATCHED_TAGS):
        ns, name = _local(element.tag)
        if name in counts:
            counts[name] += 1
        if xinclude is None and ns in XINCLUDE_NAMESPACES:
            xinclude = element
    for name, most in (
        ("info", limits.max_infos),
        ("area", limits.max_areas),
        ("resource", limits.max_resources),
    ):
        count = counts[name]
        if count > most:
            raise CapHostileError(
                f"{count} <{name}> blocks; an alert may carry at most {most}",
                reason="too_many_blocks",
            )
    if xinclude is not None:
        raise CapHostileError(
            "XInclude elements are not accepted",
            line=xinclude.sourceline,
            reason="xinclude",
        )
    return root


# ---------------------------------------------------------------------------------------------
# CAP times

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$",
)


# Time zone objects by offset text ("-04:00"): the few a feed uses, built once.
_ZONES: dict[str, timezone] = {}

# The form nearly every CAP time is written in: seconds and an explicit offset, no fraction.
_COMMON_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def _common_time(value: str) -> datetime | None:
    """``value`` read by the C parser when it is in the common form with an offset already
    seen valid (only those are in ``_ZONES``) and ASCII digits; None for anything else, which
    :func:`parse_cap_time` then reads (and judges) the long way.

    ``fromisoformat`` gives the offset as a fixed ``timezone`` equal to the one of
    ``_ZONES`` (equality, hash, ``repr`` and arithmetic are the same).
    """
    if (
        len(value) == 25
        and value[19:] in _ZONES
        and value.isascii()
        and _COMMON_TIME.fullmatch(value) is not None
    ):
        try:
            return datetime.fromisoformat(value)
        except ValueError:  # a date or time that does not exist: said the long way
            return None
    return None


def parse_cap_time(
    text: str,
    *,
    lenient: bool = False,
    warnings: list[str] | None = None,
    where: str = "time",
    line: int | None = None,
) -> datetime:
    """Read a CAP dateTime (``2024-05-01T12:00:00-04:00``) into an aware datetime.

    The CAP 1.2 pattern requires an explicit offset and no fraction. With ``lenient`` (CAP 1.0
    and 1.1 sources) a ``Z`` zone and fractional seconds are accepted with a warning. A time
    without any zone is always an error: it cannot be placed on the timeline.
    """
    value = text.strip()
    common = _common_time(value)
    if common is not None:
        return common
    match = _TIME_RE.match(value)
    if match is None:
        raise CapParseError(
            f"{where}: {value!r} is not a CAP date-time (e.g. 2024-05-01T12:00:00-04:00)",
            line=line,
            reason="bad_value",
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone is None:
        raise CapParseError(
            f"{where}: {value!r} has no time zone offset",
            line=line,
            reason="bad_value",
        )
    if (zone == "Z" or fraction) and not lenient:
        raise CapParseError(
            f"{where}: {value!r} must be written with seconds and an explicit offset "
            "(no 'Z', no fraction) in CAP 1.2",
            line=line,
            reason="bad_value",
        )
    if (zone == "Z" or fraction) and warnings is not None:
        warnings.append(f"{where}: {value!r} uses a form CAP 1.2 forbids; read as written")
    if zone == "Z":
        tz = UTC
    else:
        known = _ZONES.get(zone)
        if known is None:
            sign = -1 if zone[0] == "-" else 1
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise CapParseError(
                    f"{where}: offset {zone!r} is out of range",
                    line=line,
                    reason="bad_value",
                )
            known = timezone(sign * timedelta(hours=hours, minutes=minutes))
            if len(_ZONES) < 4096:  # valid offsets only; at most 2 x 24 x 60 of them
                _ZONES[zone] = known
        tz = known
    micro = 0
    if fraction:
        micro = int((fraction[1:] + "000000")[:6])
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micro,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise CapParseError(
            f"{where}: {value!r} is not a real date-time ({exc})",
            line=line,
            reason="bad_value",
        ) from None


# ---------------------------------------------------------------------------------------------
# Alert reading

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


_LOCAL_NAMES: dict[str, tuple[str | None, str]] = {}


def _local(tag: object) -> tuple[str | None, str]:
    if not isinstance(tag, str):
        return None, ""
    known = _LOCAL_NAMES.get(tag)
    if known is not None:
        return known
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        split: tuple[str | None, str] = (ns, name)
    else:
        split = (None, tag)
    if len(_LOCAL_NAMES) < 4096:  # CAP's tags repeat; a hostile document cannot grow this much
        _LOCAL_NAMES[tag] = split
    return split


# The elements of the CAP model, by their full tag in each CAP namespace.
_CAP_ELEMENTS = (  # noqa: SIM905 - one word table reads better than 51 quoted lines
    "alert identifier sender sent status msgType source scope restriction addresses code "
    "note references incidents password info language category event responseType urgency "
    "severity certainty audience eventCode effective onset expires senderName headline "
    "description instruction web contact parameter resource resourceDesc mimeType size uri "
    "derefUri digest area areaDesc polygon circle geocode altitude ceiling valueName value"
).split()
_CAP_NAMES: dict[str, dict[object, str]] = {
    ns: {f"{{{ns}}}{name}": name for name in _CAP_ELEMENTS} for ns in CAP_NAMESPACES
}


class _Reader:
    """Reads one CAP document of a given namespace into the 1.2 model."""

    def __init__(self, ns: str, version: str) -> None:
        self.ns = ns
        self.version = version
        self.lenient = version != "1.2"
        self.warnings: list[str] = []
        self.names = _CAP_NAMES[ns]
        self.pair_tags = (f"{{{ns}}}valueName", f"{{{ns}}}value")
        # Times and polygons already read in this document (the blocks of a bilingual alert
        # repeat them).
        self.times: dict[str, datetime] = {}
        self.polygons: dict[str, Polygon] = {}

    # -- helpers -------------------------------------------------------------------------

    def children(self, el: etree._Element) -> list[tuple[str, etree._Element]]:
        """(local name, element) of the CAP children of ``el``; foreign elements are skipped."""
        names = self.names
        found = []
        for child in el:
            tag = child.tag
            name = names.get(tag)  # comments and PIs have a function as tag: not found
            if name is None:
                ns, name = _local(tag)
                if ns != self.ns:
                    continue
            found.append((name, child))
        return found

    def fail(self, el: etree._Element, message: str) -> CapParseError:
        return CapParseError(message, line=el.sourceline, reason="bad_value")

    @staticmethod
    def text(el: etree._Element) -> str:
        return el.text or ""

    def token(self, el: etree._Element) -> str:
        return (el.text or "").strip()

    def optional(self, el: etree._Element) -> str | None:
        value = el.text
        return value if value is not None and value.strip() else None

    def enum(self, cls: type[E], el: etree._Element, name: str) -> E:
        value = (el.text or "").strip()
        # The enumeration's own value table: what ``cls(value)`` looks up, without the call.
        member = cls._value2member_map_.get(value)
        if member is None:
            raise self.fail(el, f"<{name}> value {value!r} is not allowed")
        return member  # type: ignore[return-value]  # a member of cls

    def time(self, el: etree._Element, name: str) -> datetime:
        text = el.text or ""
        if not self.lenient:  # CAP 1.2: a time that reads adds no warning, so it can be reused
            known = self.times.get(text)
            if known is not None:
                return known
        # The common form straight away (what parse_cap_time tries first, without building
        # the place of an error that cannot happen).
        value = _common_time(text) if len(text) == 25 else None
        if value is None:
            value = parse_cap_time(
                text,
                lenient=self.lenient,
                warnings=self.warnings,
                where=f"<{name}>",
                line=el.sourceline,
            )
        if not self.lenient:
            self.times[text] = value
        return value

    def number(self, el: etree._Element, name: str) -> float:
        value = self.token(el)
        try:
            return float(value)
        except ValueError:
            raise self.fail(el, f"<{name}> value {value!r} is not a number") from None

    def pair(self, el: etree._Element, name: str) -> ValuePair:
        vn: etree._Element | None = None
        v: etree._Element | None = None
        value_name_tag, value_tag = self.pair_tags
        for kid in el:  # the last of each name counts
            tag = kid.tag
            if tag == value_name_tag:
                vn = kid
            elif tag == value_tag:
                v = kid
        if vn is not None or v is not None:
            return ValuePair(
                self.token(vn) if vn is not None else "",
                self.token(v) if v is not None else "",
            )
        # CAP 1.0 wrote these as a single string "valueName=value".
        raw = self.token(el)
        if self.version == "1.0" and "=" in raw:
            key, _, value = raw.partition("=")
            return ValuePair(key.strip(), value.strip())
        raise self.fail(el, f"<{name}> needs <valueName> and <value>")

    def point(self, el: etree._Element, text: str, name: str) -> Point:
        lat_s, sep, lon_s = text.partition(",")
        if not sep:
            raise self.fail(el, f"<{name}>: point {text!r} is not lat,lon")
        try:
            return Point(float(lat_s), float(lon_s))
        except ValueError:
            raise self.fail(el, f"<{name}>: point {text!r} is not lat,lon") from None

    def polygon(self, el: etree._Element) -> Polygon:
        text = el.text or ""
        known = self.polygons.get(text)
        if known is not None:
            return known
        parts = text.split()
        lats: list[float] = []
        lons: list[float] = []
        # The common case in one pass: every token "lat,lon", two numbers (a second comma
        # is in the longitude's text, which float() refuses).
        for part in parts:
            comma = part.find(",")
            if comma < 0:
                break
            try:
                lat = float(part[:comma])
                lon = float(part[comma + 1 :])
            except ValueError:
                break
            lats.append(lat)
            lons.append(lon)
        else:  # every token read
            polygon = Polygon.from_coordinates(tuple(lats), tuple(lons))
            # Shared with the other blocks of the document that repeat it (the French block
            # of a bilingual alert), unless it may hold a NaN: two NaN points are equal only
            # when they are the same object, so sharing would change how such polygons
            # compare.
            if "n" not in text and "N" not in text:
                self.polygons[text] = polygon
            return polygon
        # Say which point is wrong, and how.
        return Polygon(tuple(self.point(el, p, "polygon") for p in parts))

    def circle(self, el: etree._Element) -> Circle:
        parts = self.token(el).split()
        if len(parts) != 2:
            raise self.fail(el, f"<circle> {self.token(el)!r} is not 'lat,lon radius'")
        try:
            radius = float(parts[1])
        except ValueError:
            raise self.fail(el, f"<circle> radius {parts[1]!r} is not a number") from None
        return Circle(self.point(el, parts[0], "circle"), radius)

    def reference_time(self, text: str) -> str:
        """The sent time of a reference in the canonical form of :attr:`Alert.key`.

        ``+00:00`` becomes ``-00:00`` (and, from CAP 1.0/1.1, ``Z`` and fractions are
        dropped) so that the reference compares equal to the key of the alert it names. A time
        that does not parse is kept as written; validation reports it.
        """
        try:
            value = parse_cap_time(
                text, lenient=self.lenient, warnings=self.warnings, where="<references>"
            )
        except CapParseError:
            return text
        return format_cap_datetime(value)

    def references(self, el: etree._Element) -> tuple[AlertKey, ...]:
        keys: list[AlertKey] = []
        for triple in self.token(el).split():
            parts = triple.split(",")
            if len(parts) == 3 and all(parts):
                keys.append(AlertKey(parts[0], parts[1], self.reference_time(parts[2])))
            elif len(parts) == 2 and all(parts) and self.lenient:
                self.warnings.append(
                    f"<references>: {triple!r} has no sent time (CAP {self.version}); kept "
                    "as sender,identifier",
                )
                keys.append(AlertKey(parts[0], parts[1], ""))
            else:
                raise self.fail(
                    el, f"<references>: {triple!r} is not a sender,identifier,sent triple"
                )
        return tuple(keys)

    # -- structure -----------------------------------------------------------------------

    def need(self, el: etree._Element, block: str, name: str, value: T | None) -> T:
        """``value`` of a required element, or the error that ``block`` has none."""
        if value is None:
            raise self.fail(el, f"<{block}> has no <{name}>")
        return value

    # The blocks are built with every field named (no ``**`` of a dict of values): a compiled
    # build then calls the model's own constructors directly.

    def alert(self, root: etree._Element, raw: bytes) -> Alert:
        identifier: str | None = None
        sender: str | None = None
        sent: datetime | None = None
        status: Status | None = None
        msg_type: MsgType | None = None
        scope: Scope | None = None
        source: str | None = None
        restriction: str | None = None
        addresses: str | None = None
        note: str | None = None
        incidents: str | None = None
        references: tuple[AlertKey, ...] = ()
        codes: list[str] = []
        infos: list[Info] = []
        signatures = 0
        names = self.names
        for child in root:
            tag = child.tag
            name = names.get(tag)  # comments and PIs have a function as tag: not found
            if name is None:
                ns, name = _local(tag)
                if ns == XMLDSIG_NS and name == "Signature":
                    signatures += 1
                    continue
                if ns != self.ns:
                    continue  # comments, PIs and foreign extension elements
            if name == "identifier":
                identifier = self.token(child)
            elif name == "sender":
                sender = self.token(child)
            elif name == "sent":
                sent = self.time(child, "sent")
            elif name == "status":
                status = self.enum(Status, child, name)
            elif name == "msgType":
                msg_type = self.enum(MsgType, child, name)
            elif name == "scope":
                scope = self.enum(Scope, child, name)
            elif name == "source":
                source = self.optional(child)
            elif name == "restriction":
                restriction = self.optional(child)
            elif name == "addresses":
                addresses = self.optional(child)
            elif name == "note":
                note = self.optional(child)
            elif name == "incidents":
                incidents = self.optional(child)
            elif name == "code":
                if self.token(child):
                    codes.append(self.token(child))
            elif name == "references":
                references = self.references(child)
            elif name == "info":
                infos.append(self.info(child))
            elif name == "password":
                self.warnings.append("<password> (CAP 1.0) dropped")
            else:
                self.warnings.append(f"unknown CAP element <{name}> ignored")
        identifier = self.need(root, "alert", "identifier", identifier)
        sender = self.need(root, "alert", "sender", sender)
        sent = self.need(root, "alert", "sent", sent)
        status = self.need(root, "alert", "status", status)
        msg_type = self.need(root, "alert", "msgType", msg_type)
        if scope is None and self.version == "1.0":
            scope = Scope.PUBLIC
            self.warnings.append("<scope> missing (CAP 1.0); Public assumed")
        return Alert(
            identifier=identifier,
            sender=sender,
            sent=sent,
            status=status,
            msg_type=msg_type,
            scope=self.need(root, "alert", "scope", scope),
            source=source,
            restriction=restriction,
            addresses=addresses,
            codes=tuple(codes),
            note=note,
            references=references,
            incidents=incidents,
            infos=tuple(infos),
            raw=raw,
            version=self.version,
            signature_count=signatures,
        )

    def info(self, el: etree._Element) -> Info:
        language = "en-US"  # the model's default, kept when no <language> says otherwise
        event: str | None = None
        urgency: Urgency | None = None
        severity: Severity | None = None
        certainty: Certainty | None = None
        audience: str | None = None
        effective: datetime | None = None
        onset: datetime | None = None
        expires: datetime | None = None
        sender_name: str | None = None
        headline: str | None = None
        description: str | None = None
        instruction: str | None = None
        web: str | None = None
        contact: str | None = None
        categories: list[Category] = []
        responses: list[ResponseType] = []
        event_codes: list[ValuePair] = []
        parameters: list[ValuePair] = []
        resources: list[Resource] = []
        areas: list[Area] = []
        for name, child in self.children(el):
            if name == "language":
                lang = self.token(child)
                if lang:
                    language = lang
            elif name == "category":
                categories.append(self.enum(Category, child, name))
            elif name == "event":
                event = self.text(child).strip()
            elif name == "responseType":
                responses.append(self.enum(ResponseType, child, name))
            elif name == "urgency":
                urgency = self.enum(Urgency, child, name)
            elif name == "severity":
                severity = self.enum(Severity, child, name)
            elif name == "certainty":
                if self.lenient and self.token(child) == "Very Likely":
                    self.warnings.append("<certainty> 'Very Likely' read as 'Likely'")
                    certainty = Certainty.LIKELY
                else:
                    certainty = self.enum(Certainty, child, name)
            elif name == "eventCode":
                event_codes.append(self.pair(child, name))
            elif name == "parameter":
                parameters.append(self.pair(child, name))
            elif name == "effective":
                effective = self.time(child, name)
            elif name == "onset":
                onset = self.time(child, name)
            elif name == "expires":
                expires = self.time(child, name)
            elif name == "senderName":
                sender_name = self.optional(child)
            elif name == "audience":
                audience = self.optional(child)
            elif name == "headline":
                headline = self.optional(child)
            elif name == "description":
                description = self.optional(child)
            elif name == "instruction":
                instruction = self.optional(child)
            elif name == "contact":
                contact = self.optional(child)
            elif name == "web":
                web = self.optional(child) and self.token(child)
            elif name == "resource":
                resources.append(self.resource(child))
            elif name == "area":
                areas.append(self.area(child))
            else:
                self.warnings.append(f"unknown CAP element <info><{name}> ignored")
        event = self.need(el, "info", "event", event)
        urgency = self.need(el, "info", "urgency", urgency)
        severity = self.need(el, "info", "severity", severity)
        certainty = self.need(el, "info", "certainty", certainty)
        if not categories:
            raise self.fail(el, "<info> has no <category>")
        return Info(
            categories=tuple(categories),
            event=event,
            urgency=urgency,
            severity=severity,
            certainty=certainty,
            language=language,
            response_types=tuple(responses),
            audience=audience,
            event_codes=tuple(event_codes),
            effective=effective,
            onset=onset,
            expires=expires,
            sender_name=sender_name,
            headline=headline,
            description=description,
            instruction=instruction,
            web=web,
            contact=contact,
            parameters=tuple(parameters),
            resources=tuple(resources),
            areas=tuple(areas),
        )

    def resource(self, el: etree._Element) -> Resource:
        resource_desc: str | None = None
        mime_type: str | None = None
        size: int | None = None
        uri: str | None = None
        deref_uri: str | None = None
        digest: str | None = None
        for name, child in self.children(el):
            if name == "resourceDesc":
                resource_desc = self.text(child).strip()
            elif name == "mimeType":
                mime_type = self.token(child)
            elif name == "size":
                token = self.token(child)
                try:
                    size = int(token)
                except ValueError:
                    raise self.fail(child, f"<size> {token!r} is not an integer") from None
            elif name == "uri":
                uri = self.optional(child) and self.token(child)
            elif name == "derefUri":
                # Kept as the document's string: no copy, no decode (validation decodes).
                deref_uri = child.text
            elif name == "digest":
                digest = self.optional(child) and self.token(child)
            else:
                self.warnings.append(f"unknown CAP element <resource><{name}> ignored")
        resource_desc = self.need(el, "resource", "resourceDesc", resource_desc)
        if mime_type is None and self.lenient:
            self.warnings.append("<resource> has no <mimeType>; application/octet-stream")
            mime_type = "application/octet-stream"
        return Resource(
            resource_desc=resource_desc,
            mime_type=self.need(el, "resource", "mimeType", mime_type),
            size=size,
            uri=uri,
            deref_uri=deref_uri,
            digest=digest,
        )

    def area(self, el: etree._Element) -> Area:
        area_desc: str | None = None
        altitude: float | None = None
        ceiling: float | None = None
        polygons: list[Polygon] = []
        circles: list[Circle] = []
        geocodes: list[ValuePair] = []
        for name, child in self.children(el):
            if name == "areaDesc":
                area_desc = self.text(child).strip()
            elif name in ("polygon", "circle") and not self.token(child):
                # alerts.weather.gov writes <polygon></polygon> when there is none.
                self.warnings.append(f"empty <{name}> ignored (line {child.sourceline})")
            elif name == "polygon":
                polygons.append(self.polygon(child))
            elif name == "circle":
                circles.append(self.circle(child))
            elif name == "geocode":
                geocodes.append(self.pair(child, name))
            elif name == "altitude":
                altitude = self.number(child, name)
            elif name == "ceiling":
                ceiling = self.number(child, name)
            else:
                self.warnings.append(f"unknown CAP element <area><{name}> ignored")
        return Area(
            area_desc=self.need(el, "area", "areaDesc", area_desc),
            polygons=tuple(polygons),
            circles=tuple(circles),
            geocodes=tuple(geocodes),
            altitude=altitude,
            ceiling=ceiling,
        )


def _read(root: etree._Element, raw: bytes | None) -> tuple[Alert, list[str]]:
    ns, name = _local(root.tag)
    if name != "alert" or ns not in CAP_NAMESPACES:
        what = f"{{{ns}}}{name}" if ns else name
        raise CapParseError(
            f"root element {what or root.tag!r} is not a CAP alert "
            f"(expected alert in {CAP12_NS}, {CAP11_NS} or {CAP10_NS})",
            line=root.sourceline,
            reason="not_cap",
        )
    version = CAP_NAMESPACES[ns]
    reader = _Reader(ns, version)
    if version != "1.2":
        reader.warnings.append(f"CAP {version} document read into the CAP 1.2 model")
    if raw is None:
        raw = etree.tostring(root)
    return reader.alert(root, raw), reader.warnings


def parse_alert_element(root: etree._Element, *, raw: bytes | None = None) -> Alert:
    """Read an ``alert`` element that is already parsed (for instance out of EDXL-DE).

    ``raw`` defaults to the element serialised on its own (in-scope namespaces declared).
    """
    return _read(root, raw)[0]


_recent = threading.local()


def recently_parsed(data: object) -> etree._Element | None:
    """The tree :func:`parse_alert` built from this very bytes object in this thread, if it
    was the last one parsed here (lets validation skip a second parse of ``Alert.raw``).

    The tree is handed out once and forgotten, so a thread holds at most one document.
    """
    last: tuple[bytes, etree._Element] | None = getattr(_recent, "last", None)
    if last is not None and last[0] is data:
        _recent.last = None
        return last[1]
    return None


def parse_alert_with_warnings(
    data: object,
    *,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> tuple[Alert, list[str]]:
    """Parse CAP bytes and return the alert with the list of conversion warnings.

    ``data`` is typed ``object`` for the reason given at :func:`parse_xml`.
    """
    root = parse_xml(data, limits=limits)
    assert isinstance(data, bytes | bytearray | memoryview)  # parse_xml refused the rest
    raw = bytes(data)
    result = _read(root, raw)
    _recent.last = (raw, root)
    return result


def parse_alert(data: object, *, limits: ParseLimits = DEFAULT_LIMITS) -> Alert:
    """Parse CAP 1.2 (or 1.1/1.0, converted) bytes into an :class:`Alert`.

    ``data`` is typed ``object`` for the reason given at :func:`parse_xml`.
    """
    return parse_alert_with_warnings(data, limits=limits)[0]
