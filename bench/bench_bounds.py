"""Bounded intake: memory and liveness under twenty concurrent maximum-size posts.

Three rounds of twenty clients post at once a ~7.3 MB CAP alert each (a NAAD-style alert
whose resource carries its audio inline, base64), while a prober asks ``/healthz`` every
20 ms. Measured, per configuration, in one run:

* the daemon's **peak RSS** (``VmHWM``) and its RSS before the posts;
* ``/healthz`` latency **p50 / p99 / max** while the posts are read, parsed and admitted;
* how long the posts took, and that every one was admitted (202);
* the peak RSS of a restart on the ledger they left (every alert still active, the retained
  MQTT summaries republished).

Configurations: the defaults (``[gateway] max_concurrent_parses = 2``, ``[http]
max_inflight_bytes = 16 MiB``) against the same daemon with the bounds opened wide (20 parses,
512 MiB of bodies), the way it behaved before the bounds. Goal: RSS <= 300 MB and ``/healthz``
p99 <= 100 ms with the defaults.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.daemon.conftest import CapFactory
from tests.helpers import free_port, run_mosquitto, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 20
ROUNDS = 3  # rounds of CLIENTS posts at once, for enough /healthz probes
TOKEN = "bench-token-0123456789abcdef"
AUDIO_BYTES = 5_500_000  # base64 of it is ~7.3 MB


def _big_alert(factory: CapFactory, rng: random.Random) -> bytes:
    raw = factory(severity="Severe")
    audio = base64.b64encode(rng.randbytes(AUDIO_BYTES))
    resource = (
        b"<resource><resourceDesc>audio of the alert</resourceDesc>"
        b"<mimeType>audio/mpeg</mimeType><derefUri>" + audio + b"</derefUri></resource>"
    )
    head, sep, tail = raw.partition(b"<area>")
    return head + resource + sep + tail


def _renamed(body: bytes, round_: int) -> bytes:
    """The same document under a new identifier (each round admits new alerts)."""
    return body.replace(b"<identifier>", f"<identifier>R{round_}-".encode(), 1)


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _config(tmp: Path, broker_port: int, http_port: int, *, wide: bool) -> Path:
    (tmp / "token").write_text(TOKEN + "\n", encoding="utf-8")
    gateway = "max_concurrent_parses = 20\n" if wide else ""
    http = f"max_inflight_bytes = {512 * 1024 * 1024}\n" if wide else ""
    path = tmp / "bench.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp}"\n{gateway}\n'
        f'[mqtt]\nbroker = "mqtt://127.0.0.1:{broker_port}"\nclient_id = "bench-{wide}"\n'
        "publish_active = false\n\n"
        f'[http]\nport = {http_port}\ntoken_file = "token"\nvalidation = "warn"\n{http}\n'
        f'[ledger]\npath = "{tmp / "ledger.sqlite3"}"\n\n'
        '[[sink]]\nname = "out"\ntype = "mqtt"\nformat = "json"\ntopic = "out/{key}"\n\n'
        '[[route]]\nname = "all"\nsinks = ["out"]\n',
        encoding="utf-8",
    )
    return path


async def _load(http_port: int, bodies: list[bytes]) -> tuple[list[int], list[float], float]:
    base = f"http://127.0.0.1:{http_port}"
    latencies: list[float] = []
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def probe() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with http.get(f"{base}/healthz") as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        async def post(body: bytes) -> int:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.post(f"{base}/api/v1/alerts", data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        prober = asyncio.create_task(probe())
        started = time.perf_counter()
        statuses: list[int] = []
        for round_ in range(ROUNDS):
            batch = [_renamed(b, round_) for b in bodies]
            statuses += await asyncio.gather(*(post(b) for b in batch))
        took = time.perf_counter() - started
        stop.set()
        await prober
    return list(statuses), sorted(latencies), took


def _run(broker_port: int, bodies: list[bytes], *, wide: bool) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-bounds-") as tmp:
        http_port = free_port()
        config = _config(Path(tmp), broker_port, http_port, wide=wide)
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as handle:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "gateway", "--log-level", "warning", "--log-json",
                 "run", str(config)],
                stdout=handle, stderr=handle, cwd=ROOT, env=env,
            )
        try:
            wait_for_port("127.0.0.1", http_port, timeout=30)
            time.sleep(0.5)
            before = _status(daemon.pid, "VmRSS")
            statuses, latencies, took = asyncio.run(_load(http_port, bodies))
            peak = _status(daemon.pid, "VmHWM")
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        restart = _restart_peak(config, env) if not wide else float("nan")
    admitted = sum(1 for s in statuses if s == 202)
    p = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    label = "bounds wide open" if wide else "defaults"
    return (
        f"{label:<18} {before:>8.0f} {peak:>9.0f} {statistics.median(latencies) * 1000:>8.1f}"
        f" {p * 1000:>8.1f} {latencies[-1] * 1000:>8.1f} {len(latencies):>7} {took:>7.1f}"
        f" {admitted:>4}/{len(statuses)} {restart:>11.0f}"
    )


def _restart_peak(config: Path, env: dict[str, str]) -> float:
    """Peak RSS of a restart on the ledger the posts left (every alert still active) while it
    republishes their retained summaries, one stored original at a time."""
    config.write_text(
        config.read_text().replace("publish_active = false", "publish_active = true")
    )
    log = config.parent / "restart.log"
    with log.open("wb") as handle:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--log-json", "run", str(config)],
            stdout=handle, stderr=handle, cwd=ROOT, env=env,
        )
    try:
        deadline = time.monotonic() + 120
        while b"mqtt_state_synced" not in log.read_bytes():
            if time.monotonic() > deadline or daemon.poll() is not None:
                return float("nan")
            time.sleep(0.1)
        return _status(daemon.pid, "VmHWM")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def main() -> None:
    rng = random.Random(20261204)
    factory = CapFactory(sender="bench@borderlink.invalid")
    size = len(_big_alert(factory, rng))
    print(
        f"{ROUNDS} rounds of {CLIENTS} concurrent posts of a {size / 1e6:.1f} MB alert;"
        " /healthz every 20 ms"
    )
    print(
        f"{'configuration':<18} {'RSS MiB':>8} {'peak MiB':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'max ms':>8} {'probes':>7} {'took s':>7} {'ok':>6} {'restart MiB':>11}"
    )
    with run_mosquitto() as broker:
        for wide in (False, True):
            bodies = [_big_alert(factory, rng) for _ in range(CLIENTS)]
            print(_run(broker.port, bodies, wide=wide), flush=True)
            del bodies


if __name__ == "__main__":
    main()
