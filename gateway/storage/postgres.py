"""The shared ledger: PostgreSQL, for several gateways on one ledger (``[ledger] backend =
"postgresql"``).

psycopg 3, used synchronously: the daemon calls the ledger from worker threads
(``asyncio.to_thread``) as it does SQLite, and psycopg's synchronous connections fit that
without an event loop of their own; it speaks PostgreSQL's own protocol features the
active-active design needs (``LISTEN/NOTIFY``, advisory locks, ``FOR UPDATE SKIP LOCKED``).

:class:`PostgresLedger` runs the shared SQL of :class:`~gateway.storage.sql.SqlLedger` on two
connections (one writes, one reads, each behind its own lock). Across instances:

* **admission** records under transaction-level advisory locks on the alert's key and on every
  key it references (taken in a fixed order), then re-reads the facts: two instances
  admitting the same alert, or an alert and its cancel, at the same moment are serialised,
  and the second decides on what the first committed (a duplicate, a stale alert);
* **claims** take due entries with ``FOR UPDATE OF o SKIP LOCKED``: one delivery of an entry
  at a time across all instances, each with a lease a dead instance loses;
* every change waits for its commit to be durable, claims included: a server crash loses the
  recent commits made with ``synchronous_commit = off``, and a lost claim would hide an
  attempt whose bytes went out (``make chaos-cluster`` saw it). Only heartbeats are
  asynchronous.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg
import structlog
from psycopg import pq
from psycopg.rows import dict_row

from cap_schemas.model import AlertKey
from gateway.adapter import SystemClock
from gateway.ledger import LedgerError, LedgerSchemaError
from gateway.storage import postgres_admission, postgres_schema
from gateway.storage.sql import SqlLedger
from gateway.storage.sql_rows import Connection, Cursor, us

__all__ = ["PostgresLedger"]

log = structlog.get_logger(__name__)

# what the reader connection's own transactions begin with (see _connect_reader)
_READ_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_NAMED = re.compile(r"(?<!:):(\w+)")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class _Now(Protocol):
    def now(self) -> datetime: ...


@functools.lru_cache(maxsize=1024)
def _pg(sql: str) -> str:
    """The shared SQL's parameters (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%")).replace("?", "%s")


class _Connection:
    """A psycopg connection that speaks the shared SQL (see :mod:`gateway.storage.sql_rows`)."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self.raw.execute(_pg(sql), parameters or None)

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        cursor = self.raw.cursor()
        if self.raw.pgconn.pipeline_status == pq.PipelineStatus.OFF:
            cursor.executemany(_pg(sql), list(parameters))
        else:  # queued with the rest (psycopg's executemany would wait for its own Sync)
            for row in parameters:
                cursor.execute(_pg(sql), row)
        return cursor


def _lock_id(name: str) -> int:
    """A 64-bit advisory lock id for an alert key (as text) or another name."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLedger(SqlLedger):
    """The ledger on a PostgreSQL server (``dsn``, e.g. ``postgresql://gw@db/borderlink``).

    ``schema`` puts the tables in their own schema (created when missing); the settings are
    those of :class:`~gateway.storage.sqlite.SqliteLedger`.
    """

    _claim_lock = " FOR UPDATE OF o SKIP LOCKED"
    _claim_sync = True  # a server crash must not lose the count of an attempt under way
    _shared = True
    _ROW_ID = "ctid"

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        schema: str | None = None,
        dedup_floor: timedelta = timedelta(days=7),
        journal_retention: timedelta = timedelta(days=90),
        clock: _Now | None = None,
        max_invalid_bytes: int = 8 * 1024 * 1024,
        cross_sender_references: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        if dedup_floor < timedelta(0):
            msg = "dedup_floor must not be negative"
            raise ValueError(msg)
        if schema is not None and not _SCHEMA.match(schema):
            msg = f"schema {schema!r}: lower-case letters, digits and _ (at most 63)"
            raise ValueError(msg)
        super().__init__()
        self.dsn = dsn
        self._password = password
        self.schema = schema
        self.dedup_floor = dedup_floor
        self.journal_retention = journal_retention
        self.max_invalid_bytes = max_invalid_bytes
        self.cross_sender_references = cross_sender_references
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._writer: int | None = None
        self._closed = False
        self._where = _redacted(dsn)
        self._connect_timeout = connect_timeout
        self._conn = self._connect(connect_timeout)
        try:
            self._rconn = self._connect_reader(connect_timeout)
            found = postgres_schema.migrate(self._conn.raw, now_us=us(self._clock.now()))
        except postgres_schema.SchemaTooNewError as exc:
            self.close()
            raise LedgerSchemaError(str(exc)) from exc
        except (psycopg.Error, LedgerError) as exc:
            self.close()
            msg = f"cannot prepare ledger {self._where}: {exc}"
            raise LedgerError(msg) from exc
        if found != postgres_schema.LATEST:
            log.info(
                "ledger_migrated",
                path=self._where,
                from_version=found,
                to=postgres_schema.LATEST,
            )

    def _connect(self, timeout: float) -> _Connection:
        options = f"-c search_path={self.schema}" if self.schema else ""
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, int(timeout)),
                options=options or None,
                password=self._password,
            )
            if self.schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        except psycopg.Error as exc:
            msg = f"cannot open ledger {self._where}: {exc}"
            raise LedgerError(msg) from exc
        return _Connection(conn)

    def _connect_reader(self, timeout: float) -> _Connection:
        """The connection of :meth:`_read`: consistent snapshots, never a write."""
        conn = self._connect(timeout)
        conn.raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.raw.read_only = True
        return conn

    def _reconnected(self, name: str) -> _Connection:
        """The connection ``name`` (``_conn`` or ``_rconn``), opened again when the server
        closed it (a restart, a fail-over, a cut link): the operation that saw it drop
        failed with a :class:`LedgerError` and was retried by its caller; without this,
        every later one would fail too, for the life of the process. Raises
        :class:`LedgerError` while the server cannot be reached."""
        current: _Connection = getattr(self, name)
        if not (current.raw.closed or current.raw.broken):
            return current
        with suppress(psycopg.Error):
            current.raw.close()
        opened = (
            self._connect_reader(self._connect_timeout)
            if name == "_rconn"
            else self._connect(self._connect_timeout)
        )
        setattr(self, name, opened)
        log.warning("ledger_reconnected", path=self._where, connection=name.lstrip("_"))
        return opened

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            for name in ("_rconn", "_conn"):
                conn = getattr(self, name, None)
                if conn is not None:
                    conn.raw.close()

    @property
    def schema_version(self) -> int:
        with self._read() as conn:
            return postgres_schema.current_version(conn.raw)

    @contextmanager
    def _read(self, *, pipelined: bool = False) -> Iterator[_Connection]:
        """A consistent snapshot (REPEATABLE READ, read only); inside a write on this
        thread, the write's own view. ``pipelined``: in pipeline mode (statements sent
        without waiting for the answers of those before; a fetch waits)."""
        if self._writer == threading.get_ident():
            with self._lock:
                yield self._conn
            return
        with self._read_lock:
            self._open()
            conn = self._reconnected("_rconn")
            try:
                with _transaction(conn, pipelined=pipelined, begin=_READ_BEGIN):
                    yield conn
            except psycopg.Error as exc:
                msg = f"ledger {self._where}: read failed: {exc}"
                raise LedgerError(msg) from exc

    @contextmanager
    def _write(self, *, sync: bool = True, pipelined: bool = False) -> Iterator[_Connection]:
        """One transaction, durable at commit unless ``sync=False``; any exception rolls it
        back and propagates. ``pipelined``: see :meth:`_read` (for SQL that reads no
        ``rowcount``: in pipeline mode it is known only once the answer is fetched)."""
        with self._lock:
            self._open()
            if self._writer is not None:
                msg = f"ledger {self._where}: a write is already under way on this thread"
                raise LedgerError(msg)
            conn = self._reconnected("_conn")
            self._writer = threading.get_ident()
            try:
                with _transaction(conn, pipelined=pipelined):
                    if not sync:
                        conn.raw.execute("SET LOCAL synchronous_commit TO OFF")
                    yield conn
            except psycopg.Error as exc:
                msg = f"ledger {self._where}: write failed, rolled back: {exc}"
                raise LedgerError(msg) from exc
            finally:
                self._writer = None

    def _open(self) -> None:
        if self._closed:
            msg = f"ledger {self._where} is closed"
            raise LedgerError(msg)

    # ------------------------------------------------------------------ wake-ups

    async def wakeups(self, listening: asyncio.Event | None = None) -> AsyncIterator[str]:
        """The sinks that have an entry become pending, on any instance, as they commit
        (LISTEN on a connection of its own; the ledger's trigger notifies; ``listening`` is
        set once LISTEN is in place). Ends with
        :class:`LedgerError` when the connection is lost: the caller restarts it."""
        mine = self.schema or "public"
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, password=self._password, connect_timeout=10
            )
        except psycopg.Error as exc:
            msg = f"cannot listen on ledger {self._where}: {exc}"
            raise LedgerError(msg) from exc
        try:
            await conn.execute(f"LISTEN {postgres_schema.DUE_CHANNEL}")
            if listening is not None:
                listening.set()  # from here on, no commit goes unheard
            async for note in conn.notifies():
                schema, _, sink = note.payload.partition(":")
                if schema == mine and sink:
                    yield sink
        except psycopg.Error as exc:
            msg = f"ledger {self._where}: listening ended: {exc}"
            raise LedgerError(msg) from exc
        finally:
            await conn.close()

    # ------------------------------------------------------------------ admission

    def _serialise(self, conn: Connection, keys: Sequence[AlertKey]) -> None:
        """Transaction-level advisory locks on every key an admission touches, in a fixed
        order (one statement: ``unnest`` yields the sorted ids in order): instances admitting
        the same alert, or an alert and its cancel, take turns."""
        self._serialise_names(conn, [str(k) for k in keys])

    def _serialise_names(self, conn: Connection, names: Sequence[str]) -> None:
        locks = sorted({_lock_id(n) for n in names})
        conn.execute("SELECT pg_advisory_xact_lock(l) FROM unnest(?::bigint[]) AS l", (locks,))

    # the facts of an admission in one round trip for a new alert (when pipelined, as the
    # two below are; see gateway.storage.postgres_admission)
    _read_facts = staticmethod(postgres_admission.read_facts)

    def _admission_read(self) -> AbstractContextManager[Connection]:
        return self._read(pipelined=True)

    def _admission_write(self, *, sync: bool) -> AbstractContextManager[Connection]:
        """The admission's transaction, pipelined: its locks and reads go with its BEGIN, its
        inserts that return nothing with the next statement that returns something, the
        rest with its COMMIT."""
        return self._write(sync=sync, pipelined=True)


@contextmanager
def _transaction(conn: _Connection, *, pipelined: bool, begin: str = "BEGIN") -> Iterator[None]:
    """One transaction; ``pipelined``: in pipeline mode, statements are sent without waiting
    for the answers of those before (a fetch waits): ``begin`` goes with the first statements,
    the COMMIT with the closing Sync -- psycopg's own transaction block would wait at both
    ends. An exception rolls it back and propagates."""
    if not pipelined:
        with conn.raw.transaction():
            yield
        return
    raw = conn.raw
    with raw.pipeline() as pipeline:
        raw.execute(begin)
        try:
            yield
        except BaseException:
            with suppress(psycopg.Error):
                pipeline.sync()  # the answers of what was sent, up to the error
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")


def _redacted(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    return re.sub(r"(password=)\S+", r"\1***", re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn))
