"""An APRS station over any AX.25 frame transport (a KISS TNC, a sound-card modem).

The station is what both radio adapters share: it turns an :class:`~gateway.adapter.Outbound`
into APRS bulletins or directed messages, and AX.25 frames heard on the air into incident
messages. It knows nothing of the transport: the adapter hands it every AX.25 frame received
(:meth:`AprsStation.on_frame`) and gives it a ``transmit(frames, kind)`` coroutine that puts
frames on the air (one transmission; the adapter owns the port, the modem, the PTT).

Station configuration keys (shared by ``type = "kiss"`` and ``type = "afsk"``)::

    callsign = "VE3BDR-10"             # our station (required)
    path = "WIDE1-1,WIDE2-1"           # digipeater path (up to 8; "" = direct)
    destination = "APZBDL"             # AX.25 destination (tocall)
    mode = "bulletin"                  # or "message": directed messages to `addressees`
    addressees = ["VA3EOC"]            # for mode = "message"
    bulletin_id = "0"                  # first bulletin identifier (0-9); parts count up
    group = "WXCA"                     # group bulletin name (up to 5), "" = general bulletin
    listen_groups = ["WXCA"]           # group bulletins heard here become incident messages
    retries = 5                        # attempts of a directed message before it fails
    message_retry_initial = 15.0       # seconds before the first retry; doubles each time
    message_retry_max = 120.0          # cap of the retry interval
    dedup_seconds = 3600.0             # how long a (sender, number) is remembered
    state_dir = "var"                  # where message numbers are kept (default: data_dir)

Behaviour:

- outbound, ``mode = "bulletin"``: each part is sanitised to APRS text, split to 67
  characters and sent as bulletins ``BLNn[group]`` (one transmission for all parts);
- outbound, ``mode = "message"``: one numbered message per part and addressee, re-sent with
  doubling intervals until acknowledged (an ack settles it, a ``rej`` fails it at once, no ack
  after ``retries`` attempts fails it retryably); numbers are reserved on disk
  (:mod:`adapters.kiss.numbers`) so a restart never reuses a recent one;
- an :class:`~gateway.adapter.Outbound` may override ``mode``, ``addressee`` (comma-separated),
  ``group`` and ``priority`` (``"chatter"`` waits behind alerts: :class:`TxGate`);
- inbound: a message addressed to our callsign is deduplicated by sender and number and
  published as a ``Received`` of kind ``"incident"`` whose raw is a
  :class:`gateway.links.RadioMessage` JSON; it is acknowledged on the air only when its
  consumer acknowledges the ``Received`` (the daemon: once the message is stored), so an ack
  never promises what a crash could lose; a later copy of a message already acknowledged is
  acknowledged again (its sender missed our ack), a copy of one still being stored is not;
  group bulletins of ``listen_groups`` likewise; acks and rejections settle our pending
  directed messages; malformed frames and packets are counted in ``INPUT_REJECTED``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from adapters.kiss import aprs, ax25
from adapters.kiss.numbers import MessageNumberStore, state_path
from adapters.ports import Fanout, TxGate
from gateway.adapter import Clock, Outbound, Received
from gateway.backoff import Backoff
from gateway.errors import DeliveryError, FrameError
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.model import RadioMessage
from gateway.options import OptionReader, adapter_options
from gateway.plaintext import APRS_BULLETIN, APRS_MESSAGE, TextProfile

log = structlog.get_logger(__name__)

T = TypeVar("T")

MESSAGE_RETRIES = REGISTRY.counter(
    "borderlink_aprs_message_retries_total", "APRS directed messages re-sent", ["adapter"]
)
ACKS_DROPPED = REGISTRY.counter(
    "borderlink_aprs_acks_dropped_total",
    "APRS acknowledgements not sent (queue full or transmit failed)",
    ["adapter"],
)

DEFAULT_DESTINATION = "APZBDL"  # APZxxx: experimental software (APRS 1.0.1 ch. 4)
ACK_QUEUE = 64

# transmit(frames, kind): put AX.25 frames (bytes, no FCS) on the air as one transmission.
Transmit = Callable[[Sequence[bytes], str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StationOptions:
    """The APRS station part of a radio adapter's options."""

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
    state_dir: str = ""

    @classmethod
    def for_adapter(
        cls, name: str, options: Mapping[str, Any], *, data_dir: str = ""
    ) -> tuple[OptionReader, StationOptions]:
        """The reader of a radio sink's options, with the station keys read from it; the
        caller reads its own keys and then calls ``finish()``."""
        r = adapter_options("sink", name, options)
        return r, cls.from_reader(r, data_dir=data_dir)

    @classmethod
    def from_mapping(
        cls, name: str, options: Mapping[str, Any], *, data_dir: str = ""
    ) -> StationOptions:
        """The station keys of sink ``name``'s ``options`` (other keys are the caller's)."""
        return cls.from_reader(adapter_options("sink", name, options), data_dir=data_dir)

    @classmethod
    def from_reader(cls, r: OptionReader, *, data_dir: str = "") -> StationOptions:
        """Read the station keys (the caller finishes the reader)."""

        def parsed(key: str, default: str, parse: Callable[[str], T]) -> T:
            text = r.string(key, default) if default else r.required_string(key)
            try:
                return parse(text)
            except FrameError as exc:
                r.fail(str(exc), key)

        callsign = parsed("callsign", "", ax25.Address.parse)
        mode = r.string("mode", "bulletin", choices=("bulletin", "message"))
        retries = r.integer("retries", 5, minimum=1, maximum=100)
        # Not retry_initial/retry_max: those keys of a [[sink]] are the outbox's.
        retry_initial = r.number("message_retry_initial", 15.0, minimum=0.01)
        retry_max = r.number("message_retry_max", 120.0, minimum=retry_initial)
        dedup_seconds = r.number("dedup_seconds", 3600.0, minimum=0.0)
        state_dir = r.string("state_dir", data_dir)
        try:
            path = ax25.parse_path(",".join(r.strings("path")))
        except FrameError as exc:
            r.fail(str(exc), "path")
        dest = parsed("destination", DEFAULT_DESTINATION, ax25.Address.parse)
        # A list, or one comma-separated string.
        lists = {
            key: tuple(
                part.strip().upper()
                for item in r.strings(key)
                for part in item.split(",")
                if part.strip()
            )
            for key in ("addressees", "listen_groups")
        }
        bulletin_id = r.string("bulletin_id", "0")
        group = r.string("group", "").upper()
        result = cls(
            callsign=callsign,
            destination=dest,
            path=path,
            mode=mode,
            addressees=lists["addressees"],
            bulletin_id=bulletin_id,
            group=group,
            listen_groups=lists["listen_groups"],
            retries=retries,
            retry_initial=retry_initial,
            retry_max=retry_max,
            dedup_seconds=dedup_seconds,
            state_dir=state_dir,
        )
        # Validate the APRS pieces once, here, not at the first alert.
        try:
            aprs.Bulletin(result.bulletin_id, "", result.group)
        except FrameError as exc:
            r.fail(str(exc), "bulletin_id" if r.has("bulletin_id") else "group")
        for addressee in result.addressees:
            try:
                aprs.Message(addressee, "")
            except FrameError as exc:
                r.fail(str(exc), "addressees")
        if mode == "message" and not result.addressees:
            r.fail("mode 'message' needs 'addressees'")
        return result


class Dedup:
    """Remembers keys for ``ttl`` seconds (bounded)."""

    def __init__(self, ttl: float, clock: Clock, maxsize: int = 4096) -> None:
        self._ttl = ttl
        self._clock = clock
        self._maxsize = maxsize
        self._seen: OrderedDict[tuple[str, ...], float] = OrderedDict()

    def _prune(self) -> float:
        now = self._clock.monotonic()
        while self._seen:
            oldest_key, t = next(iter(self._seen.items()))
            if now - t <= self._ttl and len(self._seen) < self._maxsize:
                break
            del self._seen[oldest_key]
        return now

    def check_and_add(self, key: tuple[str, ...]) -> bool:
        """True when ``key`` is new (and remember it)."""
        now = self._prune()
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def seen(self, key: tuple[str, ...]) -> bool:
        """Whether ``key`` is remembered (without adding it)."""
        self._prune()
        return key in self._seen


class AprsStation:
    """APRS messaging over a frame transport: see the module docstring.

    Lifecycle: :meth:`start` when the transport is up (loads the message numbers, starts the
    ack sender), :meth:`lost` when the transport fails (pending messages fail, consumers see a
    connection error), :meth:`stop` when the adapter closes.
    """

    def __init__(
        self,
        name: str,
        options: StationOptions,
        *,
        transmit: Transmit,
        component: str,
        clock: Clock,
        numbers: MessageNumberStore | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.clock = clock
        self.component = component
        self._transmit = transmit
        self.gate = TxGate()
        self.fanout = Fanout()
        self.numbers = numbers or MessageNumberStore(
            state_path(options.state_dir, name) if options.state_dir else None,
            component=component,
        )
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._dedup = Dedup(options.dedup_seconds, clock)
        self._bulletin_next = int(options.bulletin_id) if options.bulletin_id.isdigit() else 0
        self._acks: asyncio.Queue[aprs.Ack] = asyncio.Queue(ACK_QUEUE)
        # (sender, number) of messages whose consumer confirmed them: their copies are acked.
        self._confirmed = Dedup(options.dedup_seconds, clock)
        self._ack_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.numbers.load)
        self.fanout.reopen()
        if self._ack_task is None:
            self._ack_task = asyncio.create_task(self._ack_sender(), name=f"aprs-acks-{self.name}")

    async def stop(self, reason: str = "adapter closed") -> None:
        if self._ack_task is not None:
            self._ack_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ack_task
            self._ack_task = None
        self._fail_pending(reason)
        self.fanout.close()

    def lost(self, error: BaseException) -> None:
        """The transport failed: pending messages fail, subscribers get the error."""
        self._fail_pending(str(error))
        self.fanout.close(error)

    # -- source side -----------------------------------------------------------------------
    async def subscribe(self) -> AsyncIterator[Received]:
        """An independent stream of inbound items (one per consumer)."""
        async for item in self.fanout.subscribe():
            assert isinstance(item, Received)
            yield item

    def reject(self, reason: str, exc: Exception) -> None:
        INPUT_REJECTED.inc(component=self.component, reason=reason)
        log.warning("aprs_input_rejected", adapter=self.name, reason=reason, error=str(exc))

    def on_frame(self, raw: bytes) -> ax25.Frame | None:
        """Handle one AX.25 frame heard on the air; return it decoded (``None`` if rejected)."""
        try:
            ax = ax25.Frame.from_bytes(raw)
        except FrameError as exc:
            self.reject("ax25", exc)
            return None
        if ax.source.base == self.options.callsign.base:
            return ax  # our own frame, digipeated back
        try:
            packet = aprs.decode(ax.info)
        except FrameError as exc:
            self.reject("aprs", exc)
            return ax
        if packet is not None:
            self._on_packet(ax.source.base, packet)
        return ax

    def _on_packet(self, sender: str, packet: aprs.Packet) -> None:
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
            ack: aprs.Ack | None = None
            if packet.number is not None:
                ack = aprs.Ack(sender, packet.number)
                key: tuple[str, ...] = (sender, packet.number)
            else:
                key = (sender, "", packet.text)
            if not self._dedup.check_and_add(key):
                confirmed = ack is not None and self._confirmed.seen(key)
                if ack is not None and confirmed:
                    self._queue_ack(ack)  # the sender missed our ack: say it again
                log.info(
                    "aprs_duplicate_dropped",
                    adapter=self.name,
                    sender=sender,
                    number=packet.number,
                    acked=confirmed,
                )
                return
            self._publish(
                RadioMessage(packet.text, sender, ours, packet.number),
                ack=None if ack is None else self._on_confirmed(key, ack),
            )
            return
        # Bulletins: only the groups we listen to carry traffic for us.
        if packet.group and packet.group.upper() in self.options.listen_groups:
            if not self._dedup.check_and_add((sender, packet.addressee, packet.text)):
                return
            self._publish(RadioMessage(packet.text, sender, packet.group.upper()))

    def _queue_ack(self, ack: aprs.Ack) -> None:
        try:
            self._acks.put_nowait(ack)
        except asyncio.QueueFull:
            ACKS_DROPPED.inc(adapter=self.name)
            log.warning("aprs_ack_dropped", adapter=self.name, reason="queue full")

    async def _ack_sender(self) -> None:
        while True:
            ack = await self._acks.get()
            try:
                await self._transmit([self._frame(ack.to_info())], "ack")
            except DeliveryError as exc:
                ACKS_DROPPED.inc(adapter=self.name)
                log.warning("aprs_ack_dropped", adapter=self.name, reason=str(exc))

    def _on_confirmed(self, key: tuple[str, ...], ack: aprs.Ack) -> Callable[[], Awaitable[None]]:
        """The ``Received.ack`` of a numbered message: the first call sends the APRS ack."""

        async def confirm() -> None:
            if self._confirmed.check_and_add(key):
                self._queue_ack(ack)

        return confirm

    def _publish(
        self, message: RadioMessage, *, ack: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        log.info(
            "aprs_message_received",
            adapter=self.name,
            sender=message.sender,
            channel=message.channel,
            number=message.number,
        )
        self.fanout.publish(
            Received(
                raw=message.to_json(),
                source=self.name,
                received_at=self.clock.now(),
                channel=message.channel,
                kind="incident",
                ack=ack,
            )
        )

    # -- sink side -------------------------------------------------------------------------
    def _frame(self, info: bytes) -> bytes:
        o = self.options
        return ax25.Frame(o.destination, o.callsign, o.path, info).to_bytes()

    async def send(self, item: Outbound) -> None:
        if item.expires is not None and item.expires <= self.clock.now():
            raise DeliveryError(f"{self.name}: delivery expired at {item.expires}", retryable=False)
        attrs = item.attributes
        mode = attrs.get("mode", self.options.mode)
        urgent = attrs.get("priority", "alert") != "chatter"
        texts = self._texts(item, bulletin=mode == "bulletin")
        if not texts:
            raise DeliveryError(f"{self.name}: nothing to send (empty text)", retryable=False)
        if mode == "bulletin":
            await self._send_bulletins(item, texts, urgent=urgent)
            return
        addressees = (
            tuple(a.strip().upper() for a in attrs["addressee"].split(",") if a.strip())
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

    async def _send_bulletins(self, item: Outbound, texts: list[str], *, urgent: bool) -> None:
        group = item.attributes.get("group", self.options.group).upper()
        try:
            bulletins = [
                aprs.Bulletin(str((self._bulletin_next + i) % 10), text, group)
                for i, text in enumerate(texts)
            ]
        except FrameError as exc:
            raise DeliveryError(f"{self.name}: {exc}", retryable=False) from exc
        async with self.gate.hold(urgent=urgent):
            await self._transmit([self._frame(b.to_info()) for b in bulletins], "bulletin")
        log.info(
            "aprs_bulletins_sent",
            adapter=self.name,
            group=group,
            count=len(bulletins),
            key=str(item.key),
        )

    @property
    def text_profile(self) -> TextProfile:
        """What the station's configured mode sends: bulletins or directed messages."""
        return APRS_BULLETIN if self.options.mode == "bulletin" else APRS_MESSAGE

    def _texts(self, item: Outbound, *, bulletin: bool) -> list[str]:
        """The delivery's parts as APRS texts: parts sized by the ``text`` translation for
        this profile go as they are; anything else is cleaned and cut to fit."""
        profile = APRS_BULLETIN if bulletin else APRS_MESSAGE
        texts: list[str] = []
        for part in item.parts:
            texts.extend(profile.parts(part.decode("utf-8", "replace")))
        return texts

    async def _send_directed(self, addressee: str, text: str, *, urgent: bool) -> None:
        try:
            aprs.Message(addressee, text)
        except FrameError as exc:
            raise DeliveryError(f"{self.name}: {exc}", retryable=False) from exc
        message = aprs.Message(addressee, text, await self.numbers.next())
        assert message.number is not None
        key = (addressee, message.number)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        # The addressee expects the protocol's timing: no jitter.
        resend = Backoff(self.options.retry_initial, self.options.retry_max, jitter=0.0)
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
                async with self.gate.hold(urgent=urgent):
                    await self._transmit([self._frame(message.to_info())], "message")
                outcome = await self._settled(future, resend.delay(attempt))
                if outcome is False:
                    raise DeliveryError(
                        f"{self.name}: {addressee} rejected message {message.number}",
                        retryable=False,
                    )
                if outcome:
                    log.info(
                        "aprs_message_acknowledged",
                        adapter=self.name,
                        addressee=addressee,
                        number=message.number,
                        attempts=attempt,
                    )
                    return
        finally:
            self._pending.pop(key, None)
        raise DeliveryError(
            f"{self.name}: no ack from {addressee} for message {message.number} "
            f"after {self.options.retries} attempts"
        )

    async def _settled(self, future: asyncio.Future[bool], interval: float) -> bool | None:
        """Wait up to ``interval`` for the answer: True acked, False rejected, None no answer
        yet (the transport's failure raises)."""
        waiter = asyncio.ensure_future(self.clock.sleep(interval))
        try:
            waiting: set[asyncio.Future[Any]] = {future, waiter}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return future.result() if future in done else None

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DeliveryError(f"{self.name}: {reason}"))
