"""Incident reports from the EOC outward, and the incidents heard from the field and partners.

An operator writes an incident report (the EIDO-subset JSON of :mod:`gateway.model`) in the
console (``/incidents/new``) or posts one to ``POST /api/v1/incidents``: its type, status and
priority, its notes in English and French, a point (picked on the map) with a civic address,
the units on it, and the destinations it goes to. The destinations are what the
configuration allows: every sink of a route with ``input = "incident"`` that takes input from
the source ``console`` -- talkgroups, radios, the partner's broker. Before sending, the form
shows what each destination will get (the radio line, the JSON, the EDXL-DE envelope). The
report then enters the ledger through the same intake as any inbound incident (source
``console``), restricted to the chosen sinks.

Incident reports the ledger admitted from anywhere (field units over MQTT or radio, the
partner, the console) are listed on the board and drawn on the map while they are current:
the latest update of each incident (by agency and id), for :data:`SHOWN_HOURS` after that
update, unless it is ``closed`` or ``cancelled``.
"""

from __future__ import annotations

import asyncio
import functools
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from gateway.adapter import Received
from gateway.errors import FrameError, GatewayError
from gateway.ledger import Admission, Ledger, StoredAlert
from gateway.messages import MESSAGE_RENDERERS, InboundMessage, message_key, parse_inbound
from gateway.metrics import INPUT_REJECTED
from gateway.model import INCIDENT_PRIORITIES, INCIDENT_STATUSES, Incident, Location
from gateway.router import MessageContext, Router, message_routes_for
from gateway.summary import topic_key
from gateway.translate.incident import incident_to_json

log = structlog.get_logger(__name__)

__all__ = [
    "INCIDENT_TYPES",
    "SHOWN_HOURS",
    "Destination",
    "IncidentRow",
    "Report",
    "ReportError",
    "build_incident",
    "current_incidents",
    "destinations",
    "submit",
]

SOURCE = "console"
COMPONENT = "console"
#: How long an incident stays on the board, the map and the feeds after its last update.
SHOWN_HOURS = 24.0
#: Types offered by the form (the report may carry any other word).
INCIDENT_TYPES = (
    "fire.structure",
    "fire.wildland",
    "medical",
    "hazmat",
    "flood",
    "rescue",
    "traffic",
    "police",
    "infrastructure",
    "evacuation",
    "other",
)
MAX_TEXT = 2000


class ReportError(GatewayError, ValueError):
    """A report that cannot become an incident; the message starts with the field's name.

    ``reason`` is the metric's reason (``no_type``, ``bad_location`` ...): the door that
    refuses the report counts it with :meth:`count` (the console's live check does not: a
    report still being typed is no refused input)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    def count(self) -> None:
        """Count the refusal in ``borderlink_input_rejected_total`` (once it has a reason)."""
        if self.reason:
            INPUT_REJECTED.inc(component=COMPONENT, reason=f"incident_{self.reason}")


def _refuse(message: str, reason: str) -> ReportError:
    return ReportError(message, reason)


@dataclass(frozen=True, slots=True)
class Report:
    """What the operator wrote, field by field, as text (the form's names)."""

    incident_type: str = ""
    status: str = "active"
    priority: str = "normal"
    description_en: str = ""
    description_fr: str = ""
    latitude: str = ""
    longitude: str = ""
    location: str = ""  # civic address or landmark
    units: str = ""  # comma or space separated
    incident_id: str = ""  # empty: a new incident; else an update of that one
    created: str = ""  # an update: when the incident was first reported (ISO 8601, with zone)
    destinations: tuple[str, ...] | None = None  # sinks; None: every one available

    @classmethod
    def from_form(cls, form: Any) -> Report:
        """From the console's form (``destination`` repeated, one per ticked box)."""
        values = {
            name: str(form.get(name, "")).strip()[:MAX_TEXT]
            for name in cls.__dataclass_fields__
            if name != "destinations"
        }
        values = {name: value for name, value in values.items() if value}  # else the default
        chosen = tuple(str(v) for v in form.getall("destination", []))
        return cls(**values, destinations=chosen)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Report:
        """From the API's JSON object; numbers may be numbers, ``units`` a list."""
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in body or body[name] is None:
                continue
            value = body[name]
            if name == "destinations":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise _refuse("destinations: a list of sink names", "bad_field")
                values[name] = tuple(value)
            elif name == "units" and isinstance(value, list):
                if not all(isinstance(v, str) for v in value):
                    raise _refuse("units: a list of unit names", "bad_field")
                values[name] = " ".join(value)
            elif name in ("latitude", "longitude") and isinstance(value, int | float):
                if isinstance(value, bool):
                    raise _refuse(f"{name}: a number of degrees", "bad_field")
                values[name] = repr(float(value))
            elif isinstance(value, str):
                values[name] = value.strip()[:MAX_TEXT]
            else:
                raise _refuse(f"{name}: a string", "bad_field")
        unknown = sorted(set(body) - set(cls.__dataclass_fields__))
        if unknown:
            raise _refuse(f"{unknown[0]}: not a field of an incident report", "bad_field")
        return cls(**values)


def _degrees(text: str, name: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _refuse(f"{name}: {text[:40]!r} is not a number of degrees", "bad_location") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise _refuse(f"{name}: from -{limit:g} to {limit:g} degrees", "bad_location")
    return value


def _location(report: Report) -> Location | None:
    if not report.latitude and not report.longitude:
        if report.location:
            raise _refuse("latitude: a civic address needs its point (click the map)", "no_point")
        return None
    if not (report.latitude and report.longitude):
        raise _refuse("latitude: give both latitude and longitude (click the map)", "no_point")
    return Location(
        round(_degrees(report.latitude, "latitude", 90), 5),
        round(_degrees(report.longitude, "longitude", 180), 5),
        report.location,
    )


def _created(text: str, now: datetime) -> datetime:
    if not text:
        return now
    try:
        created = datetime.fromisoformat(text)
    except ValueError:
        raise _refuse(f"created: {text[:40]!r} is not an ISO 8601 time", "bad_field") from None
    if created.tzinfo is None or created > now:
        raise _refuse("created: a past time with its zone", "bad_field")
    return created


def report_of(incident: Incident) -> Report:
    """The form filled in from an incident, to send an update of it."""
    loc = incident.location
    return Report(
        incident_type=incident.incident_type,
        status=incident.status,
        priority=incident.priority or "normal",
        description_en=incident.text,
        description_fr=incident.text_fr,
        latitude="" if loc is None else f"{loc.latitude:.5f}",
        longitude="" if loc is None else f"{loc.longitude:.5f}",
        location="" if loc is None else loc.description,
        units=" ".join(incident.units),
        incident_id=incident.incident_id,
        created=incident.created.isoformat(),
    )


def new_incident_id(agency: str, now: datetime) -> str:
    return f"{agency.upper()}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4].upper()}"


def build_incident(report: Report, *, agency: str, now: datetime) -> Incident:
    """The incident a report makes (each field checked; :class:`ReportError` names it)."""
    if not report.incident_type:
        raise _refuse("incident_type: the type is required (e.g. fire.structure)", "no_type")
    if report.status not in INCIDENT_STATUSES:
        allowed = ", ".join(INCIDENT_STATUSES)
        raise _refuse(f"status: {report.status!r} is not one of {allowed}", "bad_field")
    if report.priority not in INCIDENT_PRIORITIES:
        allowed = ", ".join(INCIDENT_PRIORITIES)
        raise _refuse(f"priority: {report.priority!r} is not one of {allowed}", "bad_field")
    if not report.description_en:
        raise _refuse("description_en: the notes in English are required", "no_text")
    if report.incident_id and any(c.isspace() for c in report.incident_id):
        raise _refuse("incident_id: no spaces in an incident id", "bad_field")
    stamp = now.replace(microsecond=0)
    created = _created(report.created, stamp) if report.incident_id else stamp
    return Incident(
        incident_id=report.incident_id or new_incident_id(agency, stamp),
        incident_type=report.incident_type,
        status=report.status,
        location=_location(report),
        units=tuple(u for u in report.units.replace(",", " ").split() if u),
        text=report.description_en,
        agency=agency,
        created=created,
        updated=stamp,
        text_fr=report.description_fr,
        priority=report.priority,
    )


# ------------------------------------------------------------------------------ sending


@dataclass(frozen=True, slots=True)
class Destination:
    """One sink an incident report can go to, and what it would get there."""

    sink: str
    sink_type: str
    route: str
    translation: str
    content_type: str
    preview: str  # the rendering, as text; "not produced: ..." when it cannot be made


def _inbound(incident: Incident) -> tuple[bytes, InboundMessage]:
    raw = incident_to_json(incident)
    return raw, parse_inbound(raw, channel=SOURCE)


def destinations(router: Router, incident: Incident | None, now: datetime) -> list[Destination]:
    """Every sink a report from the console can reach, once each (the first route naming a
    sink renders for it, as delivery does), with the preview of ``incident`` when given."""
    sample = incident or Incident(
        incident_id="PREVIEW", incident_type="other", status="active", location=None, units=(),
        text="", agency="", created=now, updated=now,
    )  # fmt: skip
    raw, inbound = _inbound(sample)
    key = message_key(inbound, source=SOURCE, received_at=now, raw=raw)
    ctx = MessageContext(inbound, SOURCE, key, now)
    out: dict[str, Destination] = {}
    for route in message_routes_for(router, ctx):
        for sink_name in route.sinks:
            sink = router.sinks.get(sink_name)
            if sink is None or sink_name in out:
                continue
            preview, content_type = "", ""
            if incident is not None:
                try:
                    rendered = MESSAGE_RENDERERS[route.translation](
                        inbound, route.translation_options
                    )
                except (FrameError, GatewayError) as exc:
                    preview = f"not produced: {exc}"
                else:
                    content_type = rendered.content_type
                    preview = "\n".join(p.decode("utf-8", "replace") for p in rendered.parts)
            out[sink_name] = Destination(
                sink_name, sink.type, route.name, route.translation, content_type, preview
            )
    return list(out.values())


@dataclass(frozen=True, slots=True)
class Submitted:
    incident: Incident
    admission: Admission
    destinations: tuple[str, ...]


def chosen_sinks(report: Report, available: Sequence[Destination]) -> tuple[str, ...]:
    """The sinks the report goes to: those it names (each must be available), or all."""
    names = [d.sink for d in available]
    if report.destinations is None:
        return tuple(names)
    unknown = [d for d in report.destinations if d not in names]
    if unknown:
        listed = ", ".join(names) or "(no route for incident reports takes the console)"
        raise _refuse(
            f"destinations: {unknown[0]!r} is not a destination of incident reports; "
            f"available: {listed}",
            "bad_destination",
        )
    if names and not report.destinations:
        raise _refuse("destinations: choose at least one", "no_destination")
    return tuple(dict.fromkeys(report.destinations))


async def submit(daemon: Any, report: Report, *, who: str) -> Submitted:
    """Build, check and send a report through the daemon's intake (source ``console``)."""
    now = daemon.clock.now()
    incident = build_incident(report, agency=agency_of(daemon), now=now)
    if report.incident_id:
        incident = await asyncio.to_thread(_after_last_update, daemon.ledger, incident, now)
    sinks = chosen_sinks(report, destinations(daemon.router, None, now))
    item = Received(
        raw=incident_to_json(incident),
        source=SOURCE,
        received_at=now,
        channel=SOURCE,
        kind="incident",
        destinations=frozenset(sinks),
    )
    admission = await daemon.ingest_message(item)
    if admission is None:  # our own JSON refused: a bug, already counted and recorded
        msg = "the gateway refused the report (see its invalid records)"
        raise ReportError(msg)
    log.info("console_incident_sent", incident=incident.incident_id, by=who,
             decision=admission.decision.value, sinks=list(sinks))  # fmt: skip
    return Submitted(incident, admission, sinks)


def _after_last_update(ledger: Ledger, incident: Incident, now: datetime) -> Incident:
    """An update is later than the last one the ledger holds of the incident: its time is
    part of the incident's identity, so two updates within one second would be one."""
    sender = f"incident:{incident.agency}"
    last = max(
        (
            found.updated
            for row in ledger.incidents(now - timedelta(hours=SHOWN_HOURS), with_raw=True)
            if (row.key.sender, row.key.identifier) == (sender, incident.incident_id)
            and (found := incident_of(row.raw)) is not None
        ),
        default=None,
    )
    if last is None or incident.updated > last:
        return incident
    return replace(incident, updated=last + timedelta(seconds=1))


def agency_of(daemon: Any) -> str:
    """The agency written on our reports: the gateway's name (short, fits a radio line)."""
    return str(daemon.config.gateway.name)


# ------------------------------------------------------------------------- incoming


_PRIORITY_RANK = {p: n for n, p in enumerate(INCIDENT_PRIORITIES)}
_CLOSED = ("closed", "cancelled")


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """One current incident: its latest update, as the board, the map and the feeds show it."""

    key: str
    incident: Incident
    source: str
    channel: str
    received_at: datetime
    age: float
    updates: int  # how many updates of it the ledger holds

    @property
    def ident(self) -> str:
        return topic_key(self.key)

    @property
    def expires(self) -> datetime:
        return self.incident.updated + timedelta(hours=SHOWN_HOURS)

    @property
    def priority(self) -> str:
        return self.incident.priority or "normal"


@functools.lru_cache(maxsize=4096)
def incident_of(raw: bytes) -> Incident | None:
    """The incident a stored inbound message carries (None for plain text)."""
    try:
        return parse_inbound(raw).incident
    except FrameError:
        return None


def current_incidents(ledger: Ledger, now: datetime) -> list[IncidentRow]:
    """The current incidents: most urgent first, then the most recently updated."""
    since = now - timedelta(hours=SHOWN_HOURS)
    stored = ledger.incidents(since, with_raw=True)
    latest: dict[tuple[str, str], tuple[StoredAlert, Incident]] = {}
    counts: dict[tuple[str, str], int] = {}
    for row in stored:
        incident = incident_of(row.raw)
        if incident is None:
            continue
        ident = (row.key.sender, row.key.identifier)
        counts[ident] = counts.get(ident, 0) + 1
        known = latest.get(ident)
        if known is None or incident.updated > known[1].updated:
            latest[ident] = (row, incident)
    rows = [
        IncidentRow(
            key=str(row.key),
            incident=incident,
            source=row.source,
            channel=row.areas[0] if row.areas else "",
            received_at=row.received_at,
            age=(now - row.received_at).total_seconds(),
            updates=counts[ident],
        )
        for ident, (row, incident) in latest.items()
        if incident.status not in _CLOSED and incident.updated >= since
    ]
    rows.sort(key=lambda r: (_PRIORITY_RANK.get(r.priority, 2), -r.incident.updated.timestamp()))
    return rows


def point_feature(row: IncidentRow) -> dict[str, Any]:
    """The incident as a GeoJSON feature: a Point, or no geometry without a location."""
    incident = row.incident
    loc = incident.location
    properties: dict[str, Any] = {
        "kind": "incident",
        "key": row.key,
        "incident_id": incident.incident_id,
        "type": incident.incident_type,
        "status": incident.status,
        "priority": row.priority,
        "agency": incident.agency,
        "notes": {"en": incident.text, **({"fr": incident.text_fr} if incident.text_fr else {})},
        "location": "" if loc is None else loc.description,
        "units": list(incident.units),
        "updated": incident.updated.isoformat(),
        "expires": row.expires.isoformat(),
        "source": row.source,
    }
    geometry = (
        None if loc is None else {"type": "Point", "coordinates": [loc.longitude, loc.latitude]}
    )
    return {"type": "Feature", "id": row.key, "geometry": geometry, "properties": properties}
