"""Signed session cookies: accepted by every instance with the secret, by nobody else, and
never longer than the account stays as it was."""

from __future__ import annotations

import dataclasses
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from gateway.console.accounts import Account, add_account, read_accounts, remove_account
from gateway.console.sessions import (
    COOKIE_NAME,
    SECRET_BYTES,
    SessionSigner,
    load_or_create_secret,
)
from gateway.errors import ConfigError

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECRET = bytes(range(32))


@pytest.fixture
def signer() -> SessionSigner:
    return SessionSigner(SECRET, 8 * HOUR)


class TestIssueAndCheck:
    """A session carries the name and role, until the lifetime runs out."""

    def test_a_fresh_session_is_accepted(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        value = signer.issue(accounts["otto"], NOW)
        session = signer.check(value, NOW + HOUR, accounts)
        assert session is not None
        assert (session.name, session.role) == ("otto", "operator")
        assert session.expires == NOW + 8 * HOUR
        assert session.can("approve")
        assert not session.can("admin")
        assert value.isascii()
        assert len(value) < 300
        assert "otto" not in repr(session.csrf_token)

    def test_it_ends_when_its_lifetime_does(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        value = signer.issue(accounts["otto"], NOW)
        assert signer.check(value, NOW + 8 * HOUR - timedelta(seconds=1), accounts) is not None
        assert signer.check(value, NOW + 8 * HOUR, accounts) is None
        assert signer.check(value, NOW + 100 * HOUR, accounts) is None

    def test_a_shorter_lifetime_applies_to_sessions_issued_before(
        self, accounts: dict[str, Account]
    ) -> None:
        value = SessionSigner(SECRET, 12 * HOUR).issue(accounts["otto"], NOW)
        shorter = SessionSigner(SECRET, 2 * HOUR)
        session = shorter.check(value, NOW + HOUR, accounts)
        assert session is not None
        assert session.expires == NOW + 2 * HOUR
        assert shorter.check(value, NOW + 3 * HOUR, accounts) is None

    def test_every_changed_character_is_refused(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        value = signer.issue(accounts["vera"], NOW)
        for i, char in enumerate(value):
            for other in {"A", "B", "-", "."} - {char}:
                tampered = value[:i] + other + value[i + 1 :]
                assert signer.check(tampered, NOW, accounts) is None, (i, other)
        assert signer.check(value[:-1], NOW, accounts) is None
        assert signer.check(value + "A", NOW, accounts) is None
        assert signer.check(None, NOW, accounts) is None  # no cookie at all

    def test_a_role_claimed_in_a_forged_payload_is_refused(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        vera = signer.issue(accounts["vera"], NOW)
        ada = signer.issue(accounts["ada"], NOW)
        spliced = vera.split(".")[0] + "." + ada.split(".")[1]
        assert signer.check(spliced, NOW, accounts) is None

    def test_naive_times_are_a_programming_error(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        with pytest.raises(ValueError, match="aware"):
            signer.issue(accounts["vera"], datetime(2024, 5, 1))

    @pytest.mark.parametrize(("secret", "lifetime"), [(b"short", HOUR), (SECRET, timedelta(0))])
    def test_a_weak_secret_or_no_lifetime_is_refused(
        self, secret: bytes, lifetime: timedelta
    ) -> None:
        with pytest.raises(ValueError, match=r"secret|lifetime"):
            SessionSigner(secret, lifetime)


class TestTheAccountDecides:
    """The users file is read again at each check: a change ends the sessions it concerns."""

    def test_a_removed_account_has_no_session(
        self, signer: SessionSigner, users_file: Path
    ) -> None:
        value = signer.issue(read_accounts(users_file)["otto"], NOW)
        remove_account(users_file, "otto")
        assert signer.check(value, NOW, read_accounts(users_file)) is None

    def test_a_demoted_account_loses_its_session(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        value = signer.issue(accounts["otto"], NOW)
        demoted = {**accounts, "otto": dataclasses.replace(accounts["otto"], role="viewer")}
        assert signer.check(value, NOW, demoted) is None
        promoted = {**accounts, "otto": dataclasses.replace(accounts["otto"], role="admin")}
        assert signer.check(value, NOW, promoted) is None

    def test_a_new_password_ends_the_sessions_of_the_old(
        self, signer: SessionSigner, users_file: Path
    ) -> None:
        value = signer.issue(read_accounts(users_file)["otto"], NOW)
        add_account(users_file, "otto", "operator", "a new password", replace=True)
        assert signer.check(value, NOW, read_accounts(users_file)) is None

    def test_a_new_token_leaves_the_session_alone(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        value = signer.issue(accounts["otto"], NOW)
        tokened = {**accounts, "otto": dataclasses.replace(accounts["otto"], token_sha256="a" * 64)}
        assert signer.check(value, NOW, tokened) is not None


class TestSharedSecret:
    """Instances with the same secret file accept each other's sessions; others do not."""

    def test_created_once_0600_and_read_back(self, tmp_path: Path) -> None:
        path = tmp_path / "var" / "console-secret"
        secret = load_or_create_secret(path)
        assert len(secret) == SECRET_BYTES
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_or_create_secret(path) == secret
        assert load_or_create_secret(tmp_path / "other") != secret

    def test_instances_sharing_the_file_share_sessions(
        self, tmp_path: Path, accounts: dict[str, Account]
    ) -> None:
        shared = tmp_path / "shared-secret"
        east = SessionSigner(load_or_create_secret(shared), 8 * HOUR)
        west = SessionSigner(load_or_create_secret(shared), 8 * HOUR)
        elsewhere = SessionSigner(load_or_create_secret(tmp_path / "own-secret"), 8 * HOUR)
        value = east.issue(accounts["ada"], NOW)
        from_west = west.check(value, NOW, accounts)
        assert from_west is not None
        assert from_west.name == "ada"
        assert elsewhere.check(value, NOW, accounts) is None

    def test_a_longer_secret_written_by_hand_is_used_whole(self, tmp_path: Path) -> None:
        path = tmp_path / "secret"
        path.write_bytes(b"0123456789abcdef" * 4 + b"\n")
        assert load_or_create_secret(path) == path.read_bytes()

    def test_a_short_secret_is_refused_with_its_file(self, tmp_path: Path) -> None:
        path = tmp_path / "secret"
        path.write_bytes(b"too short\n")
        with pytest.raises(ConfigError, match=r"secret: the console session secret is 10 bytes"):
            load_or_create_secret(path)

    def test_an_unreadable_secret_names_its_file(self, tmp_path: Path) -> None:
        path = tmp_path / "secret"
        path.mkdir()
        with pytest.raises(ConfigError, match=r"secret: cannot read or create"):
            load_or_create_secret(path)


class TestCsrf:
    """One CSRF token a session: stable while it lasts, different for the next one."""

    def test_stable_within_a_session_and_new_with_the_next(
        self, signer: SessionSigner, accounts: dict[str, Account]
    ) -> None:
        first = signer.issue(accounts["otto"], NOW)
        second = signer.issue(accounts["otto"], NOW)
        a1 = signer.check(first, NOW, accounts)
        a2 = signer.check(first, NOW + HOUR, accounts)
        b = signer.check(second, NOW, accounts)
        assert a1 is not None
        assert a2 is not None
        assert b is not None
        assert a1.csrf_token == a2.csrf_token
        assert a1.csrf_token != b.csrf_token
        assert a1.csrf_ok(a2.csrf_token)
        assert not a1.csrf_ok(b.csrf_token)

    @pytest.mark.parametrize("token", [None, "", "x", "é" * 43, "\udcff"])
    def test_anything_else_is_no(
        self, signer: SessionSigner, accounts: dict[str, Account], token: str | None
    ) -> None:
        session = signer.check(signer.issue(accounts["otto"], NOW), NOW, accounts)
        assert session is not None
        assert not session.csrf_ok(token)

    def test_another_secret_makes_other_tokens(self, accounts: dict[str, Account]) -> None:
        value = SessionSigner(SECRET, HOUR).issue(accounts["otto"], NOW)
        session = SessionSigner(SECRET, HOUR).check(value, NOW, accounts)
        assert session is not None
        assert session.csrf_token not in value  # not readable from the cookie either


class TestCookie:
    """The cookie as aiohttp sets it: HttpOnly, SameSite=Strict, Path=/, Secure over TLS."""

    @pytest.mark.parametrize("secure", [True, False])
    def test_set_cookie_attributes(self, signer: SessionSigner, secure: bool) -> None:
        response = web.Response()
        response.set_cookie(COOKIE_NAME, "value", **signer.cookie_kwargs(secure))
        header = response.cookies[COOKIE_NAME].OutputString()
        assert header.startswith("borderlink_session=value")
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"):
            assert attribute in header
        assert ("Secure" in header) is secure


@given(st.text(max_size=2000))
def test_check_never_raises_on_any_string(value: str) -> None:
    """Whatever a client sends as the cookie, the answer is a session or None."""
    assert SessionSigner(SECRET, HOUR).check(value, NOW, {}) is None


_ALPHABET = st.sampled_from("ABCxyz019-_.=|+/ \x00é")


@given(st.text(_ALPHABET, max_size=400), st.integers(0, 300))
def test_check_never_raises_on_cookies_near_a_real_one(noise: str, cut: int) -> None:
    """Real cookies cut, spliced and padded with cookie-like characters: still only None."""
    account = Account("otto", "operator", "scrypt$16384$8$1$AAAA$AAAA")
    signer = SessionSigner(SECRET, HOUR)
    value = signer.issue(account, NOW)
    for candidate in (value[:cut] + noise, noise + value[cut:], value[:cut] + noise + value[cut:]):
        result = signer.check(candidate, NOW, {"otto": account})
        assert result is None or candidate == value
