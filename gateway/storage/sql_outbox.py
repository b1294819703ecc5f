"""The outbox transactions of the SQL ledgers: claims, changes by the state machine of
:mod:`gateway.ledger` (:func:`~gateway.ledger.delivered`, :func:`~gateway.ledger.failed`,
...), expiry.

Every function here runs inside a transaction the caller opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.ledger import (
    OPEN_STATES,
    Change,
    EntryNotFoundError,
    EntryState,
    OutboxEntry,
)
from gateway.storage.sql_rows import (
    ENTRY_COLUMNS,
    Connection,
    Row,
    dt,
    journal,
    row_to_entry,
    us,
)

__all__ = ["apply", "claim", "expire_due", "load_entry", "release_claims"]

_FROM = "FROM outbox o JOIN alerts a ON a.id = o.alert_id"
_OPEN = tuple(s.value for s in OPEN_STATES)


def load_entry(conn: Connection, entry_id: int) -> OutboxEntry:
    row: Row | None = conn.execute(
        f"SELECT {ENTRY_COLUMNS} {_FROM} WHERE o.id = ?",
        (entry_id,),
    ).fetchone()
    if row is None:
        msg = f"no outbox entry {entry_id}"
        raise EntryNotFoundError(msg)
    return row_to_entry(row)


def claim(
    conn: Connection,
    sink: str,
    now: datetime,
    *,
    limit: int,
    lease: timedelta,
    lock: str = "",
) -> list[OutboxEntry]:
    """Due pending entries of ``sink``, most urgent then oldest, each leased to the caller
    until ``now + lease`` and marked as under way. ``lock`` is the backend's row lock
    (PostgreSQL: ``FOR UPDATE OF o SKIP LOCKED``, so concurrent workers of several instances
    never take the same entry)."""
    until = now + lease
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} {_FROM}"
        " WHERE o.sink = ? AND o.state = 'pending' AND o.next_attempt_at <= ?"
        f" ORDER BY o.priority, o.enqueued_at, o.id LIMIT ?{lock}",
        (sink, us(now), int(limit)),
    ).fetchall()
    taken: list[OutboxEntry] = []
    for row in rows:
        # The attempt is counted (and journalled) before the bytes leave: an attempt cut
        # short by a crash still counts.
        conn.execute(
            "UPDATE outbox SET next_attempt_at = ?, updated_at = ?, started_at = ?,"
            " attempts = attempts + 1 WHERE id = ?",
            (us(until), us(now), us(now), row["id"]),
        )
        entry = row_to_entry(row)
        attempt = entry.attempts + 1
        journal(
            conn,
            now,
            entry.key,
            "attempt_started",
            f"attempt {attempt}, lease until {until.isoformat()}",
            entry_id=entry.id,
            sink=sink,
        )
        taken.append(replace(entry, next_attempt_at=until, started_at=now, attempts=attempt))
    return taken


def release_claims(
    conn: Connection,
    now: datetime,
    in_doubt: Callable[[str], str],
    *,
    shared: bool = False,
) -> list[tuple[OutboxEntry, str]]:
    """Resolve every pending entry whose attempt was under way (its lease still running)
    when its process stopped.

    Such an attempt may or may not have reached the sink (**in doubt**). ``in_doubt(sink)``
    says what the sink wants: ``resend`` (due at once; the sink may see it twice, with the
    same delivery id), ``hold`` (an operator decides), ``skip`` (failed, not sent again).
    Each resolution is journalled. Returns the entries with their resolution.

    A store used by one process (SQLite) releases every claim still leased (the process that
    held them is the one starting). A ``shared`` store (several instances) releases only
    claims whose lease ran out: those of an instance that died; a live instance's are left.
    """
    now_us = us(now)
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} {_FROM}"
        " WHERE o.state = 'pending' AND o.started_at IS NOT NULL"
        f" AND o.next_attempt_at {'<=' if shared else '>'} ? ORDER BY o.id",
        (now_us,),
    ).fetchall()
    resolved: list[tuple[OutboxEntry, str]] = []
    for row in rows:
        entry = row_to_entry(row)
        policy = in_doubt(entry.sink)
        doubt = f"in doubt after a restart: attempt {entry.attempts} may have reached the sink"
        if policy == "hold":
            # The operator who approves it must know the copy may already be out.
            state, reason = (
                EntryState.HELD,
                f"{doubt}: approving sends it again, perhaps a second time (in_doubt = hold)",
            )
        elif policy == "skip":
            state, reason = EntryState.FAILED, f"{doubt}; not sent again (in_doubt = skip)"
        else:
            state, reason = EntryState.PENDING, entry.reason
        # The claim ends here (its attempt stays counted, so the entry still counts as
        # attempted: an update or cancel of the alert goes to this sink too).
        conn.execute(
            "UPDATE outbox SET state = ?, reason = ?, next_attempt_at = ?, updated_at = ?,"
            " started_at = NULL WHERE id = ?",
            (state.value, reason, now_us, now_us, entry.id),
        )
        detail = (
            reason if policy in ("hold", "skip") else f"{doubt}; sent again (in_doubt = resend)"
        )
        journal(conn, now, entry.key, "in_doubt", detail, entry_id=entry.id, sink=entry.sink)
        resolved.append((replace(entry, state=state, reason=reason), policy))
    return resolved


def apply(
    conn: Connection,
    entry_id: int,
    *,
    at: datetime,
    decide: Callable[[OutboxEntry], Change],
) -> tuple[OutboxEntry, OutboxEntry, Change]:
    """One entry's change: ``decide`` sees the entry as stored and names the change (or
    raises :class:`~gateway.ledger.EntryStateError`). Returns (after, before, change)."""
    before = load_entry(conn, entry_id)
    change = decide(before)
    next_attempt = change.retry_at if change.retry_at is not None else before.next_attempt_at
    # An attempt taken by claim() was counted then; one reported without a claim counts now.
    counted = change.attempt and before.started_at is None
    conn.execute(
        "UPDATE outbox SET state = ?, reason = ?, attempts = attempts + ?,"
        " next_attempt_at = ?, updated_at = ?, started_at = NULL WHERE id = ?",
        (
            change.state.value,
            change.reason,
            int(counted),
            us(next_attempt),
            us(at),
            entry_id,
        ),
    )
    detail = change.reason
    if before.state is not change.state:
        detail = f"{before.state.value} -> {change.state.value}: {change.reason}"
    journal(conn, at, before.key, change.event, detail, entry_id=entry_id, sink=before.sink)
    return load_entry(conn, entry_id), before, change


def expire_due(conn: Connection, now: datetime) -> list[OutboxEntry]:
    """Pending and held entries whose ``expires`` passed, marked expired."""
    now_us = us(now)
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} {_FROM}"
        " WHERE o.state IN (?, ?) AND o.expires IS NOT NULL AND o.expires <= ? ORDER BY o.id",
        (*_OPEN, now_us),
    ).fetchall()
    result: list[OutboxEntry] = []
    for row in rows:
        reason = f"expired at {dt(row['expires']).isoformat()} before delivery"
        conn.execute(
            "UPDATE outbox SET state = 'expired', reason = ?, updated_at = ? WHERE id = ?",
            (reason, now_us, row["id"]),
        )
        entry = row_to_entry(row)
        journal(conn, now, entry.key, "expired", reason, entry_id=entry.id, sink=entry.sink)
        result.append(replace(entry, state=EntryState.EXPIRED, reason=reason, updated_at=now))
    return result
