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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from gateway.errors import ConfigError
from gateway.secret_files import resolve_secret

__all__ = [
    "DEFAULT_SINK_TOPIC",
    "DELIVERY_ID_PROPERTY",
    "MqttOptions",
    "TopicTemplate",
    "message_expiry",
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

_KNOWN = frozenset(
    {
        "url",
        "client_id",
        "protocol",
        "keepalive",
        "session_expiry",
        "username",
        "password",
        "password_file",
        "password_env",
        "tls",
        "timeout",
        "prefix",
        "topics",
        "kind",
        "topic",
        "retain",
        "qos",
        "max_payload",
        "log_wire",
        "shared_group",
    }
)
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
        where = f"mqtt adapter {name!r}"
        unknown = set(options) - _KNOWN - {"_daemon"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown option(s) {', '.join(sorted(unknown))}; allowed: "
                + ", ".join(sorted(_KNOWN))
            )
        url = options.get("url", "mqtt://127.0.0.1:1883")
        if not isinstance(url, str):
            raise ConfigError(f"{where}.url: must be an mqtt:// or mqtts:// URL")
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"{where}.url: {url!r} must be mqtt://host[:port] or mqtts://...")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise ConfigError(f"{where}.url: {url!r} has a bad port") from None
        tls_raw = options.get("tls")
        tls: TlsOptions | None = None
        if tls_raw is not None or parts.scheme == "mqtts":
            if tls_raw is None:
                tls_raw = {}
            if not isinstance(tls_raw, Mapping):
                raise ConfigError(f"{where}.tls: must be a table")
            extra = set(tls_raw) - {"ca_file", "cert_file", "key_file", "insecure"}
            if extra:
                raise ConfigError(f"{where}.tls: unknown key(s) {', '.join(sorted(extra))}")
            tls = TlsOptions(
                ca_file=_opt_str(tls_raw, "ca_file", where + ".tls"),
                cert_file=_opt_str(tls_raw, "cert_file", where + ".tls"),
                key_file=_opt_str(tls_raw, "key_file", where + ".tls"),
                insecure=bool(tls_raw.get("insecure", False)),
            )
        protocol = str(options.get("protocol", "5"))
        if protocol not in ("5", "3.1.1"):
            raise ConfigError(f"{where}.protocol: {protocol!r}; allowed: 5, 3.1.1")
        prefix = str(options.get("prefix", "borderlink"))
        client_id = str(options.get("client_id", "borderlink"))
        topics_raw = options.get("topics", [f"{prefix}/in/cap"])
        if isinstance(topics_raw, str):
            topics_raw = [topics_raw]
        if not isinstance(topics_raw, list) or not all(
            isinstance(t, str) and t for t in topics_raw
        ):
            raise ConfigError(f"{where}.topics: must be a list of topic filters")
        kind = str(options.get("kind", "cap"))
        if kind not in ("cap", "incident"):
            raise ConfigError(f"{where}.kind: {kind!r}; allowed: cap, incident")
        shared_group = str(options.get("shared_group", ""))
        if shared_group and not _GROUP.match(shared_group):
            raise ConfigError(f"{where}.shared_group: 1-64 letters, digits, '_' or '-'")
        if shared_group and protocol != "5":
            raise ConfigError(f"{where}.shared_group: shared subscriptions need protocol = 5")
        topic_text = options.get("topic", DEFAULT_SINK_TOPIC)
        if not isinstance(topic_text, str):
            raise ConfigError(f"{where}.topic: must be a string template")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            client_id=f"{client_id}-{name}",
            protocol=protocol,
            keepalive=_int(options, "keepalive", 30, where, minimum=5),
            session_expiry=_int(options, "session_expiry", 7 * 24 * 3600, where, minimum=0),
            username=_opt_str(options, "username", where),
            password=resolve_secret(options, "password", where=where, base=base_dir),
            timeout=float(_int(options, "timeout", 10, where, minimum=1)),
            prefix=prefix,
            topics=tuple(topics_raw),
            topic=TopicTemplate.parse(topic_text, where=f"{where}.topic"),
            kind=kind,
            retain=bool(options.get("retain", False)),
            qos=_qos(options, where),
            max_payload=_int(options, "max_payload", 8 * 1024 * 1024, where, minimum=1024),
            log_wire=bool(options.get("log_wire", False)),
            shared_group=shared_group,
        )

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    def active_topic(self, key_level: str) -> str:
        return f"{self.prefix}/active/{key_level}"


def _qos(options: Mapping[str, Any], where: str) -> int:
    value = options.get("qos", 1)
    if value not in (1, 2) or isinstance(value, bool):
        raise ConfigError(
            f"{where}.qos: {value!r}; allowed: 1 (at least once) or 2 (exactly once between"
            " the gateway and the broker)"
        )
    return int(value)


def _opt_str(options: Mapping[str, Any], key: str, where: str) -> str | None:
    value = options.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    return value


def _int(options: Mapping[str, Any], key: str, default: int, where: str, *, minimum: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{key}: must be an integer >= {minimum}, got {value!r}")
    return value


def message_expiry(expires: datetime | None, now: datetime) -> int | None:
    """The MQTT 5 message-expiry interval (whole seconds, at least 1) for an alert's expires.

    None when the alert has no expiry; 0 would mean "already expired" and such a delivery is
    not published at all (the caller checks).
    """
    if expires is None:
        return None
    seconds = int((expires - now).total_seconds())
    return max(seconds, 0)


def user_properties(attributes: Mapping[str, str], part: int, parts: int) -> list[tuple[str, str]]:
    """The MQTT 5 user properties of one published part (the consumer's dedupe key)."""
    props = [
        (DELIVERY_ID_PROPERTY, attributes.get("delivery_id", "")),
        (ALERT_KEY_PROPERTY, attributes.get("alert_key", "")),
    ]
    if parts > 1:
        props.append((PART_PROPERTY, f"{part + 1}/{parts}"))
    return props
