"""paho's MQTT 5 properties, decoded with shared tables (adapters/mqtt/properties.py): the
same values, the same refusals, and paho's decoder building them once the adapter loaded."""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import adapters.mqtt.adapter  # noqa: F401 -- installs QuickProperties
from adapters.mqtt.properties import QuickProperties


def _packed(packet_type: int, values: dict[str, Any]) -> bytes:
    props = Properties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return bytes(props.pack())  # type: ignore[no-untyped-call]


# One of each property type (MQTT 5, 2.2.2.2): byte, two- and four-byte integers, variable
# byte integer, binary data, UTF-8 string and string pairs (repeatable).
PUBLISH_VALUES: dict[str, Any] = {
    "PayloadFormatIndicator": 1,
    "MessageExpiryInterval": 3600,
    "ContentType": "application/cap+xml",
    "ResponseTopic": "reply/here",
    "CorrelationData": b"\x00\x01binary",
    "SubscriptionIdentifier": [7, 300],
    "TopicAlias": 12,
    "UserProperty": [("borderlink-delivery-id", "41"), ("borderlink-alert-key", "a,b,c")],
}
CONNACK_VALUES: dict[str, Any] = {
    "SessionExpiryInterval": 120,
    "ReceiveMaximum": 20,
    "MaximumQoS": 1,
    "RetainAvailable": 0,
    "AssignedClientIdentifier": "borderlink-1",
    "TopicAliasMaximum": 10,
    "ReasonString": "fine",
    "ServerKeepAlive": 30,
    "MaximumPacketSize": 262144,
}


@pytest.mark.parametrize(
    ("packet_type", "values"),
    [
        (PacketTypes.PUBLISH, PUBLISH_VALUES),
        (PacketTypes.CONNACK, CONNACK_VALUES),
        (PacketTypes.PUBACK, {"ReasonString": "no subscribers", "UserProperty": [("a", "b")]}),
        (PacketTypes.PUBLISH, {}),
    ],
    ids=["publish", "connack", "puback", "empty"],
)
def test_decodes_as_paho_does(packet_type: int, values: dict[str, Any]) -> None:
    buffer = _packed(packet_type, values) + b"payload after the properties"
    theirs = Properties(packet_type)  # type: ignore[no-untyped-call]
    ours: Any = QuickProperties(packet_type)
    _, their_length = theirs.unpack(buffer)  # type: ignore[no-untyped-call]
    _, our_length = ours.unpack(buffer)
    assert our_length == their_length
    assert ours.json() == theirs.json()  # type: ignore[no-untyped-call]
    assert str(ours) == str(theirs)
    assert ours.pack() == theirs.pack()  # type: ignore[no-untyped-call]
    for name, value in values.items():
        assert getattr(ours, name) == value


def test_a_second_unpack_forgets_the_first() -> None:
    ours: Any = QuickProperties(PacketTypes.PUBLISH)
    ours.unpack(_packed(PacketTypes.PUBLISH, {"ContentType": "text/plain"}))
    ours.unpack(_packed(PacketTypes.PUBLISH, {"TopicAlias": 3}))
    assert ours.json() == {"TopicAlias": 3}
    assert ours.isEmpty() is False
    ours.clear()
    assert ours.isEmpty() is True
    assert ours.packetType == PacketTypes.PUBLISH


@pytest.mark.parametrize(
    ("packet_type", "buffer", "message"),
    [
        # Content Type twice: only the user property and subscription identifier repeat.
        (PacketTypes.PUBLISH, b"\x08\x03\x00\x01a\x03\x00\x01b", "must not exist more than once"),
        # Session Expiry Interval does not belong to a PUBLISH.
        (PacketTypes.PUBLISH, b"\x05\x11\x00\x00\x00\x01", "does not apply to packet type"),
    ],
    ids=["repeated", "wrong-packet"],
)
def test_refuses_what_paho_refuses(packet_type: int, buffer: bytes, message: str) -> None:
    for cls in (Properties, QuickProperties):
        props: Any = cls(packet_type)
        with pytest.raises(MQTTException, match=message):
            props.unpack(buffer)


def test_setting_keeps_pahos_checks() -> None:
    ours: Any = QuickProperties(PacketTypes.PUBLISH)
    with pytest.raises(MQTTException, match="Property name must be one of"):
        ours.NoSuchProperty = 1
    with pytest.raises(MQTTException, match="must be 0 or 1"):
        ours.PayloadFormatIndicator = 2
    ours.UserProperty = ("k", "v")
    ours.UserProperty = ("k", "w")
    assert ours.UserProperty == [("k", "v"), ("k", "w")]


def test_pahos_decoder_builds_them() -> None:
    topic = b"borderlink/in/cap"
    body = len(topic).to_bytes(2, "big") + topic + b"\x00\x07" + b"\x00" + b"<alert/>"
    packet = _packet.decode_publish(0x32, body, MQTTProtocolVersion.MQTTv5)
    assert type(packet.properties) is QuickProperties
    assert packet.payload == b"<alert/>"
    puback = _packet.decode_puback(0x40, b"\x00\x07", MQTTProtocolVersion.MQTTv5)
    assert type(puback.properties) is QuickProperties
