"""Failed console logins kept in the ledger: a lock earned through one instance holds on every
instance sharing the ledger and across a restart; the ledger out of reach leaves each
instance's own lockout in charge; old failures are pruned."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs

from gateway.console.accounts import Account, add_account, read_accounts
from gateway.console.lockout import Lockout, LoginRefused, login
from gateway.ledger import Decision
from gateway.storage import postgres_schema, sqlite_schema
from gateway.storage.postgres import PostgresLedger
from gateway.storage.sql import LOGIN_FAILURE_RETENTION
from gateway.storage.sqlite import SqliteLedger
from tests.ledger.conftest import OpenLedger, admit, make_alert

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HERE, THERE = "192.0.2.10", "198.51.100.7"
PASSWORD = "otto-approves-2"


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Account]:
    path = tmp_path_factory.mktemp("users") / "console-users"
    add_account(path, "otto", "operator", PASSWORD)
    return read_accounts(path)


def _lockout(ledger: object) -> Lockout:
    return Lockout(store=lambda: ledger)  # type: ignore[return-value,arg-type]


def _guess(accounts: dict[str, Account], lockout: Lockout, remote: str, at: datetime) -> str:
    try:
        login(accounts, lockout, "otto", "guess", remote, at)
    except LoginRefused as exc:
        return exc.reason
    raise AssertionError("a wrong password logged in")


class TestShared:
    def test_a_lock_earned_on_one_instance_holds_on_the_other(
        self, open_ledger: OpenLedger, accounts: dict[str, Account]
    ) -> None:
        first, second = _lockout(open_ledger()), _lockout(open_ledger())
        reasons = [_guess(accounts, first, HERE, NOW + i * MINUTE) for i in range(5)]
        assert reasons == ["wrong_password"] * 5
        # the other instance never saw a failure itself, from any address
        with pytest.raises(LoginRefused) as refused:
            login(accounts, second, "otto", PASSWORD, THERE, NOW + 5 * MINUTE)
        assert refused.value.reason == "locked"
        assert refused.value.retry_after == pytest.approx(14 * 60)
        # the address too, for any name
        assert second.check("vera", HERE, NOW + 5 * MINUTE) == pytest.approx(14 * 60)
        assert second.check("vera", THERE, NOW + 5 * MINUTE) is None
        # and it runs out as it would on one instance
        assert login(accounts, second, "otto", PASSWORD, THERE, NOW + 19 * MINUTE).name == "otto"

    def test_failures_add_up_across_instances(
        self, open_ledger: OpenLedger, accounts: dict[str, Account]
    ) -> None:
        """Three instances behind a balancer give an attacker the tries of one."""
        lockouts = [_lockout(open_ledger()) for _ in range(3)]
        reasons = [
            _guess(accounts, lockouts[i % 3], f"203.0.113.{i}", NOW + i * MINUTE)
            for i in range(6)
        ]
        assert reasons == ["wrong_password"] * 5 + ["locked"]

    def test_a_burst_spread_over_instances_gets_the_tries_of_one(
        self, open_ledger: OpenLedger, accounts: dict[str, Account]
    ) -> None:
        """Twenty guesses sent at once to three instances: each try is reserved in the
        ledger before its password is checked, and the reservations take turns there, so
        no more than five are checked -- not five per instance."""
        lockouts = [_lockout(open_ledger()) for _ in range(3)]
        start = threading.Barrier(20)

        def attempt(i: int) -> str:
            start.wait()
            return _guess(accounts, lockouts[i % 3], f"203.0.113.{i}", NOW)

        with ThreadPoolExecutor(20) as pool:
            reasons = list(pool.map(attempt, range(20)))
        assert reasons.count("wrong_password") == 5
        assert reasons.count("locked") == 15
        for lockout in lockouts:  # the name is locked everywhere, for the full time
            assert lockout.check("otto", THERE, NOW) == pytest.approx(15 * 60)

    def test_a_reserved_try_that_succeeds_is_no_failure(
        self, open_ledger: OpenLedger, accounts: dict[str, Account]
    ) -> None:
        ledger = open_ledger()
        first, second = _lockout(ledger), _lockout(open_ledger())
        for i in range(4):
            _guess(accounts, first, HERE, NOW + i * MINUTE)
        assert login(accounts, second, "otto", PASSWORD, HERE, NOW + 4 * MINUTE).name == "otto"
        since = NOW - timedelta(hours=1)
        found = ledger.login_failures(["name:otto", f"remote:{HERE}"], since)
        # the name starts afresh; the address keeps its four guesses, not the login
        assert found == {f"remote:{HERE}": [NOW + i * MINUTE for i in range(4)]}

    def test_a_restart_keeps_the_lock(self, open_ledger: OpenLedger) -> None:
        before = _lockout(open_ledger())
        for i in range(5):
            before.failed("otto", HERE, NOW + i * MINUTE)
        after = _lockout(open_ledger())
        assert after.check("otto", THERE, NOW + 5 * MINUTE) == pytest.approx(14 * 60)

    def test_a_login_clears_the_shared_count_of_the_name_not_of_the_address(
        self, open_ledger: OpenLedger, accounts: dict[str, Account]
    ) -> None:
        first, second = _lockout(open_ledger()), _lockout(open_ledger())
        for i in range(4):
            _guess(accounts, first, HERE, NOW + i * MINUTE)
        assert login(accounts, second, "otto", PASSWORD, THERE, NOW + 4 * MINUTE).name == "otto"
        # four more failures of the name from elsewhere: not locked (it started afresh) ...
        for i in range(4):
            _guess(accounts, first, f"203.0.113.{i}", NOW + (5 + i) * MINUTE)
        assert second.check("otto", "203.0.113.99", NOW + 9 * MINUTE) is None
        # ... but the address kept its four: one more locks it
        _guess(accounts, second, HERE, NOW + 9 * MINUTE)
        assert first.check("vera", HERE, NOW + 9 * MINUTE) == pytest.approx(15 * 60)

    def test_the_ledger_out_of_reach_neither_locks_out_nor_lets_in(
        self, open_ledger: OpenLedger, accounts: dict[str, Account]
    ) -> None:
        """Decided in docs/console.md: this instance's own lockout takes over."""
        ledger = open_ledger()
        lockout = _lockout(ledger)
        ledger.close()
        with capture_logs() as logs:
            assert login(accounts, lockout, "otto", PASSWORD, HERE, NOW).name == "otto"
            reasons = [_guess(accounts, lockout, HERE, NOW + i * MINUTE) for i in range(6)]
        assert reasons == ["wrong_password"] * 5 + ["locked"]
        unavailable = [e for e in logs if e["event"] == "console_lockout_store_unavailable"]
        assert {e["action"] for e in unavailable} == {"read", "reserve", "record"}


class TestRead:
    def test_the_limit_is_per_key_newest_kept_oldest_first(self, open_ledger: OpenLedger) -> None:
        """A flood of failures from one address does not hide the name's own."""
        ledger = open_ledger()
        for i in range(30):
            ledger.record_login_failure(["remote:192.0.2.10"], NOW + i * timedelta(seconds=1))
        ledger.record_login_failure(["name:otto"], NOW)
        ledger.record_login_failure(["name:otto"], NOW - MINUTE)
        ledger.record_login_failure(["name:vera"], NOW)
        found = ledger.login_failures(
            ["name:otto", "remote:192.0.2.10"], NOW - 2 * MINUTE, limit=10
        )
        assert found["name:otto"] == [NOW - MINUTE, NOW]
        assert found["remote:192.0.2.10"] == [
            NOW + i * timedelta(seconds=1) for i in range(20, 30)
        ]
        assert set(found) == {"name:otto", "remote:192.0.2.10"}
        assert ledger.login_failures(["name:otto"], NOW - timedelta(seconds=30)) == {
            "name:otto": [NOW]
        }


class TestPrune:
    def test_failures_older_than_the_retention_are_pruned(self, open_ledger: OpenLedger) -> None:
        ledger = open_ledger()
        ledger.record_login_failure(["name:old"], NOW - LOGIN_FAILURE_RETENTION - MINUTE)
        ledger.record_login_failure(["name:new"], NOW - MINUTE)
        ledger.prune(NOW)
        since = NOW - 2 * LOGIN_FAILURE_RETENTION
        assert ledger.login_failures(["name:old", "name:new"], since) == {
            "name:new": [NOW - MINUTE]
        }


class TestUpgrade:
    """A ledger of the previous version, holding rows, gains the table and keeps its rows."""

    def test_sqlite(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accounts: dict[str, Account]
    ) -> None:
        path = tmp_path / "ledger.sqlite3"
        alert = make_alert()
        with monkeypatch.context() as patch:
            patch.delitem(sqlite_schema.MIGRATIONS, sqlite_schema.LOGIN_FAILURES_VERSION)
            patch.setattr(sqlite_schema, "LATEST", max(sqlite_schema.MIGRATIONS))
            with SqliteLedger(path) as old:
                assert old.schema_version == sqlite_schema.LOGIN_FAILURES_VERSION - 1
                admit(old, alert)
        with sqlite3.connect(path) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "login_failures" not in tables
        with SqliteLedger(path) as led:
            assert led.schema_version == sqlite_schema.LOGIN_FAILURES_VERSION
            assert admit(led, alert).decision is Decision.DUPLICATE
            lockout = _lockout(led)
            for i in range(5):
                _guess(accounts, lockout, HERE, NOW + i * MINUTE)
        with SqliteLedger(path) as again:
            assert _lockout(again).check("otto", THERE, NOW + 5 * MINUTE) is not None

    def test_postgresql(
        self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        server = request.getfixturevalue("postgres")
        schema = "v6_" + uuid.uuid4().hex[:12]
        alert = make_alert()
        with monkeypatch.context() as patch:
            patch.delitem(postgres_schema.MIGRATIONS, 7)
            patch.setattr(postgres_schema, "LATEST", 6)
            with PostgresLedger(server.dsn, schema=schema) as old:
                assert old.schema_version == 6
                admit(old, alert)  # type: ignore[arg-type]
        with PostgresLedger(server.dsn, schema=schema) as led:
            assert led.schema_version == 7
            assert admit(led, alert).decision is Decision.DUPLICATE  # type: ignore[arg-type]
            led.record_login_failure(["name:otto", "remote:192.0.2.10"], NOW)
            assert led.login_failures(["name:otto"], NOW - MINUTE) == {"name:otto": [NOW]}
        with psycopg.connect(server.dsn) as conn:
            versions = {r[0] for r in conn.execute(f"SELECT version FROM {schema}.schema_version")}
        assert versions == set(postgres_schema.MIGRATIONS)
