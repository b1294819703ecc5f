"""The ENDEC serial line codec, the ENDEC adapter and the simulated ENDEC, end to end."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.eas import same_modem as sm
from adapters.eas.adapter import EndecAdapter, EndecOptions, from_context, wav_name
from adapters.eas.audio import write_wav
from adapters.eas.endec import EndecCodec, EndecFrameError, EndecFraming, EndecLine
from cap_schemas.parse import parse_alert
from gateway.adapter import AdapterContext, Outbound, Received, load_factory
from gateway.cli import build_parser
from gateway.errors import AdapterConnectionError, ConfigError, DeliveryError, FrameError
from gateway.metrics import INPUT_REJECTED
from hardware.faults import FaultPlan, FaultProxy
from hardware.sim_endec import SimEndec, simulator
from tests.audio.conftest import read_wav, write_raw
from tests.helpers import require_tool

HEADER = "ZCZC-WXR-SVR-012079-013019+0130-0462024-N0C4LL  -"
OTHER = "ZCZC-CIV-CEM-036029+0100-1231500-BORDERLN-"


def feed_all(codec: EndecCodec, data: bytes, step: int = 0) -> list[EndecLine]:
    if not step:
        return codec.feed(data)
    out: list[EndecLine] = []
    for at in range(0, len(data), step):
        out += codec.feed(data[at : at + step])
    return out


class TestEndecCodec:
    """Lines in, headers out; configurable framing; hostile lines counted and skipped."""

    def test_golden_lines_any_line_end(self) -> None:
        data = f"{HEADER}\r\nNNNN\n{OTHER}\r".encode()
        assert feed_all(EndecCodec(), data) == [
            EndecLine("header", HEADER),
            EndecLine("eom", "NNNN"),
            EndecLine("header", OTHER),
        ]

    @pytest.mark.parametrize("step", [1, 2, 7])
    def test_byte_at_a_time_and_split_feeds(self, step: int) -> None:
        data = f"{HEADER}\r\n{OTHER}\r\n".encode()
        assert [x.text for x in feed_all(EndecCodec(), data, step)] == [HEADER, OTHER]

    def test_custom_prefix_and_terminator(self) -> None:
        framing = EndecFraming.from_options(prefix="<ENDEC>", terminator="\\x03")
        codec = EndecCodec(framing)
        wire = codec.to_bytes(HEADER)
        assert wire == b"<ENDEC>" + HEADER.encode() + b"\x03"
        assert feed_all(EndecCodec(framing), wire * 2, 1) == [EndecLine("header", HEADER)] * 2

    def test_missing_trailing_dash_is_restored(self) -> None:
        assert EndecCodec().feed(HEADER[:-1].encode() + b"\r\n") == [EndecLine("header", HEADER)]

    def test_garbage_prefix_then_valid_lines(self) -> None:
        codec = EndecCodec()
        lines = codec.feed(b"\x00\x00garbage line\r\n+OK\r\n" + HEADER.encode() + b"\r\n")
        assert lines == [EndecLine("header", HEADER)]
        assert codec.rejected == 2
        assert codec.rejections.total["endec", "not_same"] >= 1

    def test_overlong_line_is_discarded_up_to_its_end(self) -> None:
        codec = EndecCodec()
        lines = codec.feed(b"Z" * 5000 + b"\r\n" + HEADER.encode() + b"\r\n")
        assert lines == [EndecLine("header", HEADER)]
        assert codec.rejections.drain() == [("endec", "too_long", 1)]

    def test_errors_say_what_and_where(self) -> None:
        codec = EndecCodec()
        with pytest.raises(EndecFrameError, match=r"0x80 at offset 3") as info:
            codec.decode_line(b"ZCZ\x80C")
        assert info.value.reason == "not_ascii"
        assert isinstance(info.value, FrameError)
        with pytest.raises(EndecFrameError, match="prefix"):
            EndecCodec(EndecFraming(prefix=b"<E>")).decode_line(HEADER.encode())
        with pytest.raises(EndecFrameError):
            codec.to_bytes("ZCZC-not-a-header")

    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=2000))
    def test_random_bytes_only_ever_give_valid_lines(self, data: bytes) -> None:
        for line in EndecCodec().feed(data):
            assert line.text == "NNNN" or sm.HEADER_RE.fullmatch(line.text)

    def test_bad_framing_options(self) -> None:
        with pytest.raises(ValueError, match="terminator"):
            EndecFraming(terminator=b"")


class TestEndecOptions:
    """Configuration errors name the adapter, the key and what is allowed."""

    def test_registry_entry(self) -> None:
        assert load_factory("endec") is from_context

    def test_unknown_and_missing_options(self) -> None:
        with pytest.raises(ConfigError, match="port"):
            EndecOptions.from_mapping("e1", {})
        with pytest.raises(ConfigError, match=r"unknown key\(s\) bogus"):
            EndecOptions.from_mapping("e1", {"port": "socket://127.0.0.1:1", "bogus": 1})
        with pytest.raises(ConfigError, match=r"output: 'xml' is not allowed; allowed: cap, same"):
            EndecOptions.from_mapping("e1", {"port": "socket://127.0.0.1:1", "output": "xml"})
        with pytest.raises(ConfigError, match="attention"):
            EndecOptions.from_mapping("e1", {"port": "socket://127.0.0.1:1", "attention": 40})

    def test_wav_name_is_stable_and_safe(self) -> None:
        assert wav_name(HEADER) == wav_name(HEADER)
        assert wav_name(HEADER).startswith("0462024-SVR-")
        assert "/" not in wav_name("ZCZC-WXR-RWT-020103+0030-3650000-KEAX/NWS-")


async def next_item(agen: AsyncIterator[Received]) -> Received:
    async with asyncio.timeout(10):
        return await anext(agen)


class TestEndecEndToEnd:
    """Adapter and simulated ENDEC over a loopback TCP serial line, both directions."""

    async def test_header_heard_off_the_air_reaches_the_gateway_as_cap(self) -> None:
        audio = np.concatenate(list(sm.encode(HEADER, sm.EncoderOptions(attention=0.5))))
        async with SimEndec(port=0) as sim:
            ctx = AdapterContext(name="endec-1", options={"port": sim.url})
            async with from_context(ctx) as adapter:
                stream = adapter.messages()
                pending = asyncio.ensure_future(next_item(stream))
                await sim.wait_connected()
                heard = await sim.hear(audio, 22050)
                assert [m.text for m in heard] == [HEADER, "NNNN"]
                item = await pending
                (health,) = adapter.health()
                assert health.healthy
                assert health.last_message_at is not None
                await stream.aclose()
        assert (item.kind, item.source, item.channel) == ("cap", "endec-1", "air")
        alert = parse_alert(item.raw)
        assert alert.signature_count == 0
        assert alert.source == "SAME broadcast (unauthenticated)"
        (info,) = alert.infos
        assert [(p.name, p.value) for p in info.event_codes] == [("SAME", "SVR")]
        assert ("borderlink:authenticated", "false") in [(p.name, p.value) for p in info.parameters]
        assert [g.value for g in info.areas[0].geocodes] == ["012079", "013019"]
        assert HEADER in (info.description or "")

    async def test_raw_header_output_and_unreadable_headers(self) -> None:
        before = INPUT_REJECTED.value(component="endec", reason="same_header")
        async with SimEndec(port=0) as sim:
            raw_opts = {"port": sim.url, "output": "same"}
            cap_opts = {"port": sim.url}
            async with (
                from_context(AdapterContext("raw", raw_opts)) as raw_adapter,
                from_context(AdapterContext("cap", cap_opts)) as cap_adapter,
            ):
                raw_stream = raw_adapter.messages()
                cap_stream = cap_adapter.messages()
                raw_next = asyncio.ensure_future(next_item(raw_stream))
                cap_next = asyncio.ensure_future(next_item(cap_stream))
                await sim.wait_connected(clients=2)
                # An originator SAME does not define: framed fine, but not a readable header.
                await sim.report(HEADER.replace("WXR", "XYZ"))
                await sim.report(OTHER)
                raw_items = [await raw_next, await next_item(raw_stream)]
                cap_item = await cap_next
                await raw_stream.aclose()
                await cap_stream.aclose()
        assert [(i.kind, i.raw) for i in raw_items] == [
            ("same", HEADER.replace("WXR", "XYZ").encode()),
            ("same", OTHER.encode()),
        ]
        assert cap_item.kind == "cap"
        assert "CEM" in cap_item.raw.decode()
        assert INPUT_REJECTED.value(component="endec", reason="same_header") == before + 1

    async def test_alert_sent_to_the_endec_is_aired_and_written_as_wav(
        self, tmp_path: Path
    ) -> None:
        air = tmp_path / "air"
        out = tmp_path / "out"
        async with SimEndec(port=0, air_dir=air) as sim:
            adapter = EndecAdapter(
                "endec-tx",
                EndecOptions.from_mapping(
                    "endec-tx",
                    {"port": sim.url, "audio_dir": str(out), "attention": 1, "send_eom": True},
                ),
            )
            async with adapter:
                await adapter.send(
                    Outbound(key=None, sink="endec-tx", parts=(HEADER.encode(),), content_type="")
                )
                header, path = await asyncio.wait_for(sim.aired_queue.get(), 10)
            assert header == HEADER
            assert path is not None
        for wav in (path, out / wav_name(HEADER)):
            rate, x = read_wav(wav)
            assert [m.text for m in sm.decode(x, rate)] == [HEADER, "NNNN"]

    async def test_aired_audio_passes_multimon(self, tmp_path: Path) -> None:
        binary = require_tool("multimon-ng")
        sim = SimEndec(port=0, air_dir=tmp_path)
        async with sim, EndecAdapter("e", EndecOptions(port=sim.url)) as adapter:
            await adapter.send(Outbound(None, "e", (OTHER.encode(),), "text/plain"))
            _, path = await asyncio.wait_for(sim.aired_queue.get(), 10)
        assert path is not None
        rate, x = read_wav(path)
        assert rate == 22050
        raw = write_raw(tmp_path / "aired.raw", x)
        proc = await asyncio.create_subprocess_exec(
            binary, "-q", "-c", "-a", "EAS", "-t", "raw", str(raw), stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await proc.communicate()
        assert f"EAS: {OTHER}" in stdout.decode().splitlines()

    async def test_non_same_delivery_is_refused_without_retry(self) -> None:
        async with SimEndec(port=0) as sim, EndecAdapter("e", EndecOptions(port=sim.url)) as ad:
            with pytest.raises(DeliveryError, match="not a SAME header") as info:
                await ad.send(Outbound(None, "e", (b"<alert/>",), "application/cap+xml"))
            assert info.value.retryable is False

    async def test_simulator_plays_files_given_in_options(self, tmp_path: Path) -> None:
        wav = tmp_path / "play.wav"
        write_wav(wav, sm.encode(OTHER, sm.EncoderOptions(attention=0)), 22050)
        sim = simulator({"port": 0, "play": [str(wav)], "play_delay": 0})
        async with sim, EndecAdapter("e", EndecOptions(port=sim.url)) as adapter:
            item = await next_item(adapter.messages())
        assert OTHER in item.raw.decode()

    async def test_files_play_once_a_gateway_is_connected(self, tmp_path: Path) -> None:
        # `sim endec --play` used to decode at start, before any gateway was there to see it.
        wav = tmp_path / "play.wav"
        write_wav(wav, sm.encode(OTHER, sm.EncoderOptions(attention=0)), 22050)
        sim = simulator({"port": 0, "play": [str(wav)], "play_delay": 0})
        async with sim:
            idle = asyncio.get_running_loop().time() + 0.5
            while asyncio.get_running_loop().time() < idle:  # no gateway: nothing is played
                assert sim.reported == []
                await asyncio.sleep(0.05)
            async with EndecAdapter("e", EndecOptions(port=sim.url)) as adapter:
                item = await next_item(adapter.messages())
        assert OTHER in item.raw.decode()
        assert sim.reported[0] == OTHER

    async def test_device_closing_the_line_is_a_connection_error(self) -> None:
        sim = SimEndec(port=0)
        async with sim, EndecAdapter("e", EndecOptions(port=sim.url)) as adapter:
            await sim.wait_connected()
            for writer in list(sim._clients):
                writer.close()
            with pytest.raises(AdapterConnectionError, match="closed"):
                await next_item(adapter.messages())
            assert adapter.health()[0].healthy is False


class TestEndecOnAPty:
    """The adapter drives a real serial device (a pty) through pyserial, both directions."""

    async def test_pty_round_trip(self) -> None:
        master, slave = os.openpty()
        try:
            path = os.ttyname(slave)
            adapter = EndecAdapter("pty", EndecOptions(port=path, output="same"))
            async with adapter:
                os.write(master, b"garbage\r\n" + HEADER.encode() + b"\r\n")
                item = await next_item(adapter.messages())
                assert item.raw == HEADER.encode()
                await adapter.send(Outbound(None, "pty", (OTHER.encode(),), "text/x-same-header"))
                loop = asyncio.get_running_loop()
                received = b""
                async with asyncio.timeout(10):
                    while not received.endswith(b"\r\n"):
                        received += await loop.run_in_executor(None, os.read, master, 1024)
            assert received == OTHER.encode() + b"\r\n"
        finally:
            os.close(master)
            os.close(slave)


class TestSimCommand:
    """``borderlink sim endec`` is registered with its options."""

    def test_parser(self) -> None:
        args = build_parser().parse_args(
            ["sim", "endec", "--port", "0", "--air-dir", "x", "--prefix", "\\x02"]
        )
        assert args.sim_kind == "endec"
        assert args.port == 0
        assert args.prefix == "\\x02"
        assert callable(args.handler)


class TestEndecOverAFaultyLine:
    """Line noise and a line that delivers one byte at a time do not stop the adapter."""

    async def test_garbage_then_byte_at_a_time(self) -> None:
        before = INPUT_REJECTED.value(component="endec", reason="not_ascii")
        async with SimEndec(port=0) as sim:
            plan = FaultPlan(byte_at_a_time=True, garbage=b"\x00\xff\x7fnoise\r\n")
            async with (
                FaultProxy("127.0.0.1", sim.port, downstream=plan) as proxy,
                EndecAdapter("faulty", EndecOptions(port=proxy.url, output="same")) as adapter,
            ):
                stream = adapter.messages()
                await sim.wait_connected()
                await sim.report(OTHER)
                await sim.report(HEADER)
                items = [await next_item(stream), await next_item(stream)]
                await stream.aclose()
        assert [i.raw for i in items] == [OTHER.encode(), HEADER.encode()]
        assert INPUT_REJECTED.value(component="endec", reason="not_ascii") == before + 1
