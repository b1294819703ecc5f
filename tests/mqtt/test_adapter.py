"""The MQTT adapter on a real broker: QoS of what it publishes, and what it takes in."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from adapters.mqtt.adapter import PUBLISHED, UNHEARD, MqttAdapter
from adapters.mqtt.codec import MqttOptions
from cap_schemas.model import AlertKey
from gateway.adapter import Outbound
from gateway.errors import (
    AdapterConnectionError,
    AdapterTimeoutError,
    ConfigError,
    DeliveryError,
)
from gateway.ledger import EntryState
from gateway.metrics import INPUT_REJECTED
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
)
from tests.helpers import Broker, run_mosquitto


def _sink(broker: Broker, **options: object) -> MqttAdapter:
    merged = {"url": broker.url, "topic": "out/{key}", **options}
    return MqttAdapter("sink", MqttOptions.from_mapping(merged, name="sink"))


async def _reading(source: MqttAdapter, got: list[bytes]) -> asyncio.Task[None]:
    """A task taking the source's messages into ``got``, acknowledging each; started once
    the source subscribed."""

    async def read() -> None:
        async for item in source.messages():
            got.append(item.raw)
            if item.ack is not None:
                await item.ack()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(source.subscribed.wait(), 10)
    return reader


class TestQos:
    """A sink publishes with QoS 1, or 2 when it asks; other values are refused."""

    @pytest.mark.parametrize("qos", [1, 2])
    async def test_sink_qos(self, mosquitto: Broker, qos: int) -> None:
        key = AlertKey("s@example.org", f"qos-{qos}", "2026-12-04T00:00:00-00:00")
        item = Outbound(
            key=key,
            sink="sink",
            parts=(b"<alert/>",),
            content_type="application/cap+xml",
            attributes={"key": f"k{qos}", "delivery_id": f"d-{qos}"},
        )
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as sub:
            await sub.subscribe("out/#", qos=2)
            async with _sink(mosquitto, qos=qos) as sink:
                await sink.send(item)
            message = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
        assert message.qos == qos
        assert message.payload == b"<alert/>"
        props = dict(message.properties.UserProperty)  # type: ignore[union-attr]
        assert props["borderlink-delivery-id"] == f"d-{qos}"

    @pytest.mark.parametrize("value", [0, 3, "2", True])
    def test_bad_qos(self, value: object) -> None:
        with pytest.raises(ConfigError, match=r"qos: .*allowed: 1 .* or 2"):
            MqttOptions.from_mapping({"url": "mqtt://127.0.0.1:1", "qos": value}, name="s")


class TestBounds:
    """A message larger than the source's max_payload is refused, counted and acknowledged;
    the next one is taken."""

    async def test_oversize_message(self, mosquitto: Broker) -> None:
        options = {"url": mosquitto.url, "topics": ["in/#"], "max_payload": 1024}
        source = MqttAdapter("in", MqttOptions.from_mapping(options, name="in"))
        before = INPUT_REJECTED.value(component="mqtt", reason="too_large")
        async with source:
            got: list[bytes] = []
            reader = await _reading(source, got)
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
                await pub.publish("in/x", b"x" * 2048, qos=1)
                await pub.publish("in/x", b"small", qos=1)

            async def second() -> bool:
                return got == [b"small"]

            await poll_until(second)
            reader.cancel()
        assert INPUT_REJECTED.value(component="mqtt", reason="too_large") == before + 1


class TestBulkReads:
    """What the broker sent is taken from the kernel in large reads and handed to paho from
    there: a burst arrives whole and in order, a message larger than one read included,
    with far fewer socket reads than packets."""

    async def test_burst_with_a_large_message(self, mosquitto: Broker) -> None:
        options = {"url": mosquitto.url, "topics": ["in/#"], "max_payload": 1_000_000}
        source = MqttAdapter("in", MqttOptions.from_mapping(options, name="in"))
        bodies = [f"<alert>{n:04d}</alert>".encode() * 40 for n in range(200)]
        bodies[120] = bytes(range(256)) * 1200  # 300 KiB: several reads of the kernel's
        async with source:
            buffer = source._client._client._sock_recv.__self__  # type: ignore[union-attr]
            reads = 0
            recv = buffer.recv

            def counting(size: int) -> bytes:
                nonlocal reads
                reads += 1
                return recv(size)  # type: ignore[no-any-return]

            buffer.recv = counting
            got: list[bytes] = []
            reader = await _reading(source, got)
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
                await asyncio.gather(*(pub.publish("in/x", b, qos=1) for b in bodies))

            async def everything() -> bool:
                return len(got) >= len(bodies)

            await poll_until(everything, within=20)
            reader.cancel()
        assert got == bodies
        # paho alone asks the socket three to four times per packet.
        assert reads < len(bodies)


class TestSharedSubscription:
    """Two gateways' inputs in one shared group on an MQTT 5 broker: each message is handled
    by exactly one of them."""

    async def test_each_message_goes_to_one_member(self, mosquitto: Broker) -> None:
        def member(name: str) -> MqttAdapter:
            options = {"url": mosquitto.url, "topics": ["in/cap"], "shared_group": "eoc",
                       "client_id": f"gw-{name}"}  # fmt: skip
            return MqttAdapter("mqtt", MqttOptions.from_mapping(options, name="mqtt"))

        first, second = member("a"), member("b")
        got: dict[str, list[bytes]] = {"a": [], "b": []}

        async def read(name: str, source: MqttAdapter) -> None:
            async for item in source.messages():
                got[name].append(item.raw)
                if item.ack is not None:
                    await item.ack()

        async with first, second:
            readers = [
                asyncio.create_task(read("a", first)),
                asyncio.create_task(read("b", second)),
            ]
            await asyncio.wait_for(first.subscribed.wait(), 10)
            await asyncio.wait_for(second.subscribed.wait(), 10)
            sent = [f"alert {n}".encode() for n in range(30)]
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
                for body in sent:
                    await pub.publish("in/cap", body, qos=1)

            async def all_taken() -> bool:
                return len(got["a"]) + len(got["b"]) >= len(sent)

            await poll_until(all_taken)
            for reader in readers:
                reader.cancel()
        assert sorted(got["a"] + got["b"]) == sorted(sent)  # each once, none twice
        assert got["a"]
        assert got["b"]

    def test_shared_groups_need_mqtt5_and_a_plain_name(self) -> None:
        with pytest.raises(ConfigError, match="shared subscriptions need protocol = 5"):
            MqttOptions.from_mapping(
                {"url": "mqtt://127.0.0.1:1", "shared_group": "eoc", "protocol": "3.1.1"}, name="s"
            )
        with pytest.raises(ConfigError, match="shared_group: 1-64 letters"):
            MqttOptions.from_mapping({"url": "mqtt://127.0.0.1:1", "shared_group": "a/b"}, name="s")
        options = MqttOptions.from_mapping(
            {"url": "mqtt://127.0.0.1:1", "shared_group": "eoc", "topics": ["p/in/#"]}, name="s"
        )
        assert options.subscriptions == ("$share/eoc/p/in/#",)


@pytest.fixture
def refusing_mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto whose ACL lets anyone write only under ``allowed/`` and ``borderlink/``."""
    acl = tmp_path / "acl"
    acl.write_text(
        "topic write allowed/#\ntopic write borderlink/#\ntopic read #\n", encoding="utf-8"
    )
    with run_mosquitto(extra=f"acl_file {acl}\n") as broker:
        yield broker


def _item(n: str) -> Outbound:
    return Outbound(
        key=AlertKey("s@example.org", f"answer-{n}", "2026-12-04T00:00:00-00:00"),
        sink="sink",
        parts=(b"<alert/>",),
        content_type="application/cap+xml",
        attributes={"key": f"k-{n}", "delivery_id": f"d-{n}"},
    )


class TestBrokerAnswers:
    """An MQTT 5 broker answers every publish; an answer of 0x80 or more is a refusal and
    not a delivery, and 16 (no matching subscribers) is a delivery nobody heard."""

    @pytest.mark.parametrize("qos", [1, 2])
    async def test_a_refused_publish_is_not_delivered(
        self, refusing_mosquitto: Broker, qos: int
    ) -> None:
        async with _sink(refusing_mosquitto, topic="denied/{key}", qos=qos) as sink:
            with pytest.raises(DeliveryError, match=r"not authorized \(reason code 0x87\)") as e:
                await sink.send(_item(f"denied-{qos}"))
        assert not e.value.retryable
        assert "denied/k-denied" in str(e.value)

    async def test_a_property_past_the_mqtt_limit_is_a_final_failure(
        self, mosquitto: Broker
    ) -> None:
        item = _item("long")
        item = Outbound(
            key=item.key,
            sink=item.sink,
            parts=item.parts,
            content_type=item.content_type,
            attributes={**item.attributes, "alert_key": "k" * 70_000},
        )
        async with _sink(mosquitto) as sink:
            with pytest.raises(DeliveryError, match="at most 65,535 bytes") as e:
                await sink.send(item)
            await sink.send(_item("after"))  # the connection is unharmed
        assert not e.value.retryable

    async def test_nobody_listening_is_counted(self, refusing_mosquitto: Broker) -> None:
        before = UNHEARD.value(adapter="sink")
        async with _sink(refusing_mosquitto, topic="allowed/{key}") as sink:
            await sink.send(_item("unheard"))
        assert UNHEARD.value(adapter="sink") == before + 1

    async def test_the_daemon_records_the_refusal(
        self, refusing_mosquitto: Broker, tmp_path: Path
    ) -> None:
        """Through the daemon: the entry ends failed with the broker's reason, never
        delivered."""
        sinks = (
            '[[sink]]\nname = "denied"\ntype = "mqtt"\ntopic = "denied/{key}"\n'
            "retry_initial = 0.05\nretry_max = 0.5\n"
        )
        routes = '[[route]]\nname = "all"\nsinks = ["denied"]\n'
        config = load(daemon_toml(tmp_path, refusing_mosquitto.url, sinks=sinks, routes=routes))
        body = CapFactory()(event="Refused")
        key = AlertKey(*CapFactory.key_of(body).split(","))
        async with running_daemon(config) as daemon:
            await publish_all(refusing_mosquitto, [body])

            async def failed() -> bool:
                found = daemon.ledger.deliveries(key)
                return bool(found) and found[0].state is EntryState.FAILED

            await poll_until(failed, within=15)
            (entry,) = daemon.ledger.deliveries(key)
        assert entry.reason.endswith("not authorized (reason code 0x87)"), entry.reason
        assert entry.attempts == 1

    async def test_a_refusal_in_a_batch_fails_that_delivery_alone(
        self, refusing_mosquitto: Broker, tmp_path: Path
    ) -> None:
        """Through the daemon, deliveries sent as a batch: the refused one fails, the
        others are delivered once each."""
        sinks = '[[sink]]\nname = "out"\ntype = "mqtt"\ntopic = "{event}/{key}"\nbatch = 32\n'
        routes = '[[route]]\nname = "all"\nsinks = ["out"]\n'
        config = load(daemon_toml(tmp_path, refusing_mosquitto.url, sinks=sinks, routes=routes))
        factory = CapFactory()
        bodies = [factory(event=e) for e in ("allowed", "denied", "allowed", "allowed")]
        keys = [AlertKey(*CapFactory.key_of(b).split(",")) for b in bodies]
        async with running_daemon(config) as daemon:
            await publish_all(refusing_mosquitto, bodies)

            async def settled() -> bool:
                found = [daemon.ledger.deliveries(k) for k in keys]
                return all(f and f[0].terminal for f in found)

            await poll_until(settled, within=15)
            entries = [daemon.ledger.deliveries(k)[0] for k in keys]
        states = [e.state for e in entries]
        assert states == [
            EntryState.DELIVERED,
            EntryState.FAILED,
            EntryState.DELIVERED,
            EntryState.DELIVERED,
        ]
        assert [e.attempts for e in entries] == [1, 1, 1, 1]


class TestQuickAck:
    """What the broker sends is acknowledged at once. Mosquitto by default holds a small
    write until its last one is acknowledged (Nagle's algorithm): with the kernel's delayed
    ACK, the PUBACKs of a batch of publishes came one per delayed-ACK timer (the daemon
    bench's deliveries took 26 ms per batch of 12 instead of 2)."""

    async def test_quick_ack_is_asked_again_after_every_read(
        self, mosquitto: Broker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        asked: list[int] = []
        setsockopt = socket.socket.setsockopt

        def recording(sock: socket.socket, level: int, option: int, value: Any) -> None:
            if (level, option) == (socket.IPPROTO_TCP, socket.TCP_QUICKACK):
                asked.append(value)
            setsockopt(sock, level, option, value)

        monkeypatch.setattr(socket.socket, "setsockopt", recording)
        reads = 0
        async with _sink(mosquitto) as sink:
            client = sink._client._client  # type: ignore[union-attr]
            read = client.loop_read

            def counting(max_packets: int = 1) -> Any:
                nonlocal reads
                reads += 1
                return read(max_packets)

            client.loop_read = counting
            asked.clear()
            await asyncio.gather(*(sink.send(_item(f"quick-{n}")) for n in range(20)))
        assert reads >= 1
        assert asked == [1] * reads


async def _packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One MQTT control packet: its packet type and its body."""
    kind = (await reader.readexactly(1))[0] >> 4
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return kind, await reader.readexactly(length)


@contextlib.asynccontextmanager
async def _terse_broker(answers: int, *, hang_up: bool) -> AsyncIterator[str]:
    """An MQTT 5 server that accepts the connection, answers the first ``answers`` QoS 1
    publishes with a PUBACK, and then ignores the others or (``hang_up``) closes the
    connection at the next one."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await _packet(reader)  # CONNECT
            writer.write(b"\x20\x03\x00\x00\x00")  # CONNACK: accepted, no properties
            while True:
                kind, body = await _packet(reader)
                if kind == 3:  # PUBLISH: topic, then the packet identifier
                    start = 2 + int.from_bytes(body[:2], "big")
                    if answered < answers:
                        writer.write(b"\x40\x02" + body[start : start + 2])
                        answered += 1
                    elif hang_up:
                        break
                elif kind == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    break
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"mqtt://127.0.0.1:{server.sockets[0].getsockname()[1]}"


class TestBatchSends:
    """A sink sends a batch of deliveries at once and waits once for all the answers; each
    delivery gets its own outcome."""

    async def test_every_delivery_of_a_batch_is_published_and_confirmed(
        self, mosquitto: Broker
    ) -> None:
        before = PUBLISHED.value(adapter="sink")
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as sub:
            await sub.subscribe("out/#", qos=1)
            async with _sink(mosquitto) as sink:
                outcomes = await sink.send_batch([_item(f"b{n}") for n in range(20)], 10)
            ids = []
            async with asyncio.timeout(10):
                async for message in sub.messages:
                    ids.append(dict(message.properties.UserProperty)["borderlink-delivery-id"])  # type: ignore[union-attr]
                    if len(ids) == 20:
                        break
        assert outcomes == [None] * 20
        assert ids == [f"d-b{n}" for n in range(20)]  # in order
        assert PUBLISHED.value(adapter="sink") == before + 20

    async def test_a_refused_or_expired_delivery_fails_alone(
        self, refusing_mosquitto: Broker
    ) -> None:
        def item(n: str, place: str, expires: datetime | None = None) -> Outbound:
            base = _item(n)
            return Outbound(
                key=base.key,
                sink="sink",
                parts=base.parts,
                content_type=base.content_type,
                attributes={**base.attributes, "event": place},
                expires=expires,
            )

        gone = datetime.now(UTC) - timedelta(minutes=1)
        items = [item("1", "allowed"), item("2", "denied"), item("3", "allowed", gone)]
        items.append(item("4", "allowed"))
        async with _sink(refusing_mosquitto, topic="{event}/{key}") as sink:
            first, refused, expired, last = await sink.send_batch(items, 10)
        assert (first, last) == (None, None)
        assert isinstance(refused, DeliveryError)
        assert "not authorized (reason code 0x87)" in str(refused)
        assert not refused.retryable
        assert isinstance(expired, DeliveryError)
        assert "expired before it was published" in str(expired)

    @pytest.mark.parametrize(
        ("answers", "hang_up", "within", "error", "message"),
        [
            (2, True, 10, AdapterConnectionError, "connection lost before PUBACK"),
            (1, False, 0.5, AdapterTimeoutError, "no PUBACK for o/k-n{first} within 0.5 s"),
        ],
        ids=["connection-lost", "no-answer-in-time"],
    )
    async def test_what_was_not_answered_fails_alone(
        self, answers: int, hang_up: bool, within: float, error: type, message: str
    ) -> None:
        """A connection lost, or no answer in time: the deliveries answered before it are
        confirmed, the others fail with the link's error."""
        async with _terse_broker(answers, hang_up=hang_up) as url:
            options = MqttOptions.from_mapping({"url": url, "topic": "o/{key}"}, name="sink")
            async with MqttAdapter("sink", options) as sink:
                outcomes = await sink.send_batch([_item(f"n{n}") for n in range(5)], within)
        assert outcomes[:answers] == [None] * answers
        assert all(isinstance(o, error) for o in outcomes[answers:]), outcomes
        assert message.format(first=answers) in str(outcomes[answers])
