"""Partners' receipts: who acknowledged what we issued, and who is late.

A ``[[partner]]`` with ``ack_sender`` (the CAP sender of its gateway's Acks, see
:mod:`gateway.receipts`) is expected to acknowledge every alert issued in this gateway's
console (source ``console``) while it is in force. With ``ack_within`` it is *late* for an
alert when no Ack of its sender referencing the alert came within that time of the alert's
admission here.

What is late shows on the alert's page, in the console's attention banner and health strip,
and in ``/metrics``: ``borderlink_partner_receipts_late`` (how many alerts each partner is
late for, set by :func:`watch` every round) and ``borderlink_partner_receipts_late_total``
(each alert a partner became late for, counted once). A receipt that arrives clears the
warning at the next look.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from cap_schemas.model import AlertKey
from gateway.adapter import Clock
from gateway.approvals import CONSOLE_SOURCE
from gateway.config import PartnerConfig
from gateway.ledger import Ledger, StoredAlert
from gateway.metrics import REGISTRY

log = structlog.get_logger(__name__)

__all__ = ["LATE", "LATE_TOTAL", "Receipt", "expected", "late", "watch"]

LATE = REGISTRY.gauge(
    "borderlink_partner_receipts_late",
    "Alerts issued here that a partner has not acknowledged in its ack_within, by partner",
    ("partner",),
)
LATE_TOTAL = REGISTRY.counter(
    "borderlink_partner_receipts_late_total",
    "Alerts a partner became late to acknowledge (each counted once), by partner",
    ("partner",),
)
RECEIPT_MSG_TYPES = ("Ack", "Error")


@dataclass(frozen=True, slots=True)
class Receipt:
    """One partner's receipt of one alert: acknowledged, awaited, or late."""

    partner: str
    key: AlertKey
    headline: str
    due: datetime | None  # None: the partner has no ack_within
    acknowledged_at: datetime | None
    late_by: float  # seconds past due; 0 unless late

    @property
    def state(self) -> str:
        if self.acknowledged_at is not None:
            return "acknowledged"
        return "late" if self.late_by > 0 else "waiting"


def _watched(partners: Sequence[PartnerConfig]) -> list[PartnerConfig]:
    return [p for p in partners if p.ack_sender]


def _issued_here(stored: StoredAlert) -> bool:
    return stored.source == CONSOLE_SOURCE and stored.msg_type not in RECEIPT_MSG_TYPES


def expected(
    ledger: Ledger, partners: Sequence[PartnerConfig], stored: StoredAlert, now: datetime
) -> list[Receipt]:
    """Each watched partner's receipt of ``stored`` (none when it was not issued here)."""
    watched = _watched(partners)
    if not watched or not _issued_here(stored):
        return []
    acks: dict[str, datetime] = {}
    for receipt in ledger.receipts(stored.key):
        acks.setdefault(receipt.key.sender, receipt.received_at)
    out = []
    for partner in watched:
        due = (
            None
            if partner.ack_within is None
            else stored.received_at + timedelta(seconds=partner.ack_within)
        )
        acknowledged_at = acks.get(partner.ack_sender)
        late_by = 0.0
        if acknowledged_at is None and due is not None and now > due:
            late_by = (now - due).total_seconds()
        out.append(
            Receipt(partner.name, stored.key, stored.headline, due, acknowledged_at, late_by)
        )
    return out


def late(ledger: Ledger, partners: Sequence[PartnerConfig], now: datetime) -> list[Receipt]:
    """The receipts partners are late with, for the alerts issued here and in force."""
    if not any(p.ack_within is not None for p in _watched(partners)):
        return []
    out: list[Receipt] = []
    for stored in ledger.active(now):
        if _issued_here(stored):
            out.extend(r for r in expected(ledger, partners, stored, now) if r.state == "late")
    return out


async def watch(
    ledger: Ledger,
    partners: Sequence[PartnerConfig],
    *,
    clock: Clock,
    interval: float,
    stopping: asyncio.Event,
) -> None:
    """Set the late gauges every ``interval`` seconds until ``stopping``; count and log each
    alert a partner becomes late for, and each late receipt that arrives."""
    names = [p.name for p in partners if p.ack_within is not None and p.ack_sender]
    was_late: set[tuple[str, AlertKey]] = set()
    while not stopping.is_set():
        found = await asyncio.to_thread(late, ledger, partners, clock.now())
        now_late = {(r.partner, r.key) for r in found}
        for receipt in found:
            if (receipt.partner, receipt.key) not in was_late:
                LATE_TOTAL.inc(partner=receipt.partner)
                log.warning(
                    "partner_receipt_late",
                    partner=receipt.partner,
                    alert=str(receipt.key),
                    late_by=round(receipt.late_by, 1),
                )
        for partner, key in was_late - now_late:
            log.info("partner_receipt_settled", partner=partner, alert=str(key))
        was_late = now_late
        for name in names:
            LATE.set(sum(1 for p, _k in now_late if p == name), partner=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
