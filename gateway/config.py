"""The daemon's configuration: one TOML file read into frozen dataclasses.

Sections (each documented in ``docs/configuration.md``)::

    [gateway]      name, data_dir, drain_timeout
    [mqtt]         broker ("embedded" or an mqtt:// / mqtts:// URL), prefix, protocol, TLS, auth
    [http]         host, port, tokens (from files or the environment)
    [ledger]       path, dedup_floor_days, journal_retention_days
    [[source]]     name, type (an adapter registry key), the adapter's own options
    [[sink]]       name, type, live, format, retry settings, the adapter's own options
    [[route]]      sources, match filters, translation, sinks, action
    [[simulator]]  type (a simulator registry key), its options
    [[link]]       raw tables handed to gateway.links

Every error is a :class:`~gateway.errors.ConfigError` naming the file, the key path
(``route #3 "east".match.severity``: a table by its place, counted from 1, and its name) and
what is allowed; a value set by a ``BORDERLINK_*`` variable is reported under the variable's
name. Whether the names of adapter types,
translations and simulators exist is checked by :func:`gateway.assembly.check_names`.
Unknown keys are refused everywhere the daemon owns the table; adapter options are kept as
mappings and checked by each adapter.

Environment overrides: ``BORDERLINK_<SECTION>__<KEY>=value`` sets a key of a plain section
(``BORDERLINK_HTTP__PORT=8081``), ``BORDERLINK_<SOURCE|SINK>__<NAME>__<KEY>`` a key of the
named source or sink (``-`` in a name is written ``_``). Values are read as TOML values when
they parse (``8081``, ``true``, ``["a"]``) and as plain strings otherwise. Precedence:
command line > environment > file.

Secrets are never written inline: ``password_file``/``password_env``, ``token_file``/
``token_env`` name where they are; :func:`resolve_secret` reads them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from cap_schemas.model import Certainty, MsgType, Scope, Severity, Status, Urgency
from gateway.approvals import APPROVALS, SINGLE
from gateway.errors import ConfigError
from gateway.model import AUTHENTICATED, TRUST_LEVELS
from gateway.options import ENV_ORIGINS, OptionReader, kind_of
from gateway.secret_files import resolve_secret

__all__ = [
    "EMBEDDED_GATEWAY_USER",
    "Config",
    "ConfigError",
    "Filters",
    "GatewayConfig",
    "HttpConfig",
    "LedgerConfig",
    "MqttConfig",
    "Region",
    "RouteConfig",
    "SimulatorConfig",
    "SinkConfig",
    "SourceConfig",
    "TlsConfig",
    "apply_env_overrides",
    "load_config",
    "parse_config",
    "resolve_secret",
]

ENV_PREFIX = "BORDERLINK_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PROFILES = ("auto", "cap", "cap-cp", "ipaws")
SIGNATURE_STATES = ("valid", "unsigned")
#: The largest near_border_km a route may set (beyond it every alert of both countries but
#: Hawaii, the southern states and their neighbours would match).
MAX_BORDER_KM = 2000.0
VALIDATION_MODES = ("reject", "hold", "warn")
ACTIONS = ("deliver", "hold")
INPUTS = ("cap", "incident")
DEFAULT_MESSAGE_TRANSLATION = "message"  # gateway.messages.MESSAGE_RENDERERS
FORMATS = ("cap", "json")
PROTOCOLS = ("5", "3.1.1")

T = TypeVar("T")


# ------------------------------------------------------------------------------ dataclasses


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    name: str = "borderlink"
    # The CAP sender of what this gateway writes itself (receipts); NAME@borderlink.invalid
    # when empty.
    sender: str = ""
    data_dir: Path = Path("var")
    drain_timeout: float = 10.0
    housekeeping_interval: float = 5.0
    # Documents parsed, verified and validated at once (each in a worker thread): a few
    # multi-megabyte alerts at a time bound the memory, whatever arrives at once.
    max_concurrent_parses: int = 2
    # Seconds a batch of admissions waits for more documents when others are already
    # waiting (group commit under load, as PostgreSQL's commit_delay); 0 never waits.
    commit_delay: float = 0.003


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The gateway's own broker connection: input topic, retained status and active alerts."""

    enabled: bool = True
    broker: str = "embedded"
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 1883
    prefix: str = "borderlink"
    client_id: str = "borderlink"
    protocol: str = "5"
    keepalive: int = 30
    timeout: int = 10
    session_expiry: int = 7 * 24 * 3600
    input: bool = True
    # Several gateways on one MQTT 5 broker: the input as a shared subscription of this group.
    shared_group: str = ""
    publish_status: bool = True
    publish_active: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None
    validation: str = "hold"
    require_signature: bool = False
    trust_anchors: tuple[str, ...] = ()
    trust: str | None = None  # lower the trust of the MQTT input (never raise it)
    # The embedded broker's doors: accounts and passwords, what each may publish and read, TLS.
    embedded_auth: bool = True
    embedded_password_file: str = "mqtt-password"  # noqa: S105 - a file name, not a password
    embedded_users_file: Path | None = None  # more accounts: name:scrypt$... lines
    embedded_acl: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    embedded_tls: TlsConfig | None = None  # cert_file + key_file: MQTT over TLS

    @property
    def embedded(self) -> bool:
        return self.broker == "embedded"

    def connection_options(self) -> dict[str, Any]:
        """The connection keys an MQTT adapter takes (see ``adapters.mqtt.codec``)."""
        url = f"mqtt://{self.embedded_host}:{self.embedded_port}" if self.embedded else self.broker
        out: dict[str, Any] = {
            "url": url,
            "client_id": self.client_id,
            "protocol": "3.1.1" if self.embedded else self.protocol,
            "keepalive": self.keepalive,
            "timeout": self.timeout,
            "session_expiry": self.session_expiry,
            "prefix": self.prefix,
        }
        if self.username is not None:
            out["username"] = self.username
        if self.password is not None:
            out["password"] = self.password
        if self.tls is not None:
            tls: dict[str, Any] = {"insecure": self.tls.insecure}
            for key in ("ca_file", "cert_file", "key_file"):
                value = getattr(self.tls, key)
                if value is not None:
                    tls[key] = str(value)
            out["tls"] = tls
        return out


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    tokens: tuple[str, ...] = field(default=(), repr=False)
    # When no token is configured, generate one into this file (relative to data_dir).
    generate_token_file: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    # Bytes of request bodies read at once across all requests (a request waits its turn).
    max_inflight_bytes: int = 16 * 1024 * 1024
    header_timeout: float = 15.0  # s for a connection's first request head (and idle time)
    body_timeout: float = 60.0  # s for a request body to arrive
    max_connections: int = 256  # open at once; more are closed as they come
    validation: str = "reject"
    require_signature: bool = False
    trust_anchors: tuple[str, ...] = ()
    trust: str | None = None  # lower the trust of posted alerts (never raise it)


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """``[console]``: the EOC's web console on the HTTP port (``/``)."""

    enabled: bool = True
    title: str = ""  # shown in the header; the gateway's name when empty
    language: str = "en"  # the interface's default language: en or fr
    users_file: Path = Path("var/console-users")  # NAME:ROLE:scrypt$... per line
    secret_file: Path = Path("var/console-secret")  # signs sessions; share it between instances
    # With no account in users_file, create "operator" with a generated password (the demo).
    generate_operator: bool = False
    password_file: Path = Path("var/console-password")
    session_hours: float = 12.0
    lockout_failures: int = 5
    lockout_minutes: float = 15.0
    # A required source whose last success is older than this turns the health strip red.
    stale_seconds: float = 300.0
    # Alerts composed in the console are signed with this key and certificate (PEM files).
    signing_key_file: Path | None = None
    signing_cert_file: Path | None = None


CONSOLE_LANGUAGES = ("en", "fr")


@dataclass(frozen=True, slots=True)
class PartnerConfig:
    """``[[partner]]``: another EOC's tools reading our feeds (``/feeds/...``) with a token."""

    name: str
    token: str = field(repr=False)
    requests_per_minute: int = 60
    # The CAP sender of its gateway's receipts (Acks), and how soon one is expected for each
    # alert issued in our console (gateway.partner_receipts); None: never late.
    ack_sender: str = ""
    ack_within: float | None = None


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    path: Path = Path("var/ledger.sqlite3")
    dedup_floor_days: float = 7.0
    journal_retention_days: float = 90.0
    prune_interval: float = 3600.0
    backend: str = "sqlite"  # or "postgresql": several gateways on one ledger
    dsn: str | None = None  # postgresql://user@host:5432/db (the password never inline)
    password: str | None = field(default=None, repr=False)
    schema: str | None = None


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One ``[[source]]``: the daemon's keys, and the adapter's own ``options``."""

    name: str
    type: str
    options: Mapping[str, Any]
    enabled: bool = True
    required: bool = False
    validation: str = "hold"
    profile: str = "auto"
    signature: Mapping[str, Any] = field(default_factory=dict)
    trust: str | None = None  # lower the trust its door gives (never raise it)
    # Run on one instance at a time when several share a ledger (feeds: polling twice would
    # be wasted and rate-limited); radios and MQTT inputs run everywhere.
    leader_only: bool = False
    # Answer each alert admitted from it with a CAP Ack (a receipt for the partner).
    acknowledge: bool = False


@dataclass(frozen=True, slots=True)
class SinkConfig:
    name: str
    type: str
    options: Mapping[str, Any]
    live: bool = False
    format: str = "cap"
    enabled: bool = True
    retry_initial: float = 1.0
    retry_max: float = 60.0
    max_attempts: int = 0  # 0: retry until the alert expires
    batch: int = 16
    send_timeout: float = 30.0
    # What to do with an attempt found under way at a start (it may have reached the sink):
    # "resend", "hold" for an operator, or "skip"; live sinks default to "hold".
    in_doubt: str = "resend"
    # On a shared ledger, the [gateway] name of the one instance that has this sink's
    # hardware: every instance plans its deliveries, only that one opens it and claims them.
    instance: str = ""


@dataclass(frozen=True, slots=True)
class Region:
    """An area of interest: a polygon (closed ring of (lat, lon)) or a circle."""

    polygon: tuple[tuple[float, float], ...] = ()
    circle: tuple[float, float, float] | None = None  # lat, lon, radius_km


@dataclass(frozen=True, slots=True)
class Filters:
    """What an alert must be to take a route. An empty tuple means "any"."""

    status: tuple[str, ...] = ()
    msg_type: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()
    event: tuple[str, ...] = ()  # info.event text, case-insensitive
    event_codes: tuple[str, ...] = ()  # "valueName=value" or a bare value
    severity: tuple[str, ...] = ()
    urgency: tuple[str, ...] = ()
    certainty: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    geocodes: tuple[str, ...] = ()  # "valueName=prefix" or a bare prefix
    regions: tuple[Region, ...] = ()
    # An area within this many km of the Canada-US border (gateway.border), or None.
    near_border_km: float | None = None
    signature: tuple[str, ...] = ()
    profile: tuple[str, ...] = ()
    trust: tuple[str, ...] = ()  # anonymous | authenticated | verified


@dataclass(frozen=True, slots=True)
class RouteConfig:
    name: str
    sinks: tuple[str, ...]
    sources: frozenset[str] | None = None  # None: every source
    match: Filters = field(default_factory=Filters)
    translation: str = "identity"
    translation_options: Mapping[str, Any] = field(default_factory=dict)
    action: str = "deliver"
    allow_non_actual: bool = False
    allow_unsigned_live: bool = False
    live_trust: str = "authenticated"  # the least trusted input a live sink may get
    enabled: bool = True
    # "cap": alerts; "incident": inbound incident and radio messages (gateway.messages),
    # filtered by ``sources``, ``channels`` and ``senders`` instead of ``match``.
    input: str = "cap"
    channels: tuple[str, ...] = ()  # where a message was heard (case-insensitive)
    senders: tuple[str, ...] = ()  # who sent it (callsign, unit, agency; case-insensitive)
    expire_after: float | None = None  # seconds an incident delivery may wait, None: forever
    # "two-person": what the console issues waits for a second operator (gateway.approvals)
    approval: str = SINGLE


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    type: str
    options: Mapping[str, Any]
    name: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    partners: tuple[PartnerConfig, ...] = ()
    sources: tuple[SourceConfig, ...] = ()
    sinks: tuple[SinkConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    simulators: tuple[SimulatorConfig, ...] = ()
    links: tuple[Mapping[str, Any], ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def sink(self, name: str) -> SinkConfig:
        for sink in self.sinks:
            if sink.name == name:
                return sink
        raise KeyError(name)


# ------------------------------------------------------------------------------- reading


# ------------------------------------------------------------------------------ sections


def _name(r: OptionReader, key: str = "name") -> str:
    value = r.required_string(key)
    if not NAME_RE.match(value):
        r.fail(f"{value!r} must be 1-64 letters, digits, '.', '_' or '-'", key)
    return value


def _gateway(r: OptionReader) -> GatewayConfig:
    out = GatewayConfig(
        name=_name(r) if r.has("name") else "borderlink",
        data_dir=Path(r.string("data_dir", "var")),
        drain_timeout=r.number("drain_timeout", 10.0, minimum=0.0, maximum=600.0),
        housekeeping_interval=r.number("housekeeping_interval", 5.0, minimum=0.05, maximum=3600.0),
        max_concurrent_parses=r.integer("max_concurrent_parses", 2, minimum=1, maximum=64),
        commit_delay=r.number("commit_delay", 0.003, minimum=0.0, maximum=0.05),
        sender=r.string("sender", ""),
    )
    r.finish()
    return out


def _tls(r: OptionReader) -> TlsConfig | None:
    table = r.raw("tls")
    if table is None:
        return None
    t = OptionReader(r.file, r.where("tls"), table)
    out = TlsConfig(
        ca_file=_opt_path(t.string("ca_file", None)),
        cert_file=_opt_path(t.string("cert_file", None)),
        key_file=_opt_path(t.string("key_file", None)),
        insecure=t.boolean("insecure", False),
    )
    t.finish()
    if (out.cert_file is None) != (out.key_file is None):
        t.fail("cert_file and key_file go together (a client certificate and its key)")
    return out


def _opt_path(value: str | None, base: Path | None = None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if base is None or path.is_absolute() else base / path


_TOPIC_BAD = re.compile(r"[+#\x00]")


def _mqtt(r: OptionReader, base: Path) -> MqttConfig:
    broker = r.string("broker", "embedded")
    if broker != "embedded" and not re.match(r"^mqtts?://[^/]+", broker):
        r.fail(f'{broker!r}: allowed: "embedded" or an mqtt:// or mqtts:// URL', "broker")
    prefix = r.string("prefix", "borderlink")
    if not prefix or _TOPIC_BAD.search(prefix) or prefix.startswith("/") or prefix.endswith("/"):
        r.fail(f"{prefix!r} must be a topic prefix without +, #, or edge slashes", "prefix")
    client_id = r.string("client_id", "borderlink")
    if not client_id or len(client_id) > 64:
        r.fail("must be 1-64 characters", "client_id")
    out = MqttConfig(
        enabled=r.boolean("enabled", True),
        broker=broker,
        embedded_host=r.string("embedded_host", "127.0.0.1"),
        embedded_port=r.integer("embedded_port", 1883, minimum=1, maximum=65535),
        prefix=prefix,
        client_id=client_id,
        protocol=r.string("protocol", "5", choices=PROTOCOLS),
        keepalive=r.integer("keepalive", 30, minimum=5, maximum=65535),
        timeout=r.integer("timeout", 10, minimum=1, maximum=600),
        session_expiry=r.integer("session_expiry", 7 * 24 * 3600, minimum=0),
        input=r.boolean("input", True),
        shared_group=r.string("shared_group", ""),
        publish_status=r.boolean("publish_status", True),
        publish_active=r.boolean("publish_active", True),
        username=r.string("username", None),
        password=r.secret("password", base=base),
        tls=_tls(r),
        validation=r.string("validation", "hold", choices=VALIDATION_MODES),
        require_signature=r.boolean("require_signature", False),
        trust_anchors=r.strings("trust_anchors"),
        trust=r.string("trust", None, choices=TRUST_LEVELS),
        embedded_auth=r.boolean("embedded_auth", True),
        embedded_password_file=r.string("embedded_password_file", "mqtt-password"),
        embedded_users_file=_opt_path(r.string("embedded_users_file", None), base),
        embedded_acl=_acl(r),
        embedded_tls=_embedded_tls(r, base),
    )
    r.finish()
    if out.embedded and out.tls is not None:
        r.fail(
            "tls is how the gateway reaches a broker URL; the embedded broker's own TLS is"
            " embedded_tls = { cert_file, key_file }"
        )
    if out.shared_group and (out.embedded or out.protocol != "5"):
        r.fail(
            'shared subscriptions need an external MQTT 5 broker (broker = "mqtt://...",'
            ' protocol = "5")',
            "shared_group",
        )
    if (
        out.embedded
        and not _loopback(out.embedded_host)
        and (not out.embedded_auth or out.embedded_tls is None)
    ):
        r.fail(
            f"{out.embedded_host!r} is beyond loopback: the embedded broker listens there only"
            " with embedded_auth = true and embedded_tls = { cert_file, key_file }",
            "embedded_host",
        )
    return out


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _acl(r: OptionReader) -> dict[str, dict[str, tuple[str, ...]]]:
    table = r.raw("embedded_acl")
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        r.fail(
            "must be a table of accounts: { name = { publish = [...], subscribe = [...] } }",
            "embedded_acl",
        )
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, rules in table.items():
        a = OptionReader(r.file, r.where(f"embedded_acl.{name}"), rules)
        entry = {key: a.strings(key) for key in ("publish", "subscribe")}
        a.finish()
        for key, filters in entry.items():
            for topic in filters:
                if (
                    not topic
                    or "\x00" in topic
                    or any(
                        ("#" in level and level != "#") or ("+" in level and level != "+")
                        for level in topic.split("/")
                    )
                    or ("#" in topic and not topic.endswith("#"))
                ):
                    a.fail(f"{topic!r} is not an MQTT topic filter", key)
        out[str(name)] = entry
    return out


def _embedded_tls(r: OptionReader, base: Path) -> TlsConfig | None:
    table = r.raw("embedded_tls")
    if table is None:
        return None
    t = OptionReader(r.file, r.where("embedded_tls"), table)
    cert = _opt_path(t.string("cert_file", None), base)
    key = _opt_path(t.string("key_file", None), base)
    t.finish()
    if cert is None or key is None:
        t.fail("needs cert_file and key_file (the broker's certificate and private key)")
    for name, path in (("cert_file", cert), ("key_file", key)):
        if not path.is_file():
            t.fail(f"{path} is not a readable file", name)
    return TlsConfig(cert_file=cert, key_file=key)


def _http(r: OptionReader, base: Path) -> HttpConfig:
    tokens: list[str] = []
    origin: list[str] = []  # the key each token came from
    single = r.secret("token", base=base)
    if single:
        tokens.append(single)
        origin.append("token_env" if r.has("token_env") else "token_file")
    tokens_file = r.string("tokens_file", None)
    if tokens_file is not None:
        path = Path(tokens_file)
        path = path if path.is_absolute() else base / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            r.fail(f"cannot read {path}: {exc.strerror or exc}", "tokens_file")
        listed = [x.strip() for x in lines if x.strip() and not x.startswith("#")]
        tokens.extend(listed)
        origin.extend("tokens_file" for _ in listed)
    for token, key in zip(tokens, origin, strict=True):
        if len(token) < 16:
            r.fail("every API token must be at least 16 characters", key)
    out = HttpConfig(
        enabled=r.boolean("enabled", True),
        host=r.string("host", "127.0.0.1"),
        port=r.integer("port", 8080, minimum=0, maximum=65535),
        tokens=tuple(tokens),
        generate_token_file=r.string("generate_token_file", None),
        max_body_bytes=r.integer("max_body_bytes", 8 * 1024 * 1024, minimum=1024),
        max_inflight_bytes=r.integer("max_inflight_bytes", 16 * 1024 * 1024, minimum=1024),
        header_timeout=r.number("header_timeout", 15.0, minimum=0.1, maximum=3600.0),
        body_timeout=r.number("body_timeout", 60.0, minimum=0.1, maximum=3600.0),
        max_connections=r.integer("max_connections", 256, minimum=1, maximum=100_000),
        validation=r.string("validation", "reject", choices=VALIDATION_MODES),
        require_signature=r.boolean("require_signature", False),
        trust_anchors=r.strings("trust_anchors"),
        trust=r.string("trust", None, choices=TRUST_LEVELS),
    )
    r.finish()
    if out.max_inflight_bytes < out.max_body_bytes:
        r.fail(
            f"{out.max_inflight_bytes} is below max_body_bytes ({out.max_body_bytes}):"
            " a largest alert could never be read",
            "max_inflight_bytes",
        )
    return out


def _console(r: OptionReader, data_dir: Path, base: Path) -> ConsoleConfig:
    def under_data_dir(key: str, default: str) -> Path:
        path = Path(r.string(key, default))
        return path if path.is_absolute() else data_dir / path

    out = ConsoleConfig(
        enabled=r.boolean("enabled", True),
        title=r.string("title", ""),
        language=r.string("language", "en", choices=CONSOLE_LANGUAGES),
        users_file=under_data_dir("users_file", "console-users"),
        secret_file=under_data_dir("secret_file", "console-secret"),
        generate_operator=r.boolean("generate_operator", False),
        password_file=under_data_dir("password_file", "console-password"),
        session_hours=r.number("session_hours", 12.0, minimum=0.01, maximum=24.0 * 30),
        lockout_failures=r.integer("lockout_failures", 5, minimum=1, maximum=1000),
        lockout_minutes=r.number("lockout_minutes", 15.0, minimum=0.01, maximum=24.0 * 60),
        stale_seconds=r.number("stale_seconds", 300.0, minimum=1.0, maximum=86400.0 * 7),
        signing_key_file=_opt_path(r.string("signing_key_file", None), base),
        signing_cert_file=_opt_path(r.string("signing_cert_file", None), base),
    )
    r.finish()
    if (out.signing_key_file is None) != (out.signing_cert_file is None):
        r.fail("signing needs both signing_key_file and signing_cert_file", "signing_key_file")
    return out


def _partner(r: OptionReader, base: Path) -> PartnerConfig:
    name = r.required_string("name")
    token = r.secret("token", base=base)
    if token is None:
        r.fail("a partner reads the feeds with a token: token_file or token_env", "token_file")
    if len(token) < 16:
        r.fail("a partner's token must be at least 16 characters", "token_file")
    out = PartnerConfig(
        name=name,
        token=token,
        requests_per_minute=r.integer("requests_per_minute", 60, minimum=1, maximum=100_000),
        ack_sender=r.string("ack_sender", ""),
        ack_within=r.duration("ack_within"),
    )
    r.finish()
    if out.ack_within is not None and not out.ack_sender:
        r.fail("needs ack_sender: the CAP sender of the partner's receipts", "ack_within")
    return out


def _ledger(r: OptionReader, data_dir: Path, base: Path) -> LedgerConfig:
    path = r.string("path", None)
    out = LedgerConfig(
        path=Path(path) if path is not None else data_dir / "ledger.sqlite3",
        dedup_floor_days=r.number("dedup_floor_days", 7.0, minimum=0.0),
        journal_retention_days=r.number("journal_retention_days", 90.0, minimum=1.0),
        prune_interval=r.number("prune_interval", 3600.0, minimum=1.0),
        backend=r.string("backend", "sqlite", choices=LEDGER_BACKENDS),
        dsn=r.string("dsn", None),
        password=r.secret("password", base=base),
        schema=r.string("schema", None),
    )
    r.finish()
    if out.backend == "postgresql":
        if not out.dsn or not re.match(r"^postgres(ql)?://", out.dsn):
            r.fail('the postgresql backend needs dsn = "postgresql://user@host:5432/db"', "dsn")
        if re.match(r"^postgres(ql)?://[^/@]*:[^/@]*@", out.dsn) or "password=" in out.dsn:
            r.fail("no password in the dsn: use password_file or password_env", "dsn")
        if out.schema is not None and not re.match(r"^[a-z_][a-z0-9_]{0,62}$", out.schema):
            r.fail(f"{out.schema!r}: lower-case letters, digits and _", "schema")
    elif out.dsn is not None or out.password is not None:
        r.fail('dsn and password are for backend = "postgresql"', "dsn")
    return out


# Keys of a [[source]] table the daemon reads; the rest is the adapter's.
_SIGNATURE_KEYS = ("trust_anchors", "require_signature", "allow_sha1", "allow_multiple_signatures")


def _source(r: OptionReader) -> SourceConfig:
    name = _name(r)
    kind = r.required_string("type")
    signature = {k: r.raw(k) for k in _SIGNATURE_KEYS if r.has(k)}
    return SourceConfig(
        name=name,
        type=kind,
        enabled=r.boolean("enabled", True),
        required=r.boolean("required", False),
        validation=r.string("validation", "hold", choices=VALIDATION_MODES),
        profile=r.string("profile", "auto", choices=PROFILES),
        signature=MappingProxyType(signature),
        trust=r.string("trust", None, choices=TRUST_LEVELS),
        leader_only=r.boolean("leader_only", kind in LEADER_ONLY_TYPES),
        acknowledge=r.boolean("acknowledge", False),
        options=MappingProxyType(r.rest()),
    )


def _sink(r: OptionReader) -> SinkConfig:
    name = _name(r)
    kind = r.required_string("type")
    retry_initial = r.number("retry_initial", 1.0, minimum=0.01, maximum=3600.0)
    live = r.boolean("live", False)
    return SinkConfig(
        name=name,
        type=kind,
        live=live,
        format=r.string("format", "cap", choices=FORMATS),
        enabled=r.boolean("enabled", True),
        retry_initial=retry_initial,
        retry_max=r.number("retry_max", 60.0, minimum=retry_initial, maximum=86400.0),
        max_attempts=r.integer("max_attempts", 0, minimum=0),
        batch=r.integer("batch", 16, minimum=1, maximum=1000),
        send_timeout=r.number("send_timeout", 30.0, minimum=0.1, maximum=3600.0),
        in_doubt=r.string("in_doubt", "hold" if live else "resend", choices=IN_DOUBT_CHOICES),
        instance=r.string("instance", ""),
        options=MappingProxyType(r.rest()),
    )


def _region(r: OptionReader) -> Region:
    polygon = r.raw("polygon")
    circle = r.raw("circle")
    if (polygon is None) == (circle is None):
        r.fail("give exactly one of polygon = [[lat, lon], ...] or circle = [lat, lon, radius_km]")
    if polygon is not None:
        if not isinstance(polygon, list) or len(polygon) < 3:
            r.fail("must be a list of at least 3 [lat, lon] pairs", "polygon")
        points: list[tuple[float, float]] = []
        for i, pair in enumerate(polygon):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
            ):
                r.fail(f"point {i} must be [lat, lon] numbers, got {pair!r}", "polygon")
            lat, lon = float(pair[0]), float(pair[1])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                r.fail(f"point {i} ({lat}, {lon}) is outside -90..90, -180..180", "polygon")
            points.append((lat, lon))
        if points[0] != points[-1]:
            points.append(points[0])
        r.finish()
        return Region(polygon=tuple(points))
    if (
        not isinstance(circle, list)
        or len(circle) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in circle)
    ):
        r.fail(f"must be [lat, lon, radius_km], got {circle!r}", "circle")
    lat, lon, radius = (float(v) for v in circle)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or radius < 0:
        r.fail("needs -90 <= lat <= 90, -180 <= lon <= 180 and radius_km >= 0", "circle")
    r.finish()
    return Region(circle=(lat, lon, radius))


def _filters(r: OptionReader) -> Filters:
    regions_raw = r.raw("regions")
    region_one = r.raw("region")
    tables: list[object] = []
    if region_one is not None:
        tables.append(region_one)
    if regions_raw is not None:
        if not isinstance(regions_raw, list):
            r.fail("must be a list of tables", "regions")
        tables.extend(regions_raw)
    regions = tuple(
        _region(OptionReader(r.file, r.where(f"regions[{i}]"), t)) for i, t in enumerate(tables)
    )
    out = Filters(
        status=r.strings("status", choices=[s.value for s in Status], fold=True),
        msg_type=r.strings("msg_type", choices=[s.value for s in MsgType], fold=True),
        scope=r.strings("scope", choices=[s.value for s in Scope], fold=True),
        event=tuple(e.lower() for e in r.strings("event")),
        event_codes=r.strings("event_codes"),
        severity=r.strings("severity", choices=[s.value for s in Severity], fold=True),
        urgency=r.strings("urgency", choices=[s.value for s in Urgency], fold=True),
        certainty=r.strings("certainty", choices=[s.value for s in Certainty], fold=True),
        language=tuple(x.lower() for x in r.strings("language")),
        geocodes=r.strings("geocodes"),
        regions=regions,
        near_border_km=(
            r.number("near_border_km", 0.0, minimum=0.0, maximum=MAX_BORDER_KM)
            if r.has("near_border_km")
            else None
        ),
        signature=r.strings("signature", choices=SIGNATURE_STATES),
        profile=r.strings("profile", choices=PROFILES[1:]),
        trust=r.strings("trust", choices=TRUST_LEVELS),
    )
    r.finish()
    return out


def _route(r: OptionReader, index: int) -> RouteConfig:
    name = _name(r) if r.has("name") else f"route-{index + 1}"
    sinks = r.strings("sinks")
    if not sinks:
        r.fail("is required: the names of the sinks this route delivers to", "sinks")
    sources = r.strings("sources")
    kind = r.string("input", "cap", choices=INPUTS)
    match = _filters(OptionReader(r.file, r.where("match"), r.table_of("match")))
    if kind == "incident" and match != Filters():
        r.fail(
            'filters CAP alerts; a route with input = "incident" filters by sources,'
            " channels and senders",
            "match",
        )
    if kind == "cap":
        for key in ("channels", "senders", "expire_after"):
            if r.has(key):
                r.fail('applies to routes with input = "incident" only', key)
    expire_after = r.number("expire_after", 0.0, minimum=1) if r.has("expire_after") else None
    out = RouteConfig(
        name=name,
        sinks=sinks,
        sources=frozenset(sources) if sources else None,
        match=match,
        translation=r.string(
            "translation", "identity" if kind == "cap" else DEFAULT_MESSAGE_TRANSLATION
        ),
        translation_options=MappingProxyType(r.table_of("translation_options")),
        action=r.string("action", "deliver", choices=ACTIONS),
        allow_non_actual=r.boolean("allow_non_actual", False),
        allow_unsigned_live=r.boolean("allow_unsigned_live", False),
        live_trust=r.string("live_trust", AUTHENTICATED, choices=TRUST_LEVELS),
        enabled=r.boolean("enabled", True),
        input=kind,
        channels=tuple(c.casefold() for c in r.strings("channels")),
        senders=tuple(c.casefold() for c in r.strings("senders")),
        expire_after=None if expire_after is None else float(expire_after),
        approval=r.string("approval", SINGLE, choices=APPROVALS),
    )
    r.finish()
    if out.approval != SINGLE and kind != "cap":
        r.fail("applies to alerts issued in the console (routes with input = \"cap\")",
               "approval")  # fmt: skip
    return out


def _simulator(r: OptionReader) -> SimulatorConfig:
    kind = r.required_string("type")
    name = r.string("name", kind)
    return SimulatorConfig(type=kind, name=name, options=MappingProxyType(r.rest()))


def _array(r: OptionReader, key: str) -> list[tuple[OptionReader, int]]:
    value = r.raw(key)
    if value is None:
        return []
    if not isinstance(value, list):
        r.fail(f"must be an array of tables ([[{key}]]), got {kind_of(value)}", key)
    readers = []
    for i, table in enumerate(value):
        name = table.get("name") if isinstance(table, Mapping) else None
        readers.append((OptionReader(r.file, item_path(key, i, name), table), i))
    return readers


def item_path(section: str, index: int, name: object = None) -> str:
    """How an error names one ``[[section]]`` table: its place counted from 1, and its name
    when it has one (``route #2 "canada-to-us"``)."""
    label = f"{section} #{index + 1}"
    return f'{label} "{name}"' if isinstance(name, str) and name else label


IN_DOUBT_CHOICES = ("resend", "hold", "skip")
# Source types that run on one instance at a time by default (see SourceConfig.leader_only).
LEADER_ONLY_TYPES = ("naad", "ipaws", "nws", "demo", "atom")
# Sources every gateway has: alerts posted over HTTP, the MQTT input, its own receipts, and
# the alerts its operators compose in the console.
BUILT_IN_SOURCES = ("mqtt", "http", "receipts", "console")
LEDGER_BACKENDS = ("sqlite", "postgresql")
# The embedded broker's account for the gateway itself (its password is made at each start).
EMBEDDED_GATEWAY_USER = "borderlink-gateway"

_TOP_LEVEL = (
    "gateway", "mqtt", "http", "console", "ledger", "source", "sink", "route", "simulator", "link",
    "partner",
)  # fmt: skip


def parse_config(data: Mapping[str, Any], *, path: Path) -> Config:
    """Build a :class:`Config` from an already-read TOML mapping."""
    file = str(path)
    base = path.parent
    top = OptionReader(file, "", data)
    for key in data:
        if key not in _TOP_LEVEL:
            top.fail(f"unknown section {key!r}; allowed: {', '.join(_TOP_LEVEL)}")
    gateway = _gateway(OptionReader(file, "gateway", top.table_of("gateway")))
    mqtt = _mqtt(OptionReader(file, "mqtt", top.table_of("mqtt")), base)
    http = _http(OptionReader(file, "http", top.table_of("http")), base)
    ledger = _ledger(OptionReader(file, "ledger", top.table_of("ledger")), gateway.data_dir, base)
    console = _console(
        OptionReader(file, "console", top.table_of("console")), gateway.data_dir, base
    )
    sources = tuple(_source(sr) for sr, _ in _array(top, "source"))
    sinks = tuple(_sink(sr) for sr, _ in _array(top, "sink"))
    routes = tuple(_route(rr, i) for rr, i in _array(top, "route"))
    simulators = tuple(_simulator(sr) for sr, _ in _array(top, "simulator"))
    partners = tuple(_partner(pr, base) for pr, _ in _array(top, "partner"))
    _unique(file, "partner", [p.name for p in partners])
    if len({p.token for p in partners}) < len(partners):
        raise ConfigError(f"{file}: partner: two partners have the same token")
    links: list[Mapping[str, Any]] = []
    for lr, _ in _array(top, "link"):
        links.append(MappingProxyType(lr.table))

    _unique(file, "source", [s.name for s in sources], reserved=BUILT_IN_SOURCES)
    _unique(file, "sink", [s.name for s in sinks])
    _unique(file, "route", [r.name for r in routes])
    sink_names = {s.name for s in sinks}
    for i, bound in enumerate(sinks):
        if bound.instance and ledger.backend != "postgresql":
            raise ConfigError.at(
                file,
                f"{item_path('sink', i, bound.name)}.instance",
                f"{bound.instance!r}: a sink bound to one instance needs a ledger shared by"
                ' several ([ledger] backend = "postgresql"); with one instance, leave it out',
            )
    source_names = {s.name for s in sources} | set(BUILT_IN_SOURCES)
    for i, route in enumerate(routes):
        for sink in route.sinks:
            if sink not in sink_names:
                allowed = (
                    f"defined: {', '.join(sorted(sink_names))}"
                    if sink_names
                    else "the file defines no [[sink]]"
                )
                raise ConfigError.at(
                    file,
                    f"{item_path('route', i, route.name)}.sinks",
                    f"no sink named {sink!r}; {allowed}",
                )
        # Incident routes also take what radio sinks hear.
        known = source_names | sink_names if route.input == "incident" else source_names
        for source in sorted(route.sources or ()):
            if source not in known:
                raise ConfigError.at(
                    file,
                    f"{item_path('route', i, route.name)}.sources",
                    f"no source named {source!r}; defined: {', '.join(sorted(known))}",
                )
    return Config(
        path=path,
        gateway=gateway,
        mqtt=mqtt,
        http=http,
        ledger=ledger,
        console=console,
        partners=partners,
        sources=sources,
        sinks=sinks,
        routes=routes,
        simulators=simulators,
        links=tuple(links),
    )


def _unique(file: str, what: str, names: list[str], reserved: Sequence[str] = ()) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError.at(file, f"{item_path(what, i, name)}.name", "is used twice")
        if name in reserved:
            raise ConfigError.at(
                file, f"{item_path(what, i, name)}.name", "is reserved for the built-in input"
            )
        seen.add(name)


# --------------------------------------------------------------------------- environment


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _env_error(variable: str, detail: str) -> ConfigError:
    """A ``BORDERLINK_*`` variable that names nothing the file has: the variable is the place."""
    return ConfigError(f"environment {variable}: {detail}", variable=variable, detail=detail)


def apply_env_overrides(
    data: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    origins: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return a copy of ``data`` with every ``BORDERLINK_*`` override applied; ``origins``
    (when given) learns which key path each variable set, so an error names the variable."""
    origins = {} if origins is None else origins
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest:
            continue  # BORDERLINK_LOG_LEVEL, secrets named in *_env keys, ...
        parts = rest.split("__")
        section = parts[0].lower()
        if section in ("gateway", "mqtt", "http", "console", "ledger") and len(parts) == 2:
            table = out.setdefault(section, {})
            if not isinstance(table, dict):
                raise _env_error(name, f"[{section}] is not a table")
            table[parts[1].lower()] = _env_value(text)
            origins[f"{section}.{parts[1].lower()}"] = name
        elif section in ("source", "sink") and len(parts) == 3:
            wanted = parts[1].lower().replace("-", "_")
            entries = out.get(section) or []
            matches = [
                e
                for e in entries
                if isinstance(e, dict)
                and str(e.get("name", "")).lower().replace("-", "_") == wanted
            ]
            if not matches:
                raise _env_error(name, f"no [[{section}]] named {parts[1]!r}")
            copy = dict(matches[0])
            copy[parts[2].lower()] = _env_value(text)
            index = next(i for i, e in enumerate(entries) if e is matches[0])
            origins[f"{item_path(section, index, copy.get('name'))}.{parts[2].lower()}"] = name
            out[section] = [copy if e is matches[0] else e for e in entries]
        else:
            raise _env_error(
                name,
                "expected BORDERLINK_<gateway|mqtt|http|ledger>__<KEY>"
                " or BORDERLINK_<SOURCE|SINK>__<NAME>__<KEY>",
            )
    return out


def load_config(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, override from the environment, and check one configuration file."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError.at(file, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        detail = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError.at(file, None, detail) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.at(file, None, f"not valid TOML: {exc}") from None
    origins: dict[str, str] = {}
    overridden = apply_env_overrides(data, environ, origins)
    token = ENV_ORIGINS.set(origins)
    try:
        return parse_config(overridden, path=file)
    finally:
        ENV_ORIGINS.reset(token)
