"""``borderlink alerts`` against a running daemon, as a subprocess: the table, --json, and
the errors of an unreachable or refusing gateway."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

from gateway.commands.alerts import table
from tests.daemon.conftest import CapFactory, daemon_toml, load, running_daemon
from tests.helpers import Broker, free_port

AUTH = {"Authorization": "Bearer test-token-0123456789abcdef"}


async def _alerts(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "alerts",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_table_and_json_of_a_running_gateway(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    config = load(daemon_toml(tmp_path, mosquitto.url))
    raw = cap(severity="Extreme", event="Tornado", headline="Tornado warning for the river")
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{daemon.http_port}"
        async with http.post(f"{url}/api/v1/alerts", data=raw, headers=AUTH) as resp:
            assert resp.status == 202
        code, out, err = await _alerts("--url", url, "--active")
        assert code == 0, err
        head, *rows = out.splitlines()
        assert head.split() == [
            "PRI",
            "STATE",
            "SEVERITY",
            "EVENT",
            "EXPIRES",
            "UTC",
            "SOURCE",
            "HEADLINE",
        ]
        assert len(rows) == 1
        assert "Extreme" in rows[0]
        assert rows[0].endswith("Tornado warning for the river")
        code, out, err = await _alerts("--url", url, "--json", "--limit", "5")
        assert code == 0, err
        body = json.loads(out)
        assert body["count"] == 1
        assert body["alerts"][0]["key"] == CapFactory.key_of(raw)


async def test_empty_unreachable_and_refused(mosquitto: Broker, tmp_path: Path) -> None:
    config = load(daemon_toml(tmp_path, mosquitto.url))
    async with running_daemon(config) as daemon:
        url = f"http://127.0.0.1:{daemon.http_port}"
        assert await _alerts("--url", url, "--active") == (0, "no active alerts\n", "")
        code, _, err = await _alerts("--url", url + "/nowhere")
        assert code == 2
        assert "404" in err
    port = free_port()
    code, _, err = await _alerts("--url", f"http://127.0.0.1:{port}")
    assert code == 2
    assert f"cannot reach http://127.0.0.1:{port}/api/v1/alerts" in err


def test_table_cuts_to_the_width_and_writes_expiry_in_utc() -> None:
    rows = [
        {
            "priority": 0,
            "status": "active",
            "expires": "2026-12-04T07:44:29-05:00",
            "headline": "x" * 300,
        }
    ]
    lines = table(rows, 100).splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[1].endswith("…")
    assert " 12-04 12:44 " in lines[1]
    assert table(rows, 0).splitlines()[1].endswith("x" * 300)  # a pipe gets whole lines
