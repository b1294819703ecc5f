"""``borderlink loopback`` against every simulator: counts match what the channel did."""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.loopback import LoopbackReport, Progress, frame_text, measure, parse_frame
from gateway.cli import build_parser
from hardware.rf_channel import RFSimulation, TapTerminalStation
from tests.helpers import free_port
from tests.radio.conftest import SimFactory

ROOT = Path(__file__).resolve().parents[2]

RATE = 38400


def args(*argv: str) -> Any:
    return build_parser().parse_args(["loopback", *argv])


async def run(sim: RFSimulation, station: str, protocol: str, *extra: str) -> LoopbackReport:
    ns = args(sim.url(station), "--protocol", protocol, "--rate", str(RATE), *extra)
    return await measure(ns, progress=Progress(ns.count, enabled=False))


def channel(**faults: Any) -> dict[str, Any]:
    return {"name": "rf", "line_rate": RATE, "seed": 11, **faults}


def single(kind: str, **faults: Any) -> dict[str, Any]:
    station: dict[str, Any] = {"name": "dut", "kind": kind, "tcp": "127.0.0.1:0", "loopback": True}
    if kind == "raw":
        del station["loopback"]
    if kind == "radio":
        station["talkgroups"] = ["LOOP"]
    return {"channels": [channel(**faults)], "stations": [station]}


class TestCleanLinks:
    """On a clean link every frame comes back, in order, within the line's capacity."""

    @pytest.mark.parametrize(
        ("kind", "protocol"), [("tnc", "kiss"), ("radio", "modem"), ("raw", "raw")]
    )
    async def test_windowed_protocols(self, rf: SimFactory, kind: str, protocol: str) -> None:
        async with rf(single(kind)) as sim:
            report = await run(sim, "dut", protocol, "--count", "40")
        assert (report.sent, report.received, report.lost, report.corrupted) == (40, 40, 0, 0)
        assert report.out_of_order == 0
        assert report.passed
        assert report.latency_p50_ms is not None
        assert report.latency_p99_ms is not None
        assert report.latency_p50_ms <= report.latency_p99_ms
        # Measured throughput can never beat the line.
        assert 0 < report.throughput_ratio <= 1.0

    async def test_tap(self, rf: SimFactory) -> None:
        options = {
            "channels": [channel()],
            "stations": [{"name": "dut", "kind": "tap", "tcp": "127.0.0.1:0", "password": "PW"}],
        }
        async with rf(options) as sim:
            report = await run(sim, "dut", "tap", "--count", "20", "--password", "PW")
            terminal = sim.stations["dut"]
            assert isinstance(terminal, TapTerminalStation)
            assert len(terminal.pages) == 20
        assert (report.sent, report.received, report.lost, report.corrupted) == (20, 20, 0, 0)
        assert 0 < report.throughput_ratio <= 1.0


class TestFaultyLinks:
    """With seeded loss and corruption the report matches the channel's own counts exactly."""

    @pytest.mark.parametrize(("kind", "protocol"), [("tnc", "kiss"), ("radio", "modem")])
    async def test_radio_drops_damaged_frames(
        self, rf: SimFactory, kind: str, protocol: str
    ) -> None:
        async with rf(single(kind, loss=0.1, corruption=0.05)) as sim:
            report = await run(
                sim, "dut", protocol, "--count", "120", "--timeout", "0.5", "--max-loss", "0.5"
            )
            stats = sim.channels["rf"].stats
            station = sim.stations["dut"]
        assert stats.dropped > 0
        assert stats.corrupted > 0
        # A radio's frame check drops damaged frames: they are lost, not delivered damaged.
        assert report.lost == stats.dropped + station.fcs_dropped
        assert report.corrupted == 0
        assert report.received == 120 - report.lost
        assert report.passed

    async def test_raw_line_returns_damage(self, rf: SimFactory) -> None:
        async with rf(single("raw", loss=0.1, corruption=0.1)) as sim:
            report = await run(sim, "dut", "raw", "--count", "120", "--timeout", "0.5")
            stats = sim.channels["rf"].stats
        assert report.lost == stats.dropped > 0
        assert report.corrupted == stats.corrupted > 0
        assert report.received == 120 - stats.dropped - stats.corrupted
        assert not report.passed
        assert any("loss" in f for f in report.failures)

    async def test_tap_naks_and_silence(self, rf: SimFactory) -> None:
        options = {
            "channels": [channel()],
            "stations": [
                {
                    "name": "dut",
                    "kind": "tap",
                    "tcp": "127.0.0.1:0",
                    "loss": 0.1,
                    "corruption": 0.1,
                    "seed": 5,
                }
            ],
        }
        async with rf(options) as sim:
            report = await run(sim, "dut", "tap", "--count", "60", "--timeout", "0.3")
            terminal = sim.stations["dut"]
            assert isinstance(terminal, TapTerminalStation)
        assert report.lost == terminal.line_plan.dropped > 0
        assert report.corrupted == terminal.line_plan.corrupted == terminal.naks > 0
        assert report.received == len(terminal.pages)


class TestFrames:
    """Test frames detect any single-bit error."""

    def test_every_bit_flip_is_detected(self) -> None:
        text = frame_text(42, 20)
        assert parse_frame(text) == (42, True)
        data = text.encode()
        for i in range(len(data)):
            for bit in range(7):
                damaged = bytearray(data)
                damaged[i] ^= 1 << bit
                _, intact = parse_frame(damaged.decode("latin-1"))
                assert not intact


def _unreachable_loopback(extra: list[str]) -> subprocess.CompletedProcess[str]:
    """``borderlink loopback`` on a port nobody listens on, with ``extra`` arguments."""
    return subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [sys.executable, "-m", "gateway", "loopback", "socket://127.0.0.1:9", *extra],
        capture_output=True,
        text=True,
        timeout=30,
    )


class TestCommandLine:
    """The commands technicians run: sim in one shell, loopback in another; exit codes."""

    def test_sim_tnc_and_loopback_json(self) -> None:
        port = free_port()
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "sim",
                "tnc",
                "--tcp",
                f"127.0.0.1:{port}",
                "--loopback",
                "--line-rate",
                str(RATE),
                "--loss",
                "0.2",
                "--seed",
                "3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert sim.stdout is not None
            ports = json.loads(sim.stdout.readline())
            assert ports == {"tnc": f"socket://127.0.0.1:{port}"}
            base = [
                sys.executable,
                "-m",
                "gateway",
                "loopback",
                ports["tnc"],
                "--protocol",
                "kiss",
                "--rate",
                str(RATE),
                "--count",
                "30",
                "--timeout",
                "0.5",
                "--json",
            ]
            ok = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
                [*base, "--max-loss", "60%"], capture_output=True, text=True, timeout=60
            )
            assert ok.returncode == 0, ok.stderr
            report = json.loads(ok.stdout)
            assert report["sent"] == 30
            assert report["lost"] > 0
            assert report["received"] + report["lost"] == 30
            assert set(report) >= {
                "sent",
                "received",
                "lost",
                "corrupted",
                "out_of_order",
                "latency_p50_ms",
                "latency_p99_ms",
                "throughput_ratio",
            }
            strict = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
                base, capture_output=True, text=True, timeout=60
            )
            assert strict.returncode == 1
        finally:
            sim.terminate()
            sim.wait(timeout=10)
            if sim.stdout is not None:
                sim.stdout.close()

    def test_readme_loopback_example_as_written(self) -> None:
        # The README's example once failed its own latency threshold; run it as printed there,
        # on a free port instead of its own.
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        section = readme.split("## Technician loopback tests", 1)[1]
        block = section.split("```sh\n", 1)[1].split("```", 1)[0]
        sim_line, loop_line = block.replace("\\\n", " ").strip().splitlines()
        # The example is read after the quick start, with make run still running: its
        # simulator must not take a port of the demo (where the loopback would test the
        # demo's APRS channel and lose every frame).
        listen = shlex.split(sim_line.split("&", 1)[0])
        address = listen[listen.index("--tcp") + 1]
        assert address not in (ROOT / "config" / "demo.toml").read_text(encoding="utf-8")
        port = str(free_port())
        readme_port = address.rsplit(":", 1)[1]
        sim_argv = shlex.split(sim_line.split("&", 1)[0].replace(readme_port, port))
        loop_argv = shlex.split(loop_line.replace(readme_port, port))
        assert sim_argv[0] == loop_argv[0] == "borderlink"
        cli = [sys.executable, "-m", "gateway"]
        sim = subprocess.Popen(
            [*cli, *sim_argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert sim.stdout is not None
            json.loads(sim.stdout.readline())  # the simulator says where it listens
            done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
                [*cli, *loop_argv[1:]], capture_output=True, text=True, timeout=110
            )
            assert done.returncode == 0, done.stdout + done.stderr
            report = json.loads(done.stdout)
            assert report["passed"] is True
            assert report["lost"] == 0
            assert report["received"] == report["sent"] > 0
        finally:
            sim.terminate()
            sim.wait(timeout=10)
            if sim.stdout is not None:
                sim.stdout.close()

    @pytest.mark.parametrize("extra", [["--size", "500"], ["--rate", "-5"]])
    def test_bad_arguments_exit_2(self, extra: list[str]) -> None:
        done = _unreachable_loopback(extra)
        assert done.returncode == 2
        assert "out of range" in done.stderr or "positive" in done.stderr

    @pytest.mark.parametrize(
        ("extra", "says"),
        [
            (["--max-loss", "abc"], "argument --max-loss: 'abc' is not a fraction"),
            (["--max-corrupt", "150%"], "argument --max-corrupt: '150%' is not a fraction"),
            (["--count", "many"], "argument --count: 'many' is not a whole number"),
            (["--window", "0"], "argument --window: must be at least 1"),
        ],
    )
    def test_bad_thresholds_say_which_and_what(self, extra: list[str], says: str) -> None:
        # The technician reads what is wrong in words, not the name of a function of ours.
        done = _unreachable_loopback(extra)
        assert done.returncode == 2
        assert says in done.stderr
        assert "_fraction" not in done.stderr
        assert "_positive" not in done.stderr

    def test_unreachable_port_exits_2(self) -> None:
        port = free_port()
        done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
            [sys.executable, "-m", "gateway", "loopback", f"socket://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert "cannot open port" in done.stderr


async def test_pty_station_is_reachable(rf: SimFactory) -> None:
    """A station on a pty answers through the pty path like a serial device."""
    options = {
        "channels": [channel()],
        "stations": [{"name": "dut", "kind": "tnc", "pty": True, "loopback": True}],
    }
    async with rf(options) as sim:
        assert sim.url("dut").startswith("/dev/")
        report = await run(sim, "dut", "kiss", "--count", "10")
    assert report.received == 10
    assert isinstance(asyncio.get_running_loop(), asyncio.AbstractEventLoop)


async def test_unread_pty_is_drained_not_blocking(rf: SimFactory) -> None:
    """A pty nobody reads never blocks its station: output beyond the buffer is dropped."""
    options = {
        "channels": [channel(line_rate=2_000_000)],
        "stations": [
            {"name": "quiet", "kind": "tnc", "pty": True},
            {"name": "talker", "kind": "tnc", "tcp": "127.0.0.1:0"},
        ],
    }
    async with rf(options) as sim:
        quiet, talker = sim.stations["quiet"], sim.stations["talker"]
        frame = bytes(200)
        for _ in range(400):  # ~80 KB towards a pty with a few KB of buffer
            talker.send_on_air("ax25", "", frame)
        await quiet.wait_until(lambda: len(quiet.received) == 400, within=30)
        assert quiet.host is not None
        assert quiet.host.overflowed > 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("tnc", {"tnc", "peer"}),
        ("radio", {"radio", "console"}),
        ("modem", {"radio"}),
        ("tap", {"terminal", "pager"}),
        ("raw", {"line"}),
    ],
)
def test_every_sim_command_serves_and_prints_its_ports(kind: str, names: set[str]) -> None:
    """`borderlink sim KIND` prints its ports as JSON and serves them until stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "sim", kind, "--tcp", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        assert set(ports) == names
        host, port = (
            ports[sorted(names)[-1] if kind != "tap" else "terminal"]
            .removeprefix("socket://")
            .split(":")
        )
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0  # a clean stop on SIGTERM


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(10, enabled=True)
    report = LoopbackReport("kiss", "x", received=4, lost=1)
    progress.update(5, report)
    progress.close()
    err = capsys.readouterr().err
    assert "[###############...............] 5/10" in err
    assert "received 4" in err
    Progress(10, enabled=False).update(5, report)
    assert capsys.readouterr().err == ""
