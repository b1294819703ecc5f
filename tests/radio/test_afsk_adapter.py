"""The sound-card APRS station (``type = "afsk"``) on real audio: direwolf's generator and
decoder as referees, two stations joined by a lossy UDP audio link, PTT on a serial line."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import threading
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import serial
import serial.rfc2217
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from adapters.afsk.adapter import CHANNEL_BUSY, FRAMES_SENT, AfskAdapter, CarrierDetect
from adapters.afsk.afsk1200 import Afsk1200Modulator
from adapters.afsk.audio_io import AUDIO_RESTARTS, AudioDevice
from adapters.kiss import aprs, ax25
from adapters.kiss.station import MESSAGE_RETRIES
from adapters.modem import hdlc
from adapters.modem.fsk import FskModulator, to_pcm16
from gateway.adapter import AdapterContext, Outbound, load_factory
from gateway.errors import AdapterConnectionError, ConfigError, DeliveryError
from gateway.metrics import INPUT_REJECTED
from gateway.model import RadioMessage
from gateway.plaintext import APRS_BULLETIN
from tests.helpers import require_tool
from tests.radio.conftest import Inbox

RATE = 22050
FAST: dict[str, Any] = {"txdelay_ms": 100, "txtail_ms": 20, "persistence": 255, "slot_time_ms": 20}


def afsk(name: str, *, data_dir: Path | str = "", **options: Any) -> AfskAdapter:
    """An afsk adapter built through the registry, as the daemon builds it."""
    adapter = load_factory("afsk")(
        AdapterContext(name=name, options={"rate": RATE, **options}, data_dir=str(data_dir))
    )
    assert isinstance(adapter, AfskAdapter)
    return adapter


def outbound(*parts: str, **attributes: str) -> Outbound:
    return Outbound(None, "radio", tuple(p.encode() for p in parts), "text/plain", attributes)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def frame_audio(*frames: ax25.Frame, rate: int = RATE, silence: float = 0.2) -> bytes:
    """PCM of one transmission carrying ``frames``, with silence either side."""
    audio = Afsk1200Modulator(rate, txdelay=0.1).modulate([f.to_bytes() for f in frames])
    gap = np.zeros(round(silence * rate))
    return to_pcm16(np.concatenate((gap, audio, gap)))


def atest_frames(raw: Path, tmp: Path, rate: int = RATE) -> str:
    """Decode raw PCM with direwolf's atest; its output without colour codes."""
    binary = require_tool("atest")
    wav = tmp / (raw.name + ".wav")
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(raw.read_bytes())
    result = subprocess.run(
        [binary, str(wav)], capture_output=True, text=True, timeout=60, check=False
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a metric or a state that has no event of its own."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - counters and adapter state have no event
            await asyncio.sleep(0.02)


class UdpRelay(asyncio.DatagramProtocol):
    """A one-way audio link on loopback that can lose whole transmissions: a transmission is
    a run of datagrams; a pause longer than ``gap`` starts the next one."""

    def __init__(self, target: int, drop: set[int], gap: float = 0.15) -> None:
        self.target = ("127.0.0.1", target)
        self.drop = drop
        self.gap = gap
        self.index = -1
        self.last = -1e9
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = asyncio.get_running_loop().time()
        if now - self.last > self.gap:
            self.index += 1
        self.last = now
        if self.index not in self.drop and self.transport is not None:
            self.transport.sendto(data, self.target)


@asynccontextmanager
async def relay(target: int, drop: set[int]) -> AsyncIterator[tuple[int, UdpRelay]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: UdpRelay(target, drop), local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1], protocol
    finally:
        transport.close()


async def send_udp_audio(port: int, pcm: bytes, datagram: int = 1024) -> None:
    """Send PCM to a UDP audio input at about real time."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port)
    )
    try:
        for offset in range(0, len(pcm), datagram):
            transport.sendto(pcm[offset : offset + datagram])
            await asyncio.sleep(datagram / 2 / RATE / 4)
    finally:
        transport.close()


class Rfc2217Server:
    """A network serial server (RFC 2217, as terminal servers speak it) on loopback, backed by
    pyserial's ``loop://`` port, whose CTS shows the RTS line the client sets."""

    def __init__(self) -> None:
        self.port = serial.serial_for_url("loop://", timeout=0)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self._sock.settimeout(0.05)
        self.url = f"rfc2217://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Rfc2217Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        self.port.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.05)
                # The stubs name rfc2217.Serial; any port and any object with write() will do.
                manager = serial.rfc2217.PortManager(self.port, _SocketWriter(conn))  # type: ignore[arg-type]
                while not self._stop.is_set():
                    try:
                        data = conn.recv(1024)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    for byte in manager.filter(data):
                        self.port.write(byte)


class _SocketWriter:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        self.conn.sendall(data)


class TestDirewolfReferees:
    """direwolf's gen_packets audio is decoded into incident messages (and acked on air);
    what the station transmits is decoded by direwolf's atest as the expected packets."""

    @pytest.mark.parametrize("rate", [22050, 48000])
    async def test_gen_packets_audio_becomes_incidents_and_our_ack_decodes_in_atest(
        self, tmp_path: Path, rate: int
    ) -> None:
        gen = require_tool("gen_packets")
        monitor = tmp_path / "packets.txt"
        monitor.write_text(
            "W2EOC>APRS,WIDE1-1::VE3BDR   :Bridge out on Hwy 2{7\n"
            "K1ABC>APRS::BLN1BORDR:Smoke near the crossing\n"
            "W1AW>APRS:>just a status, not for us\n"
            "K1ABC>APRS::OTHER    :not addressed to us{3\n",
            encoding="ascii",
        )
        wav = tmp_path / "gen.wav"
        await asyncio.to_thread(
            subprocess.run,
            [gen, "-r", str(rate), "-o", str(wav), str(monitor)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with wave.open(str(wav), "rb") as src:
            raw_in = tmp_path / "gen.raw"
            raw_in.write_bytes(src.readframes(src.getnframes()))
        raw_out = tmp_path / "out.raw"
        station = afsk(
            "aprs",
            data_dir=tmp_path,
            callsign="VE3BDR",
            listen_groups=["BORDR"],
            audio_in=f"exec:cat {raw_in}",
            audio_out=f"exec:sh -c 'cat >> {raw_out}'",
            restart_initial=30.0,
            **{**FAST, "rate": rate},
        )
        acks = FRAMES_SENT.value(adapter="aprs", kind="ack")
        async with station:
            inbound = station.messages()
            first = await asyncio.wait_for(anext(inbound), 10)
            second = await asyncio.wait_for(anext(inbound), 10)
            assert first.kind == second.kind == "incident"
            assert RadioMessage.from_json(first.raw) == RadioMessage(
                "Bridge out on Hwy 2", "W2EOC", "VE3BDR", "7"
            )
            assert RadioMessage.from_json(second.raw) == RadioMessage(
                "Smoke near the crossing", "K1ABC", "BORDR"
            )
            assert first.ack is not None
            await first.ack()  # stored, as the daemon would: the APRS ack goes out
            await wait_for(lambda: FRAMES_SENT.value(adapter="aprs", kind="ack") > acks)
        decoded = atest_frames(raw_out, tmp_path, rate)
        assert "VE3BDR>APZBDL::W2EOC    :ack7" in decoded
        assert "1 packets decoded" in decoded

    async def test_bulletins_we_transmit_are_decoded_by_atest(self, tmp_path: Path) -> None:
        raw_out = tmp_path / "bulletins.raw"
        station = afsk(
            "aprs",
            data_dir=tmp_path,
            callsign="VE3BDR-10",
            path="WIDE1-1",
            group="WXCA",
            bulletin_id="1",
            audio_out=str(raw_out),
            **FAST,
        )
        async with station:
            await station.send(outbound("Flood watch Ottawa River", "Tornado warning Essex " * 4))
        decoded = atest_frames(raw_out, tmp_path)
        texts = APRS_BULLETIN.parts("Tornado warning Essex " * 4)
        expected = [
            ax25.Frame(
                ax25.Address("APZBDL"),
                ax25.Address("VE3BDR", 10),
                (ax25.Address("WIDE1", 1),),
                aprs.Bulletin(str(i + 1), text, "WXCA").to_info(),
            )
            for i, text in enumerate(["Flood watch Ottawa River", *texts])
        ]
        for frame in expected:
            assert str(frame) in decoded
        assert f"{len(expected)} packets decoded" in decoded


class TestLongBursts:
    """Parts that would key the transmitter longer than ptt_limit go out as several
    transmissions, each within the limit, all decodable."""

    async def test_bulletins_split_into_transmissions_within_ptt_limit(
        self, tmp_path: Path
    ) -> None:
        raw_out = tmp_path / "burst.raw"
        station = afsk("burst", callsign="VE3BDR", audio_out=str(raw_out), ptt_limit=1.0, **FAST)
        parts = [f"Part {n} of the evacuation order for the river flats" for n in range(1, 5)]
        with capture_logs() as logs:
            async with station:
                await station.send(outbound(*parts))
        bursts = [e for e in logs if e["event"] == "afsk_transmitted"]
        assert len(bursts) >= 2
        assert sum(e["frames"] for e in bursts) == 4
        assert all(e["seconds"] <= 1.0 for e in bursts)
        decoded = atest_frames(raw_out, tmp_path)
        assert "4 packets decoded" in decoded
        for text in parts:
            assert text in decoded


class TestTwoStationsOverAudio:
    """Two sound-card stations joined by UDP audio exchange a directed message: the lost first
    copy is re-sent, the lost first ack makes the sender try again, and the receiver delivers
    the message once and acknowledges every copy."""

    async def test_directed_message_survives_lost_message_and_lost_ack(
        self, tmp_path: Path
    ) -> None:
        port_a, port_b = free_udp_port(), free_udp_port()
        # A -> B loses A's first transmission; B -> A loses B's first (the first ack).
        async with relay(port_b, {0}) as (a_to_b, _), relay(port_a, {0}) as (b_to_a, _):
            gw = afsk(
                "gw",
                data_dir=tmp_path,
                callsign="VE3BDR",
                mode="message",
                addressees=["W2EOC"],
                audio_in=f"udp:127.0.0.1:{port_a}",
                audio_out=f"udp:127.0.0.1:{a_to_b}",
                message_retry_initial=1.5,
                **FAST,
            )
            field = afsk(
                "field",
                data_dir=tmp_path,
                callsign="W2EOC",
                audio_in=f"udp:127.0.0.1:{port_b}",
                audio_out=f"udp:127.0.0.1:{b_to_a}",
                **FAST,
            )
            async with gw, field:
                inbound = Inbox(field.messages())
                before = MESSAGE_RETRIES.value(adapter="gw")
                await asyncio.wait_for(gw.send(outbound("Shelter open at Lincoln HS")), 20)
                # At least the two lost exchanges were retried (a slow machine may add one).
                assert MESSAGE_RETRIES.value(adapter="gw") >= before + 2
                received = await inbound.next(5)
                msg = RadioMessage.from_json(received.raw)
                assert (msg.text, msg.sender, msg.channel) == (
                    "Shelter open at Lincoln HS",
                    "VE3BDR",
                    "W2EOC",
                )
                with pytest.raises(TimeoutError):  # the third copy was a duplicate
                    await inbound.next(0.3)


class TestPtt:
    """The transmitter is keyed exactly while audio goes out, on the configured line."""

    @pytest.mark.parametrize(("line", "observe"), [("rts", "cts"), ("dtr", "dsr")])
    async def test_keyed_only_while_transmitting(self, line: str, observe: str) -> None:
        listen = free_udp_port()
        station = afsk(
            "ptt",
            callsign="VE3BDR",
            audio_out=f"udp:127.0.0.1:{listen}",
            ptt="loop://",  # pyserial's loop wires RTS to CTS and DTR to DSR
            ptt_line=line,
            **FAST,
        )
        keyed_at_datagram: list[bool] = []

        class Listener(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                keyed_at_datagram.append(bool(getattr(station.ptt.port, observe)))  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            Listener, local_addr=("127.0.0.1", listen)
        )
        try:
            async with station:
                assert getattr(station.ptt.port, observe) is False  # type: ignore[attr-defined]
                await station.send(outbound("PTT test"))
                assert getattr(station.ptt.port, observe) is False  # type: ignore[attr-defined]
        finally:
            transport.close()
        assert keyed_at_datagram
        assert all(keyed_at_datagram)

    # pyserial 3.5's rfc2217 client starts its reader thread with deprecated setDaemon/setName.
    @pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")
    @pytest.mark.filterwarnings("ignore:setName:DeprecationWarning")
    async def test_ptt_through_an_rfc2217_terminal_server(self) -> None:
        listen = free_udp_port()
        with Rfc2217Server() as server:
            station = afsk(
                "ptt",
                callsign="VE3BDR",
                audio_out=f"udp:127.0.0.1:{listen}",
                ptt=server.url,  # RTS travels over the network to the server's port
                **FAST,
            )
            keyed_at_datagram: list[bool] = []

            class Listener(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                    keyed_at_datagram.append(bool(server.port.cts))

            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                Listener, local_addr=("127.0.0.1", listen)
            )
            try:
                async with station:
                    assert server.port.cts is False
                    await station.send(outbound("PTT over the network"))
                    assert server.port.cts is False
            finally:
                transport.close()
        assert keyed_at_datagram
        assert all(keyed_at_datagram)

    async def test_a_pty_without_modem_lines_is_refused_at_start(self) -> None:
        master, slave = os.openpty()
        try:
            station = afsk(
                "ptt", callsign="VE3BDR", audio_out="udp:127.0.0.1:9", ptt=os.ttyname(slave)
            )
            with pytest.raises(AdapterConnectionError, match="cannot drive RTS"):
                await station.__aenter__()
        finally:
            os.close(master)
            os.close(slave)

    async def test_failed_output_releases_the_transmitter(self) -> None:
        station = afsk(
            "ptt", callsign="VE3BDR", audio_out="exec:sh -c 'exit 3'", ptt="loop://", **FAST
        )
        async with station:
            with pytest.raises(DeliveryError, match="status 3") as info:
                await station.send(outbound("goes nowhere"))
            assert info.value.retryable
            assert station.ptt.port.cts is False  # type: ignore[attr-defined]


class TestOutputFailures:
    """An output that cannot take the audio fails the delivery (retryably) and never leaves
    the transmitter keyed."""

    async def test_fifo_without_reader_fails_at_once(self, tmp_path: Path) -> None:
        fifo = tmp_path / "tx.fifo"
        os.mkfifo(fifo)
        station = afsk("fifo", callsign="VE3BDR", audio_out=str(fifo), ptt="loop://", **FAST)
        async with station:
            with pytest.raises(DeliveryError, match=r"tx\.fifo") as info:
                await station.send(outbound("nobody listens"))
            assert info.value.retryable
            assert station.ptt.port.cts is False  # type: ignore[attr-defined]


class TestHostileAudio:
    """Garbage, odd-length pieces and dying commands are counted; the station keeps going."""

    async def test_garbage_and_odd_chunks_on_a_fifo_then_a_packet(self, tmp_path: Path) -> None:
        fifo = tmp_path / "rx.fifo"
        os.mkfifo(fifo)
        station = afsk(
            "rx", callsign="VE3BDR", audio_in=str(fifo), audio_out=str(tmp_path / "tx.raw")
        )
        rng = np.random.default_rng(7)
        frame = ax25.Frame(
            ax25.Address("APRS"), ax25.Address("VA3FLD"), info=b":VE3BDR   :after garbage"
        )
        garbage = rng.integers(0, 256, 20001, dtype=np.uint8).tobytes()
        audio = frame_audio(frame)
        async with station:
            await wait_for(lambda: station.input is not None and station.input.running)
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            try:
                stream = garbage + b"\x00" + audio  # whole samples, written in odd pieces
                async with asyncio.timeout(10):
                    for offset in range(0, len(stream), 777):  # odd-sized writes
                        piece = stream[offset : offset + 777]
                        while piece:
                            try:
                                piece = piece[os.write(fd, piece) :]
                            except BlockingIOError:  # the FIFO is full: the reader catches up
                                await asyncio.sleep(0.01)
            finally:
                os.close(fd)
            item = await asyncio.wait_for(anext(station.messages()), 10)
            assert RadioMessage.from_json(item.raw).text == "after garbage"
            assert station.health()[0].healthy

    async def test_odd_datagram_is_counted_and_the_next_packet_decodes(self) -> None:
        port = free_udp_port()
        station = afsk(
            "udp", callsign="VE3BDR", audio_in=f"udp:127.0.0.1:{port}", audio_out="udp:127.0.0.1:9"
        )
        frame = ax25.Frame(ax25.Address("APRS"), ax25.Address("VA3FLD"), info=b":VE3BDR   :ok")
        before = INPUT_REJECTED.value(component="afsk:udp", reason="odd_datagram")
        async with station:
            await send_udp_audio(port, b"\x01\x02\x03")
            # No silence after the frame: the input goes quiet, the receiver is flushed.
            await send_udp_audio(port, frame_audio(frame, silence=0.0))
            item = await asyncio.wait_for(anext(station.messages()), 10)
            assert RadioMessage.from_json(item.raw).text == "ok"
        assert INPUT_REJECTED.value(component="afsk:udp", reason="odd_datagram") == before + 1

    async def test_a_failing_demodulator_is_counted_and_replaced(self) -> None:
        port = free_udp_port()
        station = afsk(
            "crash",
            callsign="VE3BDR",
            audio_in=f"udp:127.0.0.1:{port}",
            audio_out="udp:127.0.0.1:9",
        )

        class Broken:
            def feed(self, samples: object) -> list[object]:
                raise IndexError("demodulator bug")

        frame = ax25.Frame(ax25.Address("APRS"), ax25.Address("VA3FLD"), info=b":VE3BDR   :alive")
        before = INPUT_REJECTED.value(component="afsk:crash", reason="audio")
        async with station:
            station._demod = Broken()  # type: ignore[assignment]  # fault injection
            await send_udp_audio(port, bytes(2048))
            await wait_for(
                lambda: INPUT_REJECTED.value(component="afsk:crash", reason="audio") > before
            )
            await send_udp_audio(port, frame_audio(frame))
            item = await asyncio.wait_for(anext(station.messages()), 10)
            assert RadioMessage.from_json(item.raw).text == "alive"

    async def test_input_command_that_exits_is_restarted_and_logged(self, tmp_path: Path) -> None:
        before = AUDIO_RESTARTS.value(adapter="dying")
        station = afsk(
            "dying",
            callsign="VE3BDR",
            audio_in="exec:sh -c 'echo no sound card >&2; head -c 1001 /dev/zero; exit 3'",
            audio_out=str(tmp_path / "tx.raw"),
            restart_initial=0.05,
            restart_max=0.1,
            **FAST,
        )
        with capture_logs() as logs:
            async with station:
                await wait_for(lambda: AUDIO_RESTARTS.value(adapter="dying") >= before + 3)
                await station.send(outbound("still on the air"))  # the sink side still works
        assert (tmp_path / "tx.raw").stat().st_size > 0
        said = [e for e in logs if e["event"] == "afsk_audio_command_said"]
        assert said
        assert said[0]["line"] == "no sound card"
        ended = [e for e in logs if e["event"] == "afsk_audio_input_ended"]
        assert "status 3" in ended[0]["reason"]

    async def test_missing_input_command_is_retried_not_fatal(self, tmp_path: Path) -> None:
        before = AUDIO_RESTARTS.value(adapter="nocmd")
        station = afsk(
            "nocmd",
            callsign="VE3BDR",
            audio_in="exec:/nonexistent/arecord -q",
            audio_out=str(tmp_path / "tx.raw"),
            restart_initial=0.05,
            restart_max=0.1,
        )
        async with station:
            await wait_for(lambda: AUDIO_RESTARTS.value(adapter="nocmd") >= before + 2)
            assert not station.health()[0].healthy


class TestChannelAccess:
    """A carrier on the channel holds our transmission back; a channel busy for too long
    fails it (retryably); noise does not count as a carrier."""

    def test_carrier_detect_tells_afsk_from_noise_and_silence(self) -> None:
        rng = np.random.default_rng(3)
        tones = Afsk1200Modulator(RATE).modulate([b"\x82" * 14 + b"\x03\xf0" + b"x" * 40])
        dcd = CarrierDetect(RATE)
        assert dcd.update(tones)
        assert not CarrierDetect(RATE).update(rng.normal(0, 0.3, RATE))
        assert not CarrierDetect(RATE).update(np.zeros(RATE))

    async def test_busy_channel_times_out_then_clears(self, tmp_path: Path) -> None:
        port = free_udp_port()
        out = tmp_path / "tx.raw"
        station = afsk(
            "busy",
            callsign="VE3BDR",
            audio_in=f"udp:127.0.0.1:{port}",
            audio_out=str(out),
            busy_timeout=0.3,
            **FAST,
        )
        frame = ax25.Frame(ax25.Address("APRS"), ax25.Address("VA3FLD"), info=b">busy " * 30)
        carrier = frame_audio(frame, frame, frame, silence=0.0)  # about 2 s of AFSK
        before = CHANNEL_BUSY.value(adapter="busy")
        async with station:
            talker = asyncio.create_task(send_udp_audio(port, carrier))
            await wait_for(station.channel_busy)
            with pytest.raises(DeliveryError, match="channel busy") as info:
                await station.send(outbound("must wait"))
            assert info.value.retryable
            assert not out.exists()
            await talker
            await wait_for(lambda: not station.channel_busy())
            await station.send(outbound("now clear"))
        assert out.stat().st_size > 0
        assert CHANNEL_BUSY.value(adapter="busy") >= before + 1


class TestConfig:
    """Option errors name the key path and what is allowed."""

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({}, 'sink "x".audio_out: is required'),
            ({"audio_out": "udp:nope"}, "udp:PORT or udp:HOST:PORT"),
            ({"audio_out": "exec:"}, "'exec:' needs a command"),
            ({"audio_out": "x.raw", "ptt_line": "cts"}, "ptt_line: 'cts' is not allowed"),
            ({"audio_out": "x.raw", "rate": 4000}, "rate: must be at least 8000, got 4000"),
            ({"audio_out": "x.raw", "persistence": 300}, "persistence: must be at most 255"),
            ({"audio_out": "x.raw", "amplitude": 2}, "amplitude: must be at most 1.0, got 2"),
            ({"audio_out": "x.raw", "colour": 1}, "unknown key(s) colour; allowed: "),
            ({"audio_out": "x.raw", "mode": "message", "addressees": "W2EOC"}, "needs 'audio_in'"),
            ({"audio_out": "x.raw", "ptt_invert": "yes"}, "ptt_invert: must be true or false"),
        ],
    )
    def test_errors_name_the_key(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=re.escape(message)):
            afsk("x", callsign="VE3BDR", **options)

    @settings(max_examples=200, deadline=None)
    @given(text=st.text(max_size=40) | st.from_regex(r"(exec|udp|file):.{0,20}", fullmatch=True))
    def test_any_device_string_parses_or_names_the_key(self, text: str) -> None:
        error = ""
        try:
            device = AudioDevice.parse("sink 'x'", "audio_out", text)
        except ConfigError as exc:
            error = str(exc)
        if error:
            assert "'audio_out'" in error
        else:
            assert device.kind in {"exec", "udp", "file"}
            assert str(device)

    async def test_udp_port_in_use_is_a_connection_error(self, tmp_path: Path) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
            busy.bind(("127.0.0.1", 0))
            port = busy.getsockname()[1]
            station = afsk(
                "busyport",
                callsign="VE3BDR",
                audio_in=f"udp:127.0.0.1:{port}",
                audio_out=str(tmp_path / "x.raw"),
            )
            with pytest.raises(AdapterConnectionError, match="cannot listen"):
                await station.__aenter__()

    def test_line_rate_feeds_link_air_time(self) -> None:
        assert afsk("x", callsign="VE3BDR", audio_out="x.raw").options.line_rate == 1200


class TestReceiverCounts:
    """The demodulator only reports what it refuses; the adapter running it counts it."""

    def test_a_bad_frame_is_counted_by_the_adapter(self) -> None:
        adapter = afsk("counts", callsign="VE3BDR", audio_out="x.raw")
        frame = ax25.Frame(ax25.Address("APZBDL"), ax25.Address("VE3BDR"), (), b">test").to_bytes()
        levels, _ = hdlc.nrzi_encode(hdlc.frame_bits(frame, leading_flags=20))
        levels[20 * 8 + 100] ^= 1  # a strong wrong bit: the FCS fails
        signal = FskModulator(
            RATE, mark=Fraction(1200), space=Fraction(2200), baud=Fraction(1200), amplitude=0.5
        ).modulate(levels)
        pcm = to_pcm16(np.concatenate([np.zeros(2000), signal, np.zeros(RATE)]))
        before = INPUT_REJECTED.value(component="hdlc", reason="bad_fcs")
        frames, _ = adapter._demodulate(pcm)
        assert frames == []
        assert INPUT_REJECTED.value(component="hdlc", reason="bad_fcs") == before + 1
