"""NAAD source timings against the NAAD simulator, real clock, loopback sockets.

Liveness timeout 2 s and heartbeat every 1.6 s: the NAAD System's 75 s / 60 s scaled down
by the same factor, so the ratios hold for the real feed. Measured side by side:

* a stream going silent (half-open: connected, nothing sent): when the adapter drops it, when
  that stream is healthy again, and how late an alert sent during the silence arrives with
  two streams (this adapter) versus one stream (the baseline: a single-stream client, as
  several reference clients are, which can only recover it by heartbeat + archive after it
  reconnects);
* a withheld alert: from the heartbeat that lists it to its yield from the archive, against
  the plain stream path (publish to yield).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.naad.adapter import NaadSource, from_context
from cap_schemas.stream import CapStreamSplitter, Document
from gateway.adapter import AdapterContext, Received
from hardware.sim_naad import NaadSimulator

LIVENESS = 2.0
HEARTBEAT = 1.6
TRIALS = 5
LATENCY_TRIALS = 20

ALERT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{ident}</identifier>'
    "<sender>bench@example.ca</sender><sent>2026-01-15T10:00:00-00:00</sent>"
    "<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>"
    "<info><category>Met</category><event>bench</event><urgency>Immediate</urgency>"
    "<severity>Severe</severity><certainty>Observed</certainty></info></alert>"
)


def alert(ident: str) -> bytes:
    return ALERT.format(ident=ident).encode()


class Reader:
    def __init__(self, source: NaadSource) -> None:
        self.source = source
        self.items: list[tuple[float, Received]] = []
        self.arrived = asyncio.Event()

    async def run(self) -> None:
        async for item in self.source.messages():
            self.items.append((time.monotonic(), item))
            self.arrived.set()

    async def first(self, predicate: Callable[[Received], bool], limit: float = 30) -> float:
        async with asyncio.timeout(limit):
            while True:
                for at, item in self.items:
                    if predicate(item):
                        return at
                self.arrived.clear()
                await self.arrived.wait()


async def until(predicate: Callable[[], bool], limit: float = 30) -> float:
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - health has no event to await
            await asyncio.sleep(0.002)
    return time.monotonic()


def make_source(sim: NaadSimulator, streams: list[str]) -> NaadSource:
    options: dict[str, Any] = {
        "streams": streams,
        "archive_templates": sim.archive_templates(),
        "liveness_timeout": LIVENESS,
        "reconnect_initial": 0.1,
        "reconnect_max": 1.0,
        "archive_retry_delay": 0.05,
    }
    source = from_context(AdapterContext(name="bench", options=options))
    assert isinstance(source, NaadSource)
    return source


async def with_source(
    sim: NaadSimulator, streams: list[str], body: Callable[[NaadSource, Reader], Awaitable[Any]]
) -> Any:
    source = make_source(sim, streams)
    async with source:
        reader = Reader(source)
        task = asyncio.create_task(reader.run())
        try:
            await until(lambda: sim.connections() == len(streams))
            return await body(source, reader)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def silent_trial(two_streams: bool, n: int) -> dict[str, float]:
    async with NaadSimulator(ports=[0, 0], heartbeat_interval=HEARTBEAT, live=False) as sim:
        urls = sim.stream_urls() if two_streams else sim.stream_urls()[:1]

        async def body(source: NaadSource, reader: Reader) -> dict[str, float]:
            await asyncio.sleep(HEARTBEAT * 1.2)  # steady state: heartbeats flowing
            first_connections = sim.total_connections(0)
            marks: dict[str, float] = {}

            async def watch() -> None:
                while "back" not in marks:
                    healthy = source.health()[0].healthy
                    if not healthy and "dropped" not in marks:
                        marks["dropped"] = time.monotonic()
                    elif (
                        healthy
                        and "dropped" in marks
                        and sim.total_connections(0) > first_connections
                    ):
                        marks["back"] = time.monotonic()
                    await asyncio.sleep(0.002)

            t0 = time.monotonic()
            last_data = source._streams[0].last_document_mono
            watcher = asyncio.create_task(watch())
            sim.stall(0)
            ident = f"silent-{two_streams}-{n}"
            await sim.publish(alert(ident))
            delivered = await reader.first(lambda i: ident.encode() in i.raw)
            async with asyncio.timeout(30):
                await watcher
            return {
                "delivered": delivered - t0,
                "dropped": marks["dropped"] - t0,
                "detected": marks["dropped"] - last_data,
                "back": marks["back"] - t0,
            }

        result: dict[str, float] = await with_source(sim, urls, body)
        return result


async def backfill_trial(n: int) -> tuple[float, float]:
    async with NaadSimulator(ports=[0], heartbeat_interval=None, live=False) as sim:

        async def body(_source: NaadSource, reader: Reader) -> tuple[float, float]:
            shown = f"shown-{n}"
            t0 = time.monotonic()
            await sim.publish(alert(shown))
            stream_at = await reader.first(lambda i: shown.encode() in i.raw)
            hidden = f"hidden-{n}"
            await sim.publish(alert(hidden), withhold=True)
            t1 = time.monotonic()
            sim.send_heartbeat()
            archive_at = await reader.first(lambda i: i.channel == "archive")
            return stream_at - t0, archive_at - t1

        result: tuple[float, float] = await with_source(sim, sim.stream_urls(), body)
        return result


def row(name: str, values: list[float], unit: str = "s") -> str:
    scale = 1000.0 if unit == "ms" else 1.0
    med, lo, hi = (statistics.median(values) * scale, min(values) * scale, max(values) * scale)
    return f"| {name:<62} | {med:>9.3f} | {lo:>9.3f} | {hi:>9.3f} | {unit:<2} |"


def naive_split(chunks: list[bytes]) -> list[bytes]:
    """The reference clients' way: grow a buffer, search it for ``</alert>`` from the start."""
    out: list[bytes] = []
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while (end := buffer.find(b"</alert>")) >= 0:
            out.append(buffer[: end + 8])
            buffer = buffer[end + 8 :]
    return out


def splitter_throughput() -> None:
    big = alert("big").replace(b"<event>", b"<event>" + b"A" * (5 * 1024 * 1024))
    stream = alert("a") + big + alert("b")
    print(f"\nsplitting a {len(stream) / 1e6:.1f} MB stream (one 5 MB alert), MB/s, median of 3")
    print(f"| {'read size':>9} | {'CapStreamSplitter':>17} | {'naive find':>10} | ratio |")
    print(f"|{'-' * 11}|{'-' * 19}|{'-' * 12}|-------|")
    for size in (65536, 4096, 1024):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]

        def ours(chunks: list[bytes] = chunks) -> int:
            splitter = CapStreamSplitter()
            return sum(isinstance(e, Document) for c in chunks for e in splitter.feed(c))

        def naive(chunks: list[bytes] = chunks) -> int:
            return len(naive_split(chunks))

        rates = []
        for fn in (ours, naive):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                assert fn() == 3
                times.append(time.perf_counter() - started)
            rates.append(len(stream) / 1e6 / statistics.median(times))
        print(
            f"| {size:>9} | {rates[0]:>17.0f} | {rates[1]:>10.0f} | {rates[0] / rates[1]:>5.1f} |"
        )


async def run() -> None:
    two = [await silent_trial(True, n) for n in range(TRIALS)]
    one = [await silent_trial(False, n) for n in range(TRIALS)]
    backfill = [await backfill_trial(n) for n in range(LATENCY_TRIALS)]
    print(
        f"liveness timeout {LIVENESS} s, heartbeat {HEARTBEAT} s, {TRIALS} trials "
        f"({LATENCY_TRIALS} for latencies); loopback, real clock"
    )
    print(f"| {'measure':<62} | {'median':>9} | {'min':>9} | {'max':>9} | u  |")
    print(f"|{'-' * 64}|{'-' * 11}|{'-' * 11}|{'-' * 11}|----|")
    print(row("last data on a stream -> dropped by the watchdog", [t["detected"] for t in two]))
    print(row("stream stalled -> dropped by the watchdog", [t["dropped"] for t in two]))
    print(row("stream stalled -> reconnected and healthy", [t["back"] for t in two]))
    print(
        row(
            "alert sent during silence, 2 streams (this adapter)",
            [t["delivered"] for t in two],
            "ms",
        )
    )
    print(
        row(
            "alert sent during silence, 1 stream (baseline: hb + archive)",
            [t["delivered"] for t in one],
        )
    )
    print(
        row("heartbeat -> withheld alert yielded from the archive", [b for _, b in backfill], "ms")
    )
    print(row("publish -> yield on the stream (baseline)", [s for s, _ in backfill], "ms"))
    two_med = statistics.median(t["delivered"] for t in two)
    one_med = statistics.median(t["delivered"] for t in one)
    backfill_med = statistics.median(b for _, b in backfill)
    stream_med = statistics.median(s for s, _ in backfill)
    print(
        f"alert during a silent stream: 1-stream/2-stream = {one_med / two_med:.0f}x slower; "
        f"heartbeat backfill / stream path = {backfill_med / stream_med:.1f}x; "
        f"at NAAD scale (x{75 / LIVENESS:g}) a silent stream is dropped "
        f"{75:g} s after its last data"
    )


def main() -> None:
    asyncio.run(run())
    splitter_throughput()


if __name__ == "__main__":
    main()
