"""Receipts: a CAP ``Ack`` answering an alert admitted from a partner.

A source with ``acknowledge = true`` gets, for each alert the ledger admits from it (new,
update, cancel or held), a CAP 1.2 message of ``msgType`` Ack that references it, written by
this gateway (``[gateway] sender``). The Ack goes into the ledger like any input, from the
built-in source ``receipts``; routes deliver it only where they ask for Ack by ``msg_type``
(an MQTT sink on the partner's broker, a file the partner reads...). On the other side the
ledger admits it as a ``receipt`` and the console shows which partner acknowledged the alert
and when.

The Ack is the same bytes whenever it is made for the same alert (its identifier from the
alert's key, its ``sent`` the alert's receipt time), so making it twice -- after a restart --
is admitted once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from cap_schemas.model import Alert, MsgType, Scope
from cap_schemas.serialize import to_xml

__all__ = ["ack_for", "default_sender"]


def default_sender(gateway_name: str) -> str:
    return f"{gateway_name}@borderlink.invalid"


def ack_for(alert: Alert, *, sender: str, received_at: datetime) -> bytes:
    """The CAP Ack of ``alert`` (see the module docstring)."""
    digest = hashlib.sha256(f"{sender}\n{alert.key}".encode()).hexdigest()[:32]
    ack = Alert(
        identifier=f"borderlink-ack-{digest}",
        sender=sender,
        sent=received_at.replace(microsecond=0),
        status=alert.status,
        msg_type=MsgType.ACK,
        scope=alert.scope if alert.scope is not Scope.PRIVATE else Scope.PRIVATE,
        addresses=alert.addresses if alert.scope is Scope.PRIVATE else None,
        note=f"Received and admitted by {sender}.",
        references=(alert.key,),
    )
    return to_xml(ack)
