"""Talkgroup links: relay text traffic between radio talkgroups, APRS groups and MQTT topics.

A ``[[link]]`` joins endpoints ``"adapter#channel"`` (the adapter is a ``[[sink]]``/``[[source]]``
name; the channel is a talkgroup for a text modem, an APRS group for a KISS TNC, a topic for
MQTT)::

    [[link]]
    name = "border-east"
    direction = "both"                        # or "one-way" with from = [...] and to = [...]
    endpoints = ["ca-radio#CA-EAST", "us-radio#US-NORTH",
                 { adapter = "mqtt", channel = "borderlink/links/border-east", format = "json" }]
    duty_cycle = 0.25                         # share of each channel's air time chatter may use
    budget_window = 60                        # seconds of burst the budget allows
    max_queue = 50                            # relays waiting per target before the oldest go
    echo_window = 120                         # seconds a relayed text is remembered

Loop prevention: a message never goes back to the endpoint it came from; a copy a link relayed
carries a relay ID (in the JSON form) and is never relayed again; and the text of everything a
link transmitted is remembered for ``echo_window``, so when a radio hears it back (from another
gateway, a digipeater, a cross-linked talkgroup) it is recognised as an echo and dropped. The same
message heard on two endpoints of one link is relayed once.

Air time: each target endpoint with a line rate (the adapter's ``line_rate`` option, or the
endpoint's) has a token-bucket budget of air seconds computed from the frame length; relays wait
for it. Relays are sent with ``priority = "chatter"``, so an adapter lets alerts pre-empt them.
Every relay and every drop is logged and counted. Operators pause a link over HTTP.

The daemon builds the manager with the module's :func:`from_config` (``tables, daemon``), opens
it as an async context manager (it runs in the background while open), hands it every non-CAP
item through :meth:`LinkManager.handle_received`; the daemon's HTTP face serves the operator
control (:meth:`LinkManager.status`, :meth:`LinkManager.pause`, :meth:`LinkManager.resume`).
Elsewhere, :meth:`LinkManager.from_config` plus :meth:`LinkManager.run` in a task group does it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import structlog

from gateway.adapter import (
    Clock,
    Hearing,
    LineRate,
    Outbound,
    Received,
    Sender,
    SystemClock,
    Yielding,
)
from gateway.backoff import Backoff
from gateway.errors import ConfigError, FrameError, GatewayError
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.model import RadioMessage
from gateway.plaintext import fold

log = structlog.get_logger(__name__)


# -- configuration -----------------------------------------------------------------------------
LINK_RELAYS = REGISTRY.counter(
    "borderlink_link_relays_total",
    "Messages relayed by talkgroup links",
    ["link", "source", "target"],
)
LINK_DROPPED = REGISTRY.counter(
    "borderlink_link_dropped_total",
    "Messages a talkgroup link did not relay, by reason",
    ["link", "reason"],
)
LINK_QUEUE = REGISTRY.gauge(
    "borderlink_link_queue_depth", "Relays waiting for air time per target", ["target"]
)

_DIRECTIONS = ("both", "one-way")
_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a link: an adapter (a ``[[sink]]``/``[[source]]`` name) and a channel on it
    (talkgroup, APRS group, MQTT topic). ``format = "json"`` sends the tagged
    :class:`RadioMessage` (for MQTT); ``"text"`` sends the text, prefixed with the sender."""

    adapter: str
    channel: str
    format: str = "text"
    line_rate: int | None = None

    @property
    def key(self) -> str:
        return f"{self.adapter}#{self.channel}"

    @classmethod
    def parse(cls, value: Any, where: str) -> Endpoint:
        if isinstance(value, str):
            adapter, sep, channel = value.partition("#")
            if not sep or not adapter or not channel:
                raise ConfigError(f"{where}: endpoint {value!r} is not 'adapter#channel'")
            return cls(adapter, channel)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"adapter", "channel", "format", "line_rate"})
            if unknown:
                raise ConfigError(
                    f"{where}: unknown endpoint key(s) {unknown}; "
                    "allowed: adapter, channel, format, line_rate"
                )
            if not value.get("adapter") or not value.get("channel"):
                raise ConfigError(f"{where}: an endpoint table needs 'adapter' and 'channel'")
            fmt = str(value.get("format", "text"))
            if fmt not in _FORMATS:
                raise ConfigError(f"{where}: format {fmt!r}; allowed: {', '.join(_FORMATS)}")
            rate = value.get("line_rate")
            return cls(
                str(value["adapter"]),
                str(value["channel"]),
                fmt,
                None if rate is None else int(rate),
            )
        raise ConfigError(f"{where}: endpoint must be 'adapter#channel' or a table, got {value!r}")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    name: str
    sources: tuple[Endpoint, ...]
    targets: tuple[Endpoint, ...]
    prefix_sender: bool = True
    duty_cycle: float = 0.25
    budget_window: float = 60.0
    max_queue: int = 50
    echo_window: float = 120.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any], index: int) -> LinkConfig:
        where = f"[[link]] #{index + 1}"
        allowed = {
            "name",
            "direction",
            "endpoints",
            "from",
            "to",
            "prefix_sender",
            "duty_cycle",
            "budget_window",
            "max_queue",
            "echo_window",
        }
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        name = str(table.get("name", ""))
        if not name or "/" in name:
            raise ConfigError(f"{where}: 'name' is required (no '/')")
        where = f"[[link]] {name!r}"
        direction = str(table.get("direction", "both"))
        if direction not in _DIRECTIONS:
            raise ConfigError(f"{where}: direction {direction!r}; allowed: both, one-way")
        if direction == "both":
            if "from" in table or "to" in table:
                raise ConfigError(f"{where}: 'from'/'to' are for direction = \"one-way\"")
            endpoints = tuple(Endpoint.parse(e, where) for e in table.get("endpoints", ()))
            if len(endpoints) < 2:
                raise ConfigError(f"{where}: 'endpoints' needs at least two endpoints")
            sources = targets = endpoints
        else:
            if "endpoints" in table:
                raise ConfigError(f"{where}: a one-way link takes 'from' and 'to', not 'endpoints'")
            sources = tuple(Endpoint.parse(e, where) for e in table.get("from", ()))
            targets = tuple(Endpoint.parse(e, where) for e in table.get("to", ()))
            if not sources or not targets:
                raise ConfigError(f"{where}: a one-way link needs 'from' and 'to'")
        keys = [e.key for e in {*sources, *targets}]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{where}: an endpoint is listed twice with different options")
        duty = float(table.get("duty_cycle", 0.25))
        if not 0 < duty <= 1:
            raise ConfigError(f"{where}: duty_cycle {duty} out of range (0, 1]")
        return cls(
            name=name,
            sources=sources,
            targets=targets,
            prefix_sender=bool(table.get("prefix_sender", True)),
            duty_cycle=duty,
            budget_window=float(table.get("budget_window", 60.0)),
            max_queue=int(table.get("max_queue", 50)),
            echo_window=float(table.get("echo_window", 120.0)),
        )


# -- air-time budget ---------------------------------------------------------------------------
def air_time(text_bytes: int, line_rate: int, overhead: int = 40) -> float:
    """Seconds on air of a text frame: the text plus link framing (AX.25 header, KISS/HDLC
    flags and FCS, about 40 bytes), with 1/32 for bit stuffing."""
    return (text_bytes + overhead) * 8 * (1 + 1 / 32) / line_rate


class AirtimeBudget:
    """A token bucket of air seconds: chatter may use ``duty_cycle`` of the channel, with a
    burst of ``duty_cycle * window`` seconds."""

    def __init__(self, line_rate: int, duty_cycle: float, window: float, clock: Clock) -> None:
        self.line_rate = line_rate
        self.rate = duty_cycle
        self.capacity = duty_cycle * window
        self.clock = clock
        self._tokens = self.capacity
        self._at = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait_time(self, cost: float) -> float:
        """Seconds until ``cost`` air seconds are available (0 = now)."""
        self._refill()
        needed = min(cost, self.capacity) - self._tokens
        return max(0.0, needed / self.rate)

    def spend(self, cost: float) -> None:
        self._refill()
        self._tokens -= min(cost, self.capacity)


# -- the manager -------------------------------------------------------------------------------
@dataclass
class _Relay:
    link: str
    source: Endpoint
    target: Endpoint
    message: RadioMessage


@dataclass
class _LinkState:
    config: LinkConfig
    paused: bool = False
    relayed: int = 0
    dropped: int = 0


class _Target:
    """One transmit queue per target endpoint, paced by its air-time budget."""

    def __init__(
        self, endpoint: Endpoint, adapter: Any, budget: AirtimeBudget | None, max_queue: int
    ) -> None:
        self.endpoint = endpoint
        self.adapter = adapter
        self.budget = budget
        self.queue: collections.deque[_Relay] = collections.deque()
        self.max_queue = max_queue
        self.ready = asyncio.Event()


class LinkManager:
    """Relays text between the endpoints of every ``[[link]]``; see the module docstring."""

    def __init__(
        self,
        links: Sequence[LinkConfig],
        adapters: Mapping[str, Any],
        clock: Clock | None = None,
        *,
        listen: Sequence[str] | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.links = {cfg.name: _LinkState(cfg) for cfg in links}
        self.adapters = dict(adapters)
        self._listen_to = None if listen is None else set(listen)
        self._task: asyncio.Task[None] | None = None
        self._targets: dict[str, _Target] = {}
        self._sent: collections.deque[tuple[float, str]] = collections.deque(maxlen=1000)
        self._seen: dict[tuple[str, str], float] = {}
        self._relay_ids: dict[str, float] = {}
        for cfg in links:
            for ep in (*cfg.sources, *cfg.targets):
                adapter = self.adapters.get(ep.adapter)
                if adapter is None:
                    allowed = ", ".join(sorted(self.adapters)) or "none configured"
                    raise ConfigError(
                        f"[[link]] {cfg.name!r}: endpoint {ep.key!r} names no sink or source "
                        f"{ep.adapter!r}; known: {allowed}"
                    )
                if ep in cfg.targets and not isinstance(adapter, Sender):
                    raise ConfigError(
                        f"[[link]] {cfg.name!r}: {ep.adapter!r} cannot send (not a sink)"
                    )
                if ep in cfg.sources and not isinstance(adapter, Hearing | Yielding):
                    raise ConfigError(
                        f"[[link]] {cfg.name!r}: {ep.adapter!r} cannot receive (not a source)"
                    )
            for ep in cfg.targets:
                if ep.key not in self._targets:
                    target: object = self.adapters[ep.adapter]
                    rate = ep.line_rate or (
                        target.line_rate if isinstance(target, LineRate) else None
                    )
                    budget = (
                        AirtimeBudget(int(rate), cfg.duty_cycle, cfg.budget_window, self.clock)
                        if rate
                        else None
                    )
                    self._targets[ep.key] = _Target(
                        ep, self.adapters[ep.adapter], budget, cfg.max_queue
                    )

    @classmethod
    def from_config(
        cls,
        tables: Sequence[Mapping[str, Any]],
        *,
        adapters: Mapping[str, Any],
        clock: Clock | None = None,
        listen: Sequence[str] | None = None,
    ) -> LinkManager:
        """Build from the raw ``[[link]]`` tables and the adapters by name.

        ``listen`` names the adapters whose inbound stream the manager reads itself (default:
        every adapter of a source endpoint); items of the others are handed in with
        :meth:`handle_received` / :meth:`offer` by whoever reads them.
        """
        configs = [LinkConfig.from_table(t, i) for i, t in enumerate(tables)]
        names = [c.name for c in configs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"[[link]] names must be unique; repeated: {duplicates}")
        return cls(configs, adapters, clock, listen=listen)

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Listen on the source endpoints and drive every target queue until cancelled."""
        inbound = sorted({ep.adapter for st in self.links.values() for ep in st.config.sources})
        if self._listen_to is not None:
            inbound = [name for name in inbound if name in self._listen_to]
        async with asyncio.TaskGroup() as tg:
            for name in inbound:
                tg.create_task(self._listen(name), name=f"link-listen-{name}")
            for target in self._targets.values():
                tg.create_task(self._drain(target), name=f"link-target-{target.endpoint.key}")

    async def _listen(self, adapter_name: str) -> None:
        adapter = self.adapters[adapter_name]
        retries = Backoff(initial=1.0, maximum=30.0).retries()
        heard = False
        while True:
            stream = adapter.subscribe() if isinstance(adapter, Hearing) else adapter.messages()
            try:
                async for received in stream:
                    retries.reset()
                    heard = True
                    self.offer(received)
                    if received.ack is not None:
                        await received.ack()
            except GatewayError as exc:
                # Until the daemon has opened the adapter, waiting is normal.
                event = "link_source_lost" if heard else "link_source_waiting"
                (log.warning if heard else log.info)(event, adapter=adapter_name, error=str(exc))
            await self.clock.sleep(retries.next_delay())

    async def __aenter__(self) -> Self:
        """Run in the background while open (how the daemon hosts the manager)."""
        self._task = asyncio.create_task(self.run(), name="link-manager")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def handle_received(self, received: Received) -> None:
        """The daemon's hook for inbound items that are not CAP (radio incident messages)."""
        self.offer(received)

    def offer(self, received: Received) -> int:
        """Consider one inbound item for relaying; returns how many relays were queued.

        Only items from a configured source endpoint (adapter name and channel) are considered.
        For daemons that read the adapters themselves instead of letting :meth:`run` listen.
        """
        matches = [
            (state, ep)
            for state in self.links.values()
            for ep in state.config.sources
            if ep.adapter == received.source
            and ep.channel.casefold() == received.channel.casefold()
        ]
        if not matches:
            return 0
        message = _message_of(received)
        if message is None:
            INPUT_REJECTED.inc(component="links", reason="message")
            return 0
        now = self.clock.monotonic()
        self._expire(now)
        queued = 0
        for state, source in matches:
            cfg = state.config
            reason = self._drop_reason(state, source, message, now)
            if reason:
                state.dropped += 1
                LINK_DROPPED.inc(link=cfg.name, reason=reason)
                log.info(
                    "link_relay_dropped",
                    link=cfg.name,
                    source=source.key,
                    reason=reason,
                    sender=message.sender,
                )
                continue
            self._seen[(cfg.name, _fingerprint(message.sender + "\x00" + message.text))] = now
            relay_id = uuid.uuid4().hex[:16]
            self._relay_ids[relay_id] = now
            tagged = RadioMessage(
                message.text, message.sender, source.key, message.number, relay_id, cfg.name
            )
            for target in cfg.targets:
                if target.key == source.key:
                    continue  # nothing returns to where it came from
                if target.adapter == source.adapter and target.channel == source.channel:
                    continue
                self._enqueue(_Relay(cfg.name, source, target, tagged))
                queued += 1
        return queued

    def _drop_reason(
        self, state: _LinkState, source: Endpoint, message: RadioMessage, now: float
    ) -> str:
        if state.paused:
            return "paused"
        if message.relay_id:
            return "already_relayed"
        if self._is_echo(message.text):
            return "echo"
        key = (state.config.name, _fingerprint(message.sender + "\x00" + message.text))
        if key in self._seen:
            return "duplicate"
        if not message.text.strip():
            return "empty"
        return ""

    def _is_echo(self, text: str) -> bool:
        """Was this text (or a part of it, as an adapter may split it) transmitted by a link?"""
        heard = _normal(text)
        if not heard:
            return False
        return any(heard == sent or (len(heard) >= 8 and heard in sent) for _, sent in self._sent)

    def _expire(self, now: float) -> None:
        window = max((s.config.echo_window for s in self.links.values()), default=120.0)
        while self._sent and now - self._sent[0][0] > window:
            self._sent.popleft()
        for k in [k for k, t in self._relay_ids.items() if now - t > window]:
            del self._relay_ids[k]
        for seen in [k for k, t in self._seen.items() if now - t > window]:
            del self._seen[seen]

    def _enqueue(self, relay: _Relay) -> None:
        target = self._targets[relay.target.key]
        if len(target.queue) >= target.max_queue:
            old = target.queue.popleft()
            LINK_DROPPED.inc(link=old.link, reason="queue_full")
            self.links[old.link].dropped += 1
            log.warning(
                "link_relay_dropped", link=old.link, target=relay.target.key, reason="queue_full"
            )
        target.queue.append(relay)
        LINK_QUEUE.set(len(target.queue), target=relay.target.key)
        target.ready.set()

    def _render(self, relay: _Relay) -> tuple[bytes, str]:
        msg = relay.message
        if relay.target.format == "json":
            return msg.to_json(), "application/json"
        cfg = self.links[relay.link].config
        text = f"{msg.sender}: {msg.text}" if cfg.prefix_sender and msg.sender else msg.text
        return text.encode("utf-8"), "text/plain"

    async def _drain(self, target: _Target) -> None:
        while True:
            if not target.queue:
                target.ready.clear()
                await target.ready.wait()
                continue
            relay = target.queue[0]
            payload, content_type = self._render(relay)
            if target.budget is not None:
                cost = air_time(len(payload), target.budget.line_rate)
                wait = target.budget.wait_time(cost)
                if wait > 0:
                    log.info(
                        "link_airtime_wait", target=target.endpoint.key, seconds=round(wait, 2)
                    )
                    await self.clock.sleep(wait)
                    continue
                target.budget.spend(cost)
            target.queue.popleft()
            LINK_QUEUE.set(len(target.queue), target=target.endpoint.key)
            if self.links[relay.link].paused:
                LINK_DROPPED.inc(link=relay.link, reason="paused")
                continue
            await self._send(target, relay, payload, content_type)

    async def _send(
        self, target: _Target, relay: _Relay, payload: bytes, content_type: str
    ) -> None:
        ep = target.endpoint
        attributes = {
            "talkgroup": ep.channel,
            "group": ep.channel,
            "topic": ep.channel,
            "mode": "bulletin",
            "priority": "chatter",
            "link": relay.link,
            "relay_id": relay.message.relay_id,
            "sender": relay.message.sender,
        }
        item = Outbound(None, ep.adapter, (payload,), content_type, attributes)
        # Remember what goes on the air before it does, so its echo is recognised.
        if ep.format == "text":
            self._sent.append((self.clock.monotonic(), _normal(payload.decode("utf-8", "replace"))))
        try:
            await target.adapter.send(item)
        except GatewayError as exc:
            LINK_DROPPED.inc(link=relay.link, reason="send_failed")
            self.links[relay.link].dropped += 1
            log.warning(
                "link_relay_failed",
                link=relay.link,
                source=relay.source.key,
                target=ep.key,
                error=str(exc),
            )
            return
        self.links[relay.link].relayed += 1
        LINK_RELAYS.inc(link=relay.link, source=relay.source.key, target=ep.key)
        log.info(
            "link_relayed",
            link=relay.link,
            source=relay.source.key,
            target=ep.key,
            sender=relay.message.sender,
            relay_id=relay.message.relay_id,
        )

    # -- operator control ------------------------------------------------------------------
    def pause(self, name: str) -> None:
        self._state(name).paused = True
        log.info("link_paused", link=name)

    def resume(self, name: str) -> None:
        self._state(name).paused = False
        log.info("link_resumed", link=name)

    def _state(self, name: str) -> _LinkState:
        try:
            return self.links[name]
        except KeyError:
            raise KeyError(f"no link named {name!r}") from None

    def status(self) -> list[dict[str, Any]]:
        out = []
        for state in self.links.values():
            cfg = state.config
            out.append(
                {
                    "name": cfg.name,
                    "paused": state.paused,
                    "relayed": state.relayed,
                    "dropped": state.dropped,
                    "from": [e.key for e in cfg.sources],
                    "to": [e.key for e in cfg.targets],
                    "queued": {e.key: len(self._targets[e.key].queue) for e in cfg.targets},
                }
            )
        return out


def from_config(tables: Sequence[Mapping[str, Any]], daemon: Any) -> LinkManager:
    """The daemon's entry point: links over its opened sources and sinks.

    Items the daemon reads -- from its sources, and what its radio sinks hear -- reach the
    manager through :meth:`LinkManager.handle_received` after the daemon admitted them; other
    adapters of an endpoint (an MQTT sink, say) are listened to by the manager itself.
    """
    sources: Mapping[str, Any] = getattr(daemon, "sources", {})
    sinks: Mapping[str, Any] = getattr(daemon, "sinks", {})
    read_by_daemon = set(sources) | set(getattr(daemon, "inbound_sinks", {}))
    adapters = {**sinks, **sources}
    return LinkManager.from_config(
        tables,
        adapters=adapters,
        clock=getattr(daemon, "clock", None),
        listen=[name for name in adapters if name not in read_by_daemon],
    )


def _normal(text: str) -> str:
    """Text reduced to what survives every radio's sanitising: ASCII letters and digits."""
    return "".join(ch for ch in fold(text).casefold() if ch.isalnum())


def _fingerprint(text: str) -> str:
    return hashlib.sha256(_normal(text).encode("utf-8")).hexdigest()[:24]


def _message_of(received: Received) -> RadioMessage | None:
    """The message in a Received: RadioMessage JSON, or plain UTF-8 text (e.g. from MQTT)."""
    try:
        return RadioMessage.from_json(received.raw)
    except FrameError:
        pass
    try:
        text = received.raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or len(text) > 4096:
        return None
    return RadioMessage(text, "", received.channel)
