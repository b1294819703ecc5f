"""A simulated RF channel with radios, TNCs, paging terminals, pagers and handhelds on it.

Every device is the *device side* of the codec the gateway uses (KISS, TAP, the text-modem
dialect), reachable by the gateway over a TCP port (``socket://127.0.0.1:PORT``) or a pty
that is always drained (a pty nobody reads would otherwise fill up and block the device).
What one station transmits, every other station on the channel receives after the air time
its line rate implies (one transmitter at a time: the channel is a shared medium), with
seeded loss and corruption when asked. A receiving radio checks the frame check sequence as a
real one does: a corrupted frame is dropped and counted. A station in ``loopback`` hears only
itself, as a radio or TNC with a loopback plug does.

Station kinds:

- ``tnc``: a KISS TNC (drops frames with bad KISS framing; honours TXDELAY; leaves KISS mode
  on ``C0 FF C0``);
- ``radio``: a data radio speaking :class:`adapters.textmodem.codec.Dialect` (``OK`` /
  ``ERROR: reason``, ``+RXT: sender,talkgroup,text`` for what it hears on its talkgroups);
- ``console``: a handheld with a person at it: lines typed on its port are sent on its
  talkgroup, what it hears is shown as ``[TG] SENDER: text``;
- ``tap``: a paging terminal speaking TAP (NAKs bad checksums, RS for a page over its limit),
  which transmits accepted pages on the channel;
- ``pager``: a pager that keeps the pages sent to its IDs;
- ``raw``: a line loopback (a loopback plug on a serial line).

:func:`simulator` is the ``rf-channel`` entry of the daemon's ``[[simulator]]`` registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from adapters.kiss import kiss
from adapters.pager import tap
from adapters.textmodem.codec import Dialect, LineDecoder
from hardware.faults import FaultPlan

log = structlog.get_logger(__name__)

_BACKGROUND: set[asyncio.Task[None]] = set()


def air_seconds(
    payload_bytes: int, line_rate: int, *, overhead: int = 4, txdelay: float = 0.0
) -> float:
    """Air time of a frame: payload plus link overhead (flags, FCS) with ~1/32 bit stuffing."""
    return (payload_bytes + overhead) * 8 * (1 + 1 / 32) / line_rate + txdelay


@dataclass(frozen=True, slots=True)
class Transmission:
    kind: str  # "ax25", "text", "page", "raw"
    channel: str  # talkgroup, pager ID; "" for a single-frequency APRS channel
    payload: bytes
    sender: str
    fcs: int  # CRC-32 of the payload as sent: the receiver's frame check


@dataclass
class ChannelStats:
    transmitted: int = 0
    delivered: int = 0
    dropped: int = 0
    corrupted: int = 0
    air_seconds: float = 0.0


class RFChannel:
    """One shared frequency (or trunked system) with any number of stations."""

    def __init__(
        self,
        name: str = "rf",
        *,
        line_rate: int = 1200,
        loss: float = 0.0,
        corruption: float = 0.0,
        seed: int = 0,
        drop_indices: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.line_rate = line_rate
        self.plan = FaultPlan(
            loss=loss, corruption=corruption, seed=seed, drop_indices=frozenset(drop_indices)
        )
        self.stations: list[Station] = []
        self.stats = ChannelStats()
        self.log: list[Transmission] = []
        self._air = asyncio.Lock()

    def attach(self, station: Station) -> None:
        self.stations.append(station)
        station.channel = self

    async def transmit(self, sender: Station, tx: Transmission, *, txdelay: float = 0.0) -> None:
        """Occupy the channel for the air time, then deliver to every receiver."""
        seconds = sender.air_bits(len(tx.payload)) / self.line_rate + txdelay
        async with self._air:
            await asyncio.sleep(seconds)
        self.stats.transmitted += 1
        self.stats.air_seconds += seconds
        self.log.append(tx)
        receivers = (
            [sender]
            if sender.loopback
            else [s for s in self.stations if s is not sender and not s.loopback]
        )
        for station in receivers:
            payload = self.plan.apply(tx.payload)
            if payload is None:
                self.stats.dropped += 1
                continue
            if payload != tx.payload:
                self.stats.corrupted += 1
            self.stats.delivered += 1
            station.hear(Transmission(tx.kind, tx.channel, payload, tx.sender, tx.fcs))


# -- host side links: TCP first, or a drained pty ----------------------------------------------
class HostLink(ABC):
    """Where the gateway plugs in; one host at a time, like a serial port."""

    url: str = ""

    @abstractmethod
    async def start(self, station: Station) -> None:
        """Start accepting the host for this station."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send bytes to the connected host (dropped when none is connected)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop accepting and disconnect the host."""


class TcpHost(HostLink):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, station: Station) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            if self._writer is not None:
                self._writer.close()  # a new host replaces the old one
            self._writer = writer
            station.host_connected()
            try:
                while data := await reader.read(4096):
                    await station.from_host(data)
                    station.notify()
            except (OSError, ConnectionError):
                pass
            finally:
                if self._writer is writer:
                    self._writer = None
                writer.close()
                self._tasks.discard(task)

        self._server = await asyncio.start_server(serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"socket://{self.host}:{self.port}"

    def write(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._writer is not None:
            self._writer.close()
        # Closing the connection ends its serving task; cancel only what does not end.
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=1.0)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            await self._server.wait_closed()


class PtyHost(HostLink):
    """A pty whose slave path the gateway opens; output nobody reads is dropped, not queued."""

    def __init__(self) -> None:
        self._master = -1
        self._slave = -1
        self.overflowed = 0

    async def start(self, station: Station) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.url = os.ttyname(self._slave)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(self._master, 4096)
            except (BlockingIOError, OSError):
                return
            if data:
                queue.put_nowait(data)

        async def pump() -> None:
            while True:
                await station.from_host(await queue.get())
                station.notify()

        loop.add_reader(self._master, readable)
        self._pump = asyncio.create_task(pump())

    def write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except (BlockingIOError, OSError):
            self.overflowed += len(data)  # drained: nobody is reading the pty

    async def close(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            os.close(self._master)
            os.close(self._slave)
            self._master = -1


# -- stations ----------------------------------------------------------------------------------
class Station(ABC):
    """A device on the channel; subclasses implement the host protocol."""

    kind = "station"

    def __init__(self, name: str, *, host: HostLink | None = None, loopback: bool = False) -> None:
        self.name = name
        self.host = host
        self.loopback = loopback
        self.channel: RFChannel | None = None
        self.received: list[Transmission] = []
        self.fcs_dropped = 0
        self._queue: asyncio.Queue[tuple[Transmission, float, asyncio.Future[None] | None]] = (
            asyncio.Queue()
        )
        self._worker: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.transmitted = 0

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait (bounded) until ``predicate()`` holds; re-checked whenever the station hears
        or transmits something or its host sends something."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    def notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    @property
    def url(self) -> str:
        return self.host.url if self.host is not None else ""

    def air_bits(self, payload_bytes: int) -> float:
        """Bits on air for a payload: HDLC-style flags and FCS, ~1/32 bit stuffing."""
        return (payload_bytes + 4) * 8 * (1 + 1 / 32)

    async def start(self) -> None:
        if self.host is not None:
            await self.host.start(self)
        self._worker = asyncio.create_task(self._transmitter(), name=f"station-{self.name}")

    async def stop(self) -> None:
        if self.host is not None:
            await self.host.close()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def to_host(self, data: bytes) -> None:
        if self.host is not None:
            self.host.write(data)

    def host_connected(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """A new host connection (a terminal restarts its dialogue)."""

    @abstractmethod
    async def from_host(self, data: bytes) -> None:
        """Bytes the host wrote to this device."""

    def send_on_air(
        self,
        kind: str,
        channel: str,
        payload: bytes,
        *,
        txdelay: float = 0.0,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        tx = Transmission(kind, channel, payload, self.name, zlib.crc32(payload))
        self._queue.put_nowait((tx, txdelay, done))

    async def send_and_wait(self, kind: str, channel: str, payload: bytes) -> None:
        """Queue a transmission and return when it has been on air."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send_on_air(kind, channel, payload, done=done)
        await done

    async def _transmitter(self) -> None:
        while True:
            tx, txdelay, done = await self._queue.get()
            assert self.channel is not None
            try:
                await self.channel.transmit(self, tx, txdelay=txdelay)
            finally:
                if done is not None and not done.done():
                    done.set_result(None)
                self.transmitted += 1
                self._queue.task_done()
                self.notify()

    async def idle(self) -> None:
        """Wait until everything queued for transmission is on air."""
        await self._queue.join()

    def hear(self, tx: Transmission) -> None:
        if zlib.crc32(tx.payload) != tx.fcs:
            self.fcs_dropped += 1
            return
        if self.accepts(tx):
            self.received.append(tx)
            self.on_receive(tx)
            self.notify()

    def accepts(self, tx: Transmission) -> bool:
        return False

    def on_receive(self, tx: Transmission) -> None:  # noqa: B027 - optional hook
        """Deliver a heard transmission to the host."""


class TncStation(Station):
    """A KISS TNC: KISS from the host, AX.25 frames on the air."""

    kind = "tnc"

    def __init__(self, name: str, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.decoder = kiss.KissDecoder()
        self.txdelay = 0.0
        self.parameters: dict[str, int] = {}
        self.kiss_mode = True
        self.bad_frames = 0
        self.frames_from_host = 0

    def host_connected(self) -> None:
        self.kiss_mode = True
        self.decoder = kiss.KissDecoder()

    async def from_host(self, data: bytes) -> None:
        if not self.kiss_mode:
            return
        for frame in self.decoder.feed(data):
            if frame.command is kiss.Command.RETURN:
                self.kiss_mode = False
                return
            if frame.command is kiss.Command.DATA:
                self.frames_from_host += 1
                self.send_on_air("ax25", "", frame.data, txdelay=self.txdelay)
            else:
                self.parameters[frame.command.name] = frame.data[0] if frame.data else 0
                if frame.command is kiss.Command.TXDELAY:
                    self.txdelay = frame.data[0] / 100
        self.bad_frames += len(self.decoder.take_errors())  # a TNC drops bad KISS frames

    def accepts(self, tx: Transmission) -> bool:
        return tx.kind == "ax25"

    def on_receive(self, tx: Transmission) -> None:
        self.to_host(kiss.data_frame(tx.payload).to_bytes())


class RadioStation(Station):
    """A data radio speaking the text-modem dialect; ``unit`` is its ID on the air."""

    kind = "radio"

    def __init__(
        self,
        name: str,
        *,
        unit: str = "",
        talkgroups: Sequence[str] = (),
        dialect: Dialect | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, **kw)
        self.unit = unit or name
        self.talkgroups = tuple(talkgroups)
        self.dialect = dialect or Dialect()
        self.lines = LineDecoder()

    async def from_host(self, data: bytes) -> None:
        end = self.dialect.line_end.encode()
        for line in self.lines.feed(data):
            if line.strip().upper() in {"AT", "ATE0", "ATE1"}:
                self.to_host(b"OK" + end)
                continue
            parsed = self.dialect.parse_tx(line)
            if parsed is None:
                self.to_host(b"ERROR: unknown command" + end)
                continue
            dest, text = parsed
            if len(text) > self.dialect.max_text:
                self.to_host(b"ERROR: text too long" + end)
                continue
            # OK once the message is on air: the host paces itself by the radio's air time.
            await self.send_and_wait("text", dest, text.encode("ascii", "replace"))
            self.to_host(b"OK" + end)
        for _ in self.lines.take_errors():
            self.to_host(b"ERROR: line too long" + end)

    def type_text(self, text: str, talkgroup: str | None = None) -> None:
        """What a person keying a message on this radio does."""
        dest = talkgroup or (self.talkgroups[0] if self.talkgroups else "")
        self.send_on_air("text", dest, text.encode("ascii", "replace"))

    def accepts(self, tx: Transmission) -> bool:
        return tx.kind == "text" and (
            self.loopback or tx.channel in self.talkgroups or tx.channel == self.unit
        )

    def on_receive(self, tx: Transmission) -> None:
        sender = tx.sender
        if self.channel is not None:
            sender = next(
                (
                    s.unit
                    for s in self.channel.stations
                    if s.name == tx.sender and isinstance(s, RadioStation)
                ),
                tx.sender,
            )
        self.to_host(
            self.dialect.format_rx(sender, tx.channel, tx.payload.decode("ascii", "replace"))
        )


class ConsoleStation(RadioStation):
    """A handheld with a person: typed lines go out on its talkgroup; heard text is shown."""

    kind = "console"

    async def from_host(self, data: bytes) -> None:
        for line in self.lines.feed(data):
            if line.strip():
                self.type_text(line.strip())

    def on_receive(self, tx: Transmission) -> None:
        self.to_host(
            f"[{tx.channel}] {tx.sender}: {tx.payload.decode('ascii', 'replace')}\r\n".encode()
        )


class TapTerminalStation(Station):
    """A paging terminal: the TAP terminal side; accepted pages go out on the channel.

    Line faults of the serial link (loss, corruption) are simulated per block with
    ``line_plan``: a lost block gets no reply, a damaged one fails its checksum (NAK).
    """

    kind = "tap"

    def __init__(
        self,
        name: str,
        *,
        password: str = "",
        max_length: int = 80,
        line_plan: FaultPlan | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, **kw)
        self.password = password
        self.max_length = max_length
        self.line_plan = line_plan or FaultPlan()
        self.decoder = tap.RequestDecoder()
        self.logged_in = False
        self.blocks: list[tap.Block] = []
        self.pages: list[tuple[str, str]] = []
        self.naks = 0
        self.refused = 0

    def host_connected(self) -> None:
        self.decoder = tap.RequestDecoder()
        self.logged_in = False
        self.blocks = []

    async def from_host(self, data: bytes) -> None:
        for request in self.decoder.feed(data):
            if request.block is not None and self.channel is not None:
                # The serial line to the terminal (8N1) carries the block at its line rate.
                await asyncio.sleep(len(request.block.to_bytes()) * 10 / self.channel.line_rate)
            self._handle(request)

    def _reply(self, *codes: bytes) -> None:
        self.to_host(b"".join(codes))

    def _handle(self, request: tap.Request) -> None:
        if request.kind == "wake" and not self.logged_in:
            self._reply(b"ID=")
        elif request.kind == "login":
            if request.password != self.password:
                self._reply(b"\x1b\x04\r")
                return
            self.logged_in = True
            self._reply(b"110 1.8\r", b"\x06\r", b"\x1b[p\r")
        elif request.kind == "logout":
            self._reply(b"115 Goodbye\r", b"\x1b\x04\r")
            self.logged_in = False
        elif request.kind == "bad_block":
            self.naks += 1
            self._reply(b"\x15\r")
        elif request.kind == "block" and request.block is not None:
            if not self.logged_in:
                self._reply(b"\x15\r")
                return
            fate = self.line_plan.apply(request.block.to_bytes())
            if fate is None:
                return  # lost on the line: no reply
            if fate != request.block.to_bytes():
                self.naks += 1
                self._reply(b"\x15\r")
                return
            self.blocks.append(request.block)
            if request.block.terminator != tap.ETX:
                self._reply(b"\x06\r")
                return
            blocks, self.blocks = self.blocks, []
            try:
                fields = tap.decode_fields(blocks)
            except (tap.TapError, UnicodeDecodeError):
                self._reply(b"\x1e\r")
                return
            if len(fields) < 2 or len(fields[1]) > self.max_length:
                self.refused += 1
                self._reply(b"213 Message too long\r", b"\x1e\r")
                return
            pager_id, text = fields[0], fields[1]
            self.pages.append((pager_id, text))
            self._reply(b"211 Page accepted\r", b"\x06\r")
            self.send_on_air("page", pager_id, text.encode("ascii"))


class PagerStation(Station):
    """A pager: keeps the pages sent to its IDs (and shows them on its port, if any)."""

    kind = "pager"

    def __init__(self, name: str, *, pager_ids: Sequence[str] = (), **kw: Any) -> None:
        super().__init__(name, **kw)
        self.pager_ids = tuple(pager_ids)

    async def from_host(self, data: bytes) -> None:
        return

    def accepts(self, tx: Transmission) -> bool:
        return tx.kind == "page" and tx.channel in self.pager_ids

    def on_receive(self, tx: Transmission) -> None:
        self.to_host(f"PAGE {tx.channel}: {tx.payload.decode('ascii', 'replace')}\r\n".encode())


class RawLoopbackStation(Station):
    """A loopback plug on a line: every line comes back, through the channel's faults."""

    kind = "raw"

    def __init__(self, name: str, **kw: Any) -> None:
        kw["loopback"] = True
        super().__init__(name, **kw)
        self._partial = bytearray()

    def air_bits(self, payload_bytes: int) -> float:
        """A serial line, 8N1: ten bits per byte, the line end included."""
        return (payload_bytes + 1) * 10

    async def from_host(self, data: bytes) -> None:
        self._partial += data
        while (idx := self._partial.find(b"\n")) != -1:
            line = bytes(self._partial[:idx])
            del self._partial[: idx + 1]
            self.send_on_air("raw", "", line)

    def hear(self, tx: Transmission) -> None:
        # A plug has no frame check: damaged lines come back damaged.
        self.received.append(tx)
        self.to_host(tx.payload + b"\n")
        self.notify()


KINDS: dict[str, type[Station]] = {
    cls.kind: cls
    for cls in (
        TncStation,
        RadioStation,
        ConsoleStation,
        TapTerminalStation,
        PagerStation,
        RawLoopbackStation,
    )
}


# -- the simulator as a whole -----------------------------------------------------------------
@dataclass
class RFSimulation:
    """Channels and stations of a running simulation; ``stations[name].url`` is the port."""

    channels: dict[str, RFChannel] = field(default_factory=dict)
    stations: dict[str, Station] = field(default_factory=dict)

    def url(self, station: str) -> str:
        return self.stations[station].url


def build_station(spec: Mapping[str, Any]) -> Station:
    """A station from a table: name, kind, tcp ("host:port", "" for none) or pty = true, ..."""
    name = str(spec["name"])
    kind = str(spec.get("kind", "radio"))
    if kind not in KINDS:
        raise ValueError(f"station {name!r}: kind {kind!r} unknown; allowed: {sorted(KINDS)}")
    host: HostLink | None = None
    if spec.get("pty"):
        host = PtyHost()
    elif "tcp" in spec:
        hostname, _, port = str(spec["tcp"]).rpartition(":")
        host = TcpHost(hostname or "127.0.0.1", int(port or 0))
    kw: dict[str, Any] = {"host": host, "loopback": bool(spec.get("loopback", False))}
    if kind in {"radio", "console"}:
        kw["unit"] = str(spec.get("unit", ""))
        kw["talkgroups"] = tuple(spec.get("talkgroups", ()))
        if "dialect" in spec:
            kw["dialect"] = Dialect.from_mapping(spec["dialect"])
    elif kind == "tap":
        kw["password"] = str(spec.get("password", ""))
        kw["max_length"] = int(spec.get("max_length", 80))
        kw["line_plan"] = FaultPlan(
            loss=float(spec.get("loss", 0.0)),
            corruption=float(spec.get("corruption", 0.0)),
            seed=int(spec.get("seed", 0)),
        )
    elif kind == "pager":
        kw["pager_ids"] = tuple(str(p) for p in spec.get("pager_ids", ()))
    if kind == "raw":
        kw.pop("loopback")
    return KINDS[kind](name, **kw)


@contextlib.asynccontextmanager
async def simulation(options: Mapping[str, Any]) -> AsyncIterator[RFSimulation]:
    """Run channels and stations described by ``options`` while the context is open::

    {"channels": [{"name": "ca", "line_rate": 9600, "loss": 0.0, "corruption": 0.0,
                   "seed": 1}],
     "stations": [{"name": "ca-gw", "kind": "radio", "channel": "ca",
                   "tcp": "127.0.0.1:7301", "unit": "9001", "talkgroups": ["CA-EAST"]}]}
    """
    sim = RFSimulation()
    for spec in options.get("channels", [{"name": "rf"}]):
        ch = RFChannel(
            str(spec.get("name", "rf")),
            line_rate=int(spec.get("line_rate", 1200)),
            loss=float(spec.get("loss", 0.0)),
            corruption=float(spec.get("corruption", 0.0)),
            seed=int(spec.get("seed", 0)),
            drop_indices=tuple(int(i) for i in spec.get("drop_indices", ())),
        )
        sim.channels[ch.name] = ch
    default_channel = next(iter(sim.channels))
    try:
        for spec in options.get("stations", []):
            station = build_station(spec)
            channel_name = str(spec.get("channel", default_channel))
            if channel_name not in sim.channels:
                raise ValueError(f"station {station.name!r}: no channel {channel_name!r}")
            sim.channels[channel_name].attach(station)
            sim.stations[station.name] = station
            await station.start()
            log.info(
                "sim_station_started",
                station=station.name,
                kind=station.kind,
                channel=channel_name,
                url=station.url,
            )
        yield sim
    finally:
        for station in sim.stations.values():
            await station.stop()


def simulator(options: Mapping[str, Any]) -> contextlib.AbstractAsyncContextManager[object]:
    """The ``rf-channel`` entry of ``gateway.simulators``."""
    return simulation(options)
