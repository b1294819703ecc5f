"""``borderlink user`` as an administrator's script runs it: a subprocess on a real users
file, its output, its exit code, and an error that names the file and line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.console.accounts import account_for_token, read_accounts
from gateway.passwords import verify_password


def user(
    *argv: str, users: Path | None, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``borderlink user ARGV [--users-file USERS]`` with ``stdin`` as its standard input."""
    where = ["--users-file", str(users)] if users is not None else []
    return subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [sys.executable, "-m", "gateway", "user", *argv, *where],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.fixture
def users(tmp_path: Path) -> Path:
    return tmp_path / "console-users"


class TestUserCommand:
    """add, list, token, remove: what a script reads on stdout, what happened on stderr."""

    def test_add_list_token_remove(self, users: Path) -> None:
        added = user("add", "ada", "--role", "admin", users=users, stdin="ada's password\n")
        assert added.returncode == 0, added.stderr
        assert added.stdout == ""
        assert f"ada (admin) written to {users}" in added.stderr
        assert verify_password("ada's password", read_accounts(users)["ada"].password_hash)

        generated = user("add", "otto", "--role", "operator", "--generate", users=users)
        assert generated.returncode == 0, generated.stderr
        password = generated.stdout.strip()
        assert len(password) >= 20
        assert verify_password(password, read_accounts(users)["otto"].password_hash)

        token = user("token", "otto", users=users)
        assert token.returncode == 0, token.stderr
        assert token.stdout.startswith("blk_")
        assert "the previous one no longer works" in token.stderr
        accounts = read_accounts(users)
        assert account_for_token(accounts, token.stdout.strip()) == accounts["otto"]

        listed = user("list", "--json", users=users)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == [
            {"name": "ada", "role": "admin", "token": False},
            {"name": "otto", "role": "operator", "token": True},
        ]
        plain = user("list", users=users)
        assert plain.stdout.splitlines() == ["ada   admin     -", "otto  operator  token"]
        assert "scrypt" not in listed.stdout + plain.stdout

        removed = user("remove", "otto", users=users)
        assert removed.returncode == 0, removed.stderr
        assert f"otto removed from {users}" in removed.stderr
        assert set(read_accounts(users)) == {"ada"}

    def test_replacing_needs_replace_and_keeps_the_token(self, users: Path) -> None:
        user("add", "vera", "--role", "viewer", users=users, stdin="first\n")
        token = user("token", "vera", users=users).stdout.strip()
        again = user("add", "vera", "--role", "operator", users=users, stdin="second\n")
        assert again.returncode == 2
        assert f"vera exists in {users}; --replace changes it" in again.stderr
        replaced = user(
            "add", "vera", "--role", "operator", "--replace", users=users, stdin="second\n"
        )
        assert replaced.returncode == 0, replaced.stderr
        accounts = read_accounts(users)
        assert accounts["vera"].role == "operator"
        assert verify_password("second", accounts["vera"].password_hash)
        assert account_for_token(accounts, token) == accounts["vera"]

    def test_the_default_users_file(self, tmp_path: Path) -> None:
        done = user("add", "ada", "--role", "admin", users=None, stdin="pw\n", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert set(read_accounts(tmp_path / "var" / "console-users")) == {"ada"}
        assert "(default: var/console-users)" in user("add", "--help", users=None).stdout

    def test_an_empty_list(self, users: Path) -> None:
        done = user("list", "--json", users=users)
        assert (done.returncode, json.loads(done.stdout)) == (0, [])
        done = user("list", users=users)
        assert (done.returncode, done.stdout) == (0, "")
        assert f"no accounts in {users}" in done.stderr


class TestExitCodes:
    """1: no such account; 2: bad input, said with what is allowed or where the file is wrong."""

    @pytest.mark.parametrize("action", ["remove", "token"])
    def test_no_such_account_is_1(self, users: Path, action: str) -> None:
        user("add", "ada", "--role", "admin", users=users, stdin="pw\n")
        done = user(action, "nobody", users=users)
        assert done.returncode == 1
        assert f"no account 'nobody' in {users}" in done.stderr
        assert done.stdout == ""

    @pytest.mark.parametrize(
        ("argv", "stdin", "message"),
        [
            (("add", "bad name", "--role", "admin"), "pw\n", "'bad name' is not an account name"),
            (("add", "ada", "--role", "root"), "pw\n", "invalid choice: 'root'"),
            (("add", "ada", "--role", "admin"), "", "no password on standard input"),
            (("add", "ada", "--role", "admin"), "\n", "no password on standard input"),
            (("add", "ada"), "pw\n", "the following arguments are required: --role"),
            (("remove", "a:b"), "", "'a:b' is not an account name: 1-64 letters"),
            (("token", "a b"), "", "'a b' is not an account name"),
            ((), "", "required: ACTION"),
        ],
    )
    def test_bad_input_is_2(
        self, users: Path, argv: tuple[str, ...], stdin: str, message: str
    ) -> None:
        done = user(*argv, users=users if argv else None, stdin=stdin)
        assert done.returncode == 2
        assert message in done.stderr
        assert not users.exists()

    @pytest.mark.parametrize(
        "argv",
        [("list",), ("list", "--json"), ("add", "x", "--role", "viewer"), ("remove", "x"),
         ("token", "x")],
    )
    def test_a_broken_users_file_is_2_with_file_and_line(
        self, users: Path, argv: tuple[str, ...]
    ) -> None:
        users.write_text("# accounts\nada:admin:plain-password\n", encoding="utf-8")
        done = user(*argv, users=users, stdin="pw\n")
        assert done.returncode == 2
        assert f"{users}:2: the password of 'ada' is not an scrypt hash" in done.stderr
        assert "plain-password" not in done.stderr
        assert done.stdout == ""
        assert users.read_text(encoding="utf-8") == "# accounts\nada:admin:plain-password\n"

    def test_a_users_file_that_cannot_be_written_is_2(self, tmp_path: Path) -> None:
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("", encoding="utf-8")
        done = user("add", "ada", "--role", "admin", users=blocker / "users", stdin="pw\n")
        assert done.returncode == 2
        assert "not-a-folder" in done.stderr
