"""Intake: receive → parse → verify → validate → admit (and plan) → acknowledge.

:class:`Intake` takes what the sources yield (:class:`~gateway.adapter.Received`): a CAP
document is parsed (hardened), its signature checked against the source's policy, validated
(XSD and profile), then admitted by the ledger with the router's planned deliveries in one
durable transaction; only then is the source acknowledged (an MQTT PUBACK, the HTTP answer).
An incident or radio message is parsed and admitted the same way (``input = "incident"``
routes). Screening runs in worker threads, at most ``[gateway] max_concurrent_parses`` at
once.

A document that cannot be admitted — not XML, hostile, not CAP, a broken or untrusted
signature where one is required, errors under a ``reject`` validation mode — is counted in
``borderlink_input_rejected_total``, logged with its reason, recorded by
:meth:`~gateway.ledger.Ledger.record_invalid`, acknowledged, and changes nothing else.

Every admitted alert carries its provenance: the trust of the door it came through
(:func:`door_trust`), its signature state and signer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from cap_schemas.errors import CapParseError
from cap_schemas.model import Alert
from cap_schemas.parse import parse_alert
from cap_schemas.signature import SignaturePolicy
from cap_schemas.validate import Finding, detect_profile, validate
from gateway.adapter import Clock, DoorTrust, Received
from gateway.errors import FrameError
from gateway.ledger import (
    ANONYMOUS,
    TRUST_LEVELS,
    VERIFIED,
    Admission,
    Ledger,
    Provenance,
    trust_rank,
)
from gateway.messages import message_key, message_record, parse_inbound
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.router import MessageContext, PlanContext, Router, plan_message

log = structlog.get_logger(__name__)

__all__ = ["Intake", "Outcome", "SourcePolicy", "adapter_trust", "door_trust"]

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
LAST_MESSAGE = REGISTRY.gauge(
    "borderlink_source_last_message_timestamp_seconds",
    "Unix time of the last document received, by source",
    ("source",),
)
COMPONENT = "daemon"


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """What the daemon demands of one source's documents."""

    name: str
    signature: SignaturePolicy = field(default_factory=lambda: SignaturePolicy(require=False))
    validation: str = "hold"  # reject | hold | warn
    profile: str = "auto"
    required: bool = False
    door: str = ANONYMOUS  # how far the way in is trusted (see door_trust)


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


def adapter_trust(adapter: object) -> str:
    """What a source's way in proves (its :class:`DoorTrust`), anonymous when it says
    nothing."""
    if isinstance(adapter, DoorTrust):
        level = adapter.door_trust()
        return level if level in TRUST_LEVELS else ANONYMOUS
    return ANONYMOUS


def door_trust(proved: str, require_signature: bool, lowered: str | None) -> str:
    """A door's trust: verified when it admits only validly signed alerts, else what its
    peer proved; a configured ``trust`` may lower it, never raise it."""
    level = VERIFIED if require_signature else proved
    if lowered is not None and trust_rank(lowered) < trust_rank(level):
        return lowered
    return level


class Intake:
    """The intake stage of a running daemon.

    ``ledger`` and ``router`` are looked up at each use (the router is replaced on reload);
    ``on_admitted`` is told of every admitted alert once its source was acknowledged.
    """

    def __init__(
        self,
        *,
        policies: Mapping[str, SourcePolicy],
        ledger: Callable[[], Ledger],
        router: Callable[[], Router],
        clock: Clock,
        max_concurrent_parses: int,
        on_admitted: Callable[[Outcome], None],
    ) -> None:
        self.policies = policies
        self._ledger = ledger
        self._router = router
        self.clock = clock
        self._slots = asyncio.Semaphore(max_concurrent_parses)
        self._on_admitted = on_admitted

    @property
    def ledger(self) -> Ledger:
        return self._ledger()

    @property
    def router(self) -> Router:
        return self._router()

    async def ingest(self, item: Received) -> Outcome:
        """Process one received document; acknowledge it once its outcome is durable."""
        async with self._slots:
            outcome = await asyncio.to_thread(self.process, item.raw, item.source, item.received_at)
        if item.ack is not None:
            await item.ack()
        self._on_admitted(outcome)
        return outcome

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
            log.warning("message_rejected", source=item.source, error=str(exc), size=len(item.raw))
            self.ledger.record_invalid(
                item.raw,
                source=item.source,
                received_at=item.received_at,
                reason=f"message: {exc}",
            )
            return None
        key = message_key(inbound, source=item.source, received_at=item.received_at, raw=item.raw)
        ctx = MessageContext(inbound, item.source, key, item.received_at, item.destinations)
        router = self.router
        admission = self.ledger.admit_message(
            message_record(inbound, key, item.raw),
            source=item.source,
            received_at=item.received_at,
            plan=lambda _admission: plan_message(router, ctx),
        )
        ADMITTED.inc(decision=admission.decision.value)
        return admission
