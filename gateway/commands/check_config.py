"""``borderlink check-config FILE [--json]``: read and check a configuration without running it.

Checks the TOML, every section and key, the environment overrides (``BORDERLINK_*``), that
adapter types, translations and simulators exist, and builds every adapter (which checks its
options). It stops at the first error, whose message names the file, the key path and what
is allowed.

``--json`` prints one object, valid or not: ``file``, ``valid``, ``counts`` (``sources``,
``sinks``, ``routes``, ``simulators``; null when not valid) and ``errors``, a list (empty when
valid; the first error found otherwise) of objects with ``place`` (the key path, as
``route #1 "r".sinks``; null for the file as a whole), ``variable`` (the ``BORDERLINK_*``
variable that set the value, or null), ``message`` (what is wrong, what is allowed) and
``text`` (the whole message, as printed without ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gateway.commands import Subparsers, add_command, described
from gateway.config import Config, load_config
from gateway.errors import ConfigError

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "check a configuration file (or --json)"


EXIT_CODES = {
    0: "the configuration is valid",
    2: "it was refused, or the file could not be read (the message names the file, the key "
    "path and what is allowed); the same code 'borderlink run' gives for it",
}


async def _build(config: Config) -> None:
    from gateway.daemon import Daemon  # noqa: PLC0415 - the daemon is built only on demand

    Daemon(config)


def check(path: str) -> Config:
    """The configuration at ``path``, read and built as ``run`` would; ``ConfigError`` if not."""
    config = load_config(path)
    asyncio.run(_build(config))
    return config


def report(path: str, config: Config | None, error: ConfigError | None) -> dict[str, Any]:
    """The object ``--json`` prints (see the module docstring)."""
    counts = None
    if config is not None:
        counts = {
            "sources": len(config.sources),
            "sinks": len(config.sinks),
            "routes": len(config.routes),
            "simulators": len(config.simulators),
        }
    errors = []
    if error is not None:
        errors.append(
            {
                "place": error.place,
                "variable": error.variable,
                "message": error.detail,
                "text": str(error),
            }
        )
    return {"file": path, "valid": error is None, "counts": counts, "errors": errors}


def handle(args: argparse.Namespace) -> int:
    config: Config | None = None
    error: ConfigError | None = None
    try:
        config = check(args.config)
    except ConfigError as exc:
        error = exc
    seen = report(args.config, config, error)
    if args.json:
        print(json.dumps(seen, indent=2, ensure_ascii=False))  # noqa: T201 - the output
    elif error is not None:
        print(f"borderlink: {error}", file=sys.stderr)  # noqa: T201 - the command's output
    else:
        counts = ", ".join(f"{n} {what}" for what, n in seen["counts"].items())
        print(f"{args.config}: ok ({counts})")  # noqa: T201 - the command's report
    return 0 if seen["valid"] else 2


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "check-config",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--json", action="store_true", help="one JSON object, valid or not")
    parser.set_defaults(handler=handle)
