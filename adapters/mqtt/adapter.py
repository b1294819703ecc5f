"""The MQTT adapter (aiomqtt): CAP input with acknowledgement after commit, QoS 1/2 output.

As a **source** it subscribes (QoS 1) to its ``topics`` on a persistent session (clean start
off, session expiry set, a stable client id) and turns off automatic acknowledgement: each
``Received`` carries an ``ack`` the daemon awaits only after the ledger committed the
admission, so a crash before the commit makes the broker deliver the message again. A message
published with QoS 0 is taken like any other (the publisher asked for no guarantee: there is
nothing to acknowledge, and it is lost if the gateway dies before the commit).

As a **sink** it publishes every part of a delivery with QoS 1 (``qos = 2`` for a sink that
wants the broker's exactly-once handshake) and returns once the broker acknowledged it; an
MQTT 5 message carries the message-expiry interval from the alert's expires
and the user properties ``borderlink-delivery-id`` / ``borderlink-alert-key`` — a consumer
that sees the same delivery id twice (possible after a crash between PUBACK and the outbox
commit, or after a broker restart) drops the second copy.

:class:`StatePublisher` keeps ``{prefix}/status`` (retained ``online``, last will ``offline``)
and the retained JSON summaries under ``{prefix}/active/{key}``.

Reconnection is the supervisor's: a lost connection raises
:class:`~gateway.errors.AdapterConnectionError` out of ``messages()`` / ``send()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.mqtt.codec import (
    STATUS_OFFLINE,
    STATUS_ONLINE,
    MqttOptions,
    message_expiry,
    publish_properties,
)
from adapters.mqtt.codec import user_properties as make_user_properties
from adapters.mqtt.properties import install as install_quick_properties
from gateway.adapter import AdapterContext, Clock, Outbound, Received, SystemClock
from gateway.errors import AdapterConnectionError, AdapterTimeoutError, DeliveryError
from gateway.metrics import INPUT_REJECTED, REGISTRY

log = structlog.get_logger(__name__)

install_quick_properties()

__all__ = ["MqttAdapter", "StatePublisher", "from_context", "state_publisher"]

PUBLISHED = REGISTRY.counter(
    "borderlink_mqtt_published_total", "MQTT messages published and acknowledged", ("adapter",)
)
RECEIVED = REGISTRY.counter(
    "borderlink_mqtt_received_total", "MQTT messages received on input topics", ("adapter",)
)
UNHEARD = REGISTRY.counter(
    "borderlink_mqtt_no_subscribers_total",
    "Publishes the broker accepted with reason code 16, no matching subscribers (MQTT 5): the"
    " delivery is recorded, nobody was listening",
    ("adapter",),
)

# MQTT 5 PUBACK/PUBREC reason codes of a refusal (section 3.4.2.1); those worth trying again.
_REFUSALS = {
    0x80: "unspecified error",
    0x83: "implementation specific error",
    0x87: "not authorized",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
}
_RETRYABLE = frozenset({0x80, 0x83, 0x91, 0x97})
_NO_SUBSCRIBERS = 0x10


class _BoundConfirmations:
    """The reason code of each publish's PUBACK (or PUBREC), which aiomqtt drops: a broker
    that refuses a publish still answers it, and that answer is not a delivery."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self._waiting: dict[int, asyncio.Future[int]] = {}
        paho_client = client._client
        self._chain: Any = paho_client.on_publish  # aiomqtt's, which wakes its own waiters
        paho_client.on_publish = self._on_publish
        # paho-mqtt ignores the reason code of a PUBREC (QoS 2) and goes on with PUBREL, so
        # a refusal at QoS 2 would end as a success: read it from the packet (MQTT 5
        # section 3.5.2: packet identifier, then the reason code when present).
        handle = getattr(paho_client, "_handle_pubrec", None)
        incoming = getattr(paho_client, "_in_packet", None)
        if handle is not None and isinstance(incoming, dict):

            def pubrec() -> Any:
                packet = bytes(paho_client._in_packet.get("packet", b""))
                if len(packet) >= 3 and packet[2] >= 0x80:
                    self._answer(int.from_bytes(packet[:2], "big"), packet[2])
                return handle()

            paho_client._handle_pubrec = pubrec  # type: ignore[method-assign]

    def expect(self, mid: int) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[mid] = future
        return future

    def _answer(self, mid: int, code: int) -> None:
        future = self._waiting.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(code)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._answer(mid, int(getattr(reason, "value", 0)))
        if self._chain is not None:
            self._chain(client, userdata, mid, reason, props)


def _tls_context(options: MqttOptions) -> ssl.SSLContext | None:
    tls = options.tls
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _forget(client: aiomqtt.Client) -> None:
    """Mark the client's disconnection error as seen (asyncio warns about unseen ones)."""
    lost = client._disconnected
    if lost.done() and not lost.cancelled():
        lost.exception()


async def _incoming(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    """The client's messages as aiomqtt's own iterator gives them, without what it does for
    each one: a task to take it from the queue and a wait on that task and on the end of the
    connection (two turns of the event loop, and its reader drained one message a turn).
    Here the messages waiting are taken at once; only an empty queue is waited on, with the
    end of the connection, which raises once what had arrived was taken."""
    queue = client._queue
    lost = client._disconnected
    while True:
        if not queue.empty():
            yield queue.get_nowait()
            continue
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait((getter, lost), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            getter.cancel()
            raise
        if getter.done():
            yield getter.result()
            continue
        getter.cancel()
        msg = "Disconnected during message iteration"
        raise aiomqtt.MqttError(msg) from lost.exception()


async def _wait_lost(name: str, client: aiomqtt.Client) -> None:
    try:
        await asyncio.shield(client._disconnected)
    except aiomqtt.MqttError as exc:
        raise AdapterConnectionError(f"mqtt {name}: connection lost: {exc}") from exc
    raise AdapterConnectionError(f"mqtt {name}: connection closed")


#: Linux's "acknowledge at once" socket option (None elsewhere).
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

#: Bytes taken from the kernel at once by :class:`_ReadBuffer`.
_READ_SIZE = 65536


class _ReadBuffer:
    """What paho-mqtt reads from its socket, taken from the kernel in large reads.

    paho asks for a packet a few bytes at a time (its type, each byte of its length, then
    its body), a system call each, and for one packet per readable event of a subscriber:
    an alert in and its copy's PUBACK took seven system calls and two turns of the event
    loop. Here one read takes whatever the kernel holds; paho's asks are served from it, and
    ``loop_read`` goes on while bytes are left (the event loop is not woken again for bytes
    already out of the socket). A short answer is what a socket may give too: paho keeps a
    part of a packet until the rest comes.
    """

    __slots__ = ("at", "client", "data", "recv", "sock")

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        self.recv = client._sock_recv
        self.sock: object = None
        self.data = b""
        self.at = 0

    def take(self, size: int) -> bytes:
        data, at = self.data, self.at
        if at >= len(data) or self.client._sock is not self.sock:
            self.sock = self.client._sock  # a new connection starts with nothing held
            self.data, self.at = b"", 0
            data = self.recv(max(size, _READ_SIZE))  # BlockingIOError when nothing is there
            if not data:
                return data  # the connection closed
            self.data, at = data, 0
        end = at + size
        self.at = end
        return data[at:end]

    def pending(self) -> bool:
        return self.at < len(self.data)


def _read_in_bulk(client: paho.Client) -> None:
    """Serve paho's reads from a :class:`_ReadBuffer` and read on while it holds bytes."""
    buffer = _ReadBuffer(client)
    client._sock_recv = buffer.take  # type: ignore[method-assign,assignment]
    read = client.loop_read

    def loop_read(max_packets: int = 1) -> MQTTErrorCode:
        while True:
            code = read(max_packets)
            if code != MQTTErrorCode.MQTT_ERR_SUCCESS or not buffer.pending():
                return code

    client.loop_read = loop_read  # type: ignore[method-assign]


def _acknowledge_at_once(client: paho.Client) -> None:
    """Have the kernel acknowledge what the broker sends at once, not after its delayed-ACK
    timer (up to 40 ms on Linux).

    A broker that holds small writes until its last one is acknowledged (Nagle's algorithm:
    Mosquitto does unless ``set_tcp_nodelay`` is on) sends the PUBACKs of a batch of
    publishes one per delayed ACK: a batch of 12 took 26 ms instead of 2. The kernel leaves
    quick-ACK mode on its own, so it is asked again after every read.
    """
    if _QUICKACK is None:
        return
    read = client.loop_read

    def loop_read(max_packets: int = 1) -> MQTTErrorCode:
        code = read(max_packets)
        sock = client.socket()
        if isinstance(sock, socket.socket):  # an SSL socket is one too
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return code

    client.loop_read = loop_read  # type: ignore[method-assign]


def _client(options: MqttOptions, *, will: aiomqtt.Will | None = None) -> aiomqtt.Client:
    properties: Properties | None = None
    kwargs: dict[str, Any] = {}
    if options.v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = options.session_expiry
        kwargs["clean_start"] = False
        protocol = aiomqtt.ProtocolVersion.V5
    else:
        kwargs["clean_session"] = False
        protocol = aiomqtt.ProtocolVersion.V311
    client = aiomqtt.Client(
        options.host,
        options.port,
        username=options.username,
        password=options.password,
        identifier=options.client_id,
        protocol=protocol,
        will=will,
        keepalive=options.keepalive,
        timeout=options.timeout,
        tls_context=_tls_context(options),
        properties=properties,
        **kwargs,
    )
    # Deliveries are pipelined on purpose (sink ``batch``); aiomqtt would warn past 10.
    client.pending_calls_threshold = 10_000
    # aiomqtt 2.x has no manual acknowledgement of its own; its paho client does (since
    # paho-mqtt 2.0). The PUBACK of an input message is sent by ``Received.ack``.
    client._client.manual_ack_set(True)
    _read_in_bulk(client._client)
    _acknowledge_at_once(client._client)
    return client


class _Packed:
    """PUBLISH properties packed by :func:`~adapters.mqtt.codec.publish_properties`, in the
    place of paho's ``Properties`` (paho asks them only for ``pack()``, when it sends and
    when it sends again after a reconnect)."""

    __slots__ = ("packed",)

    def __init__(self, packed: bytes) -> None:
        self.packed = packed

    def pack(self) -> bytes:
        return self.packed

    def __repr__(self) -> str:
        return f"_Packed({self.packed!r})"


class MqttAdapter:
    """One MQTT connection, used as a source (``messages``) or a sink (``send``)."""

    #: The daemon may have several deliveries in flight at once (QoS 1 keeps their order).
    concurrent_sends = True

    def __init__(self, name: str, options: MqttOptions, *, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self.clock: Clock = clock or SystemClock()
        self._client: aiomqtt.Client | None = None
        self._confirmations: _BoundConfirmations | None = None
        self._generation = 0
        #: Set while connected, and (for a source) once its topics are subscribed.
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()

    def door_trust(self) -> str:
        """Authenticated when the broker took our credentials (it then controls who may
        publish to our topics); anonymous otherwise."""
        return "authenticated" if self.options.username else "anonymous"

    async def __aenter__(self) -> Self:
        client = _client(self.options)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise AdapterConnectionError(
                f"mqtt {self.name}: cannot connect to {self.options.host}:{self.options.port}:"
                f" {exc}"
            ) from exc
        self._client = client
        self._generation += 1
        self.connected.set()
        log.info(
            "mqtt_connected",
            adapter=self.name,
            host=self.options.host,
            port=self.options.port,
            client_id=self.options.client_id,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        self.connected.clear()
        self.subscribed.clear()
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError, asyncio.TimeoutError):
                await client.__aexit__(None, None, None)
            _forget(client)
            log.info("mqtt_disconnected", adapter=self.name)

    async def wait_closed(self) -> None:
        """Return (raising AdapterConnectionError) when the connection is lost."""
        await _wait_lost(self.name, self._require())

    def _require(self) -> aiomqtt.Client:
        if self._client is None:
            raise AdapterConnectionError(f"mqtt {self.name}: not connected")
        return self._client

    # -- source -----------------------------------------------------------------------------

    async def messages(self) -> AsyncIterator[Received]:
        client = self._require()
        generation = self._generation
        try:
            for topic in self.options.subscriptions:
                await client.subscribe(topic, qos=1)
            self.subscribed.set()
            log.info("mqtt_subscribed", adapter=self.name, topics=list(self.options.subscriptions))
            async for message in _incoming(client):
                RECEIVED.inc(adapter=self.name)
                payload = message.payload
                raw = payload if isinstance(payload, bytes) else str(payload or "").encode()
                ack = self._acker(message.mid, message.qos, generation)
                if len(raw) > self.options.max_payload:
                    # Refused, counted and acknowledged: the broker must not send it again.
                    INPUT_REJECTED.inc(component="mqtt", reason="too_large")
                    log.warning(
                        "mqtt_message_refused",
                        adapter=self.name,
                        topic=str(message.topic),
                        size=len(raw),
                        reason=f"larger than max_payload ({self.options.max_payload} bytes)",
                    )
                    await ack()
                    continue
                yield Received(
                    raw=raw,
                    source=self.name,
                    received_at=self.clock.now(),
                    channel=str(message.topic),
                    ack=ack,
                    kind=self.options.kind,
                )
        except aiomqtt.MqttError as exc:
            raise AdapterConnectionError(f"mqtt {self.name}: connection lost: {exc}") from exc

    def _acker(self, mid: int, qos: int, generation: int) -> Any:
        async def ack() -> None:
            client = self._client
            if qos == 0 or client is None or generation != self._generation:
                return  # a new session: the broker sends the message again
            client._client.ack(mid, qos)

        return ack

    # -- sink -------------------------------------------------------------------------------

    def _packets(self, item: Outbound) -> list[tuple[str, bytes, _Packed | None]]:
        """(topic, payload, properties) of each part of a delivery; DeliveryError (final)
        for one that cannot be published: expired, or a property past MQTT's limits."""
        expiry = message_expiry(item.expires, self.clock.now())
        if expiry == 0:
            raise DeliveryError(
                f"mqtt {self.name}: the alert expired before it was published", retryable=False
            )
        values = {"prefix": self.options.prefix, "sink": self.name, **item.attributes}
        topic = self.options.topic.render(values)
        total = len(item.parts)
        packets: list[tuple[str, bytes, _Packed | None]] = []
        for index, part in enumerate(item.parts):
            properties: _Packed | None = None
            if self.options.v5:
                try:
                    packed = publish_properties(
                        expiry=expiry,
                        content_type=item.content_type,
                        user=make_user_properties(item.attributes, index, total),
                    )
                except ValueError as exc:
                    raise DeliveryError(
                        f"mqtt {self.name}: cannot publish {topic}: {exc}", retryable=False
                    ) from exc
                properties = _Packed(packed)
            packets.append((topic, part, properties))
        return packets

    def _start(
        self, client: aiomqtt.Client, topic: str, part: bytes, properties: _Packed | None
    ) -> asyncio.Future[int]:
        """Hand one publish to paho; the future of the broker's answer (its reason code)."""
        confirmations = self._confirmations
        if confirmations is None or confirmations.client is not client:
            confirmations = self._confirmations = _BoundConfirmations(client)
        info = client._client.publish(
            topic,
            part,
            self.options.qos,
            self.options.retain,
            properties,  # type: ignore[arg-type]
        )
        if info.rc in (paho.MQTT_ERR_NO_CONN, paho.MQTT_ERR_CONN_LOST):
            raise AdapterConnectionError(f"mqtt {self.name}: not connected (code {info.rc})")
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise DeliveryError(f"mqtt {self.name}: publish refused: code {info.rc}")
        return confirmations.expect(info.mid)

    def _confirmed(self, topic: str, part: bytes, answer: asyncio.Future[int]) -> None:
        """Judge a publish's answer (DeliveryError for a refusal); count it when taken."""
        self._judge(topic, answer.result())
        PUBLISHED.inc(adapter=self.name)
        if self.options.log_wire:
            log.debug("mqtt_published", adapter=self.name, topic=topic, size=len(part))

    async def send(self, item: Outbound) -> None:
        """Publish each part in turn, each once the broker took the one before."""
        client = self._require()
        for topic, part, properties in self._packets(item):
            answer = self._start(client, topic, part, properties)
            await self._answered(client, [answer], self.options.timeout)
            if not answer.done():
                answer.cancel()
                raise self._unanswered(client, topic, self.options.timeout)
            self._confirmed(topic, part, answer)

    async def send_batch(
        self,
        items: Sequence[Outbound],
        timeout: float,  # noqa: ASYNC109 - a bound for the whole batch, not a cancellation
    ) -> list[BaseException | None]:
        """Publish every part of every delivery, then wait once for all the answers (QoS
        keeps their order on the connection). A delivery is confirmed when all its parts
        are; a part refused fails its delivery (sent again whole, the parts that were taken
        too: a consumer drops them by delivery id and part). A lost connection fails what
        was not confirmed before it; no answer within ``timeout`` (at most the adapter's
        own) fails what is still unanswered."""
        client = self._require()
        outcomes: list[BaseException | None] = [None] * len(items)
        started: list[tuple[int, str, bytes, asyncio.Future[int]]] = []
        for number, item in enumerate(items):
            try:
                for topic, part, properties in self._packets(item):
                    answer = self._start(client, topic, part, properties)
                    started.append((number, topic, part, answer))
            except DeliveryError as exc:
                outcomes[number] = exc
            except AdapterConnectionError as exc:
                for later in range(number, len(items)):
                    outcomes[later] = exc
                break
        within = min(timeout, self.options.timeout)
        await self._answered(client, [a for *_, a in started], within)
        for number, topic, part, answer in started:
            if outcomes[number] is not None:
                answer.cancel()
            elif answer.done():
                try:
                    self._confirmed(topic, part, answer)
                except DeliveryError as exc:
                    outcomes[number] = exc
            else:
                answer.cancel()
                outcomes[number] = self._unanswered(client, topic, within)
        return outcomes

    async def _answered(
        self, client: aiomqtt.Client, answers: Sequence[asyncio.Future[int]], within: float
    ) -> None:
        """Wait until every answer came, the connection dropped or ``within`` seconds ran
        out, whichever is first.

        aiomqtt leaves a publish waiting for its PUBACK until the timeout even when the
        connection is gone, and drops the PUBACK's reason code; the daemon must learn of a
        lost link at once to reconnect, and a refusal is not a delivery.
        """
        open_answers = [a for a in answers if not a.done()]
        if not open_answers:
            return
        everything: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        left = len(open_answers)

        def one_more(_: asyncio.Future[int]) -> None:
            nonlocal left
            left -= 1
            if left == 0 and not everything.done():
                everything.set_result(None)

        for answer in open_answers:
            answer.add_done_callback(one_more)
        lost: asyncio.Future[None] = client._disconnected
        await asyncio.wait({everything, lost}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        everything.cancel()

    def _unanswered(self, client: aiomqtt.Client, topic: str, within: float) -> BaseException:
        """The error of a publish left without an answer."""
        lost: asyncio.Future[None] = client._disconnected
        if lost.done():
            reason = lost.exception() if not lost.cancelled() else None  # marks it retrieved
            return AdapterConnectionError(
                f"mqtt {self.name}: connection lost before PUBACK ({reason})"
            )
        return AdapterTimeoutError(f"mqtt {self.name}: no PUBACK for {topic} within {within} s")

    def _judge(self, topic: str, code: int) -> None:
        if code == _NO_SUBSCRIBERS:
            UNHEARD.inc(adapter=self.name)
            log.info("mqtt_no_subscribers", adapter=self.name, topic=topic)
        elif code >= 0x80:
            what = _REFUSALS.get(code, "refused")
            raise DeliveryError(
                f"mqtt {self.name}: the broker refused the publish to {topic}: {what}"
                f" (reason code 0x{code:02x})",
                retryable=code in _RETRYABLE,
            )


class StatePublisher:
    """Retained ``{prefix}/status`` and ``{prefix}/active/{key}`` on the gateway's connection.

    ``online`` is published on connect; the broker publishes the last will ``offline`` if the
    connection dies, and ``offline`` is published on a clean stop.
    """

    def __init__(self, name: str, options: MqttOptions) -> None:
        self.name = name
        self.options = options
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Self:
        will = aiomqtt.Will(self.options.status_topic, STATUS_OFFLINE, qos=1, retain=True)
        client = _client(self.options, will=will)
        try:
            await client.__aenter__()
            await client.publish(self.options.status_topic, STATUS_ONLINE, qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            raise AdapterConnectionError(f"mqtt {self.name}: cannot connect: {exc}") from exc
        self._client = client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError, OSError, asyncio.TimeoutError):
            await client.publish(self.options.status_topic, STATUS_OFFLINE, qos=1, retain=True)
        with contextlib.suppress(aiomqtt.MqttError, OSError, asyncio.TimeoutError):
            await client.__aexit__(None, None, None)
        _forget(client)

    async def set_active(self, key_level: str, payload: bytes | None) -> None:
        """Publish (retained) the summary of an active alert; ``None`` clears it."""
        if self._client is None:
            raise AdapterConnectionError(f"mqtt {self.name}: not connected")
        try:
            await self._client.publish(
                self.options.active_topic(key_level), payload or b"", qos=1, retain=True
            )
        except aiomqtt.MqttError as exc:
            raise AdapterConnectionError(f"mqtt {self.name}: {exc}") from exc

    async def wait_closed(self) -> None:
        """Return when the connection is lost (raises AdapterConnectionError)."""
        if self._client is None:
            raise AdapterConnectionError(f"mqtt {self.name}: not connected")
        await _wait_lost(self.name, self._client)


def _base_dir(ctx: AdapterContext) -> Path | None:
    return Path(ctx.config_path).parent if ctx.config_path else None


def from_context(ctx: AdapterContext) -> MqttAdapter:
    """The registry factory: ``type = "mqtt"`` (source or sink)."""
    options = MqttOptions.from_mapping(ctx.options, name=ctx.name, base_dir=_base_dir(ctx))
    return MqttAdapter(ctx.name, options, clock=ctx.clock)


def state_publisher(name: str, options: Mapping[str, Any]) -> StatePublisher:
    """The daemon's retained-state publisher, built from the ``[mqtt]`` connection options."""
    return StatePublisher(name, MqttOptions.from_mapping(options, name=name))
