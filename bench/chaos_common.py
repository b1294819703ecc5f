"""What the chaos harnesses share (``bench/chaos.py`` for one gateway, ``bench/chaos_cluster.py``
for several on one PostgreSQL ledger): the gateway and broker processes, the subscriber that
records every copy a sink published, the HTTP and MQTT 5 publishers, and the report's lines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
from paho.mqtt.properties import Properties

from tests.helpers import Broker, _spawn_mosquitto, free_port, mosquitto_user, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "chaos-token-0123456789abcdef"
BROKER_WINDOW = 5.0  # s: what the broker acknowledged this close before its SIGKILL may die with it

# What the broker answered the careful publisher: "unheard" (code 16, sent again), "given_up"
# (still not accepted after every try: not counted as acknowledged).
PUBLISH_ANSWERS: Counter[str] = Counter()


def publish_answers() -> str:
    """What the broker answered the harness's MQTT 5 publishes besides success."""
    return (
        f"MQTT publishes answered 16, no matching subscribers (a broker just restarted, the"
        f" gateways not yet subscribed again), and sent again: {PUBLISH_ANSWERS['unheard']};"
        f" never accepted, so not counted as acknowledged: {PUBLISH_ANSWERS['given_up']}"
    )


def split_repeats(
    seen: list[tuple[str, str, str]], attempts: dict[tuple[str, str], int]
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """The delivery ids a sink heard more than once, per sink, as (the gateway's, the
    broker's). The ledger counts an attempt before its bytes leave, so an entry with one
    attempt (``attempts[(sink, key)]``) was sent once: a second copy of it was passed on by
    the broker, after a kill of its own lost the record of the first."""
    copies = Counter((sink, ident) for sink, _key, ident in seen)
    key_of = {(sink, ident): key for sink, key, ident in seen}
    gateway: dict[str, dict[str, int]] = {}
    broker: dict[str, dict[str, int]] = {}
    for (sink, ident), n in copies.items():
        if n > 1:
            sent = attempts.get((sink, key_of[(sink, ident)]), n)
            (gateway if sent > 1 else broker).setdefault(sink, {})[ident] = n
    return gateway, broker


def broker_repeats_line(broker: dict[str, dict[str, int]]) -> str:
    per_sink = ", ".join(
        f"{sink} {sum(n - 1 for n in ids.values())}" for sink, ids in sorted(broker.items())
    )
    return (
        "copies the broker passed on twice though the gateway sent them once (one attempt in"
        f" the ledger; after a broker kill; a consumer drops them by delivery id): {per_sink or 0}"
    )


def sink_table(
    sinks: dict[str, str],
    received: dict[str, int],
    lost: list[str],
    duplicates: dict[str, dict[str, int]],
    held: dict[str, int],
    doubted: Counter[str],
) -> list[str]:
    """The per-sink lines of a chaos report (the single-instance and the cluster one): what
    each received, lost (``sink:key`` entries), repeated (each delivery id), held, doubted."""
    lines = [
        f"{'sink':<6} {'in_doubt':<8} {'received':>8} {'lost':>5} {'duplicates':>10}"
        f" {'held':>5} {'doubted':>7}"
    ]
    for sink, policy in sinks.items():
        dups = duplicates.get(sink, {})
        missing = sum(1 for k in lost if k.startswith(sink + ":"))
        lines.append(
            f"{sink:<6} {policy:<8} {received.get(sink, 0):>8} {missing:>5}"
            f" {sum(n - 1 for n in dups.values()):>10} {held.get(sink, 0):>5}"
            f" {doubted.get(sink, 0):>7}"
        )
        lines.extend(f"    repeated delivery id {d} x{n}" for d, n in sorted(dups.items()))
    return lines


def spawn_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "--log-level", "warning", "--log-json", "run",
             str(config)],
            stdout=handle, stderr=handle, cwd=ROOT, env=env,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, and SIGKILL when it does not end in time."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_broker(tmp: Path) -> Broker:
    port = free_port()
    config = tmp / "mosquitto.conf"
    store = tmp / "mosquitto-store"
    store.mkdir()
    config.write_text(
        f"{mosquitto_user()}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {store}/\nautosave_interval 1\nautosave_on_changes true\n"
        "max_queued_messages 100000\n",
        encoding="utf-8",
    )
    broker = Broker("127.0.0.1", port, _spawn_mosquitto(config), config)
    wait_for_port("127.0.0.1", port)
    return broker


async def collect_copies(
    broker: Broker, seen: list[tuple[str, str, str]], stop: asyncio.Event
) -> None:
    """Every copy each sink published: (sink, alert key, delivery id), across broker kills."""
    props = Properties(packetType=1)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                broker.host, broker.port, identifier="chaos-sub", clean_start=False,
                properties=props, protocol=aiomqtt.ProtocolVersion.V5,
            ) as sub:
                await sub.subscribe("out/feed/#", qos=1)
                await sub.subscribe("out/air/#", qos=2)  # a transmitter hears each once
                async for message in sub.messages:
                    user = dict(message.properties.UserProperty or [])  # type: ignore[union-attr]
                    sink = str(message.topic).split("/")[1]
                    seen.append(
                        (sink, user.get("borderlink-alert-key", ""),
                         user.get("borderlink-delivery-id", ""))
                    )
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)


async def post_alert(http: aiohttp.ClientSession, url: str, body: bytes) -> bool:
    try:
        async with http.post(
            url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as resp:
            return resp.status == 202
    except (aiohttp.ClientError, TimeoutError):
        return False


async def publish_alert(broker: Broker, body: bytes, *, tries: int = 3) -> bool:
    """Publish with QoS 1 over MQTT 5 as a careful publisher does: a PUBACK whose reason code
    is not 0 is no acceptance, and the publish is sent again (at most ``tries`` times). Code
    16, no matching subscribers, is what Mosquitto 2.0 answers after a restart until the
    gateways have subscribed again: it keeps sessions but not their shared subscriptions."""
    for attempt in range(tries):
        codes: dict[int, int] = {}
        try:
            async with aiomqtt.Client(
                broker.host,
                broker.port,
                identifier=f"chaos-pub-{uuid.uuid4().hex[:8]}",
                timeout=5,
                protocol=aiomqtt.ProtocolVersion.V5,
            ) as pub:
                chain: Any = pub._client.on_publish

                def answered(
                    client: Any,
                    userdata: Any,
                    mid: int,
                    reason: Any,
                    props: Any,
                    chain: Any = chain,
                    codes: dict[int, int] = codes,
                ) -> None:
                    codes[mid] = int(getattr(reason, "value", 0))
                    chain(client, userdata, mid, reason, props)

                pub._client.on_publish = answered
                await pub.publish("borderlink/in/cap", body, qos=1)
        except aiomqtt.MqttError:
            return False
        if codes and all(code == 0 for code in codes.values()):
            return True
        PUBLISH_ANSWERS["unheard"] += 1
        await asyncio.sleep(0.5 * (attempt + 1))
    PUBLISH_ANSWERS["given_up"] += 1
    return False
