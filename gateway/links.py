"""Talkgroup links: relay text traffic between radio talkgroups, TNC groups and MQTT topics.

(Placeholder header; the link manager follows below.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.errors import FrameError


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
