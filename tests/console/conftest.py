"""Fixtures of the console tests: a users file with one account of each role."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.console.accounts import Account, add_account, read_accounts

PASSWORDS = {"vera": "vera-sees-1", "otto": "otto-approves-2", "ada": "ada-manages-3"}
ROLE_OF = {"vera": "viewer", "otto": "operator", "ada": "admin"}


@pytest.fixture(scope="session")
def users_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hashed once for the session (scrypt is slow on purpose); tests copy it."""
    path = tmp_path_factory.mktemp("users") / "console-users"
    for name, password in PASSWORDS.items():
        add_account(path, name, ROLE_OF[name], password)
    return path


@pytest.fixture
def users_file(users_template: Path, tmp_path: Path) -> Path:
    """A users file of this test's own, holding vera (viewer), otto (operator), ada (admin)."""
    path = tmp_path / "console-users"
    path.write_bytes(users_template.read_bytes())
    path.chmod(0o600)
    return path


@pytest.fixture
def accounts(users_file: Path) -> dict[str, Account]:
    return read_accounts(users_file)
