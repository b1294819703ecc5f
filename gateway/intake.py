"""Intake: receive → parse → verify → validate → admit (and plan) → acknowledge.

:class:`Intake` takes what the sources yield (:class:`~gateway.adapter.Received`): a CAP
document is parsed (hardened), its signature checked against the source's policy, validated
(XSD and profile), then admitted by the ledger with the router's planned deliveries in one
durable transaction; only then is the source acknowledged (an MQTT PUBACK, the HTTP answer).
An incident or radio message is parsed and admitted the same way (``input = "incident"``
routes). Screening runs in worker threads, at most ``[gateway] max_concurrent_parses`` at
once.

Admission is a group commit: documents admitted together (up to :data:`MAX_BATCH`) are
admitted one after the other inside the ledger's
:meth:`~gateway.ledger.LedgerBase.admission_batch` -- on SQLite one transaction with one
synced commit, each admission in a savepoint of its own; elsewhere each in its own
transaction, only the last one waiting for the disk (the earlier ones are durable with it).
The batch runs in a worker thread, or on the event loop's own thread where the ledger waits
on nothing but a quick local disk (:meth:`~gateway.ledger.Ledger.works_inline`: SQLite
whose synced commits take under 2 ms on average). There a batch is all CPU work: handing it
to a thread only added the hand-over and, at every SQL statement, the loop taking the
interpreter from that thread to read its sockets (with the delivery's claims and outcomes,
which run the same way, about a sixth of the daemon's CPU at 800 alerts/s); what arrives
meanwhile waits in the socket and is read at once after.
No document is acknowledged before the synced commit that covers it. Under load (others
already waiting when a batch is formed) the batch waits ``[gateway] commit_delay`` for more
to join it; a document that arrives alone never waits. A source's own
documents (MQTT, a NAAD stream) go through :meth:`Intake.run_ordered`: while one batch is
screened and admitted (one parse slot), the next documents are read and gather; they are
admitted and acknowledged in the order they arrived. Concurrent single documents (HTTP
requests) are screened in their own parse slots and then queue for the same kind of batch.

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
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    on_ledger,
    trust_rank,
)
from gateway.messages import message_key, message_record, parse_inbound
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.router import MessageContext, PlanContext, Router, plan_message

log = structlog.get_logger(__name__)

__all__ = ["Intake", "Outcome", "Screened", "SourcePolicy", "adapter_trust", "door_trust"]

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
SYNCED_BATCHES = REGISTRY.counter(
    "borderlink_admission_batches_total",
    "Batches of screened alerts admitted behind one synced commit (group commit)",
)
DELAYED = REGISTRY.counter(
    "borderlink_admission_delays_total",
    "Batches that waited [gateway] commit_delay for more documents to share their commit",
)
#: Most documents admitted behind one synced commit.
MAX_BATCH = 64
#: Most documents of one ordered source in flight (screened or waiting for their commit).
MAX_IN_FLIGHT = 64
#: A source's batch of documents larger than this together is screened in a worker thread
#: even where the ledger's work may run on the event loop (see on_ledger): parsing a NAAD
#: alert with its audio embedded (megabytes) must not hold up the loop's other work.
INLINE_BATCH_BYTES = 256 * 1024


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


@dataclass(frozen=True, slots=True)
class Screened:
    """A document that passed screening, ready for admission."""

    source: str
    received_at: datetime
    alert: Alert
    provenance: Provenance
    findings: tuple[Finding, ...]
    hold: str
    issued_by: str = ""  # the console account that issued it (the two-person rule)


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
        commit_delay: float = 0.0,
    ) -> None:
        self.policies = policies
        self._ledger = ledger
        self._router = router
        self.clock = clock
        self._slots = asyncio.Semaphore(max_concurrent_parses)
        self.commit_delay = commit_delay
        self._on_admitted = on_admitted
        self._waiting: deque[tuple[Screened, asyncio.Future[Outcome]]] = deque()
        self._admitter: asyncio.Task[None] | None = None

    @property
    def ledger(self) -> Ledger:
        return self._ledger()

    @property
    def router(self) -> Router:
        return self._router()

    async def ingest(self, item: Received) -> Outcome:
        """Process one received document; acknowledge it once its outcome is durable."""
        outcome = await self.admit(item)
        if item.ack is not None:
            await item.ack()
        self._on_admitted(outcome)
        return outcome

    async def admit(self, item: Received) -> Outcome:
        """Screen one document (a worker thread, within the parse slots), then admit it with
        whatever else is waiting (group commit); returns once the outcome is durable."""
        return await self._admitted(await self._screened(item))

    async def _screened(self, item: Received) -> Outcome | Screened:
        async with self._slots:
            screened = await asyncio.to_thread(
                self.screen, item.raw, item.source, item.received_at
            )
        if isinstance(screened, Screened) and item.issued_by:
            return replace(screened, issued_by=item.issued_by)
        return screened

    def _admitted(self, screened: Outcome | Screened) -> Awaitable[Outcome]:
        """Queue a screened document for admission (in the order of the calls); the awaitable
        resolves once its admission is durable. A refusal is final already."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()
        if isinstance(screened, Outcome):
            done.set_result(screened)
            return done
        self._waiting.append((screened, done))
        if self._admitter is None or self._admitter.done():
            self._admitter = loop.create_task(self._admit_waiting(), name="admission")
        return done

    async def _gather(self, waiting: int) -> None:
        """Under load -- others waiting already, as a batch was being admitted -- give more
        documents ``commit_delay`` seconds to join the next batch and share its synced
        commit, its worker-thread hops and its delivery claim (PostgreSQL's
        ``commit_delay``). A document that arrives alone never waits."""
        if self.commit_delay > 0 and 1 < waiting < MAX_BATCH:
            DELAYED.inc()
            await asyncio.sleep(self.commit_delay)

    async def _admit_waiting(self) -> None:
        """Admit what waits, a batch at a time, until nothing does."""
        while self._waiting:
            await self._gather(len(self._waiting))
            batch = [self._waiting.popleft() for _ in range(min(MAX_BATCH, len(self._waiting)))]
            try:
                results = await on_ledger(
                    self.ledger, self.admit_batch, [s for s, _ in batch]
                )
            except BaseException as exc:  # nobody may wait forever: each hears of it
                for _, done in batch:
                    if done.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        done.cancel()
                    else:
                        done.set_exception(exc)
                raise
            for (_, done), result in zip(batch, results, strict=True):
                if done.cancelled():
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    def admit_batch(self, batch: Sequence[Screened]) -> list[Outcome | Exception]:
        """Admit screened documents in order (see :func:`~gateway.ledger.on_ledger`), in one
        admission batch of the ledger. Where the batch shares one commit, an admission that
        fails fails alone, and a commit that fails fails them all. Elsewhere each has its own
        transaction, only the last one waiting for the disk: should an admission fail, those
        before it that were not synced yet fail with it (never acknowledged, their sources
        send them again and the ledger knows them as duplicates if they did reach the
        disk)."""
        results: list[Outcome | Exception] = []
        unsynced: list[int] = []
        ledger = self.ledger
        try:
            with ledger.admission_batch() as shared:  # one commit for all, where it can
                for index, screened in enumerate(batch):
                    last = index == len(batch) - 1
                    try:
                        results.append(self._admit(screened, sync=last, ledger=ledger))
                    except Exception as exc:  # noqa: BLE001 - handed to the one waiting for it
                        results.append(exc)
                        if last and not shared:
                            for earlier in unsynced:
                                results[earlier] = exc
                        continue
                    if last:
                        unsynced.clear()
                    else:
                        unsynced.append(index)
        except Exception as exc:  # noqa: BLE001 - the batch's commit failed: none was made
            results = [exc] * len(batch)
        SYNCED_BATCHES.inc()
        return results

    async def run_ordered(
        self,
        items: AsyncIterator[Received],
        *,
        stopping: Callable[[], bool],
        other: Callable[[Received], Awaitable[None]],
    ) -> None:
        """Ingest a source's documents in its order, in batches: while one batch is screened
        and admitted (one parse slot, one synced commit), the source's next documents gather
        for the next batch (read meanwhile, or right after a batch run on the loop's thread);
        each is acknowledged, in order, once it is durable. Items that are not CAP go to
        ``other`` once everything before them is acknowledged. Stops taking items when
        ``stopping()`` (a batch under way is finished and acknowledged, what was read after
        it is not); an admission that fails ends the run with its error, leaving it and what
        follows unacknowledged."""
        queued: deque[Received] = deque()
        arrived = asyncio.Event()
        room = asyncio.Event()
        ended = False

        async def read() -> None:
            nonlocal ended
            try:
                async for item in items:
                    if stopping():
                        break  # not acknowledged: the source sends it again after the restart
                    while len(queued) >= MAX_IN_FLIGHT:
                        room.clear()
                        await room.wait()
                    queued.append(item)
                    arrived.set()
            finally:
                ended = True
                arrived.set()

        reader = asyncio.get_running_loop().create_task(read(), name="source-read")
        try:
            while True:
                if not queued:
                    if ended:
                        break
                    arrived.clear()
                    await arrived.wait()  # set by each item and when the reading ends
                    continue
                if stopping():
                    break
                head = queued[0]
                if head.kind != "cap":
                    queued.popleft()
                    room.set()
                    await other(head)
                    continue
                await self._gather(len(queued))
                batch: list[Received] = []
                while queued and queued[0].kind == "cap" and len(batch) < MAX_BATCH:
                    batch.append(queued.popleft())
                room.set()
                async with self._slots:
                    small = sum(len(item.raw) for item in batch) <= INLINE_BATCH_BYTES
                    results = await on_ledger(
                        self.ledger, self.process_batch, batch, inline=small
                    )
                for item, result in zip(batch, results, strict=True):
                    if isinstance(result, Exception):
                        raise result
                    if item.ack is not None:
                        await item.ack()
                    self._on_admitted(result)
            if reader.done():
                await reader  # the source's own error, if it ended with one
        finally:
            reader.cancel()  # stopping: what was read and not admitted is not acknowledged

    def process_batch(self, batch: Sequence[Received]) -> list[Outcome | Exception]:
        """Screen documents, then admit those that passed, in order (see
        :func:`~gateway.ledger.on_ledger` and :meth:`admit_batch`)."""
        screened = [self.screen(item.raw, item.source, item.received_at) for item in batch]
        admitted = iter(self.admit_batch([s for s in screened if isinstance(s, Screened)]))
        return [s if isinstance(s, Outcome) else next(admitted) for s in screened]

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
        """Screen and admit one document on its own, synced (worker thread)."""
        screened = self.screen(raw, source, received_at)
        if isinstance(screened, Outcome):
            return screened
        return self._admit(screened, sync=True, ledger=self.ledger)

    def screen(self, raw: bytes, source: str, received_at: datetime) -> Outcome | Screened:
        """Parse, verify and validate (worker thread): the refusal's outcome (recorded), or
        the document ready for admission."""
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
        return Screened(source, received_at, alert, provenance, tuple(findings), hold_reason)

    def _admit(self, screened: Screened, *, sync: bool, ledger: Ledger) -> Outcome:
        """Route and admit a screened document with ``ledger`` (worker thread)."""
        alert = screened.alert
        provenance = screened.provenance
        ctx = PlanContext(
            alert=alert,
            source=screened.source,
            signature=provenance.signature,
            profile=detect_profile(alert),
            trust=provenance.level,
            issued_by=screened.issued_by,
        )
        router = self.router
        admission = ledger.admit(
            alert,
            source=screened.source,
            received_at=screened.received_at,
            plan=router.planner(ctx),
            provenance=provenance,
            hold=screened.hold,
            sync=sync,
        )
        ADMITTED.inc(decision=admission.decision.value)
        return Outcome(
            screened.source,
            admission=admission,
            alert=alert,
            findings=screened.findings,
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
