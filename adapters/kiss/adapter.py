"""The KISS TNC adapter: an APRS station (:mod:`adapters.kiss.station`) over a KISS port.

Configuration (``[[sink]]`` or ``[[source]]`` with ``type = "kiss"``): the station keys
(``callsign``, ``path``, ``destination``, ``mode``, ``addressees``, ``bulletin_id``, ``group``,
``listen_groups``, ``retries``, ``message_retry_initial``, ``message_retry_max``, ``dedup_seconds``,
``state_dir``; see :class:`~adapters.kiss.station.StationOptions`) and the port keys::

    port = "socket://127.0.0.1:8001"   # or /dev/ttyUSB0, a pty path; tcp:// also accepted
    kiss_port = 0                      # TNC port 0-15
    baudrate = 9600                    # serial line rate to the TNC
    line_rate = 1200                   # radio bit rate (air-time figures)
    txdelay_ms = 300                   # optional KISS parameters sent when the port opens
    persistence = 63
    slot_time_ms = 100
    tx_tail_ms = 30
    full_duplex = false
    log_wire = false

The TNC does the channel access (CSMA) and the modem; the station does the messaging:
bulletins, numbered directed messages retried until acknowledged, acks of what we receive,
deduplication, incident messages in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import structlog

from adapters.kiss import kiss
from adapters.kiss.station import (
    MESSAGE_RETRIES,
    AprsStation,
    StationOptions,
)
from adapters.ports import StreamLink
from gateway.adapter import AdapterContext, Clock, Outbound, Received, SystemClock
from gateway.errors import DeliveryError
from gateway.metrics import REGISTRY
from gateway.plaintext import TextProfile

__all__ = ["MESSAGE_RETRIES", "KissAdapter", "KissOptions", "air_time", "from_context"]

log = structlog.get_logger(__name__)

FRAMES_SENT = REGISTRY.counter(
    "borderlink_kiss_frames_sent_total", "AX.25 frames sent to a KISS TNC", ["adapter", "kind"]
)
FRAMES_RECEIVED = REGISTRY.counter(
    "borderlink_kiss_frames_received_total", "AX.25 frames received from a KISS TNC", ["adapter"]
)



@dataclass(frozen=True, slots=True)
class KissOptions:
    port: str
    station: StationOptions
    kiss_port: int = 0
    baudrate: int = 9600
    line_rate: int = 1200
    txdelay_ms: int | None = None
    persistence: int | None = None
    slot_time_ms: int | None = None
    tx_tail_ms: int | None = None
    full_duplex: bool | None = None
    log_wire: bool = False

    @classmethod
    def from_mapping(
        cls, name: str, options: Mapping[str, Any], *, data_dir: str = ""
    ) -> KissOptions:
        r, station = StationOptions.for_adapter(name, options, data_dir=data_dir)
        port = r.required_string("port")
        optional = {
            key: r.integer(key, 0, minimum=0, maximum=high) if r.has(key) else None
            for key, high in (
                ("txdelay_ms", 2550),
                ("persistence", 255),
                ("slot_time_ms", 2550),
                ("tx_tail_ms", 2550),
            )
        }
        result = cls(
            port=port,
            station=station,
            kiss_port=r.integer("kiss_port", 0, minimum=0, maximum=15),
            baudrate=r.integer("baudrate", 9600, minimum=50, maximum=4_000_000),
            line_rate=r.integer("line_rate", 1200, minimum=50, maximum=1_000_000),
            txdelay_ms=optional["txdelay_ms"],
            persistence=optional["persistence"],
            slot_time_ms=optional["slot_time_ms"],
            tx_tail_ms=optional["tx_tail_ms"],
            full_duplex=r.boolean("full_duplex", False) if r.has("full_duplex") else None,
            log_wire=r.boolean("log_wire", False),
        )
        r.finish()
        return result


def air_time(frame_bytes: int, line_rate: int) -> float:
    """Seconds on air of an AX.25 frame: flags, FCS and ~1/32 bit stuffing on the KISS bytes."""
    hdlc = frame_bytes + 2 + 2  # opening/closing flag, FCS
    return hdlc * 8 * (1 + 1 / 32) / line_rate


class KissAdapter:
    """A KISS TNC as a sink (alerts out) and a source (incident messages in)."""

    def __init__(self, name: str, options: KissOptions, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self.clock = clock or SystemClock()
        self.station = AprsStation(
            name,
            options.station,
            transmit=self._transmit,
            component=f"kiss:{name}",
            clock=self.clock,
        )
        self._decoder = kiss.KissDecoder()
        self._link = StreamLink(
            name,
            options.port,
            kind="kiss",
            baudrate=options.baudrate,
            log_wire=options.log_wire,
            on_data=self._on_data,
            on_lost=self.station.lost,
            peer="TNC",
        )

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self._decoder = kiss.KissDecoder()
        await self._link.open()
        try:
            await self._send_parameters()
            await self.station.start()
        except BaseException:
            await self._link.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._link.close()
        await self.station.stop()

    async def wait_closed(self) -> None:
        """Raise AdapterConnectionError when the port is lost (the daemon then reopens it)."""
        await self._link.wait_closed()

    async def _send_parameters(self) -> None:
        o = self.options
        frames: list[kiss.KissFrame] = []
        if o.txdelay_ms is not None:
            frames.append(kiss.txdelay(o.txdelay_ms, o.kiss_port))
        if o.persistence is not None:
            frames.append(kiss.persistence(o.persistence, o.kiss_port))
        if o.slot_time_ms is not None:
            frames.append(kiss.slot_time(o.slot_time_ms, o.kiss_port))
        if o.tx_tail_ms is not None:
            frames.append(kiss.tx_tail(o.tx_tail_ms, o.kiss_port))
        if o.full_duplex is not None:
            frames.append(kiss.full_duplex(o.full_duplex, o.kiss_port))
        for frame in frames:
            await self._link.write(frame.to_bytes())

    # -- source side -----------------------------------------------------------------------
    async def messages(self) -> AsyncIterator[Received]:
        async for item in self.station.subscribe():
            yield item

    @property
    def text_profile(self) -> TextProfile:
        """The APRS text this radio sends (bulletins or directed messages)."""
        return self.station.text_profile

    def subscribe(self) -> AsyncIterator[Received]:
        """An independent stream of inbound items (one per consumer)."""
        return self.station.subscribe()

    async def _on_data(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            if frame.command is not kiss.Command.DATA:
                continue  # a TNC echoing parameters; nothing for us
            if frame.port != self.options.kiss_port:
                continue  # another radio port of a multi-port TNC
            if self.station.on_frame(frame.data) is not None:
                FRAMES_RECEIVED.inc(adapter=self.name)
        for exc in self._decoder.take_errors():
            self.station.reject("kiss", exc)

    # -- sink side -------------------------------------------------------------------------
    @property
    def line_rate(self) -> int:
        """Bit/s on the air, for the air-time budget of ``[[link]]`` targets."""
        return self.options.line_rate

    async def send(self, item: Outbound) -> None:
        if not self._link.is_open:
            raise DeliveryError(f"{self.name}: port {self.options.port} is not open")
        await self.station.send(item)

    async def _transmit(self, frames: Sequence[bytes], kind: str) -> None:
        for frame in frames:
            wire = kiss.data_frame(frame, self.options.kiss_port).to_bytes()
            await self._link.write(wire)
            FRAMES_SENT.inc(adapter=self.name, kind=kind)
            log.debug("kiss_frame_sent", adapter=self.name, kind=kind, length=len(frame))


def from_context(ctx: AdapterContext) -> KissAdapter:
    """Factory named in ``gateway.adapter.REGISTRY`` as ``kiss``."""
    return KissAdapter(
        ctx.name, KissOptions.from_mapping(ctx.name, ctx.options, data_dir=ctx.data_dir), ctx.clock
    )
