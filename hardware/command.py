"""``borderlink sim KIND``: the command, and what every simulator kind shares on it.

Registered as the ``sim`` entry point of ``borderlink.commands`` (``pyproject.toml``), so the
gateway's command line finds it without naming this package.

A simulator prints one JSON line saying where to connect, then serves until Ctrl-C or
SIGTERM (exit 0, after closing its ports). When it cannot start -- a port taken or not
allowed, a file or folder given that cannot be read -- it says why and exits 2 at once, so
the script or test that started it does not wait for a JSON line that never comes. Each
``sim_*`` module registers its kinds with :func:`add_kind` and runs them with
:func:`run_until_stopped`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import pkgutil
import signal
import sys
from collections.abc import Awaitable, Callable

import hardware
from gateway.commands import Subparsers, add_command, described

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "run a simulator of a feed or radio device (for tests and technicians)"

_DESCRIPTION = """``borderlink sim KIND ...``: run a hardware or feed simulator.

Runs one simulator of a feed or a radio device on loopback ports, for tests and technicians:
it prints one JSON line saying where to connect, then serves until Ctrl-C or SIGTERM.
'borderlink sim KIND --help' gives the options of a kind.
"""

EXIT_CODES = {
    0: "stopped by Ctrl-C or SIGTERM",
    2: "it could not start: a port taken or not allowed, or a file or folder given that "
    "cannot be read (the reason is printed)",
}


def add_kind(
    kinds: Subparsers, name: str, *, summary: str, description: str | None = None
) -> argparse.ArgumentParser:
    """Add one simulator kind, its exit codes at the end of its ``--help``."""
    return add_command(kinds, name, summary=summary, description=description, codes=EXIT_CODES)


def run_until_stopped(kind: str, main: Callable[[], Awaitable[None]]) -> int:
    """Serve ``main()`` until SIGINT or SIGTERM (exit 0); exit 2 with the reason when it
    cannot start (``OSError``: a port or a file; ``ValueError``: a file that is not what it
    should be)."""
    try:
        asyncio.run(_until_signalled(main))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"borderlink sim {kind}: {exc}\n")
        return 2
    return 0


async def _until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.ensure_future(main())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


# Each simulator module in this package named sim_*.py exposes register(kinds) and adds its own
# kinds (naad, ipaws, tnc ...) with add_kind; they share one runner and one set of exit codes.
def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "sim",
        summary=SUMMARY,
        description=described(_DESCRIPTION),
        codes={**EXIT_CODES, 2: f"no or an unknown KIND, or {EXIT_CODES[2]}"},
    )
    kinds = parser.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    for info in sorted(pkgutil.iter_modules(hardware.__path__), key=lambda m: m.name):
        if info.name.startswith("sim_"):
            importlib.import_module(f"hardware.{info.name}").register(kinds)
