"""The daemon: receive → parse → verify → validate → admit (and plan) → ack → deliver → observe.

One :class:`Daemon` runs every part of borderlink inside one :class:`asyncio.TaskGroup`:

* the in-process simulators of ``[[simulator]]`` blocks (opened first, closed last);
* the embedded MQTT broker when ``[mqtt] broker = "embedded"``;
* one supervised task per source: each :class:`~gateway.adapter.Received` is parsed,
  its signature checked against the source's policy, validated, and admitted by the ledger in
  one durable transaction that also stores the router's planned deliveries; only then is the
  source acknowledged (an MQTT PUBACK);
* one supervised worker per sink, taking due outbox entries in priority order (Broadcast-
  Immediately first) and marking each delivered or failed (retry with backoff, or a final
  failure with a reason) — an entry stays pending until its sink confirmed it;
* the retained-state publisher (``{prefix}/status``, ``{prefix}/active/{key}``);
* housekeeping (expiry of entries and alerts, pruning) and the HTTP API.

A document that cannot be admitted — not XML, hostile, not CAP, a broken or untrusted
signature where one is required, errors under a ``reject`` validation mode — is counted in
``borderlink_input_rejected_total``, logged with its reason, recorded by
:meth:`~gateway.ledger.Ledger.record_invalid`, acknowledged, and changes nothing else.

Stopping (SIGTERM/SIGINT): sources stop taking input, sinks finish what is in flight for at
most ``[gateway] drain_timeout`` seconds, then everything closes; what was not delivered stays
pending in the outbox for the next start. SIGHUP re-reads the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import structlog

from cap_schemas.errors import CapParseError
from cap_schemas.model import Alert, AlertKey, MsgType
from cap_schemas.parse import parse_alert
from cap_schemas.signature import SignaturePolicy
from cap_schemas.validate import Finding, detect_profile, validate
from gateway.adapter import (
    AdapterContext,
    Clock,
    DoorTrust,
    HealthReporting,
    Received,
    SinkAdapter,
    SourceAdapter,
    SourceHealth,
    SystemClock,
    load_factory,
)
from gateway.assembly import check_names
from gateway.config import (
    EMBEDDED_GATEWAY_USER,
    Config,
    SinkConfig,
    SourceConfig,
    load_config,
)
from gateway.errors import (
    AdapterConnectionError,
    AdapterError,
    ConfigError,
    DeliveryError,
    FrameError,
)
from gateway.http import start_http
from gateway.ledger import (
    ANONYMOUS,
    AUTHENTICATED,
    TRUST_LEVELS,
    VERIFIED,
    Admission,
    Decision,
    Ledger,
    OutboxEntry,
    Provenance,
    StoredAlert,
    trust_rank,
)
from gateway.links import from_config as links_from_config
from gateway.messages import message_key, message_record, parse_inbound
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.router import MessageContext, PlanContext, Router, plan_message
from gateway.simulators import load_simulator
from gateway.storage.sqlite import SqliteLedger
from gateway.summary import summary, topic_key
from gateway.supervisor import Backoff, Supervisor

log = structlog.get_logger(__name__)

__all__ = ["Daemon", "Outcome", "SourcePolicy"]

RECEIVED = REGISTRY.counter(
    "borderlink_received_total", "Documents received, by source", ("source",)
)
REJECTED = REGISTRY.counter(
    "borderlink_rejected_total",
    "Documents refused before admission, by source and reason",
    ("source", "reason"),
)
ADMITTED = REGISTRY.counter(
    "borderlink_admitted_total", "Alerts admitted by the ledger, by decision", ("decision",)
)
DELIVERIES = REGISTRY.counter(
    "borderlink_deliveries_total",
    "Delivery attempts, by sink and outcome (delivered, retry, failed)",
    ("sink", "outcome"),
)
DELIVERY_LATENCY = REGISTRY.histogram(
    "borderlink_delivery_latency_seconds",
    "Time from receipt of an alert to its confirmed delivery, by sink",
    ("sink",),
)
QUEUE_DEPTH = REGISTRY.gauge(
    "borderlink_queue_depth", "Pending outbox entries, by sink", ("sink",)
)
LAST_MESSAGE = REGISTRY.gauge(
    "borderlink_source_last_message_timestamp_seconds",
    "Unix time of the last document received, by source",
    ("source",),
)
COMPONENT = "daemon"

HTTP_SOURCE = "http"
MQTT_SOURCE = "mqtt"
MQTT_STATE = "mqtt-state"
_SUPERSEDING = frozenset({MsgType.UPDATE, MsgType.CANCEL})
_LEASE_MARGIN = 30.0  # seconds a claimed entry stays taken beyond its sink's send_timeout
_REOPEN_POLL = 1.0  # seconds between looks at a closed radio sink's inbound stream


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """What the daemon demands of one source's documents."""

    name: str
    signature: SignaturePolicy = field(default_factory=lambda: SignaturePolicy(require=False))
    validation: str = "hold"  # reject | hold | warn
    profile: str = "auto"
    required: bool = False
    door: str = ANONYMOUS  # how far the way in is trusted (see _door)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one received document."""

    source: str
    admission: Admission | None = None
    alert: Alert | None = None
    findings: tuple[Finding, ...] = ()
    signature: str = ""
    rejected: str = ""  # the reason code when refused before admission
    message: str = ""
    provenance: Provenance | None = None

    @property
    def accepted(self) -> bool:
        return self.admission is not None


class _Rejected(Exception):
    def __init__(self, reason: str, message: str, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.findings = tuple(findings)


def _adapter_trust(adapter: object) -> str:
    """What a source's way in proves (its :class:`DoorTrust`), anonymous when it says
    nothing."""
    if isinstance(adapter, DoorTrust):
        level = adapter.door_trust()
        return level if level in TRUST_LEVELS else ANONYMOUS
    return ANONYMOUS


def _door(proved: str, require_signature: bool, lowered: str | None) -> str:
    """A door's trust: verified when it admits only validly signed alerts, else what its
    peer proved; a configured ``trust`` may lower it, never raise it."""
    level = VERIFIED if require_signature else proved
    if lowered is not None and trust_rank(lowered) < trust_rank(level):
        return lowered
    return level


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


# The MQTT pieces live in adapters/; the gateway reaches them by name only.
MQTT_STATE_FACTORY = "adapters.mqtt.adapter:state_publisher"
MQTT_BROKER_FACTORY = "adapters.mqtt.broker:embedded_broker"


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
        self.sources: dict[str, SourceAdapter] = {}
        self.sinks: dict[str, SinkAdapter] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._stopping = asyncio.Event()
        self._state_queue: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue(10_000)
        self._state_resync = False
        self.started = asyncio.Event()
        self.tokens: tuple[str, ...] = config.http.tokens
        self.token_file: Path | None = None
        self.http_port: int | None = None
        self.components: list[object] = []
        self.inbound_sinks: dict[str, Any] = {}
        self.mqtt_password_file: Path | None = None
        self._parse_slots = asyncio.Semaphore(config.gateway.max_concurrent_parses)
        self._mqtt_gateway_password = ""
        self._mqtt_operator_password = ""
        check_names(config)
        self._prepare_mqtt_access()
        self._build()

    # ------------------------------------------------------------------ building

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            msg = "the ledger is opened by run()"
            raise RuntimeError(msg)
        return self._ledger

    def _policy(self, name: str, kind: str, sig: Mapping[str, Any], **kw: Any) -> SourcePolicy:
        try:
            signature = SignaturePolicy.for_source(kind, sig, base_dir=self.config.base_dir)
        except (ValueError, OSError) as exc:
            msg = f"{self.config.path}: source {name!r}: {exc}"
            raise ConfigError(msg) from exc
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
        self.policies[HTTP_SOURCE] = self._policy(
            HTTP_SOURCE,
            "http",
            {"trust_anchors": list(cfg.http.trust_anchors),
             "require_signature": cfg.http.require_signature},
            validation=cfg.http.validation,
            door=_door(AUTHENTICATED, cfg.http.require_signature, cfg.http.trust),
        )
        if mqtt.enabled and mqtt.input:
            options = self._mqtt_defaults({"topics": [f"{mqtt.prefix}/in/cap"]})
            adapter = cast(
                "SourceAdapter", load_factory("mqtt")(self._context(MQTT_SOURCE, options))
            )
            self.policies[MQTT_SOURCE] = self._policy(
                MQTT_SOURCE,
                "mqtt",
                {"trust_anchors": list(mqtt.trust_anchors),
                 "require_signature": mqtt.require_signature},
                validation=mqtt.validation,
                door=_door(_adapter_trust(adapter), mqtt.require_signature, mqtt.trust),
            )
            self.sources[MQTT_SOURCE] = adapter
        for src in cfg.sources:
            if not src.enabled:
                continue
            adapter = cast("SourceAdapter", self._adapter(src))
            self.policies[src.name] = self._policy(
                src.name,
                src.type,
                src.signature,
                validation=src.validation,
                profile=src.profile,
                required=src.required,
                door=_door(
                    _adapter_trust(adapter),
                    bool(src.signature.get("require_signature", False)),
                    src.trust,
                ),
            )
            self.sources[src.name] = adapter
        for sink in cfg.sinks:
            if not sink.enabled:
                continue
            self.sinks[sink.name] = cast("SinkAdapter", self._adapter(sink))
            self._wake[sink.name] = asyncio.Event()
        # Radios are sinks that also hear traffic: the daemon reads what they hear.
        self.inbound_sinks = {
            name: adapter
            for name, adapter in self.sinks.items()
            if name not in self.sources and callable(getattr(adapter, "subscribe", None))
        }

    def _adapter(self, item: SourceConfig | SinkConfig) -> object:
        options: Mapping[str, Any] = item.options
        if item.type == "mqtt":
            options = self._mqtt_defaults(options)
        try:
            return load_factory(item.type)(self._context(item.name, options))
        except ConfigError as exc:
            kind = "source" if isinstance(item, SourceConfig) else "sink"
            msg = f"{self.config.path}: {kind} {item.name!r}: {exc}"
            raise ConfigError(msg) from exc

    async def _seen(self, key: AlertKey) -> bool:
        return await asyncio.to_thread(self.ledger.seen, key)

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Begin a clean stop (SIGTERM/SIGINT)."""
        if not self._stopping.is_set():
            log.info("daemon_stopping", drain_timeout=self.config.gateway.drain_timeout)
            self._stopping.set()
            self.supervisor.stopping.set()
            for event in self._wake.values():
                event.set()

    def wake(self, sink: str) -> None:
        """Tell a sink worker that an entry became due (an approved hold)."""
        event = self._wake.get(sink)
        if event is not None:
            event.set()

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
        unknown = set(router.sinks) - set(self.sinks)
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

    def _reject(self, raw: bytes, source: str, received_at: datetime, exc: _Rejected) -> Outcome:
        INPUT_REJECTED.inc(component=COMPONENT, reason=exc.reason)
        REJECTED.inc(source=source, reason=exc.reason)
        log.warning(
            "alert_rejected", source=source, reason=exc.reason, detail=exc.message, size=len(raw)
        )
        self.ledger.record_invalid(
            raw, source=source, received_at=received_at, reason=f"{exc.reason}: {exc.message}"
        )
        return Outcome(source, rejected=exc.reason, message=exc.message, findings=exc.findings)

    def _screen(
        self, raw: bytes, source: str, policy: SourcePolicy
    ) -> tuple[Alert, Provenance, list[Finding], str]:
        """Parse, verify and validate; raise :class:`_Rejected` for what is refused."""
        try:
            alert = parse_alert(raw)
        except CapParseError as exc:
            raise _Rejected(f"parse_{exc.reason}", str(exc)) from None
        provenance = Provenance(source, door=policy.door)
        if alert.signature_count or policy.signature.require:
            report = policy.signature.check(raw, now=self.clock.now())
            if report.state == "invalid":
                raise _Rejected(f"signature_{report.reason}", report.message or report.reason)
            provenance = Provenance(
                source, door=policy.door, signature=report.state, signer=", ".join(report.signers)
            )
        findings = validate(alert, profile=policy.profile)
        errors = [f for f in findings if f.severity == "error"]
        hold_reason = ""
        if errors:
            first = errors[0]
            text = f"{first.rule} at {first.xpath}: {first.message}"
            if policy.validation == "reject":
                raise _Rejected("invalid", text, findings)
            if policy.validation == "hold":
                hold_reason = f"{len(errors)} validation error(s), first {text}"
            log.warning(
                "alert_has_errors",
                alert=str(alert.key),
                source=source,
                errors=len(errors),
                first=text,
                mode=policy.validation,
            )
        return alert, provenance, findings, hold_reason

    def process(self, raw: bytes, source: str, received_at: datetime) -> Outcome:
        """The synchronous part of the pipeline (run in a worker thread)."""
        RECEIVED.inc(source=source)
        LAST_MESSAGE.set(time.time(), source=source)
        policy = self.policies.get(source) or SourcePolicy(source)
        try:
            alert, provenance, findings, hold_reason = self._screen(raw, source, policy)
        except _Rejected as exc:
            return self._reject(raw, source, received_at, exc)
        except Exception as exc:  # a checker's bug must not block the input forever
            log.exception("alert_check_crashed", source=source, size=len(raw))
            problem = _Rejected("internal_error", f"{type(exc).__name__}: {exc}")
            return self._reject(raw, source, received_at, problem)
        ctx = PlanContext(
            alert=alert,
            source=source,
            signature=provenance.signature,
            profile=detect_profile(alert),
            trust=provenance.level,
        )
        router = self.router
        admission = self.ledger.admit(
            alert,
            source=source,
            received_at=received_at,
            plan=router.planner(ctx),
            provenance=provenance,
            hold=hold_reason,
        )
        ADMITTED.inc(decision=admission.decision.value)
        return Outcome(
            source,
            admission=admission,
            alert=alert,
            findings=tuple(findings),
            signature=provenance.signature,
            provenance=provenance,
        )

    async def ingest(self, item: Received) -> Outcome:
        """Process one received document; acknowledge it once its outcome is durable."""
        async with self._parse_slots:
            outcome = await asyncio.to_thread(
                self.process, item.raw, item.source, item.received_at
            )
        if item.ack is not None:
            await item.ack()
        self._after(outcome)
        return outcome

    def _after(self, outcome: Outcome) -> None:
        admission, alert = outcome.admission, outcome.alert
        if admission is None or alert is None:
            return
        if admission.routed:
            for event in self._wake.values():
                event.set()
        if not self.config.mqtt.publish_active:
            return
        if admission.decision in (Decision.NEW, Decision.UPDATE, Decision.HELD) and (
            alert.msg_type is not MsgType.CANCEL
        ):
            body = summary(alert, source=outcome.source, decision=admission.decision.value)
            self._state(topic_key(admission.key), _json(body))
        for key in admission.superseded:
            self._state(topic_key(key), None)

    def _state(self, key_level: str, payload: bytes | None) -> None:
        if MQTT_STATE not in self.components_running:
            return
        try:
            self._state_queue.put_nowait((key_level, payload))
        except asyncio.QueueFull:
            self._state_resync = True

    @property
    def components_running(self) -> set[str]:
        return {name for name, up in self.supervisor.running.items() if up}

    # ------------------------------------------------------------------ sources

    async def _run_source(self, name: str, adapter: SourceAdapter) -> None:
        async with adapter:
            async for item in adapter.messages():
                if self._stopping.is_set():
                    return  # not acknowledged: the source sends it again after the restart
                if item.kind != "cap":
                    await self._dispatch_other(item)
                    continue
                await self.ingest(item)

    async def _dispatch_other(self, item: Received) -> None:
        """Items that are not CAP: incident and radio messages are admitted and routed
        (``input = "incident"`` routes), then offered to the talkgroup links; acknowledged
        once that is durable."""
        handled = False
        if item.kind == "incident":
            admission = await asyncio.to_thread(self.process_message, item)
            if admission is not None and admission.routed:
                for event in self._wake.values():
                    event.set()
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

    def process_message(self, item: Received) -> Admission | None:
        """Admit one incident or radio message with its planned deliveries (worker thread);
        None when it is refused (counted, logged, kept in the ledger's invalid records)."""
        RECEIVED.inc(source=item.source)
        LAST_MESSAGE.set(time.time(), source=item.source)
        try:
            inbound = parse_inbound(item.raw, channel=item.channel)
        except FrameError as exc:
            INPUT_REJECTED.inc(component=COMPONENT, reason="message")
            REJECTED.inc(source=item.source, reason="message")
            log.warning(
                "message_rejected", source=item.source, error=str(exc), size=len(item.raw)
            )
            self.ledger.record_invalid(
                item.raw,
                source=item.source,
                received_at=item.received_at,
                reason=f"message: {exc}",
            )
            return None
        key = message_key(inbound, source=item.source, received_at=item.received_at, raw=item.raw)
        ctx = MessageContext(inbound, item.source, key, item.received_at)
        router = self.router
        admission = self.ledger.admit_message(
            message_record(inbound, key, item.raw),
            source=item.source,
            received_at=item.received_at,
            plan=lambda _admission: plan_message(router, ctx),
        )
        ADMITTED.inc(decision=admission.decision.value)
        return admission

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

    def _retry_at(self, sink: SinkConfig, attempts: int) -> datetime:
        delay = min(sink.retry_max, sink.retry_initial * 2 ** max(0, attempts - 1))
        delay *= 1.0 - 0.25 * self.supervisor.backoff.rng.random()
        return self.clock.now() + timedelta(seconds=delay)

    async def _attempt(
        self, cfg: SinkConfig, adapter: SinkAdapter, entry: OutboxEntry
    ) -> BaseException | None:
        """Send one entry; the error, or None once the sink confirmed it."""
        try:
            await asyncio.wait_for(adapter.send(entry.to_outbound()), timeout=cfg.send_timeout)
        except TimeoutError:
            return AdapterError(f"sink {cfg.name}: send timed out after {cfg.send_timeout} s")
        except (AdapterError, DeliveryError) as exc:
            return exc
        return None

    def _record(
        self, cfg: SinkConfig, results: Sequence[tuple[OutboxEntry, BaseException | None]]
    ) -> None:
        """Write the outcome of a batch of attempts to the ledger (one worker-thread hop)."""
        ledger = self.ledger
        delivered = [entry for entry, error in results if error is None]
        if delivered:
            now = self.clock.now()
            _done, refused = ledger.mark_delivered_many([e.id for e in delivered], now)
            for problem in refused:
                log.error("delivery_record_refused", sink=cfg.name, error=str(problem))
            for entry in delivered:
                DELIVERIES.inc(sink=cfg.name, outcome="delivered")
                DELIVERY_LATENCY.observe(
                    max(0.0, (now - entry.enqueued_at).total_seconds()), sink=cfg.name
                )
                log.info(
                    "alert_delivered",
                    alert=str(entry.key),
                    sink=cfg.name,
                    entry=entry.id,
                    route=entry.route,
                    priority=entry.priority,
                )
        for entry, error in results:
            now = self.clock.now()
            if error is None:
                continue
            if isinstance(error, DeliveryError):
                attempts = max(1, entry.attempts)  # claim() counted this attempt
                final = not error.retryable or (
                    cfg.max_attempts and attempts >= cfg.max_attempts
                )
                retry_at = None if final else self._retry_at(cfg, attempts)
                ledger.mark_failed(entry.id, str(error), retry_at=retry_at, at=now)
                DELIVERIES.inc(sink=cfg.name, outcome="failed" if final else "retry")
                log.warning(
                    "delivery_failed",
                    alert=str(entry.key),
                    sink=cfg.name,
                    entry=entry.id,
                    error=str(error),
                    retry_at=None if retry_at is None else retry_at.isoformat(),
                )
            else:
                # The link is down: retry as soon as it is back, in priority order.
                ledger.mark_failed(entry.id, str(error), retry_at=now, at=now)
                DELIVERIES.inc(sink=cfg.name, outcome="retry")

    async def _deliver(
        self, cfg: SinkConfig, adapter: SinkAdapter, entries: Sequence[OutboxEntry]
    ) -> None:
        """Send a batch in priority order (in flight together when the sink allows it),
        record every outcome, then raise the first link failure so the link restarts."""
        errors = await asyncio.gather(*(self._attempt(cfg, adapter, e) for e in entries))
        results = list(zip(entries, errors, strict=True))
        await asyncio.to_thread(self._record, cfg, results)
        for error in errors:
            if error is not None and not isinstance(error, DeliveryError):
                raise error

    async def _run_sink(self, cfg: SinkConfig, adapter: SinkAdapter) -> None:
        wake = self._wake[cfg.name]
        concurrent = bool(getattr(adapter, "concurrent_sends", False))
        limit = cfg.batch if concurrent else 1
        async with adapter:
            # A sink that can tell when its link drops is restarted at once, not at its
            # next delivery attempt.
            watch = getattr(adapter, "wait_closed", None)
            closed = asyncio.ensure_future(watch()) if watch is not None else None
            try:
                await self._sink_loop(cfg, adapter, wake, limit, closed)
            finally:
                if closed is not None:
                    closed.cancel()
                    with contextlib.suppress(asyncio.CancelledError, AdapterError):
                        await closed

    async def _sink_loop(
        self,
        cfg: SinkConfig,
        adapter: SinkAdapter,
        wake: asyncio.Event,
        limit: int,
        closed: asyncio.Future[None] | None,
    ) -> None:
        while True:
            wake.clear()
            if closed is not None and closed.done():
                closed.result()
            entries = await asyncio.to_thread(
                self.ledger.claim,
                cfg.name,
                self.clock.now(),
                limit=limit,
                lease=timedelta(seconds=cfg.send_timeout + _LEASE_MARGIN),
            )
            if not entries:
                if self._stopping.is_set():
                    return
                waiter = asyncio.ensure_future(wake.wait())
                watched: set[asyncio.Future[Any]] = {waiter}
                if closed is not None:
                    watched.add(closed)
                await asyncio.wait(watched, timeout=self._poll, return_when="FIRST_COMPLETED")
                waiter.cancel()
                continue
            await self._deliver(cfg, adapter, entries)

    _poll = 0.5

    # ------------------------------------------------------------------ state publisher

    async def _run_state(self, options: Mapping[str, Any]) -> None:
        publisher = _import(MQTT_STATE_FACTORY)(MQTT_STATE, options)
        async with publisher:
            if self.config.mqtt.publish_active:
                await self._resync_state(publisher)
            closed = asyncio.ensure_future(publisher.wait_closed())
            # The stop is watched too, not only cancellation: a cancel that lands as a publish
            # completes can be lost inside the MQTT client's wait (Python 3.11 wait_for).
            stop = asyncio.ensure_future(self._stopping.wait())
            try:
                while not self._stopping.is_set():
                    if self._state_resync:
                        await self._resync_state(publisher)
                    getter = asyncio.ensure_future(self._state_queue.get())
                    done, _ = await asyncio.wait(
                        {getter, closed, stop}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        if closed in done:
                            closed.result()
                        return
                    key_level, payload = getter.result()
                    if self.config.mqtt.publish_active:
                        await publisher.set_active(key_level, payload)
            finally:
                closed.cancel()
                stop.cancel()

    async def _resync_state(self, publisher: Any) -> None:
        self._state_resync = False
        while not self._state_queue.empty():
            self._state_queue.get_nowait()
        now = self.clock.now()
        floor = timedelta(days=self.config.ledger.dedup_floor_days)
        cursor = now - floor
        while True:
            gone = await asyncio.to_thread(self.ledger.deactivated_since, cursor, limit=500)
            for stored in gone:
                await publisher.set_active(topic_key(stored.key), None)
            if len(gone) < 500:
                break
            cursor = gone[-1].status_changed_at or now
        # One original at a time: NAAD alerts with embedded audio reach megabytes, and a
        # restart must not hold every active one in memory at once.
        active = await asyncio.to_thread(self.ledger.active, now)
        for listed in active:
            if self._stopping.is_set():
                return
            full = await asyncio.to_thread(self.ledger.get, listed.key)
            if full is not None:
                await publisher.set_active(topic_key(full.key), _stored_summary(full))
        log.info("mqtt_state_synced", active=len(active))

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping(self) -> None:
        ledger = self.ledger
        last_prune = 0.0
        interval = self.config.gateway.housekeeping_interval
        while not self._stopping.is_set():
            now = self.clock.now()
            expired = await asyncio.to_thread(ledger.expire_due, now)
            if expired:
                log.info("deliveries_expired", count=len(expired))
            gone = await asyncio.to_thread(ledger.expire_alerts, now)
            for stored in gone:
                self._state(topic_key(stored.key), None)
            mono = self.clock.monotonic()
            if mono - last_prune >= self.config.ledger.prune_interval:
                last_prune = mono
                await asyncio.to_thread(ledger.prune, now)
            for name in self.sinks:
                QUEUE_DEPTH.set(await asyncio.to_thread(ledger.pending_count, name), sink=name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)

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
        path = self.config.ledger.path
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteLedger(
            path,
            dedup_floor=timedelta(days=self.config.ledger.dedup_floor_days),
            journal_retention=timedelta(days=self.config.ledger.journal_retention_days),
            clock=self.clock,
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
        # Attempts under way when the last run stopped are retried now, not after their lease.
        policies = {s.name: s.in_doubt for s in self.config.sinks}
        await asyncio.to_thread(
            self.ledger.release_claims,
            self.clock.now(),
            lambda sink: policies.get(sink, "resend"),
        )
        self._prepare_tokens()
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.ledger.close)
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
                source_tasks.append(
                    group.create_task(
                        sup.supervise(name, _bind(self._run_source, name, adapter)),
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
                        _bind(self._run_sink, sink_cfg, self.sinks[sink_cfg.name]),
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
                        sup.supervise(MQTT_STATE, _bind(self._run_state, options)),
                        name=MQTT_STATE,
                    )
                )
            other.append(
                group.create_task(
                    sup.supervise("housekeeping", self._housekeeping), name="housekeeping"
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


def _bind(
    func: Callable[..., Awaitable[None]], *args: Any
) -> Callable[[], Awaitable[None]]:
    def call() -> Awaitable[None]:
        return func(*args)

    return call


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _stored_summary(stored: StoredAlert) -> bytes:
    try:
        alert = parse_alert(stored.raw)
    except CapParseError:
        return _json(stored.summary())
    return _json(summary(alert, source=stored.source, decision=stored.decision.value))

