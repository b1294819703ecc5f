"""A received SAME header as a CAP 1.2 alert: what an ENDEC's receiver heard, described.

Event and area names come from the code tables (:mod:`cap_schemas.tables`), ``sent`` from the
header's issue time, ``expires`` from its duration. The identifier is derived from the header
without its station id (ECIG's rule for telling a relayed header from a new one), so the same
broadcast heard twice is one alert. The alert is marked unauthenticated: a SAME burst carries
no signature, and nothing downstream may take it for more than a report of what was heard.
"""

from __future__ import annotations

import hashlib

from cap_schemas.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)
from cap_schemas.same import SameHeader
from cap_schemas.tables import same_events, same_location_name

__all__ = ["DERIVED_PARAMETER", "TEST_EVENTS", "same_to_alert"]

TEST_EVENTS = frozenset({"RWT", "RMT", "NPT", "DMO"})
DERIVED_PARAMETER = "borderlink:authenticated"


def same_to_alert(
    header: SameHeader,
    *,
    sender: str = "same-receiver@borderlink.invalid",
    country: str = "US",
) -> Alert:
    """A CAP alert describing a received SAME header (see the module docstring)."""
    events = same_events()
    entry = events.get(header.event)
    event_name = entry.name_en if entry else f"SAME event {header.event}"
    is_test = header.event in TEST_EVENTS
    names = []
    geocodes = []
    for code in header.locations:
        name = same_location_name(code, country=country)
        if name is None and country == "US":
            name = same_location_name(code, country="CA")
        names.append(name or f"location {code}")
        geocodes.append(ValuePair("SAME", code))
    text = header.to_text()
    key_text = text.rsplit("-", 2)[0]  # without LLLLLLLL, as ECIG compares duplicates
    identifier = "SAME-" + hashlib.sha256(key_text.encode("ascii")).hexdigest()[:24]
    category = Category.MET if header.originator == "WXR" else Category.SAFETY
    if is_test:
        category = Category.OTHER
    info = Info(
        categories=(category,),
        event=event_name,
        urgency=Urgency.UNKNOWN,
        severity=Severity.UNKNOWN,
        certainty=Certainty.UNKNOWN,
        language="en-CA" if country == "CA" else "en-US",
        event_codes=(ValuePair("SAME", header.event),),
        expires=header.expires,
        sender_name=f"SAME broadcast from {header.station.strip() or 'unknown station'}",
        headline=f"{event_name} for {', '.join(names[:3])}"
        + (f" and {len(names) - 3} more" if len(names) > 3 else ""),
        description=f"Received SAME header: {text}",
        parameters=(
            ValuePair("EAS-ORG", header.originator),
            ValuePair(DERIVED_PARAMETER, "false"),
        ),
        areas=(Area(area_desc="; ".join(names), geocodes=tuple(geocodes)),),
    )
    return Alert(
        identifier=identifier,
        sender=sender,
        sent=header.issued,
        status=Status.TEST if is_test else Status.ACTUAL,
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
        source="SAME broadcast (unauthenticated)",
        note="Derived from an unauthenticated SAME broadcast header; verify before acting.",
        infos=(info,),
    )
