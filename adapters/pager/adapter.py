"""The paging-terminal sink: alerts and incidents become TAP pages to configured pager IDs.

Configuration (``[[sink]]`` with ``type = "tap"``)::

    port = "/dev/ttyUSB1"         # or socket://host:port (a terminal server), a pty path
    baudrate = 1200
    password = ""                 # TAP PG1 password, up to 6 characters
    pager_ids = ["1234567"]       # who receives alerts (an Outbound's "pager_id" overrides)
    max_length = 80               # the terminal's per-page limit; longer text is split in parts
    max_block = 250               # characters of fields per block (TAP maximum 250)
    response_timeout = 10.0       # seconds to wait for each reply (TAP T3)
    retries = 3                   # NAKs tolerated per block, and logon attempts

One delivery is one TAP session: logon, every page, logoff. A page the terminal refuses (RS)
fails the delivery without retry; a lost link or an unanswered block fails it retryably.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import structlog

from adapters.pager import tap
from adapters.ports import TxGate, close_writer, open_port
from gateway.adapter import AdapterContext, Clock, Outbound, SystemClock
from gateway.errors import AdapterError, DeliveryError, FrameError
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.options import adapter_options
from gateway.plaintext import TextProfile, clean, wrap

log = structlog.get_logger(__name__)

PAGES_SENT = REGISTRY.counter(
    "borderlink_tap_pages_total", "TAP pages by outcome", ["adapter", "outcome"]
)
BLOCK_RETRANSMITS = REGISTRY.counter(
    "borderlink_tap_block_retransmits_total", "TAP blocks re-sent after a NAK", ["adapter"]
)


@dataclass(frozen=True, slots=True)
class TapOptions:
    port: str
    pager_ids: tuple[str, ...] = ()
    password: str = ""
    baudrate: int = 1200
    max_length: int = 80
    max_block: int = tap.MAX_BLOCK_DATA
    response_timeout: float = 10.0
    wake_interval: float = 2.0
    retries: int = 3
    log_wire: bool = False

    @classmethod
    def from_mapping(cls, name: str, options: Mapping[str, Any]) -> TapOptions:
        r = adapter_options("sink", name, options)
        ids = r.raw("pager_ids")
        if isinstance(ids, list):  # pager ids are often written as TOML integers
            ids = [str(i) if isinstance(i, int) and not isinstance(i, bool) else i for i in ids]
        r.table["pager_ids"] = ids if ids is not None else []
        result = cls(
            port=r.required_string("port"),
            pager_ids=r.strings("pager_ids"),
            password=r.string("password", ""),
            baudrate=r.integer("baudrate", 1200, minimum=50, maximum=4_000_000),
            max_length=r.integer("max_length", 80, minimum=10, maximum=1000),
            max_block=r.integer("max_block", tap.MAX_BLOCK_DATA, minimum=1),
            response_timeout=r.number("response_timeout", 10.0, minimum=0.01),
            wake_interval=r.number("wake_interval", 2.0, minimum=0.01),
            retries=r.integer("retries", 3, minimum=0),
            log_wire=r.boolean("log_wire", False),
        )
        r.finish()
        try:
            tap.login(result.password)
        except FrameError as exc:
            r.fail(str(exc), "password")
        for pager_id in result.pager_ids:
            try:
                tap.encode_page(pager_id, "", max_block=result.max_block)
            except FrameError as exc:
                r.fail(str(exc), "pager_ids")
        return result


def split_page(text: str, max_length: int) -> list[str]:
    """Split text to the terminal's limit; parts beyond one carry a "k/n " prefix (text the
    ``text`` translation sized for this pager fits and goes as it is)."""
    if len(text) <= max_length:
        return [text]
    chunks = wrap(text, max_length - 6)  # room for "99/99 "
    total = len(chunks)
    return [f"{i}/{total} {chunk}" for i, chunk in enumerate(chunks, 1)]


class TapAdapter:
    """A paging terminal reached over TAP, as a sink."""

    def __init__(self, name: str, options: TapOptions, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self.clock = clock or SystemClock()
        self._gate = TxGate()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = tap.ReplyDecoder()
        self._replies: list[tap.Reply] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    @property
    def text_profile(self) -> TextProfile:
        """Pagers take printable ASCII (TAP), up to the terminal's page length."""
        return TextProfile(self.options.max_length, ascii_only=True)

    async def send(self, item: Outbound) -> None:
        if item.expires is not None and item.expires <= self.clock.now():
            raise DeliveryError(f"{self.name}: delivery expired at {item.expires}", retryable=False)
        ids_attr = item.attributes.get("pager_id") or item.attributes.get("pager_ids")
        pager_ids = (
            tuple(i.strip() for i in ids_attr.split(",") if i.strip())
            if ids_attr
            else self.options.pager_ids
        )
        if not pager_ids:
            raise DeliveryError(f"{self.name}: no pager ID to page", retryable=False)
        pages: list[tuple[str, str]] = []
        for part in item.parts:
            text = clean(part.decode("utf-8", "replace"), profile=self.text_profile)
            if text:
                pages.extend(
                    (p, chunk)
                    for p in pager_ids
                    for chunk in split_page(text, self.options.max_length)
                )
        if not pages:
            raise DeliveryError(f"{self.name}: nothing to page (empty text)", retryable=False)
        urgent = item.attributes.get("priority", "alert") != "chatter"
        async with self._gate.hold(urgent=urgent):
            await self._session(pages)

    async def _session(self, pages: list[tuple[str, str]]) -> None:
        refused: list[str] = []
        try:
            self._reader, self._writer = await open_port(
                self.options.port, baudrate=self.options.baudrate
            )
            self._decoder.reset()
            self._replies.clear()
            await self._login()
            for pager_id, text in pages:
                if not await self._page(pager_id, text):
                    refused.append(pager_id)
            await self._logout()
        except FrameError as exc:
            INPUT_REJECTED.inc(component=f"tap:{self.name}", reason="reply")
            raise DeliveryError(f"{self.name}: bad reply from the terminal: {exc}") from exc
        except AdapterError as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc
        finally:
            await self._close()
        if refused:
            raise DeliveryError(
                f"{self.name}: terminal refused pages to {', '.join(refused)}", retryable=False
            )

    async def _close(self) -> None:
        if self._writer is not None:
            await close_writer(self._writer)
        self._writer = None
        self._reader = None

    async def _write(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (OSError, ConnectionError) as exc:
            raise DeliveryError(f"{self.name}: write failed: {exc}") from exc
        if self.options.log_wire:
            log.debug("tap_bytes_sent", adapter=self.name, wire=data.hex())

    async def _reply(self, within: float, kinds: set[str]) -> tap.Reply | None:
        """The next reply of one of ``kinds`` (text lines are logged), or None on timeout."""
        assert self._reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            while self._replies:
                reply = self._replies.pop(0)
                if reply.kind in kinds:
                    return reply
                if reply.kind == "text" and reply.text:
                    log.info("tap_terminal_said", adapter=self.name, text=reply.text)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                data = await asyncio.wait_for(self._reader.read(1024), remaining)
            except TimeoutError:
                return None
            except (OSError, ConnectionError) as exc:
                raise DeliveryError(f"{self.name}: read failed: {exc}") from exc
            if not data:
                raise DeliveryError(f"{self.name}: terminal closed the connection")
            if self.options.log_wire:
                log.debug("tap_bytes_received", adapter=self.name, wire=data.hex())
            self._replies.extend(self._decoder.feed(data))

    async def _login(self) -> None:
        o = self.options
        for _ in range(o.retries):
            await self._write(b"\r")
            if await self._reply(o.wake_interval, {"id"}) is not None:
                break
        else:
            raise DeliveryError(f"{self.name}: no ID= prompt from the terminal")
        for _ in range(o.retries):
            await self._write(tap.login(o.password))
            reply = await self._reply(o.response_timeout, {"ack", "nak", "disconnect"})
            if reply is None:
                raise DeliveryError(f"{self.name}: no answer to logon")
            if reply.kind == "disconnect":
                raise DeliveryError(f"{self.name}: terminal refused logon", retryable=False)
            if reply.kind == "ack":
                break
        else:
            raise DeliveryError(f"{self.name}: logon NAKed {o.retries} times")
        if await self._reply(o.response_timeout, {"go_ahead"}) is None:
            raise DeliveryError(f"{self.name}: no go-ahead (ESC [p) after logon")
        log.info("tap_logged_in", adapter=self.name)

    async def _page(self, pager_id: str, text: str) -> bool:
        """Send one page; True when accepted, False when the terminal refused it (RS)."""
        o = self.options
        blocks = tap.encode_page(pager_id, text, max_block=o.max_block)
        for block in blocks:
            wire = block.to_bytes()
            for attempt in range(o.retries + 1):
                await self._write(wire)
                reply = await self._reply(o.response_timeout, {"ack", "nak", "rs", "disconnect"})
                if reply is None:
                    raise DeliveryError(f"{self.name}: no reply to a block for {pager_id}")
                if reply.kind == "ack":
                    break
                if reply.kind == "rs":
                    PAGES_SENT.inc(adapter=self.name, outcome="refused")
                    log.warning("tap_page_refused", adapter=self.name, pager_id=pager_id)
                    return False
                if reply.kind == "disconnect":
                    raise DeliveryError(f"{self.name}: terminal disconnected during a page")
                BLOCK_RETRANSMITS.inc(adapter=self.name)
                log.info("tap_block_nak", adapter=self.name, pager_id=pager_id, attempt=attempt + 1)
            else:
                raise DeliveryError(
                    f"{self.name}: block for {pager_id} NAKed {o.retries + 1} times"
                )
        PAGES_SENT.inc(adapter=self.name, outcome="accepted")
        log.info("tap_page_accepted", adapter=self.name, pager_id=pager_id, blocks=len(blocks))
        return True

    async def _logout(self) -> None:
        await self._write(tap.LOGOUT)
        # The terminal answers ESC EOT and hangs up; not hearing it is not a failure.
        await self._reply(self.options.response_timeout, {"disconnect"})


def from_context(ctx: AdapterContext) -> TapAdapter:
    """Factory named in ``gateway.adapter.REGISTRY`` as ``tap``."""
    return TapAdapter(ctx.name, TapOptions.from_mapping(ctx.name, ctx.options), ctx.clock)
