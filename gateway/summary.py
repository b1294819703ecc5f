"""A JSON summary of an alert: what a dashboard, a late MQTT subscriber or a script needs.

Used for ``{prefix}/active/{key}`` retained messages, for sinks with ``format = "json"`` and by
the HTTP API. The summary names the alert by its key (``alert_key``) and, for deliveries, by the
delivery's idempotency key (``delivery_id``), so a consumer can drop a repeated message.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import quote

from cap_schemas.model import Alert, AlertKey, Info, format_cap_datetime

__all__ = [
    "alert_country",
    "alert_event_code",
    "delivery_id",
    "summary",
    "summary_json",
    "topic_key",
]

_SAFE_KEY = ",:@-._~"


def topic_key(key: AlertKey | str) -> str:
    """The key as one MQTT topic level or URL path segment (``/ + #`` and spaces escaped)."""
    return quote(str(key), safe=_SAFE_KEY)


def delivery_id(key: AlertKey, sink: str) -> str:
    """The idempotency key of one (alert, sink) delivery: the same on every retry and restart."""
    digest = hashlib.sha256(f"{sink}\n{key}".encode()).hexdigest()
    return digest[:32]


def _iso(value: Any) -> str | None:
    return None if value is None else format_cap_datetime(value)


def _codes(info: Info) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pair in info.event_codes:
        out.setdefault(pair.name, []).append(pair.value)
    return out


def alert_country(alert: Alert) -> str:
    """``ca`` for a CAP-CP alert, ``us`` for IPAWS/NWS, else guessed from geocodes."""
    codes = " ".join(alert.codes)
    if "CAP-CP" in codes:
        return "ca"
    if "IPAWS" in codes:
        return "us"
    for info in alert.infos:
        for area in info.areas:
            for geo in area.geocodes:
                if geo.name.startswith("profile:CAP-CP"):
                    return "ca"
                if geo.name in ("SAME", "FIPS6", "UGC"):
                    return "us"
        if info.language.lower().endswith("-ca"):
            return "ca"
        if info.language.lower().endswith("-us"):
            return "us"
    return "xx"


_SLUG = re.compile(r"[^a-z0-9]+")


def alert_event_code(alert: Alert) -> str:
    """A short, topic-safe event name: the CAP-CP event, else the SAME code, else the text."""
    for info in alert.infos:
        for pair in info.event_codes:
            if pair.name.startswith("profile:CAP-CP:Event"):
                return _SLUG.sub("-", pair.value.lower()).strip("-") or "unknown"
    for info in alert.infos:
        same = info.event_code("SAME")
        if same:
            return _SLUG.sub("-", same.lower()).strip("-") or "unknown"
    if alert.infos:
        return _SLUG.sub("-", alert.infos[0].event.lower()).strip("-")[:40] or "unknown"
    return "none"


def _info(info: Info) -> dict[str, Any]:
    return {
        "language": info.language,
        "event": info.event,
        "event_codes": _codes(info),
        "severity": info.severity.value,
        "urgency": info.urgency.value,
        "certainty": info.certainty.value,
        "headline": info.headline,
        "sender_name": info.sender_name,
        "effective": _iso(info.effective),
        "onset": _iso(info.onset),
        "expires": _iso(info.expires),
        "areas": [
            {
                "desc": area.area_desc,
                "geocodes": [[g.name, g.value] for g in area.geocodes],
                "polygons": len(area.polygons),
                "circles": len(area.circles),
            }
            for area in info.areas
        ],
    }


def summary(alert: Alert, *, source: str = "", decision: str = "") -> dict[str, Any]:
    """A JSON-ready summary; one entry per info block under ``infos``."""
    infos = [_info(info) for info in alert.infos]
    key = alert.key
    out: dict[str, Any] = {
        "alert_key": str(key),
        "sender": key.sender,
        "identifier": key.identifier,
        "sent": key.sent,
        "status": alert.status.value,
        "msg_type": alert.msg_type.value,
        "scope": alert.scope.value,
        "country": alert_country(alert),
        "event": alert_event_code(alert),
        "expires": _iso(alert.expires),
        "references": [str(r) for r in alert.references],
        "infos": infos,
    }
    if source:
        out["source"] = source
    if decision:
        out["decision"] = decision
    return out


def summary_json(alert: Alert, **extra: Any) -> bytes:
    """The summary as compact UTF-8 JSON, with ``extra`` keys added (``delivery_id``...)."""
    body = summary(alert)
    body.update(extra)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
