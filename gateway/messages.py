"""Inbound incident and radio messages: what they are, their identity, and their renderings.

A source or a radio yields ``Received(kind="incident")`` for traffic that is not a CAP alert:

* a :class:`~gateway.links.RadioMessage` JSON from a radio adapter (APRS, data radio), whose
  text may be an ``INC1`` incident line;
* an incident JSON (``"$schema": "borderlink:incident:1"``, the EIDO subset of
  :mod:`gateway.model`) or its EDXL-DE 2.0 envelope, e.g. posted to an MQTT topic;
* plain UTF-8 text (an MQTT topic of field traffic).

:func:`parse_inbound` reads any of them into an :class:`InboundMessage` (or raises
:class:`~gateway.errors.FrameError` saying what is wrong); :func:`message_key` gives it the
identity the ledger deduplicates on; the renderers of :data:`MESSAGE_RENDERERS` are what a
route with ``input = "incident"`` can deliver.

Identity (``AlertKey(sender, identifier, sent)`` in the ledger's terms):

* an incident: ``("incident:" + agency, incident id, last update time)`` -- the same update
  heard twice (two radios, an MQTT redelivery) is one message, a newer update is another;
* a radio message with a message number: ``("radio:" + source + ":" + sender,
  number + "-" + text fingerprint, day received)`` -- a retry is the same message, a reused
  number with other text is not;
* anything else: unique per receipt (the radio adapters already drop repeats heard within
  their dedup window; nothing else identifies a bare text, and two equal texts from a field
  unit are two messages).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from cap_schemas.model import AlertKey, format_cap_datetime
from gateway.errors import ConfigError, FrameError
from gateway.ledger import MessageRecord
from gateway.model import Incident, RadioMessage, Rendered
from gateway.translate.incident import (
    LINE_PREFIX,
    MIME,
    incident_from_edxl,
    incident_from_json,
    incident_to_edxl,
    incident_to_json,
    incident_to_text,
    text_to_incident,
)

log = structlog.get_logger(__name__)

MAX_MESSAGE = 256 * 1024  # an incident report or a radio text; anything larger is refused


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One inbound message: the radio form (always) and the incident it carries (if any)."""

    message: RadioMessage
    incident: Incident | None
    form: str  # "radio", "incident", "edxl" or "text": what the bytes were

    @property
    def kind(self) -> str:
        return "Incident" if self.incident is not None else "RadioMessage"


def _incident_of_text(text: str) -> Incident | None:
    """The incident in an ``INC1`` line; None for free text (a malformed line stays text)."""
    if not text.lstrip().startswith(LINE_PREFIX + " "):
        return None
    try:
        return text_to_incident(text.strip())
    except FrameError as exc:
        log.warning("incident_line_kept_as_text", error=str(exc))
        return None


def parse_inbound(raw: bytes, *, channel: str = "") -> InboundMessage:
    """Read a ``Received(kind="incident")`` payload; :class:`FrameError` says what is wrong."""
    if len(raw) > MAX_MESSAGE:
        msg = f"message of {len(raw)} bytes is larger than {MAX_MESSAGE}"
        raise FrameError(msg)
    head = raw.lstrip()[:1]
    if head == b"{":
        return _from_json(raw, channel)
    if head == b"<":
        incident = incident_from_edxl(raw)
        return InboundMessage(_as_radio(incident, channel), incident, "edxl")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        msg = f"message is not UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})"
        raise FrameError(msg) from None
    if not text:
        msg = "message is empty"
        raise FrameError(msg)
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        msg = "message text contains control characters"
        raise FrameError(msg)
    return InboundMessage(RadioMessage(text, "", channel), _incident_of_text(text), "text")


def _from_json(raw: bytes, channel: str) -> InboundMessage:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"message is not JSON: {exc}"
        raise FrameError(msg) from None
    if not isinstance(body, dict):
        msg = f"message JSON is {type(body).__name__}, not an object"
        raise FrameError(msg)
    if "$schema" in body or "incidentTrackingIdentifier" in body:
        incident = incident_from_json(raw)
        return InboundMessage(_as_radio(incident, channel), incident, "incident")
    message = RadioMessage.from_json(raw)
    if not message.text.strip():
        msg = "radio message has empty text"
        raise FrameError(msg)
    if not message.channel and channel:
        message = RadioMessage(
            message.text, message.sender, channel, message.number, message.relay_id, message.link
        )
    return InboundMessage(message, _incident_of_text(message.text), "radio")


def _as_radio(incident: Incident, channel: str) -> RadioMessage:
    return RadioMessage(incident_to_text(incident), incident.agency, channel)


def _fingerprint(*pieces: str | bytes) -> str:
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece.encode("utf-8") if isinstance(piece, str) else piece)
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def message_key(
    inbound: InboundMessage, *, source: str, received_at: datetime, raw: bytes
) -> AlertKey:
    """The identity the ledger deduplicates on (see the module docstring)."""
    incident = inbound.incident
    message = inbound.message
    if incident is not None:
        return AlertKey(
            f"incident:{incident.agency or source}",
            incident.incident_id,
            format_cap_datetime(incident.updated),
        )
    sender = f"radio:{source}:{message.sender or '-'}"
    if message.number is not None:
        return AlertKey(
            sender,
            f"{message.number}-{_fingerprint(message.text)}",
            received_at.date().isoformat(),
        )
    stamp = format_cap_datetime(received_at)
    return AlertKey(sender, _fingerprint(raw, received_at.isoformat()), stamp)


def message_record(inbound: InboundMessage, key: AlertKey, raw: bytes) -> MessageRecord:
    incident = inbound.incident
    message = inbound.message
    return MessageRecord(
        key=key,
        raw=raw,
        msg_type=inbound.kind,
        headline=message.text if incident is None else incident.text or incident.incident_id,
        sender_name=message.sender,
        event="" if incident is None else incident.incident_type,
        channel=message.channel,
    )


# -- renderings --------------------------------------------------------------------------------

MessageRenderer = Callable[[InboundMessage, Mapping[str, Any]], Rendered]


def _need_incident(inbound: InboundMessage, name: str) -> Incident:
    if inbound.incident is None:
        msg = f"translation {name!r} needs an incident report; this is a plain text message"
        raise FrameError(msg)
    return inbound.incident


def render_message(inbound: InboundMessage, _options: Mapping[str, Any]) -> Rendered:
    """The message as JSON: text, sender, channel, number, and the incident when it is one."""
    message = inbound.message
    body: dict[str, Any] = json.loads(message.to_json())
    body["kind"] = inbound.kind
    if inbound.incident is not None:
        body["incident"] = json.loads(incident_to_json(inbound.incident))
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Rendered((data,), "application/json")


def render_text(inbound: InboundMessage, options: Mapping[str, Any]) -> Rendered:
    """Text for a radio or pager: ``SENDER: text`` (``sender_prefix = false`` drops it)."""
    message = inbound.message
    text = message.text
    if message.sender and options.get("sender_prefix", True):
        text = f"{message.sender}: {text}"
    return Rendered((text.encode("utf-8"),), "text/plain; charset=utf-8")


def render_incident(inbound: InboundMessage, _options: Mapping[str, Any]) -> Rendered:
    """The incident JSON (EIDO subset)."""
    return Rendered((incident_to_json(_need_incident(inbound, "incident")),), MIME)


def render_incident_text(inbound: InboundMessage, _options: Mapping[str, Any]) -> Rendered:
    """The incident as one ``INC1`` radio line."""
    line = incident_to_text(_need_incident(inbound, "incident-text"))
    return Rendered((line.encode("utf-8"),), "text/plain; charset=utf-8")


def render_edxl(inbound: InboundMessage, options: Mapping[str, Any]) -> Rendered:
    """The incident in an EDXL-DE 2.0 envelope (``sender_id`` option, default the agency)."""
    incident = _need_incident(inbound, "edxl")
    sender_id = str(options.get("sender_id") or incident.agency or "borderlink")
    data = incident_to_edxl(incident, sender_id=sender_id)
    return Rendered((data,), "application/xml")


MESSAGE_RENDERERS: dict[str, MessageRenderer] = {
    "message": render_message,
    "text": render_text,
    "incident": render_incident,
    "incident-text": render_incident_text,
    "edxl": render_edxl,
}


def check_message_translation(name: str) -> None:
    if name not in MESSAGE_RENDERERS:
        allowed = ", ".join(sorted(MESSAGE_RENDERERS))
        msg = f"unknown translation {name!r} for incident input; allowed: {allowed}"
        raise ConfigError(msg)
