"""The outbox transactions of the SQL ledgers: claims, changes by the state machine of
:mod:`gateway.ledger` (:func:`~gateway.ledger.delivered`, :func:`~gateway.ledger.failed`,
...), expiry.

Every function here runs inside a transaction the caller opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.ledger import (
    OPEN_STATES,
    Change,
    EntryNotFoundError,
    EntryState,
    EntryStateError,
    LateResultError,
    OutboxEntry,
)
from gateway.storage.sql_rows import (
    ENTRY_COLUMNS,
    Connection,
    Row,
    dt,
    journal,
    journal_lines,
    row_to_entry,
    us,
)

__all__ = ["apply", "claim", "expire_due", "load_entries", "load_entry", "release_claims"]

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


def load_entries(conn: Connection, entry_ids: Sequence[int]) -> dict[int, OutboxEntry]:
    """The stored entries of ``entry_ids`` (one statement; those not found are missing)."""
    if not entry_ids:
        return {}
    marks = ", ".join("?" for _ in entry_ids)
    rows: list[Row] = conn.execute(
        f"SELECT {ENTRY_COLUMNS} {_FROM} WHERE o.id IN ({marks})",
        tuple(entry_ids),
    ).fetchall()
    return {row["id"]: row_to_entry(row) for row in rows}


def claim(
    conn: Connection,
    sink: str,
    now: datetime,
    *,
    limit: int,
    lease: timedelta,
    lock: str = "",
    by: str = "",
) -> list[OutboxEntry]:
    """Due pending entries of ``sink`` that nobody holds, most urgent then oldest, each
    leased to ``by`` (the claiming instance) until ``now + lease`` and marked as under way.
    ``lock`` is the backend's row lock (PostgreSQL: ``FOR UPDATE OF o SKIP LOCKED``, so
    concurrent workers of several instances never take the same entry).

    An entry under way stays taken until its outcome is recorded or
    :func:`release_claims` settles it: a claim whose lease ran out is in doubt, and its
    sink's policy decides, never a second worker by chance."""
    until = now + lease
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} {_FROM}"
        " WHERE o.sink = ? AND o.state = 'pending' AND o.next_attempt_at <= ?"
        " AND o.started_at IS NULL"
        f" ORDER BY o.priority, o.enqueued_at, o.id LIMIT ?{lock}",
        (sink, us(now), int(limit)),
    ).fetchall()
    if not rows:
        return []
    # The attempt is counted (and journalled) before the bytes leave: an attempt cut short
    # by a crash still counts. One statement for the batch, and one for its journal lines.
    marks = ", ".join("?" for _ in rows)
    conn.execute(
        "UPDATE outbox SET next_attempt_at = ?, updated_at = ?, started_at = ?,"  # noqa: S608 - placeholders only
        f" claimed_by = ?, attempts = attempts + 1 WHERE id IN ({marks})",
        (us(until), us(now), us(now), by, *(row["id"] for row in rows)),
    )
    taken: list[OutboxEntry] = []
    lines: list[tuple[object, ...]] = []
    holder = f" by {by}" if by else ""
    lease_end = until.isoformat()
    for row in rows:
        entry = row_to_entry(row)
        attempt = entry.attempts + 1
        journal(
            conn,
            now,
            entry.key,
            "attempt_started",
            f"attempt {attempt}{holder}, lease until {lease_end}",
            entry_id=entry.id,
            sink=sink,
            into=lines,
        )
        taken.append(
            replace(entry, next_attempt_at=until, started_at=now, attempts=attempt, claimed_by=by)
        )
    journal_lines(conn, lines)
    return taken


def release_claims(
    conn: Connection,
    now: datetime,
    in_doubt: Callable[[str], str],
    *,
    shared: bool = False,
    owner: str | None = None,
    silent_after: timedelta | None = None,
    lock: str = "",
) -> list[tuple[OutboxEntry, str]]:
    """Settle the attempts whose outcome will never be reported: each is **in doubt** (it
    may or may not have reached its sink).

    Which claims: those whose lease ran out; with ``owner`` (an instance starting), also
    every claim of that instance (it is the one starting, so none of its attempts is still
    under way) -- on a store only one process uses, every claim; on a ``shared`` store with
    ``silent_after``, also the claims of an instance whose heartbeat is older than the
    newest heartbeat by more than that (measured against its peers, so an outage of the
    store that silences every instance alike condemns none).

    ``in_doubt(sink)`` says what the sink wants: ``resend`` (due at once; the sink may see
    it twice, with the same delivery id), ``hold`` (an operator decides), ``skip`` (failed,
    not sent again). Each resolution is journalled. Returns the entries with their
    resolution.
    """
    now_us = us(now)
    which = ["o.next_attempt_at <= ?"]
    params: list[object] = [now_us]
    if owner is not None:
        if shared:
            which.append("o.claimed_by = ?")
            params.append(owner)
        else:
            which.append("1 = 1")
    if shared and silent_after is not None:
        which.append(
            "o.claimed_by IN (SELECT name FROM instances"
            " WHERE last_seen < (SELECT MAX(last_seen) FROM instances) - ?)"
        )
        params.append(silent_after // timedelta(microseconds=1))
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} {_FROM}"
        " WHERE o.state = 'pending' AND o.started_at IS NOT NULL"
        f" AND ({' OR '.join(which)}) ORDER BY o.id{lock}",
        tuple(params),
    ).fetchall()
    resolved: list[tuple[OutboxEntry, str]] = []
    for row in rows:
        entry = row_to_entry(row)
        policy = in_doubt(entry.sink)
        holder = f" by {entry.claimed_by}" if entry.claimed_by else ""
        doubt = (
            f"in doubt: attempt {entry.attempts}{holder} may have reached the sink"
            " and its outcome was never recorded"
        )
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
            " started_at = NULL, claimed_by = '' WHERE id = ?",
            (state.value, reason, now_us, now_us, entry.id),
        )
        detail = (
            reason if policy in ("hold", "skip") else f"{doubt}; sent again (in_doubt = resend)"
        )
        journal(conn, now, entry.key, "in_doubt", detail, entry_id=entry.id, sink=entry.sink)
        resolved.append(
            (replace(entry, state=state, reason=reason, started_at=None, claimed_by=""), policy)
        )
    return resolved


def apply(
    conn: Connection,
    entry_id: int,
    *,
    at: datetime,
    decide: Callable[[OutboxEntry], Change],
    claimed_at: datetime | None = None,
    stored: OutboxEntry | None = None,
) -> tuple[OutboxEntry, OutboxEntry, Change]:
    """One entry's change: ``decide`` sees the entry as stored and names the change (or
    raises :class:`~gateway.ledger.EntryStateError`). Returns (after, before, change).

    ``claimed_at`` fences the outcome of an attempt taken by :func:`claim` (its
    ``started_at``): when the entry's claim is no longer that one, the outcome is late. A
    late delivery of an entry nobody holds now is recorded (the doubt is settled: it went
    out; a copy held in doubt is not sent again); any other late outcome is journalled and
    refused with :class:`LateResultError`. ``stored``: the entry as read in this
    transaction already (:func:`load_entries`)."""
    before = load_entry(conn, entry_id) if stored is None else stored
    if claimed_at is not None and (
        before.started_at is None or us(before.started_at) != us(claimed_at)
    ):
        change = _late(conn, before, at=at, decide=decide)
    else:
        change = decide(before)
    next_attempt = change.retry_at if change.retry_at is not None else before.next_attempt_at
    # An attempt taken by claim() was counted then; one reported without a claim counts now.
    counted = change.attempt and before.started_at is None and claimed_at is None
    conn.execute(
        "UPDATE outbox SET state = ?, reason = ?, attempts = attempts + ?,"
        " next_attempt_at = ?, updated_at = ?, started_at = NULL, claimed_by = ''"
        " WHERE id = ?",
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
    # The row as the UPDATE left it (times through the store's microseconds, as a read gives
    # them back), without reading it again.
    after = replace(
        before,
        state=change.state,
        reason=change.reason,
        attempts=before.attempts + int(counted),
        next_attempt_at=dt(us(next_attempt)),
        updated_at=dt(us(at)),
        started_at=None,
        claimed_by="",
    )
    return after, before, change


def _late(
    conn: Connection,
    before: OutboxEntry,
    *,
    at: datetime,
    decide: Callable[[OutboxEntry], Change],
) -> Change:
    """The change a late outcome makes (see :func:`apply`), or LateResultError."""
    try:
        change = decide(replace(before, state=EntryState.PENDING))
    except EntryStateError:
        change = None
    nobody = before.started_at is None and before.state in OPEN_STATES
    if change is not None and change.state is EntryState.DELIVERED and nobody:
        return Change(
            EntryState.DELIVERED,
            "the attempt in doubt had reached the sink (its outcome came late)",
            "delivered",
            attempt=True,
        )
    what = (
        "delivered" if change is not None and change.state is EntryState.DELIVERED else ("failed")
    )
    holder = f" (now held by {before.claimed_by})" if before.started_at is not None else ""
    msg = (
        f"entry {before.id}: a late outcome ({what}) of an attempt whose claim was already"
        f" settled; left {before.state.value}{holder}"
    )
    journal(conn, at, before.key, "late_outcome", msg, entry_id=before.id, sink=before.sink)
    raise LateResultError(msg)


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
