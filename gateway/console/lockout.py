"""Console logins, and the brake on guessing passwords.

:func:`login` checks a name and password against the accounts; :class:`Lockout` refuses
further tries for a while after too many failures, counted separately for the **account
name** (someone guessing one account's password from many addresses) and for the **remote
address** (someone trying many names from one place). A refusal is a :class:`LoginRefused`
whose message is what the person at the screen may see (an unknown name and a wrong password
read the same, "wrong name or password"), and whose ``reason`` is for logs and metrics:
``borderlink_input_rejected_total{component="console", reason=...}`` and the log event
``console_login_refused``.

The lockout keeps its records in memory, per instance, with a bounded number of records;
given a ``store`` (the ledger: :class:`FailureStore`) it also records every failure there
and, before each try, reads the failures the name and the address earned on every instance
sharing that ledger (one indexed query), so that a lock holds across the cluster and across
a restart. Each try is reserved in the store before its password is checked (counted as a
failure from its start, in a transaction the tries of every instance take in turn), so a
burst spread over the instances gets the tries of one. A store that cannot be reached
leaves the in-memory lockout in charge: nobody is locked out for it, and the guesses made
here are still counted here. Everything here is synchronous; :func:`login` spends the time
of one scrypt check (about 50 ms), so the console runs it in a thread
(``asyncio.to_thread``), and the lockout is safe to use from several threads.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from gateway.console.accounts import Account
from gateway.errors import GatewayError
from gateway.ledger import FailureStore
from gateway.metrics import INPUT_REJECTED
from gateway.passwords import hash_password, verify_password

__all__ = ["REASONS", "FailureStore", "Lockout", "LoginRefused", "login"]

log = structlog.get_logger(__name__)

COMPONENT = "console"
REASONS = ("locked", "unknown", "wrong_password")
_KEY_CHARS = 128  # what a record keeps of a name or address: a flood of long names stays small
_EVICT_SCAN = 64  # how many of the oldest records eviction looks at for one without a lock
_SHARED_ROWS = 1000  # the most failures one try reads from the store


@dataclass(frozen=True, slots=True)
class _Shared:
    """What the store says of one name or address: its lock, and its failures in the window."""

    locked_until: datetime | None
    failures: int


_Seen = Mapping[tuple[str, str], _Shared]  # what the store holds of a name and an address


class LoginRefused(GatewayError):
    """A login was refused. ``str()`` is the message for the person at the screen; ``reason``
    (one of :data:`REASONS`) is for logs and metrics only; ``retry_after`` is the seconds to
    wait when locked (for a ``Retry-After`` header), else None."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after
        if retry_after is None:
            message = "wrong name or password"
        else:
            message = f"too many failed logins: try again in {math.ceil(retry_after / 60)} min"
        super().__init__(message)


@dataclass(slots=True)
class _Record:
    """Recent failures of one name or one address, and the lock they earned."""

    failures: deque[datetime] = field(default_factory=deque)
    locked_until: datetime | None = None
    pending: int = 0  # logins being checked now (their scrypt running in another thread)

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


class Lockout:
    """``failures`` failed logins within ``window`` lock a name, or an address, for
    ``lock_for``. At most ``max_keys`` names and addresses are remembered; past that the
    oldest record without a lock in force is forgotten first (a flood of random names must
    not make it forget the account under attack), else the oldest.

    IPv6 addresses count by their /64 (one host usually holds a whole /64, so counting each
    address would give it 2**64 tries); an IPv4-mapped address counts as its IPv4 one.

    ``store`` (called for the store at each use: the ledger may open after the console) shares
    the failures with every instance on the same ledger, and keeps them across a restart.
    """

    def __init__(
        self,
        failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        lock_for: timedelta = timedelta(minutes=15),
        *,
        max_keys: int = 10_000,
        store: Callable[[], FailureStore | None] | None = None,
    ) -> None:
        if failures < 1 or max_keys < 2:
            raise ValueError("a lockout needs failures >= 1 and max_keys >= 2")
        self.failures = failures
        self.window = window
        self.lock_for = lock_for
        self.max_keys = max_keys
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._lock = threading.Lock()
        self._store = store

    def __len__(self) -> int:
        """How many names and addresses are remembered (bounded by ``max_keys``)."""
        return len(self._records)

    def check(self, name: str, remote: str, now: datetime) -> float | None:
        """Seconds until ``name`` and ``remote`` may both try again, or None if neither is
        locked."""
        shared = self.shared(name, remote, now)
        with self._lock:
            return self._wait(name, remote, now, shared)

    def shared(self, name: str, remote: str, now: datetime) -> dict[tuple[str, str], _Shared]:
        """What the store holds of ``name`` and ``remote`` (empty without a store, or when it
        cannot be read: then this instance's own records decide)."""
        store = self._reach()
        if store is None:
            return {}
        keys = _keys(name, remote)
        try:
            found = store.login_failures(
                [_store_key(k) for k in keys],
                now - self.window - self.lock_for,
                limit=_SHARED_ROWS,
            )
        except Exception as exc:  # noqa: BLE001 - any failure of the store: the memory decides
            _unavailable("read", exc)
            return {}
        return {key: self._replay(found.get(_store_key(key), ()), now) for key in keys}

    def failed(self, name: str, remote: str, now: datetime, *, recorded: bool = False) -> None:
        """Count a failed login against the name and the address; the one that makes
        ``failures`` within ``window`` locks. ``recorded``: the store holds it already (its
        try was reserved there, :meth:`_reserve`)."""
        self._failed_here(name, remote, now)
        store = None if recorded else self._reach()
        if store is not None:
            try:
                store.record_login_failure([_store_key(k) for k in _keys(name, remote)], now)
            except Exception as exc:  # noqa: BLE001 - counted here all the same
                _unavailable("record", exc)

    def _failed_here(self, name: str, remote: str, now: datetime) -> None:
        with self._lock:
            for key in _keys(name, remote):
                record = self._record(key, now)
                record.pending = max(0, record.pending - 1)
                if record.locked(now):
                    continue
                if record.locked_until is not None:  # a lock that ran out: a fresh start
                    record.locked_until = None
                    record.failures.clear()
                self._forget_old(record, now)
                record.failures.append(now)
                if len(record.failures) >= self.failures:
                    record.locked_until = now + self.lock_for
                    record.failures.clear()

    def succeeded(
        self,
        name: str,
        remote: str,
        shared: _Seen | None = None,
        *,
        recorded_at: datetime | None = None,
    ) -> None:
        """A login succeeded: the name starts afresh. The address does not: otherwise anyone
        with one account could clear the count of their guesses at others by logging in
        between them (its failures still run out after ``window``). ``shared`` (what
        :meth:`shared` read before the try) tells whether the store holds failures of the
        name to forget; ``recorded_at``, when the try was reserved in the store
        (:meth:`_reserve`): the address's record of it goes too (it was no failure)."""
        name_key, remote_key = _keys(name, remote)
        earlier = (shared or {}).get(name_key)
        wanted = recorded_at is not None or (earlier is not None and earlier.failures)
        store = self._reach() if wanted else None
        if store is not None:
            try:
                if recorded_at is not None:
                    store.end_login_try([_store_key(remote_key)], recorded_at)
                store.forget_login_failures(_store_key(name_key))
            except Exception as exc:  # noqa: BLE001 - they run out after the window anyway
                _unavailable("forget", exc)
        with self._lock:
            name_key, remote_key = _keys(name, remote)
            record = self._records.pop(name_key, None)
            if record is not None and record.pending > 1:  # others still being checked
                self._records[name_key] = _Record(pending=record.pending - 1)
            remote_record = self._records.get(remote_key)
            if remote_record is not None:
                remote_record.pending = max(0, remote_record.pending - 1)

    def _begin(
        self,
        name: str,
        remote: str,
        now: datetime,
        shared: _Seen | None = None,
    ) -> float | None:
        """For :func:`login`: seconds to wait, or None after reserving a try for the name and
        the address. Tries being checked count as failures until they end (``failed`` or
        ``succeeded``), so a burst of logins sent at once, each checked in its own thread,
        cannot get more tries than one sent after the other. ``shared``: what the store
        holds (:meth:`shared`); the failures counted are the more of its and this
        instance's."""
        shared = shared or {}
        with self._lock:
            wait = self._wait(name, remote, now, shared)
            if wait is not None:
                return wait
            keys = _keys(name, remote)
            records = [self._record(key, now) for key in keys]
            for record in records:
                self._forget_old(record, now)
            counted = [
                max(len(r.failures), s.failures if (s := shared.get(key)) else 0) + r.pending
                for key, r in zip(keys, records, strict=True)
            ]
            if any(n >= self.failures for n in counted):
                return 1.0  # the tries in flight may lock it: ask again in a moment
            for record in records:
                record.pending += 1
            return None

    def _reserve(self, name: str, remote: str, now: datetime) -> tuple[float | None, bool]:
        """For :func:`login`, after :meth:`_begin`: reserve the try in the store, where the
        tries of every instance sharing it take turns and count as failures from their
        start. Returns the seconds to wait (refused: a lock, or the tries under way on any
        instance, hold) and whether the try is recorded there. Without a store, or one out
        of reach, this instance's own count decides (None, False)."""
        store = self._reach()
        if store is None:
            return None, False
        keys = _keys(name, remote)
        wait: list[float] = []

        def allow(found: dict[str, list[datetime]]) -> bool:
            for key in keys:
                until = self._replay(found.get(_store_key(key), ()), now).locked_until
                if until is not None and now < until:
                    wait.append((until - now).total_seconds())
            return not wait

        try:
            _found, recorded = store.reserve_login_try(
                [_store_key(k) for k in keys],
                now,
                now - self.window - self.lock_for,
                allow,
                limit=_SHARED_ROWS,
            )
        except Exception as exc:  # noqa: BLE001 - any failure of the store: the memory decides
            _unavailable("reserve", exc)
            return None, False
        return (max(wait) if wait else None), recorded

    def _abandon(self, name: str, remote: str) -> None:
        """A try reserved by :meth:`_begin` ends unchecked (refused by the store)."""
        with self._lock:
            for key in _keys(name, remote):
                record = self._records.get(key)
                if record is not None:
                    record.pending = max(0, record.pending - 1)

    def _wait(self, name: str, remote: str, now: datetime, shared: _Seen) -> float | None:
        until = [
            record.locked_until
            for key in _keys(name, remote)
            if (record := self._records.get(key)) is not None and record.locked_until is not None
        ]
        until += [s.locked_until for s in shared.values() if s.locked_until is not None]
        left = [(u - now).total_seconds() for u in until if now < u]
        return max(left) if left else None

    def _replay(self, times: Sequence[datetime], now: datetime) -> _Shared:
        """The lock and the count that ``times`` (failures from every instance, oldest first)
        earn under the rule :meth:`failed` applies to one instance's."""
        recent: deque[datetime] = deque()
        locked_until: datetime | None = None
        for at in times:
            if locked_until is not None:
                if at < locked_until:
                    continue  # tried while locked (on an instance that had not seen it yet)
                locked_until = None
                recent.clear()
            while recent and at - recent[0] > self.window:
                recent.popleft()
            recent.append(at)
            if len(recent) >= self.failures:
                locked_until = at + self.lock_for
                recent.clear()
        return _Shared(locked_until, sum(1 for at in recent if now - at <= self.window))

    def _reach(self) -> FailureStore | None:
        return None if self._store is None else self._store()

    def _record(self, key: tuple[str, str], now: datetime) -> _Record:
        """The record of ``key``, made the most recent; a new one may evict another."""
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= self.max_keys:
                self._evict(now)
            record = self._records[key] = _Record()
        else:
            self._records.move_to_end(key)
        return record

    def _evict(self, now: datetime) -> None:
        for key, record in itertools.islice(self._records.items(), _EVICT_SCAN):
            if not record.locked(now):
                del self._records[key]
                return
        self._records.popitem(last=False)

    def _forget_old(self, record: _Record, now: datetime) -> None:
        while record.failures and now - record.failures[0] > self.window:
            record.failures.popleft()


def _unavailable(what: str, exc: Exception) -> None:
    log.warning("console_lockout_store_unavailable", action=what, error=str(exc)[:200])


def _store_key(key: tuple[str, str]) -> str:
    return f"{key[0]}:{key[1]}"


def _keys(name: str, remote: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return ("name", name[:_KEY_CHARS]), ("remote", _remote_key(remote))


def _remote_key(remote: str) -> str:
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:_KEY_CHARS]  # not an address (a proxy's label, a socket path)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address.packed, 64), strict=False))
    return str(address)


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches, checked for an unknown name so that it takes as long as a
    known one (the time must not tell which names exist)."""
    return hash_password(secrets.token_urlsafe(16))


def login(  # noqa: PLR0917 - the console calls it with these six, in this order
    accounts: Mapping[str, Account],
    lockout: Lockout,
    name: str,
    password: str,
    remote: str,
    now: datetime,
) -> Account:
    """The account ``name`` logs in to with ``password`` from ``remote``, or LoginRefused.

    Blocking (one scrypt check): run it in a thread. An unknown name costs the same scrypt
    check as a known one, and counts as a failure for the lockout as a wrong password does.
    """
    shared = lockout.shared(name, remote, now)
    wait = lockout._begin(name, remote, now, shared)
    if wait is not None:
        raise _refused("locked", name, remote, retry_after=wait)
    wait, recorded = lockout._reserve(name, remote, now)
    if wait is not None:
        lockout._abandon(name, remote)
        raise _refused("locked", name, remote, retry_after=wait)
    account = accounts.get(name)
    ok = False
    try:
        ok = verify_password(password, account.password_hash if account else _dummy_hash())
    finally:  # whatever happens, the reserved try ends
        if ok and account is not None:
            lockout.succeeded(name, remote, shared, recorded_at=now if recorded else None)
        else:
            lockout.failed(name, remote, now, recorded=recorded)
    if account is None or not ok:
        raise _refused("unknown" if account is None else "wrong_password", name, remote)
    log.info("console_logged_in", name=name, role=account.role, remote=remote)
    return account


def _refused(
    reason: str, name: str, remote: str, *, retry_after: float | None = None
) -> LoginRefused:
    INPUT_REJECTED.inc(component=COMPONENT, reason=reason)
    log.warning("console_login_refused", name=name[:_KEY_CHARS], remote=remote, reason=reason)
    return LoginRefused(reason, retry_after=retry_after)
