"""What the SQL backends of the ledger share: the connection they write through, row codecs
(times, delivery parts, keys, rows to the ledger's records) and the journal writer.

The transactions of :mod:`~gateway.storage.sql_admission` and
:mod:`~gateway.storage.sql_outbox` are written once, in SQL that SQLite and PostgreSQL both
speak, against :class:`Connection`: ``?`` and ``:name`` parameters, rows read by column name,
``RETURNING id`` for new rows. Each backend hands them a connection of that shape.

Times are INTEGER microseconds since 1970-01-01 UTC, so that they compare and index as numbers.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from cap_schemas.model import Alert, AlertKey
from gateway.ledger import (
    AlertStatus,
    Decision,
    EntryState,
    JournalEntry,
    Known,
    OutboxEntry,
    Provenance,
    StoredAlert,
)


class Row(Protocol):
    """A result row, read by column name."""

    def __getitem__(self, key: str) -> Any: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the shared transactions use of a backend's connection."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
_LEN = struct.Struct(">I")


def us(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"time {value.isoformat()} has no timezone"
        raise ValueError(msg)
    return (value - EPOCH) // US


def opt_us(value: datetime | None) -> int | None:
    return None if value is None else us(value)


def dt(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def opt_dt(value: int | None) -> datetime | None:
    return None if value is None else dt(value)


def pack_parts(parts: Sequence[bytes]) -> bytes:
    out = bytearray()
    for part in parts:
        data = bytes(part)
        out += _LEN.pack(len(data))
        out += data
    return bytes(out)


def unpack_parts(blob: bytes) -> tuple[bytes, ...]:
    parts: list[bytes] = []
    offset = 0
    while offset < len(blob):
        (size,) = _LEN.unpack_from(blob, offset)
        offset += _LEN.size
        parts.append(bytes(blob[offset : offset + size]))
        offset += size
    return tuple(parts)


def key_json(keys: Sequence[AlertKey]) -> str:
    if not keys:
        return "[]"
    return json.dumps([[k.sender, k.identifier, k.sent] for k in keys])


def keys_from_json(text: str) -> tuple[AlertKey, ...]:
    return tuple(AlertKey(s, i, t) for s, i, t in json.loads(text))


def summary_fields(alert: Alert) -> dict[str, Any]:
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


ALERT_COLUMNS = (
    "id, sender, identifier, sent, decision, status, reason, source, received_at, expires, "
    "priority, msg_type, cap_status, event, severity, urgency, headline, sender_name, areas, "
    "refs, superseded_by, status_changed_at, raw_sha256, raw_size, trust, door, signature, "
    "signer, approved_by, pending_refs, event_key, event_rule, event_match"
)
ENTRY_COLUMNS = (
    "o.id, o.sink, o.route, o.content_type, o.attributes, o.parts, o.priority, o.enqueued_at, "
    "o.expires, o.attempts, o.next_attempt_at, o.state, o.reason, o.updated_at, o.started_at, "
    "o.claimed_by, a.sender, a.identifier, a.sent"
)


def row_to_alert(row: Row, raw: bytes = b"") -> StoredAlert:
    superseded_by = row["superseded_by"]
    return StoredAlert(
        key=AlertKey(row["sender"], row["identifier"], row["sent"]),
        raw=raw,
        decision=Decision(row["decision"]),
        source=row["source"],
        received_at=dt(row["received_at"]),
        expires=opt_dt(row["expires"]),
        status=AlertStatus(row["status"]),
        msg_type=row["msg_type"],
        cap_status=row["cap_status"],
        event=row["event"],
        severity=row["severity"],
        urgency=row["urgency"],
        headline=row["headline"],
        sender_name=row["sender_name"],
        areas=tuple(json.loads(row["areas"])),
        references=keys_from_json(row["refs"]),
        reason=row["reason"],
        priority=row["priority"],
        superseded_by=None if superseded_by is None else keys_from_json(superseded_by)[0],
        status_changed_at=opt_dt(row["status_changed_at"]),
        raw_size=row["raw_size"],
        raw_sha256=row["raw_sha256"],
        provenance=Provenance(
            source=row["source"],
            door=row["door"],
            signature=row["signature"],
            signer=row["signer"],
            approved_by=row["approved_by"],
        ),
        pending_refs=bool(row["pending_refs"]),
        event_key=row["event_key"],
        event_rule=row["event_rule"],
        event_match=row["event_match"],
    )


def row_to_entry(row: Row) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        key=AlertKey(row["sender"], row["identifier"], row["sent"]),
        sink=row["sink"],
        route=row["route"],
        parts=unpack_parts(row["parts"]),
        content_type=row["content_type"],
        attributes=MappingProxyType(json.loads(row["attributes"])),
        priority=row["priority"],
        enqueued_at=dt(row["enqueued_at"]),
        expires=opt_dt(row["expires"]),
        attempts=row["attempts"],
        next_attempt_at=dt(row["next_attempt_at"]),
        state=EntryState(row["state"]),
        reason=row["reason"],
        updated_at=opt_dt(row["updated_at"]),
        started_at=opt_dt(row["started_at"]),
        claimed_by=row["claimed_by"],
    )


def row_to_journal(row: Row) -> JournalEntry:
    return JournalEntry(
        id=row["id"],
        at=dt(row["at"]),
        key=AlertKey(row["sender"], row["identifier"], row["sent"]),
        event=row["event"],
        detail=row["detail"],
        entry_id=row["entry_id"],
        sink=row["sink"],
    )


KNOWN_COLUMNS = (
    "id, sender, identifier, sent, msg_type, status, priority, source, received_at, raw_sha256,"
    " trust, event, event_key"
)


def row_key(row: Row) -> AlertKey:
    return AlertKey(row["sender"], row["identifier"], row["sent"])


def row_to_known(row: Row, reached: Sequence[tuple[str, str]] = ()) -> Known:
    return Known(
        key=row_key(row),
        msg_type=row["msg_type"],
        status=AlertStatus(row["status"]),
        priority=row["priority"],
        source=row["source"],
        received_at=dt(row["received_at"]),
        raw_sha256=row["raw_sha256"],
        reached=tuple(reached),
        trust=row["trust"],
        event=row["event"],
        event_key=row["event_key"],
    )


_JOURNAL_INSERT = (
    "INSERT INTO journal (at, sender, identifier, sent, event, detail, entry_id, sink)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def journal_lines(conn: Connection, lines: Sequence[tuple[object, ...]]) -> None:
    """Append the lines :func:`journal` kept back (``into``) in one statement, inside the
    caller's transaction."""
    if lines:
        conn.executemany(_JOURNAL_INSERT, lines)


def journal(
    conn: Connection,
    at: datetime,
    key: AlertKey,
    event: str,
    detail: str = "",
    *,
    entry_id: int | None = None,
    sink: str | None = None,
    into: list[tuple[object, ...]] | None = None,
) -> None:
    """Append one line to the audit trail, inside the caller's transaction; with ``into``,
    keep it there for :func:`journal_lines` to append with others."""
    line = (us(at), key.sender, key.identifier, key.sent, event, detail, entry_id, sink)
    if into is None:
        conn.execute(_JOURNAL_INSERT, line)
    else:
        into.append(line)
