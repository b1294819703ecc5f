"""``borderlink sim KIND ...``: run a hardware or feed simulator.

Runs one simulator of a feed or a radio device on loopback ports, for tests and technicians:
it prints one JSON line saying where to connect, then serves until Ctrl-C or SIGTERM.
'borderlink sim KIND --help' gives the options of a kind.
"""

from __future__ import annotations

import importlib
import pkgutil

from gateway.commands import Subparsers, add_command, described

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "run a simulator of a feed or radio device (for tests and technicians)"


# Each simulator module in the hardware package named sim_*.py exposes register(kinds) and
# adds its own kinds (naad, ipaws, tnc ...) with hardware.command.add_kind; they share one
# runner and one set of exit codes, listed here too.
def register(subparsers: Subparsers) -> None:
    import hardware  # noqa: PLC0415 - simulators are only loaded for this command's parser
    from hardware.command import EXIT_CODES  # noqa: PLC0415

    parser = add_command(
        subparsers,
        "sim",
        summary=SUMMARY,
        description=described(__doc__),
        codes={**EXIT_CODES, 2: f"no or an unknown KIND, or {EXIT_CODES[2]}"},
    )
    kinds = parser.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    for info in sorted(pkgutil.iter_modules(hardware.__path__), key=lambda m: m.name):
        if info.name.startswith("sim_"):
            importlib.import_module(f"hardware.{info.name}").register(kinds)
