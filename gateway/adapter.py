"""The adapter contract: what crosses the boundary between the gateway and an external system.

A *source* adapter yields :class:`Received` items; a *sink* adapter takes :class:`Outbound`
items. Both are async context managers; reconnection loops belong to the gateway's supervisor,
not to the adapter. Adapters are found by name through the ``borderlink.adapters`` entry points
(:mod:`gateway.plugins`; in-process additions in :data:`REGISTRY`) and imported when used, so
the gateway never names an adapter module nor imports an external system's transport library.
What an adapter must and may implement is written down in ``docs/adapters.md``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from cap_schemas.model import AlertKey
from gateway import plugins
from gateway.errors import ConfigError
from gateway.options import OptionReader, adapter_options
from gateway.plaintext import TextProfile


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Received:
    """One document as a source adapter received it, before any parsing.

    ``ack`` (when set) is awaited by the gateway only after the admission decision for this
    item is committed to the ledger; a source that can redeliver (MQTT QoS 1) acknowledges
    there and nowhere else.
    """

    raw: bytes
    source: str
    received_at: datetime = field(default_factory=utcnow)
    channel: str = ""
    kind: str = "cap"
    ack: Callable[[], Awaitable[None]] | None = field(default=None, compare=False, repr=False)
    # The sinks an operator chose for an incident report they wrote (None: every sink its
    # routes name); a route's other sinks are skipped for it.
    destinations: frozenset[str] | None = None
    # The console account that issued it (only the console sets it, source "console").
    issued_by: str = ""


@dataclass(frozen=True, slots=True)
class Outbound:
    """One delivery handed to a sink: a payload already rendered for that sink.

    ``parts`` is what the route's translation produced for this sink
    (:class:`gateway.translate.registry.Rendered`): one part for a CAP document or a JSON
    summary, several for radio text split to fit a link; ``attributes`` carry what the sink
    needs to address it (topic placeholders, talkgroup, pager id, priority).
    """

    key: AlertKey | None
    sink: str
    parts: tuple[bytes, ...]
    content_type: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    expires: datetime | None = None


class Clock(Protocol):
    """Injectable time, so tests of timers run in seconds."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _never_seen(_key: AlertKey) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What the gateway gives an adapter when it builds one."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)
    # Asks the ledger whether an alert is already admitted (NAAD heartbeat backfill uses it).
    seen: Callable[[AlertKey], Awaitable[bool]] = _never_seen
    config_path: str = ""
    # The deployment's data directory ([gateway] data_dir): where adapters keep durable state.
    data_dir: str = ""

    def options_reader(self, role: str) -> OptionReader:
        """The one reader of this adapter's options (``role``: ``source`` or ``sink``, as the
        errors name the table): every error names the file and the key path, and
        :meth:`~gateway.options.OptionReader.finish` refuses the keys nobody read."""
        return adapter_options(role, self.name, self.options, file=self.config_path)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """Liveness of one stream or feed of a source, for ``/healthz``."""

    name: str
    healthy: bool
    last_message_at: datetime | None = None
    detail: str = ""


@runtime_checkable
class HealthReporting(Protocol):
    """Implemented by sources that know whether their streams are alive."""

    def health(self) -> list[SourceHealth]: ...


@runtime_checkable
class DoorTrust(Protocol):
    """Implemented by sources whose peer can prove who it is: ``door_trust()`` says how far
    what comes in is believed before any signature is checked -- ``"authenticated"`` when
    the peer proved itself (MQTT credentials, a TLS or HTTPS feed whose certificate was
    verified), ``"anonymous"`` otherwise. A source without it is anonymous."""

    def door_trust(self) -> str: ...


# -- optional abilities: an adapter has them or not; the gateway asks with isinstance().


@runtime_checkable
class Sender(Protocol):
    """Anything that takes deliveries (what a ``[[link]]`` target needs of its adapter)."""

    async def send(self, item: Outbound) -> None: ...


@runtime_checkable
class Yielding(Protocol):
    """Anything that yields received items (what a ``[[link]]`` source needs, with
    :class:`Hearing` for a radio sink that also hears)."""

    def messages(self) -> AsyncIterator[Received]: ...


@runtime_checkable
class Hearing(Protocol):
    """A sink that also hears traffic (a radio): ``subscribe()`` yields what it hears, to
    every subscriber, while the sink is open; the daemon reads it like a source's messages."""

    def subscribe(self) -> AsyncIterator[Received]: ...


@runtime_checkable
class ClosingWatch(Protocol):
    """A sink that knows when its link dropped: ``wait_closed()`` returns (or raises) then, so
    the gateway reopens it at once instead of at the next delivery."""

    async def wait_closed(self) -> None: ...


@runtime_checkable
class ConcurrentSends(Protocol):
    """A sink whose ``send`` may run several deliveries at once (an MQTT client with QoS
    flows in flight) when ``concurrent_sends`` is true; others get one at a time."""

    concurrent_sends: bool


@runtime_checkable
class BatchSends(Protocol):
    """A sink that sends a batch of deliveries together and waits once for all their
    confirmations (an MQTT client: every publish goes out, then one wait for the PUBACKs),
    rather than one ``send`` each. ``send_batch`` returns each item's outcome in order: None
    when confirmed, else the error ``send`` would have raised; it raises only what
    ``send`` would raise for the whole link. It must not take longer than ``timeout``."""

    async def send_batch(
        self,
        items: Sequence[Outbound],
        timeout: float,  # noqa: ASYNC109 - a bound for the whole batch, not a cancellation
    ) -> list[BaseException | None]: ...


@runtime_checkable
class LineRate(Protocol):
    """A radio sink with a line rate in bit/s: ``[[link]]`` targets budget air time by it."""

    @property
    def line_rate(self) -> int: ...


@runtime_checkable
class MultipleSignatures(Protocol):
    """A source whose alerts normally carry more than one XML signature (NAAD relays carry the
    issuer's and the NAAD System's) when ``multiple_signatures`` is true: its signature policy
    allows several unless the source's table says ``allow_multiple_signatures = false``."""

    multiple_signatures: bool


@runtime_checkable
class TextProfiled(Protocol):
    """Implemented by radio sinks that carry short text: ``text_profile`` says how many
    characters one part takes, in which character set, numbered or not. Routes with the
    ``text`` translation are checked against it when the daemon starts, so the text is sized
    once, by the translation, to what the radio takes."""

    @property
    def text_profile(self) -> TextProfile: ...


@runtime_checkable
class SourceAdapter(Protocol):
    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def messages(self) -> AsyncIterator[Received]: ...


@runtime_checkable
class SinkAdapter(Protocol):
    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def send(self, item: Outbound) -> None:
        """Deliver one item or raise :class:`gateway.errors.DeliveryError`."""
        ...


class AdapterFactory(Protocol):
    def __call__(self, ctx: AdapterContext) -> SourceAdapter | SinkAdapter: ...


# Adapters registered in-process (``name -> "module:attribute"``), over the installed ones: an
# application embedding the gateway, or a test, adds its own here. The installed adapters are
# the ``borderlink.adapters`` entry points (the built-in table is ``adapters.BUILTIN_ADAPTERS``).
REGISTRY: dict[str, str] = {}

ENTRY_POINT_GROUP = plugins.ADAPTERS

# Codecs registered in-process, over the ``borderlink.codecs`` entry points.
CODECS: dict[str, str] = {}


def known_adapters() -> dict[str, str]:
    """Every adapter type a configuration may name -> its factory's ``"module:attribute"``."""
    return plugins.table(plugins.ADAPTERS, REGISTRY)


def load_codec(name: str) -> Callable[..., Any]:
    """Import the codec function registered under ``name``."""
    target = plugins.table(plugins.CODECS, CODECS).get(name)
    if target is None:
        msg = f"no codec {name!r} is installed"
        raise ConfigError(msg)
    function: Callable[..., Any] = plugins.load(target, what=f"codec {name!r}")
    return function


def load_factory(kind: str) -> AdapterFactory:
    """Import the factory registered under ``kind``; unknown kinds are a ConfigError."""
    known = known_adapters()
    target = known.get(kind)
    if target is None:
        allowed = ", ".join(sorted(known))
        msg = f"unknown adapter type {kind!r}; allowed: {allowed}"
        raise ConfigError(msg)
    factory: AdapterFactory = plugins.load(target, what=f"adapter type {kind!r}")
    return factory
