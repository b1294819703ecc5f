"""``borderlink mqtt-passwd NAME``: one account line for the embedded broker's users file.

Reads the password from standard input (the first line; nothing is echoed) and prints
``NAME:scrypt$...`` for ``[mqtt] embedded_users_file``. Exit codes: 0 printed, 2 a bad name or
an empty password.
"""

from __future__ import annotations

import argparse
import re
import sys

from gateway.commands import Subparsers
from gateway.passwords import hash_password

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def handle(args: argparse.Namespace) -> int:
    name: str = args.name
    if not _NAME.match(name):
        print(  # noqa: T201 - the command's message
            f"borderlink mqtt-passwd: {name!r}: 1-64 letters, digits, '.', '_', '@' or '-'",
            file=sys.stderr,
        )
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("borderlink mqtt-passwd: no password on standard input", file=sys.stderr)  # noqa: T201
        return 2
    print(f"{name}:{hash_password(password)}")  # noqa: T201 - the command's output
    return 0


def register(subparsers: Subparsers) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mqtt-passwd",
        help="make an account line for the embedded broker's users file",
        description=__doc__.splitlines()[2] if __doc__ else None,
    )
    parser.add_argument("name", metavar="NAME", help="the account name")
    parser.set_defaults(handler=handle)
