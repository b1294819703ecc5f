"""The CAP 1.2 model: frozen dataclasses, one per CAP element that has structure.

The model is what every part of borderlink passes around. It is built by
:mod:`cap_schemas.parse` (which also reads CAP 1.0 and 1.1 into it) and written back by
:mod:`cap_schemas.serialize`. Times are timezone-aware :class:`datetime.datetime` values;
the document's original bytes travel with the alert in :attr:`Alert.raw` (signatures cover
them) but take no part in equality.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import partialmethod
from itertools import repeat
from operator import attrgetter
from typing import Any

from mypy_extensions import mypyc_attr

CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11_NS = "urn:oasis:names:tc:emergency:cap:1.1"
CAP10_NS = "http://www.incident.com/cap/1.0"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


class Status(enum.StrEnum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(enum.StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Scope(enum.StrEnum):
    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class Category(enum.StrEnum):
    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"


class ResponseType(enum.StrEnum):
    SHELTER = "Shelter"
    EVACUATE = "Evacuate"
    PREPARE = "Prepare"
    EXECUTE = "Execute"
    AVOID = "Avoid"
    MONITOR = "Monitor"
    ASSESS = "Assess"
    ALL_CLEAR = "AllClear"
    NONE = "None"


class Urgency(enum.StrEnum):
    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class Severity(enum.StrEnum):
    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Certainty(enum.StrEnum):
    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"


# Rank used for delivery priority: lower is more urgent.
URGENCY_RANK = {
    Urgency.IMMEDIATE: 0,
    Urgency.EXPECTED: 1,
    Urgency.FUTURE: 2,
    Urgency.UNKNOWN: 3,
    Urgency.PAST: 4,
}
SEVERITY_RANK = {
    Severity.EXTREME: 0,
    Severity.SEVERE: 1,
    Severity.MODERATE: 2,
    Severity.UNKNOWN: 3,
    Severity.MINOR: 4,
}


def format_cap_datetime(value: datetime) -> str:
    """Write a time the way CAP 1.2 wants it: seconds, no fraction, explicit offset.

    UTC is written ``-00:00`` as Canadian and most US producers do; the XSD pattern admits it
    (only the *input* rule against ``-00:00`` with a meaning of "unknown zone" differs by
    profile and is checked by the validators, not here).
    """
    if value.tzinfo is None:
        msg = "CAP times must carry a timezone"
        raise ValueError(msg)
    offset = value.utcoffset() or timedelta(0)
    if value.year >= 1000:  # what strftime writes, without its cost (a key is formatted often)
        base = (
            f"{value.year}-{value.month:02d}-{value.day:02d}"
            f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
        )
    else:  # strftime's own (platform) way with years below 1000
        base = value.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")
    total = int(offset.total_seconds()) // 60
    sign = "-" if total <= 0 else "+"
    hours, minutes = divmod(abs(total), 60)
    return f"{base}{sign}{hours:02d}:{minutes:02d}"


class FrozenRecord:
    """Base of the library's frozen dataclasses: how they pickle and copy.

    Compiled (mypyc), such a class is an extension type that cannot be made empty and
    filled in afterwards, the way pickle and ``copy`` rebuild an object by default: they
    rebuild it by calling the class with its fields, in order, as ``dataclasses.replace``
    does (every field is an ``__init__`` argument).
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        fields_in_order = fields(self)  # type: ignore[arg-type]  # a dataclass's instance
        return type(self), tuple(getattr(self, f.name) for f in fields_in_order)


@dataclass(frozen=True, init=False, slots=True)
class ValuePair(FrozenRecord):
    """A CAP ``valueName``/``value`` pair (eventCode, parameter, geocode)."""

    name: str
    value: str

    def __init__(self, name: str, value: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "value", value)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Point:
    """A WGS-84 point, latitude first as CAP writes it."""

    lat: float
    lon: float


_new_object = object.__new__
_lat_of: Callable[[Point], float] = attrgetter("lat")
_lon_of: Callable[[Point], float] = attrgetter("lon")
# The slots' descriptors: setting through them skips the frozen dataclass's __setattr__.
_set_lat: Callable[[Point, float], None] = Point.__dict__["lat"].__set__
_set_lon: Callable[[Point, float], None] = Point.__dict__["lon"].__set__


def points_of(lats: Sequence[float], lons: Sequence[float]) -> tuple[Point, ...]:
    """``tuple(map(Point, lats, lons))`` built in bulk: a polygon has tens to thousands of
    points, and the frozen dataclass's ``__init__`` (two ``object.__setattr__`` calls from
    Python) is the largest single cost of reading one. The objects are the same: a ``Point``
    with both slots set."""
    points = list(map(_new_object, repeat(Point, len(lats))))
    deque(map(_set_lat, points, lats), maxlen=0)
    deque(map(_set_lon, points, lons), maxlen=0)
    return tuple(points)


@mypyc_attr(native_class=False)
class _Coordinates:
    """The slot where a polygon read from a document keeps its coordinates (latitudes and
    longitudes, as two sequences) until its points are asked for."""

    __slots__ = ("_lats_lons",)
    _lats_lons: tuple[Sequence[float], Sequence[float]]


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Polygon(_Coordinates):
    """A closed ring of at least four points (first == last).

    A polygon read by :mod:`cap_schemas.parse` builds its :class:`Point` objects the first
    time ``points`` is read (equality, hashing, ``repr`` and pickling read it too), so that
    an alert whose polygons are only checked (:func:`coordinates`) never builds them.
    """

    points: tuple[Point, ...]

    @classmethod
    def from_coordinates(cls, lats: Sequence[float], lons: Sequence[float]) -> Polygon:
        """The polygon of these points (as many latitudes as longitudes), points built later."""
        polygon = _new_object(cls)
        object.__setattr__(polygon, "_lats_lons", (lats, lons))
        return polygon

    def coordinates(self) -> tuple[Sequence[float], Sequence[float]]:
        """(latitudes, longitudes) of the points, in order, without building any point."""
        try:
            return self._lats_lons
        except AttributeError:  # built from points
            points = self.points
            # The float objects themselves (a NaN is equal only to itself): a compiled
            # comprehension would unbox and rebox each one.
            return list(map(_lat_of, points)), list(map(_lon_of, points))


def _points_on_first_read(polygon: Polygon, name: str) -> object:
    """``Polygon.__getattr__``: reached only for a slot that is not set, ``points`` of a
    polygon made by :meth:`Polygon.from_coordinates`, built (once) from its coordinates.

    Attached after the class (not hidden from the type checker in its body, which a compiled
    build does not accept), so that the type checker still refuses unknown attributes."""
    if name != "points":
        raise AttributeError(name)
    lats, lons = polygon._lats_lons
    points = points_of(lats, lons)
    object.__setattr__(polygon, "points", points)
    return points


# A method made of the function (a compiled function does not bind to an instance itself).
setattr(Polygon, "__getattr__", partialmethod(_points_on_first_read))  # noqa: B010 - see above


@dataclass(frozen=True, init=False, slots=True)
class Circle(FrozenRecord):
    """A centre and a radius in kilometres."""

    center: Point
    radius_km: float

    def __init__(self, center: Point, radius_km: float) -> None:
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "radius_km", radius_km)


@dataclass(frozen=True, init=False, slots=True)
class Area(FrozenRecord):
    area_desc: str
    polygons: tuple[Polygon, ...] = ()
    circles: tuple[Circle, ...] = ()
    geocodes: tuple[ValuePair, ...] = ()
    altitude: float | None = None
    ceiling: float | None = None

    def __init__(  # noqa: PLR0917 - the dataclass's own signature, written out
        self,
        area_desc: str,
        polygons: tuple[Polygon, ...] = (),
        circles: tuple[Circle, ...] = (),
        geocodes: tuple[ValuePair, ...] = (),
        altitude: float | None = None,
        ceiling: float | None = None,
    ) -> None:
        object.__setattr__(self, "area_desc", area_desc)
        object.__setattr__(self, "polygons", polygons)
        object.__setattr__(self, "circles", circles)
        object.__setattr__(self, "geocodes", geocodes)
        object.__setattr__(self, "altitude", altitude)
        object.__setattr__(self, "ceiling", ceiling)

    def geocode_values(self, name: str) -> tuple[str, ...]:
        """The values of every geocode with this ``valueName`` (case-sensitive, as CAP is)."""
        return tuple(g.value for g in self.geocodes if g.name == name)


@dataclass(frozen=True, init=False, slots=True)
class Resource(FrozenRecord):
    resource_desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = field(default=None, repr=False)
    digest: str | None = None

    def __init__(  # noqa: PLR0917 - the dataclass's own signature, written out
        self,
        resource_desc: str,
        mime_type: str,
        size: int | None = None,
        uri: str | None = None,
        deref_uri: str | None = None,
        digest: str | None = None,
    ) -> None:
        object.__setattr__(self, "resource_desc", resource_desc)
        object.__setattr__(self, "mime_type", mime_type)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "deref_uri", deref_uri)
        object.__setattr__(self, "digest", digest)


@dataclass(frozen=True, init=False, slots=True)
class Info(FrozenRecord):
    categories: tuple[Category, ...]
    event: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    language: str = "en-US"
    response_types: tuple[ResponseType, ...] = ()
    audience: str | None = None
    event_codes: tuple[ValuePair, ...] = ()
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[ValuePair, ...] = ()
    resources: tuple[Resource, ...] = ()
    areas: tuple[Area, ...] = ()

    def __init__(  # noqa: PLR0917 - the dataclass's own signature, written out
        self,
        categories: tuple[Category, ...],
        event: str,
        urgency: Urgency,
        severity: Severity,
        certainty: Certainty,
        language: str = "en-US",
        response_types: tuple[ResponseType, ...] = (),
        audience: str | None = None,
        event_codes: tuple[ValuePair, ...] = (),
        effective: datetime | None = None,
        onset: datetime | None = None,
        expires: datetime | None = None,
        sender_name: str | None = None,
        headline: str | None = None,
        description: str | None = None,
        instruction: str | None = None,
        web: str | None = None,
        contact: str | None = None,
        parameters: tuple[ValuePair, ...] = (),
        resources: tuple[Resource, ...] = (),
        areas: tuple[Area, ...] = (),
    ) -> None:
        object.__setattr__(self, "categories", categories)
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "urgency", urgency)
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "certainty", certainty)
        object.__setattr__(self, "language", language)
        object.__setattr__(self, "response_types", response_types)
        object.__setattr__(self, "audience", audience)
        object.__setattr__(self, "event_codes", event_codes)
        object.__setattr__(self, "effective", effective)
        object.__setattr__(self, "onset", onset)
        object.__setattr__(self, "expires", expires)
        object.__setattr__(self, "sender_name", sender_name)
        object.__setattr__(self, "headline", headline)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "instruction", instruction)
        object.__setattr__(self, "web", web)
        object.__setattr__(self, "contact", contact)
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "resources", resources)
        object.__setattr__(self, "areas", areas)

    def event_code(self, name: str) -> str | None:
        """The first eventCode value with this ``valueName``, or None."""
        return next((c.value for c in self.event_codes if c.name == name), None)

    def parameter(self, name: str) -> str | None:
        """The first parameter value with this ``valueName``, or None."""
        return next((p.value for p in self.parameters if p.name == name), None)

    def parameter_values(self, name: str) -> tuple[str, ...]:
        return tuple(p.value for p in self.parameters if p.name == name)


@dataclass(frozen=True, init=False, slots=True, order=True)
class AlertKey(FrozenRecord):
    """The identity of a CAP message: ``(sender, identifier, sent)``.

    ``sent`` is kept as the canonical CAP string so that a key read from a ``references``
    triple compares equal to the key of the alert it names.
    """

    sender: str
    identifier: str
    sent: str

    def __init__(self, sender: str, identifier: str, sent: str) -> None:
        object.__setattr__(self, "sender", sender)
        object.__setattr__(self, "identifier", identifier)
        object.__setattr__(self, "sent", sent)

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"

    @classmethod
    def from_reference(cls, triple: str) -> AlertKey:
        """Read one ``sender,identifier,sent`` triple of a ``references`` element."""
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            msg = f"reference {triple!r} is not a sender,identifier,sent triple"
            raise ValueError(msg)
        sender, identifier, sent = parts
        return cls(sender, identifier, sent)


@dataclass(frozen=True, init=False, slots=True)
class Alert(FrozenRecord):
    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: tuple[str, ...] = ()
    note: str | None = None
    references: tuple[AlertKey, ...] = ()
    incidents: str | None = None
    infos: tuple[Info, ...] = ()
    # What came in: the original document bytes (signatures cover them), the CAP version it
    # was written in, and how many enveloped signatures it carried. Not part of equality.
    raw: bytes = field(default=b"", compare=False, repr=False)
    version: str = field(default="1.2", compare=False)
    signature_count: int = field(default=0, compare=False)

    def __init__(  # noqa: PLR0917 - the dataclass's own signature, written out
        self,
        identifier: str,
        sender: str,
        sent: datetime,
        status: Status,
        msg_type: MsgType,
        scope: Scope,
        source: str | None = None,
        restriction: str | None = None,
        addresses: str | None = None,
        codes: tuple[str, ...] = (),
        note: str | None = None,
        references: tuple[AlertKey, ...] = (),
        incidents: str | None = None,
        infos: tuple[Info, ...] = (),
        raw: bytes = b"",
        version: str = "1.2",
        signature_count: int = 0,
    ) -> None:
        object.__setattr__(self, "identifier", identifier)
        object.__setattr__(self, "sender", sender)
        object.__setattr__(self, "sent", sent)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "msg_type", msg_type)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "restriction", restriction)
        object.__setattr__(self, "addresses", addresses)
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "note", note)
        object.__setattr__(self, "references", references)
        object.__setattr__(self, "incidents", incidents)
        object.__setattr__(self, "infos", infos)
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "signature_count", signature_count)

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.sender, self.identifier, format_cap_datetime(self.sent))

    @property
    def expires(self) -> datetime | None:
        """The latest ``expires`` over all info blocks (None when no block has one)."""
        times = [i.expires for i in self.infos if i.expires is not None]
        return max(times) if times else None

    def is_expired(self, now: datetime | None = None) -> bool:
        expires = self.expires
        if expires is None:
            return False
        return expires <= (now or datetime.now(UTC))

    def languages(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for info in self.infos:
            seen.setdefault(info.language, None)
        return tuple(seen)

    def info_for(self, language: str) -> Info | None:
        """The first info block whose language matches (``fr`` matches ``fr-CA``)."""
        wanted = language.lower()
        for info in self.infos:
            lang = info.language.lower()
            if lang == wanted or lang.split("-")[0] == wanted:
                return info
        return None
