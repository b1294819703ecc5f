"""Opening a port given as a URL, and a transmit gate that lets alerts pre-empt chatter.

The floor every serial or TCP radio adapter stands on (KISS, TAP, text modem, ENDEC) and
``borderlink loopback``:

- ``socket://host:port`` or ``tcp://host:port`` — asyncio TCP streams (a TNC's KISS TCP
  port such as direwolf's, a terminal server, a simulator);
- anything else (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``, a pty path, ``rfc2217://``) —
  a serial port through pyserial-asyncio-fast at the configured line rate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlparse

import structlog

from gateway.errors import AdapterConnectionError, ConfigError, DeliveryError

log = structlog.get_logger(__name__)


def parse_tcp(url: str) -> tuple[str, int] | None:
    """``(host, port)`` for a ``socket://``/``tcp://`` URL, ``None`` for a serial device."""
    parsed = urlparse(url)
    if parsed.scheme not in {"socket", "tcp"}:
        return None
    if not parsed.hostname or parsed.port is None:
        raise ConfigError(f"port URL {url!r} needs a host and a port (socket://host:port)")
    return parsed.hostname, parsed.port


async def open_port(
    url: str, *, baudrate: int = 9600, open_timeout: float = 10.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``url`` as asyncio streams; failures become :class:`AdapterConnectionError`."""
    if not url:
        raise ConfigError("port URL is empty (e.g. /dev/ttyUSB0 or socket://127.0.0.1:8001)")
    tcp = parse_tcp(url)
    try:
        if tcp is not None:
            return await asyncio.wait_for(asyncio.open_connection(*tcp), open_timeout)
        import serial_asyncio_fast  # noqa: PLC0415 - only serial ports need pyserial

        reader, writer = await asyncio.wait_for(
            serial_asyncio_fast.open_serial_connection(url=url, baudrate=baudrate), open_timeout
        )
    except (OSError, TimeoutError) as exc:
        raise AdapterConnectionError(f"cannot open port {url}: {exc}") from exc
    except Exception as exc:
        # pyserial raises SerialException (an OSError subclass on POSIX) or ValueError.
        raise AdapterConnectionError(f"cannot open port {url}: {exc}") from exc
    return reader, writer


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ConnectionError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


class TxGate:
    """One transmitter, two classes of traffic: urgent (alerts) go before chatter.

    ``async with gate.hold(urgent=True)`` waits for the transmitter; while any urgent sender is
    waiting, chatter is not let in, so an alert never queues behind a backlog of relays.
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._busy = False
        self._urgent_waiting = 0

    @property
    def urgent_waiting(self) -> int:
        return self._urgent_waiting

    @contextlib.asynccontextmanager
    async def hold(self, *, urgent: bool) -> AsyncIterator[None]:
        async with self._cond:
            if urgent:
                self._urgent_waiting += 1
                try:
                    await self._cond.wait_for(lambda: not self._busy)
                finally:
                    self._urgent_waiting -= 1
            else:
                await self._cond.wait_for(lambda: not self._busy and not self._urgent_waiting)
            self._busy = True
        try:
            yield
        finally:
            async with self._cond:
                self._busy = False
                self._cond.notify_all()


class _Closed:
    """End-of-stream marker carrying the reason."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Fanout:
    """Inbound items for any number of consumers (the daemon's router, a talkgroup link).

    Each :meth:`subscribe` gets its own bounded queue; a consumer too slow to keep up loses
    its oldest items (counted in :attr:`dropped`), never the adapter's reader. Items published
    while nobody is subscribed wait (bounded) for the first subscriber.
    """

    def __init__(self, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._queues: list[asyncio.Queue[object]] = []
        self._backlog: collections.deque[object] = collections.deque(maxlen=maxsize)
        self._closed: _Closed | None = None
        self.dropped = 0

    def publish(self, item: object) -> None:
        if not self._queues:
            if len(self._backlog) == self._backlog.maxlen:
                self.dropped += 1
            self._backlog.append(item)
            return
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(item)

    def reopen(self) -> None:
        """Accept items again after :meth:`close` (the port was opened again); subscribers that
        were waiting before the port opened keep their subscription."""
        self._closed = None

    def close(self, error: BaseException | None = None) -> None:
        self._closed = _Closed(error)
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(self._closed)

    async def subscribe(self) -> AsyncIterator[object]:
        queue: asyncio.Queue[object] = asyncio.Queue(self._maxsize)
        while self._backlog:
            queue.put_nowait(self._backlog.popleft())
        if self._closed is not None:
            queue.put_nowait(self._closed)
        self._queues.append(queue)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Closed):
                    if item.error is not None:
                        raise AdapterConnectionError(str(item.error)) from item.error
                    return
                yield item
        finally:
            self._queues.remove(queue)


class StreamLink:
    """A port URL opened as streams, with a reader task: what a serial/TCP adapter runs on.

    Every chunk read is handed to ``on_data`` (which feeds the adapter's sans-IO decoder);
    when the port closes or fails, ``on_lost`` gets an :class:`AdapterConnectionError` and the
    reader ends. :meth:`write` serialises writers and turns transport failures into
    :class:`DeliveryError`. ``kind`` names the log events (``<kind>_bytes_received``, ...);
    raw bytes are logged only with ``log_wire``.
    """

    def __init__(
        self,
        adapter: str,
        url: str,
        *,
        kind: str,
        on_data: Callable[[bytes], Awaitable[None]],
        on_lost: Callable[[AdapterConnectionError], None],
        baudrate: int = 9600,
        log_wire: bool = False,
        peer: str = "device",
    ) -> None:
        self.adapter = adapter
        self.url = url
        self.kind = kind
        self.baudrate = baudrate
        self.log_wire = log_wire
        self.peer = peer
        self._on_data = on_data
        self._on_lost = on_lost
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ended: asyncio.Event | None = None  # set when the reader stops (lost or closed)
        self._lost: AdapterConnectionError | None = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        self._reader, self._writer = await open_port(self.url, baudrate=self.baudrate)
        self._ended, self._lost = asyncio.Event(), None
        self._task = asyncio.create_task(self._read_loop(), name=f"{self.kind}-{self.adapter}")
        log.info("port_opened", adapter=self.adapter, kind=self.kind, port=self.url)

    async def wait_closed(self) -> None:
        """Wait while the port is open; raise :class:`AdapterConnectionError` when it is lost
        or closed (how the daemon learns to reopen a radio sink before its next delivery)."""
        ended = self._ended
        if ended is None:
            raise AdapterConnectionError(f"{self.adapter}: port {self.url} is not open")
        await ended.wait()
        raise self._lost or AdapterConnectionError(f"{self.adapter}: port {self.url} closed")

    async def close(self) -> None:
        if self._ended is not None:
            self._ended.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._writer is not None:
            await close_writer(self._writer)
            self._writer = None
            log.info("port_closed", adapter=self.adapter, kind=self.kind, port=self.url)

    async def write(self, data: bytes) -> None:
        if self._writer is None:
            raise DeliveryError(f"{self.adapter}: port {self.url} is not open")
        async with self._lock:
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (OSError, ConnectionError) as exc:
                raise DeliveryError(f"{self.adapter}: write to {self.url} failed: {exc}") from exc
            if self.log_wire:
                log.debug("port_bytes_sent", adapter=self.adapter, kind=self.kind, wire=data.hex())

    async def _read_loop(self) -> None:
        assert self._reader is not None
        error: AdapterConnectionError | None = None
        try:
            while True:
                data = await self._reader.read(4096)
                if not data:
                    error = AdapterConnectionError(f"{self.url}: {self.peer} closed the port")
                    break
                if self.log_wire:
                    log.debug(
                        "port_bytes_received", adapter=self.adapter, kind=self.kind, wire=data.hex()
                    )
                await self._on_data(data)
        except (OSError, ConnectionError) as exc:
            error = AdapterConnectionError(f"{self.url}: {exc}")
        if error is not None:
            log.warning("port_lost", adapter=self.adapter, kind=self.kind, error=str(error))
            self._lost = error
            if self._ended is not None:
                self._ended.set()
            self._on_lost(error)
