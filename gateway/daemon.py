"""The daemon: the assembly of the stages an alert walks through, run in one TaskGroup.

:class:`Daemon` builds, from a :class:`~gateway.config.Config`, the adapters (sources and
sinks, found by name in the adapter registry), each source's policy (signature, validation,
the trust of its door), and the stages, each in its own module:

* :mod:`gateway.intake` -- receive → parse → verify → validate → admit (and plan) →
  acknowledge; one supervised task per source (and per radio sink that hears traffic) feeds
  it; non-CAP traffic (incident and radio messages) is admitted too and offered to the
  talkgroup links;
* :mod:`gateway.delivery` -- one supervised worker per sink, taking due outbox entries in
  priority order and recording every outcome;
* :mod:`gateway.state_publisher` -- the retained ``{prefix}/status`` and
  ``{prefix}/active/{key}`` topics;
* :mod:`gateway.housekeeping` -- expiry, pruning and queue gauges;
* :mod:`gateway.partner_receipts` -- partners late to acknowledge what the console issued
  (when a ``[[partner]]`` sets ``ack_within``);

plus the in-process simulators of ``[[simulator]]`` blocks (opened first, closed last), the
embedded MQTT broker (``[mqtt] broker = "embedded"``), the talkgroup links and the HTTP API.

Stopping (SIGTERM/SIGINT): sources stop taking input, sinks finish what is in flight for at
most ``[gateway] drain_timeout`` seconds, then everything closes; what was not delivered stays
pending in the outbox for the next start. SIGHUP re-reads the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import structlog

from cap_schemas.model import Alert, AlertKey
from cap_schemas.signature import SignaturePolicy
from gateway.adapter import (
    AdapterContext,
    Clock,
    HealthReporting,
    Hearing,
    MultipleSignatures,
    Received,
    SinkAdapter,
    SourceAdapter,
    SourceHealth,
    SystemClock,
    TextProfiled,
    load_factory,
)
from gateway.approvals import CONSOLE_SOURCE
from gateway.assembly import check_names
from gateway.config import (
    EMBEDDED_GATEWAY_USER,
    Config,
    SinkConfig,
    SourceConfig,
    load_config,
)
from gateway.console.accounts import ensure_generated_operator
from gateway.delivery import SinkWorkers
from gateway.errors import (
    AdapterConnectionError,
    ConfigError,
)
from gateway.housekeeping import housekeeping
from gateway.http import start_http
from gateway.intake import Intake, Outcome, SourcePolicy, adapter_trust, door_trust
from gateway.ledger import (
    AUTHENTICATED,
    Admission,
    Decision,
    Ledger,
)
from gateway.links import from_config as links_from_config
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.partner_receipts import watch as watch_receipts
from gateway.receipts import ack_for, default_sender
from gateway.router import Router
from gateway.simulators import load_simulator
from gateway.state_publisher import RetainedState
from gateway.storage.postgres import PostgresLedger
from gateway.storage.sqlite import SqliteLedger
from gateway.supervisor import Backoff, Supervisor
from gateway.translate.text import profile_mismatch

log = structlog.get_logger(__name__)

__all__ = ["Daemon", "Outcome", "SourcePolicy"]

COMPONENT = "daemon"

HTTP_SOURCE = "http"
MQTT_SOURCE = "mqtt"
RECEIPT_SOURCE = "receipts"
# What a receipt answers: an alert the ledger took in (not a duplicate, stale or expired one).
ACKNOWLEDGED = frozenset({Decision.NEW, Decision.UPDATE, Decision.CANCEL, Decision.HELD})
MQTT_STATE = "mqtt-state"
PARTNER_RECEIPTS = "partner-receipts"
_REOPEN_POLL = 1.0  # seconds between looks at a closed radio sink's inbound stream
_LEAD_TTL = 5.0  # seconds a lease runs without renewal (a dead leader's tasks move on)
_LEAD_POLL = 1.0  # seconds between tries to lead, and between renewals


def _no_publisher(_name: str, _options: Mapping[str, Any]) -> Any:
    msg = "no MQTT connection is configured ([mqtt] enabled = false)"
    raise ConfigError(msg)


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


# The MQTT pieces live in adapters/; the gateway reaches them by name only.
MQTT_STATE_FACTORY = "adapters.mqtt.adapter:state_publisher"
MQTT_BROKER_FACTORY = "adapters.mqtt.broker:embedded_broker"
LEDGER_WAKEUPS = "ledger-wakeups"


class Daemon:
    """The running gateway. Build it from a :class:`Config`; ``await run()``."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        ledger: Ledger | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.supervisor = Supervisor(clock=self.clock, backoff=backoff)
        self.router = Router(config)
        self._ledger = ledger
        self.policies: dict[str, SourcePolicy] = {}
        self._acknowledging: set[str] = set()
        self._receipts: set[asyncio.Task[None]] = set()
        self.sources: dict[str, SourceAdapter] = {}
        self.sinks: dict[str, SinkAdapter] = {}
        self.elsewhere: dict[str, str] = {}  # sink -> the instance that delivers to it
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        self.tokens: tuple[str, ...] = config.http.tokens
        self.token_file: Path | None = None
        self.http_port: int | None = None
        self.components: list[object] = []
        self.inbound_sinks: dict[str, Any] = {}
        self.mqtt_password_file: Path | None = None
        self.console_password_file: Path | None = None  # the generated operator's
        # Sources run on one instance at a time, and those this instance leads now.
        self.leader_only = {s.name for s in config.sources if s.enabled and s.leader_only}
        self.leading: set[str] = set()
        self._mqtt_gateway_password = ""
        self._mqtt_operator_password = ""
        check_names(config)
        self._prepare_mqtt_access()
        self._build()
        # The stages (each its own module), sharing the ledger opened by run().
        self.intake = Intake(
            policies=self.policies,
            ledger=lambda: self.ledger,
            router=lambda: self.router,
            clock=self.clock,
            max_concurrent_parses=config.gateway.max_concurrent_parses,
            commit_delay=config.gateway.commit_delay,
            on_admitted=self._admitted,
        )
        self.delivery = SinkWorkers(
            ledger=lambda: self.ledger,
            clock=self.clock,
            rng=self.supervisor.backoff.rng,
            stopping=self._stopping,
            sinks=list(self.sinks),
            instance=config.gateway.name,
        )
        self.state = RetainedState(
            MQTT_STATE,
            factory=_import(MQTT_STATE_FACTORY) if config.mqtt.enabled else _no_publisher,
            ledger=lambda: self.ledger,
            clock=self.clock,
            stopping=self._stopping,
            running=lambda: self.supervisor.running.get(MQTT_STATE, False),
            publish_active=config.mqtt.publish_active,
            dedup_floor=timedelta(days=config.ledger.dedup_floor_days),
        )

    # ------------------------------------------------------------------ building

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            msg = "the ledger is opened by run()"
            raise RuntimeError(msg)
        return self._ledger

    def _policy(
        self, name: str, adapter: object, sig: Mapping[str, Any], **kw: Any
    ) -> SourcePolicy:
        """The source's policy; a source whose alerts carry several signatures (the
        :class:`~gateway.adapter.MultipleSignatures` ability) allows them by default."""
        several = isinstance(adapter, MultipleSignatures) and adapter.multiple_signatures
        try:
            signature = SignaturePolicy.from_options(
                sig, base_dir=self.config.base_dir, allow_multiple=several
            )
        except (ValueError, OSError) as exc:
            raise ConfigError.at(self.config.path, f"source {name!r}", str(exc)) from exc
        return SourcePolicy(name=name, signature=signature, **kw)

    def _context(self, name: str, options: Mapping[str, Any]) -> AdapterContext:
        return AdapterContext(
            name=name,
            options=options,
            clock=self.clock,
            seen=self._seen,
            config_path=str(self.config.path),
            data_dir=str(self.config.gateway.data_dir),
        )

    def _mqtt_defaults(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """An MQTT adapter's options, with the ``[mqtt]`` connection as defaults."""
        merged = dict(self.config.mqtt.connection_options())
        if self._mqtt_gateway_password:  # the embedded broker's account for the gateway
            merged.update(username=EMBEDDED_GATEWAY_USER, password=self._mqtt_gateway_password)
        if any(k in options for k in ("url", "username", "password_file", "password_env")):
            # Another broker: the gateway's credentials and TLS are not for it.
            for key in ("username", "password", "tls"):
                merged.pop(key, None)
            if "url" in options and self.config.mqtt.embedded:
                merged.pop("protocol", None)  # 3.1.1 was for the embedded broker only
        merged.update(options)
        return merged

    def _build(self) -> None:
        cfg = self.config
        mqtt = cfg.mqtt
        # Posting over HTTP needs a bearer token: the poster proved who it is.
        # Our own receipts (CAP Acks): made here, so as trusted as an authenticated input.
        self.policies[RECEIPT_SOURCE] = self._policy(
            RECEIPT_SOURCE, None, {}, validation="warn", door=AUTHENTICATED
        )
        # What operators compose in the console: named, signed in, checked before it comes.
        # Signed with the deployment's certificate, which is also what anchors it: the board
        # shows our own alerts as verified (an expired or replaced certificate: unsigned).
        console_cert = cfg.console.signing_cert_file
        self.policies[CONSOLE_SOURCE] = self._policy(
            CONSOLE_SOURCE,
            None,
            {"trust_anchors": [str(console_cert)], "require_signature": False}
            if console_cert is not None
            else {},
            validation="reject",
            door=AUTHENTICATED,
        )
        self._acknowledging = {s.name for s in cfg.sources if s.enabled and s.acknowledge}
        self.policies[HTTP_SOURCE] = self._policy(
            HTTP_SOURCE,
            None,
            {
                "trust_anchors": list(cfg.http.trust_anchors),
                "require_signature": cfg.http.require_signature,
            },
            validation=cfg.http.validation,
            door=door_trust(AUTHENTICATED, cfg.http.require_signature, cfg.http.trust),
        )
        if mqtt.enabled and mqtt.input:
            input_options: dict[str, Any] = {"topics": [f"{mqtt.prefix}/in/cap"]}
            if mqtt.shared_group:
                input_options["shared_group"] = mqtt.shared_group
            options = self._mqtt_defaults(input_options)
            adapter = cast(
                "SourceAdapter", load_factory("mqtt")(self._context(MQTT_SOURCE, options))
            )
            self.policies[MQTT_SOURCE] = self._policy(
                MQTT_SOURCE,
                adapter,
                {
                    "trust_anchors": list(mqtt.trust_anchors),
                    "require_signature": mqtt.require_signature,
                },
                validation=mqtt.validation,
                door=door_trust(adapter_trust(adapter), mqtt.require_signature, mqtt.trust),
            )
            self.sources[MQTT_SOURCE] = adapter
        for src in cfg.sources:
            if not src.enabled:
                continue
            adapter = cast("SourceAdapter", self._adapter(src))
            self.policies[src.name] = self._policy(
                src.name,
                adapter,
                src.signature,
                validation=src.validation,
                profile=src.profile,
                required=src.required,
                door=door_trust(
                    adapter_trust(adapter),
                    bool(src.signature.get("require_signature", False)),
                    src.trust,
                ),
            )
            self.sources[src.name] = adapter
        for sink in cfg.sinks:
            if not sink.enabled:
                continue
            if sink.instance and sink.instance != cfg.gateway.name:
                # Its hardware is on another instance: routed here, opened and claimed there.
                self.elsewhere[sink.name] = sink.instance
                continue
            self.sinks[sink.name] = cast("SinkAdapter", self._adapter(sink))
        self._check_text_routes(cfg)
        # Radios are sinks that also hear traffic: the daemon reads what they hear.
        self.inbound_sinks = {
            name: adapter
            for name, adapter in self.sinks.items()
            if name not in self.sources and isinstance(adapter, Hearing)
        }

    def _check_text_routes(self, cfg: Config) -> None:
        """A ``text`` route must size its parts to what each of its radio sinks takes."""
        for route in cfg.routes:
            if route.translation != "text":
                continue
            for name in route.sinks:
                adapter: object = self.sinks.get(name)
                if not isinstance(adapter, TextProfiled):
                    continue
                why = profile_mismatch(route.translation_options, adapter.text_profile)
                if why is not None:
                    raise ConfigError.at(
                        self.config.path,
                        f"route {route.name!r}.translation_options",
                        f"the text translation would give sink {name!r} {why}",
                    )

    def _adapter(self, item: SourceConfig | SinkConfig) -> object:
        options: Mapping[str, Any] = item.options
        if item.type == "mqtt":
            options = self._mqtt_defaults(options)
        try:
            return load_factory(item.type)(self._context(item.name, options))
        except ConfigError as exc:
            if exc.file is not None:
                raise
            kind = "source" if isinstance(item, SourceConfig) else "sink"
            if exc.place is not None:  # read with an OptionReader: the key path is known
                # An adapter that is both names its table one way; the daemon knows which.
                rest = exc.place.partition(f'"{item.name}"')[2]
                place = f'{kind} "{item.name}"{rest}'
                raise ConfigError.at(self.config.path, place, exc.detail) from exc
            raise ConfigError.at(self.config.path, f"{kind} {item.name!r}", str(exc)) from exc

    async def _seen(self, key: AlertKey) -> bool:
        return await asyncio.to_thread(self.ledger.seen, key)

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Begin a clean stop (SIGTERM/SIGINT)."""
        if not self._stopping.is_set():
            log.info("daemon_stopping", drain_timeout=self.config.gateway.drain_timeout)
            self._stopping.set()
            self.supervisor.stopping.set()
            self.delivery.wake()

    async def _follow_wakeups(self) -> None:
        """Shared ledger: wake a sink worker the moment any instance makes one of its entries
        pending (the workers still poll, more slowly, should a notification be missed)."""
        assert isinstance(self.ledger, PostgresLedger)
        local = set(self.sinks)
        async for sink in self.ledger.wakeups():
            if sink in local:
                self.delivery.wake(sink)

    def wake(self, sink: str) -> None:
        """Tell a sink worker that an entry became due (an approved hold)."""
        self.delivery.wake(sink)

    async def ingest(self, item: Received) -> Outcome:
        """Admit one received document (the intake stage); acknowledged once durable."""
        return await self.intake.ingest(item)

    def _admitted(self, outcome: Outcome) -> None:
        admission = outcome.admission
        if admission is not None and admission.routed:
            self.delivery.wake()
        self.state.admitted(outcome)
        if (
            admission is not None
            and admission.decision in ACKNOWLEDGED
            and outcome.alert is not None
            and outcome.source in self._acknowledging
        ):
            ack = ack_for(outcome.alert, sender=self.sender, received_at=self.clock.now())
            task = asyncio.create_task(self._acknowledge(ack, outcome.alert), name="receipt")
            self._receipts.add(task)
            task.add_done_callback(self._receipts.discard)

    @property
    def sender(self) -> str:
        """The CAP sender of what this gateway writes itself."""
        gateway = self.config.gateway
        return gateway.sender or default_sender(gateway.name)

    async def _acknowledge(self, ack: bytes, alert: Alert) -> None:
        """Admit our receipt for ``alert`` (routes carry it to the partner)."""
        outcome = await self.ingest(
            Received(raw=ack, source=RECEIPT_SOURCE, received_at=self.clock.now())
        )
        log.info("receipt_made", alert=str(alert.key), accepted=outcome.accepted)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def reload(self) -> bool:
        """Re-read the routes from the configuration file (SIGHUP); keep the old on error."""
        try:
            fresh = load_config(self.config.path)
            check_names(fresh)
            router = Router(fresh)
        except (ConfigError, ValueError) as exc:
            log.error("routes_reload_failed", path=str(self.config.path), error=str(exc))  # noqa: TRY400 - the message is the point
            return False
        unknown = set(router.sinks) - set(self.sinks) - set(self.elsewhere)
        if unknown:
            log.error(
                "routes_reload_failed",
                path=str(self.config.path),
                error=f"new sinks need a restart: {', '.join(sorted(unknown))}",
            )
            return False
        self.router = router
        log.info("routes_reloaded", routes=[r.name for r in router.routes])
        return True

    # ------------------------------------------------------------------ ingest

    # ------------------------------------------------------------------ sources

    async def _run_led_source(self, name: str, adapter: SourceAdapter) -> None:
        """Run a ``leader_only`` source only while this instance holds its lease: try every
        second, renew every second, stop it at once when the lease is lost (another instance
        takes over within ``_LEAD_TTL`` of this one's death) and give the lease up on a clean
        stop."""
        task = f"source:{name}"
        holder = self.config.gateway.name
        ttl = timedelta(seconds=_LEAD_TTL)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                token = await asyncio.to_thread(
                    self.ledger.lead, task, holder, self.clock.now(), ttl
                )
                if token is None:
                    await asyncio.wait({stop}, timeout=_LEAD_POLL)
                    continue
                log.info("leadership_taken", task=task, instance=holder, token=token)
                self.leading.add(name)
                runner = asyncio.ensure_future(self._run_source(name, adapter))
                try:
                    while not runner.done() and not self._stopping.is_set():
                        await asyncio.wait({runner, stop}, timeout=_LEAD_POLL)
                        if runner.done() or self._stopping.is_set():
                            break
                        renewed = await asyncio.to_thread(
                            self.ledger.lead, task, holder, self.clock.now(), ttl
                        )
                        if renewed != token:
                            log.warning("leadership_lost", task=task, instance=holder)
                            break
                finally:
                    self.leading.discard(name)
                    if not runner.done():
                        runner.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await runner  # a failure of the source itself reaches the supervisor
                if not runner.cancelled():
                    break  # the source came to its end (a demo with repeat = false): done
            await asyncio.to_thread(self.ledger.release_lead, task, holder, self.clock.now())
        finally:
            stop.cancel()

    async def _run_source(self, name: str, adapter: SourceAdapter) -> None:
        """Ingest a source's documents in its order, screening the next ones while earlier
        ones wait for their commit (see :meth:`Intake.run_ordered`)."""
        async with adapter:
            await self.intake.run_ordered(
                adapter.messages(), stopping=self._stopping.is_set, other=self._dispatch_other
            )

    async def ingest_message(self, item: Received) -> Admission | None:
        """Admit one incident or radio message and route it (``input = "incident"`` routes);
        None when it is refused (counted and kept among the invalid records)."""
        admission = await asyncio.to_thread(self.intake.process_message, item)
        if admission is not None and admission.routed:
            self.delivery.wake()
        return admission

    async def _dispatch_other(self, item: Received) -> None:
        """Items that are not CAP: incident and radio messages are admitted and routed
        (``input = "incident"`` routes), then offered to the talkgroup links; acknowledged
        once that is durable."""
        handled = False
        if item.kind == "incident":
            await self.ingest_message(item)
            handled = True
        for component in self.components:
            handler = getattr(component, "handle_received", None)
            if handler is not None:
                await handler(item)
                handled = True
                break
        if not handled:
            INPUT_REJECTED.inc(component=COMPONENT, reason="unhandled_kind")
            log.warning("input_unhandled", source=item.source, kind=item.kind)
        if item.ack is not None:
            await item.ack()

    async def _run_inbound(self, name: str, adapter: Any) -> None:
        """Read what a radio sink hears (its own stream). While the sink's link is down or
        closed (its worker reopens it) this looks again every second, so nothing heard after
        the link is back waits on a growing backoff."""
        waiting = False
        while not self._stopping.is_set():
            try:
                async for item in adapter.subscribe():
                    waiting = False
                    if self._stopping.is_set():
                        return
                    if item.kind == "incident":
                        await self._dispatch_other(item)
                    elif item.ack is not None:
                        await item.ack()
            except AdapterConnectionError as exc:
                if not waiting:
                    log.info("radio_inbound_waiting", sink=name, error=str(exc))
                waiting = True
            await self.clock.sleep(_REOPEN_POLL)

    # ------------------------------------------------------------------ sinks

    async def _housekeeping(self) -> None:
        cfg = self.config
        await housekeeping(
            self.ledger,
            clock=self.clock,
            interval=cfg.gateway.housekeeping_interval,
            prune_interval=cfg.ledger.prune_interval,
            sinks=list(self.sinks),
            stopping=self._stopping,
            gone=self.state.gone,
            wake=self.delivery.wake,
            beat=self._heartbeat,
            settle=self._settle_claims,
        )

    def _in_doubt_policy(self, sink: str) -> str:
        return next((s.in_doubt for s in self.config.sinks if s.name == sink), "resend")

    def _settle_claims(self) -> int:
        """The routine sweep: attempts whose lease ran out, and (on a shared ledger) those
        of an instance whose heartbeat lags its peers' by ``3 x housekeeping_interval``
        (at least 10 s)."""
        silent = timedelta(seconds=max(10.0, 3 * self.config.gateway.housekeeping_interval))
        return self.ledger.release_claims(
            self.clock.now(), self._in_doubt_policy, owner=None, silent_after=silent
        )

    async def _watch_receipts(self) -> None:
        await watch_receipts(
            self.ledger,
            self.config.partners,
            clock=self.clock,
            interval=self.config.gateway.housekeeping_interval,
            stopping=self._stopping,
        )

    def _heartbeat(self) -> None:
        self.ledger.heartbeat(self.config.gateway.name, self.clock.now(), sorted(self.leading))

    def cluster(self) -> dict[str, Any]:
        """This instance, what it leads, every instance seen on the ledger with what it leads
        and has under way, and the sinks delivered by another instance (a worker thread: it
        reads the ledger)."""
        return {
            "instance": self.config.gateway.name,
            "leads": sorted(self.leading),
            "peers": self.ledger.peers(),
            "sinks_elsewhere": dict(sorted(self.elsewhere.items())),
        }

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[bool, list[dict[str, Any]]]:
        """Whether every required source is alive, with a line per source and stream (and per
        radio sink the daemon listens to: its receive side, never required)."""
        ok = True
        lines: list[dict[str, Any]] = []
        listened = {**self.sources, **self.inbound_sinks}
        for name, adapter in listened.items():
            policy = self.policies.get(name)
            required = bool(policy and policy.required)
            running = self.supervisor.running.get(name, False)
            if name in self.leader_only and name not in self.leading:
                # another instance on the ledger leads it (this one takes over if it dies)
                lines.append(
                    {
                        "source": name,
                        "required": required,
                        "running": False,
                        "healthy": True,
                        "led_elsewhere": True,
                        "error": None,
                        "streams": [],
                    }
                )
                continue
            streams: list[SourceHealth] = []
            if isinstance(adapter, HealthReporting) and running:
                streams = adapter.health()
            alive = running and (not streams or any(s.healthy for s in streams))
            if required and not alive:
                ok = False
            lines.append(
                {
                    "source": name,
                    "required": required,
                    "running": running,
                    "healthy": alive,
                    "error": self.supervisor.last_error.get(name),
                    "streams": [
                        {
                            "name": s.name,
                            "healthy": s.healthy,
                            "last_message_at": None
                            if s.last_message_at is None
                            else s.last_message_at.isoformat(),
                            "detail": s.detail,
                        }
                        for s in streams
                    ],
                }
            )
        return ok, lines

    # ------------------------------------------------------------------ running

    def _open_ledger(self) -> Ledger:
        cfg = self.config.ledger
        dedup_floor = timedelta(days=cfg.dedup_floor_days)
        retention = timedelta(days=cfg.journal_retention_days)
        if cfg.backend == "postgresql":
            assert cfg.dsn is not None  # checked with the configuration
            return PostgresLedger(
                cfg.dsn,
                password=cfg.password,
                schema=cfg.schema,
                dedup_floor=dedup_floor,
                journal_retention=retention,
                clock=self.clock,
            )
        cfg.path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteLedger(
            cfg.path, dedup_floor=dedup_floor, journal_retention=retention, clock=self.clock
        )

    def _secret_file(self, name: str) -> tuple[Path, str]:
        """A secret kept in a file under the data directory: read it, or create it (0600)
        with a fresh random value on first use."""
        path = Path(name)
        if not path.is_absolute():
            path = self.config.gateway.data_dir / path
        if path.exists():
            return path, path.read_text(encoding="utf-8").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(value + "\n", encoding="utf-8")
        return path, value

    def _prepare_tokens(self) -> None:
        http = self.config.http
        if self.tokens or not http.generate_token_file:
            return
        self.token_file, token = self._secret_file(http.generate_token_file)
        self.tokens = (token,)

    def _prepare_console(self) -> None:
        """The demo's console account: ``operator`` with a generated password, made once."""
        console = self.config.console
        if not (self.config.http.enabled and console.enabled and console.generate_operator):
            return
        ensure_generated_operator(console.users_file, console.password_file)
        if console.password_file.exists():
            self.console_password_file = console.password_file

    def sink_health(self) -> list[dict[str, Any]]:
        """Each sink's worker: running or not, and its last error."""
        return [
            {
                "name": sink.name,
                "running": self.supervisor.running.get(sink.name, False),
                "error": self.supervisor.last_error.get(sink.name),
            }
            for sink in self.config.sinks
            if sink.name in self.sinks
        ]

    def _prepare_mqtt_access(self) -> None:
        """The embedded broker's accounts: the gateway's own for this run (never written),
        and the operator's, whose password is kept in ``embedded_password_file``."""
        mqtt = self.config.mqtt
        if not (mqtt.enabled and mqtt.embedded and mqtt.embedded_auth):
            return
        self._mqtt_gateway_password = secrets.token_urlsafe(24)
        self.mqtt_password_file, self._mqtt_operator_password = self._secret_file(
            mqtt.embedded_password_file
        )

    def _broker_access(self) -> dict[str, Any]:
        mqtt = self.config.mqtt
        tls = mqtt.embedded_tls
        tls_files = None if tls is None else (tls.cert_file, tls.key_file)
        if not mqtt.embedded_auth:
            return {"auth": None, "tls": tls_files}
        return {
            "auth": {
                "prefix": mqtt.prefix,
                "gateway_user": EMBEDDED_GATEWAY_USER,
                "gateway_password": self._mqtt_gateway_password,
                "operator_password": self._mqtt_operator_password,
                "users_file": mqtt.embedded_users_file,
                "acl": mqtt.embedded_acl,
            },
            "tls": tls_files,
        }

    async def _components(self, stack: contextlib.AsyncExitStack) -> None:
        """The talkgroup link manager, when ``[[link]]`` blocks are configured."""
        if not self.config.links:
            return
        manager = await stack.enter_async_context(links_from_config(self.config.links, self))
        self.components.append(manager)

    async def run(self) -> None:
        """Run until :meth:`request_stop`; returns after a clean stop."""
        cfg = self.config
        if self._ledger is None:
            self._ledger = self._open_ledger()
        if isinstance(self._ledger, PostgresLedger):
            # Several instances on one ledger: every sample says which one counted it.
            REGISTRY.constant_labels["borderlink_instance"] = cfg.gateway.name
        # Attempts under way when this instance last stopped are settled now (in doubt: each
        # sink's policy), not when their lease would have run out.
        await asyncio.to_thread(
            functools.partial(
                self.ledger.release_claims,
                self.clock.now(),
                self._in_doubt_policy,
                owner=cfg.gateway.name,
            )
        )
        self._prepare_tokens()
        self._prepare_console()
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.ledger.close)
            stack.callback(REGISTRY.constant_labels.pop, "borderlink_instance", None)
            for sim in cfg.simulators:
                factory = load_simulator(sim.type)
                await stack.enter_async_context(factory(sim.options))
                log.info("simulator_started", simulator=sim.name, type=sim.type)
            if cfg.mqtt.enabled and cfg.mqtt.embedded:
                broker = _import(MQTT_BROKER_FACTORY)
                await stack.enter_async_context(
                    broker(cfg.mqtt.embedded_host, cfg.mqtt.embedded_port, **self._broker_access())
                )
            await self._components(stack)
            runner = None
            if cfg.http.enabled:
                runner = await start_http(self)
                stack.push_async_callback(runner.cleanup)
            await self._run_tasks()

    async def _run_tasks(self) -> None:
        cfg = self.config
        sup = self.supervisor
        source_tasks: list[asyncio.Task[None]] = []
        sink_tasks: list[asyncio.Task[None]] = []
        other: list[asyncio.Task[None]] = []
        async with asyncio.TaskGroup() as group:
            for name, adapter in self.sources.items():
                run = self._run_led_source if name in self.leader_only else self._run_source
                source_tasks.append(
                    group.create_task(
                        sup.supervise(name, _bind(run, name, adapter)),
                        name=f"source:{name}",
                    )
                )
            source_tasks.extend(
                group.create_task(
                    sup.supervise(f"inbound:{name}", _bind(self._run_inbound, name, adapter)),
                    name=f"inbound:{name}",
                )
                for name, adapter in self.inbound_sinks.items()
            )
            sink_tasks.extend(
                group.create_task(
                    sup.supervise(
                        sink_cfg.name,
                        _bind(self.delivery.run, sink_cfg, self.sinks[sink_cfg.name]),
                    ),
                    name=f"sink:{sink_cfg.name}",
                )
                for sink_cfg in cfg.sinks
                if sink_cfg.name in self.sinks
            )
            if cfg.mqtt.enabled and (cfg.mqtt.publish_status or cfg.mqtt.publish_active):
                options = self._mqtt_defaults({})
                other.append(
                    group.create_task(
                        sup.supervise(MQTT_STATE, _bind(self.state.run, options)),
                        name=MQTT_STATE,
                    )
                )
            other.append(
                group.create_task(
                    sup.supervise("housekeeping", self._housekeeping), name="housekeeping"
                )
            )
            if any(p.ack_within is not None for p in cfg.partners):
                other.append(
                    group.create_task(
                        sup.supervise(PARTNER_RECEIPTS, self._watch_receipts),
                        name=PARTNER_RECEIPTS,
                    )
                )
            if isinstance(self.ledger, PostgresLedger):
                other.append(
                    group.create_task(
                        sup.supervise(LEDGER_WAKEUPS, self._follow_wakeups),
                        name=LEDGER_WAKEUPS,
                    )
                )
            self.started.set()
            log.info(
                "daemon_started",
                sources=sorted(self.sources),
                sinks=sorted(self.sinks),
                routes=[r.name for r in self.router.routes],
                http=None if self.http_port is None else f"{cfg.http.host}:{self.http_port}",
            )
            await self._stopping.wait()
            for task in source_tasks:
                task.cancel()
            # Drain: sinks deliver what is due, for at most drain_timeout seconds.
            if sink_tasks:
                _, pending = await asyncio.wait(sink_tasks, timeout=cfg.gateway.drain_timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    log.warning("drain_timed_out", unfinished=len(pending))
            for task in other:
                task.cancel()
        log.info("daemon_stopped")


def _bind(func: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Awaitable[None]]:
    def call() -> Awaitable[None]:
        return func(*args)

    return call
