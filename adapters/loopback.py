"""``borderlink loopback PORT --protocol kiss|tap|modem|raw``: test a radio link end to end.

Sends numbered test frames through a physical loopback plug, a radio or TNC in loopback, or a
simulator, and reports what came back: sent, received, lost, corrupted, out of order,
duplicates, latency p50/p99 and the throughput measured against the line's theoretical rate
(``--rate``, bits per second). A progress bar is drawn on a terminal; ``--json`` prints one
object for scripts (the report's fields, as in ``borderlink help radio``). The thresholds:
``--max-loss`` and ``--max-corrupt`` always (both 0 by default: none accepted),
``--max-p99-ms`` and ``--min-throughput`` when given.

Frames carry ``SEQ CRC32 PAYLOAD``: a KISS data frame holding an AX.25 UI frame (kiss), an
``AT+TXT=LOOP,...`` command whose ``+RXT:`` echo comes back (modem, in the default text-modem
dialect), a line (raw), or a TAP page to ``--pager-id`` that counts as received when the
terminal acknowledges it (tap).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

from gateway.commands import Subparsers, add_command, described
from gateway.errors import AdapterConnectionError, ConfigError, FrameError

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "send numbered test frames through a looped-back radio link and measure it"


PROTOCOLS = ("kiss", "tap", "modem", "raw")
DEFAULT_RATES = {"kiss": 1200, "tap": 9600, "modem": 9600, "raw": 9600}
EXIT_CODES = {
    0: "the link meets every threshold",
    1: "it does not (the report says which threshold failed)",
    2: "the port cannot be opened, or a bad argument",
}


@dataclass
class LoopbackReport:
    protocol: str
    port: str
    sent: int = 0
    received: int = 0
    lost: int = 0
    corrupted: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    elapsed_s: float = 0.0
    line_rate_bps: int = 0
    throughput_bps: float = 0.0
    throughput_ratio: float = 0.0
    passed: bool = False
    failures: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def frame_text(seq: int, size: int) -> str:
    """``SEQ CRC PAYLOAD``: digits and lower-case hex only (no byte a single bit flip turns
    into a line end)."""
    payload = (f"{seq:06d}" * (size // 6 + 1))[: max(0, size)]
    crc = zlib.crc32(f"{seq:06d}{payload}".encode())
    return f"{seq:06d} {crc:08x} {payload}"


def parse_frame(text: str) -> tuple[int | None, bool]:
    """(seq or None, intact); the CRC is compared as text, so a case flip is damage too."""
    parts = text.strip().split(" ")
    if len(parts) != 3 or not parts[0].isdigit():
        return None, False
    seq = int(parts[0])
    crc = zlib.crc32(f"{parts[0]}{parts[2]}".encode("utf-8", "replace"))
    return seq, parts[1] == f"{crc:08x}"


class Framing(ABC):
    """How one protocol wraps test frames and finds them in what comes back."""

    @abstractmethod
    def encode(self, text: str) -> bytes:
        """One test frame as it goes on the wire."""

    @abstractmethod
    def feed(self, data: bytes) -> list[str | None]:
        """Echoed frame texts (None for a frame that came back but cannot be read)."""

    @abstractmethod
    def line_bits(self, wire: bytes) -> float:
        """Bits the line carries for these wire bytes (start/stop bits included)."""


class KissFraming(Framing):
    def __init__(self) -> None:
        from adapters.kiss import ax25, kiss  # noqa: PLC0415 - keeps `loopback --help` light

        self._ax25 = ax25
        self._kiss = kiss
        self._decoder = kiss.KissDecoder()
        self._dest = ax25.Address("APZBDL")
        self._src = ax25.Address("LOOPBK")

    def _frame(self, text: str) -> bytes:
        return self._ax25.Frame(self._dest, self._src, (), text.encode("ascii")).to_bytes()

    def encode(self, text: str) -> bytes:
        return self._kiss.data_frame(self._frame(text)).to_bytes()

    def feed(self, data: bytes) -> list[str | None]:
        out: list[str | None] = []
        for frame in self._decoder.feed(data):
            if frame.command is not self._kiss.Command.DATA:
                continue
            try:
                out.append(self._ax25.Frame.from_bytes(frame.data).info.decode("ascii"))
            except (FrameError, UnicodeDecodeError):
                out.append(None)
        out.extend(None for _ in self._decoder.take_errors())
        return out

    def line_bits(self, wire: bytes) -> float:
        # The AX.25 frame on air: the frame, two flags and the FCS, eight bits a byte.
        return (len(wire) - 3 + 4) * 8


class LineFraming(Framing):
    """raw (a line per frame) and modem (the default text-modem dialect)."""

    def __init__(self, modem: bool) -> None:
        from adapters.textmodem.codec import Dialect, LineDecoder  # noqa: PLC0415

        self._modem = modem
        self._dialect = Dialect()
        self._lines = LineDecoder()

    def encode(self, text: str) -> bytes:
        if self._modem:
            return self._dialect.format_tx("LOOP", text)
        return text.encode("ascii") + b"\n"

    def feed(self, data: bytes) -> list[str | None]:
        out: list[str | None] = []
        for line in self._lines.feed(data):
            if not self._modem:
                out.append(line)
                continue
            event = self._dialect.classify(line)
            if event.kind == "rx":
                out.append(event.text)
            elif event.kind == "other":
                out.append(None)
        return out

    def line_bits(self, wire: bytes) -> float:
        if self._modem:
            text_len = len(wire) - len(b"AT+TXT=LOOP,\r\n")
            return (text_len + 4) * 8  # the text on air with frame overhead
        return len(wire) * 10  # 8N1


async def _open(port: str, rate: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    from adapters.ports import open_port  # noqa: PLC0415 - keeps `loopback --help` light

    return await open_port(port, baudrate=rate)


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled

    def update(self, done: int, report: LoopbackReport) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(1, self.total))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"received {report.received} lost {report.lost} corrupted {report.corrupted}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


async def run_windowed(
    port: str,
    framing: Framing,
    *,
    protocol: str,
    count: int,
    size: int,
    rate: int,
    window: int,
    frame_timeout: float,
    progress: Progress,
) -> LoopbackReport:
    report = LoopbackReport(protocol, port, line_rate_bps=rate)
    reader, writer = await _open(port, rate)
    inflight: dict[int, tuple[float, float]] = {}  # seq -> (sent at, line bits)
    done: set[int] = set()
    latencies: list[float] = []
    highest = -1
    bits = 0.0
    slot = asyncio.Condition()
    start = time.monotonic()

    last_echo = 0.0

    async def receive() -> None:
        nonlocal highest, bits, last_echo
        while data := await reader.read(4096):
            for text in framing.feed(data):
                now = time.monotonic()
                last_echo = now
                seq, intact = (None, False) if text is None else parse_frame(text)
                if not intact:
                    report.corrupted += 1
                    if seq is not None and seq in inflight:
                        inflight.pop(seq)
                        done.add(seq)
                elif seq in done or seq not in inflight:
                    report.duplicates += 1
                else:
                    sent_at, frame_bits = inflight.pop(seq)
                    done.add(seq)
                    report.received += 1
                    latencies.append((now - sent_at) * 1000)
                    bits += frame_bits
                    if seq < highest:
                        report.out_of_order += 1
                    highest = max(highest, seq)
                async with slot:
                    slot.notify_all()
            progress.update(report.received + report.corrupted, report)

    def expire() -> None:
        now = time.monotonic()
        for seq, (sent_at, _) in list(inflight.items()):
            if now - sent_at > frame_timeout:
                inflight.pop(seq)
                done.add(seq)

    receiver = asyncio.create_task(receive())
    try:
        for seq in range(count):
            async with slot:
                while len(inflight) >= window:
                    expire()
                    if len(inflight) < window:
                        break
                    oldest = min(t for t, _ in inflight.values())
                    wait = max(0.001, oldest + frame_timeout - time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(slot.wait(), wait)
            wire = framing.encode(frame_text(seq, size))
            inflight[seq] = (time.monotonic(), framing.line_bits(wire))
            writer.write(wire)
            await writer.drain()
            report.sent += 1
        async with slot:
            while inflight:
                expire()
                if not inflight:
                    break
                oldest = min(t for t, _ in inflight.values())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        slot.wait(), max(0.001, oldest + frame_timeout - time.monotonic())
                    )
        # Elapsed until the last echo arrived (the final timeout wait is not link time).
        report.elapsed_s = (last_echo or time.monotonic()) - start
    finally:
        receiver.cancel()
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ConnectionError):
            await asyncio.wait_for(writer.wait_closed(), 2)
        progress.close()
    _finish(report, latencies, bits)
    return report


async def run_tap(
    port: str,
    *,
    count: int,
    size: int,
    rate: int,
    frame_timeout: float,
    pager_id: str,
    password: str,
    progress: Progress,
) -> LoopbackReport:
    from adapters.pager import tap  # noqa: PLC0415

    report = LoopbackReport("tap", port, line_rate_bps=rate)
    reader, writer = await _open(port, rate)
    decoder = tap.ReplyDecoder()
    pending: list[tap.Reply] = []

    async def reply(kinds: set[str], within: float) -> tap.Reply | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            while pending:
                r = pending.pop(0)
                if r.kind in kinds:
                    return r
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                data = await asyncio.wait_for(reader.read(1024), left)
            except TimeoutError:
                return None
            if not data:
                raise AdapterConnectionError("terminal closed the connection")
            pending.extend(decoder.feed(data))

    latencies: list[float] = []
    bits = 0.0
    start = time.monotonic()
    try:
        for _ in range(3):
            writer.write(b"\r")
            await writer.drain()
            if await reply({"id"}, 2.0):
                break
        else:
            raise AdapterConnectionError("no ID= prompt from the paging terminal")
        writer.write(tap.login(password))
        await writer.drain()
        answer = await reply({"ack", "nak", "disconnect"}, frame_timeout)
        if answer is None or answer.kind != "ack":
            raise AdapterConnectionError("the paging terminal refused the logon")
        await reply({"go_ahead"}, frame_timeout)
        start = time.monotonic()
        for seq in range(count):
            (block,) = tap.encode_page(pager_id, frame_text(seq, size))
            wire = block.to_bytes()
            sent_at = time.monotonic()
            writer.write(wire)
            await writer.drain()
            report.sent += 1
            answer = await reply({"ack", "nak", "rs", "disconnect"}, frame_timeout)
            if answer is None:
                pass  # lost: no reply
            elif answer.kind == "ack":
                report.received += 1
                latencies.append((time.monotonic() - sent_at) * 1000)
                bits += len(wire) * 10
            elif answer.kind == "disconnect":
                raise AdapterConnectionError("the paging terminal disconnected")
            else:
                report.corrupted += 1  # NAK (bad checksum) or RS (refused)
            progress.update(seq + 1, report)
        report.elapsed_s = time.monotonic() - start
        writer.write(tap.LOGOUT)
        await writer.drain()
        await reply({"disconnect"}, 1.0)
    finally:
        writer.close()
        progress.close()
    _finish(report, latencies, bits)
    return report


def _finish(report: LoopbackReport, latencies: list[float], bits: float) -> None:
    report.lost = max(0, report.sent - report.received - report.corrupted)
    report.elapsed_s = round(report.elapsed_s, 3)
    p50 = percentile(latencies, 50)
    p99 = percentile(latencies, 99)
    report.latency_p50_ms = None if p50 is None else round(p50, 2)
    report.latency_p99_ms = None if p99 is None else round(p99, 2)
    if report.elapsed_s > 0:
        report.throughput_bps = round(bits / report.elapsed_s, 1)
        report.throughput_ratio = round(report.throughput_bps / report.line_rate_bps, 3)


def judge(report: LoopbackReport, args: argparse.Namespace) -> None:
    sent = max(1, report.sent)
    failures = []
    if report.lost / sent > args.max_loss:
        failures.append(f"loss {report.lost}/{report.sent} above {args.max_loss:.2%}")
    if report.corrupted / sent > args.max_corrupt:
        failures.append(f"corruption {report.corrupted}/{report.sent} above {args.max_corrupt:.2%}")
    if args.max_p99_ms is not None and (
        report.latency_p99_ms is None or report.latency_p99_ms > args.max_p99_ms
    ):
        failures.append(f"p99 latency {report.latency_p99_ms} ms above {args.max_p99_ms} ms")
    if args.min_throughput is not None and report.throughput_ratio < args.min_throughput:
        failures.append(f"throughput ratio {report.throughput_ratio} below {args.min_throughput}")
    if report.received == 0:
        failures.append("nothing came back")
    report.failures = failures
    report.passed = not failures


# Largest --size a test frame can carry: AX.25 info field 256, text-modem max_text 160 (with
# the 16-character SEQ CRC header), TAP block 250 with the pager ID.
MAX_SIZE = {"kiss": 200, "modem": 140, "raw": 1000, "tap": 220}


async def measure(args: argparse.Namespace, *, progress: Progress) -> LoopbackReport:
    if not 1 <= args.size <= MAX_SIZE[args.protocol]:
        raise ConfigError(
            f"--size {args.size} out of range 1-{MAX_SIZE[args.protocol]} for {args.protocol}"
        )
    rate = args.rate or DEFAULT_RATES[args.protocol]
    if rate <= 0:
        raise ConfigError(f"--rate {rate} must be a positive bit rate")
    if args.protocol == "tap":
        report = await run_tap(
            args.port,
            count=args.count,
            size=args.size,
            rate=rate,
            frame_timeout=args.timeout or 5.0,
            pager_id=args.pager_id,
            password=args.password,
            progress=progress,
        )
    else:
        framing: Framing = (
            KissFraming() if args.protocol == "kiss" else LineFraming(args.protocol == "modem")
        )
        sample = framing.encode(frame_text(0, args.size))
        frame_seconds = framing.line_bits(sample) / rate
        timeout = args.timeout or max(2.0, 4 * args.window * frame_seconds + 1.0)
        report = await run_windowed(
            args.port,
            framing,
            protocol=args.protocol,
            count=args.count,
            size=args.size,
            rate=rate,
            window=args.window,
            frame_timeout=timeout,
            progress=progress,
        )
    judge(report, args)
    return report


def render(report: LoopbackReport) -> str:
    rows = [
        ("port", report.port),
        ("protocol", report.protocol),
        ("sent", report.sent),
        ("received", report.received),
        ("lost", report.lost),
        ("corrupted", report.corrupted),
        ("out of order", report.out_of_order),
        ("duplicates", report.duplicates),
        ("latency p50", f"{report.latency_p50_ms} ms"),
        ("latency p99", f"{report.latency_p99_ms} ms"),
        (
            "throughput",
            f"{report.throughput_bps} bit/s of {report.line_rate_bps} "
            f"({report.throughput_ratio:.1%})",
        ),
        ("result", "PASS" if report.passed else "FAIL: " + "; ".join(report.failures)),
    ]
    return "\n".join(f"{name:>13}  {value}" for name, value in rows)


def handler(args: argparse.Namespace) -> int:
    progress = Progress(args.count, sys.stderr.isatty() and not args.json)
    try:
        report = asyncio.run(measure(args, progress=progress))
    except (AdapterConnectionError, ConfigError) as exc:
        sys.stderr.write(f"borderlink loopback: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(asdict(report)) + "\n")
    else:
        sys.stdout.write(render(report) + "\n")
    return 0 if report.passed else 1


def _fraction(value: str) -> float:
    problem = f"{value!r} is not a fraction 0-1 (or 0%-100%)"
    try:
        f = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    if not 0 <= f <= 1:
        raise argparse.ArgumentTypeError(problem)
    return f


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "loopback",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument(
        "port", metavar="PORT", help="/dev/ttyUSB0, a pty path, or socket://host:port"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, default="kiss")
    parser.add_argument("--count", type=_positive, default=100, help="frames to send (100)")
    parser.add_argument("--size", type=int, default=32, help="payload characters a frame (32)")
    parser.add_argument(
        "--rate",
        type=int,
        default=0,
        help="line rate in bit/s (kiss 1200, others 9600); also the serial speed",
    )
    parser.add_argument("--window", type=_positive, default=4, help="frames in flight (4)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="seconds before a frame counts as lost (from the line rate)",
    )
    parser.add_argument("--pager-id", default="999", help="tap: the pager ID of test pages")
    parser.add_argument("--password", default="", help="tap: the terminal's PG1 password")
    parser.add_argument(
        "--max-loss",
        type=_fraction,
        default=0.0,
        help="highest acceptable loss (0 = none; 0.01 or 1%%)",
    )
    parser.add_argument(
        "--max-corrupt",
        type=_fraction,
        default=0.0,
        help="highest acceptable share of damaged frames (0 = none; 0.01 or 1%%)",
    )
    parser.add_argument("--max-p99-ms", type=float, default=None)
    parser.add_argument(
        "--min-throughput",
        type=float,
        default=None,
        help="lowest acceptable measured/theoretical throughput ratio",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=handler)


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n
