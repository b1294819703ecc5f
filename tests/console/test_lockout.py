"""Logins and the lockout: five failures lock a name or an address for a while; an unknown
name and a wrong password look, cost and count the same."""

from __future__ import annotations

import hashlib
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.console.accounts import Account
from gateway.console.lockout import Lockout, LoginRefused, login
from gateway.metrics import INPUT_REJECTED
from tests.console.conftest import PASSWORDS

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HERE, THERE = "192.0.2.10", "198.51.100.7"


def _fail(lockout: Lockout, times: int, name: str = "otto", remote: str = HERE) -> None:
    for i in range(times):
        lockout.failed(name, remote, NOW + i * timedelta(seconds=10))


class TestLockout:
    """Counted per name and per address, within a window, for a while, in bounded memory."""

    def test_the_fifth_failure_of_a_name_locks_it_from_everywhere(self) -> None:
        lockout = Lockout()
        _fail(lockout, 4, remote=HERE)
        assert lockout.check("otto", THERE, NOW + MINUTE) is None
        lockout.failed("otto", THERE, NOW + MINUTE)
        left = lockout.check("otto", "203.0.113.99", NOW + MINUTE)
        assert left == 15 * 60
        assert lockout.check("vera", "203.0.113.99", NOW + MINUTE) is None

    def test_the_fifth_failure_from_an_address_locks_it_for_every_name(self) -> None:
        lockout = Lockout()
        for i, name in enumerate(["a", "b", "c", "d", "e"]):
            lockout.failed(name, HERE, NOW + i * MINUTE)
        assert lockout.check("someone-else", HERE, NOW + 4 * MINUTE) == 15 * 60
        assert lockout.check("someone-else", THERE, NOW + 4 * MINUTE) is None

    def test_the_lock_runs_out_and_the_count_starts_afresh(self) -> None:
        lockout = Lockout()
        _fail(lockout, 5)
        locked_at = NOW + 40 * timedelta(seconds=1)
        assert lockout.check("otto", HERE, locked_at + 14 * MINUTE) == pytest.approx(60)
        later = locked_at + 15 * MINUTE
        assert lockout.check("otto", HERE, later) is None
        lockout.failed("otto", HERE, later)
        assert lockout.check("otto", HERE, later) is None  # one failure, not a sixth

    def test_failures_older_than_the_window_do_not_count(self) -> None:
        lockout = Lockout()
        _fail(lockout, 4)
        lockout.failed("otto", HERE, NOW + 16 * MINUTE)
        assert lockout.check("otto", HERE, NOW + 16 * MINUTE) is None

    def test_settings_are_honoured(self) -> None:
        lockout = Lockout(failures=2, window=MINUTE, lock_for=timedelta(hours=1))
        _fail(lockout, 2)
        assert lockout.check("otto", HERE, NOW + MINUTE) == pytest.approx(3600 - 50)

    def test_success_forgives_the_name_not_the_address(self) -> None:
        lockout = Lockout()
        _fail(lockout, 4)
        lockout.succeeded("otto", HERE)
        lockout.failed("otto", THERE, NOW + MINUTE)
        assert lockout.check("otto", THERE, NOW + MINUTE) is None  # the name starts afresh
        lockout.failed("vera", HERE, NOW + MINUTE)
        assert lockout.check("vera", THERE, NOW + MINUTE) is None
        assert lockout.check("anyone", HERE, NOW + MINUTE) is not None  # the address: 5th

    def test_ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4(self) -> None:
        lockout = Lockout()
        for i in range(5):
            lockout.failed(f"user{i}", f"2001:db8:1:2::{i + 1}", NOW)
        assert lockout.check("new", "2001:db8:1:2:ffff::9", NOW) is not None
        assert lockout.check("new", "2001:db8:1:3::1", NOW) is None
        for i in range(5):
            lockout.failed(f"user{i}", "::ffff:192.0.2.55", NOW)
        assert lockout.check("new", "192.0.2.55", NOW) is not None

    def test_memory_stays_bounded_under_a_flood_of_names(self) -> None:
        lockout = Lockout(max_keys=200)
        for i in range(5000):
            lockout.failed(f"random-{i}", f"10.0.{i // 250}.{i % 250}", NOW)
        assert len(lockout) <= 200

    def test_a_flood_does_not_unlock_the_account_under_attack(self) -> None:
        lockout = Lockout(max_keys=200)
        _fail(lockout, 5, name="ada")
        for i in range(5000):  # every flooding address stays under its own limit
            lockout.failed(f"random-{i}", f"10.{i // 60000}.{i // 250 % 240}.{i % 250}", NOW)
        assert len(lockout) <= 200
        assert lockout.check("ada", THERE, NOW + MINUTE) is not None

    def test_huge_names_are_remembered_small(self) -> None:
        lockout = Lockout(max_keys=10)
        for i in range(5):
            lockout.failed(f"{i}" + "x" * 1_000_000, HERE, NOW)
        assert sum(len(key[1]) for key in lockout._records) < 2000


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The password of every scrypt computation (hashlib's, wrapped: our code runs as is)."""
    calls: list[bytes] = []
    real: Callable[..., bytes] = hashlib.scrypt

    def counting(password: bytes, **kwargs: Any) -> bytes:
        calls.append(password)
        return real(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


class TestLogin:
    """The right password logs in; every refusal reads the same to the person, not the logs."""

    def test_the_right_password(self, accounts: dict[str, Account]) -> None:
        account = login(accounts, Lockout(), "otto", PASSWORDS["otto"], HERE, NOW)
        assert account == accounts["otto"]
        assert account.can("approve")

    def test_unknown_name_and_wrong_password_read_the_same(
        self, accounts: dict[str, Account]
    ) -> None:
        lockout = Lockout()
        with pytest.raises(LoginRefused) as unknown:
            login(accounts, lockout, "mallory", "guess", HERE, NOW)
        with pytest.raises(LoginRefused) as wrong:
            login(accounts, lockout, "otto", "guess", HERE, NOW)
        assert str(unknown.value) == str(wrong.value) == "wrong name or password"
        assert (unknown.value.reason, wrong.value.reason) == ("unknown", "wrong_password")
        assert unknown.value.retry_after is None

    def test_both_spend_one_scrypt_check(
        self, accounts: dict[str, Account], scrypt_calls: list[bytes]
    ) -> None:
        lockout = Lockout()
        for name in ("mallory", "otto", "nobody-at-all", "ada"):
            with pytest.raises(LoginRefused):
                login(accounts, lockout, name, "guess-" + name, THERE, NOW)
            assert scrypt_calls.count(f"guess-{name}".encode()) == 1, name

    def test_both_take_about_as_long(self, accounts: dict[str, Account]) -> None:
        def seconds(name: str) -> float:
            runs = []
            for i in range(5):
                start = time.perf_counter()
                with pytest.raises(LoginRefused):
                    login(accounts, Lockout(), name, f"guess{i}", HERE, NOW)
                runs.append(time.perf_counter() - start)
            return statistics.median(runs)

        seconds("mallory")  # the dummy hash is made on first use
        ratio = seconds("mallory") / seconds("otto")
        assert 0.25 < ratio < 4, ratio  # loose: scrypt dominates; a skipped check is ~1000x

    def test_locked_after_five_failures_even_with_the_right_password(
        self, accounts: dict[str, Account], scrypt_calls: list[bytes]
    ) -> None:
        lockout = Lockout()
        for i in range(5):
            with pytest.raises(LoginRefused):
                login(accounts, lockout, "otto", "guess", HERE, NOW + i * MINUTE)
        with pytest.raises(LoginRefused) as locked:
            login(accounts, lockout, "otto", PASSWORDS["otto"], THERE, NOW + 5 * MINUTE)
        assert locked.value.reason == "locked"
        assert locked.value.retry_after == pytest.approx(14 * 60)
        assert str(locked.value) == "too many failed logins: try again in 14 min"
        assert PASSWORDS["otto"].encode() not in scrypt_calls  # not even checked
        later = NOW + 4 * MINUTE + 15 * MINUTE
        assert login(accounts, lockout, "otto", PASSWORDS["otto"], THERE, later).name == "otto"

    def test_unknown_names_lock_too(self, accounts: dict[str, Account]) -> None:
        lockout = Lockout()
        for _ in range(5):
            with pytest.raises(LoginRefused):
                login(accounts, lockout, "ghost", "guess", HERE, NOW)
        with pytest.raises(LoginRefused, match="try again") as locked:
            login(accounts, lockout, "ghost", "guess", THERE, NOW)
        assert locked.value.reason == "locked"  # as an existing account would be

    def test_a_burst_at_once_gets_no_more_tries_than_one_after_another(
        self, accounts: dict[str, Account], scrypt_calls: list[bytes]
    ) -> None:
        lockout = Lockout()
        start = threading.Barrier(20)

        def attempt(i: int) -> str:
            start.wait()
            try:
                login(accounts, lockout, "ada", f"burst-{i}", f"203.0.113.{i}", NOW)
            except LoginRefused as refused:
                return refused.reason
            return "in"

        with ThreadPoolExecutor(20) as pool:
            reasons = list(pool.map(attempt, range(20)))
        checked = [c for c in scrypt_calls if c.startswith(b"burst-")]
        assert len(checked) <= 5
        assert reasons.count("wrong_password") == len(checked)
        assert reasons.count("locked") == 20 - len(checked)
        if len(checked) == 5:
            assert lockout.check("ada", THERE, NOW) is not None

    def test_a_password_that_cannot_be_encoded_is_just_wrong(
        self, accounts: dict[str, Account]
    ) -> None:
        lockout = Lockout()
        for _ in range(4):
            with pytest.raises(LoginRefused, match="wrong name or password"):
                login(accounts, lockout, "otto", "\udcff", HERE, NOW)
        assert login(accounts, lockout, "otto", PASSWORDS["otto"], HERE, NOW).name == "otto"

    def test_refusals_are_counted_and_logged(self, accounts: dict[str, Account]) -> None:
        lockout = Lockout(failures=1)
        before = {r: INPUT_REJECTED.value(component="console", reason=r) for r in
                  ("unknown", "wrong_password", "locked")}
        with capture_logs() as logs:
            for name, remote in (("mallory", HERE), ("otto", THERE), ("otto", THERE)):
                with pytest.raises(LoginRefused):
                    login(accounts, lockout, name, "guess", remote, NOW)
        for reason in ("unknown", "wrong_password", "locked"):
            assert INPUT_REJECTED.value(component="console", reason=reason) == before[reason] + 1
        refused = [e for e in logs if e["event"] == "console_login_refused"]
        assert [(e["name"], e["remote"], e["reason"]) for e in refused] == [
            ("mallory", HERE, "unknown"),
            ("otto", THERE, "wrong_password"),
            ("otto", THERE, "locked"),
        ]
        assert all(e["log_level"] == "warning" for e in refused)
        assert "guess" not in str(logs)

    def test_a_login_is_logged(self, accounts: dict[str, Account]) -> None:
        with capture_logs() as logs:
            login(accounts, Lockout(), "ada", PASSWORDS["ada"], HERE, NOW)
        assert {"event": "console_logged_in", "name": "ada", "role": "admin", "remote": HERE,
                "log_level": "info"} in logs
