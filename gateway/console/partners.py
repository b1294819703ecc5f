"""What the console shows of partners' receipts: a health line per partner that has an
``ack_within``, and the banner of alerts a partner is late to acknowledge
(:mod:`gateway.partner_receipts` decides who is late)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.config import PartnerConfig
from gateway.console.views import HealthLine, alert_href
from gateway.ledger import Ledger
from gateway.partner_receipts import Receipt, late

__all__ = ["LateRow", "late_rows", "partner_health"]


@dataclass(frozen=True, slots=True)
class LateRow:
    receipt: Receipt
    href: str


def late_rows(ledger: Ledger, partners: Sequence[PartnerConfig], now: datetime) -> list[LateRow]:
    """The attention banner's lines: each alert a partner is late to acknowledge."""
    return [LateRow(r, alert_href(r.key)) for r in late(ledger, partners, now)]


def partner_health(
    ledger: Ledger, partners: Sequence[PartnerConfig], now: datetime
) -> list[HealthLine]:
    """One line per partner with an ``ack_within``: ``late`` while it owes a receipt."""
    watched = [p for p in partners if p.ack_sender and p.ack_within is not None]
    if not watched:
        return []
    owed = Counter(r.partner for r in late(ledger, partners, now))
    return [
        HealthLine(
            "partner",
            p.name,
            "late" if owed[p.name] else "ok",
            False,
            None,
            f"{owed[p.name]} alert(s) not acknowledged in time" if owed[p.name] else "",
        )
        for p in watched
    ]
