"""``borderlink help``: the guides listed and printed, found from ``--help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.commands.help import topics

ROOT = Path(__file__).resolve().parents[1]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [sys.executable, "-m", "gateway", *argv], capture_output=True, text=True, timeout=60
    )


def test_every_guide_is_listed_with_its_title() -> None:
    done = _run("help")
    assert done.returncode == 0, done.stderr
    guides = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    assert guides
    assert sorted(topics()) == guides
    for name in guides:
        title = (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8").split("\n")[0]
        assert f"{name}" in done.stdout
        assert title.lstrip("# ") in done.stdout


def test_a_topic_or_its_prefix_prints_the_guide() -> None:
    guide = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert _run("help", "configuration").stdout == guide
    assert _run("help", "conf").stdout == guide


def test_unknown_and_ambiguous_topics_exit_2() -> None:
    unknown = _run("help", "weather")
    assert unknown.returncode == 2
    assert "'weather' is not a topic; topics: adapters, audio" in unknown.stderr
    several = _run("help", "s")
    assert several.returncode == 2
    assert "matches several; topics: security, signatures" in several.stderr


def test_top_level_help_points_to_the_guides() -> None:
    assert "borderlink help lists the guides" in _run("--help").stdout.replace("\n", " ")
