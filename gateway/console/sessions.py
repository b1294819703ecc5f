"""Signed session cookies of the EOC console: nothing kept on the server.

A session is the value of the cookie :data:`COOKIE_NAME`: ``PAYLOAD.MAC``, both urlsafe
base64 without padding. The payload is the text ``name|role|issued|expires|nonce|stamp``
(times in whole seconds since the epoch); the MAC is HMAC-SHA256 over the encoded payload,
with a key derived from the secret file. Because nothing is stored, every instance holding the
same secret accepts the session, and a restart logs nobody out: **instances that share a
ledger must share the secret file** (:func:`load_or_create_secret`), and a new secret ends
every session.

Checking a session reads the account again: a removed account, a changed role or a new
password (the stamp is a MAC of the password hash) ends its sessions at once. What cannot be
revoked is a copy of a cookie after logout (the console deletes the cookie; its value stays
valid until it expires), hence a lifetime of hours, not weeks.

Each session also has a CSRF token, an HMAC of its nonce under a separate derived key:
stable for the session (forms and the page's script carry it), different for every session,
and useless without the cookie it belongs to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

from gateway.console.accounts import Account, role_can
from gateway.errors import ConfigError
from gateway.statefile import write_new

__all__ = [
    "COOKIE_NAME",
    "SECRET_BYTES",
    "CookieOptions",
    "Session",
    "SessionSigner",
    "load_or_create_secret",
]

COOKIE_NAME = "borderlink_session"
SECRET_BYTES = 32
DEFAULT_LIFETIME = timedelta(hours=12)  # one EOC shift
_MAX_COOKIE = 1024  # a session of ours is about 200 characters; anything far longer is not one
_B64 = re.compile(r"[A-Za-z0-9_-]+")


class CookieOptions(TypedDict):
    """Keyword arguments of aiohttp's ``Response.set_cookie`` for the session cookie."""

    max_age: int
    path: str
    httponly: bool
    samesite: str
    secure: bool


@dataclass(frozen=True, slots=True)
class Session:
    """A checked session: who, with the role the users file gives them now, until when."""

    name: str
    role: str
    expires: datetime
    csrf_token: str = field(repr=False)

    def can(self, action: str) -> bool:
        """Whether this session may do ``action`` (``view``, ``approve`` or ``admin``)."""
        return role_can(self.role, action)

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` (from a form field or a request header) is this session's CSRF
        token; compared in constant time, and anything absent or not ASCII is simply no."""
        return (
            token is not None
            and token.isascii()
            and hmac.compare_digest(token.encode("ascii"), self.csrf_token.encode("ascii"))
        )


class SessionSigner:
    """Issues and checks session cookie values with one secret (see the module docstring)."""

    def __init__(self, secret: bytes, lifetime: timedelta = DEFAULT_LIFETIME) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"a session secret needs at least {SECRET_BYTES} bytes")
        if lifetime <= timedelta(0):
            raise ValueError("a session lifetime must be positive")
        self.lifetime = lifetime
        # One key per purpose, so a value made for one can never pass for another.
        self._mac_key = _derive(secret, b"session")
        self._csrf_key = _derive(secret, b"csrf")
        self._stamp_key = _derive(secret, b"password-stamp")

    def issue(self, account: Account, now: datetime) -> str:
        """A new session for ``account`` (already logged in), valid for the lifetime."""
        issued = _seconds(now)
        expires = issued + int(self.lifetime.total_seconds())
        nonce = _b64(secrets.token_bytes(16))
        fields = (account.name, account.role, issued, expires, nonce, self._stamp(account))
        payload = _b64("|".join(map(str, fields)).encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def check(
        self, value: str | None, now: datetime, accounts: Mapping[str, Account]
    ) -> Session | None:
        """The session a cookie value holds, or None: no cookie, a bad signature, an expired
        or malformed value, an account that is gone or whose role or password changed. Never
        raises on what a client sends."""
        if value is None or not (0 < len(value) <= _MAX_COOKIE and value.isascii()):
            return None
        payload, dot, mac = value.partition(".")
        if not dot or not hmac.compare_digest(mac.encode("ascii"), self._mac(payload).encode()):
            return None
        fields = _fields(payload)  # ours, as the MAC holds; parsed with care all the same
        if fields is None:
            return None
        name, role, issued, expires, nonce, stamp = fields
        # A lifetime shortened since the session was issued applies to it too.
        end = min(expires, issued + int(self.lifetime.total_seconds()))
        if _seconds(now) >= end:
            return None
        account = accounts.get(name)
        if (
            account is None
            or account.role != role
            or not hmac.compare_digest(stamp.encode("ascii"), self._stamp(account).encode())
        ):
            return None
        csrf = _b64(hmac.digest(self._csrf_key, nonce.encode("ascii"), "sha256"))
        return Session(name, role, datetime.fromtimestamp(end, UTC), csrf)

    def cookie_kwargs(self, secure: bool) -> CookieOptions:
        """How the console sets the cookie: ``response.set_cookie(COOKIE_NAME, value,
        **signer.cookie_kwargs(secure=request.secure))``. Not readable by the page's script
        (HttpOnly), never sent by another site's request (SameSite=Strict), sent only over
        TLS when served over TLS (Secure), kept by the browser as long as the session lasts."""
        return {
            "max_age": int(self.lifetime.total_seconds()),
            "path": "/",
            "httponly": True,
            "samesite": "Strict",
            "secure": secure,
        }

    def _mac(self, payload: str) -> str:
        return _b64(hmac.digest(self._mac_key, payload.encode("ascii"), "sha256"))

    def _stamp(self, account: Account) -> str:
        """A short MAC of the password hash: a new password ends the sessions of the old."""
        return _b64(hmac.digest(self._stamp_key, account.password_hash.encode(), "sha256")[:12])


def _fields(payload: str) -> tuple[str, str, int, int, str, str] | None:
    """The six fields of a payload, or None when it is not one of ours."""
    if not _B64.fullmatch(payload):
        return None
    try:
        text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
        name, role, issued, expires, nonce, stamp = text.split("|")
        times = int(issued), int(expires)
    except (binascii.Error, ValueError):
        return None
    if not (nonce.isascii() and stamp.isascii()):
        return None
    return name, role, *times, nonce, stamp


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.digest(secret, b"borderlink console " + purpose, hashlib.sha256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _seconds(now: datetime) -> int:
    """``now`` as whole seconds since the epoch; a naive time is refused, since its meaning
    would depend on the machine's time zone and instances may differ."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (datetime.now(UTC))")
    return int(now.timestamp())


def load_or_create_secret(path: Path) -> bytes:
    """The session secret kept in ``path``: created on first use (32 random bytes, mode
    0600), read as it is afterwards (at least 32 bytes; any longer content, such as one
    written by ``openssl rand``, is used whole). Instances that share a ledger must share
    this file; two starting together agree on the first one written. ConfigError when the
    file cannot be read or written, or is too short."""
    try:
        if not path.exists():
            write_new(path, secrets.token_bytes(SECRET_BYTES))
        secret = path.read_bytes()
    except OSError as exc:
        detail = f"cannot read or create the console session secret: {exc}"
        raise ConfigError(f"{path}: {detail}", file=str(path), detail=detail) from None
    if len(secret) < SECRET_BYTES:
        detail = (
            f"the console session secret is {len(secret)} bytes; it needs {SECRET_BYTES} or "
            "more (delete the file for a new one: every session ends)"
        )
        raise ConfigError(f"{path}: {detail}", file=str(path), detail=detail)
    return secret
