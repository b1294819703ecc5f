"""The console's accounts: roles, the users file as people edit it, and personal tokens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.console.accounts import (
    ROLES,
    TOKEN_PREFIX,
    Account,
    account_for_token,
    add_account,
    ensure_generated_operator,
    read_accounts,
    remove_account,
    set_token,
)
from gateway.errors import ConfigError
from gateway.passwords import hash_password, verify_password
from tests.console.conftest import PASSWORDS, ROLE_OF

HASH = hash_password("x")
TOKEN_HASH = "a" * 64


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestRoles:
    """viewer < operator < admin: each may do what the ones before it may."""

    @pytest.mark.parametrize(
        ("role", "allowed"),
        [("viewer", {"view"}), ("operator", {"view", "approve"}),
         ("admin", {"view", "approve", "admin"})],
    )
    def test_what_each_role_may_do(self, role: str, allowed: set[str]) -> None:
        account = Account("someone", role, HASH)
        assert {a for a in ("view", "approve", "admin") if account.can(a)} == allowed

    def test_an_unknown_role_may_do_nothing(self) -> None:
        assert not Account("someone", "root", HASH).can("view")

    def test_an_unknown_action_is_a_programming_error(self) -> None:
        with pytest.raises(ValueError, match="unknown action 'aprove'; actions: view"):
            Account("someone", "admin", HASH).can("aprove")

    def test_repr_leaves_the_hashes_out(self) -> None:
        text = repr(Account("someone", "admin", HASH, TOKEN_HASH))
        assert "someone" in text
        assert HASH not in text
        assert TOKEN_HASH not in text


class TestUsersFile:
    """The file round-trips, keeps what people wrote, and is rewritten whole, 0600."""

    def test_accounts_read_back_with_their_roles(self, accounts: dict[str, Account]) -> None:
        assert {name: a.role for name, a in accounts.items()} == ROLE_OF
        for name, password in PASSWORDS.items():
            assert verify_password(password, accounts[name].password_hash)
            assert accounts[name].token_sha256 == ""

    def test_a_missing_file_has_no_accounts(self, tmp_path: Path) -> None:
        assert read_accounts(tmp_path / "nothing-here") == {}

    def test_comments_blank_lines_and_other_accounts_are_kept(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        lines = [
            "# EOC accounts, reviewed 2024-05-01",
            "",
            f"first:viewer:{HASH}",
            "   # the night desk  ",
            f"second:operator:{HASH}:{TOKEN_HASH}",
            f"third:admin:{HASH}",
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        add_account(path, "second", "admin", "new password", replace=True)
        add_account(path, "fourth", "viewer", "pw4")
        token = set_token(path, "first")
        assert remove_account(path, "third")
        kept = path.read_text(encoding="utf-8").splitlines()
        assert kept[:2] == lines[:2]
        assert kept[3] == lines[3]
        assert kept[2].startswith("first:viewer:" + HASH + ":")
        assert kept[4].startswith("second:admin:scrypt$")
        assert kept[4].endswith(":" + TOKEN_HASH)  # replacing keeps the personal token
        assert kept[5].startswith("fourth:viewer:scrypt$")
        assert len(kept) == 6
        accounts = read_accounts(path)
        assert set(accounts) == {"first", "second", "fourth"}
        assert verify_password("new password", accounts["second"].password_hash)
        assert account_for_token(accounts, token) == accounts["first"]

    def test_a_new_file_starts_with_a_comment_saying_what_it_is(self, tmp_path: Path) -> None:
        path = tmp_path / "sub" / "users"
        add_account(path, "ada", "admin", "pw")
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# borderlink console accounts")
        assert "NAME:ROLE:scrypt$" in first

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("alice:admin", "expected NAME:ROLE:scrypt$...[:TOKEN_SHA256] (3 or 4 fields), found"),
            ("alice:admin", "found 2 field(s)"),
            (f"alice:admin:{HASH}:{TOKEN_HASH}:x", "found 5 field(s)"),
            (f"alice:boss:{HASH}", "unknown role 'boss'; roles: viewer, operator, admin"),
            (f"al ice:admin:{HASH}", "'al ice' is not an account name: 1-64 letters, digits"),
            (f"-alice:admin:{HASH}", "'-alice' is not an account name"),
            (f"{'a' * 65}:admin:{HASH}", "is not an account name"),
            (f"ada:admin:{HASH}", "account 'ada' is listed twice (first on line 3)"),
            ("alice:admin:hunter2", "the password of 'alice' is not an scrypt hash"),
            ("alice:admin:scrypt$16384$8$1$AAAA", "the password of 'alice' is not an scrypt"),
            ("alice:admin:scrypt$1073741824$8$1$AAAA$AAAA", "is not an scrypt hash"),
            (f"alice:admin:{HASH}:ABC", "the token of 'alice' is not a sha256"),
            (f"alice:admin:{HASH}:{'A' * 64}", "the token of 'alice' is not a sha256"),
        ],
    )
    def test_every_error_names_file_and_line(
        self, tmp_path: Path, line: str, message: str
    ) -> None:
        path = tmp_path / "users"
        path.write_text(f"# accounts\n\nada:admin:{HASH}\n{line}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            read_accounts(path)
        assert str(caught.value) == f"{path}:4: {caught.value.detail}"
        assert message in caught.value.detail
        assert caught.value.place == "line 4"
        assert "hunter2" not in str(caught.value)  # a password typed in the file is not echoed

    @pytest.mark.parametrize("content", [b"\xff\xfe not utf-8\n", None])
    def test_an_unreadable_file_names_itself(self, tmp_path: Path, content: bytes | None) -> None:
        path = tmp_path / "users"
        if content is None:
            path.mkdir()  # a folder where the file should be
        else:
            path.write_bytes(content)
        with pytest.raises(ConfigError, match=r"users: cannot read the console users file"):
            read_accounts(path)
        with pytest.raises(ConfigError):
            add_account(path, "ada", "admin", "pw")

    def test_written_files_are_0600_even_if_they_were_not(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        add_account(path, "ada", "admin", "pw")
        assert _mode(path) == 0o600
        path.chmod(0o644)
        set_token(path, "ada")
        assert _mode(path) == 0o600

    def test_a_rewrite_replaces_the_file_whole(self, users_file: Path) -> None:
        inode, text = users_file.stat().st_ino, users_file.read_text(encoding="utf-8")
        with users_file.open(encoding="utf-8") as reader:  # a reader of the old file
            set_token(users_file, "otto")
            assert reader.read() == text  # sees the old file whole, never a mix
        assert users_file.stat().st_ino != inode  # renamed over, not written in place
        assert [p.name for p in users_file.parent.iterdir()] == [users_file.name]

    def test_a_failed_rewrite_leaves_the_old_file_and_no_litter(
        self, users_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = users_file.read_bytes()

        def full_disk(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(OSError, match="No space left"):
            add_account(users_file, "newcomer", "viewer", "pw")
        assert users_file.read_bytes() == before
        assert [p.name for p in users_file.parent.iterdir()] == [users_file.name]

    def test_the_rewrite_is_synced_before_it_is_renamed(
        self, users_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        events: list[str] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            events.append("fsync")
            real_fsync(fd)

        def replace(src: str, dst: str) -> None:
            events.append("rename")
            real_replace(src, dst)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        remove_account(users_file, "vera")
        assert events[:2] == ["fsync", "rename"]  # then the folder, where it can be synced


class TestChanges:
    """add, remove and token refuse what would make a bad file, and say why."""

    @pytest.mark.parametrize(
        ("name", "role", "password", "message"),
        [
            ("bad name", "viewer", "pw", "is not an account name"),
            ("bob\n", "viewer", "pw", "is not an account name"),  # no line break smuggled in
            ("bob:admin", "viewer", "pw", "is not an account name"),
            ("bob", "root", "pw", "unknown role 'root'; roles: viewer, operator, admin"),
            ("bob", "viewer", "", "the password is empty"),
        ],
    )
    def test_bad_input_is_refused(
        self, tmp_path: Path, name: str, role: str, password: str, message: str
    ) -> None:
        path = tmp_path / "users"
        with pytest.raises(ValueError, match=message):
            add_account(path, name, role, password)
        assert not path.exists()

    def test_an_existing_account_is_replaced_only_when_asked(self, users_file: Path) -> None:
        with pytest.raises(ValueError, match="account 'vera' exists"):
            add_account(users_file, "vera", "admin", "pw")
        assert read_accounts(users_file)["vera"].role == "viewer"
        assert add_account(users_file, "vera", "admin", "pw", replace=True).role == "admin"
        assert read_accounts(users_file)["vera"].role == "admin"

    def test_removing_what_is_not_there(self, users_file: Path, tmp_path: Path) -> None:
        before = users_file.read_bytes()
        assert not remove_account(users_file, "nobody")
        assert users_file.read_bytes() == before
        assert not remove_account(tmp_path / "missing", "nobody")
        assert not (tmp_path / "missing").exists()

    def test_every_role_can_be_written(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        for role in ROLES:
            add_account(path, f"user.{role}@eoc", role, "pw")
        assert {a.role for a in read_accounts(path).values()} == set(ROLES)


class TestTokens:
    """A personal token is shown once, kept as its sha256, and replaced by the next one."""

    def test_a_token_finds_its_account(self, users_file: Path) -> None:
        token = set_token(users_file, "otto")
        assert token.startswith(TOKEN_PREFIX)
        assert len(token) == len(TOKEN_PREFIX) + 32
        assert token not in users_file.read_text(encoding="utf-8")
        accounts = read_accounts(users_file)
        assert account_for_token(accounts, token) == accounts["otto"]

    def test_a_new_token_ends_the_old_one(self, users_file: Path) -> None:
        old = set_token(users_file, "otto")
        new = set_token(users_file, "otto")
        assert new != old
        accounts = read_accounts(users_file)
        assert account_for_token(accounts, old) is None
        assert account_for_token(accounts, new) == accounts["otto"]

    @pytest.mark.parametrize("token", ["", "blk_", "blk_" + "x" * 32, "\udcff", "a" * 64])
    def test_anything_else_finds_nobody(self, users_file: Path, token: str) -> None:
        set_token(users_file, "otto")
        assert account_for_token(read_accounts(users_file), token) is None

    def test_an_account_without_a_token_is_not_found_by_the_empty_one(
        self, accounts: dict[str, Account]
    ) -> None:
        assert account_for_token(accounts, "") is None

    def test_a_token_for_nobody(self, users_file: Path) -> None:
        with pytest.raises(KeyError):
            set_token(users_file, "nobody")


class TestGeneratedOperator:
    """The demo's first account: made once, its password in a 0600 file, never overwritten."""

    def test_made_once_when_there_is_no_account(self, tmp_path: Path) -> None:
        users, secret = tmp_path / "var" / "console-users", tmp_path / "var" / "console-password"
        password = ensure_generated_operator(users, secret)
        assert password
        assert secret.read_text(encoding="utf-8") == password + "\n"
        assert _mode(secret) == 0o600
        account = read_accounts(users)["operator"]
        assert account.role == "operator"
        assert verify_password(password, account.password_hash)
        assert ensure_generated_operator(users, secret) is None
        assert secret.read_text(encoding="utf-8") == password + "\n"

    def test_not_made_when_someone_wrote_accounts(self, users_file: Path, tmp_path: Path) -> None:
        secret = tmp_path / "console-password"
        assert ensure_generated_operator(users_file, secret) is None
        assert not secret.exists()
        assert "operator" not in read_accounts(users_file)

    def test_made_when_the_file_has_only_comments(self, tmp_path: Path) -> None:
        users = tmp_path / "users"
        users.write_text("# nobody yet\n", encoding="utf-8")
        assert ensure_generated_operator(users, tmp_path / "pw")
        assert users.read_text(encoding="utf-8").startswith("# nobody yet\noperator:operator:")
