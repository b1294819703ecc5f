"""The one reader of configuration tables: the daemon's sections and every adapter's options.

:class:`OptionReader` takes keys out of one table and refuses a bad value with a
:class:`~gateway.errors.ConfigError` naming the file, the key path and what is allowed
(``config.toml: source #2 "east".interval: must be at least 120, got 60``);
:meth:`OptionReader.finish` refuses the keys nobody took. An adapter gets one for its own
options from :meth:`gateway.adapter.AdapterContext.options_reader`, or builds one with
:func:`adapter_options` when it is made outside the daemon (tests, technician commands).
"""

from __future__ import annotations

import contextvars
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from gateway.errors import ConfigError
from gateway.secret_files import read_secret as _read_secret

__all__ = ["ENV_ORIGINS", "OptionReader", "adapter_options", "kind_of"]

T = TypeVar("T")

# Key paths set by BORDERLINK_* variables while a file is read: their errors name the variable.
ENV_ORIGINS: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar(
    "borderlink_env_origins",
    default={},  # noqa: B039 - read only, never mutated
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class OptionReader:
    """Takes keys out of one table, naming the file and key path in every error.

    ``file`` may be empty when the reader does not know it (an adapter built outside the
    daemon); the daemon then adds its configuration file to the error.
    """

    def __init__(self, file: str, path: str, table: object) -> None:
        self.file = file
        self.path = path
        if not isinstance(table, Mapping):
            self.fail(f"must be a table, got {kind_of(table)}")
        self.table: dict[str, Any] = dict(table)
        self.used: set[str] = set()

    def where(self, key: str | None = None) -> str:
        if key is None:
            return self.path or "(top level)"
        return f"{self.path}.{key}" if self.path else key

    def fail(self, message: str, key: str | None = None) -> NoReturn:
        where = self.where(key)
        if not self.file:
            raise ConfigError(f"{where}: {message}", place=where, detail=message)
        # A value that came from the environment names its variable, not only the file.
        raise ConfigError.at(self.file, where, message, variable=ENV_ORIGINS.get().get(where))

    def has(self, key: str) -> bool:
        """Whether ``key`` is set; asking makes it a key of this table (allowed by finish)."""
        self.used.add(key)
        return key in self.table

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.table.get(key)

    def string(self, key: str, default: T, *, choices: Sequence[str] = ()) -> str | T:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(f"must be a string, got {kind_of(value)}", key)
        if choices and value not in choices:
            self.fail(f"{value!r} is not allowed; allowed: {', '.join(choices)}", key)
        text: str = value
        return text

    def required_string(self, key: str, *, choices: Sequence[str] = ()) -> str:
        value = self.string(key, None, choices=choices)
        if value is None or value == "":
            allowed = f"; allowed: {', '.join(choices)}" if choices else ""
            self.fail(f"is required (a non-empty string){allowed}", key)
        assert value is not None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(f"must be true or false, got {value!r}", key)
        flag: bool = value
        return flag

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.fail(f"must be a number, got {value!r}", key)
        self._in_range(key, value, minimum, maximum)
        return float(value)

    def duration(self, key: str) -> float | None:
        """Seconds, written as a number of seconds or as ``"90s"``, ``"5m"``, ``"1h"``; None
        when absent."""
        value = self.raw(key)
        if value is None:
            return None
        found = _DURATION.match(value) if isinstance(value, str) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif found is not None:
            seconds = float(found[1]) * _DURATION_UNITS[found[2] or "s"]
        else:
            self.fail(f'{value!r} is not a duration: seconds, or "90s", "5m", "1h"', key)
        if not 0 < seconds <= 30 * 86400:
            self.fail(f"must be more than 0 and at most 30 days, got {value!r}", key)
        return seconds

    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"must be an integer, got {value!r}", key)
        self._in_range(key, value, minimum, maximum)
        return int(value)

    def _in_range(
        self, key: str, value: float, minimum: float | None, maximum: float | None
    ) -> None:
        if minimum is not None and value < minimum:
            self.fail(f"must be at least {minimum}, got {value}", key)
        if maximum is not None and value > maximum:
            self.fail(f"must be at most {maximum}, got {value}", key)

    def strings(
        self, key: str, *, choices: Sequence[str] = (), fold: bool = False
    ) -> tuple[str, ...]:
        """A list of strings (a single string is taken as a list of one)."""
        value = self.raw(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"must be a list of strings, got {value!r}", key)
        out: list[str] = []
        for item in value:
            if choices:
                match = _choice(item, choices) if fold else (item if item in choices else None)
                if match is None:
                    self.fail(f"{item!r} is not allowed; allowed: {', '.join(choices)}", key)
                assert match is not None
                out.append(match)
            else:
                out.append(item)
        return tuple(dict.fromkeys(out))

    def url(self, key: str, default: str, *, schemes: Sequence[str] = ("http", "https")) -> str:
        """A URL with one of ``schemes`` (``http(s)`` unless told); required when ``default`` is
        empty."""
        value = self.string(key, default)
        if not value:
            self.fail(f"is required (a {' or '.join(schemes)} URL)", key)
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest:
            self.fail(f"must be a {' or '.join(schemes)} URL, got {value!r}", key)
        return value

    def sub(self, key: str) -> OptionReader:
        """A reader of the sub-table ``key`` (empty when absent): its errors name the key path
        through it (``sink "radio".tls.ca_file``)."""
        return OptionReader(self.file, self.where(key), self.table_of(key))

    def table_of(self, key: str) -> dict[str, Any]:
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(f"must be a table, got {kind_of(value)}", key)
        return dict(value)

    def secret(self, key: str, *, base: Path) -> str | None:
        """``key_file`` or ``key_env``; an inline ``key`` is refused."""
        if key in self.table:
            self.used.add(key)
            self.fail(
                f"secrets are not written inline; use {key}_file (a file holding it) or"
                f" {key}_env (an environment variable name)",
                key,
            )
        return _read_secret(
            self.string(f"{key}_file", None),
            self.string(f"{key}_env", None),
            fail=self.fail,
            key=key,
            base=base,
        )

    def finish(self, *, allowed_extra: Iterable[str] = ()) -> None:
        unknown = set(self.table) - self.used - set(allowed_extra)
        if unknown:
            allowed = ", ".join(sorted(self.used | set(allowed_extra)))
            self.fail(f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {allowed}")

    def rest(self) -> dict[str, Any]:
        """Every key not taken yet (the adapter's own options)."""
        return {k: v for k, v in self.table.items() if k not in self.used}


def _choice(value: str, choices: Sequence[str]) -> str | None:
    lowered = value.lower()
    for choice in choices:
        if choice.lower() == lowered:
            return choice
    return None


def kind_of(value: object) -> str:
    return {
        dict: "a table",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def adapter_options(
    role: str, name: str, options: Mapping[str, Any], *, file: str = ""
) -> OptionReader:
    """The reader of an adapter's options: errors name ``role`` (``source`` or ``sink``) and
    the adapter's ``name`` (``source "east".interval: ...``), and ``file`` when known."""
    return OptionReader(file, f'{role} "{name}"', options)
