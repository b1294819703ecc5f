"""The embedded ledger: one SQLite file in WAL mode, ``synchronous=FULL``.

:class:`SqliteLedger` holds the connections and their locks and runs each read and change
in its own transaction (an admission batch: one transaction, each admission in a savepoint);
the queries and transactions are :class:`~gateway.storage.sql.
SqlLedger`'s (shared with PostgreSQL), the schema is in :mod:`~gateway.storage.sqlite_schema`.
Admission itself (decide, plan, record) is :class:`gateway.ledger.LedgerBase`'s.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from gateway.adapter import SystemClock
from gateway.ledger import Facts, LedgerError, LedgerSchemaError
from gateway.storage import sqlite_schema
from gateway.storage.sql import SqlLedger

__all__ = ["SqliteLedger"]

# The version of facts read inside an admission batch (``PRAGMA data_version`` is positive).
_IN_BATCH = -1
# The ledger's work runs on the caller's thread (see works_inline) while a synced commit
# takes less than this on average (the disk of a server or a workstation: well under a
# millisecond; an SD card or a network file system: tens of milliseconds, better waited for
# off the event loop). The average weighs each new commit by _SYNC_WEIGHT.
INLINE_SYNC_LIMIT = 0.002
_SYNC_WEIGHT = 0.2

log = structlog.get_logger(__name__)


class _Now(Protocol):
    def now(self) -> datetime: ...


class SqliteLedger(SqlLedger):
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

    A delivery's outcome is committed without waiting for the disk (``_outcome_sync``):
    the next admission's synced commit, or :meth:`sync` soon after, makes it durable.
    """

    _outcome_sync = False

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
        super().__init__()
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._writer: int | None = None  # thread inside a write transaction
        self._batching = False  # that write is an admission batch (admission_batch)
        self._closed = False
        # Commits made, how many of them are known durable, and the last one that recorded
        # delivery outcomes (see sync()).
        self._commits = 0
        self._synced = 0
        self._sync_seconds = 0.0  # the weighted average of a synced commit's time
        self._outcomes = 0
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
            # An admission batch records each admission in a savepoint of its own; SQLite
            # keeps what a savepoint would roll back in a statement journal, which spills to
            # a temporary file past 64 KiB: about 40 writes of a page per alert. In memory it
            # costs the pages the batch changed, once.
            conn.execute("PRAGMA temp_store=MEMORY")
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

    def sync(self) -> bool:
        """Make every commit so far durable (see :meth:`LedgerBase.sync`): sync the
        write-ahead log, as a ``synchronous=FULL`` commit does. Its frames are appended in
        order, so the commits made without a sync are all on the disk once it is. False
        when a synced commit (an admission) covered them already."""
        with self._lock:
            target = self._outcomes  # a claim needs no sync of its own (SqlLedger.claim)
            if self._closed or self._synced >= target or self.path == ":memory:":
                return False
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:  # no log left: every commit is in the database file
            return False
        try:
            os.fdatasync(fd)
        except OSError as exc:
            msg = f"ledger {self.path}: cannot sync its log: {exc}"
            raise LedgerError(msg) from exc
        finally:
            os.close(fd)
        with self._lock:
            self._synced = max(self._synced, target)
        return True

    def _outcome_recorded(self) -> None:
        with self._lock:
            self._outcomes = self._commits

    def close(self) -> None:
        self.sync()
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
        """A consistent snapshot; inside a write on this thread, the write's own view."""
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
                msg = f"ledger {self.path}: a write is already under way on this thread"
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
                started = time.perf_counter()
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    msg = f"ledger {self.path}: commit failed, rolled back: {exc}"
                    raise LedgerError(msg) from exc
                self._commits += 1
                if sync:  # the log is written in order: this sync covers every commit before
                    self._synced = self._commits
                    took = time.perf_counter() - started
                    self._sync_seconds += (took - self._sync_seconds) * _SYNC_WEIGHT
            finally:
                self._writer = None
                if not sync:
                    conn.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def admission_batch(self) -> Iterator[bool]:
        """Admissions of this thread made inside share one write transaction and its one
        synced commit; each records in a savepoint of its own, so one that fails is rolled
        back alone. Their facts are read and their deliveries planned with the transaction
        open, on its connection: each sees the batch's earlier admissions, and the other
        writers of this ledger (delivery outcomes, the console) wait for the batch. One
        commit for the batch writes each page it changed once, not once per admission."""
        if self._writer == threading.get_ident():  # inside a write already: its commit
            yield self._batching
            return
        with self._write(sync=True):
            self._batching = True
            try:
                yield True
            finally:
                self._batching = False

    def works_inline(self) -> bool:
        """Yes while the synced commits of this ledger take less than
        :data:`INLINE_SYNC_LIMIT` on average: a batch's work is then all CPU but for its
        commit, which is quick."""
        return self._sync_seconds < INLINE_SYNC_LIMIT

    def _admission_write(self, *, sync: bool) -> AbstractContextManager[sqlite3.Connection]:
        if self._in_batch():
            return self._savepoint()
        return self._write(sync=sync)

    def _in_batch(self) -> bool:
        return self._batching and self._writer == threading.get_ident()

    def _facts_version(self) -> int | None:
        # Facts read inside this thread's admission batch are read in its write transaction,
        # which no other writer can change before the admission records in it.
        return _IN_BATCH if self._in_batch() else self._version()

    def _unchanged(self, facts: Facts) -> bool:
        if facts.version == _IN_BATCH:
            return self._in_batch()
        return super()._unchanged(facts)

    @contextmanager
    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        """One admission inside a batch's transaction: undone alone when it fails."""
        conn = self._conn
        if not conn.in_transaction:  # SQLite rolled the whole batch back (an I/O error)
            msg = f"ledger {self.path}: the batch's transaction was rolled back"
            raise LedgerError(msg)
        conn.execute("SAVEPOINT admission")
        try:
            yield conn
        except BaseException as exc:
            conn.execute("ROLLBACK TO admission")
            conn.execute("RELEASE admission")
            if isinstance(exc, sqlite3.Error):
                msg = f"ledger {self.path}: write failed, rolled back: {exc}"
                raise LedgerError(msg) from exc
            raise
        conn.execute("RELEASE admission")

    def _version(self) -> int | None:
        """``PRAGMA data_version`` of the read connection: it changes with every commit made
        by another connection (this ledger's writer, another process); None for a private
        in-memory database (one connection, which sees no change of its own)."""
        if self._rconn is self._conn:
            return None
        with self._read_lock:
            if self._closed:
                msg = f"ledger {self.path} is closed"
                raise LedgerError(msg)
            try:
                row = self._rconn.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error as exc:
                msg = f"ledger {self.path}: read failed: {exc}"
                raise LedgerError(msg) from exc
            return int(row[0])

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the connection is beyond use; report, keep raising
                log.exception("ledger_rollback_failed", path=self.path, error=str(exc))
