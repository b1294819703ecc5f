"""The ledger: what is decided about every alert and delivery, and the contract of its storage.

This module is the ledger's vocabulary and its pure decisions; the storage backends (SQLite
embedded, in :mod:`gateway.storage`) implement the :class:`Ledger` contract.

Admission (:meth:`LedgerBase.admit`) is one pass of four steps, the slow ones outside any
write transaction::

    facts = store.facts(key, references)            # read: the same key, later updates and
                                                    #   cancels naming it, what it references
    verdict = decide(alert, facts, received_at=...)  # pure: new, duplicate, update, cancel,
                                                    #   expired, stale; what it withdraws
    planned = plan(verdict.admission)               # the router renders (no lock held)
    admission = store.record(alert, verdict, planned, facts=facts, ...)
                                                    # one durable transaction: re-reads the
                                                    #   facts, stores, withdraws, enqueues

``record`` refuses with :class:`FactsChangedError` when the facts changed in between (another
admission or a delivery claim came first): ``admit`` then decides again on fresh facts, so the
outcome is the one a single serial pass would give. The transaction is committed
(``synchronous=FULL`` in SQLite: on disk) before ``admit`` returns, so a source is
acknowledged only for what survives a crash.

The outbox holds one entry per (alert, sink). Sink workers take entries with ``claim`` in
priority order (:func:`priority_of`: Broadcast-Immediately first), then report
``mark_delivered`` or ``mark_failed``; the allowed changes are the pure functions of the outbox
state machine below (:func:`delivered`, :func:`failed`, :func:`approved`, :func:`rejected`).
Every entry ends in one terminal state: ``delivered``, ``superseded`` (an update or cancel came
first), ``expired`` (its alert's ``expires`` passed), or ``failed`` with a reason. Every
admission and every state change is appended to the journal, the audit trail of what was
received and transmitted.

How the daemon uses it (each call through ``asyncio.to_thread``)::

    admission = ledger.admit(alert, source=item.source, received_at=item.received_at,
                             plan=router.planner(ctx))   # durable when it returns
    if item.ack is not None:
        await item.ack()                                 # only now acknowledge the source

    for entry in ledger.claim(sink.name, clock.now()):   # per-sink worker
        try:
            await sink.send(entry.to_outbound())
        except DeliveryError as exc:
            retry = clock.now() + backoff(entry.attempts) if exc.retryable else None
            ledger.mark_failed(entry.id, str(exc), retry_at=retry)
        else:
            ledger.mark_delivered(entry.id, clock.now())

Errors (all derive from :class:`gateway.errors.GatewayError`)::

    LedgerError                       storage failed; nothing was changed (fail closed)
    ├── LedgerSchemaError             the database was written by a newer borderlink
    ├── FactsChangedError             a decision's facts changed before it was recorded
    ├── PlanError (ValueError)        a plan the outbox refuses (the same sink twice)
    ├── EntryNotFoundError (KeyError) no outbox entry with that id
    └── EntryStateError (ValueError)  the entry is not in a state that allows the change
        ├── LateResultError             an outcome reported after its claim was settled
        └── ApprovalRefusedError        the two-person rule: the author approving their own
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

import structlog

from cap_schemas.model import (
    SEVERITY_RANK,
    URGENCY_RANK,
    Alert,
    AlertKey,
    MsgType,
    Severity,
    Urgency,
)
from cap_schemas.rules import broadcast_immediately
from gateway.adapter import Outbound
from gateway.approvals import refusal
from gateway.errors import GatewayError
from gateway.identity import SUPPRESSING, WINDOW, Probe, Rule, rule_of, sent_of
from gateway.identity import probe as identity_probe
from gateway.metrics import REGISTRY
from gateway.model import ANONYMOUS, AUTHENTICATED, TRUST_LEVELS, VERIFIED, trust_rank

__all__ = [
    "ADMISSIONS",
    "ADMIT_SECONDS",
    "ANONYMOUS",
    "AUTHENTICATED",
    "IDENTITY_MATCHES",
    "IN_DOUBT",
    "IN_DOUBT_POLICIES",
    "LATE_OUTCOMES",
    "OPEN_STATES",
    "OUTBOX_ENTRIES",
    "OUTBOX_TRANSITIONS",
    "TERMINAL_STATES",
    "TRUST_LEVELS",
    "VERIFIED",
    "Admission",
    "AlertStatus",
    "ApprovalRefusedError",
    "Change",
    "Decision",
    "EntryNotFoundError",
    "EntryState",
    "EntryStateError",
    "EventLink",
    "Facts",
    "FactsChangedError",
    "InvalidRecord",
    "JournalEntry",
    "Known",
    "LateResultError",
    "Ledger",
    "LedgerBase",
    "LedgerError",
    "LedgerSchemaError",
    "MessageRecord",
    "OutboxEntry",
    "PlanError",
    "PlannedDelivery",
    "Provenance",
    "StoredAlert",
    "Verdict",
    "approved",
    "check_plan",
    "decide",
    "decide_message",
    "delivered",
    "failed",
    "invalid_key",
    "may_change",
    "message_priority",
    "on_ledger",
    "priority_of",
    "read_references",
    "rejected",
    "settle",
    "trust_rank",
]

log = structlog.get_logger(__name__)

ADMISSIONS = REGISTRY.counter(
    "borderlink_ledger_admissions_total",
    "Admission decisions taken by the ledger, by decision",
    ("decision",),
)
ADMISSION_RETRIES = REGISTRY.counter(
    "borderlink_ledger_admission_retries_total",
    "Admissions decided again because their facts changed before they were recorded",
)
OUTBOX_TRANSITIONS = REGISTRY.counter(
    "borderlink_outbox_transitions_total",
    "Outbox entries entering a state, by sink and state",
    ("sink", "state"),
)
OUTBOX_ENTRIES = REGISTRY.gauge(
    "borderlink_outbox_entries",
    "Outbox entries per sink and state, as of the last outbox_counts() call",
    ("sink", "state"),
)
IN_DOUBT = REGISTRY.counter(
    "borderlink_outbox_in_doubt_total",
    "Attempts settled in doubt (under way at a start, lease run out, instance gone silent:"
    " they may have reached their sink), by sink and resolution (resend, hold, skip)",
    ("sink", "resolution"),
)
LATE_OUTCOMES = REGISTRY.counter(
    "borderlink_outbox_late_outcomes_total",
    "Outcomes of attempts reported after their claim was settled in doubt (journalled as"
    " late_outcome; a late delivery of an entry nobody else holds is recorded)",
)
IN_DOUBT_POLICIES = ("resend", "hold", "skip")
IDENTITY_MATCHES = REGISTRY.counter(
    "borderlink_identity_matches_total",
    "Alerts recognised as another copy of a stored event (gateway.identity), by the rule"
    " that matched and the decision taken (copy, update, ...; window is logged only)",
    ("rule", "decision"),
)
ADMIT_SECONDS = REGISTRY.histogram(
    "borderlink_ledger_admit_seconds",
    "Time to admit one alert (planning and the durable commit included)",
)


# --------------------------------------------------------------------------------- errors


class LedgerError(GatewayError):
    """The ledger's storage failed; the operation was rolled back (nothing half-done)."""


class LedgerSchemaError(LedgerError):
    """The ledger database was written by a newer schema than this software knows."""


class PlanError(LedgerError, ValueError):
    """A delivery plan the outbox cannot take (the same sink twice for one alert)."""


class EntryNotFoundError(LedgerError, KeyError):
    """No outbox entry has this id (it never existed or was pruned)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EntryStateError(LedgerError, ValueError):
    """The outbox entry's state does not allow the requested change."""


class LateResultError(EntryStateError):
    """The outcome of an attempt whose claim was already settled (in doubt) or taken over:
    journalled, and the entry left as its new holder or policy has it -- unless the late
    outcome is a delivery nobody else is making, which is recorded (it settles the doubt)."""


class ApprovalRefusedError(EntryStateError):
    """This operator may not approve this held entry (:mod:`gateway.approvals`)."""


class FactsChangedError(LedgerError):
    """What an admission was decided on changed before it could be recorded (another
    admission or a delivery claim came first); :meth:`LedgerBase.admit` decides again."""


# ----------------------------------------------------------------------------- provenance


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an alert came from and why it is believed.

    ``door`` is the trust of the way in: ``verified`` for a source that admits only validly
    signed alerts, ``authenticated`` for one whose peer proved who it is (a bearer token,
    MQTT credentials, a TLS feed), ``anonymous`` otherwise. ``signature`` is ``valid`` when
    the alert's XML signature verified against ``signer`` (a pinned trust anchor).
    ``approved_by`` names the operator who let it through.
    """

    source: str
    door: str = ANONYMOUS
    signature: str = "unsigned"
    signer: str = ""
    approved_by: str = ""

    @property
    def level(self) -> str:
        """The alert's own trust: ``verified`` when its signature is valid, else its door's
        (an unsigned alert is never more than ``authenticated``)."""
        if self.signature == "valid":
            return VERIFIED
        return self.door if self.door != VERIFIED else AUTHENTICATED

    def summary(self) -> dict[str, str]:
        return {
            "level": self.level,
            "source": self.source,
            "door": self.door,
            "signature": self.signature,
            "signer": self.signer,
            "approved_by": self.approved_by,
        }


def may_change(new: Provenance | None, old: Known) -> str:
    """Why an update or cancel with provenance ``new`` may not change the stored ``old``
    (empty when it may): it must be at least as trusted, or approved by an operator."""
    if new is None or new.approved_by or trust_rank(new.level) >= trust_rank(old.trust):
        return ""
    return f"{old.key} is {old.trust}, this {new.source} message is {new.level}"


# ---------------------------------------------------------------------------------- model


class Decision(enum.StrEnum):
    """What the ledger made of one received alert."""

    NEW = "new"  # first time this key is seen: routed
    DUPLICATE = "duplicate"  # key already admitted (second stream, feed, archive): not routed
    UPDATE = "update"  # msgType Update: supersedes its references, routed
    CANCEL = "cancel"  # msgType Cancel: withdraws its references, routed itself
    EXPIRED = "expired"  # expires already past when received: stored, never routed
    INVALID = "invalid"  # could not be parsed or validated: kept in the journal only
    HELD = "held"  # routed, but every planned delivery waits for an operator
    STALE = "stale"  # an update/cancel naming this alert was admitted first: stored, not routed
    # msgType Ack or Error: a partner's receipt for what it references; never in force,
    # routed only by routes that ask for Ack/Error by msg_type.
    RECEIPT = "receipt"
    # The same message arriving by another path (another feed's identifier, a relay, an
    # off-air SAME header): linked to its event, stored, not routed again.
    COPY = "copy"


class EntryState(enum.StrEnum):
    """Where one outbox entry is in its life."""

    PENDING = "pending"
    HELD = "held"
    DELIVERED = "delivered"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    FAILED = "failed"


TERMINAL_STATES = frozenset(
    {EntryState.DELIVERED, EntryState.SUPERSEDED, EntryState.EXPIRED, EntryState.FAILED}
)
OPEN_STATES = (EntryState.PENDING, EntryState.HELD)


class AlertStatus(enum.StrEnum):
    """Whether a stored alert is still in force."""

    ACTIVE = "active"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Admission:
    """The ledger's decision about one alert, as committed."""

    key: AlertKey
    decision: Decision
    superseded: tuple[AlertKey, ...] = ()
    reason: str = ""
    # (sink, route) of every delivery of a referenced alert that may have reached its sink
    # (delivered, tried, or under way): an update or cancel must reach those sinks too.
    reached: tuple[tuple[str, str], ...] = ()
    # Why the whole alert waits for an operator ("provenance: ...", a validation hold); an
    # update or cancel that waits withdraws nothing until it is approved.
    hold: str = ""
    # The event it is a copy of (the key of the event's first copy; "" when it is the first)
    # and the identity rule that said so ("window": a possible copy, logged, not linked).
    event: str = ""
    rule: str = ""

    @property
    def routed(self) -> bool:
        """Whether this admission put (or would put) deliveries in the outbox."""
        return self.decision in _ROUTED


_ROUTED = frozenset(
    {Decision.NEW, Decision.UPDATE, Decision.CANCEL, Decision.HELD, Decision.RECEIPT}
)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One delivery the router wants for an alert being admitted."""

    sink: str
    route: str
    parts: tuple[bytes, ...]
    content_type: str
    attributes: Mapping[str, str]
    priority: int
    expires: datetime | None
    held: bool = False

    hold_reason: str = ""  # why it is held, when not simply "held for an operator"

@dataclass(frozen=True, slots=True)
class MessageRecord:
    """An inbound incident or radio message as the ledger keeps it (``kind = 'incident'``).

    It is admitted, deduplicated by ``key`` and routed through the same outbox as an alert,
    but it is never an alert: it is not listed by :meth:`Ledger.active` or
    :meth:`Ledger.alerts`, and it is forgotten ``dedup_floor`` after receipt.
    """

    key: AlertKey
    raw: bytes
    msg_type: str  # "Incident" or "RadioMessage" (the stored row's msg_type)
    headline: str = ""
    sender_name: str = ""
    event: str = ""
    channel: str = ""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One (alert, sink) delivery in the outbox."""

    id: int
    key: AlertKey
    sink: str
    route: str
    parts: tuple[bytes, ...]
    content_type: str
    attributes: Mapping[str, str]
    priority: int
    enqueued_at: datetime
    expires: datetime | None
    attempts: int
    next_attempt_at: datetime
    state: EntryState
    reason: str
    updated_at: datetime | None = None
    started_at: datetime | None = None  # set while an attempt taken by claim() is under way
    claimed_by: str = ""  # the instance whose attempt it is (while ``started_at`` is set)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def attempted(self) -> bool:
        """Whether the sink may have received this delivery (delivered, tried, or under way).

        A router sends an update or cancel to every sink whose entry for the replaced alert
        was attempted: a transmission under way when the cancel arrived still goes out.
        """
        return (
            self.state is EntryState.DELIVERED or self.attempts > 0 or self.started_at is not None
        )

    def to_outbound(self) -> Outbound:
        """The item a sink adapter's ``send`` takes."""
        return Outbound(
            key=self.key,
            sink=self.sink,
            parts=self.parts,
            content_type=self.content_type,
            attributes=self.attributes,
            expires=self.expires,
        )


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One line of the audit trail."""

    id: int
    at: datetime
    key: AlertKey
    event: str
    detail: str
    entry_id: int | None = None
    sink: str | None = None


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A document that could not be admitted, kept with its bytes for inspection."""

    key: AlertKey
    digest: str
    source: str
    first_received_at: datetime
    last_received_at: datetime
    count: int
    reason: str
    raw: bytes


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An admitted alert with the summary fields the API and the MQTT summaries show.

    Lists (:meth:`Ledger.active`, :meth:`Ledger.alerts`, ...) leave ``raw`` empty unless
    asked ``with_raw=True`` (NAAD alerts with embedded audio reach megabytes);
    :meth:`Ledger.get` always fills it. ``raw_size`` and ``raw_sha256`` are always set.
    """

    key: AlertKey
    raw: bytes
    decision: Decision
    source: str
    received_at: datetime
    expires: datetime | None
    status: AlertStatus
    msg_type: str
    cap_status: str
    event: str
    severity: str
    urgency: str
    headline: str
    sender_name: str
    areas: tuple[str, ...]
    references: tuple[AlertKey, ...]
    reason: str = ""
    priority: int = 0
    superseded_by: AlertKey | None = None
    status_changed_at: datetime | None = None
    raw_size: int = 0
    raw_sha256: str = ""
    provenance: Provenance | None = None
    pending_refs: bool = False  # an update or cancel whose withdrawals wait for approval
    # One identity across feeds: the event (its first copy's key), the rule that linked this
    # alert to it, and the stored copy that rule matched (see :class:`EventLink`).
    event_key: str = ""
    event_rule: str = ""
    event_match: str = ""

    @property
    def active(self) -> bool:
        return self.status is AlertStatus.ACTIVE

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (times in ISO 8601), without the raw document."""
        return {
            "key": str(self.key),
            "sender": self.key.sender,
            "identifier": self.key.identifier,
            "sent": self.key.sent,
            "status": self.status.value,
            "decision": self.decision.value,
            "msg_type": self.msg_type,
            "cap_status": self.cap_status,
            "event": self.event,
            "severity": self.severity,
            "urgency": self.urgency,
            "headline": self.headline,
            "sender_name": self.sender_name,
            "areas": list(self.areas),
            "expires": _iso(self.expires),
            "received_at": _iso(self.received_at),
            "source": self.source,
            "references": [str(k) for k in self.references],
            "superseded_by": None if self.superseded_by is None else str(self.superseded_by),
            "priority": self.priority,
            "reason": self.reason,
            "trust": None if self.provenance is None else self.provenance.summary(),
            "withdrawals_wait_for_approval": self.pending_refs,
            "identity": self.identity(),
        }

    def identity(self) -> dict[str, Any]:
        """Which event this alert is a copy of, and why: ``event`` (the key of its first
        copy), ``rule`` (empty for a first copy), ``matched`` (the copy the rule matched),
        ``linked`` (false for a first copy and for a possible copy by ``window``)."""
        event = self.event_key or str(self.key)
        return {
            "event": event,
            "rule": self.event_rule,
            "matched": self.event_match or None,
            "linked": event != str(self.key),
        }


# ------------------------------------------------------------------------------- priority

_RANK_WIDTH = len(URGENCY_RANK)
_LOWEST_PRIORITY = 1 + len(SEVERITY_RANK) * _RANK_WIDTH
# Inbound incident and radio messages queue behind every alert, unless an incident says
# it is more urgent (:func:`message_priority`).
MESSAGE_PRIORITY = _LOWEST_PRIORITY + 1
_INCIDENT_PRIORITY = {
    # An urgent incident goes with Severe and Immediate alerts, a high one with Moderate and
    # Immediate ones (enqueue time breaks ties); only Broadcast-Immediately and Extreme and
    # Immediate alerts always go first.
    "urgent": 1 + SEVERITY_RANK[Severity.SEVERE] * _RANK_WIDTH + URGENCY_RANK[Urgency.IMMEDIATE],
    "high": 1 + SEVERITY_RANK[Severity.MODERATE] * _RANK_WIDTH + URGENCY_RANK[Urgency.IMMEDIATE],
    "normal": MESSAGE_PRIORITY,
    "low": MESSAGE_PRIORITY + 1,
}


def message_priority(incident_priority: str) -> int:
    """Delivery priority of an incident or radio message; lower goes first. An incident's
    ``priority`` (``urgent``, ``high``, ``normal``, ``low``) places it among the alerts;
    radio traffic and incidents without one queue behind every alert."""
    return _INCIDENT_PRIORITY.get(incident_priority, MESSAGE_PRIORITY)


def priority_of(alert: Alert) -> int:
    """Delivery priority of an alert; lower goes first.

    0 for Broadcast-Immediately (:func:`cap_schemas.rules.broadcast_immediately`: CAP-CP
    ``layer:SOREM:1.0:Broadcast_Immediately`` = ``Yes`` or IPAWS ``EAS-Must-Carry`` =
    ``True``) and for any info block that is Extreme and Immediate. Otherwise
    ``1 + severity_rank * 5 + urgency_rank`` of the most urgent info block (ranks from
    :data:`cap_schemas.model.SEVERITY_RANK` / ``URGENCY_RANK``), so severity dominates and
    urgency breaks ties; an alert without info blocks ranks last.
    """
    if broadcast_immediately(alert):
        return 0
    best = _LOWEST_PRIORITY
    for info in alert.infos:
        if info.severity is Severity.EXTREME and info.urgency is Urgency.IMMEDIATE:
            return 0
        rank = 1 + SEVERITY_RANK[info.severity] * _RANK_WIDTH + URGENCY_RANK[info.urgency]
        best = min(best, rank)
    return best


def invalid_key(raw: bytes) -> AlertKey:
    """The journal key of an invalid document: its SHA-256, since it has no CAP identity."""
    return AlertKey("", "sha256:" + hashlib.sha256(raw).hexdigest(), "")


# ---------------------------------------------------------------------- admission decision

_SUPERSEDING = (MsgType.UPDATE, MsgType.CANCEL)


def read_references(alert: Alert) -> tuple[AlertKey, ...]:
    """The references an admission reads from the store: what an update or cancel withdraws,
    what a relay relays (:mod:`gateway.identity`); none for a receipt."""
    return () if alert.msg_type in (MsgType.ACK, MsgType.ERROR) else alert.references


@dataclass(frozen=True, slots=True)
class Known:
    """A stored alert as an admission decision sees it."""

    key: AlertKey
    msg_type: str
    status: AlertStatus
    priority: int
    source: str
    received_at: datetime
    raw_sha256: str
    # (sink, route) of its deliveries that may have reached their sink
    reached: tuple[tuple[str, str], ...] = ()
    trust: str = ANONYMOUS  # Provenance.level of the stored alert
    event: str = ""  # the CAP event name of its first info block
    event_key: str = ""  # the event it belongs to ("" for rows from before identities)

    @property
    def event_id(self) -> str:
        """The event it belongs to: its own key when it is the first copy."""
        return self.event_key or str(self.key)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the store knows that an admission depends on, read before it is decided.

    ``record`` re-reads them inside its transaction and refuses when they differ -- unless
    the store can tell that nothing was committed since they were read (``version``, the
    store's change counter taken before the read; None where it keeps none).
    """

    existing: Known | None = None  # the same key, admitted before
    later: tuple[Known, ...] = ()  # updates and cancels admitted before that name this key
    referenced: tuple[Known, ...] = ()  # what this alert references, as stored
    # (identity key, stored alert) for every stored alert sharing a linking identity key
    matches: tuple[tuple[str, Known], ...] = ()
    # the newest stored alerts sharing a window key with it (a possible copy, only noted),
    # each as (sender, identifier, sent, event_key): all a note of it needs
    window: tuple[tuple[str, str, str, str], ...] = ()
    # every stored copy of the events of ``matches`` and of ``referenced``, with its reach
    copies: tuple[Known, ...] = ()
    version: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class EventLink:
    """Which event an alert belongs to (:mod:`gateway.identity`), as decided on admission."""

    event: str  # the key of the event's first copy ("sender,identifier,sent")
    rule: str = ""  # "" for a first copy; references, vtec, same; window: possible, not linked
    matched: AlertKey | None = None  # the stored copy the rule matched
    keys: tuple[str, ...] = ()  # the identity keys stored with the alert

    @property
    def linked(self) -> bool:
        """Whether the alert is a copy of a stored event (a suppressing rule matched)."""
        return self.rule in SUPPRESSING


@dataclass(frozen=True, slots=True)
class Verdict:
    """An admission decided, not yet recorded: the decision and what it changes."""

    admission: Admission
    status: AlertStatus  # the status the alert is stored with
    superseded_by: AlertKey | None = None  # set for a stale alert
    withdraw: tuple[Known, ...] = ()  # referenced alerts this update or cancel withdraws
    deferred: tuple[Known, ...] = ()  # what it would withdraw once an operator approves it
    withdrawn_as: AlertStatus = AlertStatus.SUPERSEDED  # or CANCELLED, for a cancel
    ref_priority: int | None = None  # the most urgent priority among those withdrawn
    link: EventLink = EventLink("")  # the event it belongs to and the rule that said so


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _duplicate(alert: Alert, existing: Known) -> Verdict:
    reason = f"first received from {existing.source} at {existing.received_at.isoformat()}"
    if alert.raw and _sha256(alert.raw) != existing.raw_sha256:
        reason += "; this copy's bytes differ"
    return Verdict(Admission(alert.key, Decision.DUPLICATE, (), reason), existing.status)


def _identify(
    alert: Alert, facts: Facts, ident: Probe | None
) -> tuple[EventLink, tuple[Known, ...]]:
    """The event ``alert`` belongs to and that event's stored copies (pure; the rules of
    :mod:`gateway.identity`, strongest first)."""
    key = alert.key
    own = str(key)
    if ident is None:
        return EventLink(own), ()
    chain = ident.chain(k.event_id for k in facts.referenced)
    keys = ident.keys + ((chain,) if chain else ())
    first = alert.infos[0].event.strip().lower() if alert.infos else ""
    found: list[tuple[Rule, Known]] = [
        (Rule.REFERENCES, k)  # a relay names what it relays
        for k in facts.referenced
        if k.key.sender != alert.sender
        and k.msg_type == alert.msg_type.value
        and k.event.strip().lower() == first
    ]
    for ikey, k in facts.matches:
        rule = rule_of(ikey)
        if k.key == key or (rule is Rule.SAME and k.key.sender == alert.sender):
            continue  # one sender's two identifiers are two messages
        if ikey.startswith("relay:") and k.event.strip().lower() != first:
            continue  # another sender's message about it, not a relay of it
        found.append((rule, k))
    linked = [f for f in found if f[0] in SUPPRESSING]
    if linked:
        rule, match = min(linked, key=lambda f: SUPPRESSING.index(f[0]))
        event = match.event_id
        copies = tuple(c for c in facts.copies if c.event_id == event)
        return EventLink(event, rule.value, match.key, keys), copies or (match,)
    # what it references (and their events) is its own history, not a possible copy
    referenced = {(k.key.sender, k.key.identifier, k.key.sent) for k in facts.referenced}
    events = {k.event_id for k in facts.referenced}
    mine = (key.sender, key.identifier, key.sent)
    near: list[tuple[timedelta, int, tuple[str, str, str]]] = []
    for n, (sender, identifier, sent, event_key) in enumerate(facts.window):
        triple = (sender, identifier, sent)
        if triple == mine or triple in referenced:
            continue
        if (event_key or f"{sender},{identifier},{sent}") in events:
            continue
        when = sent_of(sent)
        if when is not None and abs(when - alert.sent) <= WINDOW:
            near.append((abs(when - alert.sent), -n, triple))
    if near:  # the closest in time (the latest of equals) is the one to look at
        closest = AlertKey(*min(near, key=lambda t: t[:2])[2])
        return EventLink(own, Rule.WINDOW.value, closest, keys), ()
    return EventLink(own, "", None, keys), ()


def _withdrawals(
    alert: Alert, facts: Facts, *, cross_sender_references: bool
) -> tuple[list[Known], list[str]]:
    """What an update or cancel withdraws -- each stored alert it references and the other
    copies of that alert's event -- and the notes on what it cannot."""
    key = alert.key
    withdraw: dict[AlertKey, Known] = {}
    notes: list[str] = []
    if alert.msg_type not in _SUPERSEDING:
        return [], notes
    stored = {k.key: k for k in facts.referenced}
    unknown: list[AlertKey] = []
    foreign: list[AlertKey] = []
    for ref in dict.fromkeys(alert.references):
        if ref == key:
            continue  # a message cannot withdraw itself
        if ref.sender != key.sender and not cross_sender_references:
            foreign.append(ref)
        elif ref in stored:
            found = stored[ref]
            withdraw.setdefault(ref, found)
            for copy in facts.copies:  # the same message as the other paths delivered it
                if copy.event_id == found.event_id and copy.key != key:
                    withdraw.setdefault(copy.key, copy)
        else:
            unknown.append(ref)
    if unknown:
        notes.append("unknown references: " + " ".join(str(k) for k in unknown))
    if foreign:
        notes.append("references to another sender ignored: " + " ".join(str(k) for k in foreign))
    if key in alert.references:
        notes.append("references itself (ignored)")
    return list(withdraw.values()), notes


def decide(
    alert: Alert,
    facts: Facts,
    *,
    received_at: datetime,
    provenance: Provenance | None = None,
    hold: str = "",
    cross_sender_references: bool = False,
) -> Verdict:
    """What ``alert`` is, given what the store held when it arrived (pure).

    * a key seen before is a **duplicate** (a second stream, feed or archive copy);
    * an alert whose ``expires`` is not after its receipt is **expired** (stored, never
      routed);
    * the same message by another path (:mod:`gateway.identity`: a relay's references, the
      NWS VTEC event, the SAME header) is a **copy** of its event: stored, linked, not routed
      -- unless it is more trusted than every copy of the event and the event is still in
      force: then it goes out as an **update** of the less trusted copies it supersedes;
    * one that an update or cancel admitted earlier names is **stale** (two feeds racing, an
      archive backfill): stored already out of force, not routed;
    * otherwise **new**, **update** or **cancel**; an update or cancel withdraws every alert
      it references that the store holds, with the other copies of its event -- of its own
      sender only, unless ``cross_sender_references`` (a message from one sender must not
      silence another's).

    Provenance: an update or cancel changes what it references only when it is at least as
    trusted as each of them (:func:`may_change`); otherwise the whole message waits for an
    operator (``hold = "provenance: ..."``). A message held for any reason (``hold``, e.g. a
    validation hold) withdraws nothing: the alerts it names and their deliveries stay as they
    are until an operator approves it (``Verdict.deferred``).
    """
    key = alert.key
    if facts.existing is not None:
        return _duplicate(alert, facts.existing)
    link, copies = _identify(alert, facts, identity_probe(alert))
    expires = alert.expires
    withdraw, notes = _withdrawals(alert, facts, cross_sender_references=cross_sender_references)
    later = [
        k for k in facts.later if cross_sender_references or k.key.sender == key.sender
    ]
    level = provenance.level if provenance is not None else ANONYMOUS
    in_force = [c for c in copies if c.status is AlertStatus.ACTIVE]
    best = max((trust_rank(c.trust) for c in copies), default=-1)
    better = link.linked and bool(in_force) and trust_rank(level) > best
    still = [k for k in withdraw if k.status is AlertStatus.ACTIVE]
    superseded_by: AlertKey | None = None
    if link.linked:
        notes.insert(0, f"a copy of {link.matched} (rule {link.rule}; event {link.event})")
    elif link.rule:
        notes.append(
            f"possibly the same event as {link.matched} (rule {link.rule}: the same event"
            " and place within the window); not linked"
        )
    if expires is not None and expires <= received_at:
        status, decision = AlertStatus.EXPIRED, Decision.EXPIRED
        notes.append(f"expired at {expires.isoformat()} before receipt")
    elif link.linked and not better and not still:
        status, decision = AlertStatus.SUPERSEDED, Decision.COPY
        superseded_by = link.matched
        notes.append("delivered once, as its first copy")
        return Verdict(
            Admission(key, decision, (), "; ".join(notes), event=link.event, rule=link.rule),
            status,
            superseded_by=superseded_by,
            link=link,
        )
    elif later:
        cancelled = any(k.msg_type == MsgType.CANCEL.value for k in later)
        status = AlertStatus.CANCELLED if cancelled else AlertStatus.SUPERSEDED
        decision = Decision.STALE
        superseded_by = later[-1].key
        notes.append(f"already {status.value} by {superseded_by}")
    elif alert.msg_type is MsgType.CANCEL:
        status, decision = AlertStatus.CANCELLED, Decision.CANCEL  # never itself in force
    elif alert.msg_type in (MsgType.ACK, MsgType.ERROR):
        status, decision = AlertStatus.EXPIRED, Decision.RECEIPT  # a receipt, never in force
        notes.append(f"a receipt ({alert.msg_type.value}) for {len(alert.references)} alert(s)")
    else:
        status = AlertStatus.ACTIVE
        decision = Decision.UPDATE if alert.msg_type is MsgType.UPDATE or better else Decision.NEW
    if better:
        withdraw += [c for c in in_force if c not in withdraw]
        notes.append(
            f"more trusted ({level}) than every copy before it: goes out as an update of"
            " " + " ".join(str(c.key) for c in in_force)
        )
    elif link.linked:
        notes.append("it withdraws what the first copy left in force: routed")
    distrusted = [why for why in (may_change(provenance, k) for k in withdraw) if why]
    if distrusted and not hold:
        hold = "provenance: " + "; ".join(distrusted)
    reached = tuple(dict.fromkeys(pair for k in withdraw for pair in k.reached))
    deferred: list[Known] = []
    if hold:
        withdraw, deferred = [], withdraw
    return Verdict(
        Admission(
            key,
            decision,
            tuple(k.key for k in withdraw),
            "; ".join(notes),
            reached,
            hold=hold,
            event=link.event if link.linked else "",
            rule=link.rule,
        ),
        status,
        superseded_by=superseded_by,
        withdraw=tuple(withdraw),
        deferred=tuple(deferred),
        withdrawn_as=(
            AlertStatus.CANCELLED if alert.msg_type is MsgType.CANCEL else AlertStatus.SUPERSEDED
        ),
        ref_priority=min((k.priority for k in withdraw + deferred), default=None),
        link=link,
    )


def decide_message(key: AlertKey, facts: Facts) -> Admission:
    """An inbound incident or radio message: new, or a duplicate of one stored (pure)."""
    if facts.existing is not None:
        first = facts.existing
        reason = f"first received from {first.source} at {first.received_at.isoformat()}"
        return Admission(key, Decision.DUPLICATE, (), reason)
    return Admission(key, Decision.NEW)


def check_plan(key: AlertKey, planned: Sequence[PlannedDelivery]) -> list[PlannedDelivery]:
    """The plan as the outbox takes it; :class:`PlanError` for one it refuses."""
    sinks: dict[str, str] = {}
    for item in planned:
        candidate: object = item
        if not isinstance(candidate, PlannedDelivery):
            msg = f"plan for {key} returned {type(item).__name__}, not PlannedDelivery"
            raise PlanError(msg)
        if item.sink in sinks:
            msg = (
                f"plan for {key} names sink {item.sink!r} twice (routes"
                f" {sinks[item.sink]!r} and {item.route!r}); one delivery per sink"
            )
            raise PlanError(msg)
        for part in item.parts:
            data: object = part
            if not isinstance(data, bytes | bytearray | memoryview):
                msg = f"delivery parts must be bytes, got {type(part).__name__}"
                raise PlanError(msg)
        sinks[item.sink] = item.route
    return list(planned)


def settle(admission: Admission, planned: Sequence[PlannedDelivery]) -> Admission:
    """The decision as recorded once its deliveries are known: **held** when every one waits
    for an operator; a routed decision with nothing planned says so."""
    if not admission.routed:
        return admission
    if admission.hold:
        notes = [admission.hold, admission.reason]
        if not planned:
            notes.append("no delivery planned")
        return replace(admission, decision=Decision.HELD, reason="; ".join(n for n in notes if n))
    held = sum(1 for p in planned if p.held)
    if planned and held == len(planned):
        return replace(
            admission,
            decision=Decision.HELD,
            reason=admission.reason or "every delivery waits for an operator",
        )
    if not planned:
        reason = "; ".join(r for r in (admission.reason, "no delivery planned") if r)
        return replace(admission, reason=reason)
    return admission


# ---------------------------------------------------------------------- outbox state machine


@dataclass(frozen=True, slots=True)
class Change:
    """One change of an outbox entry, as the state machine allows it."""

    state: EntryState
    reason: str
    event: str  # the journal's word for it
    attempt: bool = False  # counts as an attempt
    retry_at: datetime | None = None


def _require(
    entry: OutboxEntry, states: Sequence[EntryState], action: str, *, deny: bool = False
) -> None:
    """Raise EntryStateError unless the entry's state is in ``states`` (not in, with
    ``deny``)."""
    if (entry.state in states) != deny:
        return
    msg = (
        f"outbox entry {entry.id} ({entry.key} -> {entry.sink}) is {entry.state.value};"
        f" cannot {action}"
    )
    raise EntryStateError(msg)


def delivered(entry: OutboxEntry) -> Change:
    """A completed transmission: accepted from any state but ``held`` and ``delivered`` (a
    transmission that finished after its entry was superseded or expired did happen, and the
    audit trail says so; delivered twice would hide a double transmission)."""
    _require(entry, (EntryState.HELD, EntryState.DELIVERED), "deliver", deny=True)
    return Change(EntryState.DELIVERED, "", "delivered", attempt=True)


def failed(entry: OutboxEntry, reason: str, retry_at: datetime | None) -> Change:
    """A failed attempt: retry at ``retry_at``, or fail for good when None. An entry
    superseded or expired while its attempt was under way keeps that state; the attempt is
    still counted."""
    if entry.state in (EntryState.SUPERSEDED, EntryState.EXPIRED):
        note = f"{entry.reason}; last attempt failed: {reason}"
        return Change(entry.state, note, "attempt_failed", attempt=True)
    _require(entry, (EntryState.PENDING,), "record a failed attempt")
    if retry_at is not None:
        return Change(
            EntryState.PENDING, reason, "retry_scheduled", attempt=True, retry_at=retry_at
        )
    return Change(EntryState.FAILED, reason, "failed", attempt=True)


def approved(entry: OutboxEntry, by: str = "operator", comment: str = "") -> Change:
    why = refusal(entry.reason, by)
    if why:
        raise ApprovalRefusedError(why)
    """An operator releases a held entry: pending and due at once. The reason names who
    (a console account, or ``operator`` for an API token) and their comment."""
    _require(entry, (EntryState.HELD,), "approve")
    reason = f"approved by {by}" + (f": {comment}" if comment else "")
    return Change(EntryState.PENDING, reason, "approved")


def rejected(entry: OutboxEntry, reason: str, by: str = "operator") -> Change:
    """An operator refuses a held entry: it fails with who refused it and why."""
    _require(entry, (EntryState.HELD,), "reject")
    return Change(EntryState.FAILED, f"rejected by {by}: {reason}", "rejected")


# ------------------------------------------------------------------------------ contract


class FailureStore(Protocol):
    """Where failed console logins are shared by the instances on one ledger
    (:mod:`gateway.console.lockout`)."""

    def login_failures(
        self, keys: Sequence[str], since: datetime, *, limit: int = 1000
    ) -> dict[str, list[datetime]]: ...

    def record_login_failure(self, keys: Sequence[str], at: datetime) -> None: ...

    def reserve_login_try(
        self,
        keys: Sequence[str],
        at: datetime,
        since: datetime,
        allow: Callable[[dict[str, list[datetime]]], bool],
        *,
        limit: int = 1000,
    ) -> tuple[dict[str, list[datetime]], bool]: ...

    def end_login_try(self, keys: Sequence[str], at: datetime) -> None: ...

    def forget_login_failures(self, key: str) -> None: ...


@runtime_checkable
class Ledger(FailureStore, Protocol):
    """What the daemon, the router and the HTTP API use of a ledger (any backend)."""

    def admit(
        self,
        alert: Alert,
        *,
        source: str,
        received_at: datetime,
        plan: Callable[[Admission], Sequence[PlannedDelivery]],
        provenance: Provenance | None = None,
        hold: str = "",
        sync: bool = True,
    ) -> Admission: ...

    def admission_batch(self) -> AbstractContextManager[bool]: ...

    def works_inline(self) -> bool: ...

    def admit_message(
        self,
        record: MessageRecord,
        *,
        source: str,
        received_at: datetime,
        plan: Callable[[Admission], Sequence[PlannedDelivery]],
    ) -> Admission: ...

    def record_invalid(
        self, raw: bytes, *, source: str, received_at: datetime, reason: str
    ) -> None: ...

    def seen(self, key: AlertKey) -> bool: ...

    def get(self, key: AlertKey) -> StoredAlert | None: ...

    def active(self, now: datetime, *, with_raw: bool = False) -> list[StoredAlert]: ...

    def alerts(
        self, *, limit: int = 100, before: datetime | None = None, with_raw: bool = False
    ) -> list[StoredAlert]: ...

    def search(
        self,
        *,
        text: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        before: datetime | None = None,
        limit: int = 100,
        with_raw: bool = False,
    ) -> list[StoredAlert]: ...

    def namesakes(self, key: AlertKey) -> list[StoredAlert]: ...

    def copies(self, key: AlertKey) -> list[StoredAlert]: ...

    def receipts(self, key: AlertKey) -> list[StoredAlert]: ...

    def incidents(
        self, since: datetime, *, limit: int = 1000, with_raw: bool = False
    ) -> list[StoredAlert]: ...

    def expire_alerts(self, now: datetime) -> list[StoredAlert]: ...

    def deactivated_since(self, since: datetime, *, limit: int = 1000) -> list[StoredAlert]: ...

    def cancels_since(
        self, since: datetime, *, with_raw: bool = False, limit: int = 1000
    ) -> list[StoredAlert]: ...

    def deliveries(self, key: AlertKey) -> list[OutboxEntry]: ...

    def entry(self, entry_id: int) -> OutboxEntry | None: ...

    def due(self, sink: str, now: datetime, limit: int = 1) -> list[OutboxEntry]: ...

    def claim(
        self,
        sink: str,
        now: datetime,
        *,
        limit: int = 1,
        lease: timedelta = ...,
        by: str = "",
    ) -> list[OutboxEntry]: ...

    def release_claims(
        self,
        now: datetime,
        in_doubt: Callable[[str], str] | None = None,
        *,
        owner: str | None = "",
        silent_after: timedelta | None = None,
    ) -> int: ...

    def pending_count(self, sink: str | None = None) -> int: ...

    def outbox_counts(self) -> dict[tuple[str, EntryState], int]: ...

    def mark_delivered(self, entry_id: int, at: datetime) -> OutboxEntry: ...

    def mark_delivered_many(
        self,
        entry_ids: Sequence[int],
        at: datetime,
        *,
        claims: Mapping[int, datetime] | None = None,
    ) -> tuple[list[OutboxEntry], list[EntryStateError]]: ...

    def mark_failed(
        self,
        entry_id: int,
        reason: str,
        *,
        retry_at: datetime | None,
        at: datetime | None = None,
        claimed_at: datetime | None = None,
    ) -> OutboxEntry: ...

    def expire_due(self, now: datetime) -> list[OutboxEntry]: ...

    def holds(self, *, limit: int = 1000) -> list[OutboxEntry]: ...

    def approve(self, entry_id: int, *, by: str = "operator", comment: str = "") -> OutboxEntry: ...

    def reject(self, entry_id: int, reason: str, *, by: str = "operator") -> OutboxEntry: ...

    def acknowledge(self, key: AlertKey, by: str, at: datetime) -> bool: ...

    def acknowledgements(self, keys: Sequence[AlertKey]) -> dict[AlertKey, str]: ...

    def journal(self, key: AlertKey, *, limit: int | None = None) -> list[JournalEntry]: ...

    def journal_between(
        self, start: datetime, end: datetime, *, limit: int = 10_000
    ) -> list[JournalEntry]: ...

    def invalid_records(self, *, limit: int = 100) -> list[InvalidRecord]: ...

    def prune(self, now: datetime) -> int: ...

    def lead(self, task: str, holder: str, now: datetime, ttl: timedelta) -> int | None: ...

    def release_lead(self, task: str, holder: str, now: datetime) -> None: ...

    def heartbeat(self, name: str, now: datetime, leads: Sequence[str] = ()) -> None: ...

    def peers(self) -> list[dict[str, Any]]: ...

    def sync(self) -> bool: ...

    def close(self) -> None: ...


Plan = Callable[[Admission], Sequence[PlannedDelivery]]


_T = TypeVar("_T")


async def on_ledger(
    ledger: Ledger, work: Callable[..., _T], *args: Any, inline: bool = True
) -> _T:
    """``work(*args)`` -- something that uses the ledger -- on this thread where the ledger
    allows it (:meth:`Ledger.works_inline`) and the caller does (``inline``: False for work
    long enough to hold up the event loop), else in a worker thread."""
    if inline and ledger.works_inline():
        return work(*args)
    return await asyncio.to_thread(work, *args)


class LedgerBase(abc.ABC):
    """Admission over a backend's storage contract: ``facts`` and ``record`` (and their
    message twins) are what a backend implements; deciding and planning happen here, the
    same for every backend, with no write transaction open -- except inside an
    :meth:`admission_batch` of a backend that shares one commit among a batch (SQLite)."""

    cross_sender_references: bool = False
    max_admission_tries: int = 20

    def sync(self) -> bool:
        """Make every commit so far durable; True when there was one that was not yet.

        Admissions are always synced before their source is acknowledged. A backend may
        commit a delivery's outcome without waiting for the disk (it survives a crash of
        the process, not of the machine); the delivery stage calls this soon after, unless
        a later synced commit (any admission) made it durable first. This one commits
        every change synced: nothing to do."""
        return False

    def admission_batch(self) -> AbstractContextManager[bool]:
        """Admissions of one thread made inside this ``with`` may share one durable commit,
        made when it ends (the context's value is then True): an admission that fails inside
        changes nothing and the others stand; should that commit fail, the ``with`` raises
        and none of them was made. A backend that commits each admission on its own (the
        default) gives False and does nothing."""
        return contextlib.nullcontext(False)

    def works_inline(self) -> bool:
        """Whether the ledger's work -- a batch of admissions, a delivery's claim or outcome
        -- may run on the caller's own thread (the daemon's event loop), for it waits on
        nothing but a quick local disk: no time is then lost handing it to a worker thread
        and back, and the loop does not take the interpreter from that thread at every
        statement to read its sockets. A backend that waits on a network (the default) or a
        slow disk says no."""
        return False

    # -- the storage contract (besides the queries and outbox changes of Ledger) ---------

    @abc.abstractmethod
    def facts(
        self, key: AlertKey, references: Sequence[AlertKey] = (), probe: Probe | None = None
    ) -> Facts:
        """The facts an admission of ``key`` depends on (a consistent read); with ``probe``,
        the stored alerts sharing an identity key with it and the copies of their events."""

    @abc.abstractmethod
    def record(
        self,
        alert: Alert,
        verdict: Verdict,
        planned: Sequence[PlannedDelivery],
        *,
        facts: Facts,
        source: str,
        received_at: datetime,
        provenance: Provenance | None = None,
        sync: bool = True,
    ) -> Admission:
        """In one durable transaction: refuse with :class:`FactsChangedError` unless the
        facts still hold; store the alert with its provenance (or journal the duplicate),
        withdraw what the verdict withdraws (or keep its deferred withdrawals for the
        operator's approval), enqueue ``planned``, journal; return the settled admission.

        ``sync=False`` commits without waiting for the disk: the admission is durable once a
        later synced commit is (group commit; the caller acknowledges nothing before that)."""

    @abc.abstractmethod
    def record_message(
        self,
        record: MessageRecord,
        admission: Admission,
        planned: Sequence[PlannedDelivery],
        *,
        facts: Facts,
        source: str,
        received_at: datetime,
    ) -> Admission:
        """:meth:`record` for an inbound incident or radio message."""

    # -- admission -------------------------------------------------------------------------

    def admit(
        self,
        alert: Alert,
        *,
        source: str,
        received_at: datetime,
        plan: Plan,
        provenance: Provenance | None = None,
        hold: str = "",
        sync: bool = True,
    ) -> Admission:
        """Decide, plan, then store and enqueue one alert in one durable transaction.

        ``plan`` is called for routed decisions (not for duplicate, expired or stale), with
        no transaction open; if it raises, nothing is stored and the error propagates. It may
        be called again when the facts changed before the decision could be recorded.
        ``provenance`` is stored with the alert and decides whether an update or cancel may
        change what it references; ``hold`` makes the whole alert wait for an operator.
        Without a provenance (tests, tools) the alert is stored as anonymous and changes
        what it references by the sender rule alone. ``sync=False``: see :meth:`record`.
        """
        _aware(received_at)
        key = alert.key
        references = read_references(alert)
        started = time.perf_counter()

        probe = identity_probe(alert)

        def attempt() -> Admission:
            facts = self.facts(key, references, probe)
            verdict = decide(
                alert,
                facts,
                received_at=received_at,
                provenance=provenance,
                hold=hold,
                cross_sender_references=self.cross_sender_references,
            )
            planned: list[PlannedDelivery] = []
            if verdict.admission.routed:
                planned = _prioritised(check_plan(key, plan(verdict.admission)), verdict)
            return self.record(
                alert,
                verdict,
                planned,
                facts=facts,
                source=source,
                received_at=received_at,
                provenance=provenance,
                sync=sync,
            )

        admission = self._until_recorded(key, attempt)
        ADMIT_SECONDS.observe(time.perf_counter() - started)
        if admission.rule:
            IDENTITY_MATCHES.inc(rule=admission.rule, decision=admission.decision.value)
        log.info(
            "alert_admitted",
            alert=str(key),
            decision=admission.decision.value,
            source=source,
            superseded=[str(k) for k in admission.superseded],
            reason=admission.reason,
            identity_event=admission.event,
            identity_rule=admission.rule,
        )
        return admission

    def admit_message(
        self,
        record: MessageRecord,
        *,
        source: str,
        received_at: datetime,
        plan: Plan,
    ) -> Admission:
        """Store one inbound incident or radio message and its planned deliveries in one
        durable transaction; a key seen before is a duplicate and plans nothing."""
        _aware(received_at)
        key = record.key

        def attempt() -> Admission:
            facts = self.facts(key)
            admission = decide_message(key, facts)
            planned = check_plan(key, plan(admission)) if admission.routed else []
            return self.record_message(
                record, admission, planned, facts=facts, source=source, received_at=received_at
            )

        admission = self._until_recorded(key, attempt)
        log.info(
            "message_admitted",
            message=str(key),
            kind=record.msg_type,
            decision=admission.decision.value,
            source=source,
        )
        return admission

    def _until_recorded(self, key: AlertKey, attempt: Callable[[], Admission]) -> Admission:
        """Run one admission pass until its record finds the facts it was decided on."""
        for _ in range(self.max_admission_tries):
            try:
                admission = attempt()
            except FactsChangedError:
                ADMISSION_RETRIES.inc()
                continue
            ADMISSIONS.inc(decision=admission.decision.value)
            return admission
        msg = f"admission of {key} kept changing under it ({self.max_admission_tries} tries)"
        raise LedgerError(msg)


def _aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"time {value.isoformat()} has no timezone"
        raise ValueError(msg)


def _prioritised(planned: list[PlannedDelivery], verdict: Verdict) -> list[PlannedDelivery]:
    """The plan as the verdict allows it: an alert held as a whole has every delivery held
    (whatever the router said), and an update or cancel is at least as urgent as what it
    replaces (a cancel of a Broadcast-Immediately alert must not queue behind routine
    traffic)."""
    hold = verdict.admission.hold
    if hold:  # each delivery says why it waits (the holds list and the API show it)
        planned = [replace(p, held=True, hold_reason=p.hold_reason or hold) for p in planned]
    best = verdict.ref_priority
    if best is None:
        return planned
    return [p if p.priority <= best else replace(p, priority=best) for p in planned]
