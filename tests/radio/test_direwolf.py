"""direwolf as referee: what our KISS adapter sends, direwolf transmits as the expected APRS
packets; AFSK audio from gen_packets, decoded by direwolf, reaches us as incident messages."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.adapter import Outbound
from gateway.errors import DeliveryError
from gateway.model import RadioMessage
from tests.helpers import free_port, require_tool
from tests.radio.conftest import build_adapter


class Direwolf:
    """A direwolf process with a KISS TCP port and no sound card; its output is collected."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.output = ""
        self.ended = False
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self._changed:
                self.output += line.decode("utf-8", "replace")
                self._changed.notify_all()
        async with self._changed:
            self.ended = True
            self._changed.notify_all()

    async def wait_for_text(self, text: str, within: float = 20.0, *, count: int = 1) -> None:
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: self.output.count(text) >= count or self.ended)
        except TimeoutError:
            pytest.fail(f"direwolf never printed {text!r} {count} time(s); output:\n{self.output}")
        if self.output.count(text) < count:
            pytest.fail(f"direwolf exited without printing {text!r}; output:\n{self.output}")


def direwolf_port() -> int:
    """A free port direwolf accepts (it refuses KISS ports above 49151)."""
    for _ in range(50):
        port = free_port()
        if port <= 49151:
            return port
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 49151)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 49152")


@contextlib.asynccontextmanager
async def direwolf(tmp_path: Path, *, audio_in: str) -> AsyncIterator[Direwolf]:
    binary = require_tool("direwolf")
    port = direwolf_port()
    config = tmp_path / "direwolf.conf"
    config.write_text(
        f"ADEVICE {audio_in} null\nARATE 48000\nCHANNEL 0\nMYCALL N0CALL\nMODEM 1200\n"
        f"AGWPORT 0\nKISSPORT {port}\n",
        encoding="ascii",
    )
    args = [binary, "-c", str(config), "-t", "0"]
    if audio_in == "stdin":
        args += ["-r", "48000", "-"]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    dw = Direwolf(process, port)
    try:
        await dw.wait_for_text(f"on port {port}")
        yield dw
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        dw._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dw._reader


async def feed_silence(dw: Direwolf) -> None:
    assert dw.process.stdin is not None
    chunk = bytes(4800)  # 50 ms of 16-bit mono audio at 48 kHz
    with contextlib.suppress(ConnectionError):
        while True:
            dw.process.stdin.write(chunk)
            await dw.process.stdin.drain()
            await asyncio.sleep(0.05)


def outbound(text: str, **attributes: str) -> Outbound:
    return Outbound(None, "aprs", (text.encode(),), "text/plain", attributes)


class TestDirewolfReferee:
    """Frames cross a real, independent AX.25/APRS implementation both ways."""

    async def test_our_frames_are_transmitted_as_expected_aprs_packets(
        self, tmp_path: Path
    ) -> None:
        async with direwolf(tmp_path, audio_in="null") as dw:
            adapter = build_adapter(
                "kiss",
                "aprs",
                port=f"socket://127.0.0.1:{dw.port}",
                callsign="VE3BDR-10",
                path="WIDE1-1,WIDE2-1",
                group="WXCA",
                bulletin_id="1",
                retries=2,
                message_retry_initial=0.5,
                txdelay_ms=300,
                persistence=63,
                slot_time_ms=100,
            )
            async with adapter:
                await dw.wait_for_text("Attached to KISS TCP client")
                await adapter.send(outbound("Flood watch: Ottawa River at Gatineau, é {x} |y"))
                await dw.wait_for_text(
                    "[0L] VE3BDR-10>APZBDL,WIDE1-1,WIDE2-1::BLN1WXCA :"
                    "Flood watch: Ottawa River at Gatineau, e {x} y"
                )
                await adapter.send(outbound("General bulletin", group=""))
                await dw.wait_for_text(
                    "VE3BDR-10>APZBDL,WIDE1-1,WIDE2-1::BLN1     :General bulletin"
                )
                # A directed message: direwolf transmits it with its message number; nobody
                # answers, so after the bounded retries the delivery fails (and may be retried
                # by the outbox).
                with pytest.raises(DeliveryError, match="after 2 attempts"):
                    await adapter.send(
                        outbound("Shelter open", mode="message", addressee="W2EOC-3")
                    )
                # direwolf prints a frame when it has keyed up and sent it, which may be after
                # the adapter gave up waiting for the second ack.
                await dw.wait_for_text("::W2EOC-3  :Shelter open{", count=2)

    async def test_gen_packets_audio_arrives_as_incident_messages(self, tmp_path: Path) -> None:
        gen_packets = require_tool("gen_packets")
        packets = tmp_path / "packets.txt"
        packets.write_text(
            "VA3FLD-5>APRS,WIDE1-1::VE3BDR   :Road closed at Hwy 401 bridge{17\n"
            "VA3FLD-5>APRS::VE3BDR   :Second report, crews on site{18\n"
            "VA3FLD-5>APRS::SOMEONE  :Not for the gateway{19\n",
            encoding="ascii",
        )
        wav = tmp_path / "packets.wav"
        proc = await asyncio.create_subprocess_exec(
            gen_packets,
            "-r",
            "48000",
            "-o",
            str(wav),
            str(packets),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await proc.wait() == 0
        async with direwolf(tmp_path, audio_in="stdin") as dw:
            adapter = build_adapter(
                "kiss", "aprs", port=f"socket://127.0.0.1:{dw.port}", callsign="VE3BDR"
            )
            async with adapter:
                await dw.wait_for_text("Attached to KISS TCP client")
                inbound = adapter.messages()
                assert dw.process.stdin is not None
                dw.process.stdin.write(wav.read_bytes())
                await dw.process.stdin.drain()
                # Then silence in real time, so direwolf's receiver sees a clear channel and
                # its transmitter (paced by the audio clock) sends our acknowledgements.
                silence = asyncio.create_task(feed_silence(dw))
                first = await asyncio.wait_for(anext(inbound), 20)
                second = await asyncio.wait_for(anext(inbound), 20)
                assert first.kind == "incident"
                assert RadioMessage.from_json(first.raw) == RadioMessage(
                    "Road closed at Hwy 401 bridge", "VA3FLD-5", "VE3BDR", "17"
                )
                assert RadioMessage.from_json(second.raw).text == "Second report, crews on site"
                for item in (first, second):  # stored, as the daemon would: acks go out
                    assert item.ack is not None
                    await item.ack()
                # Our acknowledgements went back through direwolf's transmitter.
                await dw.wait_for_text("VE3BDR>APZBDL::VA3FLD-5 :ack17")
                await dw.wait_for_text("VE3BDR>APZBDL::VA3FLD-5 :ack18")
                silence.cancel()
            assert "ack19" not in dw.output
