"""The embedded broker: an amqtt broker in this process (``[mqtt] broker = "embedded"``).

For the demo and for a single machine without a broker of its own. MQTT 3.1.1 (amqtt). By
default it **requires a username and password** and applies an **ACL**:

* the gateway itself connects with an account made for this run (a random password, never
  written anywhere) and may publish and read everything;
* the operator account (``operator``; its password is generated once into
  ``[mqtt] embedded_password_file`` under the data directory, mode 0600) and every account of
  ``embedded_users_file`` (lines ``name:scrypt$...`` written by ``borderlink mqtt-passwd``) may
  publish to ``{prefix}/in/#`` only and read ``{prefix}/#``;
* ``[mqtt.embedded_acl]`` gives any account its own ``publish`` / ``subscribe`` patterns.

With ``embedded_tls = { cert_file, key_file }`` it speaks MQTT over TLS. It refuses to listen
beyond loopback unless both authentication and TLS are on (checked with the configuration).

Passwords are stored as scrypt hashes (:mod:`gateway.passwords`); a failed login is counted
in ``borderlink_input_rejected_total{component="mqtt-broker"}`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from gateway.errors import AdapterConnectionError, ConfigError
from gateway.metrics import INPUT_REJECTED
from gateway.passwords import hash_password, verify_password

log = structlog.get_logger(__name__)

__all__ = [
    "GATEWAY_USER",
    "OPERATOR_USER",
    "BrokerAccess",
    "PasswordAuth",
    "TopicAcl",
    "embedded_broker",
    "read_users",
    "topic_covers",
    "topic_matches",
]

GATEWAY_USER = "borderlink-gateway"
OPERATOR_USER = "operator"
COMPONENT = "mqtt-broker"


def read_users(path: Path) -> dict[str, str]:
    """``name:hash`` lines (``#`` comments and blank lines allowed); a ConfigError names the
    file and line of anything else.

    ::

        # accounts of the embedded broker (borderlink mqtt-passwd NAME < password)
        field-unit-7:scrypt$16384$8$1$...$...
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the MQTT users file: {exc}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, stored = text.partition(":")
        if not sep or not name or not stored.startswith("scrypt$") or stored.count("$") != 5:
            raise ConfigError(
                f"{path}:{number}: expected 'name:scrypt$...' (from borderlink mqtt-passwd)"
            )
        if name in users:
            raise ConfigError(f"{path}:{number}: user {name!r} is listed twice")
        users[name] = stored
    return users


# ------------------------------------------------------------------------------------ topics


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether a concrete ``topic`` matches the MQTT filter ``pattern`` (``+`` and ``#``)."""
    want = pattern.split("/")
    have = topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


def topic_covers(allowed: str, requested: str) -> bool:
    """Whether every topic the filter ``requested`` can match is matched by ``allowed`` (a
    subscription may only narrow what the ACL allows)."""
    want = allowed.split("/")
    have = requested.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or have[i] == "#":
            return False
        if level != "+" and (have[i] == "+" or level != have[i]):
            return False
    return len(want) == len(have)


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """Who may connect and what each account may publish and read."""

    users: Mapping[str, str]  # name -> scrypt hash
    publish: Mapping[str, Sequence[str]]  # name -> topic filters
    subscribe: Mapping[str, Sequence[str]]

    @classmethod
    def build(
        cls,
        *,
        prefix: str,
        gateway_password: str,
        operator_password: str | None,
        users_file: Path | None = None,
        acl: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        gateway_user: str = GATEWAY_USER,
    ) -> BrokerAccess:
        """The accounts of a configuration (``users_file`` is read here: a ConfigError names
        its bad line)."""
        extra = read_users(users_file) if users_file is not None else {}
        for reserved in (gateway_user, OPERATOR_USER):
            if reserved in extra:
                raise ConfigError(f"{users_file}: the account name {reserved!r} is reserved")
        users = {gateway_user: hash_password(gateway_password), **extra}
        if operator_password is not None:
            users[OPERATOR_USER] = hash_password(operator_password)
        publish: dict[str, Sequence[str]] = {}
        subscribe: dict[str, Sequence[str]] = {}
        for name in users:
            everything = name == gateway_user
            publish[name] = ("#",) if everything else (f"{prefix}/in/#",)
            subscribe[name] = ("#",) if everything else (f"{prefix}/#",)
        for name, rules in (acl or {}).items():
            if name == gateway_user:
                continue  # the gateway's own account keeps what it needs
            publish[name] = tuple(rules.get("publish", ()))
            subscribe[name] = tuple(rules.get("subscribe", ()))
        return cls(users=users, publish=publish, subscribe=subscribe)


# ----------------------------------------------------------------------------------- plugins


class PasswordAuth(BaseAuthPlugin):  # type: ignore[misc]  # amqtt has no type information
    """Accepts a connection only with a known username and its password."""

    @dataclass
    class Config:
        users: dict[str, str] = field(default_factory=dict)

    async def authenticate(self, *, session: Session) -> bool:
        users: dict[str, str] = self._get_config_option("users", {}) or {}
        name = session.username or ""
        stored = users.get(name)
        ok = stored is not None and await asyncio.to_thread(
            verify_password, session.password or "", stored
        )
        if not ok:
            INPUT_REJECTED.inc(component=COMPONENT, reason="unauthorized")
            log.warning(
                "mqtt_login_refused",
                username=name or None,
                client_id=session.client_id,
                reason="unknown user" if stored is None else "wrong password",
            )
        return ok


class TopicAcl(BaseTopicPlugin):  # type: ignore[misc]  # amqtt has no type information
    """What each account may publish to, subscribe to, and receive."""

    @dataclass
    class Config:
        publish: dict[str, list[str]] = field(default_factory=dict)
        subscribe: dict[str, list[str]] = field(default_factory=dict)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        name = (session.username if session is not None else None) or ""
        if topic is None:
            return False
        if action is Action.PUBLISH:
            rules: list[str] = (self._get_config_option("publish", {}) or {}).get(name, [])
            allowed = any(topic_matches(p, topic) for p in rules)
        else:
            rules = (self._get_config_option("subscribe", {}) or {}).get(name, [])
            check = topic_covers if action is Action.SUBSCRIBE else topic_matches
            allowed = any(check(p, topic) for p in rules)
        if not allowed and action is not Action.RECEIVE:
            INPUT_REJECTED.inc(component=COMPONENT, reason="acl")
            log.warning("mqtt_acl_refused", username=name or None, topic=topic, action=str(action))
        return allowed


# ------------------------------------------------------------------------------------ broker


class _Broker(Broker):  # type: ignore[misc]  # amqtt has no type information
    """amqtt's broker, sending retained messages only where they were asked for.

    amqtt 0.12, when any client connects, sends it the retained messages of *every* topic
    filter any client holds, unchecked by the ACL. A ``mosquitto_pub`` that connects while
    someone reads ``borderlink/#`` was sent every retained ``borderlink/active/...`` summary,
    and its QoS 0 publish was lost while the broker wrote to a client that had already
    gone; an account allowed only ``{prefix}/in/#`` would have read them all. Here a
    session gets the retained messages of its own subscriptions, each one the ACL lets it
    receive.
    """

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        holders = self._subscriptions.get(topic_filter, ())
        if not any(held.client_id == session.client_id for held, _qos in holders):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = [
            asyncio.ensure_future(
                handler.mqtt_publish(
                    retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
                )
            )
            for topic, retained in list(self._retained_messages.items())
            if self._matches(topic, topic_filter)
            and await self._topic_filtering(session, topic, Action.RECEIVE)
        ]
        if sends:
            await asyncio.wait(sends)


def _config(
    host: str,
    port: int,
    access: BrokerAccess | None,
    tls: tuple[Path, Path] | None,
) -> dict[str, Any]:
    listener: dict[str, Any] = {"type": "tcp", "bind": f"{host}:{port}"}
    if tls is not None:
        listener.update({"ssl": True, "certfile": str(tls[0]), "keyfile": str(tls[1])})
    plugins: dict[str, Any]
    if access is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        plugins = {
            f"{__name__}.PasswordAuth": {"users": dict(access.users)},
            f"{__name__}.TopicAcl": {
                "publish": {k: list(v) for k, v in access.publish.items()},
                "subscribe": {k: list(v) for k, v in access.subscribe.items()},
            },
        }
    return {"listeners": {"default": listener}, "plugins": plugins}


@contextlib.asynccontextmanager
async def embedded_broker(
    host: str = "127.0.0.1",
    port: int = 1883,
    *,
    auth: Mapping[str, Any] | None = None,
    tls: tuple[Path, Path] | None = None,
) -> AsyncIterator[object]:
    """Serve MQTT on ``host:port`` while the context is open. ``auth`` holds the keywords of
    :meth:`BrokerAccess.build`; ``None`` lets anyone in (the configuration allows that only
    on loopback)."""
    access = None if auth is None else await asyncio.to_thread(lambda: BrokerAccess.build(**auth))
    # amqtt logs every packet at INFO; keep our log readable.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    broker = _Broker(_config(host, port, access, tls))
    try:
        await broker.start()
    except Exception as exc:  # amqtt raises its own BrokerError or OSError
        raise AdapterConnectionError(
            f"embedded broker cannot listen on {host}:{port}: {exc}"
        ) from exc
    log.info(
        "embedded_broker_started",
        host=host,
        port=port,
        authentication=access is not None,
        tls=tls is not None,
    )
    try:
        yield broker
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), timeout=5)
        log.info("embedded_broker_stopped", host=host, port=port)
