"""``borderlink watch`` against a running daemon, as a subprocess: an alert posted shows as
admitted, then each of its deliveries as delivered; an unreachable gateway exits 2."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import aiohttp

from gateway.commands.watch import FINAL
from gateway.ledger import TERMINAL_STATES
from tests.daemon.conftest import CapFactory, daemon_toml, load, running_daemon
from tests.helpers import Broker, free_port

AUTH = {"Authorization": "Bearer test-token-0123456789abcdef"}


async def _watch(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "watch", *argv),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_admission_then_deliveries_as_they_happen(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    config = load(daemon_toml(tmp_path, mosquitto.url))
    raw = cap(severity="Extreme", headline="Watch me")
    key = CapFactory.key_of(raw)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{daemon.http_port}"
        proc = await _watch("--url", url, "--interval", "0.1")
        try:
            assert proc.stderr is not None
            assert proc.stdout is not None
            started = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert started.startswith(b"watching ")
            async with http.post(f"{url}/api/v1/alerts", data=raw, headers=AUTH) as resp:
                assert resp.status == 202
            lines: list[str] = []

            def delivered() -> set[str]:
                return {
                    line.split(",")[0].split()[-1]
                    for line in lines
                    if " delivery   delivered " in line and key in line
                }

            while delivered() != {"out-cap", "out-json"}:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, "watch ended early"
                lines.append(line.decode())
            admitted = [line for line in lines if " admitted " in line]
            assert len(admitted) == 1
            assert "new" in admitted[0]
            assert "Watch me" in admitted[0]
            assert lines.index(admitted[0]) == 0  # the admission comes before its deliveries
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()


async def test_unreachable_gateway_exits_2() -> None:
    port = free_port()
    proc = await _watch("--url", f"http://127.0.0.1:{port}")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"cannot reach" in err


def test_final_states_are_the_ledgers() -> None:
    assert {state.value for state in TERMINAL_STATES} == FINAL
