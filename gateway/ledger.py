"""The ledger: admission decisions, duplicate memory, the journal, and the durable outbox.

Every alert that reaches the gateway passes through :meth:`Ledger.admit` exactly once per
``(sender, identifier, sent)``. In one transaction the ledger decides what the alert is
(:class:`Decision`), stores it with its original bytes, withdraws what it supersedes, asks the
router for the deliveries it wants (``plan``) and puts them in the outbox. The transaction is
committed (``synchronous=FULL``: on disk) before ``admit`` returns, so a source is acknowledged
only for what survives a crash.

The outbox holds one entry per (alert, sink). Sink workers take entries with :meth:`due` in
priority order (:func:`priority_of`: Broadcast-Immediately first), then report
:meth:`mark_delivered` or :meth:`mark_failed`. Every entry ends in one terminal state:
``delivered``, ``superseded`` (an update or cancel came first), ``expired`` (its alert's
``expires`` passed), or ``failed`` with a reason. Every admission and every state change is
appended to the journal, the audit trail of what was received and transmitted.

How the daemon uses it (each call through ``asyncio.to_thread``)::

    admission = ledger.admit(alert, source=item.source, received_at=item.received_at,
                             plan=router.plan)          # durable when it returns
    if item.ack is not None:
        await item.ack()                                # only now acknowledge the source

    for entry in ledger.claim(sink.name, clock.now()):  # per-sink worker
        try:
            await sink.send(entry.to_outbound())
        except DeliveryError as exc:
            retry = clock.now() + backoff(entry.attempts) if exc.retryable else None
            ledger.mark_failed(entry.id, str(exc), retry_at=retry)
        else:
            ledger.mark_delivered(entry.id, clock.now())

    # every few seconds: ledger.expire_due(now); for gone in ledger.expire_alerts(now) (or
    # ledger.deactivated_since(cursor)): clear the retained summary; hourly: ledger.prune(now)

Errors (all derive from :class:`gateway.errors.GatewayError`)::

    LedgerError                       storage failed; nothing was changed (fail closed)
    ├── LedgerSchemaError             the database was written by a newer borderlink
    ├── PlanError (ValueError)        a plan the outbox refuses (the same sink twice)
    ├── EntryNotFoundError (KeyError) no outbox entry with that id
    └── EntryStateError (ValueError)  the entry is not in a state that allows the change
"""

from __future__ import annotations

import enum
import hashlib
import json
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

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
from gateway.adapter import Outbound, SystemClock
from gateway.errors import GatewayError
from gateway.metrics import REGISTRY
from gateway.storage import sqlite_schema

__all__ = [
    "ADMISSIONS",
    "ADMIT_SECONDS",
    "BROADCAST_IMMEDIATELY",
    "EAS_MUST_CARRY",
    "OUTBOX_ENTRIES",
    "OUTBOX_TRANSITIONS",
    "TERMINAL_STATES",
    "Admission",
    "AlertStatus",
    "Decision",
    "EntryNotFoundError",
    "EntryState",
    "EntryStateError",
    "InvalidRecord",
    "JournalEntry",
    "Ledger",
    "LedgerError",
    "LedgerSchemaError",
    "OutboxEntry",
    "PlanError",
    "PlannedDelivery",
    "SqliteLedger",
    "StoredAlert",
    "invalid_key",
    "priority_of",
]

log = structlog.get_logger(__name__)

ADMISSIONS = REGISTRY.counter(
    "borderlink_ledger_admissions_total",
    "Admission decisions taken by the ledger, by decision",
    ("decision",),
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
ADMIT_SECONDS = REGISTRY.histogram(
    "borderlink_ledger_admit_seconds",
    "Time to admit one alert, durable commit included",
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
_OPEN_STATES = (EntryState.PENDING.value, EntryState.HELD.value)


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

    @property
    def routed(self) -> bool:
        """Whether this admission put (or would put) deliveries in the outbox."""
        return self.decision in _ROUTED


_ROUTED = frozenset({Decision.NEW, Decision.UPDATE, Decision.CANCEL, Decision.HELD})


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
        }


# ------------------------------------------------------------------------------- priority

BROADCAST_IMMEDIATELY = "layer:SOREM:1.0:Broadcast_Immediately"
EAS_MUST_CARRY = "EAS-Must-Carry"
_RANK_WIDTH = len(URGENCY_RANK)
_LOWEST_PRIORITY = 1 + len(SEVERITY_RANK) * _RANK_WIDTH
# Inbound incident and radio messages queue behind every alert.
MESSAGE_PRIORITY = _LOWEST_PRIORITY + 1


def _is_broadcast_immediately(alert: Alert) -> bool:
    for info in alert.infos:
        for param in info.parameters:
            value = param.value.strip().lower()
            if param.name == BROADCAST_IMMEDIATELY and value == "yes":
                return True
            if param.name == EAS_MUST_CARRY and value == "true":
                return True
    return False


def priority_of(alert: Alert) -> int:
    """Delivery priority of an alert; lower goes first.

    0 for Broadcast-Immediately (CAP-CP parameter ``layer:SOREM:1.0:Broadcast_Immediately`` =
    ``Yes``, or IPAWS ``EAS-Must-Carry`` = ``True``) and for any info block that is Extreme
    and Immediate. Otherwise ``1 + severity_rank * 5 + urgency_rank`` of the most urgent info
    block (ranks from :data:`cap_schemas.model.SEVERITY_RANK` / ``URGENCY_RANK``), so severity
    dominates and urgency breaks ties; an alert without info blocks ranks last.
    """
    if _is_broadcast_immediately(alert):
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


# ------------------------------------------------------------------------------ interface


class _Now(Protocol):
    def now(self) -> datetime: ...


@runtime_checkable
class Ledger(Protocol):
    """What the daemon needs of a ledger; SQLite here, a shared PostgreSQL later.

    Every method is synchronous, thread-safe and returns after its change is durable; the
    daemon calls them through ``asyncio.to_thread``.
    """

    def admit(
        self,
        alert: Alert,
        *,
        source: str,
        received_at: datetime,
        plan: Callable[[Admission], Sequence[PlannedDelivery]],
    ) -> Admission: ...

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

    def expire_alerts(self, now: datetime) -> list[StoredAlert]: ...

    def deactivated_since(self, since: datetime, *, limit: int = 1000) -> list[StoredAlert]: ...

    def deliveries(self, key: AlertKey) -> list[OutboxEntry]: ...

    def entry(self, entry_id: int) -> OutboxEntry | None: ...

    def due(self, sink: str, now: datetime, limit: int = 1) -> list[OutboxEntry]: ...

    def claim(
        self, sink: str, now: datetime, *, limit: int = 1, lease: timedelta = ...
    ) -> list[OutboxEntry]: ...

    def release_claims(self, now: datetime) -> int: ...

    def pending_count(self, sink: str | None = None) -> int: ...

    def outbox_counts(self) -> dict[tuple[str, EntryState], int]: ...

    def mark_delivered(self, entry_id: int, at: datetime) -> OutboxEntry: ...

    def mark_delivered_many(
        self, entry_ids: Sequence[int], at: datetime
    ) -> tuple[list[OutboxEntry], list[EntryStateError]]: ...

    def mark_failed(
        self,
        entry_id: int,
        reason: str,
        *,
        retry_at: datetime | None,
        at: datetime | None = None,
    ) -> OutboxEntry: ...

    def expire_due(self, now: datetime) -> list[OutboxEntry]: ...

    def holds(self, *, limit: int = 1000) -> list[OutboxEntry]: ...

    def approve(self, entry_id: int) -> OutboxEntry: ...

    def reject(self, entry_id: int, reason: str) -> OutboxEntry: ...

    def journal(self, key: AlertKey, *, limit: int | None = None) -> list[JournalEntry]: ...

    def journal_between(
        self, start: datetime, end: datetime, *, limit: int = 10_000
    ) -> list[JournalEntry]: ...

    def invalid_records(self, *, limit: int = 100) -> list[InvalidRecord]: ...

    def prune(self, now: datetime) -> int: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------- encoding

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_LEN = struct.Struct(">I")


def _us(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"time {value.isoformat()} has no timezone"
        raise ValueError(msg)
    return (value - _EPOCH) // _US


def _opt_us(value: datetime | None) -> int | None:
    return None if value is None else _us(value)


def _dt(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _opt_dt(value: int | None) -> datetime | None:
    return None if value is None else _dt(value)


def _pack_parts(parts: Sequence[bytes]) -> bytes:
    out = bytearray()
    for part in parts:
        candidate: object = part
        if not isinstance(candidate, bytes | bytearray | memoryview):
            msg = f"delivery parts must be bytes, got {type(part).__name__}"
            raise PlanError(msg)
        data = bytes(part)
        out += _LEN.pack(len(data))
        out += data
    return bytes(out)


def _unpack_parts(blob: bytes) -> tuple[bytes, ...]:
    parts: list[bytes] = []
    offset = 0
    while offset < len(blob):
        (size,) = _LEN.unpack_from(blob, offset)
        offset += _LEN.size
        parts.append(bytes(blob[offset : offset + size]))
        offset += size
    return tuple(parts)


def _key_json(keys: Sequence[AlertKey]) -> str:
    return json.dumps([[k.sender, k.identifier, k.sent] for k in keys])


def _keys_from_json(text: str) -> tuple[AlertKey, ...]:
    return tuple(AlertKey(s, i, t) for s, i, t in json.loads(text))


def _summary_fields(alert: Alert) -> dict[str, Any]:
    first = alert.infos[0] if alert.infos else None
    areas: dict[str, None] = {}
    for info in alert.infos:
        for area in info.areas:
            areas.setdefault(area.area_desc, None)
    return {
        "event": first.event if first else "",
        "severity": first.severity.value if first else "",
        "urgency": first.urgency.value if first else "",
        "headline": (first.headline or "") if first else "",
        "sender_name": (first.sender_name or "") if first else "",
        "areas": json.dumps(list(areas)),
    }


_ALERT_COLUMNS = (
    "id, sender, identifier, sent, decision, status, reason, source, received_at, expires, "
    "priority, msg_type, cap_status, event, severity, urgency, headline, sender_name, areas, "
    "refs, superseded_by, status_changed_at, raw_sha256, raw_size"
)
_ENTRY_COLUMNS = (
    "o.id, o.sink, o.route, o.content_type, o.attributes, o.parts, o.priority, o.enqueued_at, "
    "o.expires, o.attempts, o.next_attempt_at, o.state, o.reason, o.updated_at, o.started_at, "
    "a.sender, a.identifier, a.sent"
)


def _row_to_alert(row: sqlite3.Row, raw: bytes = b"") -> StoredAlert:
    superseded_by = row["superseded_by"]
    return StoredAlert(
        key=AlertKey(row["sender"], row["identifier"], row["sent"]),
        raw=raw,
        decision=Decision(row["decision"]),
        source=row["source"],
        received_at=_dt(row["received_at"]),
        expires=_opt_dt(row["expires"]),
        status=AlertStatus(row["status"]),
        msg_type=row["msg_type"],
        cap_status=row["cap_status"],
        event=row["event"],
        severity=row["severity"],
        urgency=row["urgency"],
        headline=row["headline"],
        sender_name=row["sender_name"],
        areas=tuple(json.loads(row["areas"])),
        references=_keys_from_json(row["refs"]),
        reason=row["reason"],
        priority=row["priority"],
        superseded_by=None if superseded_by is None else _keys_from_json(superseded_by)[0],
        status_changed_at=_opt_dt(row["status_changed_at"]),
        raw_size=row["raw_size"],
        raw_sha256=row["raw_sha256"],
    )


def _row_to_entry(row: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        key=AlertKey(row["sender"], row["identifier"], row["sent"]),
        sink=row["sink"],
        route=row["route"],
        parts=_unpack_parts(row["parts"]),
        content_type=row["content_type"],
        attributes=MappingProxyType(json.loads(row["attributes"])),
        priority=row["priority"],
        enqueued_at=_dt(row["enqueued_at"]),
        expires=_opt_dt(row["expires"]),
        attempts=row["attempts"],
        next_attempt_at=_dt(row["next_attempt_at"]),
        state=EntryState(row["state"]),
        reason=row["reason"],
        updated_at=_opt_dt(row["updated_at"]),
        started_at=_opt_dt(row["started_at"]),
    )


def _row_to_journal(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        id=row["id"],
        at=_dt(row["at"]),
        key=AlertKey(row["sender"], row["identifier"], row["sent"]),
        event=row["event"],
        detail=row["detail"],
        entry_id=row["entry_id"],
        sink=row["sink"],
    )


@dataclass(frozen=True, slots=True)
class _Change:
    state: EntryState
    reason: str
    event: str
    attempt: bool = False
    retry_at: datetime | None = None


def _require(
    current: EntryState,
    row: sqlite3.Row,
    states: Sequence[EntryState],
    action: str,
    *,
    deny: bool = False,
) -> None:
    """Raise EntryStateError unless ``current`` is in ``states`` (not in, with ``deny``)."""
    if (current in states) != deny:
        return
    key = AlertKey(row["sender"], row["identifier"], row["sent"])
    msg = f"outbox entry {row['id']} ({key} -> {row['sink']}) is {current.value}; cannot {action}"
    raise EntryStateError(msg)


def _decide_delivered(current: EntryState, row: sqlite3.Row) -> _Change:
    _require(current, row, (EntryState.HELD, EntryState.DELIVERED), "deliver", deny=True)
    return _Change(EntryState.DELIVERED, "", "delivered", attempt=True)


# ---------------------------------------------------------------------------------- SQLite


class SqliteLedger:
    """The embedded ledger: one SQLite file in WAL mode, ``synchronous=FULL``.

    Two connections, each shared by all threads behind its own lock
    (``check_same_thread=False``), so the daemon may call it from ``asyncio.to_thread``: one
    writes, one reads, and in WAL mode a read (``seen``, the API) never waits for a commit's
    fsync. Writes take ``BEGIN IMMEDIATE`` so that two processes on one file also decide
    each key once.

    ``dedup_floor`` is how long a key is remembered at least (even when the alert expires
    sooner); ``journal_retention`` how long audit lines are kept; ``max_invalid_bytes`` how
    much of an invalid document is kept. An Update or Cancel withdraws only alerts of its
    own sender unless ``cross_sender_references`` (a message from one sender must not
    silence another's alert).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        dedup_floor: timedelta = timedelta(days=7),
        journal_retention: timedelta = timedelta(days=90),
        clock: _Now | None = None,
        busy_timeout: timedelta = timedelta(seconds=10),
        max_invalid_bytes: int = 8 * 1024 * 1024,
        cross_sender_references: bool = False,
    ) -> None:
        if dedup_floor < timedelta(0):
            msg = "dedup_floor must not be negative"
            raise ValueError(msg)
        self.path = str(path)
        self.dedup_floor = dedup_floor
        self.journal_retention = journal_retention
        self.max_invalid_bytes = max_invalid_bytes
        self.cross_sender_references = cross_sender_references
        self._clock: _Now = clock or SystemClock()
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._writer: int | None = None  # thread inside a write transaction
        self._closed = False
        self._gauged_sinks: set[str] = set()
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout.total_seconds(),
            )
        except sqlite3.Error as exc:
            msg = f"cannot open ledger {self.path}: {exc}"
            raise LedgerError(msg) from exc
        conn.row_factory = sqlite3.Row
        self._conn = conn
        try:
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # keep the WAL file from staying at its high-water mark after a burst
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout.total_seconds() * 1000)}")
            found = sqlite_schema.migrate(conn, now=self._clock.now())
        except sqlite_schema.SchemaTooNewError as exc:
            conn.close()
            raise LedgerSchemaError(str(exc)) from exc
        except sqlite3.Error as exc:
            conn.close()
            msg = f"cannot prepare ledger {self.path}: {exc}"
            raise LedgerError(msg) from exc
        except BaseException:
            conn.close()
            raise
        if mode != "wal" and self.path != ":memory:":
            conn.close()
            msg = f"ledger {self.path}: cannot switch to WAL (journal_mode={mode})"
            raise LedgerError(msg)
        if self.path == ":memory:":
            self._rconn = conn  # a private database: one connection is all there is
        else:
            try:
                self._rconn = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=busy_timeout.total_seconds(),
                )
                self._rconn.row_factory = sqlite3.Row
                self._rconn.execute("PRAGMA query_only=ON")
            except sqlite3.Error as exc:
                conn.close()
                msg = f"cannot open ledger {self.path} for reading: {exc}"
                raise LedgerError(msg) from exc
        if found != sqlite_schema.LATEST:
            log.info("ledger_migrated", path=self.path, from_version=found, to=sqlite_schema.LATEST)

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock, self._read_lock:
            if not self._closed:
                self._closed = True
                if self._rconn is not self._conn:
                    self._rconn.close()
                self._conn.close()

    @property
    def schema_version(self) -> int:
        with self._read() as conn:
            return sqlite_schema.current_version(conn)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot; inside a write (plan() reading) the write's own view."""
        if self._writer == threading.get_ident():
            with self._lock:
                try:
                    yield self._conn
                except sqlite3.Error as exc:
                    msg = f"ledger {self.path}: read failed: {exc}"
                    raise LedgerError(msg) from exc
            return
        lock = self._lock if self._rconn is self._conn else self._read_lock
        with lock:
            if self._closed:
                msg = f"ledger {self.path} is closed"
                raise LedgerError(msg)
            conn = self._rconn
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                msg = f"ledger {self.path}: read failed: {exc}"
                raise LedgerError(msg) from exc

    @contextmanager
    def _write(self, *, sync: bool = True) -> Iterator[sqlite3.Connection]:
        """One durable transaction; any exception rolls it back and propagates.

        ``sync=False`` commits without waiting for the disk (WAL, ``synchronous=NORMAL``):
        the change is durable once any later synced commit is (the log is written in order),
        and is lost only with the machine's power, never with the process.
        """
        with self._lock:
            if self._closed:
                msg = f"ledger {self.path} is closed"
                raise LedgerError(msg)
            conn = self._conn
            if conn.in_transaction:
                msg = f"ledger {self.path}: no write may run inside plan() (admit is under way)"
                raise LedgerError(msg)
            try:
                if not sync:
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                msg = f"ledger {self.path}: cannot start a write: {exc}"
                raise LedgerError(msg) from exc
            self._writer = threading.get_ident()
            try:
                try:
                    yield conn
                except BaseException as exc:
                    self._rollback()
                    if isinstance(exc, sqlite3.Error):
                        msg = f"ledger {self.path}: write failed, rolled back: {exc}"
                        raise LedgerError(msg) from exc
                    raise
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    msg = f"ledger {self.path}: commit failed, rolled back: {exc}"
                    raise LedgerError(msg) from exc
            finally:
                self._writer = None
                if not sync:
                    conn.execute("PRAGMA synchronous=FULL")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the connection is beyond use; report, keep raising
                log.exception("ledger_rollback_failed", path=self.path, error=str(exc))

    def _journal(
        self,
        conn: sqlite3.Connection,
        key: AlertKey,
        event: str,
        detail: str = "",
        *,
        at: datetime | None = None,
        entry_id: int | None = None,
        sink: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO journal (at, sender, identifier, sent, event, detail, entry_id, sink)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _us(at or self._clock.now()),
                key.sender,
                key.identifier,
                key.sent,
                event,
                detail,
                entry_id,
                sink,
            ),
        )

    # ------------------------------------------------------------------ admission

    def admit(
        self,
        alert: Alert,
        *,
        source: str,
        received_at: datetime,
        plan: Callable[[Admission], Sequence[PlannedDelivery]],
    ) -> Admission:
        """Decide, store and enqueue one alert in one durable transaction.

        ``plan`` is called inside the transaction for routed decisions (not for duplicate,
        expired or stale); if it raises, nothing is stored and the error propagates.
        """
        received_us = _us(received_at)
        key = alert.key
        started = time.perf_counter()
        with self._write() as conn:
            existing = conn.execute(
                "SELECT id, source, received_at, raw_sha256 FROM alerts"
                " WHERE sender = ? AND identifier = ? AND sent = ?",
                (key.sender, key.identifier, key.sent),
            ).fetchone()
            if existing is not None:
                admission = self._duplicate(conn, alert, key, source, existing)
            else:
                admission = self._admit_new(
                    conn, alert, key, source=source, received_us=received_us, plan=plan
                )
        ADMISSIONS.inc(decision=admission.decision.value)
        ADMIT_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "alert_admitted",
            alert=str(key),
            decision=admission.decision.value,
            source=source,
            superseded=[str(k) for k in admission.superseded],
            reason=admission.reason,
        )
        return admission

    def _duplicate(
        self,
        conn: sqlite3.Connection,
        alert: Alert,
        key: AlertKey,
        source: str,
        existing: sqlite3.Row,
    ) -> Admission:
        first = _dt(existing["received_at"]).isoformat()
        reason = f"first received from {existing['source']} at {first}"
        if alert.raw and hashlib.sha256(alert.raw).hexdigest() != existing["raw_sha256"]:
            reason += "; this copy's bytes differ"
        self._journal(conn, key, "duplicate", f"from {source}: {reason}")
        return Admission(key, Decision.DUPLICATE, (), reason)

    def _admit_new(
        self,
        conn: sqlite3.Connection,
        alert: Alert,
        key: AlertKey,
        *,
        source: str,
        received_us: int,
        plan: Callable[[Admission], Sequence[PlannedDelivery]],
    ) -> Admission:
        expires = alert.expires
        expires_us = _opt_us(expires)
        forget_after = max(expires_us or received_us, received_us + self.dedup_floor // _US)
        expired = expires_us is not None and expires_us <= received_us
        superseding = alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL)
        notes: list[str] = []

        # An update or cancel naming this alert may have been admitted before it (two feeds
        # racing, an archive backfill): then this alert is already out of force.
        later = [
            r
            for r in conn.execute(
                "SELECT a.sender, a.identifier, a.sent, a.msg_type FROM alert_refs r"
                " JOIN alerts a ON a.id = r.alert_id"
                " WHERE r.sender = ? AND r.identifier = ? AND r.sent = ?"
                "   AND a.msg_type IN (?, ?) ORDER BY a.id",
                (key.sender, key.identifier, key.sent, MsgType.UPDATE.value, MsgType.CANCEL.value),
            ).fetchall()
            if self.cross_sender_references or r["sender"] == key.sender
        ]
        superseded_by: AlertKey | None = None
        if expired:
            status = AlertStatus.EXPIRED
            decision = Decision.EXPIRED
            notes.append(f"expired at {expires.isoformat() if expires else ''} before receipt")
        elif later:
            cancelled = any(r["msg_type"] == MsgType.CANCEL.value for r in later)
            status = AlertStatus.CANCELLED if cancelled else AlertStatus.SUPERSEDED
            decision = Decision.STALE
            superseded_by = AlertKey(
                later[-1]["sender"], later[-1]["identifier"], later[-1]["sent"]
            )
            notes.append(f"already {status.value} by {superseded_by}")
        elif alert.msg_type is MsgType.CANCEL:
            status = AlertStatus.CANCELLED  # a cancel is never itself an active alert
            decision = Decision.CANCEL
        else:
            status = AlertStatus.ACTIVE
            decision = Decision.UPDATE if alert.msg_type is MsgType.UPDATE else Decision.NEW

        raw = bytes(alert.raw)
        priority = priority_of(alert)
        cursor = conn.execute(
            "INSERT INTO alerts (sender, identifier, sent, decision, status, reason, source,"
            " received_at, expires, forget_after, priority, msg_type, cap_status, event,"
            " severity, urgency, headline, sender_name, areas, refs, superseded_by,"
            " status_changed_at, raw_sha256, raw_size, raw)"
            " VALUES (:sender, :identifier, :sent, :decision, :status, '', :source,"
            " :received_at, :expires, :forget_after, :priority, :msg_type, :cap_status, :event,"
            " :severity, :urgency, :headline, :sender_name, :areas, :refs, :superseded_by,"
            " :received_at, :raw_sha256, :raw_size, :raw)",
            {
                "sender": key.sender,
                "identifier": key.identifier,
                "sent": key.sent,
                "decision": decision.value,
                "status": status.value,
                "source": source,
                "received_at": received_us,
                "expires": expires_us,
                "forget_after": forget_after,
                "priority": priority,
                "msg_type": alert.msg_type.value,
                "cap_status": alert.status.value,
                "refs": _key_json(alert.references),
                "superseded_by": None if superseded_by is None else _key_json([superseded_by]),
                "raw_sha256": hashlib.sha256(raw).hexdigest(),
                "raw_size": len(raw),
                "raw": raw,
                **_summary_fields(alert),
            },
        )
        alert_id = int(cursor.lastrowid or 0)
        conn.executemany(
            "INSERT OR IGNORE INTO alert_refs (alert_id, sender, identifier, sent)"
            " VALUES (?, ?, ?, ?)",
            [(alert_id, r.sender, r.identifier, r.sent) for r in alert.references],
        )

        superseded: list[AlertKey] = []
        ref_priority: int | None = None
        if superseding:
            superseded, unknown, foreign, ref_priority = self._supersede(
                conn, alert, key, received_us
            )
            if unknown:
                notes.append("unknown references: " + " ".join(str(k) for k in unknown))
            if foreign:
                notes.append(
                    "references to another sender ignored: " + " ".join(str(k) for k in foreign)
                )
            if key in alert.references:
                notes.append("references itself (ignored)")

        admission = Admission(key, decision, tuple(superseded), "; ".join(notes))
        entries = 0
        held = 0
        if admission.routed:
            planned = list(plan(admission))
            entries, held = self._enqueue(
                conn,
                alert_id,
                key,
                planned=planned,
                received_us=received_us,
                ref_priority=ref_priority,
            )
            if entries and held == entries:
                admission = Admission(
                    key,
                    Decision.HELD,
                    admission.superseded,
                    admission.reason or "every delivery waits for an operator",
                )
            elif not entries:
                notes.append("no delivery planned")
                admission = Admission(key, decision, admission.superseded, "; ".join(notes))
        conn.execute(
            "UPDATE alerts SET decision = ?, reason = ? WHERE id = ?",
            (admission.decision.value, admission.reason, alert_id),
        )
        detail = f"{admission.decision.value} from {source}"
        if admission.reason:
            detail += f": {admission.reason}"
        if entries:
            detail += f"; {entries} deliveries ({held} held)"
        self._journal(conn, key, "admitted", detail)
        return admission

    def _supersede(
        self, conn: sqlite3.Connection, alert: Alert, key: AlertKey, received_us: int
    ) -> tuple[list[AlertKey], list[AlertKey], list[AlertKey], int | None]:
        """Withdraw every referenced alert.

        Returns (withdrawn, unknown, other senders' (left alone), best priority withdrawn).
        """
        new_status = (
            AlertStatus.CANCELLED if alert.msg_type is MsgType.CANCEL else AlertStatus.SUPERSEDED
        )
        verb = "cancelled" if new_status is AlertStatus.CANCELLED else "superseded"
        found: list[AlertKey] = []
        unknown: list[AlertKey] = []
        foreign: list[AlertKey] = []
        best: int | None = None
        by = _key_json([key])
        for ref in dict.fromkeys(alert.references):
            if ref == key:
                continue  # a message cannot withdraw itself; admit() notes it
            if ref.sender != key.sender and not self.cross_sender_references:
                foreign.append(ref)
                continue
            row = conn.execute(
                "SELECT id, status, priority FROM alerts"
                " WHERE sender = ? AND identifier = ? AND sent = ?",
                (ref.sender, ref.identifier, ref.sent),
            ).fetchone()
            if row is None:
                unknown.append(ref)
                continue
            found.append(ref)
            best = row["priority"] if best is None else min(best, row["priority"])
            if row["status"] == AlertStatus.ACTIVE.value:
                conn.execute(
                    "UPDATE alerts SET status = ?, superseded_by = ?, status_changed_at = ?,"
                    " deactivated_at = ? WHERE id = ?",
                    (new_status.value, by, received_us, received_us, row["id"]),
                )
                self._journal(conn, ref, verb, f"by {key}")
            open_entries = conn.execute(
                "SELECT id, sink, started_at FROM outbox WHERE alert_id = ? AND state IN (?, ?)",
                (row["id"], *_OPEN_STATES),
            ).fetchall()
            for entry in open_entries:
                reason = f"{verb} by {key}"
                if entry["started_at"] is not None:
                    reason += " while being sent"
                conn.execute(
                    "UPDATE outbox SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                    (EntryState.SUPERSEDED.value, reason, received_us, entry["id"]),
                )
                self._journal(
                    conn, ref, "superseded", reason, entry_id=entry["id"], sink=entry["sink"]
                )
                OUTBOX_TRANSITIONS.inc(sink=entry["sink"], state=EntryState.SUPERSEDED.value)
        return found, unknown, foreign, best

    def _enqueue(
        self,
        conn: sqlite3.Connection,
        alert_id: int,
        key: AlertKey,
        *,
        planned: Sequence[PlannedDelivery],
        received_us: int,
        ref_priority: int | None,
    ) -> tuple[int, int]:
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
            sinks[item.sink] = item.route
        held = 0
        for item in planned:
            # An update or cancel is at least as urgent as what it replaces: a cancel of a
            # Broadcast-Immediately alert must not queue behind routine traffic.
            priority = item.priority if ref_priority is None else min(item.priority, ref_priority)
            state = EntryState.HELD if item.held else EntryState.PENDING
            held += item.held
            cursor = conn.execute(
                "INSERT INTO outbox (alert_id, sink, route, content_type, attributes, parts,"
                " priority, enqueued_at, expires, attempts, next_attempt_at, state, reason,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (
                    alert_id,
                    item.sink,
                    item.route,
                    item.content_type,
                    json.dumps(dict(item.attributes), sort_keys=True),
                    _pack_parts(item.parts),
                    priority,
                    received_us,
                    _opt_us(item.expires),
                    received_us,
                    state.value,
                    "held for an operator" if item.held else "",
                    received_us,
                ),
            )
            self._journal(
                conn,
                key,
                state.value if item.held else "enqueued",
                f"route {item.route}, priority {priority}",
                entry_id=cursor.lastrowid,
                sink=item.sink,
            )
            OUTBOX_TRANSITIONS.inc(sink=item.sink, state=state.value)
        return len(planned), held

    def admit_message(
        self,
        record: MessageRecord,
        *,
        source: str,
        received_at: datetime,
        plan: Callable[[Admission], Sequence[PlannedDelivery]],
    ) -> Admission:
        """Store one inbound incident or radio message and its planned deliveries in one
        durable transaction; a key seen before is a duplicate and plans nothing."""
        received_us = _us(received_at)
        key = record.key
        with self._write() as conn:
            existing = conn.execute(
                "SELECT id, source, received_at, raw_sha256 FROM alerts"
                " WHERE sender = ? AND identifier = ? AND sent = ?",
                (key.sender, key.identifier, key.sent),
            ).fetchone()
            if existing is not None:
                first = _dt(existing["received_at"]).isoformat()
                reason = f"first received from {existing['source']} at {first}"
                self._journal(conn, key, "duplicate", f"from {source}: {reason}")
                admission = Admission(key, Decision.DUPLICATE, (), reason)
            else:
                raw = bytes(record.raw)
                cursor = conn.execute(
                    "INSERT INTO alerts (sender, identifier, sent, decision, status, source,"
                    " received_at, forget_after, priority, msg_type, cap_status, event,"
                    " headline, sender_name, areas, status_changed_at, raw_sha256, raw_size,"
                    " raw, kind) VALUES (?, ?, ?, ?, 'expired', ?, ?, ?, ?, ?, '', ?, ?, ?, ?,"
                    " ?, ?, ?, ?, 'incident')",
                    (
                        key.sender,
                        key.identifier,
                        key.sent,
                        Decision.NEW.value,
                        source,
                        received_us,
                        received_us + self.dedup_floor // _US,
                        MESSAGE_PRIORITY,
                        record.msg_type,
                        record.event,
                        record.headline[:500],
                        record.sender_name,
                        json.dumps([record.channel] if record.channel else []),
                        received_us,
                        hashlib.sha256(raw).hexdigest(),
                        len(raw),
                        raw,
                    ),
                )
                admission = Admission(key, Decision.NEW)
                planned = list(plan(admission))
                entries, held = self._enqueue(
                    conn,
                    int(cursor.lastrowid or 0),
                    key,
                    planned=planned,
                    received_us=received_us,
                    ref_priority=None,
                )
                if entries and held == entries:
                    admission = Admission(
                        key, Decision.HELD, (), "every delivery waits for an operator"
                    )
                elif not entries:
                    admission = Admission(key, Decision.NEW, (), "no delivery planned")
                conn.execute(
                    "UPDATE alerts SET decision = ?, reason = ? WHERE sender = ? AND"
                    " identifier = ? AND sent = ?",
                    (
                        admission.decision.value,
                        admission.reason,
                        key.sender,
                        key.identifier,
                        key.sent,
                    ),
                )
                detail = f"{record.msg_type} {admission.decision.value} from {source}"
                if admission.reason:
                    detail += f": {admission.reason}"
                if entries:
                    detail += f"; {entries} deliveries ({held} held)"
                self._journal(conn, key, "admitted", detail)
        ADMISSIONS.inc(decision=admission.decision.value)
        log.info(
            "message_admitted",
            message=str(key),
            kind=record.msg_type,
            decision=admission.decision.value,
            source=source,
        )
        return admission

    def record_invalid(
        self, raw: bytes, *, source: str, received_at: datetime, reason: str
    ) -> None:
        """Keep a document that could not be admitted, keyed by its SHA-256."""
        key = invalid_key(raw)
        digest = key.identifier.removeprefix("sha256:")
        at = _us(received_at)
        kept = bytes(raw[: self.max_invalid_bytes])
        if len(kept) < len(raw):
            reason = f"{reason} (kept the first {len(kept)} of {len(raw)} bytes)"
        with self._write() as conn:
            conn.execute(
                "INSERT INTO invalid (digest, source, first_received_at, last_received_at,"
                " count, reason, raw) VALUES (?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT (digest) DO UPDATE SET count = count + 1,"
                " last_received_at = excluded.last_received_at",
                (digest, source, at, at, reason, kept),
            )
            self._journal(conn, key, "invalid", f"from {source}: {reason}")
        ADMISSIONS.inc(decision=Decision.INVALID.value)
        log.warning(
            "alert_invalid_recorded", digest=digest, source=source, reason=reason, size=len(raw)
        )

    # ------------------------------------------------------------------ alerts

    def seen(self, key: AlertKey) -> bool:
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM alerts WHERE sender = ? AND identifier = ? AND sent = ?",
                (key.sender, key.identifier, key.sent),
            ).fetchone()
        return row is not None

    def get(self, key: AlertKey) -> StoredAlert | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_ALERT_COLUMNS}, raw FROM alerts"  # noqa: S608 - constant columns
                " WHERE sender = ? AND identifier = ? AND sent = ?",
                (key.sender, key.identifier, key.sent),
            ).fetchone()
        return None if row is None else _row_to_alert(row, bytes(row["raw"]))

    def _select_alerts(
        self, where: str, params: Sequence[Any], *, with_raw: bool, order: str, limit: int | None
    ) -> list[StoredAlert]:
        columns = _ALERT_COLUMNS + (", raw" if with_raw else "")
        sql = f"SELECT {columns} FROM alerts WHERE {where} ORDER BY {order}"  # noqa: S608 - constant fragments
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_row_to_alert(r, bytes(r["raw"]) if with_raw else b"") for r in rows]

    def active(self, now: datetime, *, with_raw: bool = False) -> list[StoredAlert]:
        """Alerts in force at ``now``: not cancelled, superseded or expired, highest first.

        An alert whose ``expires`` has passed is left out even before :meth:`expire_alerts`
        has marked it.
        """
        return self._select_alerts(
            "status = 'active' AND (expires IS NULL OR expires > ?)",
            (_us(now),),
            with_raw=with_raw,
            order="priority, received_at, id",
            limit=None,
        )

    def alerts(
        self, *, limit: int = 100, before: datetime | None = None, with_raw: bool = False
    ) -> list[StoredAlert]:
        """The most recently received alerts, newest first (``before``: page backwards)."""
        where, params = (
            ("kind = 'cap'", ())
            if before is None
            else ("kind = 'cap' AND received_at < ?", (_us(before),))
        )
        return self._select_alerts(
            where, params, with_raw=with_raw, order="received_at DESC, id DESC", limit=limit
        )

    def expire_alerts(self, now: datetime) -> list[StoredAlert]:
        """Mark active alerts past their ``expires`` as expired; returns those just marked.

        An alert without ``expires`` stays active until updated or cancelled, and is expired
        here when its duplicate memory runs out (``received_at + dedup_floor``).
        """
        now_us = _us(now)
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE status = 'active' AND ("  # noqa: S608 - constant columns
                " (expires IS NOT NULL AND expires <= ?)"
                " OR (expires IS NULL AND forget_after <= ?)) ORDER BY id",
                (now_us, now_us),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE alerts SET status = 'expired', status_changed_at = ?,"
                    " deactivated_at = ? WHERE id = ?",
                    (now_us, now_us, row["id"]),
                )
                key = AlertKey(row["sender"], row["identifier"], row["sent"])
                self._journal(conn, key, "expired", "alert no longer in force", at=now)
        return [
            replace(_row_to_alert(row), status=AlertStatus.EXPIRED, status_changed_at=now)
            for row in rows
        ]

    def deactivated_since(self, since: datetime, *, limit: int = 1000) -> list[StoredAlert]:
        """Alerts that stopped being active after ``since`` (cancelled, superseded, expired).

        Ordered by the time they stopped (``status_changed_at``); the daemon keeps the last
        one's time as its cursor and clears their retained MQTT summaries. An alert that was
        never active (a Cancel message itself, one expired on receipt) is not listed.

        A page holds about ``limit`` alerts but never splits alerts that went out of force at
        the same instant (one ``expire_alerts`` call), so the cursor loses none of them.
        """
        since_us = _us(since)
        return self._select_alerts(
            "deactivated_at IS NOT NULL AND deactivated_at > ? AND deactivated_at <= COALESCE("
            " (SELECT deactivated_at FROM alerts WHERE deactivated_at > ?"
            "  ORDER BY deactivated_at LIMIT 1 OFFSET ?), 9223372036854775807)",
            (since_us, since_us, max(0, int(limit) - 1)),
            with_raw=False,
            order="deactivated_at, id",
            limit=None,
        )

    # ------------------------------------------------------------------ outbox

    def _entries(self, where: str, params: Sequence[Any], tail: str = "") -> list[OutboxEntry]:
        sql = (
            f"SELECT {_ENTRY_COLUMNS} FROM outbox o JOIN alerts a ON a.id = o.alert_id"  # noqa: S608 - constant fragments
            f" WHERE {where} {tail}"
        )
        with self._read() as conn:
            return [_row_to_entry(r) for r in conn.execute(sql, params).fetchall()]

    def deliveries(self, key: AlertKey) -> list[OutboxEntry]:
        return self._entries(
            "a.sender = ? AND a.identifier = ? AND a.sent = ?",
            (key.sender, key.identifier, key.sent),
            "ORDER BY o.id",
        )

    def entry(self, entry_id: int) -> OutboxEntry | None:
        found = self._entries("o.id = ?", (entry_id,))
        return found[0] if found else None

    def due(self, sink: str, now: datetime, limit: int = 1) -> list[OutboxEntry]:
        """Pending entries of ``sink`` whose next attempt is due, most urgent then oldest.

        Reads at most ``limit`` rows through the ``outbox_due`` index, whatever the backlog.
        """
        if limit < 1:
            return []
        return self._entries(
            "o.sink = ? AND o.state = 'pending' AND o.next_attempt_at <= ?",
            (sink, _us(now)),
            f"ORDER BY o.priority, o.enqueued_at, o.id LIMIT {int(limit)}",
        )

    def claim(
        self,
        sink: str,
        now: datetime,
        *,
        limit: int = 1,
        lease: timedelta = timedelta(seconds=60),
    ) -> list[OutboxEntry]:
        """Take due entries for delivery: :meth:`due`, with a lease on each entry taken.

        Each returned entry's next attempt moves to ``now + lease``, so a second worker (or
        a second instance on the same store) does not take it too; a worker that dies before
        :meth:`mark_delivered` / :meth:`mark_failed` leaves it to be retried when the lease
        runs out. The start of each attempt is journalled (``attempt_started``).
        """
        if limit < 1:
            return []
        until = now + lease
        # Not synced: a claim lost with the power only means the attempt is not known to
        # have started; the outcome that follows is written synced (and syncs this with it).
        with self._write(sync=False) as conn:
            rows = conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox o JOIN alerts a ON a.id = o.alert_id"  # noqa: S608 - constant columns
                " WHERE o.sink = ? AND o.state = 'pending' AND o.next_attempt_at <= ?"
                " ORDER BY o.priority, o.enqueued_at, o.id LIMIT ?",
                (sink, _us(now), int(limit)),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE outbox SET next_attempt_at = ?, updated_at = ?, started_at = ?"
                    " WHERE id = ?",
                    (_us(until), _us(now), _us(now), row["id"]),
                )
                self._journal(
                    conn,
                    AlertKey(row["sender"], row["identifier"], row["sent"]),
                    "attempt_started",
                    f"attempt {row['attempts'] + 1}, lease until {until.isoformat()}",
                    at=now,
                    entry_id=row["id"],
                    sink=sink,
                )
        return [replace(_row_to_entry(r), next_attempt_at=until, started_at=now) for r in rows]

    def release_claims(self, now: datetime) -> int:
        """Make every pending entry claimed by a process that is gone due at ``now``.

        Called when the (single) process using this store starts: an attempt that was under
        way at a crash is retried at once, not when its lease would have run out. The entry
        keeps ``started_at``: the sink may have received it, so an update or a cancel of the
        alert still goes to that sink.
        """
        now_us = _us(now)
        with self._write() as conn:
            count = conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, updated_at = ?"
                " WHERE state = 'pending' AND started_at IS NOT NULL AND next_attempt_at > ?",
                (now_us, now_us, now_us),
            ).rowcount
        if count:
            log.info("outbox_claims_released", entries=count)
        return int(count)

    def pending_count(self, sink: str | None = None) -> int:
        with self._read() as conn:
            if sink is None:
                row = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM outbox WHERE sink = ? AND state = 'pending'", (sink,)
                )
            return int(row.fetchone()[0])

    def outbox_counts(self) -> dict[tuple[str, EntryState], int]:
        """Entries per (sink, state), for the status page; also sets the gauge
        ``borderlink_outbox_entries`` (call it when metrics are scraped)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT sink, state, COUNT(*) AS n FROM outbox GROUP BY sink, state"
            ).fetchall()
        counts = {(r["sink"], EntryState(r["state"])): int(r["n"]) for r in rows}
        for sink in {s for s, _ in counts} | self._gauged_sinks:
            for state in EntryState:
                OUTBOX_ENTRIES.set(counts.get((sink, state), 0), sink=sink, state=state.value)
        self._gauged_sinks |= {s for s, _ in counts}
        return counts

    def _load_entry(self, conn: sqlite3.Connection, entry_id: int) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM outbox o JOIN alerts a ON a.id = o.alert_id"  # noqa: S608 - constant columns
            " WHERE o.id = ?",
            (entry_id,),
        ).fetchone()
        if row is None:
            msg = f"no outbox entry {entry_id}"
            raise EntryNotFoundError(msg)
        return row

    def _transition(
        self,
        entry_id: int,
        *,
        at: datetime,
        decide: Callable[[EntryState, sqlite3.Row], _Change],
    ) -> OutboxEntry:
        """Change one entry in one transaction; ``decide`` sees its current state first."""
        with self._write() as conn:
            updated, row, change = self._apply(conn, entry_id, at=at, decide=decide)
        self._changed(row, change)
        return updated

    def _apply(
        self,
        conn: sqlite3.Connection,
        entry_id: int,
        *,
        at: datetime,
        decide: Callable[[EntryState, sqlite3.Row], _Change],
    ) -> tuple[OutboxEntry, sqlite3.Row, _Change]:
        """One entry's change inside the caller's transaction."""
        row = self._load_entry(conn, entry_id)
        current = EntryState(row["state"])
        key = AlertKey(row["sender"], row["identifier"], row["sent"])
        change = decide(current, row)
        next_attempt = (
            _us(change.retry_at) if change.retry_at is not None else row["next_attempt_at"]
        )
        conn.execute(
            "UPDATE outbox SET state = ?, reason = ?, attempts = attempts + ?,"
            " next_attempt_at = ?, updated_at = ?, started_at = NULL WHERE id = ?",
            (
                change.state.value,
                change.reason,
                int(change.attempt),
                next_attempt,
                _us(at),
                entry_id,
            ),
        )
        detail = change.reason
        if current is not change.state:
            detail = f"{current.value} -> {change.state.value}: {change.reason}"
        self._journal(conn, key, change.event, detail, at=at, entry_id=entry_id, sink=row["sink"])
        return _row_to_entry(self._load_entry(conn, entry_id)), row, change

    @staticmethod
    def _changed(row: sqlite3.Row, change: _Change) -> None:
        OUTBOX_TRANSITIONS.inc(sink=row["sink"], state=change.state.value)
        log.info(
            "outbox_entry_changed",
            change=change.event,
            alert=str(AlertKey(row["sender"], row["identifier"], row["sent"])),
            entry=row["id"],
            sink=row["sink"],
            state=change.state.value,
            reason=change.reason,
        )

    def mark_delivered(self, entry_id: int, at: datetime) -> OutboxEntry:
        """Record a completed transmission.

        Accepted from any state but ``held`` and ``delivered``: a transmission that finished
        after its entry was superseded or expired did happen, and the audit trail says so.
        Marking an entry delivered twice is refused (it would hide a double transmission).
        """

        return self._transition(entry_id, at=at, decide=_decide_delivered)

    def mark_delivered_many(
        self, entry_ids: Sequence[int], at: datetime
    ) -> tuple[list[OutboxEntry], list[EntryStateError]]:
        """:meth:`mark_delivered` for a batch in one transaction (one disk sync).

        An entry the rule refuses (held, already delivered) is returned with its error and
        does not stop the others from being recorded.
        """
        done: list[tuple[OutboxEntry, sqlite3.Row, _Change]] = []
        refused: list[EntryStateError] = []
        with self._write() as conn:
            for entry_id in entry_ids:
                try:
                    done.append(self._apply(conn, entry_id, at=at, decide=_decide_delivered))
                except EntryStateError as exc:
                    refused.append(exc)
        for _entry, row, change in done:
            self._changed(row, change)
        return [entry for entry, _row, _change in done], refused

    def mark_failed(
        self,
        entry_id: int,
        reason: str,
        *,
        retry_at: datetime | None,
        at: datetime | None = None,
    ) -> OutboxEntry:
        """Record a failed attempt: retry at ``retry_at``, or fail for good when None.

        ``at`` is when the attempt failed (the ledger's clock when not given).

        An entry superseded or expired while its attempt was under way keeps that terminal
        state; the failed attempt is still counted and journalled.
        """

        def decide(current: EntryState, row: sqlite3.Row) -> _Change:
            if current in (EntryState.SUPERSEDED, EntryState.EXPIRED):
                note = f"{row['reason']}; last attempt failed: {reason}"
                return _Change(current, note, "attempt_failed", attempt=True)
            _require(current, row, (EntryState.PENDING,), "record a failed attempt")
            if retry_at is not None:
                return _Change(
                    EntryState.PENDING, reason, "retry_scheduled", attempt=True, retry_at=retry_at
                )
            return _Change(EntryState.FAILED, reason, "failed", attempt=True)

        return self._transition(entry_id, at=at or self._clock.now(), decide=decide)

    def expire_due(self, now: datetime) -> list[OutboxEntry]:
        """Mark pending and held entries whose ``expires`` passed; returns them."""
        now_us = _us(now)
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox o JOIN alerts a ON a.id = o.alert_id"  # noqa: S608 - constant columns
                " WHERE o.state IN (?, ?) AND o.expires IS NOT NULL AND o.expires <= ?"
                " ORDER BY o.id",
                (*_OPEN_STATES, now_us),
            ).fetchall()
            result: list[OutboxEntry] = []
            for row in rows:
                reason = f"expired at {_dt(row['expires']).isoformat()} before delivery"
                conn.execute(
                    "UPDATE outbox SET state = 'expired', reason = ?, updated_at = ? WHERE id = ?",
                    (reason, now_us, row["id"]),
                )
                key = AlertKey(row["sender"], row["identifier"], row["sent"])
                self._journal(
                    conn, key, "expired", reason, at=now, entry_id=row["id"], sink=row["sink"]
                )
                result.append(
                    replace(
                        _row_to_entry(row), state=EntryState.EXPIRED, reason=reason, updated_at=now
                    )
                )
        for item in result:
            OUTBOX_TRANSITIONS.inc(sink=item.sink, state=EntryState.EXPIRED.value)
            log.info("outbox_entry_expired", alert=str(item.key), entry=item.id, sink=item.sink)
        return result

    def holds(self, *, limit: int = 1000) -> list[OutboxEntry]:
        """Entries waiting for an operator, most urgent then oldest first."""
        return self._entries(
            "o.state = 'held'", (), f"ORDER BY o.priority, o.enqueued_at, o.id LIMIT {int(limit)}"
        )

    def approve(self, entry_id: int) -> OutboxEntry:
        """Release a held entry: it becomes pending and is due at once."""

        def decide(current: EntryState, row: sqlite3.Row) -> _Change:
            _require(current, row, (EntryState.HELD,), "approve")
            return _Change(EntryState.PENDING, "approved by operator", "approved")

        return self._transition(entry_id, at=self._clock.now(), decide=decide)

    def reject(self, entry_id: int, reason: str) -> OutboxEntry:
        """Refuse a held entry: it fails with ``rejected by operator: <reason>``."""

        def decide(current: EntryState, row: sqlite3.Row) -> _Change:
            _require(current, row, (EntryState.HELD,), "reject")
            return _Change(EntryState.FAILED, f"rejected by operator: {reason}", "rejected")

        return self._transition(entry_id, at=self._clock.now(), decide=decide)

    # ------------------------------------------------------------------ journal

    def journal(self, key: AlertKey, *, limit: int | None = None) -> list[JournalEntry]:
        """The audit trail of one alert (admission and every delivery change), oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM journal WHERE sender = ? AND identifier = ? AND sent = ?"
                " ORDER BY id LIMIT ?",
                (key.sender, key.identifier, key.sent, -1 if limit is None else int(limit)),
            ).fetchall()
        return [_row_to_journal(r) for r in rows]

    def journal_between(
        self, start: datetime, end: datetime, *, limit: int = 10_000
    ) -> list[JournalEntry]:
        """Audit lines with ``start <= at < end``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM journal WHERE at >= ? AND at < ? ORDER BY at, id LIMIT ?",
                (_us(start), _us(end), int(limit)),
            ).fetchall()
        return [_row_to_journal(r) for r in rows]

    def invalid_records(self, *, limit: int = 100) -> list[InvalidRecord]:
        """Documents refused as invalid, most recently received first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM invalid ORDER BY last_received_at DESC LIMIT ?", (int(limit),)
            ).fetchall()
        return [
            InvalidRecord(
                key=AlertKey("", "sha256:" + r["digest"], ""),
                digest=r["digest"],
                source=r["source"],
                first_received_at=_dt(r["first_received_at"]),
                last_received_at=_dt(r["last_received_at"]),
                count=r["count"],
                reason=r["reason"],
                raw=bytes(r["raw"]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ retention

    def prune(self, now: datetime) -> int:
        """Forget keys past ``max(expires, received_at + dedup_floor)``; returns how many.

        Never forgets an alert that is still active (call :meth:`expire_alerts` first, so
        the daemon learns it went out of force) or one with an entry still pending or held.
        Invalid documents are forgotten ``dedup_floor`` after last seen; journal lines after
        ``journal_retention``.
        """
        now_us = _us(now)
        floor_us = self.dedup_floor // _US
        with self._write() as conn:
            alerts = conn.execute(
                "DELETE FROM alerts WHERE forget_after <= ? AND status != 'active'"
                " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = alerts.id"
                "   AND o.state IN (?, ?))",
                (now_us, *_OPEN_STATES),
            ).rowcount
            invalid = conn.execute(
                "DELETE FROM invalid WHERE last_received_at <= ?", (now_us - floor_us,)
            ).rowcount
            journal = conn.execute(
                "DELETE FROM journal WHERE at < ?",
                (now_us - self.journal_retention // _US,),
            ).rowcount
        if alerts or invalid or journal:
            log.info("ledger_pruned", alerts=alerts, invalid=invalid, journal_lines=journal)
        return int(alerts) + int(invalid)
