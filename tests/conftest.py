"""Fixtures shared by every test."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Broker, Postgres, run_mosquitto, run_postgres

LEAK_GRACE_SECONDS = 3.0


@pytest.fixture
def mosquitto() -> Iterator[Broker]:
    """A real Mosquitto broker on a free loopback port, stopped after the test."""
    with run_mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server for the whole run (each test uses a schema of its own)."""
    with run_postgres() as server:
        yield server


def _live_children() -> dict[int, str]:
    """Child processes of this test run that are still running (zombies excluded)."""
    me = str(os.getpid())
    children: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == me and not fields.get("State", "").startswith("Z"):
            children[int(entry.name)] = fields.get("Name", "?").strip()
    return children


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves a child process (broker, simulator, referee) running."""
    if not Path("/proc/self/status").exists():
        yield
        return
    before = set(_live_children())
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    leaked = {p: n for p, n in _live_children().items() if p not in before}
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = {p: n for p, n in _live_children().items() if p not in before}
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    if leaked:
        names = ", ".join(f"{name} (pid {pid})" for pid, name in sorted(leaked.items()))
        pytest.fail(f"test left child processes running: {names}")
