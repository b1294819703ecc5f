"""``borderlink mqtt-passwd NAME``: one account line for the embedded broker's users file.

Reads the password from standard input (the first line; nothing is echoed) and prints
``NAME:scrypt$...`` for ``[mqtt] embedded_users_file``.
"""

from __future__ import annotations

import argparse
import sys

from gateway.commands import Subparsers, add_command, described
from gateway.passwords import ACCOUNT_NAME, ACCOUNT_NAME_RULE, hash_password

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "make an account line for the embedded broker's users file"


EXIT_CODES = {
    0: "printed",
    2: "a bad name (what is allowed is said), or no password on standard input",
}


def handle(args: argparse.Namespace) -> int:
    name: str = args.name
    if not ACCOUNT_NAME.fullmatch(name):
        print(f"borderlink mqtt-passwd: {name!r}: {ACCOUNT_NAME_RULE}", file=sys.stderr)  # noqa: T201
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("borderlink mqtt-passwd: no password on standard input", file=sys.stderr)  # noqa: T201
        return 2
    print(f"{name}:{hash_password(password)}")  # noqa: T201 - the command's output
    return 0


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "mqtt-passwd",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("name", metavar="NAME", help="the account name")
    parser.set_defaults(handler=handle)
