"""Secrets from files or the environment, never written inline in a configuration.

Shared by the configuration (``[http] token_file``, ``[ledger] password_env`` ...) and by
adapters reading their own options (an MQTT password, a partner feed's token): ``<key>_file``
(relative to the configuration's folder) or ``<key>_env``, one of them, and an error that
names the key when neither can be read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from gateway.errors import ConfigError

__all__ = ["read_secret", "resolve_secret"]


def read_secret(
    file: str | None,
    env: str | None,
    *,
    fail: Callable[[str, str], NoReturn],
    key: str,
    base: Path,
) -> str | None:
    """The secret from ``file`` or the environment variable ``env``; ``fail(detail, key)``
    raises the error naming where the key is (a section's key, or an adapter's option)."""
    if file is not None and env is not None:
        fail(f"give {key}_file or {key}_env, not both", f"{key}_file")
    if file is not None:
        path = Path(file)
        if not path.is_absolute():
            path = base / path
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror or exc}", f"{key}_file")
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            fail(f"environment variable {env} is not set", f"{key}_env")
        return value
    return None


def resolve_secret(
    options: Mapping[str, Any], key: str, *, where: str, base: Path | None = None
) -> str | None:
    """Read the secret ``key`` of an adapter's options from ``<key>_file`` or ``<key>_env``.

    An inline value is accepted only when the daemon put it there (``_resolved`` keys are
    passed by the daemon from ``[mqtt]``); a value written by hand in the file is refused.
    """
    if key in options:
        value = options[key]
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: must be a string")
        return value
    file = options.get(f"{key}_file")
    env = options.get(f"{key}_env")
    for name, value in ((f"{key}_file", file), (f"{key}_env", env)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}.{name}: must be a string")

    def fail(detail: str, name: str) -> NoReturn:
        raise ConfigError(f"{where}.{name}: {detail}")

    return read_secret(file, env, fail=fail, key=key, base=base or Path.cwd())
