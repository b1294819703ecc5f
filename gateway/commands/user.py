"""``borderlink user add|remove|list|token``: the named accounts of the EOC console.

The accounts are kept in a users file, ``var/console-users`` unless ``--users-file`` names
another, one ``NAME:ROLE:scrypt$...`` line each; the file is rewritten in one step, readable
by its owner only, with its comments kept. Roles: ``viewer`` sees; ``operator`` also approves
and rejects holds; ``admin`` also manages. A change applies to the console at once: a
removed account or a changed role or password ends its sessions. ``borderlink help
console-accounts`` tells more.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.commands import Subparsers, add_command, described
from gateway.console.accounts import (
    DEFAULT_USERS_FILE,
    ROLES,
    add_account,
    check_name,
    generate_password,
    read_accounts,
    remove_account,
    set_token,
)

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "add, remove, list the EOC console's accounts; give one an API token"


_BAD_INPUT = "a bad name, or a users file that cannot be read or written (file:line and what)"
USER_CODES = {
    0: "the action was done",
    1: "no such account (remove, token)",
    2: "no or an unknown ACTION, or bad input (each ACTION's --help says which)",
}
ADD_CODES = {
    0: "the account was written (with --generate, its password printed once)",
    2: "a bad name or role, no password on standard input, an account that exists without "
    "--replace, or a users file that cannot be read or written (file:line and what)",
}
REMOVE_CODES = {0: "the account was removed", 1: "no such account", 2: _BAD_INPUT}
LIST_CODES = {0: "listed (nothing when there is no users file)", 2: _BAD_INPUT}
TOKEN_CODES = {
    0: "a new token was printed once; the previous one no longer works",
    1: "no such account",
    2: _BAD_INPUT,
}


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "user",
        summary=SUMMARY,
        description=described(__doc__),
        codes=USER_CODES,
    )
    actions = parser.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    add = _action(
        actions,
        "add",
        summary="add an account, or with --replace change its password and role",
        description="Reads the password from standard input (its first line; asked for "
        "without echo on a terminal), or makes one with --generate and prints it once. "
        "Replacing an account keeps its personal API token.",
        codes=ADD_CODES,
        handler=_add,
    )
    add.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="viewer sees; operator also approves and rejects holds; admin also manages",
    )
    add.add_argument("--generate", action="store_true", help="make a password and print it")
    add.add_argument("--replace", action="store_true", help="change an existing account")
    _action(
        actions,
        "remove",
        summary="remove an account",
        description="Its sessions and its personal API token stop working at once.",
        codes=REMOVE_CODES,
        handler=_remove,
    )
    listing = _action(
        actions,
        "list",
        summary="list the accounts (or --json)",
        description="One line an account: name, role, and whether it has a personal API "
        "token. '--json' prints a list of objects with the keys 'name', 'role' and 'token' "
        "(true or false). Hashes are never shown.",
        codes=LIST_CODES,
        handler=_list,
        named=False,
    )
    listing.add_argument("--json", action="store_true", help="a JSON list")
    _action(
        actions,
        "token",
        summary="give an account a new personal API token (printed once)",
        description="For scripts: the token acts as the account. The users file keeps "
        "only its sha256, so it is printed this once; the account's previous token stops "
        "working.",
        codes=TOKEN_CODES,
        handler=_token,
    )


def _action(
    actions: Subparsers,
    name: str,
    *,
    summary: str,
    description: str | None,
    codes: dict[int, str],
    handler: Callable[[argparse.Namespace], int],
    named: bool = True,
) -> argparse.ArgumentParser:
    """One ACTION of ``user``, with the options every action takes."""
    parser = add_command(actions, name, summary=summary, description=description, codes=codes)
    if named:
        parser.add_argument("name", metavar="NAME", help="the account name")
    parser.add_argument(
        "--users-file",
        type=Path,
        default=DEFAULT_USERS_FILE,
        metavar="PATH",
        help=f"the console's users file (default: {DEFAULT_USERS_FILE})",
    )
    parser.set_defaults(handler=handler)
    return parser


def _add(args: argparse.Namespace) -> int:
    try:
        check_name(args.name)
        if not args.replace and args.name in read_accounts(args.users_file):
            return _fail(f"{args.name} exists in {args.users_file}; --replace changes it")
    except ValueError as exc:  # ConfigError is a ValueError
        return _fail(exc)
    password = generate_password() if args.generate else _read_password(args.name)
    if not password:
        return _fail("no password on standard input (or --generate makes one)")
    try:
        account = add_account(args.users_file, args.name, args.role, password, replace=args.replace)
    except (ValueError, OSError) as exc:  # ConfigError is a ValueError
        return _fail(exc)
    if args.generate:
        print(password)  # noqa: T201 - the output, the one time it is shown
    _say(f"{account.name} ({account.role}) written to {args.users_file}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    try:
        check_name(args.name)
        removed = remove_account(args.users_file, args.name)
    except (ValueError, OSError) as exc:
        return _fail(exc)
    if not removed:
        _say(f"no account {args.name!r} in {args.users_file}")
        return 1
    _say(f"{args.name} removed from {args.users_file}")
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        accounts = read_accounts(args.users_file)
    except ValueError as exc:
        return _fail(exc)
    rows = [
        {"name": a.name, "role": a.role, "token": bool(a.token_sha256)} for a in accounts.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))  # noqa: T201 - the output
        return 0
    if not rows:
        _say(f"no accounts in {args.users_file}")
    width = max((len(a.name) for a in accounts.values()), default=0)
    for row in rows:
        token = "token" if row["token"] else "-"
        print(f"{row['name']:<{width}}  {row['role']:<8}  {token}")  # noqa: T201 - the output
    return 0


def _token(args: argparse.Namespace) -> int:
    try:
        check_name(args.name)
        token = set_token(args.users_file, args.name)
    except KeyError:
        _say(f"no account {args.name!r} in {args.users_file}")
        return 1
    except (ValueError, OSError) as exc:
        return _fail(exc)
    print(token)  # noqa: T201 - the output, the one time it is shown
    _say(f"a new API token for {args.name}; the previous one no longer works")
    return 0


def _read_password(name: str) -> str:
    """The first line of standard input; on a terminal, asked for without echo."""
    if sys.stdin.isatty():
        import getpass  # noqa: PLC0415 - only a person at a terminal needs it

        return getpass.getpass(f"password for {name}: ")
    return sys.stdin.readline().rstrip("\r\n")


def _say(message: str) -> None:
    """What was done, on standard error: standard output carries only what a script reads
    (a generated password, a token, the list)."""
    print(f"borderlink user: {message}", file=sys.stderr)  # noqa: T201 - the command's message


def _fail(problem: object) -> int:
    _say(str(problem))
    return 2
