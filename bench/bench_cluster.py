"""Several gateways on one PostgreSQL ledger, against one gateway on SQLite, in one run.

Each configuration takes CAP alerts from one Mosquitto (``borderlink/in/cap``; the instances
of a cluster share it as the MQTT 5 shared subscription ``$share/bench/...``, so each message
is admitted by one of them) and publishes each to ``out/{key}``. Measured per configuration:

* **end-to-end alerts/s at p99 < 50 ms**: the rate ladder of ``bench_daemon`` (publish at a
  steady rate for a few seconds, latency from publish to the sink's copy), the highest rate
  whose p99 stays under 50 ms with nothing lost;
* **admissions/s, unconstrained**: 2,000 alerts published as fast as the client can, divided
  by the time until the last copy came out;
* **peak RSS** of each instance.

The machine has two cores: PostgreSQL, Mosquitto, the load generator and up to three
gateways share them, so the cluster figures here are bounded by the cores, not by the
design; the report says what one instance costs so three real machines can be estimated.

Settings (environment):

* ``BENCH_CLUSTER_CONFIGS``: the configurations to run, of ``sqlitex1 pgx1 pgx2 pgx3``
  (default all four), e.g. ``pgx1`` for one gateway on PostgreSQL alone;
* ``BENCH_CLUSTER_BASELINE``: earlier revisions to measure side by side with this one, in the
  same run on the same servers (space-separated, anything ``git archive`` takes: ``main``,
  ``9499971^``), each from its own ``git archive``;
* ``BENCH_CLUSTER_RUNS``: how many times (default 1); the revisions take turns within each
  run, and with more than one run the report gives the median of each figure and the ratio of
  this revision's admissions/s to each baseline's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiomqtt

from bench.bench_daemon import (
    P99_LIMIT,
    RATES,
    Result,
    _baseline_tree,
    _peak_rss_mb,
    _row,
    _run_rate,
)
from tests.daemon.conftest import CapFactory
from tests.helpers import Postgres, free_port, run_mosquitto, run_postgres, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
STEP_SECONDS = 4
BURST = 2000
CONFIGS = {"sqlitex1": (False, 1), "pgx1": (True, 1), "pgx2": (True, 2), "pgx3": (True, 3)}
WANTED = os.environ.get("BENCH_CLUSTER_CONFIGS", " ".join(CONFIGS)).split()
BASELINES = os.environ.get("BENCH_CLUSTER_BASELINE", "").split()
RUNS = int(os.environ.get("BENCH_CLUSTER_RUNS", "1"))


@dataclasses.dataclass(frozen=True)
class Measured:
    """One configuration of one revision, once."""

    label: str
    rate: int  # highest end-to-end rate with p99 < 50 ms (0: none)
    p99_ms: float
    admissions: float  # per second, in the burst
    cpu_ms: float  # of the gateways, per alert of the burst
    rss: tuple[float, ...]  # MiB, each instance

    def row(self) -> str:
        return (
            f"{self.label:<22} {self.rate:>14} {self.p99_ms:>9.1f} {self.admissions:>14.0f}"
            f" {self.cpu_ms:>12.2f}   {', '.join(f'{r:.0f}' for r in self.rss)}"
        )


def _config(tmp: Path, n: int, broker_port: int, ledger: str, shared: bool) -> tuple[Path, int]:
    http = free_port()
    group = 'shared_group = "bench"\n' if shared else ""
    path = tmp / f"gw{n}.toml"
    path.write_text(
        f'[gateway]\nname = "gw{n}"\ndata_dir = "{tmp / f"gw{n}"}"\n\n'
        f'[mqtt]\nbroker = "mqtt://127.0.0.1:{broker_port}"\nclient_id = "bench-gw{n}"\n'
        f'validation = "warn"\npublish_active = false\n{group}\n'
        f"[http]\nport = {http}\n\n[console]\nenabled = false\n\n{ledger}\n"
        '[[sink]]\nname = "out"\ntype = "mqtt"\ntopic = "out/{key}"\nbatch = 32\n\n'
        '[[route]]\nname = "all"\nsinks = ["out"]\n',
        encoding="utf-8",
    )
    return path, http


def _ledger(tmp: Path, postgres: Postgres | None, schema: str) -> str:
    if postgres is None:
        return f'[ledger]\npath = "{tmp / "ledger.sqlite3"}"\n'
    return f'[ledger]\nbackend = "postgresql"\ndsn = "{postgres.dsn}"\nschema = "{schema}"\n'


async def _burst(port: int, count: int) -> float:
    """Alerts per second from the first publish to the last copy out."""
    factory = CapFactory(sender="burst@borderlink.invalid")
    payloads = [factory(severity="Severe") for _ in range(count)]
    seen: set[str] = set()
    done = asyncio.Event()
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"burst-{uuid.uuid4().hex[:6]}") as sub:
        await sub.subscribe("out/#", qos=1)

        async def collect() -> None:
            async for message in sub.messages:
                seen.add(str(message.topic))
                if len(seen) >= count:
                    done.set()

        collector = asyncio.create_task(collect())
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier=f"burst-pub-{uuid.uuid4().hex[:6]}",
            max_inflight_messages=1000,
        ) as pub:  # fmt: skip
            start = time.perf_counter()
            await asyncio.gather(*(pub.publish("borderlink/in/cap", p, qos=1) for p in payloads))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=180)
            elapsed = time.perf_counter() - start
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await collector
    return len(seen) / elapsed


async def _ladder(port: int, label: str) -> Result | None:
    factory = CapFactory(sender=f"{label}@borderlink.invalid")
    await _run_rate(port, 50, 1, factory, key_of_topic=False)  # warm-up
    best: Result | None = None
    for rate in RATES:
        r = await _run_rate(port, rate, STEP_SECONDS, factory, key_of_topic=False)
        print(_row(label, r), flush=True)
        if r.received < r.sent or r.p99 >= P99_LIMIT:
            break
        best = r
    return best


def _run(
    broker_port: int,
    postgres: Postgres | None,
    instances: int,
    tree: Path = ROOT,
    revision: str = "",
) -> Measured:
    label = f"{'pg' if postgres else 'sqlite'}x{instances}" + (f" @{revision}" if revision else "")
    schema = "bench_" + uuid.uuid4().hex[:8]
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        tmp = Path(folder)
        daemons: list[subprocess.Popen[bytes]] = []
        try:
            for n in range(instances):
                config, http = _config(
                    tmp, n, broker_port, _ledger(tmp, postgres, schema), shared=instances > 1
                )
                daemons.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "gateway",
                            "--log-level",
                            "warning",
                            "run",
                            str(config),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        cwd=tmp,
                        env=env,
                    )
                )
                wait_for_port("127.0.0.1", http, timeout=60)
            time.sleep(1.0)  # the MQTT inputs subscribe right after the HTTP listeners start
            best = asyncio.run(_ladder(broker_port, label))
            cpu_before = sum(_cpu_seconds(d.pid) for d in daemons)
            burst = asyncio.run(_burst(broker_port, BURST))
            cpu_ms = (sum(_cpu_seconds(d.pid) for d in daemons) - cpu_before) / BURST * 1000
            rss = [_peak_rss_mb(d.pid) for d in daemons]
        finally:
            for d in daemons:
                d.terminate()
            for d in daemons:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    d.wait(timeout=30)
    return Measured(
        label,
        best.rate if best else 0,
        best.p99 * 1000 if best else float("nan"),
        burst,
        cpu_ms,
        tuple(rss),
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _commit_rate(postgres: Postgres, seconds: float = 3.0) -> float:
    """Durable single-row commits per second the PostgreSQL server takes (one client, a
    logged table: each commit waits for its WAL flush, as the ledger's do)."""
    import psycopg  # noqa: PLC0415 - only this measurement

    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_commits")
        conn.execute("CREATE TABLE bench_commits (n bigint)")
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            with conn.transaction():
                conn.execute("INSERT INTO bench_commits VALUES (%s)", (count,))
            count += 1
    return count / seconds


def _median(runs: list[Measured]) -> Measured:
    return Measured(
        runs[0].label,
        int(statistics.median(m.rate for m in runs)),
        statistics.median(m.p99_ms for m in runs),
        statistics.median(m.admissions for m in runs),
        statistics.median(m.cpu_ms for m in runs),
        tuple(statistics.median(r) for r in zip(*(m.rss for m in runs), strict=True)),
    )


def main() -> None:
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt's pending-calls notices
    unknown = [c for c in WANTED if c not in CONFIGS]
    if unknown:
        msg = f"BENCH_CLUSTER_CONFIGS: unknown {' '.join(unknown)} (of {' '.join(CONFIGS)})"
        raise SystemExit(msg)
    header = (
        f"{'config':<22} {'alerts/s p99<50':>14} {'p99 ms':>9} {'admissions/s':>14}"
        f" {'CPU ms/alert':>12}   RSS MiB each"
    )
    measured: dict[tuple[str, str], list[Measured]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-cluster-trees-") as folder,
        run_mosquitto() as broker,
        run_postgres() as postgres,
    ):
        trees: list[tuple[str, Path]] = []
        for n, revision in enumerate(BASELINES):
            tree = _baseline_tree(Path(folder), revision, name=f"baseline-{n}")
            if tree is None:
                raise SystemExit(f"BENCH_CLUSTER_BASELINE: no revision {revision!r} here")
            trees.append((revision, tree))
        trees.append(("", ROOT))
        for run in range(1, RUNS + 1):
            for config in WANTED:
                on_postgres, instances = CONFIGS[config]
                for revision, tree in trees:
                    server = postgres if on_postgres else None
                    m = _run(broker.port, server, instances, tree, revision)
                    measured.setdefault((config, revision), []).append(m)
                    print(f"run {run} of {RUNS}: {m.row()}", flush=True)
        commits = _commit_rate(postgres)
    print()
    if RUNS > 1:
        print(f"medians of {RUNS} runs")
    print(header)
    for runs in measured.values():
        print(_median(runs).row())
    for config in WANTED:
        ours = statistics.median(m.admissions for m in measured[(config, "")])
        for revision in BASELINES:
            theirs = statistics.median(m.admissions for m in measured[(config, revision)])
            print(
                f"{config} admissions/s, this revision / {revision}: {ours / theirs:.2f}"
                f" (per run: {', '.join(f'{m.admissions:.0f}' for m in measured[(config, '')])}"
                f" / {', '.join(f'{m.admissions:.0f}' for m in measured[(config, revision)])})"
            )
    print(f"PostgreSQL durable commits/s (one client): {commits:.0f}")
