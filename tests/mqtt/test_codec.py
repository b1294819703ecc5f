"""The MQTT adapter's sans-IO half (adapters/mqtt/codec.py): options, topics, properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.mqtt.codec import (
    DELIVERY_ID_PROPERTY,
    MqttOptions,
    TopicTemplate,
    message_expiry,
    publish_properties,
    safe_level,
    user_properties,
)
from gateway.errors import ConfigError

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class TestOptions:
    """Options become a connection; every bad one is named by its key path."""

    def test_defaults_and_url(self) -> None:
        o = MqttOptions.from_mapping({}, name="bus")
        assert (o.host, o.port, o.tls, o.protocol, o.qos) == ("127.0.0.1", 1883, None, "5", 1)
        assert o.client_id == "borderlink-bus"
        assert o.topics == ("borderlink/in/cap",)
        secure = MqttOptions.from_mapping({"url": "mqtts://broker.example:9883"}, name="bus")
        assert (secure.host, secure.port) == ("broker.example", 9883)
        assert secure.tls is not None  # mqtts implies TLS with the system's anchors

    def test_shared_subscriptions(self) -> None:
        o = MqttOptions.from_mapping(
            {"topics": ["a/#", "b"], "shared_group": "gw"}, name="bus"
        )
        assert o.subscriptions == ("$share/gw/a/#", "$share/gw/b")

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"url": "http://x"}, r'^sink "bus"\.url: .* must be mqtt://'),
            ({"url": "mqtt://x:99999"}, r'^sink "bus"\.url: .* has a bad port'),
            ({"protocol": "4"}, r"^sink \"bus\"\.protocol: '4' is not allowed; allowed: 5,"),
            ({"kind": "xml"}, r'^sink "bus"\.kind: '),
            ({"shared_group": "a b"}, r'^sink "bus"\.shared_group: 1-64'),
            ({"shared_group": "g", "protocol": "3.1.1"}, r"shared subscriptions need protocol = 5"),
            ({"keepalive": 2}, r'^sink "bus"\.keepalive: must be at least 5, got 2'),
            ({"tls": {"ca": "x"}}, r'^sink "bus"\.tls: unknown key\(s\) ca; allowed: '),
            ({"tls": {"ca_file": 1}}, r'^sink "bus"\.tls\.ca_file: must be a string'),
            ({"topic": "a/{nope}"}, r"unknown placeholder \{nope\}"),
            ({"colour": 1}, r'^sink "bus": unknown key\(s\) colour; allowed: client_id'),
        ],
    )
    def test_errors_name_the_key(self, options: dict[str, object], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            MqttOptions.from_mapping(options, name="bus")

    def test_password_from_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "pw").write_text("s3cret\n", encoding="utf-8")
        o = MqttOptions.from_mapping({"password_file": "pw"}, name="bus", base_dir=tmp_path)
        assert o.password == "s3cret"


class TestTopics:
    """Placeholders are checked once and each value is one safe topic level."""

    def test_render_escapes_levels(self) -> None:
        t = TopicTemplate.parse("alerts/{country}/{key}", where="topic")
        assert t.render({"country": "CA", "key": "a/b+c#d e"}) == "alerts/CA/a%2Fb%2Bc%23d%20e"
        assert safe_level("") == "_"

    @pytest.mark.parametrize("text", ["", "/abs", "a/+/b", "a/#", "a\x00"])
    def test_bad_topics(self, text: str) -> None:
        with pytest.raises(ConfigError, match="must be non-empty"):
            TopicTemplate.parse(text, where="topic")


class TestProperties:
    """What a consumer needs to drop repeats and to let expired alerts lapse."""

    def test_message_expiry(self) -> None:
        assert message_expiry(None, NOW) is None
        assert message_expiry(NOW + timedelta(seconds=90.7), NOW) == 90
        assert message_expiry(NOW - timedelta(seconds=5), NOW) == 0

    def test_user_properties_name_delivery_and_part(self) -> None:
        one = dict(user_properties({"delivery_id": "d1", "alert_key": "k"}, 0, 1))
        assert one[DELIVERY_ID_PROPERTY] == "d1"
        assert "borderlink-part" not in one
        two = dict(user_properties({"delivery_id": "d1"}, 1, 3))
        assert two["borderlink-part"] == "2/3"

    @pytest.mark.parametrize(
        ("expiry", "content_type", "user"),
        [
            (None, "application/cap+xml", []),
            (0, "text/plain; charset=utf-8", [("borderlink-delivery-id", "d-1")]),
            (2**32 - 1, "application/cap+xml", [("a", ""), ("é", "ÉTÉ ✓"), ("a", "twice")]),
            (90, "x" * 200, [("k" * 130, "v" * 300)]),  # lengths past one byte each
        ],
    )
    def test_packed_as_paho_packs_them(
        self, expiry: int | None, content_type: str, user: list[tuple[str, str]]
    ) -> None:
        """Byte for byte what paho's own Properties make (the referee)."""
        paho = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if expiry is not None:
            paho.MessageExpiryInterval = expiry
        paho.ContentType = content_type
        if user:
            paho.UserProperty = user
        ours = publish_properties(expiry=expiry, content_type=content_type, user=user)
        assert ours == paho.pack()  # type: ignore[no-untyped-call]
        decoded = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        decoded.unpack(ours)  # type: ignore[no-untyped-call]
        assert decoded.ContentType == content_type
        assert getattr(decoded, "UserProperty", []) == user

    def test_a_string_past_the_mqtt_limit_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at most 65,535 bytes, not 65536"):
            publish_properties(expiry=None, content_type="x" * 65536, user=[])
