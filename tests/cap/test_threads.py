"""Schemas compiled on first use from several threads at once (two gateways' first alerts, or
parse slots filled together at start): every thread gets a working schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIRST_USE = """
import threading
from cap_schemas.edxl import validate_edxl
from cap_schemas.validate import validate_xsd
from tests.daemon.conftest import CapFactory

raw = CapFactory()()
start = threading.Barrier(8)
errors = []

def check(i):
    start.wait()
    try:
        if i % 2:
            assert validate_xsd(raw) == [], validate_xsd(raw)
        else:
            validate_edxl(b"<x/>")
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=check, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("\\n".join(errors) or "ok")
"""


class TestFirstUseFromThreads:
    """A fresh process whose first validations run in eight threads at the same instant."""

    def test_concurrent_first_use(self) -> None:
        for _ in range(4):
            done = subprocess.run(
                [sys.executable, "-c", FIRST_USE],
                capture_output=True,
                cwd=ROOT,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode()
            assert done.stdout.decode().strip() == "ok", done.stdout.decode()
