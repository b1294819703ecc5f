"""The SQLite schema of the ledger and its migrations.

Each migration is a numbered list of statements applied in one transaction; the number of the
last one applied is kept in ``schema_version``. A database written by a newer borderlink (a
version this code does not know) is refused rather than guessed at.

Times are INTEGER microseconds since 1970-01-01 UTC so that they compare and index as numbers.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

_V1 = (
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        decision TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('active', 'cancelled', 'superseded', 'expired')),
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        expires INTEGER,
        forget_after INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        msg_type TEXT NOT NULL,
        cap_status TEXT NOT NULL,
        event TEXT NOT NULL DEFAULT '',
        severity TEXT NOT NULL DEFAULT '',
        urgency TEXT NOT NULL DEFAULT '',
        headline TEXT NOT NULL DEFAULT '',
        sender_name TEXT NOT NULL DEFAULT '',
        areas TEXT NOT NULL DEFAULT '[]',
        refs TEXT NOT NULL DEFAULT '[]',
        superseded_by TEXT,
        status_changed_at INTEGER,
        deactivated_at INTEGER,
        raw_sha256 TEXT NOT NULL,
        raw_size INTEGER NOT NULL,
        raw BLOB NOT NULL,
        UNIQUE (sender, identifier, sent)
    )
    """,
    "CREATE INDEX alerts_status_expires ON alerts (status, expires)",
    "CREATE INDEX alerts_forget_after ON alerts (forget_after)",
    "CREATE INDEX alerts_received_at ON alerts (received_at)",
    "CREATE INDEX alerts_deactivated_at ON alerts (deactivated_at)",
    """
    CREATE TABLE alert_refs (
        alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        PRIMARY KEY (alert_id, sender, identifier, sent)
    )
    """,
    "CREATE INDEX alert_refs_target ON alert_refs (sender, identifier, sent)",
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        sink TEXT NOT NULL,
        route TEXT NOT NULL,
        content_type TEXT NOT NULL,
        attributes TEXT NOT NULL,
        parts BLOB NOT NULL,
        priority INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL,
        expires INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'held', 'delivered', 'superseded', 'expired', 'failed')),
        reason TEXT NOT NULL DEFAULT '',
        updated_at INTEGER NOT NULL,
        UNIQUE (alert_id, sink)
    )
    """,
    "CREATE INDEX outbox_due ON outbox (sink, state, priority, enqueued_at)",
    "CREATE INDEX outbox_state_expires ON outbox (state, expires)",
    """
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        entry_id INTEGER,
        sink TEXT
    )
    """,
    "CREATE INDEX journal_key ON journal (sender, identifier, sent, id)",
    "CREATE INDEX journal_at ON journal (at)",
    """
    CREATE TABLE invalid (
        digest TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        first_received_at INTEGER NOT NULL,
        last_received_at INTEGER NOT NULL,
        count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        raw BLOB NOT NULL
    )
    """,
    "CREATE INDEX invalid_last_received_at ON invalid (last_received_at)",
)

# 2: when the current attempt of an entry started (set by claim, cleared by its outcome), so
# an update or cancel can tell a delivery under way from one never begun.
_V2 = ("ALTER TABLE outbox ADD COLUMN started_at INTEGER",)

# 3: what a row of ``alerts`` holds: a CAP alert, or an inbound incident / radio message that
# is admitted, deduplicated and routed through the same outbox (never listed as an alert).
_V3 = (
    "ALTER TABLE alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'cap'",
    "CREATE INDEX alerts_kind_received_at ON alerts (kind, received_at)",
)

# 4: provenance -- where an alert came from and why it is believed (the trust level of its
# door, its signature and signer, the operator who approved it), and whether the withdrawals
# of an update or cancel wait for an operator's approval. Rows from before are anonymous.
_V4 = (
    "ALTER TABLE alerts ADD COLUMN trust TEXT NOT NULL DEFAULT 'anonymous'",
    "ALTER TABLE alerts ADD COLUMN door TEXT NOT NULL DEFAULT 'anonymous'",
    "ALTER TABLE alerts ADD COLUMN signature TEXT NOT NULL DEFAULT 'unsigned'",
    "ALTER TABLE alerts ADD COLUMN signer TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE alerts ADD COLUMN approved_by TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE alerts ADD COLUMN pending_refs INTEGER NOT NULL DEFAULT 0",
)

# 5: coordination of several instances on one ledger: who is alive (``instances``) and who
# leads each once-only task (``leases``: a holder until a time, and a token that grows at
# every takeover, so a deposed leader's late result can be told apart).
_V5 = (
    """
    CREATE TABLE instances (
        name TEXT PRIMARY KEY,
        started_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        leads TEXT NOT NULL DEFAULT '[]'
    )
    """,
    """
    CREATE TABLE leases (
        task TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until INTEGER NOT NULL,
        token INTEGER NOT NULL
    )
    """,
)

# 6: who holds each claim (the instance's name), so that an instance starting again settles
# its own attempts at once and others settle those of an instance gone silent.
_V6 = ("ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT ''",)

# 7: one identity across feeds -- the event each alert belongs to (the key of the event's
# first copy), the rule that linked it there and the copy it matched (gateway.identity), and
# the identity keys (VTEC, SAME, chain, window) by which later copies find it.
IDENTITY_VERSION = 7


def identity_migration(id_type: str) -> tuple[str, ...]:
    """The statements of the identity migration (PostgreSQL's too, with ``BIGINT`` ids)."""
    return (
        "ALTER TABLE alerts ADD COLUMN event_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE alerts ADD COLUMN event_rule TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE alerts ADD COLUMN event_match TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX alerts_event_key ON alerts (event_key)",
        f"""
        CREATE TABLE identity_keys (
            key TEXT NOT NULL,
            alert_id {id_type} NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
            PRIMARY KEY (key, alert_id)
        )
        """,
        "CREATE INDEX identity_keys_alert ON identity_keys (alert_id)",
    )


_V7 = identity_migration("INTEGER")

# 8: failed console logins, per account name and per remote address (``key``: "name:..." or
# "remote:..."), so that the lockout holds across a restart and across the instances that
# share one ledger (gateway.console.lockout). Pruned after LOGIN_FAILURE_RETENTION.
LOGIN_FAILURES_VERSION = 8


def login_failures_migration(id_type: str) -> tuple[str, ...]:
    """The statements of the login-failures migration (PostgreSQL's too, ``BIGINT`` times)."""
    return (
        f"""
        CREATE TABLE login_failures (
            key TEXT NOT NULL,
            at {id_type} NOT NULL
        )
        """,
        "CREATE INDEX login_failures_key_at ON login_failures (key, at)",
        "CREATE INDEX login_failures_at ON login_failures (at)",
    )


_V8 = login_failures_migration("INTEGER")

# version -> statements; append new versions, never edit a released one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: _V1,
    2: _V2,
    3: _V3,
    4: _V4,
    5: _V5,
    6: _V6,
    IDENTITY_VERSION: _V7,
    LOGIN_FAILURES_VERSION: _V8,
}
LATEST = max(MIGRATIONS)


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer schema than this code knows."""


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """The migrations applied to the database (empty for a new one)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return set()
    return {int(r[0]) for r in conn.execute("SELECT version FROM schema_version")}


def current_version(conn: sqlite3.Connection) -> int:
    return max(applied_versions(conn), default=0)


def _known_version(conn: sqlite3.Connection) -> int:
    found = current_version(conn)
    if found > LATEST:
        msg = f"ledger schema version {found} is newer than this software ({LATEST})"
        raise SchemaTooNewError(msg)
    return found


def migrate(conn: sqlite3.Connection, *, now: datetime | None = None) -> int:
    """Apply every migration the database lacks; returns the (highest) version found before.

    The connection must be in autocommit mode (``isolation_level=None``): every step runs in
    its own ``BEGIN IMMEDIATE`` transaction so that two processes opening the same file at
    once do not both apply it.
    """
    stamp = int(((now or datetime.now(UTC)).timestamp()) * 1_000_000)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        )
        found = _known_version(conn)
        applied = applied_versions(conn)
        # Every known version not applied yet, in order -- also one below the highest
        # applied: versions numbered by changes made side by side may meet a database in
        # either order (each touches only its own columns and tables).
        for version in sorted(v for v in MIGRATIONS if v not in applied):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, stamp),
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found
