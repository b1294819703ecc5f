"""The gateway's own message models besides CAP: incidents and radio text.

:class:`Incident` is the subset of the NENA EIDO (NENA-STA-021, Emergency Incident Data
Object) that field units and EOCs exchange over MQTT and radio. Its JSON form (see
``docs/translation.md``) uses EIDO's member names where EIDO has one::

    {
      "$schema": "borderlink:incident:1",
      "incidentTrackingIdentifier": "SURREY-FD-2026-0042",
      "incidentTypeCommonRegistryText": "fire.structure",
      "incidentStatusCommonRegistryText": "active",
      "location": {"latitude": 49.0021, "longitude": -122.7564,
                   "civicAddressText": "8 Ave and 176 St"},
      "units": ["E12", "M3"],
      "notesText": "Two-storey house, smoke showing",
      "agencyIdentifier": "SURREY-FD",
      "createdTimestamp": "2026-11-29T07:10:00+00:00",
      "lastUpdateTimestamp": "2026-11-29T07:12:00+00:00"
    }

:class:`RadioText` is what a radio sink sends: the parts in order, the language(s) and the
priority word every part starts with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

INCIDENT_STATUSES = ("active", "pending", "dispatched", "onscene", "closed", "cancelled")


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident report (EIDO subset). Times are timezone-aware."""

    incident_id: str
    incident_type: str
    status: str
    location: Location | None
    units: tuple[str, ...]
    text: str
    agency: str
    created: datetime
    updated: datetime


@dataclass(frozen=True, slots=True)
class RadioText:
    """Text sized for one radio link: ``parts`` are sent in order."""

    parts: tuple[str, ...]
    language: str
    priority: str
