"""Password hashes: scrypt, in one self-describing string ``scrypt$N$r$p$salt$hash``.

Used for the accounts of the embedded MQTT broker and of the EOC console (and any other
account file of the gateway), which also share one rule for account names
(:data:`ACCOUNT_NAME`). Verification is in constant time and refuses cost parameters a hostile
file could use to make one login take minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "ACCOUNT_NAME",
    "ACCOUNT_NAME_RULE",
    "hash_password",
    "is_password_hash",
    "verify_password",
]

# An account name in any users file of the gateway: safe in a ``name:...`` line, a log line
# and a URL; use ``fullmatch`` (``$`` alone would let a trailing newline through).
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
ACCOUNT_NAME_RULE = "1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A password as the embedded broker stores it: ``scrypt$N$r$p$salt$hash``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{b64(salt).decode()}${b64(digest).decode()}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    """``(N, r, p, salt, hash)`` of a stored hash, or None when it is malformed or its cost is
    beyond what a login may spend (a hostile file must not make a login cost minutes)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        want = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    if not (1 < n <= 2**20 and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16 and want):
        return None
    return n, r, p, salt, want


def is_password_hash(stored: str) -> bool:
    """Whether ``stored`` is a hash :func:`verify_password` can check (so a users file with a
    plain password or a truncated hash is refused when read, not at the first login)."""
    return _parse(stored) is not None


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a :func:`hash_password` string); a malformed
    stored hash never matches."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, want = parsed
    try:
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=2**27
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, want)
