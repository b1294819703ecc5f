"""Radio benchmarks, measured side by side with their baselines in one run.

1. KISS stream decoding (MB/s): our decoder (``bytes.find`` between FENDs, split-based
   unescape) against the byte-at-a-time state machine most KISS implementations use.
2. Alert pre-emption on a busy data radio (9600 bit/s, simulated): how long an alert waits
   behind 20 queued chatter relays with the transmit gate (alerts first) and with a plain
   first-come lock (the baseline).
3. ``borderlink loopback`` against each simulator at 9600 bit/s: measured throughput over the
   line's theoretical rate.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

from adapters.kiss import ax25, kiss
from adapters.loopback import LoopbackReport, Progress, measure
from adapters.ports import TxGate
from gateway.adapter import AdapterContext, Outbound
from hardware.rf_channel import RadioStation, simulation

TRIALS = 5


def _stream(frames: int = 5000) -> bytes:
    rng = random.Random(1)
    out = bytearray()
    for i in range(frames):
        info = f":VE3BDR   :message {i} ".encode() + bytes(rng.randrange(256) for _ in range(40))
        frame = ax25.Frame(ax25.Address("APRS"), ax25.Address("VA3FLD", 5), (), info[:256])
        out += kiss.data_frame(frame.to_bytes()).to_bytes()
    return bytes(out)


def _baseline_decode(data: bytes) -> list[bytes]:
    """The classic per-byte KISS receive state machine."""
    frames: list[bytes] = []
    buf = bytearray()
    escaped = False
    in_frame = False
    for b in data:
        if b == kiss.FEND:
            if in_frame and buf:
                frames.append(bytes(buf[1:]))
            buf.clear()
            in_frame = True
            escaped = False
        elif not in_frame:
            continue
        elif escaped:
            buf.append(kiss.FEND if b == kiss.TFEND else kiss.FESC if b == kiss.TFESC else b)
            escaped = False
        elif b == kiss.FESC:
            escaped = True
        else:
            buf.append(b)
    return frames


def bench_codec() -> list[tuple[str, float, float]]:
    data = _stream()
    mb = len(data) / 1e6
    ours: list[float] = []
    base: list[float] = []
    chunked: list[float] = []
    for _ in range(TRIALS):
        t = time.perf_counter()
        frames = kiss.KissDecoder().feed(data)
        ours.append(mb / (time.perf_counter() - t))
        t = time.perf_counter()
        decoder = kiss.KissDecoder()
        n = 0
        for i in range(0, len(data), 64):
            n += len(decoder.feed(data[i : i + 64]))
        chunked.append(mb / (time.perf_counter() - t))
        t = time.perf_counter()
        baseline = _baseline_decode(data)
        base.append(mb / (time.perf_counter() - t))
        assert [f.data for f in frames] == baseline
        assert n == len(frames)
    b = statistics.median(base)
    return [
        ("KISS decode, whole stream", statistics.median(ours), statistics.median(ours) / b),
        ("KISS decode, 64-byte reads", statistics.median(chunked), statistics.median(chunked) / b),
        ("baseline per-byte state machine", b, 1.0),
    ]


class _FifoGate(TxGate):
    """The baseline: one lock, first come first served, whatever the priority."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = asyncio.Lock()

    def hold(self, *, urgent: bool) -> Any:
        return self._lock


async def _alert_wait(fifo: bool) -> float:
    from adapters.textmodem.adapter import from_context  # noqa: PLC0415

    options = {
        "channels": [{"name": "c", "line_rate": 9600}],
        "stations": [
            {"name": "gw", "kind": "radio", "tcp": "127.0.0.1:0", "talkgroups": ["TG"]},
            {"name": "hh", "kind": "console", "talkgroups": ["TG"]},
        ],
    }
    async with simulation(options) as sim:
        radio = from_context(AdapterContext("r", {"port": sim.url("gw"), "talkgroups": ["TG"]}))
        if fifo:
            radio._gate = _FifoGate()
        async with radio:
            chatter = [
                asyncio.create_task(
                    radio.send(
                        Outbound(
                            None,
                            "r",
                            (f"chatter {i} ".encode() + b"x" * 100,),
                            "text/plain",
                            {"priority": "chatter"},
                        )
                    )
                )
                for i in range(20)
            ]
            await asyncio.sleep(0.05)
            hh = sim.stations["hh"]
            assert isinstance(hh, RadioStation)
            t = time.perf_counter()
            await radio.send(Outbound(None, "r", (b"ALERT tornado",), "text/plain"))
            await hh.wait_until(lambda: any(x.payload == b"ALERT tornado" for x in hh.received))
            waited = time.perf_counter() - t
            await asyncio.gather(*chatter)
    return waited


async def bench_preemption() -> list[tuple[str, float, float]]:
    gate = [await _alert_wait(False) for _ in range(3)]
    fifo = [await _alert_wait(True) for _ in range(3)]
    g, f = statistics.median(gate), statistics.median(fifo)
    return [
        ("alert behind 20 relays, transmit gate", g * 1000, f / g),
        ("alert behind 20 relays, FIFO lock (baseline)", f * 1000, 1.0),
    ]


async def bench_loopback() -> list[LoopbackReport]:
    reports = []
    for kind, protocol in (("tnc", "kiss"), ("radio", "modem"), ("raw", "raw"), ("tap", "tap")):
        station: dict[str, Any] = {"name": "dut", "kind": kind, "tcp": "127.0.0.1:0"}
        if kind in {"tnc", "radio"}:
            station["loopback"] = True
        if kind == "radio":
            station["talkgroups"] = ["LOOP"]
        options = {"channels": [{"name": "c", "line_rate": 9600}], "stations": [station]}
        async with simulation(options) as sim:
            args = argparse.Namespace(
                port=sim.url("dut"),
                protocol=protocol,
                count=100,
                size=32,
                rate=9600,
                window=4,
                timeout=0.0,
                pager_id="999",
                password="",
                max_loss=0.0,
                max_corrupt=0.0,
                max_p99_ms=None,
                min_throughput=None,
                json=True,
            )
            reports.append(await measure(args, progress=Progress(0, enabled=False)))
    return reports


def main() -> None:
    print("KISS decoding (median of 5, 5,000 frames)")
    print(f"{'':<34}{'MB/s':>10}{'vs baseline':>14}")
    for name, value, ratio in bench_codec():
        print(f"{name:<34}{value:>10.2f}{ratio:>13.2f}x")
    print()
    print("Alert pre-emption on a 9600 bit/s data radio (median of 3)")
    print(f"{'':<46}{'ms':>10}{'speed-up':>10}")
    for name, value, ratio in asyncio.run(bench_preemption()):
        print(f"{name:<46}{value:>10.0f}{ratio:>9.1f}x")
    print()
    print("borderlink loopback against the simulators, 9600 bit/s, 100 frames")
    print(f"{'protocol':<10}{'received':>10}{'p50 ms':>10}{'p99 ms':>10}{'bit/s':>10}{'ratio':>8}")
    for r in asyncio.run(bench_loopback()):
        print(
            f"{r.protocol:<10}{r.received:>10}{r.latency_p50_ms:>10}{r.latency_p99_ms:>10}"
            f"{r.throughput_bps:>10.0f}{r.throughput_ratio:>8.3f}"
        )


if __name__ == "__main__":
    main()
