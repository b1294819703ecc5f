"""The embedded broker's doors: accounts, ACL, TLS, and where it may listen."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.mqtt.broker import (
    OPERATOR_USER,
    BrokerAccess,
    embedded_broker,
    read_users,
    topic_covers,
    topic_matches,
)
from cap_schemas.model import AlertKey
from gateway.config import EMBEDDED_GATEWAY_USER, parse_config
from gateway.errors import ConfigError
from gateway.metrics import INPUT_REJECTED
from gateway.passwords import hash_password, verify_password
from tests.daemon.conftest import CapFactory, daemon_toml, load, poll_until, running_daemon
from tests.daemon.test_tls import _cert, _write
from tests.helpers import free_port, require_tool

GATEWAY = "gateway-secret-0123"
OPERATOR = "operator-secret-4567"


class TestPasswords:
    """scrypt hashes: verified in constant time; malformed or hostile hashes never match."""

    def test_round_trip(self) -> None:
        stored = hash_password("correct horse")
        assert stored.startswith("scrypt$16384$8$1$")
        assert verify_password("correct horse", stored)
        assert not verify_password("correct horsE", stored)
        assert hash_password("x") != hash_password("x")  # salted

    @pytest.mark.parametrize(
        "stored",
        ["", "plain", "scrypt$1$2$3", "scrypt$x$8$1$AA==$AA==", "scrypt$16384$8$1$!!$AA==",
         "scrypt$1073741824$8$1$AAAA$AAAA", "md5$16384$8$1$AAAA$AAAA"],
    )
    def test_bad_hashes_never_match(self, stored: str) -> None:
        assert not verify_password("", stored)
        assert not verify_password("anything", stored)

    def test_users_file(self, tmp_path: Path) -> None:
        good = tmp_path / "users"
        good.write_text(f"# field units\n\nunit-7:{hash_password('p7')}\n", encoding="utf-8")
        assert set(read_users(good)) == {"unit-7"}
        bad = tmp_path / "bad"
        bad.write_text(f"unit-7:{hash_password('p7')}\nunit-8:plain\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"bad:2: expected 'name:scrypt"):
            read_users(bad)
        twice = tmp_path / "twice"
        twice.write_text(f"a:{hash_password('1')}\na:{hash_password('2')}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match="twice:2: user 'a' is listed twice"):
            read_users(twice)
        reserved = tmp_path / "reserved"
        reserved.write_text(f"operator:{hash_password('1')}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match="'operator' is reserved"):
            BrokerAccess.build(
                prefix="p", gateway_password="g", operator_password="o", users_file=reserved
            )

    def test_mqtt_passwd_command(self) -> None:
        done = subprocess.run(
            [".venv/bin/borderlink", "mqtt-passwd", "unit-9"],
            input=b"s3cret\n",
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        name, _, stored = done.stdout.decode().strip().partition(":")
        assert name == "unit-9"
        assert verify_password("s3cret", stored)
        refused = subprocess.run(
            [".venv/bin/borderlink", "mqtt-passwd", "bad name"], input=b"x\n",
            capture_output=True, check=False,
        )
        assert refused.returncode == 2


class TestTopicRules:
    """MQTT filter matching, and whether a subscription stays inside what is allowed."""

    @pytest.mark.parametrize(
        ("pattern", "topic", "expected"),
        [("a/#", "a/b/c", True), ("a/+/c", "a/b/c", True), ("a/+", "a/b/c", False),
         ("#", "x", True), ("a/b", "a/b", True), ("a/b", "a/b/c", False), ("a/#", "b", False)],
    )
    def test_matches(self, pattern: str, topic: str, expected: bool) -> None:
        assert topic_matches(pattern, topic) is expected

    @pytest.mark.parametrize(
        ("allowed", "requested", "expected"),
        [("p/#", "p/#", True), ("p/#", "p/a/+", True), ("p/#", "#", False),
         ("p/+", "p/#", False), ("p/+", "p/+", True), ("p/a", "p/+", False),
         ("p/#", "q/a", False), ("+/x", "a/x", True)],
    )
    def test_covers(self, allowed: str, requested: str, expected: bool) -> None:
        assert topic_covers(allowed, requested) is expected


def _access() -> BrokerAccess:
    return BrokerAccess.build(
        prefix="borderlink",
        gateway_password=GATEWAY,
        operator_password=OPERATOR,
        gateway_user=EMBEDDED_GATEWAY_USER,
        acl={"reader": {"subscribe": ["borderlink/alerts/#"]}},
    )


@asynccontextmanager
async def _broker(**kwargs: object) -> AsyncIterator[int]:
    port = free_port()
    auth = {
        "prefix": "borderlink",
        "gateway_password": GATEWAY,
        "operator_password": OPERATOR,
        "gateway_user": EMBEDDED_GATEWAY_USER,
    }
    async with embedded_broker("127.0.0.1", port, auth=auth, **kwargs):  # type: ignore[arg-type]
        yield port


def _client(port: int, user: str | None, password: str | None, **kw: object) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", port, username=user, password=password,
        protocol=aiomqtt.ProtocolVersion.V311, timeout=5, **kw,  # type: ignore[arg-type]
    )


class TestAccounts:
    """Nobody connects without an account; each account publishes and reads only its topics."""

    async def test_anonymous_and_wrong_password_are_refused(self) -> None:
        before = INPUT_REJECTED.value(component="mqtt-broker", reason="unauthorized")
        async with _broker() as port:
            for user, password in ((None, None), (OPERATOR_USER, "wrong"), ("nobody", "x")):
                with pytest.raises(aiomqtt.MqttError):
                    async with _client(port, user, password):
                        pass
        after = INPUT_REJECTED.value(component="mqtt-broker", reason="unauthorized")
        assert after - before == 3

    async def test_operator_may_write_input_and_read_everything_under_the_prefix(self) -> None:
        async with (
            _broker() as port,
            _client(port, EMBEDDED_GATEWAY_USER, GATEWAY) as gateway,
            _client(port, OPERATOR_USER, OPERATOR) as operator,
        ):
            await gateway.subscribe("#", qos=1)
            await operator.subscribe("borderlink/#", qos=1)
            await operator.publish("borderlink/alerts/forged", b"x", qos=1)  # dropped by ACL
            await operator.publish("borderlink/in/cap", b"<alert/>", qos=1)
            seen = await asyncio.wait_for(anext(aiter(gateway.messages)), 10)
            assert (str(seen.topic), seen.payload) == ("borderlink/in/cap", b"<alert/>")
            await gateway.publish("borderlink/alerts/ca/x", b"alert", qos=1)
            got = await asyncio.wait_for(anext(aiter(operator.messages)), 10)
            # the operator reads what it may (its own input echoed back, then the alert)
            topics = {str(got.topic)}
            if str(got.topic) != "borderlink/alerts/ca/x":
                got = await asyncio.wait_for(anext(aiter(operator.messages)), 10)
                topics.add(str(got.topic))
            assert "borderlink/alerts/forged" not in topics
            assert "borderlink/alerts/ca/x" in topics

    async def test_subscription_beyond_the_acl_is_refused(self) -> None:
        before = INPUT_REJECTED.value(component="mqtt-broker", reason="acl")
        async with _broker() as port, _client(port, OPERATOR_USER, OPERATOR) as operator:
            granted = await operator.subscribe("#", qos=1)
            assert 0x80 in [int(getattr(code, "value", code)) for code in granted]
        assert INPUT_REJECTED.value(component="mqtt-broker", reason="acl") > before

    def test_acl_table_and_defaults(self) -> None:
        access = _access()
        assert access.publish[EMBEDDED_GATEWAY_USER] == ("#",)
        assert access.publish[OPERATOR_USER] == ("borderlink/in/#",)
        assert access.subscribe[OPERATOR_USER] == ("borderlink/#",)
        assert access.users[OPERATOR_USER].startswith("scrypt$")


class TestRetained:
    """Retained messages go only to the subscriptions that match them (amqtt sent a connecting
    client those of every client's filters, and a QoS 0 publish was lost meanwhile)."""

    async def _retain(self, client: aiomqtt.Client, count: int) -> None:
        for n in range(count):
            await client.publish(f"borderlink/active/{n}", b"x" * 4096, qos=1, retain=True)

    async def test_qos0_publish_arrives_while_someone_reads_everything(self) -> None:
        require_tool("mosquitto_pub")
        async with (
            _broker() as port,
            _client(port, EMBEDDED_GATEWAY_USER, GATEWAY) as gateway,
            _client(port, OPERATOR_USER, OPERATOR) as reader,
        ):
            await gateway.subscribe("borderlink/in/cap", qos=1)
            await self._retain(gateway, 40)
            await reader.subscribe("borderlink/#", qos=1)
            for n in range(5):  # the README's command: QoS 0, connect, publish, disconnect
                done = await asyncio.create_subprocess_exec(
                    "mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", OPERATOR_USER,
                    "-P", OPERATOR, "-t", "borderlink/in/cap", "-m", f"alert {n}",
                )
                assert await done.wait() == 0
            got = []
            async with asyncio.timeout(10):
                async for message in gateway.messages:
                    if str(message.topic) == "borderlink/in/cap":
                        got.append(message.payload)
                    if len(got) == 5:
                        break
            assert got == [f"alert {n}".encode() for n in range(5)]

    async def test_a_client_gets_only_what_it_subscribed_to(self) -> None:
        async with (
            _broker() as port,
            _client(port, EMBEDDED_GATEWAY_USER, GATEWAY) as gateway,
            _client(port, OPERATOR_USER, OPERATOR) as everything,
        ):
            await everything.subscribe("borderlink/#", qos=1)
            await self._retain(gateway, 3)
            await gateway.publish("borderlink/alerts/kept", b"k", qos=1, retain=True)
            async with _client(port, OPERATOR_USER, OPERATOR) as narrow:
                await narrow.subscribe("borderlink/alerts/#", qos=1)
                await gateway.publish("borderlink/alerts/marker", b"m", qos=1)
                topics = []
                async with asyncio.timeout(10):
                    async for message in narrow.messages:
                        topics.append(str(message.topic))
                        if topics[-1] == "borderlink/alerts/marker":
                            break
            assert topics == ["borderlink/alerts/kept", "borderlink/alerts/marker"]


class TestTls:
    """embedded_tls: MQTT over TLS with the broker's certificate."""

    async def test_tls_listener(self, tmp_path: Path) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert("test ca", ca_key, None, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert("broker", key, (ca.subject, ca_key), ip="127.0.0.1")
        _write(tmp_path / "ca", ca, ca_key)
        _write(tmp_path / "broker", cert, key)
        files = (tmp_path / "broker.pem", tmp_path / "broker.key")
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with _broker(tls=files) as port:
            async with _client(
                port, OPERATOR_USER, OPERATOR, tls_context=context
            ) as client:
                await client.publish("borderlink/in/cap", b"x", qos=1)
            with pytest.raises(aiomqtt.MqttError):  # plain TCP is not served
                async with _client(port, OPERATOR_USER, OPERATOR):
                    pass


class TestWhereItListens:
    """Beyond loopback only with authentication and TLS."""

    def _parse(self, tmp_path: Path, mqtt: str) -> None:
        text = f'[gateway]\ndata_dir = "{tmp_path}"\n[mqtt]\n{mqtt}\n'
        parse_config(tomllib.loads(text), path=tmp_path / "c.toml")

    def test_beyond_loopback(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"mqtt.embedded_host: '0.0.0.0' is beyond loopback"):
            self._parse(tmp_path, 'embedded_host = "0.0.0.0"')
        with pytest.raises(ConfigError, match="beyond loopback"):
            self._parse(tmp_path, 'embedded_host = "0.0.0.0"\nembedded_auth = false')
        (tmp_path / "c.pem").write_text("x")
        (tmp_path / "c.key").write_text("x")
        self._parse(
            tmp_path,
            'embedded_host = "0.0.0.0"\n'
            'embedded_tls = { cert_file = "c.pem", key_file = "c.key" }',
        )
        self._parse(tmp_path, 'embedded_host = "127.0.0.2"\nembedded_auth = false')

    def test_bad_acl_and_tls(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"mqtt.embedded_acl.x.publish: 'a/#/b'"):
            self._parse(tmp_path, '[mqtt.embedded_acl]\nx = { publish = ["a/#/b"] }')
        with pytest.raises(ConfigError, match=r"mqtt.embedded_acl.x: unknown key"):
            self._parse(tmp_path, '[mqtt.embedded_acl]\nx = { publsh = ["a"] }')
        with pytest.raises(ConfigError, match=r"mqtt.embedded_tls.cert_file: .* not a readable"):
            self._parse(tmp_path, 'embedded_tls = { cert_file = "no.pem", key_file = "no.key" }')


class TestDaemonOnTheEmbeddedBroker:
    """The README's publish (`mosquitto_pub ... -f alert.xml`, QoS 0: taken like QoS 1) works
    with the operator's account; without it, it is refused."""

    async def test_readme_publish_needs_the_password(self, tmp_path: Path) -> None:
        require_tool("mosquitto_pub")
        port = free_port()
        path = daemon_toml(tmp_path, "mqtt://unused:1")
        path.write_text(
            path.read_text().replace(
                'broker = "mqtt://unused:1"', f'broker = "embedded"\nembedded_port = {port}'
            )
        )
        cap = CapFactory()
        alert, anonymous = cap(severity="Severe"), cap(severity="Severe")
        (tmp_path / "alert.xml").write_bytes(alert)
        (tmp_path / "anon.xml").write_bytes(anonymous)
        async with running_daemon(load(path)) as daemon:
            assert daemon.mqtt_password_file == tmp_path / "mqtt-password"
            assert daemon.mqtt_password_file.stat().st_mode & 0o077 == 0
            password = daemon.mqtt_password_file.read_text(encoding="utf-8").strip()
            base = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "borderlink/in/cap"]
            refused = await asyncio.to_thread(
                subprocess.run, [*base, "-f", str(tmp_path / "anon.xml")],
                capture_output=True, timeout=20, check=False,
            )
            assert refused.returncode != 0
            done = await asyncio.to_thread(
                subprocess.run,
                [*base, "-u", "operator", "-P", password, "-f", str(tmp_path / "alert.xml")],
                capture_output=True, timeout=20, check=False,
            )
            assert done.returncode == 0, done.stderr
            key = AlertKey.from_reference(CapFactory.key_of(alert))

            async def admitted() -> bool:
                return daemon.ledger.get(key) is not None

            await poll_until(admitted)
            stored = daemon.ledger.get(key)
            assert stored is not None
            assert stored.provenance is not None
            assert stored.provenance.door == "authenticated"
            assert daemon.ledger.get(AlertKey.from_reference(CapFactory.key_of(anonymous))) is None
