"""KISS, TAP and text-modem adapters against the simulated devices on a simulated channel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.kiss import aprs, ax25
from adapters.kiss.adapter import MESSAGE_RETRIES, KissAdapter
from gateway.adapter import Outbound
from gateway.errors import ConfigError, DeliveryError
from gateway.metrics import INPUT_REJECTED
from gateway.model import RadioMessage
from hardware.faults import FaultPlan, FaultProxy
from hardware.rf_channel import TapTerminalStation, TncStation
from tests.radio.conftest import Inbox, SimFactory, build_adapter


def outbound(*parts: str, **attributes: str) -> Outbound:
    return Outbound(None, "radio", tuple(p.encode() for p in parts), "text/plain", attributes)


def two_tncs(**channel: object) -> dict[str, object]:
    return {
        "channels": [{"name": "aprs", "line_rate": 9600, **channel}],
        "stations": [
            {"name": "gw-tnc", "kind": "tnc", "tcp": "127.0.0.1:0"},
            {"name": "field-tnc", "kind": "tnc", "tcp": "127.0.0.1:0"},
        ],
    }


def gateway_tnc(sim: Any, **options: object) -> Any:
    """The gateway's KISS adapter ("aprs") on the channel's gw-tnc; VE3BDR unless told."""
    options = {"callsign": "VE3BDR", **options}
    return build_adapter("kiss", "aprs", port=sim.url("gw-tnc"), **options)


class TestKissAdapterOnChannel:
    """Bulletins and directed messages cross the channel; acks settle; duplicates are dropped."""

    async def test_alert_becomes_group_bulletins(self, rf: SimFactory) -> None:
        async with rf(two_tncs()) as sim:
            gw = gateway_tnc(
                sim,
                callsign="VE3BDR-10",
                path="WIDE1-1",
                group="WXCA",
                bulletin_id="1",
                txdelay_ms=0,
            )
            async with gw:
                long_text = "Tornado warning for Essex County. " * 3
                await gw.send(outbound("Flood watch Ottawa River", long_text))
                tnc = sim.stations["field-tnc"]
                await tnc.wait_until(lambda: len(tnc.received) == 3)
            frames = [ax25.Frame.from_bytes(t.payload) for t in tnc.received]
            packets = [aprs.decode(f.info) for f in frames]
            assert all(isinstance(p, aprs.Bulletin) and p.group == "WXCA" for p in packets)
            assert [p.ident for p in packets] == ["1", "2", "3"]  # type: ignore[union-attr]
            assert all(len(p.text) <= 67 for p in packets)  # type: ignore[union-attr]
            assert frames[0].source == ax25.Address("VE3BDR", 10)
            assert frames[0].path == (ax25.Address("WIDE1", 1),)
            assert isinstance(sim.stations["gw-tnc"], TncStation)
            assert sim.stations["gw-tnc"].parameters == {"TXDELAY": 0}

    async def test_directed_message_with_lost_ack_is_retried_and_delivered_once(
        self, rf: SimFactory
    ) -> None:
        # Transmission 0: the message; 1: its ack (lost); 2: the retry; 3: the second ack.
        async with rf(two_tncs(drop_indices=[1])) as sim:
            gw = gateway_tnc(sim, mode="message", addressees=["W2EOC"], message_retry_initial=0.3)
            field = build_adapter("kiss", "field", port=sim.url("field-tnc"), callsign="W2EOC")
            async with gw, field:
                inbound = Inbox(field.messages())
                before = MESSAGE_RETRIES.value(adapter="aprs")
                await asyncio.wait_for(gw.send(outbound("Shelter open at Lincoln HS")), 10)
                assert MESSAGE_RETRIES.value(adapter="aprs") == before + 1
                received = await inbound.next(5)
                msg = RadioMessage.from_json(received.raw)
                assert msg.text == "Shelter open at Lincoln HS"
                assert msg.sender == "VE3BDR"
                assert received.kind == "incident"
                # Nothing else arrives: the retry was recognised as a duplicate.
                with pytest.raises(TimeoutError):
                    await inbound.next(0.5)
            assert sim.channels["aprs"].stats.dropped == 1

    async def test_unacknowledged_message_fails_after_bounded_retries(self, rf: SimFactory) -> None:
        async with rf(two_tncs()) as sim:
            gw = gateway_tnc(
                sim,
                mode="message",
                addressees=["NOBODY"],
                retries=3,
                message_retry_initial=0.05,
                message_retry_max=0.1,
            )
            async with gw:
                with pytest.raises(DeliveryError, match="after 3 attempts"):
                    await gw.send(outbound("hello"))
            field = sim.stations["field-tnc"]
            await field.wait_until(lambda: len(field.received) == 3)
            await asyncio.sleep(0.2)  # a fourth transmission would have arrived by now
            assert len(field.received) == 3

    async def test_rejection_fails_without_retry(self, rf: SimFactory) -> None:
        async with rf(two_tncs()) as sim:
            gw = gateway_tnc(sim, mode="message", addressees=["W2EOC"], message_retry_initial=5)
            async with gw:
                sending = asyncio.create_task(gw.send(outbound("hello")))
                field = sim.stations["field-tnc"]
                await field.wait_until(lambda: bool(field.received))
                sent = aprs.decode(
                    ax25.Frame.from_bytes(sim.stations["field-tnc"].received[0].payload).info
                )
                assert isinstance(sent, aprs.Message)
                assert sent.number
                rej = ax25.Frame(
                    ax25.Address("APRS"),
                    ax25.Address("W2EOC"),
                    info=aprs.Rej("VE3BDR", sent.number).to_info(),
                )
                sim.stations["field-tnc"].send_on_air("ax25", "", rej.to_bytes())
                with pytest.raises(DeliveryError, match="rejected") as info:
                    await sending
                assert not info.value.retryable

    async def test_inbound_messages_are_acked_deduplicated_and_hostile_input_counted(
        self, rf: SimFactory
    ) -> None:
        async with rf(two_tncs()) as sim:
            gw = gateway_tnc(sim, listen_groups=["BORDR"])
            async with gw:
                inbound = gw.messages()
                field = sim.stations["field-tnc"]
                me = ax25.Address("VA3FLD", 5)

                def air(info: bytes) -> None:
                    frame = ax25.Frame(ax25.Address("APRS"), me, info=info)
                    field.send_on_air("ax25", "", frame.to_bytes())

                before = INPUT_REJECTED.value(component="kiss:aprs", reason="aprs")
                air(b":VE3BDR   :bad|text{1")  # forbidden character: rejected, counted
                air(b":VE3BDR   :Bridge out on Hwy 2{42")
                air(b":OTHER    :not for us{7")
                air(b":BLN1BORDR:Smoke near the crossing")
                air(b":BLN1OTHER:other group")
                first_item = await asyncio.wait_for(anext(inbound), 5)
                second_item = await asyncio.wait_for(anext(inbound), 5)
                assert RadioMessage.from_json(first_item.raw) == RadioMessage(
                    "Bridge out on Hwy 2", "VA3FLD-5", "VE3BDR", "42"
                )
                assert RadioMessage.from_json(second_item.raw).channel == "BORDR"
                assert second_item.ack is None  # bulletins are not acknowledged
                # A copy heard while the message is not yet confirmed stored: no ack yet.
                air(b":VE3BDR   :Bridge out on Hwy 2{42")
                await asyncio.sleep(0.3)  # time for an ack to go out, were one sent
                assert field.received == []
                assert first_item.ack is not None
                await first_item.ack()  # stored: the ack goes on the air
                await first_item.ack()  # a second consumer's confirmation adds nothing
                await field.wait_until(lambda: len(field.received) == 1)
                # A later copy (the sender missed our ack) is acknowledged again, not passed on.
                air(b":VE3BDR   :Bridge out on Hwy 2{42")
                await field.wait_until(lambda: len(field.received) == 2)
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(anext(inbound), 0.3)
                assert INPUT_REJECTED.value(component="kiss:aprs", reason="aprs") == before + 1
            acks = [aprs.decode(ax25.Frame.from_bytes(t.payload).info) for t in field.received]
            assert acks == [aprs.Ack("VA3FLD-5", "42"), aprs.Ack("VA3FLD-5", "42")]

    async def test_byte_at_a_time_link_with_line_noise(self, rf: SimFactory) -> None:
        async with rf(two_tncs()) as sim:
            tnc = sim.stations["gw-tnc"].host
            assert tnc is not None
            port = int(sim.url("gw-tnc").rsplit(":", 1)[1])
            plan = FaultPlan(byte_at_a_time=True, garbage=b"\x00\xff+++ATZ\r\n\xdb")
            async with FaultProxy(
                "127.0.0.1", port, upstream=FaultPlan(byte_at_a_time=True), downstream=plan
            ) as proxy:
                gw = build_adapter("kiss", "aprs", port=proxy.url, callsign="VE3BDR")
                async with gw:
                    inbound = gw.messages()
                    frame = ax25.Frame(
                        ax25.Address("APRS"),
                        ax25.Address("VA3FLD"),
                        info=b":VE3BDR   :slow line test{9",
                    )
                    sim.stations["field-tnc"].send_on_air("ax25", "", frame.to_bytes())
                    item = await asyncio.wait_for(anext(inbound), 5)
                    assert RadioMessage.from_json(item.raw).text == "slow line test"
                    assert item.ack is not None
                    await item.ack()
                    await gw.send(outbound("reply over a slow line"))
                    field = sim.stations["field-tnc"]
                    await field.wait_until(lambda: len(field.received) == 2)
            texts = [
                aprs.decode(ax25.Frame.from_bytes(t.payload).info)
                for t in sim.stations["field-tnc"].received
            ]
            assert aprs.Ack("VA3FLD", "9") in texts
            assert aprs.Bulletin("0", "reply over a slow line") in texts

    async def test_lost_port_ends_messages_with_connection_error(self, rf: SimFactory) -> None:
        async with rf(two_tncs()) as sim:
            gw = gateway_tnc(sim)
            async with gw:
                inbound = gw.messages()
                await sim.stations["gw-tnc"].stop()
                with pytest.raises(ConnectionError):
                    await asyncio.wait_for(anext(inbound), 5)

    def test_config_errors_name_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r'sink "x"\.callsign: is required'):
            build_adapter("kiss", "x", port="socket://127.0.0.1:1")
        with pytest.raises(ConfigError, match="mode 'message' needs 'addressees'"):
            build_adapter(
                "kiss", "x", port="socket://127.0.0.1:1", callsign="N0CALL", mode="message"
            )
        with pytest.raises(ConfigError, match=r"unknown key\(s\) colour"):
            build_adapter("kiss", "x", port="socket://127.0.0.1:1", callsign="N0CALL", colour=1)
        with pytest.raises(ConfigError, match="at most 8"):
            build_adapter(
                "kiss",
                "x",
                port="socket://127.0.0.1:1",
                callsign="N0CALL",
                path=",".join(["WIDE1-1"] * 9),
            )

    async def test_expired_delivery_is_refused(self, rf: SimFactory) -> None:
        async with rf(two_tncs()) as sim:
            gw = gateway_tnc(sim)
            async with gw:
                item = Outbound(
                    None,
                    "aprs",
                    (b"old",),
                    "text/plain",
                    expires=datetime.now(UTC) - timedelta(minutes=1),
                )
                with pytest.raises(DeliveryError, match="expired") as info:
                    await gw.send(item)
                assert not info.value.retryable


def tap_sim(**terminal: object) -> dict[str, object]:
    return {
        "channels": [{"name": "paging", "line_rate": 9600}],
        "stations": [
            {
                "name": "terminal",
                "kind": "tap",
                "tcp": "127.0.0.1:0",
                "password": "ABC123",
                "max_length": 80,
                **terminal,
            },
            {"name": "pager-1", "kind": "pager", "pager_ids": ["1001"]},
            {"name": "pager-2", "kind": "pager", "pager_ids": ["1002"]},
        ],
    }


class TestTapAdapter:
    """Pages go through logon, checksummed blocks and logoff; NAKs are retransmitted."""

    async def test_pages_reach_the_pagers(self, rf: SimFactory) -> None:
        async with rf(tap_sim()) as sim:
            sink = build_adapter(
                "tap",
                "pager",
                port=sim.url("terminal"),
                password="ABC123",
                pager_ids=["1001", "1002"],
                max_length=80,
                wake_interval=0.2,
            )
            async with sink:
                await sink.send(outbound("ALERT: Tornado warning Essex County, take shelter"))
                p2 = sim.stations["pager-2"]
                await p2.wait_until(lambda: bool(p2.received))
            for name, pid in (("pager-1", "1001"), ("pager-2", "1002")):
                pages = sim.stations[name].received
                assert [(t.channel, t.payload) for t in pages] == [
                    (pid, b"ALERT: Tornado warning Essex County, take shelter")
                ]

    async def test_long_text_split_to_terminal_limit_and_blocks(self, rf: SimFactory) -> None:
        async with rf(tap_sim(max_length=240)) as sim:
            sink = build_adapter(
                "tap",
                "pager",
                port=sim.url("terminal"),
                password="ABC123",
                pager_ids=["1001"],
                max_length=240,
                max_block=30,
            )
            async with sink:
                text = "Évacuation obligatoire secteur nord " * 12
                await sink.send(outbound(text))
            terminal = sim.stations["terminal"]
            assert isinstance(terminal, TapTerminalStation)
            assert len(terminal.pages) == 2
            assert terminal.pages[0][1].startswith("1/2 Evacuation obligatoire")
            assert all(len(t) <= 240 for _, t in terminal.pages)

    async def test_nak_is_retransmitted(self, rf: SimFactory) -> None:
        async with rf(tap_sim()) as sim:
            terminal = sim.stations["terminal"]
            assert isinstance(terminal, TapTerminalStation)
            terminal.line_plan = FaultPlan(corrupt_indices=frozenset({0}))
            sink = build_adapter(
                "tap", "pager", port=sim.url("terminal"), password="ABC123", pager_ids=["1001"]
            )
            async with sink:
                await sink.send(outbound("retry me"))
            assert terminal.naks == 1
            assert terminal.pages == [("1001", "retry me")]

    async def test_refused_page_and_bad_password(self, rf: SimFactory) -> None:
        async with rf(tap_sim(max_length=20)) as sim:
            sink = build_adapter(
                "tap",
                "pager",
                port=sim.url("terminal"),
                password="ABC123",
                pager_ids=["1001"],
                max_length=80,
            )
            async with sink:
                with pytest.raises(DeliveryError, match="refused pages to 1001") as info:
                    await sink.send(outbound("this page is longer than twenty characters"))
                assert not info.value.retryable
            wrong = build_adapter(
                "tap", "pager", port=sim.url("terminal"), password="WRONG", pager_ids=["1001"]
            )
            async with wrong:
                with pytest.raises(DeliveryError, match="refused logon"):
                    await wrong.send(outbound("x"))

    async def test_silent_terminal_times_out(self) -> None:
        writers: list[asyncio.StreamWriter] = []

        async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            writers.append(w)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            sink = build_adapter(
                "tap",
                "pager",
                port=f"socket://127.0.0.1:{port}",
                pager_ids=["1"],
                wake_interval=0.05,
                retries=2,
            )
            async with sink:
                with pytest.raises(DeliveryError, match="no ID= prompt") as info:
                    await sink.send(outbound("x"))
                assert info.value.retryable
            for w in writers:
                w.close()


def radio_sim(**extra: object) -> dict[str, object]:
    return {
        "channels": [{"name": "ca", "line_rate": 9600, **extra}],
        "stations": [
            {
                "name": "gw-radio",
                "kind": "radio",
                "tcp": "127.0.0.1:0",
                "unit": "9001",
                "talkgroups": ["CA-EAST"],
            },
            {
                "name": "handheld",
                "kind": "console",
                "tcp": "127.0.0.1:0",
                "unit": "2001",
                "talkgroups": ["CA-EAST"],
            },
            {"name": "other", "kind": "radio", "unit": "2002", "talkgroups": ["CA-WEST"]},
        ],
    }


class TestTextModemAdapter:
    """The configured dialect drives the radio: OK/ERROR replies, retries, received lines."""

    async def test_send_and_receive(self, rf: SimFactory) -> None:
        async with rf(radio_sim()) as sim:
            radio = build_adapter(
                "textmodem",
                "ca-radio",
                port=sim.url("gw-radio"),
                talkgroups=["CA-EAST"],
                dialect={"init": ["ATE0"]},
            )
            async with radio:
                inbound = radio.messages()
                await radio.send(outbound("Boil water advisory lifted"))
                hh = sim.stations["handheld"]
                await hh.wait_until(lambda: bool(hh.received))
                heard = hh.received
                assert [(t.channel, t.payload) for t in heard] == [
                    ("CA-EAST", b"Boil water advisory lifted")
                ]
                assert sim.stations["other"].received == []
                sim.stations["handheld"].type_text("Need fuel at checkpoint 4")  # type: ignore[attr-defined]
                item = await asyncio.wait_for(anext(inbound), 5)
                assert RadioMessage.from_json(item.raw) == RadioMessage(
                    "Need fuel at checkpoint 4", "2001", "CA-EAST"
                )

    async def test_error_reply_is_retried_then_fails(self, rf: SimFactory) -> None:
        async with rf(radio_sim()) as sim:
            # A dialect whose template the radio does not understand: every send is ERROR.
            radio = build_adapter(
                "textmodem",
                "ca-radio",
                port=sim.url("gw-radio"),
                talkgroups=["CA-EAST"],
                retries=2,
                dialect={"tx": "AT+SDS={dest},{text}"},
            )
            async with radio:
                with pytest.raises(DeliveryError, match="2 times \\(last: unknown command\\)"):
                    await radio.send(outbound("x"))

    def test_dialect_config_errors(self) -> None:
        with pytest.raises(ConfigError, match="must use"):
            build_adapter(
                "textmodem", "r", port="socket://127.0.0.1:1", dialect={"tx": "AT+X={text}"}
            )
        with pytest.raises(ConfigError, match="needs a"):
            build_adapter(
                "textmodem", "r", port="socket://127.0.0.1:1", dialect={"rx": "^RX (.*)$"}
            )
        with pytest.raises(ConfigError, match=r'sink "r"\.dialect: unknown key\(s\) baud'):
            build_adapter("textmodem", "r", port="socket://127.0.0.1:1", dialect={"baud": 1})


def test_kiss_adapter_type() -> None:
    assert isinstance(
        build_adapter("kiss", "k", port="socket://127.0.0.1:1", callsign="N0CALL"), KissAdapter
    )
