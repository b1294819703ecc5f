"""Composing an alert in the console: the form, the CAP it makes, its checks and previews.

An EOC issues alerts in its own country's profile: CAP-CP (English and French, both
required; SGC location codes; SOREM's Broadcast Immediately) or IPAWS (English; SAME event
and location codes; EAS-ORG; EAS-Must-Carry; times in the area's zone). The form becomes a
CAP 1.2 alert through the CAP library's model, is checked by the same rules and rule ids as
``borderlink validate``, previewed as the outputs it will produce (the other side's CAP, the
SAME header, the radio text of each radio), and -- signed with the deployment's key when one
is configured -- enters the ledger through the same intake as any input (source
``console``), so routes, holds and every sink treat it as they treat the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cap_schemas.model import (
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
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)
from cap_schemas.rules import Finding
from cap_schemas.serialize import to_xml
from cap_schemas.tables import capcp_events
from cap_schemas.validate import validate
from gateway.errors import GatewayError
from gateway.translate.registry import RENDERERS
from gateway.translate.us_zones import zone_of_same_codes

__all__ = ["PROFILES", "Draft", "build", "check", "circle_text", "polygon_text", "previews"]

PROFILES = ("cap-cp", "ipaws")
CAPCP_CODE = "profile:CAP-CP:0.4"
CAPCP_EVENT = "profile:CAP-CP:Event:0.4"
CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"
SOREM_BI = "layer:SOREM:1.0:Broadcast_Immediately"
RADIOS = ("aprs", "pager", "dmr")


class DraftError(GatewayError):
    """A form that cannot become an alert at all (a field that is not a number, a polygon
    that is not one); the message names the field."""


@dataclass(frozen=True, slots=True)
class Draft:
    """What the operator wrote, as text, field by field."""

    profile: str = "cap-cp"
    status: str = "Actual"
    msg_type: str = "Alert"
    references: str = ""  # keys, space separated (an Update or Cancel)
    event: str = ""  # CAP-CP event code, or SAME event code for IPAWS
    category: str = "Safety"
    urgency: str = "Immediate"
    severity: str = "Severe"
    certainty: str = "Observed"
    headline_en: str = ""
    description_en: str = ""
    instruction_en: str = ""
    headline_fr: str = ""
    description_fr: str = ""
    instruction_fr: str = ""
    area_en: str = ""
    area_fr: str = ""
    codes: str = ""  # SGC (CAP-CP) or SAME (IPAWS) location codes, comma or space separated
    polygon: str = ""  # optional: "lat,lon lat,lon ..." (drawn on the map or written)
    circle: str = ""  # optional: "lat,lon radius_km" (drawn on the map or written)
    expires_hours: str = "6"
    broadcast_immediately: bool = False

    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> Draft:
        values = {
            name: str(form.get(name, "")).strip()[:4000]
            for name in cls.__dataclass_fields__
            if name != "broadcast_immediately"
        }
        values = {k: v for k, v in values.items() if v or k in ("references", "polygon", "circle")}
        return cls(**values, broadcast_immediately=form.get("broadcast_immediately") == "yes")

    @property
    def location_codes(self) -> tuple[str, ...]:
        return tuple(c for c in self.codes.replace(",", " ").split() if c)


def _enum(kind: Any, value: str, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise DraftError(f"{name}: {value!r} is not one of {allowed}") from None


def _polygon(text: str) -> tuple[Polygon, ...]:
    if not text:
        return ()
    try:
        points = tuple(
            Point(float(lat), float(lon)) for lat, lon in (pair.split(",") for pair in text.split())
        )
    except ValueError:
        raise DraftError("polygon: write lat,lon pairs separated by spaces") from None
    if len(points) < 3:
        raise DraftError("polygon: at least three points")
    if points[0] != points[-1]:
        points = (*points, points[0])
    return (Polygon(points),)


def _circle(text: str) -> tuple[Circle, ...]:
    if not text:
        return ()
    try:
        centre, radius = text.split()
        lat, lon = centre.split(",")
        return (Circle(Point(float(lat), float(lon)), float(radius)),)
    except ValueError:
        raise DraftError("circle: write lat,lon radius_km (42.3,-83.0 10)") from None


def _number(value: float) -> str:
    """A coordinate as written, every digit kept (``42.0`` as ``42``)."""
    text = repr(value)
    return text.removesuffix(".0")


def polygon_text(info: Info) -> str:
    """The form's ``polygon`` of an alert's first area (an Update or Cancel keeps it)."""
    area = info.areas[0] if info.areas else None
    points = area.polygons[0].points if area is not None and area.polygons else ()
    return " ".join(f"{_number(p.lat)},{_number(p.lon)}" for p in points)


def circle_text(info: Info) -> str:
    """The form's ``circle`` of an alert's first area (an Update or Cancel keeps it)."""
    area = info.areas[0] if info.areas else None
    if area is None or not area.circles:
        return ""
    circle = area.circles[0]
    centre = circle.center
    return f"{_number(centre.lat)},{_number(centre.lon)} {_number(circle.radius_km)}"


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise DraftError(f"expires_hours: {text!r} is not a number of hours") from None
    if not 0.1 <= hours <= 24 * 14:
        raise DraftError("expires_hours: from 0.1 to 336 hours")
    return hours


def build(draft: Draft, *, sender: str, sender_name: str, now: datetime, issued_by: str) -> Alert:
    """The CAP alert a draft makes (not yet checked)."""
    if draft.profile not in PROFILES:
        raise DraftError(f"profile: one of {', '.join(PROFILES)}")
    if not draft.event:
        raise DraftError("event: the event is required (a CAP-CP event, or a SAME code for IPAWS)")
    if draft.profile == "cap-cp" and not draft.headline_fr and draft.headline_en:
        raise DraftError("headline_fr: a CAP-CP alert is issued in French too (required)")
    msg_type = _enum(MsgType, draft.msg_type, "msg_type")
    try:
        references = tuple(AlertKey.from_reference(r) for r in draft.references.split())
    except ValueError:
        raise DraftError("references: sender,identifier,sent keys separated by spaces") from None
    codes = draft.location_codes
    zone = (
        ZoneInfo(zone_of_same_codes(codes) or "America/New_York")
        if draft.profile == "ipaws"
        else None
    )
    sent = now.replace(microsecond=0)
    sent = sent.astimezone(zone) if zone is not None else sent
    expires = sent + timedelta(hours=_hours(draft.expires_hours))
    shapes = _polygon(draft.polygon)
    circles = _circle(draft.circle)
    common = {
        "categories": (_enum(Category, draft.category, "category"),),
        "urgency": _enum(Urgency, draft.urgency, "urgency"),
        "severity": _enum(Severity, draft.severity, "severity"),
        "certainty": _enum(Certainty, draft.certainty, "certainty"),
        "effective": sent,
        "expires": expires,
        "sender_name": sender_name,
    }
    infos: list[Info] = []
    if draft.profile == "cap-cp":
        params = (ValuePair(SOREM_BI, "Yes" if draft.broadcast_immediately else "No"),)
        geocodes = tuple(ValuePair(CAPCP_LOCATION, c) for c in codes)
        known = capcp_events().get(draft.event)
        for lang, suffix in (("en-CA", "en"), ("fr-CA", "fr")):
            name = "" if known is None else known.name_fr if suffix == "fr" else known.name_en
            infos.append(
                Info(
                    language=lang,
                    event=name or draft.event,  # the list's name in the block's language
                    event_codes=(ValuePair(CAPCP_EVENT, draft.event),),
                    headline=getattr(draft, f"headline_{suffix}") or None,
                    description=getattr(draft, f"description_{suffix}") or None,
                    instruction=getattr(draft, f"instruction_{suffix}") or None,
                    parameters=params,
                    areas=(
                        Area(
                            area_desc=getattr(draft, f"area_{suffix}") or draft.area_en,
                            polygons=shapes,
                            circles=circles,
                            geocodes=geocodes,
                        ),
                    ),
                    **common,
                )
            )
        codes_top: tuple[str, ...] = (CAPCP_CODE,)
    else:
        params_us = [ValuePair("EAS-ORG", "CIV")]
        if draft.broadcast_immediately:
            params_us.append(ValuePair("EAS-Must-Carry", "True"))
        tz_name = sent.tzname() or ""
        params_us.append(ValuePair("timezone", tz_name))
        infos.append(
            Info(
                language="en-US",
                event=draft.event,
                event_codes=(ValuePair("SAME", draft.event),),
                headline=draft.headline_en or None,
                description=draft.description_en or None,
                instruction=draft.instruction_en or None,
                parameters=tuple(params_us),
                areas=(
                    Area(
                        area_desc=draft.area_en,
                        polygons=shapes,
                        circles=circles,
                        geocodes=tuple(ValuePair("SAME", c) for c in codes),
                    ),
                ),
                **common,
            )
        )
        codes_top = ("IPAWSv1.0",)
    return Alert(
        identifier=f"borderlink-console-{uuid.uuid4().hex}",
        sender=sender,
        sent=sent,
        status=_enum(Status, draft.status, "status"),
        msg_type=msg_type,
        scope=Scope.PUBLIC,
        codes=codes_top,
        note=f"Issued through the borderlink console by {issued_by}.",
        references=references,
        infos=tuple(infos),
    )


def check(alert: Alert, profile: str) -> list[Finding]:
    """The findings of ``borderlink validate`` for the alert (XSD, CAP rules, profile)."""
    return validate(alert, profile=profile)


@dataclass(frozen=True, slots=True)
class Preview:
    title: str
    content_type: str
    text: str


def previews(alert: Alert, profile: str, *, sender: str) -> list[Preview]:
    """What the alert becomes on the way out: the other side's CAP, the SAME header, the
    radio text of each radio (a translation that cannot be made says why), and its own CAP
    (with the area drawn on the map)."""
    other = "ipaws" if profile == "cap-cp" else "cap-cp"
    wanted: list[tuple[str, str, Mapping[str, Any]]] = [
        (f"{other.upper()} (the other side)", other, {"sender": sender}),
        ("SAME header", "same", {}),
    ]
    wanted += [(f"radio text: {r}", "text", {"radio": r, "lang": "both"}) for r in RADIOS]
    out = []
    raw_alert = Alert(
        **{f: getattr(alert, f) for f in alert.__dataclass_fields__ if f != "raw"},
        raw=to_xml(alert),
    )
    wanted.append(("CAP as issued (before signing)", "identity", {}))
    for title, renderer, options in wanted:
        try:
            rendered = RENDERERS[renderer](raw_alert, options)
        except GatewayError as exc:
            out.append(Preview(title, "text/plain", f"not produced: {exc}"))
            continue
        text = "\n".join(
            part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part)
            for part in rendered.parts
        )
        out.append(Preview(title, rendered.content_type, text))
    return out


def errors(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]
