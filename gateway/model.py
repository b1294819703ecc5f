"""The gateway's own vocabulary besides CAP: incidents, radio text and messages, renderings.

This module is the ground floor of ``gateway/``: it imports nothing of the gateway but its
errors, so every other module (the router, the translations, the links, the radio adapters)
can share these types without importing each other.

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
      "notesTextFr": "Maison de deux étages, fumée visible",
      "incidentPriority": "high",
      "createdTimestamp": "2026-11-29T07:10:00+00:00",
      "lastUpdateTimestamp": "2026-11-29T07:12:00+00:00"
    }

:class:`RadioText` is what a radio sink sends: the parts in order, the language(s) and the
priority word every part starts with.

``notesTextFr`` (the notes in French) and ``incidentPriority`` (``urgent``, ``high``,
``normal`` or ``low``) are borderlink's own members, written only when set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.errors import FrameError

INCIDENT_STATUSES = ("active", "pending", "dispatched", "onscene", "closed", "cancelled")
#: How urgent an incident report is, most urgent first (borderlink's own scale; EIDO has none).
INCIDENT_PRIORITIES = ("urgent", "high", "normal", "low")

# How far an input is believed, lowest first: a door that proves nothing, one whose peer
# proved who it is, an alert whose XML signature verified against a pinned anchor.
ANONYMOUS = "anonymous"
AUTHENTICATED = "authenticated"
VERIFIED = "verified"
TRUST_LEVELS = (ANONYMOUS, AUTHENTICATED, VERIFIED)


def trust_rank(level: str) -> int:
    """Order of the trust levels (an unknown word ranks lowest)."""
    return TRUST_LEVELS.index(level) if level in TRUST_LEVELS else 0


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
    text_fr: str = ""  # the notes in French, when the report has them in both languages
    priority: str = ""  # one of INCIDENT_PRIORITIES, or "" when not given


@dataclass(frozen=True, slots=True)
class RadioText:
    """Text sized for one radio link: ``parts`` are sent in order."""

    parts: tuple[str, ...]
    language: str
    priority: str


@dataclass(frozen=True, slots=True)
class RadioMessage:
    """A text message heard on a radio channel (the ``raw`` of a ``Received`` of kind
    ``"incident"`` from a radio adapter, as JSON).

    ``channel`` is where it was heard (talkgroup, APRS group, the gateway's callsign for a
    directed message, MQTT topic); ``relay_id`` is set on copies a link relayed.
    """

    text: str
    sender: str = ""
    channel: str = ""
    number: str | None = None
    relay_id: str = ""
    link: str = ""

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"text": self.text, "from": self.sender, "channel": self.channel}
        if self.number is not None:
            body["number"] = self.number
        if self.relay_id:
            body["relay_id"] = self.relay_id
        if self.link:
            body["link"] = self.link
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> RadioMessage:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FrameError(f"radio message is not JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise FrameError("radio message JSON has no string 'text'")
        number = body.get("number")
        return cls(
            text=body["text"],
            sender=str(body.get("from", "")),
            channel=str(body.get("channel", "")),
            number=None if number is None else str(number),
            relay_id=str(body.get("relay_id", "")),
            link=str(body.get("link", "")),
        )


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one sink receives for one alert or message.

    ``parts`` holds one payload per transmission: a CAP document is one part; radio text
    split to fit a 67-character APRS message is several, sent in order.
    """

    parts: tuple[bytes, ...]
    content_type: str
    attributes: Mapping[str, str] = field(default_factory=dict)
