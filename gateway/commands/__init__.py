"""Sub-commands of ``borderlink``: one module each, with ``register(subparsers)``.

A module's ``register`` adds its parser with :func:`add_command` and sets ``handler`` (a
function of the parsed arguments returning the exit code) with ``parser.set_defaults``.
Every command's ``--help`` ends with its exit codes, which follow one convention
(:data:`CONVENTION`), so a script can tell "the answer is no" from "it could not be asked".

This module is imported by every command line, ``--version`` included: standard library only.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Mapping
from typing import TypeAlias

# The object ``add_subparsers`` returns; every command module's ``register`` takes one.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# What each exit code means for every command; a command's own list says it for its case.
CONVENTION: Mapping[int, str] = {
    0: "done: valid, printed, written, or stopped cleanly",
    1: "the command ran and the answer is no: an invalid alert, a failed link test, an alert "
    "that cannot be translated, a daemon that could not start",
    2: "bad usage, input that cannot be read or is refused (a hostile file, a configuration "
    "with an error), or a peer that cannot be reached",
}

_ROLE = re.compile(r":[a-z]+:`~?(?:[\w.]*\.)?([^`.]+)`")  # :mod:`hardware.rf_channel` -> rf_channel
_LITERAL = re.compile(r"``([^`]+)``")
_ITEM = re.compile(r"- |\d+  +")  # the start of a list item: a bullet, or an exit code


def plain(text: str) -> str:
    """Docstring text as a terminal shows it: ``literal`` becomes 'literal' and a
    cross-reference its bare name. The module docstrings are reStructuredText for the API
    documentation and also each command's ``--help``; the terminal does not render markup."""
    return _LITERAL.sub(r"'\1'", _ROLE.sub(r"\1", text))


def described(doc: str | None) -> str | None:
    """A command module's docstring without its title line (the usage line and the command
    list already say it), in plain words, as the description of its ``--help``."""
    if not doc:
        return None
    _, _, rest = textwrap.dedent(doc).strip().partition("\n\n")
    return plain(rest) or None


def exit_codes(codes: Mapping[int, str]) -> str:
    """The epilog of a ``--help``: the exit codes, one a line."""
    return "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in sorted(codes.items()))


class HelpFormatter(argparse.HelpFormatter):
    """Reflows each paragraph to the terminal's width, as argparse does with one text; a
    list (the exit codes, the kinds of a command) keeps one item a line, each wrapped under
    its own indent, so a code and its meaning stay together."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(_fill(block, width, indent) for block in text.strip().split("\n\n"))


def _fill(block: str, width: int, indent: str) -> str:
    """One paragraph filled to ``width``: running text as one, a list item by item (an item
    starts with '- ' or a number and two spaces; its further lines are indented deeper)."""
    lines = block.splitlines()
    if not any(line.startswith((" ", "- ")) for line in lines):
        return textwrap.fill(
            " ".join(block.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,  # never '--max-' at one line's end and 'loss' at the next
        )
    items: list[tuple[int, str]] = []  # (indent, text)
    for line in lines:
        depth = len(line) - len(line.lstrip())
        if items and depth > items[-1][0] and not _ITEM.match(line.lstrip()):
            items[-1] = (items[-1][0], f"{items[-1][1]} {line.strip()}")
        else:
            items.append((depth, line.strip()))
    return "\n".join(
        textwrap.fill(
            text,
            width,
            initial_indent=indent + " " * depth,
            subsequent_indent=indent + " " * (depth + _hang(text)),
            break_on_hyphens=False,
        )
        for depth, text in items
    )


def _hang(item: str) -> int:
    """How far an item's further lines go in: under the text after '- ' or after '0  '."""
    start = _ITEM.match(item)
    return len(start.group(0)) if start else 0


def add_command(
    subparsers: Subparsers,
    name: str,
    *,
    summary: str,
    description: str | None,
    codes: Mapping[int, str],
) -> argparse.ArgumentParser:
    """Add one command (or a kind of a command: ``sim naad``, ``same decode``): ``summary`` in
    its parent's list, ``description`` (often :func:`described` of its module docstring) in
    plain words, and its exit codes at the end of its ``--help``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=plain(summary),
        description=None if description is None else plain(description),
        epilog=exit_codes(codes),
        formatter_class=HelpFormatter,
    )
    return parser
