"""Sub-commands of ``borderlink``: one module each, with ``register(subparsers)``.

A module's ``register`` adds its parser and sets ``handler`` (a function of the parsed
arguments returning the exit code) with ``parser.set_defaults(handler=...)``.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

# The object ``add_subparsers`` returns; every command module's ``register`` takes one.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
