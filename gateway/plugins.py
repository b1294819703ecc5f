"""What the gateway finds by name at run time, and never by importing it: adapters, codecs,
simulators and technician commands, registered through package entry points.

Each kind has a group of entry points whose name is what a configuration (or the command line)
uses and whose value is ``"module:attribute"``; a group may also hold *tables* -- a package's
own ``{name: "module:attribute"}`` dictionary, registered once under ``<group>_tables`` (the
built-in adapters are ``adapters.BUILTIN_ADAPTERS``). Nothing is imported to list the names:
:func:`table` reads the installed packages' metadata (and a table module, which holds only the
dictionary); :func:`load` imports one target when it is used.

==============================  ==============================================  ===============
group                           a name gives                                    declared by
==============================  ==============================================  ===============
``borderlink.adapters``         a factory ``(AdapterContext) -> adapter``       ``adapters/``
``borderlink.codecs``           a codec function the gateway's pages call      ``adapters/``
``borderlink.simulators``       ``(options) -> async context manager``          ``hardware/``
``borderlink.commands``         ``register(subparsers)`` of a CLI command       both
==============================  ==============================================  ===============

A package of someone else's adds its own adapter with one line in its ``pyproject.toml``
(``[project.entry-points."borderlink.adapters"] myfeed = "myfeed.adapter:from_context"``);
see ``docs/adapters.md``. After changing entry points, reinstall (``make setup``) so the
metadata is written again.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from gateway.errors import ConfigError

__all__ = ["ADAPTERS", "CODECS", "COMMANDS", "SIMULATORS", "load", "table"]

ADAPTERS = "borderlink.adapters"
CODECS = "borderlink.codecs"
SIMULATORS = "borderlink.simulators"
COMMANDS = "borderlink.commands"


@cache
def _installed(group: str) -> Mapping[str, str]:
    # Reading package metadata costs ~20 ms of imports: only when a name is looked up, so
    # `borderlink --version` and the gateway's own commands start without it.
    from importlib.metadata import entry_points  # noqa: PLC0415

    found: dict[str, str] = {}
    for ep in entry_points(group=f"{group}_tables"):
        values = ep.load()
        if not isinstance(values, Mapping):
            msg = f"entry point {ep.name} of {group}_tables ({ep.value}) is not a table"
            raise ConfigError(msg)
        found.update({str(k): str(v) for k, v in values.items()})
    found.update({ep.name: ep.value for ep in entry_points(group=group)})
    return found


def table(group: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every name registered in ``group``: the installed entry points and tables, then
    ``extra`` (names registered in-process, e.g. by a test) over them."""
    return {**_installed(group), **(extra or {})}


def load(target: str, *, what: str) -> Any:
    """Import ``"module:attribute"``; a failure is a ConfigError saying ``what`` it was for."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"{what}: cannot import {module_name}: {exc}"
        raise ConfigError(msg) from exc
    found = getattr(module, attr, None)
    if found is None or not callable(found):
        msg = f"{what}: {module_name} has no function {attr!r}"
        raise ConfigError(msg)
    return found
