"""Named accounts of the EOC console: who may look, who may approve holds, who may manage.

The accounts live in one users file (``var/console-users`` unless configured otherwise;
``borderlink user`` writes it), one account a line, ``#`` comments and blank lines allowed::

    # borderlink console accounts
    alice:admin:scrypt$16384$8$1$...$...
    night-desk:operator:scrypt$16384$8$1$...$...:9f86d081884c7d65...

The fields are the name (:data:`~gateway.passwords.ACCOUNT_NAME`, the rule of every account
file of the gateway), the role, the scrypt hash of the password and, optionally, the sha256
(hex) of the account's personal API token, for scripts. Roles are ordered ``viewer`` <
``operator`` < ``admin``: a viewer sees; an operator also approves and rejects holds; an admin
also manages.

A file that cannot be read raises :class:`~gateway.errors.ConfigError` naming ``file:line``
and what is wrong. Changes rewrite the file atomically (mode 0600) and keep every line they do
not change (comments, other accounts) as it was. Nothing here blocks on anything but the
disk and scrypt (about 50 ms for each password hashed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import ConfigError
from gateway.passwords import ACCOUNT_NAME, ACCOUNT_NAME_RULE, hash_password, is_password_hash
from gateway.statefile import atomic_write

__all__ = [
    "ACTIONS",
    "DEFAULT_USERS_FILE",
    "GENERATED_OPERATOR",
    "ROLES",
    "TOKEN_PREFIX",
    "Account",
    "account_for_token",
    "add_account",
    "check_name",
    "check_role",
    "ensure_generated_operator",
    "generate_password",
    "hash_token",
    "read_accounts",
    "remove_account",
    "role_can",
    "set_token",
]

ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may
_LEAST_ROLE = {"view": "viewer", "approve": "operator", "admin": "admin"}  # action -> role
ACTIONS = tuple(_LEAST_ROLE)
# A token pasted in a log or a chat is recognisable (and found by secret scanners).
TOKEN_PREFIX = "blk_"  # noqa: S105 - a prefix, not a password
DEFAULT_USERS_FILE = Path("var/console-users")
GENERATED_OPERATOR = "operator"
_TOKEN_SHA256 = re.compile(r"[0-9a-f]{64}")
_FORMAT = "NAME:ROLE:scrypt$...[:TOKEN_SHA256]"
_HEADER = (
    f"# borderlink console accounts, one a line: {_FORMAT}",
    "# written by 'borderlink user'; 'borderlink help console-accounts' explains",
)


@dataclass(frozen=True, slots=True)
class Account:
    """One console account. The hashes are left out of ``repr`` so that logging an account
    never writes them out."""

    name: str
    role: str
    password_hash: str = field(repr=False)
    token_sha256: str = field(default="", repr=False)

    def can(self, action: str) -> bool:
        """Whether this account may do ``action`` (see :func:`role_can`)."""
        return role_can(self.role, action)


def role_can(role: str, action: str) -> bool:
    """Whether ``role`` may do ``action`` (``view``, ``approve`` or ``admin``). An unknown
    action is a programming error and raises ValueError rather than quietly answering no (or
    yes); an unknown role may do nothing."""
    least = _LEAST_ROLE.get(action)
    if least is None:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    return role in ROLES and ROLES.index(role) >= ROLES.index(least)


def check_name(name: str) -> None:
    """Raise ValueError (saying what is allowed) unless ``name`` is a valid account name."""
    if not ACCOUNT_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an account name: {ACCOUNT_NAME_RULE}")


def check_role(role: str) -> None:
    """Raise ValueError (listing the roles) unless ``role`` is one."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")


def generate_password() -> str:
    """A password for an account nobody chose one for (the demo's, ``user add --generate``):
    144 random bits, in characters safe to paste anywhere."""
    return secrets.token_urlsafe(18)


def hash_token(token: str) -> str:
    """What the users file keeps of a personal API token: a token is random and long, so a
    plain hash suffices (no salt, no scrypt) and checking one costs nothing."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------------------ reading


def read_accounts(path: Path) -> dict[str, Account]:
    """The accounts of a users file by name; none when the file does not exist (the caller
    decides whether that is an error). ConfigError names ``file:line`` and what is wrong."""
    return {name: account for name, (_, account) in _load(path)[1].items()}


def _load(path: Path) -> tuple[list[str], dict[str, tuple[int, Account]]]:
    """The file's lines as they are, and each account with the index of its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], {}
    except (OSError, UnicodeDecodeError) as exc:
        detail = f"cannot read the console users file: {exc}"
        raise ConfigError(f"{path}: {detail}", file=str(path), detail=detail) from None
    lines = text.splitlines()
    found: dict[str, tuple[int, Account]] = {}
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            account = _parse(stripped)
        except ValueError as exc:
            raise _line_error(path, index, str(exc)) from None
        if account.name in found:
            first = found[account.name][0] + 1
            detail = f"account {account.name!r} is listed twice (first on line {first})"
            raise _line_error(path, index, detail)
        found[account.name] = (index, account)
    return lines, found


def _parse(line: str) -> Account:
    """One account line; ValueError says what is wrong without repeating the line (it may
    hold a password typed where the hash belongs)."""
    fields = line.split(":")
    if len(fields) not in (3, 4):
        raise ValueError(f"expected {_FORMAT} (3 or 4 fields), found {len(fields)} field(s)")
    name, role, stored = fields[:3]
    token = fields[3] if len(fields) == 4 else ""
    check_name(name)
    check_role(role)
    if not is_password_hash(stored):
        raise ValueError(f"the password of {name!r} is not an scrypt hash (borderlink user add)")
    if token and not _TOKEN_SHA256.fullmatch(token):
        raise ValueError(f"the token of {name!r} is not a sha256 (64 lowercase hex digits)")
    return Account(name, role, stored, token)


def _line_error(path: Path, index: int, detail: str) -> ConfigError:
    return ConfigError(
        f"{path}:{index + 1}: {detail}", file=str(path), place=f"line {index + 1}", detail=detail
    )


# ------------------------------------------------------------------------------ writing


def add_account(
    path: Path, name: str, role: str, password: str, *, replace: bool = False
) -> Account:
    """Add an account to the users file (created if missing), or with ``replace`` change the
    password and role of an existing one, which keeps its personal token and its line.

    ValueError for a bad name or role, an empty password, or an account that exists without
    ``replace``; ConfigError when the file cannot be read; OSError when it cannot be written.
    """
    check_name(name)
    check_role(role)
    if not password:
        raise ValueError("the password is empty")
    lines, found = _load(path)
    if name in found and not replace:
        raise ValueError(f"{path}: account {name!r} exists (replace it to change it)")
    token = found[name][1].token_sha256 if name in found else ""
    account = Account(name, role, hash_password(password), token)
    _store(path, lines, found, account)
    return account


def remove_account(path: Path, name: str) -> bool:
    """Remove an account from the users file; False (and the file untouched) if it has none
    of that name."""
    lines, found = _load(path)
    if name not in found:
        return False
    del lines[found[name][0]]
    _save(path, lines)
    return True


def set_token(path: Path, name: str) -> str:
    """Give an account a new personal API token and return it: the file keeps only its
    sha256, so this is the one time it can be seen; the previous token stops working.
    KeyError when there is no such account."""
    lines, found = _load(path)
    if name not in found:
        raise KeyError(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)  # 32 characters: 192 random bits
    account = dataclasses.replace(found[name][1], token_sha256=hash_token(token))
    _store(path, lines, found, account)
    return token


def _store(
    path: Path, lines: list[str], found: Mapping[str, tuple[int, Account]], account: Account
) -> None:
    """Write ``account`` in its own line if it has one, else at the end (after the header
    comment, when the file is new)."""
    line = ":".join(
        [account.name, account.role, account.password_hash]
        + ([account.token_sha256] if account.token_sha256 else [])
    )
    if account.name in found:
        lines[found[account.name][0]] = line
    else:
        lines = [*(lines or _HEADER), line]
    _save(path, lines)


def _save(path: Path, lines: list[str]) -> None:
    atomic_write(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))


# ------------------------------------------------------------------------------ using


def account_for_token(accounts: Mapping[str, Account], token: str) -> Account | None:
    """The account whose personal API token this is, or None. Every account is compared, in
    constant time, so the time taken says nothing about which tokens exist."""
    digest = hash_token(token)
    match = None
    for account in accounts.values():
        if account.token_sha256 and hmac.compare_digest(account.token_sha256, digest):
            match = account
    return match


def ensure_generated_operator(path: Path, password_path: Path) -> str | None:
    """For the demo: when the users file holds no account, create ``operator`` (role
    operator) with a generated password, written to ``password_path`` (mode 0600), and
    return the password; None when the file has accounts already (whoever wrote them
    decides who may log in). The password file is written first: a crash in between leaves
    no account nobody can log in to."""
    if read_accounts(path):
        return None
    password = generate_password()
    atomic_write(password_path, f"{password}\n".encode())
    add_account(path, GENERATED_OPERATOR, "operator", password, replace=True)
    return password
