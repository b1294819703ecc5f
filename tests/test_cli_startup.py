"""The command line loads only the command it runs: ``--version`` and light commands stay
quick because nothing heavy is imported for them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.cli import _chosen, _modules

HEAVY = ("numpy", "lxml", "aiohttp", "structlog", "gateway.commands.translate")


def _loaded(*argv: str) -> set[str]:
    probe = (
        "import sys\n"
        "from gateway.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(  # noqa: PLW1510 - what it imported is the result
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    return set(done.stderr.split())


@pytest.mark.parametrize(
    "argv",
    [
        ("--version",),
        ("--help",),
        ("nosuch",),
        ("tcp", "--help"),
        ("mqtt-passwd", "--help"),
        ("validate", "--help"),
        ("inspect", "--help"),
        ("same", "decode", "--help"),
        ("user", "add", "--help"),
    ],
)
def test_light_command_lines_import_nothing_heavy(argv: tuple[str, ...]) -> None:
    loaded = _loaded(*argv)
    assert "gateway.cli" in loaded
    assert not {m for m in HEAVY if m in loaded}, argv


def test_a_named_command_loads_only_its_module() -> None:
    names = _modules()
    assert names["check-config"] == "gateway.commands.check_config:register"
    # Technician commands come from entry points: the gateway names no adapter module.
    assert names["sim"] == "hardware.command:register"
    assert names["loopback"] == "adapters.loopback:register"
    assert _chosen(["--log-level", "debug", "validate", "x.xml"], names) == [
        "gateway.commands.validate:register"
    ]
    assert _chosen(["--version"], names) == []
    assert _chosen(["--help"], names) is None
    assert _chosen(["nosuch"], names) is None  # the error lists every command
    loaded = _loaded("validate", "--help")
    assert "gateway.commands.validate" in loaded
    assert "gateway.commands.translate" not in loaded


def test_help_still_lists_every_command() -> None:
    done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for name in _modules():
        assert name in done.stdout


def test_the_list_of_commands_is_read_not_imported() -> None:
    """``--help`` reads each command's SUMMARY from its source; the summary each command
    registers is that same constant."""
    import argparse  # noqa: PLC0415

    from gateway.cli import _summary, build_parser  # noqa: PLC0415

    brief = build_parser(["--help"])
    full = build_parser(None)

    def listed(parser: argparse.ArgumentParser) -> dict[str, str]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return {c.dest: str(c.help) for c in action._choices_actions}

    assert listed(brief) == listed(full)
    assert set(listed(brief)) == set(_modules())
    assert all(_summary(m) for m in _modules().values())
