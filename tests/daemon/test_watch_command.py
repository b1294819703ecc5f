"""``borderlink watch`` against a running daemon, as a subprocess: an alert posted shows as
admitted, then each of its deliveries as delivered, as lines or as JSON lines; an unreachable
gateway exits 2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
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


async def _follow(
    mosquitto: Broker, tmp_path: Path, raw: bytes, done: Callable[[list[str]], bool], *argv: str
) -> list[str]:
    """Run ``watch ARGV`` on a running daemon, post ``raw`` once it watches, and return the
    lines it printed until ``done(lines)`` (each line waited for 30 s at most)."""
    config = load(daemon_toml(tmp_path, mosquitto.url))
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{daemon.http_port}"
        proc = await _watch("--url", url, "--interval", "0.1", *argv)
        try:
            assert proc.stderr is not None
            assert proc.stdout is not None
            started = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert started.startswith(b"watching ")
            async with http.post(f"{url}/api/v1/alerts", data=raw, headers=AUTH) as resp:
                assert resp.status == 202
            lines: list[str] = []
            while not done(lines):
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, "watch ended early"
                lines.append(line.decode())
            return lines
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()


async def test_admission_then_deliveries_as_they_happen(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    raw = cap(severity="Extreme", headline="Watch me")
    key = CapFactory.key_of(raw)

    def delivered(lines: list[str]) -> bool:
        sinks = {
            line.split(",")[0].split()[-1]
            for line in lines
            if " delivery   delivered " in line and key in line
        }
        return sinks == {"out-cap", "out-json"}

    lines = await _follow(mosquitto, tmp_path, raw, delivered)
    admitted = [line for line in lines if " admitted " in line]
    assert len(admitted) == 1
    assert "new" in admitted[0]
    assert "Watch me" in admitted[0]
    assert lines.index(admitted[0]) == 0  # the admission comes before its deliveries


async def test_json_lines_for_scripts(mosquitto: Broker, tmp_path: Path, cap: CapFactory) -> None:
    raw = cap(severity="Extreme", headline="Watch me as JSON")
    key = CapFactory.key_of(raw)

    def delivered(lines: list[str]) -> bool:
        events = [json.loads(line) for line in lines]
        sinks = {e["sink"] for e in events if e["kind"] == "delivery" and e["state"] == "delivered"}
        return sinks == {"out-cap", "out-json"}

    events = [
        json.loads(line) for line in await _follow(mosquitto, tmp_path, raw, delivered, "--json")
    ]
    admitted, *deliveries = events
    assert set(admitted) == {
        "time",
        "kind",
        "key",
        "decision",
        "status",
        "severity",
        "event",
        "headline",
    }
    assert (admitted["kind"], admitted["key"], admitted["decision"]) == ("admitted", key, "new")
    assert (admitted["severity"], admitted["headline"]) == ("Extreme", "Watch me as JSON")
    assert datetime.fromisoformat(admitted["time"]).utcoffset() == timedelta(0)
    for delivery in deliveries:
        assert delivery["kind"] == "delivery"
        assert set(delivery) == {"time", "kind", "key", "sink", "state", "attempts", "reason"}
        assert delivery["key"] == key
    assert deliveries[-1]["attempts"] >= 1


async def test_a_reader_that_stops_ends_the_watch(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    # `borderlink watch | head -n 1`: once head has its line, the watch ends (exit 0) instead
    # of saying "Broken pipe; trying again" every second for ever.
    config = load(daemon_toml(tmp_path, mosquitto.url))
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{daemon.http_port}"
        watch = shlex.join([sys.executable, "-m", "gateway", "watch", "--url", url,
                            "--interval", "0.1"])  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", f"set -o pipefail; {watch} | head -n 1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            started = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert started.startswith(b"watching ")
            # The watch learns that head is gone at its next line: alerts until it has.
            async with asyncio.timeout(30):
                while proc.returncode is None:
                    async with http.post(
                        f"{url}/api/v1/alerts", data=cap(), headers=AUTH
                    ) as resp:
                        assert resp.status == 202
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 0.5)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the pipeline: bash, watch and head
            await proc.wait()
    assert out.decode().count("\n") == 1
    assert b"trying again" not in err
    assert proc.returncode == 0, err.decode()


async def test_unreachable_gateway_exits_2() -> None:
    port = free_port()
    proc = await _watch("--url", f"http://127.0.0.1:{port}")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"cannot reach" in err


def test_final_states_are_the_ledgers() -> None:
    assert {state.value for state in TERMINAL_STATES} == FINAL
