"""Receipts between two gateways over MQTT: B acknowledges what it admits from A with a CAP
Ack, routed back only by the route that asks for Acks; A records it as a receipt (never in
force, never aired) and its console shows it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cap_schemas.model import AlertKey, MsgType
from cap_schemas.parse import parse_alert
from gateway.ledger import Decision
from gateway.receipts import ack_for
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
)
from tests.helpers import Broker


def _gateway(
    tmp: Path, broker: Broker, name: str, sinks: str, routes: str, extra: str = ""
) -> Path:
    path = daemon_toml(tmp, broker.url, sinks=sinks, routes=routes, extra=extra)
    text = path.read_text()
    text = text.replace('name = "test"', f'name = "{name}"').replace(
        'prefix = "borderlink"', f'prefix = "{name}"'
    )
    path.write_text(text)
    return path


class TestReceipts:
    async def test_a_partner_acknowledges_what_it_admits(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        file_sink = '[[sink]]\nname = "files"\ntype = "file"\npath = "files"\n'
        a = _gateway(
            tmp_path / "a", mosquitto, "a",
            sinks=file_sink + f'[[sink]]\nname = "to-b"\ntype = "mqtt"\nurl = "{mosquitto.url}"\n'
            'topic = "b/in/cap"\n',
            routes='[[route]]\nname = "all"\nsinks = ["files", "to-b"]\n',
        )  # fmt: skip
        b = _gateway(
            tmp_path / "b", mosquitto, "b",
            sinks=file_sink + f'[[sink]]\nname = "to-a"\ntype = "mqtt"\nurl = "{mosquitto.url}"\n'
            'topic = "a/in/cap"\n',
            routes='[[route]]\nname = "all"\nsinks = ["files"]\n\n'
            '[[route]]\nname = "receipts-back"\nsinks = ["to-a"]\n'
            '[route.match]\nmsg_type = ["Ack"]\n',
            extra='[[source]]\nname = "from-a"\ntype = "mqtt"\ntopics = ["b/in/cap"]\n'
            'acknowledge = true\nvalidation = "warn"\n',
        )  # fmt: skip
        b.write_text(b.read_text().replace("[mqtt]\n", "[mqtt]\ninput = false\n", 1))
        async with running_daemon(load(a)) as ours, running_daemon(load(b)) as partner:
            raw = CapFactory(sender="eoc@windsor.example.ca")(event="Hazmat", severity="Severe")
            key = AlertKey.from_reference(CapFactory.key_of(raw))
            await publish_all(mosquitto, [raw], topic="a/in/cap")

            async def receipted() -> bool:
                return bool(await asyncio.to_thread(ours.ledger.receipts, key))

            await poll_until(receipted, within=20)
            (receipt,) = await asyncio.to_thread(ours.ledger.receipts, key)
            assert receipt.msg_type == MsgType.ACK.value
            assert receipt.key.sender == "b@borderlink.invalid"
            assert receipt.decision is Decision.RECEIPT
            assert not receipt.active  # a receipt is never in force
            # Nowhere else: not to A's sinks (no ping-pong), not to B's files.
            assert not await asyncio.to_thread(ours.ledger.deliveries, receipt.key)
            admitted_there = await asyncio.to_thread(partner.ledger.get, key)
            assert admitted_there is not None
            acks_there = await asyncio.to_thread(partner.ledger.deliveries, receipt.key)
            assert [e.sink for e in acks_there] == ["to-a"]

    def test_the_ack_is_the_same_each_time(self) -> None:
        from datetime import UTC, datetime  # noqa: PLC0415

        alert = parse_alert(CapFactory()(severity="Minor"))
        when = datetime(2026, 12, 4, 6, 0, 0, 123, tzinfo=UTC)
        first = ack_for(alert, sender="eoc@x.example", received_at=when)
        assert first == ack_for(alert, sender="eoc@x.example", received_at=when)
        ack = parse_alert(first)
        assert ack.msg_type is MsgType.ACK
        assert ack.references == (alert.key,)
