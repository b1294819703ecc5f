"""MQTT without a socket: options, topic templates, delivery properties and status payloads.

Options of an MQTT adapter (a ``[[source]]`` or ``[[sink]]`` with ``type = "mqtt"``; every
connection key defaults to the daemon's ``[mqtt]`` section)::

    url = "mqtt://127.0.0.1:1883"       # or mqtts://host:8883
    client_id = "borderlink"            # the adapter's name is appended: one session each
    protocol = "5"                      # or "3.1.1"
    keepalive = 30
    session_expiry = 604800             # s the broker keeps our session (MQTT 5)
    username = "gateway"
    password_file = "/etc/borderlink/mqtt.pass"   # or password_env = "MQTT_PASSWORD"
    tls = { ca_file = "...", cert_file = "...", key_file = "...", insecure = false }
    timeout = 10                        # s to wait for a PUBACK/SUBACK
    # source
    topics = ["borderlink/in/cap"]      # default "{prefix}/in/cap"
    # sink
    topic = "{prefix}/alerts/{country}/{status}/{event}"
    retain = false

Topic templates take ``{prefix}``, ``{sink}``, ``{source}``, ``{country}``, ``{status}``,
``{event}``, ``{key}`` and ``{msg_type}``; every value is made topic-safe (``/ + #`` escaped).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from gateway.errors import ConfigError
from gateway.options import adapter_options
from gateway.secret_files import resolve_secret

__all__ = [
    "DEFAULT_SINK_TOPIC",
    "DELIVERY_ID_PROPERTY",
    "MqttOptions",
    "TopicTemplate",
    "message_expiry",
    "publish_properties",
    "safe_level",
    "user_properties",
]

DEFAULT_SINK_TOPIC = "{prefix}/alerts/{country}/{status}/{event}"
DELIVERY_ID_PROPERTY = "borderlink-delivery-id"
ALERT_KEY_PROPERTY = "borderlink-alert-key"
PART_PROPERTY = "borderlink-part"
PLACEHOLDERS = frozenset(
    {"prefix", "sink", "source", "country", "status", "event", "key", "msg_type"}
)
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"

_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOPIC_FORBIDDEN = re.compile(r"[+#\x00]")


def safe_level(value: str) -> str:
    """One topic level: ``/``, ``+``, ``#``, NUL and spaces percent-escaped."""
    return quote(value, safe=",:@-._~%") if value else "_"


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A topic with ``{placeholders}``; checked once, rendered per delivery."""

    text: str
    fields: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str, *, where: str) -> TopicTemplate:
        if not text or text.startswith("/") or _TOPIC_FORBIDDEN.search(text):
            raise ConfigError(f"{where}: topic {text!r} must be non-empty, without + # or NUL")
        names: set[str] = set()
        try:
            for _literal, name, spec, conv in string.Formatter().parse(text):
                if name is None:
                    continue
                if name not in PLACEHOLDERS or spec or conv:
                    raise ConfigError(
                        f"{where}: unknown placeholder {{{name}}} in {text!r}; allowed: "
                        + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
                    )
                names.add(name)
        except ValueError as exc:
            raise ConfigError(f"{where}: topic {text!r}: {exc}") from None
        return cls(text, frozenset(names))

    def render(self, values: Mapping[str, str]) -> str:
        safe = {name: safe_level(values.get(name, "")) for name in self.fields}
        return self.text.format_map(safe)


@dataclass(frozen=True, slots=True)
class TlsOptions:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """Everything an MQTT adapter needs, checked."""

    host: str
    port: int
    tls: TlsOptions | None
    client_id: str
    protocol: str = "5"
    keepalive: int = 30
    session_expiry: int = 7 * 24 * 3600
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    prefix: str = "borderlink"
    topics: tuple[str, ...] = ()
    topic: TopicTemplate = field(default_factory=lambda: TopicTemplate(DEFAULT_SINK_TOPIC))
    retain: bool = False
    qos: int = 1  # of what a sink publishes: 1 (at least once) or 2 (exactly once, broker side)
    max_payload: int = 8 * 1024 * 1024  # largest message a source takes (an alert's cap)
    log_wire: bool = False
    kind: str = "cap"  # what the subscribed topics carry: "cap" alerts or "incident" messages
    # Several gateways on one broker: each input message goes to one member of the group.
    shared_group: str = ""

    @property
    def v5(self) -> bool:
        return self.protocol == "5"

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The filters a source subscribes to: its topics, as MQTT 5 shared subscriptions
        (``$share/GROUP/topic``) when it has a ``shared_group``."""
        if not self.shared_group:
            return self.topics
        return tuple(f"$share/{self.shared_group}/{topic}" for topic in self.topics)

    @classmethod
    def from_mapping(
        cls, options: Mapping[str, Any], *, name: str, base_dir: Path | None = None
    ) -> MqttOptions:
        r = adapter_options("sink", name, options)
        where = r.where()
        url = r.string("url", "mqtt://127.0.0.1:1883")
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            r.fail(f"{url!r} must be mqtt://host[:port] or mqtts://...", "url")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            r.fail(f"{url!r} has a bad port", "url")
        tls: TlsOptions | None = None
        if r.has("tls") or parts.scheme == "mqtts":
            t = r.sub("tls")
            tls = TlsOptions(
                ca_file=t.string("ca_file", None),
                cert_file=t.string("cert_file", None),
                key_file=t.string("key_file", None),
                insecure=t.boolean("insecure", False),
            )
            t.finish()
        protocol = r.string("protocol", "5", choices=("5", "3.1.1"))
        prefix = r.string("prefix", "borderlink")
        client_id = r.string("client_id", "borderlink")
        topics = r.strings("topics") if r.has("topics") else (f"{prefix}/in/cap",)
        if not topics or not all(topics):
            r.fail("must be a list of topic filters", "topics")
        kind = r.string("kind", "cap", choices=("cap", "incident"))
        shared_group = r.string("shared_group", "")
        if shared_group and not _GROUP.match(shared_group):
            r.fail("1-64 letters, digits, '_' or '-'", "shared_group")
        if shared_group and protocol != "5":
            r.fail("shared subscriptions need protocol = 5", "shared_group")
        qos = r.raw("qos")
        qos = 1 if qos is None else qos
        if isinstance(qos, bool) or qos not in (1, 2):
            r.fail(
                f"{qos!r}; allowed: 1 (at least once) or 2 (exactly once between the gateway and"
                " the broker)",
                "qos",
            )
        r.used.update({"password", "password_file", "password_env"})
        result = cls(
            host=parts.hostname or "",
            port=port,
            tls=tls,
            client_id=f"{client_id}-{name}",
            protocol=protocol,
            keepalive=r.integer("keepalive", 30, minimum=5),
            session_expiry=r.integer("session_expiry", 7 * 24 * 3600, minimum=0),
            username=r.string("username", None),
            password=resolve_secret(options, "password", where=where, base=base_dir),
            timeout=float(r.integer("timeout", 10, minimum=1)),
            prefix=prefix,
            topics=topics,
            topic=TopicTemplate.parse(
                r.string("topic", DEFAULT_SINK_TOPIC), where=r.where("topic")
            ),
            kind=kind,
            retain=r.boolean("retain", False),
            qos=qos,
            max_payload=r.integer("max_payload", 8 * 1024 * 1024, minimum=1024),
            log_wire=r.boolean("log_wire", False),
            shared_group=shared_group,
        )
        r.table.pop("_daemon", None)  # set by the daemon itself, not a user's key
        r.finish()
        return result

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    def active_topic(self, key_level: str) -> str:
        return f"{self.prefix}/active/{key_level}"


def message_expiry(expires: datetime | None, now: datetime) -> int | None:
    """The MQTT 5 message-expiry interval (whole seconds, at least 1) for an alert's expires.

    None when the alert has no expiry; 0 would mean "already expired" and such a delivery is
    not published at all (the caller checks).
    """
    if expires is None:
        return None
    seconds = int((expires - now).total_seconds())
    return max(seconds, 0)


def _utf8(text: str) -> bytes:
    """An MQTT UTF-8 string: its length in two bytes, then its bytes."""
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        msg = f"an MQTT string holds at most 65,535 bytes, not {len(data)}"
        raise ValueError(msg)
    return len(data).to_bytes(2, "big") + data


def _variable_int(value: int) -> bytes:
    """An MQTT variable byte integer (7 bits a byte, the high bit set on all but the last)."""
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish_properties(
    *, expiry: int | None, content_type: str, user: Sequence[tuple[str, str]]
) -> bytes:
    """The properties of an MQTT 5 PUBLISH as they go on the wire (MQTT 5.0 §3.3.2.3): their
    length, then the message expiry interval (0x02, four bytes), the content type (0x03) and
    each user property (0x26, a name and a value) -- what paho's ``Properties.pack`` makes,
    at a fraction of its cost."""
    body = bytearray()
    if expiry is not None:
        body += b"\x02" + expiry.to_bytes(4, "big")
    body += b"\x03" + _utf8(content_type)
    for name, value in user:
        body += b"\x26" + _utf8(name) + _utf8(value)
    return _variable_int(len(body)) + bytes(body)


def user_properties(attributes: Mapping[str, str], part: int, parts: int) -> list[tuple[str, str]]:
    """The MQTT 5 user properties of one published part (the consumer's dedupe key)."""
    props = [
        (DELIVERY_ID_PROPERTY, attributes.get("delivery_id", "")),
        (ALERT_KEY_PROPERTY, attributes.get("alert_key", "")),
    ]
    if parts > 1:
        props.append((PART_PROPERTY, f"{part + 1}/{parts}"))
    return props
