"""``borderlink sim KIND ...``: run a hardware or feed simulator.

Each simulator module in :mod:`hardware` named ``sim_*.py`` exposes
``register(subparsers)`` and adds its own kinds (``naad``, ``ipaws``, ``tnc`` ...).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from gateway.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="run a simulator of a feed or radio device (for tests and technicians)"
    )
    kinds = parser.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    import hardware  # noqa: PLC0415 - simulators are only loaded for this command's parser

    for info in sorted(pkgutil.iter_modules(hardware.__path__), key=lambda m: m.name):
        if info.name.startswith("sim_"):
            importlib.import_module(f"hardware.{info.name}").register(kinds)
