"""Console logins, and the brake on guessing passwords.

:func:`login` checks a name and password against the accounts; :class:`Lockout` refuses
further tries for a while after too many failures, counted separately for the **account
name** (someone guessing one account's password from many addresses) and for the **remote
address** (someone trying many names from one place). A refusal is a :class:`LoginRefused`
whose message is what the person at the screen may see (an unknown name and a wrong password
read the same, "wrong name or password"), and whose ``reason`` is for logs and metrics:
``borderlink_input_rejected_total{component="console", reason=...}`` and the log event
``console_login_refused``.

The lockout lives in memory, per instance (a restart forgets it), with a bounded number of
records. Everything here is synchronous; :func:`login` spends the time of one scrypt check
(about 50 ms), so the console runs it in a thread (``asyncio.to_thread``), and the lockout
is safe to use from several threads.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from gateway.console.accounts import Account
from gateway.errors import GatewayError
from gateway.metrics import INPUT_REJECTED
from gateway.passwords import hash_password, verify_password

__all__ = ["REASONS", "Lockout", "LoginRefused", "login"]

log = structlog.get_logger(__name__)

COMPONENT = "console"
REASONS = ("locked", "unknown", "wrong_password")
_KEY_CHARS = 128  # what a record keeps of a name or address: a flood of long names stays small
_EVICT_SCAN = 64  # how many of the oldest records eviction looks at for one without a lock


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
    """

    def __init__(
        self,
        failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        lock_for: timedelta = timedelta(minutes=15),
        *,
        max_keys: int = 10_000,
    ) -> None:
        if failures < 1 or max_keys < 2:
            raise ValueError("a lockout needs failures >= 1 and max_keys >= 2")
        self.failures = failures
        self.window = window
        self.lock_for = lock_for
        self.max_keys = max_keys
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many names and addresses are remembered (bounded by ``max_keys``)."""
        return len(self._records)

    def check(self, name: str, remote: str, now: datetime) -> float | None:
        """Seconds until ``name`` and ``remote`` may both try again, or None if neither is
        locked."""
        with self._lock:
            return self._wait(name, remote, now)

    def failed(self, name: str, remote: str, now: datetime) -> None:
        """Count a failed login against the name and the address; the one that makes
        ``failures`` within ``window`` locks."""
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

    def succeeded(self, name: str, remote: str) -> None:
        """A login succeeded: the name starts afresh. The address does not: otherwise anyone
        with one account could clear the count of their guesses at others by logging in
        between them (its failures still run out after ``window``)."""
        with self._lock:
            name_key, remote_key = _keys(name, remote)
            record = self._records.pop(name_key, None)
            if record is not None and record.pending > 1:  # others still being checked
                self._records[name_key] = _Record(pending=record.pending - 1)
            remote_record = self._records.get(remote_key)
            if remote_record is not None:
                remote_record.pending = max(0, remote_record.pending - 1)

    def _begin(self, name: str, remote: str, now: datetime) -> float | None:
        """For :func:`login`: seconds to wait, or None after reserving a try for the name and
        the address. Tries being checked count as failures until they end (``failed`` or
        ``succeeded``), so a burst of logins sent at once, each checked in its own thread,
        cannot get more tries than one sent after the other."""
        with self._lock:
            wait = self._wait(name, remote, now)
            if wait is not None:
                return wait
            records = [self._record(key, now) for key in _keys(name, remote)]
            for record in records:
                self._forget_old(record, now)
            if any(len(r.failures) + r.pending >= self.failures for r in records):
                return 1.0  # the tries in flight may lock it: ask again in a moment
            for record in records:
                record.pending += 1
            return None

    def _wait(self, name: str, remote: str, now: datetime) -> float | None:
        left = [
            (record.locked_until - now).total_seconds()
            for key in _keys(name, remote)
            if (record := self._records.get(key)) is not None
            and record.locked_until is not None
            and record.locked(now)
        ]
        return max(left) if left else None

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
    wait = lockout._begin(name, remote, now)
    if wait is not None:
        raise _refused("locked", name, remote, retry_after=wait)
    account = accounts.get(name)
    ok = False
    try:
        ok = verify_password(password, account.password_hash if account else _dummy_hash())
    finally:  # whatever happens, the reserved try ends
        if ok and account is not None:
            lockout.succeeded(name, remote)
        else:
            lockout.failed(name, remote, now)
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
