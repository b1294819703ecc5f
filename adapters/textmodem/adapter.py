"""The text-modem / data-radio adapter: alerts out to talkgroups or units, text messages in.

Configuration (``[[sink]]``/``[[source]]`` with ``type = "textmodem"``)::

    port = "socket://127.0.0.1:7301"    # or /dev/ttyUSB2, a pty path
    baudrate = 9600
    talkgroups = ["CA-EAST"]            # where alerts go (an Outbound's "talkgroup" overrides)
    listen = ["CA-EAST"]                # received messages kept (empty = all)
    reply_timeout = 5.0                 # seconds to wait for OK/ERROR
    retries = 3                         # attempts per message
    line_rate = 9600                    # radio bit rate (air-time figures)
    [sink.options.dialect]              # the radio model, see adapters.textmodem.codec.Dialect
    tx = "AT+SDS={dest},{text}"
    ok = "^OK$"
    error = "^\\+CME ERROR: (?P<reason>.*)$"
    rx = "^\\+SDS: (?P<sender>\\d+),(?P<dest>\\d+),(?P<text>.*)$"
    max_text = 140
    init = ["ATE0"]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import structlog

from adapters.ports import Fanout, StreamLink, TxGate
from adapters.textmodem.codec import Dialect, Event, LineDecoder
from gateway.adapter import AdapterContext, Clock, Outbound, Received, SystemClock
from gateway.errors import AdapterConnectionError, DeliveryError, FrameError
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.model import RadioMessage
from gateway.options import adapter_options
from gateway.plaintext import TextProfile

log = structlog.get_logger(__name__)

TEXT_SENT = REGISTRY.counter(
    "borderlink_textmodem_messages_total",
    "Text-modem transmissions by outcome",
    ["adapter", "outcome"],
)


@dataclass(frozen=True, slots=True)
class TextModemOptions:
    port: str
    talkgroups: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    baudrate: int = 9600
    reply_timeout: float = 5.0
    retries: int = 3
    line_rate: int = 9600
    dialect: Dialect = field(default_factory=Dialect)
    log_wire: bool = False

    @classmethod
    def from_mapping(cls, name: str, options: Mapping[str, Any]) -> TextModemOptions:
        r = adapter_options("sink", name, options)
        for key in ("talkgroups", "listen"):  # talkgroup numbers may be TOML integers
            raw = r.table.get(key)
            if isinstance(raw, list):
                r.table[key] = [str(t) if isinstance(t, int) else t for t in raw]
        result = cls(
            port=r.required_string("port"),
            talkgroups=r.strings("talkgroups"),
            listen=r.strings("listen"),
            baudrate=r.integer("baudrate", 9600, minimum=50, maximum=4_000_000),
            reply_timeout=r.number("reply_timeout", 5.0, minimum=0.01),
            retries=r.integer("retries", 3, minimum=1),
            line_rate=r.integer("line_rate", 9600, minimum=1),
            dialect=Dialect.from_reader(r.sub("dialect")),
            log_wire=r.boolean("log_wire", False),
        )
        r.finish()
        return result


class TextModemAdapter:
    """A data radio speaking a configured AT-like dialect, as sink and source."""

    def __init__(self, name: str, options: TextModemOptions, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self.clock = clock or SystemClock()
        self._fanout = Fanout()
        self._gate = TxGate()
        self._replies: asyncio.Queue[Event] = asyncio.Queue()
        self._decoder = LineDecoder()
        self._link = StreamLink(
            name,
            options.port,
            kind="textmodem",
            baudrate=options.baudrate,
            log_wire=options.log_wire,
            on_data=self._on_data,
            on_lost=self._on_lost,
            peer="radio",
        )

    async def __aenter__(self) -> Self:
        self._decoder = LineDecoder()
        await self._link.open()
        self._fanout.reopen()
        try:
            for command in self.options.dialect.init:
                await self._command((command + self.options.dialect.line_end).encode("ascii"))
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
        self._fanout.close()

    async def wait_closed(self) -> None:
        """Raise AdapterConnectionError when the port is lost (the daemon then reopens it)."""
        await self._link.wait_closed()

    async def messages(self) -> AsyncIterator[Received]:
        async for item in self.subscribe():
            yield item

    async def subscribe(self) -> AsyncIterator[Received]:
        async for item in self._fanout.subscribe():
            assert isinstance(item, Received)
            yield item

    async def _on_data(self, data: bytes) -> None:
        for line in self._decoder.feed(data):
            self._on_line(line)
        for exc in self._decoder.take_errors():
            INPUT_REJECTED.inc(component=f"textmodem:{self.name}", reason="line")
            log.warning("textmodem_input_rejected", adapter=self.name, error=str(exc))

    def _on_lost(self, error: AdapterConnectionError) -> None:
        self._replies.put_nowait(Event("lost", reason=str(error)))
        self._fanout.close(error)

    def _on_line(self, line: str) -> None:
        event = self.options.dialect.classify(line)
        if event.kind in {"ok", "error"}:
            self._replies.put_nowait(event)
        elif event.kind == "rx":
            if self.options.listen and event.dest not in self.options.listen:
                return
            message = RadioMessage(event.text, event.sender, event.dest)
            log.info(
                "textmodem_message_received",
                adapter=self.name,
                sender=event.sender,
                channel=event.dest,
            )
            self._fanout.publish(
                Received(
                    raw=message.to_json(),
                    source=self.name,
                    received_at=self.clock.now(),
                    channel=event.dest,
                    kind="incident",
                )
            )
        else:
            log.debug("textmodem_line_ignored", adapter=self.name, line=line[:80])

    async def _command(self, wire: bytes) -> Event:
        """Write one command and wait for its OK/ERROR (a timeout is an error event)."""
        while not self._replies.empty():
            self._replies.get_nowait()  # a late reply to an earlier, timed-out command
        await self._link.write(wire)
        try:
            event = await asyncio.wait_for(self._replies.get(), self.options.reply_timeout)
        except TimeoutError:
            return Event("error", reason="no reply")
        if event.kind == "lost":
            raise DeliveryError(f"{self.name}: {event.reason}")
        return event

    @property
    def line_rate(self) -> int:
        """Bit/s on the air, for the air-time budget of ``[[link]]`` targets."""
        return self.options.line_rate

    @property
    def text_profile(self) -> TextProfile:
        """The dialect's line carries ASCII, up to its ``max_text`` characters per message."""
        return TextProfile(self.options.dialect.max_text, ascii_only=True)

    async def send(self, item: Outbound) -> None:
        if item.expires is not None and item.expires <= self.clock.now():
            raise DeliveryError(f"{self.name}: delivery expired at {item.expires}", retryable=False)
        attrs = item.attributes
        dest_attr = attrs.get("talkgroup") or attrs.get("unit")
        dests = (
            tuple(d.strip() for d in dest_attr.split(",") if d.strip())
            if dest_attr
            else self.options.talkgroups
        )
        if not dests:
            raise DeliveryError(f"{self.name}: no talkgroup or unit to send to", retryable=False)
        texts: list[str] = []
        for part in item.parts:
            texts.extend(self.text_profile.parts(part.decode("utf-8", "replace")))
        if not texts:
            raise DeliveryError(f"{self.name}: nothing to send (empty text)", retryable=False)
        urgent = attrs.get("priority", "alert") != "chatter"
        async with self._gate.hold(urgent=urgent):
            for dest in dests:
                for text in texts:
                    await self._transmit(dest, text)

    async def _transmit(self, dest: str, text: str) -> None:
        try:
            wire = self.options.dialect.format_tx(dest, text)
        except FrameError as exc:
            raise DeliveryError(f"{self.name}: {exc}", retryable=False) from exc
        reason = ""
        for attempt in range(1, self.options.retries + 1):
            event = await self._command(wire)
            if event.kind == "ok":
                TEXT_SENT.inc(adapter=self.name, outcome="ok")
                log.info("textmodem_message_sent", adapter=self.name, dest=dest, attempt=attempt)
                return
            reason = event.reason
            TEXT_SENT.inc(adapter=self.name, outcome="error")
            log.warning(
                "textmodem_send_failed",
                adapter=self.name,
                dest=dest,
                reason=reason,
                attempt=attempt,
            )
        raise DeliveryError(
            f"{self.name}: radio refused a message to {dest} "
            f"{self.options.retries} times (last: {reason or 'ERROR'})"
        )


def from_context(ctx: AdapterContext) -> TextModemAdapter:
    """Factory named in ``gateway.adapter.REGISTRY`` as ``textmodem``."""
    return TextModemAdapter(
        ctx.name, TextModemOptions.from_mapping(ctx.name, ctx.options), ctx.clock
    )
