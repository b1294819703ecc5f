"""Hostile and faulty input on every radio port: rejected, counted, and the port keeps working."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from adapters.kiss import aprs, ax25, kiss
from adapters.ports import TxGate
from gateway.adapter import Outbound
from gateway.errors import DeliveryError
from gateway.links import LinkManager
from gateway.metrics import INPUT_REJECTED
from gateway.model import RadioMessage
from hardware.faults import FaultPlan, FaultProxy
from hardware.rf_channel import RadioStation, TncStation
from tests.radio.conftest import SimFactory, build_adapter


def outbound(text: str, **attributes: str) -> Outbound:
    return Outbound(None, "x", (text.encode(),), "text/plain", attributes)


class FakeDevice:
    """A TCP 'device' that sends a script of bytes to whoever connects and records the rest."""

    def __init__(self, script: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.script = script
        self.received = bytearray()
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        await self.script(writer)
        while data := await reader.read(4096):
            self.received += data

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"socket://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


def ui(info: bytes, src: str = "VA3FLD") -> bytes:
    return kiss.data_frame(
        ax25.Frame(ax25.Address("APRS"), ax25.Address.parse(src), (), info).to_bytes()
    ).to_bytes()


class TestHostileTnc:
    """A TNC that sends junk: every bad frame is counted; the good one still arrives."""

    async def test_junk_then_a_message(self) -> None:
        rng = random.Random(4)

        async def script(w: asyncio.StreamWriter) -> None:
            w.write(b"\x00\xff\x13garbage before the first FEND")
            w.write(b"\xc0\x00" + b"A" * 5000 + b"\xc0")  # oversize
            w.write(b"\xc0\x00\xdb\x41\xc0")  # bad escape
            w.write(b"\xc0\x0e\xc0")  # unknown command
            non_ui = bytearray(ax25.Frame(ax25.Address("APRS"), ax25.Address("X")).to_bytes())
            non_ui[14] = 0x3F
            w.write(kiss.data_frame(bytes(non_ui)).to_bytes())  # SABM, not UI
            w.write(kiss.txdelay(300).to_bytes())  # a parameter echo: ignored
            w.write(ui(b":VE3BDR   :bad ~ char{1"))  # APRS format violation
            other_port = ax25.Frame(
                ax25.Address("APRS"),
                ax25.Address("VA3FLD"),
                (),
                b":VE3BDR   :heard on radio port 3{2",
            ).to_bytes()
            w.write(kiss.data_frame(other_port, port=3).to_bytes())  # not our radio port
            w.write(bytes(rng.randrange(256) for _ in range(2000)))
            w.write(b"\xc0")
            w.write(ui(b":VE3BDR   :Water rising at the dam{77"))
            await w.drain()

        device = FakeDevice(script)
        before = {
            r: INPUT_REJECTED.value(component="kiss:k", reason=r) for r in ("kiss", "ax25", "aprs")
        }
        async with device as url:
            adapter = build_adapter("kiss", "k", port=url, callsign="VE3BDR")
            async with adapter:
                inbound = adapter.messages()
                item = await asyncio.wait_for(anext(inbound), 5)
                assert RadioMessage.from_json(item.raw).text == "Water rising at the dam"
                assert item.ack is not None
                await item.ack()  # stored, as the daemon would: the APRS ack goes out
                await adapter.send(outbound("still sending"))
        after = {r: INPUT_REJECTED.value(component="kiss:k", reason=r) for r in before}
        assert after["kiss"] - before["kiss"] >= 3
        assert after["ax25"] - before["ax25"] >= 1
        assert after["aprs"] - before["aprs"] >= 1
        # Our ack and bulletin went out intact.
        frames = kiss.KissDecoder().feed(bytes(device.received))
        infos = [ax25.Frame.from_bytes(f.data).info for f in frames]
        assert aprs.Ack("VA3FLD", "77").to_info() in infos
        assert aprs.Bulletin("0", "still sending").to_info() in infos

    async def test_simulated_tnc_drops_bad_kiss_frames(self, rf: SimFactory) -> None:
        options = {
            "channels": [{"name": "a", "line_rate": 38400}],
            "stations": [
                {"name": "tnc", "kind": "tnc", "tcp": "127.0.0.1:0"},
                {"name": "peer", "kind": "tnc"},
            ],
        }
        async with rf(options) as sim:
            tnc, peer = sim.stations["tnc"], sim.stations["peer"]
            assert isinstance(tnc, TncStation)
            host, port = sim.url("tnc").removeprefix("socket://").split(":")
            _reader, writer = await asyncio.open_connection(host, int(port))
            good = ax25.Frame(ax25.Address("APRS"), ax25.Address("N0CALL"), (), b">ok").to_bytes()
            writer.write(b"\xc0\x00\xdb\x00\xc0" + kiss.data_frame(good).to_bytes())
            await writer.drain()
            await peer.wait_until(lambda: len(peer.received) == 1)
            assert peer.received[0].payload == good
            assert tnc.bad_frames == 1
            writer.close()
            await writer.wait_closed()


class TestFaultyLines:
    """Byte-at-a-time lines with noise and runaway lines do not stop the text-modem adapter."""

    async def test_text_modem_over_a_slow_noisy_line(self, rf: SimFactory) -> None:
        options = {
            "channels": [{"name": "ca", "line_rate": 38400}],
            "stations": [
                {"name": "radio", "kind": "radio", "tcp": "127.0.0.1:0", "talkgroups": ["CA"]},
                {"name": "hh", "kind": "console", "unit": "2001", "talkgroups": ["CA"]},
            ],
        }
        async with rf(options) as sim:
            port = int(sim.url("radio").rsplit(":", 1)[1])
            noisy = FaultPlan(
                byte_at_a_time=True, garbage=b"\r\n+++\r\nNO CARRIER\r\n" + b"x" * 2000 + b"\r\n"
            )
            async with FaultProxy("127.0.0.1", port, downstream=noisy) as proxy:
                before = INPUT_REJECTED.value(component="textmodem:r", reason="line")
                radio = build_adapter("textmodem", "r", port=proxy.url, talkgroups=["CA"])
                async with radio:
                    inbound = radio.messages()
                    hh = sim.stations["hh"]
                    assert isinstance(hh, RadioStation)
                    hh.type_text("copy that")
                    item = await asyncio.wait_for(anext(inbound), 10)
                    assert RadioMessage.from_json(item.raw).text == "copy that"
                    await radio.send(outbound("acknowledged"))
                    await hh.wait_until(lambda: len(hh.received) == 1)
                assert INPUT_REJECTED.value(component="textmodem:r", reason="line") == before + 1

    async def test_tap_terminal_babbling_without_cr(self) -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(b"ID=" + b"z" * 1000)
            await w.drain()

        before = INPUT_REJECTED.value(component="tap:p", reason="reply")
        async with FakeDevice(script) as url:
            sink = build_adapter("tap", "p", port=url, pager_ids=["1"], response_timeout=2)
            async with sink:
                with pytest.raises(DeliveryError, match="bad reply"):
                    await sink.send(outbound("x"))
        assert INPUT_REJECTED.value(component="tap:p", reason="reply") == before + 1


class TestPriority:
    """Alerts pre-empt chatter at the transmitter."""

    async def test_urgent_goes_before_waiting_chatter(self) -> None:
        gate = TxGate()
        order: list[str] = []

        async def use(name: str, urgent: bool) -> None:
            async with gate.hold(urgent=urgent):
                order.append(name)
                await asyncio.sleep(0)

        async with gate.hold(urgent=False):
            chatter = [asyncio.create_task(use(f"chatter{i}", False)) for i in range(3)]
            await asyncio.sleep(0)
            alert = asyncio.create_task(use("alert", True))
            await asyncio.sleep(0)
        await asyncio.gather(alert, *chatter)
        assert order[0] == "alert"
        assert sorted(order[1:]) == ["chatter0", "chatter1", "chatter2"]


class TestAprsGroupLink:
    """A talkgroup linked with an APRS group: radio text becomes group bulletins and back."""

    async def test_radio_to_aprs_group_and_back(self, rf: SimFactory) -> None:
        options = {
            "channels": [{"name": "ca", "line_rate": 38400}, {"name": "aprs", "line_rate": 38400}],
            "stations": [
                {
                    "name": "gw-radio",
                    "kind": "radio",
                    "channel": "ca",
                    "tcp": "127.0.0.1:0",
                    "unit": "9001",
                    "talkgroups": ["CA-EAST"],
                },
                {
                    "name": "hh",
                    "kind": "console",
                    "channel": "ca",
                    "unit": "2001",
                    "talkgroups": ["CA-EAST"],
                },
                {"name": "gw-tnc", "kind": "tnc", "channel": "aprs", "tcp": "127.0.0.1:0"},
                {"name": "field", "kind": "tnc", "channel": "aprs"},
            ],
        }
        async with rf(options) as sim:
            radio = build_adapter(
                "textmodem", "ca-radio", port=sim.url("gw-radio"), talkgroups=["CA-EAST"]
            )
            tnc = build_adapter(
                "kiss",
                "aprs",
                port=sim.url("gw-tnc"),
                callsign="VE3BDR",
                listen_groups=["BORDR"],
                mode="message",
                addressees=["X"],
            )
            manager = LinkManager.from_config(
                [{"name": "l", "endpoints": ["ca-radio#CA-EAST", "aprs#BORDR"]}],
                adapters={"ca-radio": radio, "aprs": tnc},
            )
            async with radio, tnc, manager:
                hh, field = sim.stations["hh"], sim.stations["field"]
                assert isinstance(hh, RadioStation)
                hh.type_text("Smoke seen north of the crossing")
                await field.wait_until(lambda: len(field.received) == 1)
                bulletin = aprs.decode(ax25.Frame.from_bytes(field.received[0].payload).info)
                assert bulletin == aprs.Bulletin(
                    "0", "2001: Smoke seen north of the crossing", "BORDR"
                )
                reply = ax25.Frame(
                    ax25.Address("APRS"),
                    ax25.Address("VA3FLD", 5),
                    (),
                    aprs.Bulletin("1", "Copy, crews en route", "BORDR").to_info(),
                )
                field.send_on_air("ax25", "", reply.to_bytes())
                await hh.wait_until(lambda: len(hh.received) == 1)
                assert hh.received[0].payload == b"VA3FLD-5: Copy, crews en route"
