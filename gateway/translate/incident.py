"""Incident messages: JSON (EIDO subset), a compact radio line, and an EDXL-DE 2.0 wrap.

The radio line (one line, printable ASCII, fits APRS/pager/DMR text links)::

    INC1 ID=SURREY-FD-0042 ST=active TY=fire.structure LL=49.00210,-122.75640
         U=E12,M3 AG=SURREY-FD CT=20261129T0710Z UT=20261129T0712Z
         LOC=8%20Ave%20and%20176%20St // Two-storey house, smoke showing

* ``INC1`` -- format and version; then ``KEY=value`` fields separated by single spaces, in
  any order; values are percent-encoded (space ``%20``, ``%`` ``%25``, ``/`` ``%2F``, ``|``
  ``%7C``, ``~`` ``%7E``, ``{`` ``%7B``, non-ASCII as UTF-8 bytes).
* Fields: ``ID`` (required), ``ST`` status, ``TY`` type, ``LL`` latitude,longitude (5
  decimals, about a metre), ``U`` units (comma separated), ``AG`` agency, ``CT``/``UT`` created
  and updated (UTC, ``YYYYMMDDTHHMMZ``), ``LOC`` location description, ``PR`` priority
  (``urgent``, ``high``, ``normal``, ``low``), ``FR`` the notes in French (a reader that does
  not know ``PR`` or ``FR`` skips them).
* `` // `` then the free text to the end of the line (the characters APRS forbids are
  percent-encoded there too).

Minutes are the precision of the line format; JSON keeps seconds.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from cap_schemas.edxl import unwrap, wrap
from cap_schemas.errors import CapParseError
from gateway.errors import FrameError
from gateway.metrics import INPUT_REJECTED
from gateway.model import INCIDENT_PRIORITIES, INCIDENT_STATUSES, Incident, Location

SCHEMA = "borderlink:incident:1"
LINE_PREFIX = "INC1"
MIME = "application/vnd.borderlink.incident+json"
MAX_LINE = 4096
_KEY = re.compile(r"[A-Z]{1,3}")
_SAFE = "-._:,@+=*!$'()"
_FORBIDDEN_IN_TEXT = {"|": "%7C", "~": "%7E", "{": "%7B", "%": "%25"}


class IncidentFormatError(FrameError):
    """An incident message (JSON or radio line) that cannot be read; says what and where."""


def _reject(message: str, reason: str) -> IncidentFormatError:
    INPUT_REJECTED.inc(component="incident", reason=reason)
    return IncidentFormatError(message)


def _utc_minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def _read_minute(text: str, key: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
    except ValueError:
        raise _reject(f"field {key}: {text!r} is not YYYYMMDDTHHMMZ", "bad_time") from None


def _check(incident: Incident) -> None:
    if not incident.incident_id or any(c.isspace() for c in incident.incident_id):
        raise _reject("incident id is empty or contains spaces", "bad_id")
    if incident.status not in INCIDENT_STATUSES:
        allowed = ", ".join(INCIDENT_STATUSES)
        raise _reject(f"status {incident.status!r} is not one of {allowed}", "bad_status")
    if incident.priority and incident.priority not in INCIDENT_PRIORITIES:
        allowed = ", ".join(INCIDENT_PRIORITIES)
        raise _reject(f"priority {incident.priority!r} is not one of {allowed}", "bad_priority")
    loc = incident.location
    if loc is not None and not (
        math.isfinite(loc.latitude)
        and math.isfinite(loc.longitude)
        and -90 <= loc.latitude <= 90
        and -180 <= loc.longitude <= 180
    ):
        raise _reject(f"location {loc.latitude},{loc.longitude} is out of range", "bad_location")
    for when in (incident.created, incident.updated):
        if when.tzinfo is None:
            raise _reject("incident times must carry a time zone", "bad_time")


def _q(value: str) -> str:
    return quote(value, safe=_SAFE)


def incident_to_text(incident: Incident) -> str:
    """The radio line for an incident (see the module docstring)."""
    _check(incident)
    fields = [LINE_PREFIX, f"ID={_q(incident.incident_id)}", f"ST={_q(incident.status)}"]
    if incident.incident_type:
        fields.append(f"TY={_q(incident.incident_type)}")
    if incident.location is not None:
        loc = incident.location
        fields.append(f"LL={loc.latitude:.5f},{loc.longitude:.5f}")
    if incident.units:
        fields.append("U=" + ",".join(_q(u).replace(",", "%2C") for u in incident.units))
    if incident.agency:
        fields.append(f"AG={_q(incident.agency)}")
    fields.append(f"CT={_utc_minute(incident.created)}")
    fields.append(f"UT={_utc_minute(incident.updated)}")
    if incident.location is not None and incident.location.description:
        fields.append(f"LOC={_q(incident.location.description)}")
    if incident.priority:
        fields.append(f"PR={_q(incident.priority)}")
    text_fr = " ".join(incident.text_fr.split())
    if text_fr:
        fields.append(f"FR={_q(text_fr)}")
    line = " ".join(fields)
    text = " ".join(incident.text.split())
    if text:
        text = "".join(_FORBIDDEN_IN_TEXT.get(c, c) for c in text)
        line = f"{line} // {text}"
    return line


def text_to_incident(line: str) -> Incident:
    """Read a radio line; raise :class:`IncidentFormatError` naming the field at fault."""
    if len(line) > MAX_LINE:
        raise _reject(f"incident line is {len(line)} characters (at most {MAX_LINE})", "too_large")
    line = line.strip("\r\n ")
    head, sep, free = line.partition(" // ")
    if not sep and head.endswith(" //"):
        head = head[:-3]
    tokens = head.split(" ")
    if not tokens or tokens[0] != LINE_PREFIX:
        raise _reject(f"an incident line starts with {LINE_PREFIX}", "not_incident")
    values: dict[str, str] = {}
    for position, token in enumerate(tokens[1:], start=2):
        key, eq, value = token.partition("=")
        if not eq or not _KEY.fullmatch(key):
            raise _reject(f"token {position} {token[:20]!r} is not KEY=value", "syntax")
        if key in values:
            raise _reject(f"field {key} appears twice", "syntax")
        values[key] = value
    if "ID" not in values:
        raise _reject("field ID is required", "syntax")
    location = None
    if "LL" in values:
        try:
            lat_text, lon_text = values["LL"].split(",")
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            raise _reject(f"field LL {values['LL']!r} is not lat,lon", "bad_location") from None
        location = Location(lat, lon, unquote(values.get("LOC", ""), errors="strict"))
    elif "LOC" in values:
        raise _reject("field LOC needs LL", "bad_location")
    created = _read_minute(values.get("CT", ""), "CT") if "CT" in values else None
    updated = _read_minute(values.get("UT", ""), "UT") if "UT" in values else created
    if created is None or updated is None:
        raise _reject("fields CT and UT are required", "bad_time")
    try:
        units = (
            tuple(unquote(u, errors="strict") for u in values["U"].split(","))
            if values.get("U")
            else ()
        )
        incident = Incident(
            incident_id=unquote(values["ID"], errors="strict"),
            incident_type=unquote(values.get("TY", ""), errors="strict"),
            status=unquote(values.get("ST", "active"), errors="strict"),
            location=location,
            units=units,
            text=unquote(free, errors="strict") if free else "",
            agency=unquote(values.get("AG", ""), errors="strict"),
            created=created,
            updated=updated,
            text_fr=unquote(values.get("FR", ""), errors="strict"),
            priority=unquote(values.get("PR", ""), errors="strict"),
        )
    except UnicodeDecodeError:
        raise _reject("a percent-encoded value is not UTF-8", "encoding") from None
    _check(incident)
    return incident


def incident_to_json(incident: Incident) -> bytes:
    """The JSON form (EIDO member names, see :mod:`gateway.model`)."""
    _check(incident)
    doc: dict[str, Any] = {
        "$schema": SCHEMA,
        "incidentTrackingIdentifier": incident.incident_id,
        "incidentTypeCommonRegistryText": incident.incident_type,
        "incidentStatusCommonRegistryText": incident.status,
        "location": None,
        "units": list(incident.units),
        "notesText": incident.text,
        "agencyIdentifier": incident.agency,
        "createdTimestamp": incident.created.isoformat(),
        "lastUpdateTimestamp": incident.updated.isoformat(),
    }
    if incident.text_fr:
        doc["notesTextFr"] = incident.text_fr
    if incident.priority:
        doc["incidentPriority"] = incident.priority
    if incident.location is not None:
        doc["location"] = {
            "latitude": incident.location.latitude,
            "longitude": incident.location.longitude,
            "civicAddressText": incident.location.description,
        }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")


def _str(doc: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _reject(f"member {key!r} must be a string", "bad_value")
    return value


def _time(doc: dict[str, Any], key: str) -> datetime:
    text = _str(doc, key, required=True)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _reject(f"member {key!r}: {text!r} is not an ISO 8601 time", "bad_time") from None
    if value.tzinfo is None:
        raise _reject(f"member {key!r}: {text!r} has no time zone", "bad_time")
    return value


def incident_from_json(data: bytes) -> Incident:
    """Read the JSON form; raise :class:`IncidentFormatError` naming the member at fault."""
    if len(data) > 1024 * 1024:
        raise _reject("incident JSON is larger than 1 MiB", "too_large")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _reject(f"incident JSON does not parse: {exc}", "syntax") from None
    if not isinstance(doc, dict):
        raise _reject("incident JSON must be an object", "syntax")
    if doc.get("$schema") != SCHEMA:
        raise _reject(f"$schema must be {SCHEMA!r}", "not_incident")
    location = None
    loc = doc.get("location")
    if loc is not None:
        if not isinstance(loc, dict):
            raise _reject("member 'location' must be an object", "bad_location")
        lat, lon = loc.get("latitude"), loc.get("longitude")
        if (
            isinstance(lat, bool)
            or isinstance(lon, bool)
            or not (isinstance(lat, int | float) and isinstance(lon, int | float))
        ):
            raise _reject("location latitude/longitude must be numbers", "bad_location")
        desc = loc.get("civicAddressText") or ""
        if not isinstance(desc, str):
            raise _reject("member 'civicAddressText' must be a string", "bad_location")
        location = Location(float(lat), float(lon), desc)
    units = doc.get("units") or []
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
        raise _reject("member 'units' must be a list of strings", "bad_value")
    incident = Incident(
        incident_id=_str(doc, "incidentTrackingIdentifier", required=True),
        incident_type=_str(doc, "incidentTypeCommonRegistryText"),
        status=_str(doc, "incidentStatusCommonRegistryText") or "active",
        location=location,
        units=tuple(units),
        text=_str(doc, "notesText"),
        agency=_str(doc, "agencyIdentifier"),
        created=_time(doc, "createdTimestamp"),
        updated=_time(doc, "lastUpdateTimestamp"),
        text_fr=_str(doc, "notesTextFr"),
        priority=_str(doc, "incidentPriority"),
    )
    _check(incident)
    return incident


def incident_to_edxl(
    incident: Incident, *, sender_id: str, expires: datetime | None = None
) -> bytes:
    """The incident JSON wrapped in an EDXL-DE 2.0 envelope (non-XML content)."""
    distribution = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{incident.incident_id}/{incident.updated}"))
    return wrap(
        [(MIME, incident_to_json(incident))],
        version="2.0",
        distribution_id=distribution,
        sender_id=sender_id,
        sent=incident.updated,
        kind="Update" if incident.updated != incident.created else "Report",
        expires=expires or incident.updated + timedelta(days=1),
        description=f"Incident {incident.incident_id}",
    )


def incident_from_edxl(data: bytes) -> Incident:
    """The incident carried by an EDXL-DE envelope made by :func:`incident_to_edxl`."""
    try:
        envelope = unwrap(data)
    except CapParseError as exc:
        raise _reject(f"EDXL-DE envelope: {exc}", "not_incident") from None
    for content in envelope.contents:
        if content.mime_type == MIME:
            return incident_from_json(content.data)
    raise _reject("the EDXL-DE envelope carries no incident", "not_incident")
