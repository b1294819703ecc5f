"""The ``borderlink`` command line.

Each sub-command lives in its own module and exposes ``register(subparsers)``: the gateway's
under :mod:`gateway.commands`, the technician commands of the adapters and simulators
(``loopback``, ``same``, ``sim``) registered as ``borderlink.commands`` entry points; this
module only finds them, builds the parser and dispatches.
Exit codes follow :data:`gateway.commands.CONVENTION` (0 done, 1 the answer is no, 2 it could
not be done); ``--help`` says so, and each command's ``--help`` lists its own.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway import __version__, commands, plugins
from gateway.commands import CONVENTION, HelpFormatter, exit_codes, plain


def _modules(*, registered: bool = True) -> dict[str, str]:
    """Command name -> ``"module:register"``: the gateway's own under :mod:`gateway.commands`
    (``check_config`` is ``check-config``), then (``registered``) the technician commands
    other packages register as ``borderlink.commands`` entry points (``sim``, ``loopback``,
    ``same``)."""
    own = {
        info.name.replace("_", "-"): f"{commands.__name__}.{info.name}:register"
        for info in pkgutil.iter_modules(commands.__path__)
        if not info.name.startswith("_")
    }
    return {**plugins.table(plugins.COMMANDS), **own} if registered else own


def _chosen(argv: Sequence[str], names: Mapping[str, str]) -> list[str] | None:
    """The modules a command line needs: only its command's, none for a bare ``--version``,
    or ``None`` (all of them: ``--help``, or a command that is not known, listed in the error).

    Each command imports what it works with (lxml, numpy, aiohttp): loading one instead of
    all keeps a technician's ``borderlink --version`` or ``borderlink tcp`` quick.
    """
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return [names[word]] if word in names else None
        elif word in ("-h", "--help"):
            return None
    return [] if "--version" in argv else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the command line, with only the command it names."""
    parser = argparse.ArgumentParser(
        prog="borderlink",
        description="Cross-border emergency-alert and radio message gateway.",
        epilog="borderlink help lists the guides (configuration, radio, security ...); "
        "borderlink COMMAND --help explains a command and lists its exit codes, which follow "
        "one convention:\n\n" + exit_codes(CONVENTION),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"borderlink {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="debug, info, warning, error (default info; warning for commands that print"
        " their own results, such as same decode)",
    )
    parser.add_argument("--log-json", action="store_true", help="JSON log lines even on a TTY")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # The gateway's own commands are found without reading the installed packages' metadata.
    names = _modules(registered=False)
    wanted = None if argv is None else _chosen(argv, names)
    if wanted is None:
        names = _modules()
        wanted = None if argv is None else _chosen(argv, names)
    if wanted is None and argv is not None:
        # The list of commands (``--help``, or an unknown command's error): their summaries,
        # read from the sources, without importing lxml, numpy or aiohttp for it.
        for name, module_name in sorted(names.items()):
            sub.add_parser(name, help=plain(_summary(module_name)))
        return parser
    for target in sorted(names.values()) if wanted is None else wanted:
        module_name, _, attr = target.partition(":")
        getattr(importlib.import_module(module_name), attr)(sub)
    return parser


def _summary(target: str) -> str:
    """A command module's ``SUMMARY``, read from its source (not imported)."""
    spec = importlib.util.find_spec(target.partition(":")[0])
    if spec is None or spec.origin is None:
        return ""
    source = Path(spec.origin).read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "SUMMARY" for t in node.targets)
            and isinstance(node.value, ast.Constant)
        ):
            return str(node.value.value)
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(arguments).parse_args(arguments)
    from gateway.logging import configure  # noqa: PLC0415 - not needed by --version or --help

    level = args.log_level or getattr(args, "log_level_default", "info")
    configure(level=level, json=True if args.log_json else None)
    handler = args.handler
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
