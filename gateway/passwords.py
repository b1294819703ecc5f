"""Password hashes: scrypt, in one self-describing string ``scrypt$N$r$p$salt$hash``.

Used for the accounts of the embedded MQTT broker (and any other account file of the
gateway). Verification is in constant time and refuses cost parameters a hostile file could
use to make one login take minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["hash_password", "verify_password"]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A password as the embedded broker stores it: ``scrypt$N$r$p$salt$hash``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a :func:`hash_password` string); a malformed
    stored hash never matches."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        want = base64.b64decode(parts[5], validate=True)
        if n > 2**20 or r > 32 or p > 16:  # a hostile file must not make a login cost minutes
            return False
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=2**27
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)
