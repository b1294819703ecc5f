"""``borderlink check-config FILE``: read and check a configuration without running it.

Checks the TOML, every section and key, the environment overrides, that adapter types,
translations and simulators exist, and builds every adapter (which checks its options).
Exit codes: 0 valid, 2 refused (the message names the file, the key path and what is allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from gateway.commands import Subparsers
from gateway.config import Config, load_config
from gateway.errors import ConfigError


async def _build(config: Config) -> None:
    from gateway.daemon import Daemon  # noqa: PLC0415 - the daemon is built only on demand

    Daemon(config)


def handle(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        asyncio.run(_build(config))
    except ConfigError as exc:
        print(f"borderlink: {exc}", file=sys.stderr)  # noqa: T201 - the command's output
        return 2
    print(  # noqa: T201 - the command's report
        f"{args.config}: ok ({len(config.sources)} sources, {len(config.sinks)} sinks,"
        f" {len(config.routes)} routes, {len(config.simulators)} simulators)"
    )
    return 0


def register(subparsers: Subparsers) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check-config",
        help="check a configuration file",
        description="Check a TOML configuration: exit 0 when valid, 2 with the reason when not.",
    )
    parser.add_argument("config", metavar="FILE", help="TOML configuration file")
    parser.set_defaults(handler=handle)
