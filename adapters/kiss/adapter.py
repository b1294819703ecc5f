"""The KISS TNC adapter: APRS bulletins and messages out, APRS messages in.

Configuration (``[[sink]]`` or ``[[source]]`` with ``type = "kiss"``)::

    port = "socket://127.0.0.1:8001"   # or /dev/ttyUSB0, a pty path; tcp:// also accepted
    callsign = "VE3BDR-10"             # our station (required)
    path = "WIDE1-1,WIDE2-1"           # digipeater path (up to 8; "" = direct)
    destination = "APZBDL"             # AX.25 destination (tocall)
    mode = "bulletin"                  # or "message": directed messages to `addressees`
    addressees = ["VA3EOC"]            # for mode = "message"
    bulletin_id = "0"                  # first bulletin identifier (0-9); parts count up
    group = "WXCA"                     # group bulletin name (up to 5), "" = general bulletin
    listen_groups = ["WXCA"]           # group bulletins heard here become incident messages
    retries = 5                        # attempts of a directed message before it fails
    retry_initial = 15.0               # seconds before the first retry; doubles each time
    retry_max = 120.0                  # cap of the retry interval
    kiss_port = 0                      # TNC port 0-15
    baudrate = 9600                    # serial line rate to the TNC
    line_rate = 1200                   # radio bit rate (air-time figures)
    txdelay_ms = 300                   # optional KISS parameters sent when the port opens
    persistence = 63
    slot_time_ms = 100
    tx_tail_ms = 30
    full_duplex = false

An :class:`~gateway.adapter.Outbound` may override per delivery with attributes ``mode``,
``addressee`` (comma-separated), ``group``, ``bulletin_id`` and ``priority`` (``"chatter"``
waits behind alerts). Each part is sanitised to APRS text and split to 67 characters.

Inbound: a message addressed to our callsign is acknowledged (every copy, so a sender that
missed our ack stops retrying), deduplicated by sender and number, and published as a
``Received`` of kind ``"incident"`` whose raw is a :class:`gateway.links.RadioMessage` JSON;
acks and rejections settle our pending directed messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import structlog

from adapters.kiss import aprs, ax25, kiss
from adapters.kiss.port import Fanout, TxGate, close_writer, open_port
from gateway.adapter import AdapterContext, Clock, Outbound, Received, SystemClock
from gateway.errors import AdapterConnectionError, ConfigError, DeliveryError, FrameError
from gateway.links import RadioMessage
from gateway.metrics import INPUT_REJECTED, REGISTRY

log = structlog.get_logger(__name__)

FRAMES_SENT = REGISTRY.counter(
    "borderlink_kiss_frames_sent_total", "AX.25 frames sent to a KISS TNC", ["adapter", "kind"]
)
FRAMES_RECEIVED = REGISTRY.counter(
    "borderlink_kiss_frames_received_total", "AX.25 frames received from a KISS TNC", ["adapter"]
)
MESSAGE_RETRIES = REGISTRY.counter(
    "borderlink_aprs_message_retries_total", "APRS directed messages re-sent", ["adapter"]
)

DEFAULT_DESTINATION = "APZBDL"  # APZxxx: experimental software (APRS 1.0.1 ch. 4)


@dataclass(frozen=True, slots=True)
class KissOptions:
    port: str
    callsign: ax25.Address
    destination: ax25.Address = field(default_factory=lambda: ax25.Address(DEFAULT_DESTINATION))
    path: tuple[ax25.Address, ...] = ()
    mode: str = "bulletin"
    addressees: tuple[str, ...] = ()
    bulletin_id: str = "0"
    group: str = ""
    listen_groups: tuple[str, ...] = ()
    retries: int = 5
    retry_initial: float = 15.0
    retry_max: float = 120.0
    dedup_seconds: float = 3600.0
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
    def from_mapping(cls, name: str, options: Mapping[str, Any]) -> KissOptions:
        where = f"sink/source {name!r}"
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown kiss option(s) {unknown}; allowed: {sorted(known)}"
            )
        try:
            callsign = ax25.Address.parse(str(options["callsign"]))
        except KeyError:
            raise ConfigError(f"{where}: option 'callsign' is required (e.g. VE3BDR-10)") from None
        except FrameError as exc:
            raise ConfigError(f"{where}: option 'callsign': {exc}") from None
        port = str(options.get("port", ""))
        if not port:
            raise ConfigError(f"{where}: option 'port' is required (socket://host:port or device)")
        mode = str(options.get("mode", "bulletin"))
        if mode not in {"bulletin", "message"}:
            raise ConfigError(f"{where}: option 'mode' is {mode!r}; allowed: bulletin, message")
        try:
            path_opt = options.get("path", "")
            path = ax25.parse_path(path_opt if isinstance(path_opt, str) else ",".join(path_opt))
            dest = ax25.Address.parse(str(options.get("destination", DEFAULT_DESTINATION)))
            values: dict[str, Any] = {k: options[k] for k in known & set(options)}
            values.update(port=port, callsign=callsign, destination=dest, path=path, mode=mode)
            for key in ("addressees", "listen_groups"):
                if key in options:
                    values[key] = tuple(str(a).upper() for a in _as_list(options[key]))
            result = cls(**values)
            # Validate the APRS pieces once, here, not at the first alert.
            aprs.Bulletin(result.bulletin_id, "", result.group)
            for addressee in result.addressees:
                aprs.Message(addressee, "")
        except FrameError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if mode == "message" and not result.addressees:
            raise ConfigError(f"{where}: mode 'message' needs 'addressees'")
        if result.retries < 1:
            raise ConfigError(f"{where}: option 'retries' must be at least 1")
        return result


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v for v in (s.strip() for s in value.split(",")) if v]
    if isinstance(value, Sequence):
        return list(value)
    raise ConfigError(f"expected a list or a comma-separated string, got {value!r}")


def air_time(frame_bytes: int, line_rate: int) -> float:
    """Seconds on air of an AX.25 frame: flags, FCS and ~1/32 bit stuffing on the KISS bytes."""
    hdlc = frame_bytes + 2 + 2  # opening/closing flag, FCS
    return hdlc * 8 * (1 + 1 / 32) / line_rate


class _Dedup:
    """Remembers keys for ``ttl`` seconds (bounded)."""

    def __init__(self, ttl: float, clock: Clock, maxsize: int = 4096) -> None:
        self._ttl = ttl
        self._clock = clock
        self._maxsize = maxsize
        self._seen: OrderedDict[tuple[str, ...], float] = OrderedDict()

    def check_and_add(self, key: tuple[str, ...]) -> bool:
        """True when ``key`` is new (and remember it)."""
        now = self._clock.monotonic()
        while self._seen:
            oldest_key, t = next(iter(self._seen.items()))
            if now - t <= self._ttl and len(self._seen) < self._maxsize:
                break
            del self._seen[oldest_key]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class KissAdapter:
    """A KISS TNC as a sink (alerts out) and a source (incident messages in)."""

    def __init__(self, name: str, options: KissOptions, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self.clock = clock or SystemClock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._fanout = Fanout()
        self._gate = TxGate()
        self._write_lock = asyncio.Lock()
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._numbers = aprs.MessageNumbers(start=int(time.time()) % 99999 + 1)
        self._dedup = _Dedup(options.dedup_seconds, self.clock)
        self._decoder = kiss.KissDecoder()
        self._bulletin_next = int(options.bulletin_id) if options.bulletin_id.isdigit() else 0

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self._reader, self._writer = await open_port(
            self.options.port, baudrate=self.options.baudrate
        )
        self._fanout.reopen()
        await self._send_parameters()
        self._task = asyncio.create_task(self._read_loop(), name=f"kiss-reader-{self.name}")
        log.info("kiss_port_opened", adapter=self.name, port=self.options.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_pending("adapter closed")
        self._fanout.close()
        if self._writer is not None:
            await close_writer(self._writer)
            self._writer = None
        log.info("kiss_port_closed", adapter=self.name)

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
            await self._write(frame.to_bytes())

    # -- source side -----------------------------------------------------------------------
    async def messages(self) -> AsyncIterator[Received]:
        async for item in self.subscribe():
            yield item

    async def subscribe(self) -> AsyncIterator[Received]:
        """An independent stream of inbound items (one per consumer)."""
        async for item in self._fanout.subscribe():
            assert isinstance(item, Received)
            yield item

    async def _read_loop(self) -> None:
        assert self._reader is not None
        error: BaseException | None = None
        try:
            while True:
                data = await self._reader.read(4096)
                if not data:
                    error = AdapterConnectionError(f"{self.options.port}: TNC closed the port")
                    break
                if self.options.log_wire:
                    log.debug("kiss_bytes_received", adapter=self.name, wire=data.hex())
                for frame in self._decoder.feed(data):
                    await self._on_kiss(frame)
                for exc in self._decoder.take_errors():
                    self._reject("kiss", exc)
        except (OSError, ConnectionError) as exc:
            error = AdapterConnectionError(f"{self.options.port}: {exc}")
        if error is not None:
            log.warning("kiss_port_lost", adapter=self.name, error=str(error))
            self._fail_pending(str(error))
            self._fanout.close(error)

    def _reject(self, reason: str, exc: Exception) -> None:
        INPUT_REJECTED.inc(component=f"kiss:{self.name}", reason=reason)
        log.warning("kiss_input_rejected", adapter=self.name, reason=reason, error=str(exc))

    async def _on_kiss(self, frame: kiss.KissFrame) -> None:
        if frame.command is not kiss.Command.DATA:
            return  # a TNC echoing parameters; nothing for us
        if frame.port != self.options.kiss_port:
            return  # another radio port of a multi-port TNC
        try:
            ax = ax25.Frame.from_bytes(frame.data)
        except FrameError as exc:
            self._reject("ax25", exc)
            return
        FRAMES_RECEIVED.inc(adapter=self.name)
        if ax.source.base == self.options.callsign.base:
            return  # our own frame, digipeated back
        try:
            packet = aprs.decode(ax.info)
        except FrameError as exc:
            self._reject("aprs", exc)
            return
        if packet is None:
            return
        sender = ax.source.base
        ours = self.options.callsign.base
        if isinstance(packet, aprs.Ack | aprs.Rej):
            if packet.addressee.upper() == ours:
                future = self._pending.get((sender, packet.number))
                if future is not None and not future.done():
                    future.set_result(isinstance(packet, aprs.Ack))
                log.info(
                    "aprs_ack_received",
                    adapter=self.name,
                    sender=sender,
                    number=packet.number,
                    ack=isinstance(packet, aprs.Ack),
                    expected=future is not None,
                )
            return
        if isinstance(packet, aprs.Message):
            if packet.addressee.upper() != ours:
                return
            if packet.number is not None:
                await self._transmit(aprs.Ack(sender, packet.number).to_info(), kind="ack")
                key: tuple[str, ...] = (sender, packet.number)
            else:
                key = (sender, "", packet.text)
            if not self._dedup.check_and_add(key):
                log.info(
                    "aprs_duplicate_dropped", adapter=self.name, sender=sender, number=packet.number
                )
                return
            self._publish(RadioMessage(packet.text, sender, ours, packet.number))
            return
        # Bulletins: only the groups we listen to carry traffic for us.
        if packet.group and packet.group.upper() in self.options.listen_groups:
            if not self._dedup.check_and_add((sender, packet.addressee, packet.text)):
                return
            self._publish(RadioMessage(packet.text, sender, packet.group.upper()))

    def _publish(self, message: RadioMessage) -> None:
        log.info(
            "aprs_message_received",
            adapter=self.name,
            sender=message.sender,
            channel=message.channel,
            number=message.number,
        )
        self._fanout.publish(
            Received(
                raw=message.to_json(),
                source=self.name,
                received_at=self.clock.now(),
                channel=message.channel,
                kind="incident",
            )
        )

    # -- sink side -------------------------------------------------------------------------
    async def send(self, item: Outbound) -> None:
        if self._writer is None:
            raise DeliveryError(f"{self.name}: port {self.options.port} is not open")
        if item.expires is not None and item.expires <= self.clock.now():
            raise DeliveryError(f"{self.name}: delivery expired at {item.expires}", retryable=False)
        attrs = item.attributes
        mode = attrs.get("mode", self.options.mode)
        urgent = attrs.get("priority", "alert") != "chatter"
        texts = self._texts(item, bulletin=mode == "bulletin")
        if not texts:
            raise DeliveryError(f"{self.name}: nothing to send (empty text)", retryable=False)
        if mode == "bulletin":
            group = attrs.get("group", self.options.group).upper()
            try:
                bulletins = [
                    aprs.Bulletin(str((self._bulletin_next + i) % 10), text, group)
                    for i, text in enumerate(texts)
                ]
            except FrameError as exc:
                raise DeliveryError(f"{self.name}: {exc}", retryable=False) from exc
            async with self._gate.hold(urgent=urgent):
                for bulletin in bulletins:
                    await self._transmit(bulletin.to_info(), kind="bulletin")
            log.info(
                "aprs_bulletins_sent",
                adapter=self.name,
                group=group,
                count=len(bulletins),
                key=str(item.key),
            )
            return
        addressees = (
            tuple(a.upper() for a in _as_list(attrs["addressee"]))
            if "addressee" in attrs
            else self.options.addressees
        )
        if not addressees:
            raise DeliveryError(
                f"{self.name}: no addressee for a directed message", retryable=False
            )
        # Parts go in order; the transmitter is held per frame, never while waiting for an
        # ack, so an alert is not kept off the air by a slow addressee.
        for addressee in addressees:
            for text in texts:
                await self._send_directed(addressee, text, urgent=urgent)

    def _texts(self, item: Outbound, *, bulletin: bool) -> list[str]:
        texts: list[str] = []
        for part in item.parts:
            clean = aprs.sanitize(part.decode("utf-8", "replace"), bulletin=bulletin)
            texts.extend(aprs.split_text(clean))
        return texts

    async def _send_directed(self, addressee: str, text: str, *, urgent: bool) -> None:
        try:
            message = aprs.Message(addressee, text, self._numbers.next())
        except FrameError as exc:
            raise DeliveryError(f"{self.name}: {exc}", retryable=False) from exc
        assert message.number is not None
        key = (addressee, message.number)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        interval = self.options.retry_initial
        try:
            for attempt in range(1, self.options.retries + 1):
                if attempt > 1:
                    MESSAGE_RETRIES.inc(adapter=self.name)
                    log.info(
                        "aprs_message_retried",
                        adapter=self.name,
                        addressee=addressee,
                        number=message.number,
                        attempt=attempt,
                    )
                async with self._gate.hold(urgent=urgent):
                    await self._transmit(message.to_info(), kind="message")
                waiter = asyncio.ensure_future(self.clock.sleep(interval))
                waiting: set[asyncio.Future[Any]] = {future, waiter}
                try:
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if future in done:
                    if future.result():
                        log.info(
                            "aprs_message_acknowledged",
                            adapter=self.name,
                            addressee=addressee,
                            number=message.number,
                            attempts=attempt,
                        )
                        return
                    raise DeliveryError(
                        f"{self.name}: {addressee} rejected message {message.number}",
                        retryable=False,
                    )
                interval = min(interval * 2, self.options.retry_max)
        finally:
            self._pending.pop(key, None)
        raise DeliveryError(
            f"{self.name}: no ack from {addressee} for message {message.number} "
            f"after {self.options.retries} attempts"
        )

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DeliveryError(f"{self.name}: {reason}"))

    async def _transmit(self, info: bytes, *, kind: str) -> None:
        frame = ax25.Frame(self.options.destination, self.options.callsign, self.options.path, info)
        await self._write(kiss.data_frame(frame.to_bytes(), self.options.kiss_port).to_bytes())
        FRAMES_SENT.inc(adapter=self.name, kind=kind)
        log.debug("kiss_frame_sent", adapter=self.name, frame=str(frame))

    async def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise DeliveryError(f"{self.name}: port {self.options.port} is not open")
        async with self._write_lock:
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (OSError, ConnectionError) as exc:
                raise DeliveryError(
                    f"{self.name}: write to {self.options.port} failed: {exc}"
                ) from exc
            if self.options.log_wire:
                log.debug("kiss_bytes_sent", adapter=self.name, wire=data.hex())


def from_context(ctx: AdapterContext) -> KissAdapter:
    """Factory named in ``gateway.adapter.REGISTRY`` as ``kiss``."""
    return KissAdapter(ctx.name, KissOptions.from_mapping(ctx.name, ctx.options), ctx.clock)
