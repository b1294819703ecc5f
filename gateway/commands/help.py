"""``borderlink help [TOPIC]``: the guides, from the command line.

Without a topic, lists the guides (configuration, http-api, ledger, radio ...) with their
titles; with one, prints that guide (a unique prefix is enough: ``help conf``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.commands import Subparsers, add_command, described

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "list the guides, or print one (configuration, http-api, radio ...)"


DOCS = Path(__file__).resolve().parents[2] / "docs"
EXIT_CODES = {
    0: "printed",
    2: "an unknown or ambiguous topic (the topics are listed), or no guides beside this "
    "installation",
}


def topics(docs: Path = DOCS) -> dict[str, tuple[str, Path]]:
    """Topic name -> (title, file) for every guide in ``docs``."""
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(docs.glob("*.md")) if docs.is_dir() else []:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        found[path.stem] = (first.lstrip("# ").strip() or path.stem, path)
    return found


def handle(args: argparse.Namespace) -> int:
    known = topics()
    if not known:
        print(  # noqa: T201 - the command's message
            f"borderlink help: no guides at {DOCS}; they are in the docs/ folder of the source",
            file=sys.stderr,
        )
        return 2
    if args.topic is None:
        print("Guides (borderlink help TOPIC; borderlink COMMAND --help for a command):")  # noqa: T201
        width = max(len(name) for name in known)
        for name, (title, _) in known.items():
            print(f"  {name:<{width}}  {title}")  # noqa: T201 - the output
        return 0
    matches = [name for name in known if name == args.topic] or [
        name for name in known if name.startswith(args.topic)
    ]
    if len(matches) != 1:
        what = "matches several" if matches else "is not a topic"
        print(  # noqa: T201 - the command's message
            f"borderlink help: {args.topic!r} {what}; topics: {', '.join(matches or known)}",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(known[matches[0]][1].read_text(encoding="utf-8"))
    return 0


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "help",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("topic", nargs="?", metavar="TOPIC", help="a guide, or a prefix of one")
    parser.set_defaults(handler=handle)
