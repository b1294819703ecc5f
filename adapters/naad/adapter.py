"""NAAD System source: every configured stream at once, liveness per stream, archive backfill.

Configuration (the ``options`` of a ``[[source]]`` with ``type = "naad"``)::

    streams = ["tcp://streaming1.naad-adna.pelmorex.com:8080",
               "tcp://streaming2.naad-adna.pelmorex.com:8080"]   # or tls://host:8443
    liveness_timeout = 75          # s without a complete document -> drop and reconnect
    archive_templates = [...]      # {date} {sent} {identifier} {sender}; tried in order

Each stream runs its own connect/read loop; a stream that delivers no complete document
(alert or heartbeat) for ``liveness_timeout`` seconds is dropped and reconnected with
exponential backoff and jitter. Every document is yielded from every stream that carries it
(the ledger admits it once). A heartbeat is never yielded: it refreshes the stream's liveness
and every alert it lists that the ledger has not seen (``ctx.seen``) is fetched from the
archive, trying each URL template in turn, and yielded with ``channel="archive"``.

Signature policy is the daemon's: ``trust_anchors`` and ``require_signature`` are read by it
from the same source table; this adapter passes documents on byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
import structlog

from adapters.feeds.base import (
    DEFAULT_USER_AGENT,
    PASSTHROUGH_OPTIONS,
    FeedError,
    FeedSource,
    SeenCheck,
    fetch,
)
from adapters.naad.codec import (
    DEFAULT_ARCHIVE_TEMPLATES,
    Heartbeat,
    HeartbeatError,
    HeartbeatReference,
    archive_url,
    check_archive_template,
    read_heartbeat,
)
from cap_schemas.model import AlertKey
from cap_schemas.stream import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    CapStreamSplitter,
    Discarded,
    Document,
    peek_key,
)
from gateway.adapter import AdapterContext, Clock, SourceHealth
from gateway.backoff import Backoff
from gateway.errors import AdapterError, ConfigError
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.options import adapter_options

log = structlog.get_logger(__name__)

COMPONENT = "naad"
DEFAULT_STREAMS = (
    "tcp://streaming1.naad-adna.pelmorex.com:8080",
    "tcp://streaming2.naad-adna.pelmorex.com:8080",
)

DOCUMENTS = REGISTRY.counter(
    "borderlink_naad_documents_total",
    "Complete documents read from NAAD streams, by source, stream and kind",
    ("source", "stream", "kind"),
)
RECONNECTS = REGISTRY.counter(
    "borderlink_naad_reconnects_total",
    "NAAD stream connections ended, by source, stream and why",
    ("source", "stream", "reason"),
)
BACKFILL = REGISTRY.counter(
    "borderlink_naad_backfill_total",
    "Heartbeat-referenced alerts fetched from the archive, by source and result",
    ("source", "result"),
)
GAPS = REGISTRY.counter(
    "borderlink_naad_gaps_total",
    "Heartbeats none of whose listed alerts had reached this source: alerts may be lost",
    ("source", "stream"),
)
#: A heartbeat lists the last ten alerts sent on the feed (standards note §2.6).
GAP_WINDOW = 10
STREAM_UP = REGISTRY.gauge(
    "borderlink_naad_stream_up",
    "1 while a NAAD stream is connected and fresh",
    ("source", "stream"),
)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """One stream endpoint: ``tcp://host:port`` or ``tls://host:port``."""

    name: str
    host: str
    port: int
    tls: bool = False

    @classmethod
    def parse(cls, value: object, *, where: str) -> StreamConfig:
        name: str | None = None
        url = value
        if isinstance(value, Mapping):
            url = value.get("url")
            name = value.get("name")
            if name is not None and not isinstance(name, str):
                raise ConfigError(f"{where}.name must be a string")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{where}: expected 'tcp://host:port' or 'tls://host:port'")
        text = url if "://" in url else f"tcp://{url}"
        parts = urlsplit(text)
        if parts.scheme not in ("tcp", "tls") or not parts.hostname:
            raise ConfigError(f"{where}: {url!r} must be tcp://host:port or tls://host:port")
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise ConfigError(f"{where}: {url!r} has no valid port")
        label = name or f"{parts.hostname}:{port}"
        return cls(label, parts.hostname, port, parts.scheme == "tls")


@dataclass(frozen=True, slots=True)
class NaadOptions:
    streams: tuple[StreamConfig, ...]
    liveness_timeout: float = 75.0
    connect_timeout: float = 10.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 30.0
    read_size: int = 64 * 1024
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    backfill: bool = True
    archive_templates: tuple[str, ...] = DEFAULT_ARCHIVE_TEMPLATES
    archive_timeout: float = 10.0
    archive_attempts: int = 2
    archive_retry_delay: float = 1.0
    archive_max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    archive_concurrency: int = 4
    tls_ca_file: str | None = None
    tls_server_name: str | None = None
    user_agent: str = DEFAULT_USER_AGENT


    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, source: str = "naad") -> NaadOptions:
        r = adapter_options("source", source, options)
        raw_streams = r.raw("streams")
        raw_streams = DEFAULT_STREAMS if raw_streams is None else raw_streams
        if not isinstance(raw_streams, list | tuple) or not raw_streams:
            r.fail("must be a non-empty list", "streams")
        streams = tuple(
            StreamConfig.parse(s, where=r.where(f"streams[{i}]")) for i, s in enumerate(raw_streams)
        )
        if len({s.name for s in streams}) != len(streams):
            r.fail("has duplicate names", "streams")
        templates = r.strings("archive_templates") if r.has("archive_templates") else None
        for i, template in enumerate(templates or ()):
            check_archive_template(template, where=r.where(f"archive_templates[{i}]"))
        reconnect_initial = r.number("reconnect_initial", 1.0, minimum=0.01)
        options_read = cls(
            streams=streams,
            liveness_timeout=r.number("liveness_timeout", 75.0, minimum=0.05),
            connect_timeout=r.number("connect_timeout", 10.0, minimum=0.05),
            reconnect_initial=reconnect_initial,
            reconnect_max=max(reconnect_initial, r.number("reconnect_max", 30.0, minimum=0.01)),
            read_size=r.integer("read_size", 64 * 1024, minimum=1),
            max_document_bytes=r.integer(
                "max_document_bytes", DEFAULT_MAX_DOCUMENT_BYTES, minimum=1024
            ),
            backfill=r.boolean("backfill", True),
            archive_templates=DEFAULT_ARCHIVE_TEMPLATES if templates is None else templates,
            archive_timeout=r.number("archive_timeout", 10.0, minimum=0.05),
            archive_attempts=r.integer("archive_attempts", 2, minimum=1),
            archive_retry_delay=r.number("archive_retry_delay", 1.0, minimum=0.0),
            archive_max_bytes=r.integer(
                "archive_max_bytes", DEFAULT_MAX_DOCUMENT_BYTES, minimum=1024
            ),
            archive_concurrency=r.integer("archive_concurrency", 4, minimum=1),
            tls_ca_file=r.string("tls_ca_file", None),
            tls_server_name=r.string("tls_server_name", None),
            user_agent=r.string("user_agent", DEFAULT_USER_AGENT),
        )
        r.finish(allowed_extra=PASSTHROUGH_OPTIONS)
        return options_read


@dataclass
class _StreamState:
    config: StreamConfig
    connected: bool = False
    last_document_mono: float = 0.0  # the watchdog's reference: last document or connect
    # Health's reference: the last document (or the source's start, a grace period of one
    # timeout for the first connection). A reconnected stream is green only once it delivers.
    last_data_mono: float = 0.0
    last_document_at: datetime | None = None
    documents: int = 0
    connections: int = 0
    detail: str = "not connected yet"
    stale: bool = False
    heartbeats: int = 0  # on the current connection
    busy: bool = False  # handing a document to a slow consumer: not the stream's fault
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)


class NaadSource(FeedSource):
    """The NAAD source adapter (see the module docstring)."""

    component = COMPONENT
    # NAAD relays carry the issuer's signature and the NAAD System's own.
    multiple_signatures = True

    def __init__(
        self,
        name: str,
        options: NaadOptions,
        *,
        clock: Clock | None = None,
        seen: SeenCheck | None = None,
    ) -> None:
        # A small queue: a slow gateway holds the streams back (TCP flow control) rather than
        # letting 5 MB documents pile up in memory.
        super().__init__(name, clock=clock, seen=seen, queue_size=16)
        self.options = options
        self._streams = [_StreamState(s) for s in options.streams]
        self._inflight: set[AlertKey] = set()
        # Keys this adapter yielded lately (from a stream or the archive): a heartbeat right
        # behind its alert must not send us to the archive before the ledger has caught up.
        # Pending until the gateway acknowledges the admission: a run that ends first (a
        # ledger failure, a lost leadership) forgets them, and the next heartbeat fetches them.
        self._recent = self._memory(ttl=900.0, limit=4096)
        self._fetch_slots = asyncio.Semaphore(options.archive_concurrency)
        self._ssl: ssl.SSLContext | None = None
        self._entered = False

    def door_trust(self) -> str:
        """Authenticated when every stream is TLS (the server's certificate is verified):
        an alert may come through the weakest stream."""
        return "authenticated" if all(s.tls for s in self.options.streams) else "anonymous"

    # -- context manager ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            msg = "a NaadSource is not re-entrant (it may be entered again once exited)"
            raise RuntimeError(msg)
        self._entered = True
        self._inflight.clear()
        if any(s.tls for s in self.options.streams):
            self._ssl = ssl.create_default_context(cafile=self.options.tls_ca_file)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.options.archive_timeout),
            headers={"User-Agent": self.options.user_agent},
        )
        started = self.clock.monotonic()
        for state in self._streams:
            state.last_data_mono = started
            self._spawn(self._run_stream(state), f"naad-{self.name}-{state.config.name}")
        log.info(
            "naad_source_started",
            source=self.name,
            streams=[s.name for s in self.options.streams],
            liveness_timeout=self.options.liveness_timeout,
        )
        return self

    async def _stop(self) -> None:
        await super()._stop()
        for state in self._streams:
            state.connected = False
            STREAM_UP.set(0, source=self.name, stream=state.config.name)
        self._entered = False
        log.info("naad_source_stopped", source=self.name)

    def health(self) -> list[SourceHealth]:
        """One entry per stream; the source is alive while any one of them is healthy."""
        now = self.clock.monotonic()
        out = []
        for state in self._streams:
            fresh = now - state.last_data_mono < self.options.liveness_timeout
            healthy = state.connected and fresh
            out.append(
                SourceHealth(
                    name=f"{self.name}/{state.config.name}",
                    healthy=healthy,
                    last_message_at=state.last_document_at,
                    detail="receiving" if healthy else state.detail,
                )
            )
        return out

    # -- streams ------------------------------------------------------------------------------

    async def _run_stream(self, state: _StreamState) -> None:
        cfg = state.config
        retries = Backoff(self.options.reconnect_initial, self.options.reconnect_max).retries()
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        cfg.host,
                        cfg.port,
                        ssl=self._ssl if cfg.tls else None,
                        server_hostname=(self.options.tls_server_name or cfg.host)
                        if cfg.tls
                        else None,
                        limit=self.options.read_size * 2,
                    ),
                    timeout=self.options.connect_timeout,
                )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                state.detail = f"connect failed: {exc!r}"
                delay = retries.next_delay()
                log.warning(
                    "naad_connect_failed",
                    source=self.name,
                    stream=cfg.name,
                    error=repr(exc),
                    retry_in=round(delay, 3),
                )
                await self.clock.sleep(delay)
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            state.connections += 1
            log.info(
                "naad_stream_connected",
                source=self.name,
                stream=cfg.name,
                connection=state.connections,
            )
            before = state.documents
            try:
                reason = await self._read_connection(state, reader, writer)
            except Exception:  # one stream's fault must not end the others
                log.exception("naad_stream_failed", source=self.name, stream=cfg.name)
                state.detail = "internal error; reconnecting"
                reason = "internal"
            finally:
                state.connected = False
                state.writer = None
                STREAM_UP.set(0, source=self.name, stream=cfg.name)
                writer.transport.abort()
            RECONNECTS.inc(source=self.name, stream=cfg.name, reason=reason)
            if state.documents > before:
                retries.reset()
            delay = retries.next_delay()
            log.warning(
                "naad_stream_dropped",
                source=self.name,
                stream=cfg.name,
                reason=reason,
                retry_in=round(delay, 3),
            )
            await self.clock.sleep(delay)

    async def _read_connection(
        self, state: _StreamState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str:
        splitter = CapStreamSplitter(max_document_bytes=self.options.max_document_bytes)
        state.connected, state.stale, state.writer = True, False, writer
        state.heartbeats = 0
        state.last_document_mono = self.clock.monotonic()  # a new connection gets a full window
        state.detail = "connected, waiting for data"
        STREAM_UP.set(1, source=self.name, stream=state.config.name)
        watchdog = asyncio.ensure_future(self._watchdog(state, writer))
        try:
            while True:
                try:
                    data = await reader.read(self.options.read_size)
                except (OSError, ssl.SSLError) as exc:
                    state.detail = f"read failed: {exc!r}"
                    return "stale" if state.stale else "error"
                if not data:
                    for event in splitter.close():
                        await self._on_event(state, event)
                    if state.stale:
                        return "stale"
                    state.detail = "closed by peer"
                    return "eof"
                for event in splitter.feed(data):
                    await self._on_event(state, event)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _watchdog(self, state: _StreamState, writer: asyncio.StreamWriter) -> None:
        timeout = self.options.liveness_timeout
        while True:
            remaining = state.last_document_mono + timeout - self.clock.monotonic()
            if remaining <= 0 and state.busy:
                remaining = timeout
            elif remaining <= 0:
                break
            await self.clock.sleep(remaining)
        state.stale = True
        state.detail = f"no document for {timeout:g} s"
        log.warning(
            "naad_stream_stale", source=self.name, stream=state.config.name, timeout=timeout
        )
        writer.transport.abort()

    async def _on_event(self, state: _StreamState, event: Document | Discarded) -> None:
        stream = state.config.name
        if isinstance(event, Discarded):
            INPUT_REJECTED.inc(component=COMPONENT, reason=event.reason)
            log.warning(
                "naad_input_discarded",
                source=self.name,
                stream=stream,
                reason=event.reason,
                size=event.size,
                detail=event.message,
            )
            return
        raw = event.raw
        try:
            heartbeat = read_heartbeat(raw)
        except HeartbeatError as exc:
            INPUT_REJECTED.inc(component=COMPONENT, reason="bad_heartbeat")
            log.warning("naad_heartbeat_rejected", source=self.name, stream=stream, error=str(exc))
            return
        state.last_document_mono = state.last_data_mono = self.clock.monotonic()
        state.last_document_at = self.clock.now()
        state.documents += 1
        if heartbeat is not None:
            DOCUMENTS.inc(source=self.name, stream=stream, kind="heartbeat")
            log.debug(
                "naad_heartbeat_received",
                source=self.name,
                stream=stream,
                references=len(heartbeat.references),
            )
            self._on_heartbeat(heartbeat, state)
            return
        DOCUMENTS.inc(source=self.name, stream=stream, kind="alert")
        key = peek_key(raw)
        log.info(
            "naad_alert_received",
            source=self.name,
            stream=stream,
            alert=str(key) if key else None,
            size=len(raw),
        )
        state.busy = True
        try:
            await self._emit(raw, stream, ack=self._recent.hold(key) if key else None)
        finally:
            state.busy = False
            state.last_document_mono = max(state.last_document_mono, self.clock.monotonic())

    # -- heartbeat backfill -------------------------------------------------------------------

    def _remember(self, key: AlertKey) -> None:
        self._recent.add(key)
        self._recent.prune()

    def _recently_yielded(self, key: AlertKey) -> bool:
        return self._recent.fresh(key)

    def _on_heartbeat(self, heartbeat: Heartbeat, state: _StreamState) -> None:
        stream = state.config.name
        state.heartbeats += 1
        unknown = [
            r
            for r in heartbeat.references
            if r.key not in self._inflight and not self._recently_yielded(r.key)
        ]
        if (
            state.heartbeats > 1
            and len(heartbeat.references) >= GAP_WINDOW
            and len(unknown) == len(heartbeat.references)
        ):
            # Not one of the alerts sent since the previous heartbeat reached us: more may
            # have been sent than a heartbeat lists, and those cannot be recovered from it.
            GAPS.inc(source=self.name, stream=stream)
            log.error(
                "naad_gap_beyond_heartbeat",
                source=self.name,
                stream=stream,
                references=len(heartbeat.references),
            )
        for bad in heartbeat.bad_references:
            INPUT_REJECTED.inc(component=COMPONENT, reason="bad_reference")
            log.warning(
                "naad_heartbeat_reference_rejected",
                source=self.name,
                stream=stream,
                reference=bad[:200],
            )
        if not self.options.backfill or not self.options.archive_templates:
            return
        for ref in heartbeat.references:
            if ref.key in self._inflight or self._recently_yielded(ref.key):
                continue
            self._inflight.add(ref.key)
            self._spawn(self._backfill(ref), f"naad-{self.name}-backfill")

    async def _backfill(self, ref: HeartbeatReference) -> None:
        try:
            if await self._is_seen(ref.key):
                self._remember(ref.key)  # the next heartbeat need not ask the ledger again
                return
            async with self._fetch_slots:
                raw = await self._fetch(ref)
            if raw is None:
                BACKFILL.inc(source=self.name, result="failed")
                log.error("naad_backfill_failed", source=self.name, alert=str(ref.key))
                return
            BACKFILL.inc(source=self.name, result="fetched")
            log.info("naad_backfill_fetched", source=self.name, alert=str(ref.key), size=len(raw))
            await self._emit(raw, "archive", ack=self._recent.hold(ref.key))
        finally:
            self._inflight.discard(ref.key)

    async def _fetch(self, ref: HeartbeatReference) -> bytes | None:
        """Try each archive template in turn, retrying transient failures; None if none had it."""
        assert self._session is not None
        for template in self.options.archive_templates:
            try:
                url = archive_url(template, ref)
            except ValueError as exc:
                INPUT_REJECTED.inc(component=COMPONENT, reason="bad_reference")
                log.warning("naad_archive_url_failed", source=self.name, error=str(exc))
                return None
            for attempt in range(1, self.options.archive_attempts + 1):
                outcome, body = await self._get(url)
                if body is not None:
                    checked = self._check_archived(body, ref, url)
                    if checked is not None:
                        return checked
                    break  # wrong or broken content: this mirror will not improve on retry
                log.warning(
                    "naad_archive_fetch_failed",
                    source=self.name,
                    url=url,
                    attempt=attempt,
                    outcome=outcome,
                )
                if outcome in ("not_found", "oversize"):
                    break  # retrying this mirror will not change the answer
                if attempt < self.options.archive_attempts:
                    await self.clock.sleep(self.options.archive_retry_delay)
        return None

    async def _get(self, url: str) -> tuple[str, bytes | None]:
        assert self._session is not None
        try:
            result = await fetch(
                self._session,
                url,
                max_bytes=self.options.archive_max_bytes,
                time_limit=self.options.archive_timeout,
                skip_error_body=True,
            )
        except FeedError:
            INPUT_REJECTED.inc(component=COMPONENT, reason="archive_oversize")
            return "oversize", None
        except AdapterError as exc:
            return f"error {exc}", None
        if result.status == 404:
            return "not_found", None
        if result.status != 200:
            INPUT_REJECTED.inc(component=COMPONENT, reason="archive_status")
            return f"status {result.status}", None
        return "ok", result.body

    def _check_archived(self, body: bytes, ref: HeartbeatReference, url: str) -> bytes | None:
        """The archive is untrusted input too: one document, and the one we asked for."""
        splitter = CapStreamSplitter(max_document_bytes=self.options.archive_max_bytes)
        events = [*splitter.feed(body), *splitter.close()]
        documents = [e for e in events if isinstance(e, Document)]
        if len(documents) != 1:
            INPUT_REJECTED.inc(component=COMPONENT, reason="archive_malformed")
            log.warning(
                "naad_archive_rejected",
                source=self.name,
                url=url,
                reason="malformed",
                documents=len(documents),
            )
            return None
        raw = documents[0].raw
        key = peek_key(raw)
        if key != ref.key:
            INPUT_REJECTED.inc(component=COMPONENT, reason="archive_mismatch")
            log.warning(
                "naad_archive_rejected",
                source=self.name,
                url=url,
                reason="mismatch",
                expected=str(ref.key),
                got=str(key) if key else None,
            )
            return None
        return raw


def from_context(ctx: AdapterContext) -> NaadSource:
    """The registry factory: ``type = "naad"``."""
    return NaadSource(
        ctx.name,
        NaadOptions.from_mapping(ctx.options, source=ctx.name),
        clock=ctx.clock,
        seen=ctx.seen,
    )
