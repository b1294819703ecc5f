"""The ``borderlink`` command line.

Each sub-command lives in its own module under :mod:`gateway.commands` and exposes
``register(subparsers)``; this module only finds them, builds the parser and dispatches.
Exit codes: 0 success, 1 the command ran and found a problem (invalid alert, failed link
test), 2 bad usage or unreadable/hostile input.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from gateway import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="borderlink",
        description="Cross-border emergency-alert and radio message gateway.",
    )
    parser.add_argument("--version", action="version", version=f"borderlink {__version__}")
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument("--log-json", action="store_true", help="JSON log lines even on a TTY")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.logging import configure  # noqa: PLC0415 - after argument parsing

    parser = build_parser()
    args = parser.parse_args(argv)
    configure(level=args.log_level, json=True if args.log_json else None)
    handler = args.handler
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
