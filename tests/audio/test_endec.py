"""The ENDEC serial line codec, the ENDEC adapter and the simulated ENDEC, end to end."""

from __future__ import annotations

import asyncio
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
from gateway.adapter import AdapterContext, Outbound, Received, load_factory
from gateway.errors import AdapterConnectionError, ConfigError, DeliveryError, FrameError
from gateway.metrics import INPUT_REJECTED
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
        before = INPUT_REJECTED.value(component="endec", reason="not_same")
        codec = EndecCodec()
        lines = codec.feed(b"\x00\x00garbage line\r\n+OK\r\n" + HEADER.encode() + b"\r\n")
        assert lines == [EndecLine("header", HEADER)]
        assert codec.rejected == 2
        assert INPUT_REJECTED.value(component="endec", reason="not_same") >= before + 1

    def test_overlong_line_is_discarded_up_to_its_end(self) -> None:
        before = INPUT_REJECTED.value(component="endec", reason="too_long")
        codec = EndecCodec()
        lines = codec.feed(b"Z" * 5000 + b"\r\n" + HEADER.encode() + b"\r\n")
        assert lines == [EndecLine("header", HEADER)]
        assert INPUT_REJECTED.value(component="endec", reason="too_long") == before + 1

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
        with pytest.raises(ConfigError, match="unknown option 'bogus'"):
            EndecOptions.from_mapping("e1", {"port": "socket://127.0.0.1:1", "bogus": 1})
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

    async def test_header_heard_off_the_air_reaches_the_gateway(self) -> None:
        audio = np.concatenate(
            list(sm.encode(HEADER, sm.EncoderOptions(attention=0.5, rate=22050)))
        )
        async with SimEndec(port=0) as sim:
            ctx = AdapterContext(name="endec-1", options={"port": sim.url})
            async with from_context(ctx) as adapter:
                stream = adapter.messages()
                pending = asyncio.ensure_future(next_item(stream))
                await sim.wait_connected()
                heard = await sim.hear(audio, 22050)
                assert [m.text for m in heard] == [HEADER, "NNNN"]
                item = await pending
                assert item.kind == "same"
                assert item.raw == HEADER.encode()
                assert item.source == "endec-1"
                assert item.channel == "air"
                (health,) = adapter.health()
                assert health.healthy
                assert health.last_message_at is not None
                await stream.aclose()

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
        assert item.raw == OTHER.encode()

    async def test_device_closing_the_line_is_a_connection_error(self) -> None:
        sim = SimEndec(port=0)
        async with sim, EndecAdapter("e", EndecOptions(port=sim.url)) as adapter:
            await sim.wait_connected()
            for writer in list(sim._clients):
                writer.close()
            with pytest.raises(AdapterConnectionError, match="closed"):
                await next_item(adapter.messages())
            assert adapter.health()[0].healthy is False
