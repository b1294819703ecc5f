"""The sound-card APRS station: an APRS station (:mod:`adapters.kiss.station`) over audio.

What a hardware TNC does, done in software with a sound card and a radio: received audio
runs through the streaming Bell 202 demodulator (:class:`Afsk1200Demodulator`); frames to send
are modulated (:class:`Afsk1200Modulator`), the transmitter is keyed (RTS or DTR of a serial
port, :mod:`adapters.afsk.ptt`), the audio is played, and the transmitter is released when the
audio has been played. The APRS messaging (bulletins, numbered messages retried until acked,
acks, deduplication, incident messages in) is the same station the KISS adapter runs.

Configuration (``[[sink]]``/``[[source]]`` with ``type = "afsk"``): the station keys
(``callsign``, ``path``, ``mode``, ``addressees``, ... see
:class:`~adapters.kiss.station.StationOptions`) and::

    audio_in = "exec:arecord -q -t raw -f S16_LE -r 48000 -c 1"   # or udp:PORT, a FIFO path
    audio_out = "exec:aplay -q -t raw -f S16_LE -r 48000 -c 1"    # or udp:HOST:PORT, a path
    rate = 48000                 # sample rate of both (8000-192000)
    ptt = "/dev/ttyUSB0"         # serial port whose RTS/DTR keys the radio ("" = VOX)
    ptt_line = "rts"             # or "dtr"
    ptt_invert = false           # key by dropping the line instead of raising it
    ptt_limit = 30.0             # refuse a transmission longer than this (seconds)
    txdelay_ms = 300             # flags sent before the first frame (radio key-up time)
    txtail_ms = 30               # flags after the last frame
    amplitude = 0.5              # output level, 0-1 of full scale
    persistence = 63             # p-persistence, 0-255 (KISS semantics: p = (P + 1) / 256)
    slot_time_ms = 100           # how often a waiting transmitter looks at the channel
    full_duplex = false          # true: transmit without listening first
    busy_timeout = 60.0          # a channel busy longer than this fails the transmission
    dcd_threshold = 0.5          # share of audio energy in 900-2500 Hz that means "carrier"
    repair = 0                   # bits the receiver may flip to rescue a frame (0-2)
    restart_initial = 1.0        # delay before an ended audio_in command is started again
    restart_max = 60.0           # ... doubling up to this

Channel access works like a KISS TNC's: the carrier detector listens to the received audio
(AFSK tones, or any frame just decoded, make the channel busy); a frame waits until the channel
is clear, then goes with probability (persistence + 1) / 256 per slot time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self

import numpy as np
import structlog

from adapters.afsk.afsk1200 import Afsk1200Demodulator, Afsk1200Modulator
from adapters.afsk.audio_io import (
    AudioDevice,
    AudioInput,
    AudioOutput,
    UdpInput,
    make_input,
    make_output,
)
from adapters.afsk.ptt import NoPtt, Ptt, SerialPtt
from adapters.kiss.station import AprsStation, StationOptions
from adapters.modem.fsk import FloatArray, as_float_samples, to_pcm16
from adapters.modem.hdlc import HdlcFrame
from gateway.adapter import AdapterContext, Clock, Outbound, Received, SourceHealth, SystemClock
from gateway.backoff import Backoff
from gateway.errors import AdapterConnectionError, DeliveryError, FrameError
from gateway.metrics import INPUT_REJECTED, REGISTRY, count_rejections
from gateway.plaintext import TextProfile

log = structlog.get_logger(__name__)

FRAMES_SENT = REGISTRY.counter(
    "borderlink_afsk_frames_sent_total",
    "AX.25 frames sent by the sound-card modem",
    ["adapter", "kind"],
)
FRAMES_RECEIVED = REGISTRY.counter(
    "borderlink_afsk_frames_received_total",
    "AX.25 frames decoded by the sound-card modem",
    ["adapter"],
)
AIR_SECONDS = REGISTRY.counter(
    "borderlink_afsk_transmit_seconds_total", "Seconds the transmitter was keyed", ["adapter"]
)
CHANNEL_BUSY = REGISTRY.counter(
    "borderlink_afsk_channel_busy_total",
    "Transmissions that found the channel busy and waited",
    ["adapter"],
)

LINE_RATE = 1200
PLAY_GRACE = 15.0  # seconds an output may take beyond the audio's duration


@dataclass(frozen=True, slots=True)
class AfskOptions:
    station: StationOptions
    audio_out: AudioDevice
    audio_in: AudioDevice | None = None
    rate: int = 48000
    ptt: str = ""
    ptt_line: str = "rts"
    ptt_invert: bool = False
    ptt_limit: float = 30.0
    txdelay_ms: int = 300
    txtail_ms: int = 30
    amplitude: float = 0.5
    persistence: int = 63
    slot_time_ms: int = 100
    full_duplex: bool = False
    busy_timeout: float = 60.0
    dcd_threshold: float = 0.5
    repair: int = 0
    restart_initial: float = 1.0
    restart_max: float = 60.0

    @property
    def line_rate(self) -> int:
        """Radio bit rate, for the air-time budget of ``[[link]]`` targets."""
        return LINE_RATE

    @classmethod
    def from_mapping(
        cls, name: str, options: Mapping[str, Any], *, data_dir: str = ""
    ) -> AfskOptions:
        r, station = StationOptions.for_adapter(name, options, data_dir=data_dir)
        where = r.where()
        if not r.has("audio_out"):
            r.fail(
                "is required (e.g. 'exec:aplay -q -t raw -f S16_LE -r 48000 -c 1', "
                "'udp:127.0.0.1:7356' or a FIFO path)",
                "audio_out",
            )
        audio_out = AudioDevice.parse(where, "audio_out", r.raw("audio_out"))
        audio_in = (
            AudioDevice.parse(where, "audio_in", r.raw("audio_in")) if r.raw("audio_in") else None
        )
        if audio_in is None and station.mode == "message":
            r.fail("mode 'message' needs 'audio_in' (acknowledgements are heard on it)")
        restart_initial = r.number("restart_initial", 1.0, minimum=0.01)
        result = cls(
            station=station,
            audio_out=audio_out,
            audio_in=audio_in,
            rate=r.integer("rate", 48000, minimum=8000, maximum=192000),
            ptt=r.string("ptt", ""),
            ptt_line=r.string("ptt_line", "rts", choices=("rts", "dtr")),
            ptt_invert=r.boolean("ptt_invert", False),
            ptt_limit=r.number("ptt_limit", 30.0, minimum=1.0),
            txdelay_ms=r.integer("txdelay_ms", 300, minimum=0, maximum=2550),
            txtail_ms=r.integer("txtail_ms", 30, minimum=0, maximum=2550),
            amplitude=r.number("amplitude", 0.5, minimum=0.0, maximum=1.0),
            persistence=r.integer("persistence", 63, minimum=0, maximum=255),
            slot_time_ms=r.integer("slot_time_ms", 100, minimum=1, maximum=2550),
            full_duplex=r.boolean("full_duplex", False),
            busy_timeout=r.number("busy_timeout", 60.0, minimum=0.1),
            dcd_threshold=r.number("dcd_threshold", 0.5, minimum=0.05, maximum=0.99),
            repair=r.integer("repair", 0, minimum=0, maximum=2),
            restart_initial=restart_initial,
            restart_max=r.number("restart_max", 60.0, minimum=restart_initial),
        )
        r.finish()
        return result


def air_time(frame_bytes: int) -> float:
    """Seconds on air of one frame at 1200 bit/s: a separating flag, the FCS and the worst
    case of bit stuffing (one bit in five)."""
    return (frame_bytes + 2 + 1) * 8 * 1.2 / LINE_RATE


class CarrierDetect:
    """Data carrier detect from audio: a block (20 ms) counts as carrier when most of its
    energy lies in the Bell 202 band (900-2500 Hz). White noise puts about 7 % of its energy
    there at 48 kHz, AFSK over 95 % (still over 50 % at 0 dB SNR), so an open squelch does
    not block the channel while a packet (or a voice on the band) does."""

    BLOCK_SECONDS = 0.02
    LOW = 900.0
    HIGH = 2500.0

    def __init__(self, rate: int, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.block = max(32, round(rate * self.BLOCK_SECONDS))
        freqs = np.fft.rfftfreq(self.block, 1.0 / rate)
        self._band = (freqs >= self.LOW) & (freqs <= self.HIGH)
        self._window = np.hanning(self.block)
        self._pending = np.zeros(0)
        self.last_fraction = 0.0

    def update(self, samples: FloatArray) -> bool:
        """Feed samples; True when any whole block among them carried a carrier."""
        data = np.concatenate((self._pending, samples))
        whole = data.size - data.size % self.block
        self._pending = data[whole:]
        if whole == 0:
            return False
        blocks = data[:whole].reshape(-1, self.block) * self._window
        power = np.abs(np.fft.rfft(blocks, axis=1)) ** 2
        total = power.sum(axis=1)
        in_band = power[:, self._band].sum(axis=1)
        fractions = np.where(total > 1e-9, in_band / np.maximum(total, 1e-30), 0.0)
        self.last_fraction = float(fractions[-1])
        return bool((fractions >= self.threshold).any())


class AfskAdapter:
    """A sound card and a radio as an APRS station: sink (alerts out) and source (messages in)."""

    def __init__(self, name: str, options: AfskOptions, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self.clock = clock or SystemClock()
        self.component = f"afsk:{name}"
        self.station = AprsStation(
            name,
            options.station,
            transmit=self._transmit,
            component=self.component,
            clock=self.clock,
        )
        self.ptt: Ptt = NoPtt()
        self.input: AudioInput | None = None
        self.output: AudioOutput = make_output(
            name, options.audio_out, rate=options.rate, clock=self.clock
        )
        self._modulator = Afsk1200Modulator(
            options.rate,
            amplitude=options.amplitude,
            txdelay=options.txdelay_ms / 1000,
            txtail=options.txtail_ms / 1000,
        )
        self._demod = Afsk1200Demodulator(options.rate, repair=options.repair)
        self._dcd = CarrierDetect(options.rate, options.dcd_threshold)
        self._busy_until = 0.0
        self._hold = max(0.1, 3 * options.slot_time_ms / 1000)
        self._tx_lock = asyncio.Lock()
        self._ptt_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ptt-{name}")
        self._rx_task: asyncio.Task[None] | None = None
        self._random = random.Random()
        self._last_frame_at: datetime | None = None
        self._open = False

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        o = self.options
        self._ptt_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ptt-{self.name}")
        self._demod = Afsk1200Demodulator(o.rate, repair=o.repair)  # a new stream
        self._busy_until = 0.0
        try:
            if o.ptt:
                self.ptt = await self._ptt_open()
            await self.output.open()
            if o.audio_in is not None:
                self.input = make_input(
                    self.name,
                    o.audio_in,
                    rate=o.rate,
                    clock=self.clock,
                    component=self.component,
                    restart_initial=o.restart_initial,
                    restart_max=o.restart_max,
                )
                if isinstance(self.input, UdpInput):
                    await self.input.bind()
            await self.station.start()
        except BaseException:
            await self._release()
            raise
        if self.input is not None:
            self._rx_task = asyncio.create_task(self._receive(), name=f"afsk-rx-{self.name}")
        self._open = True
        log.info(
            "afsk_station_started",
            adapter=self.name,
            audio_in=str(o.audio_in) if o.audio_in else None,
            audio_out=str(o.audio_out),
            rate=o.rate,
            ptt=o.ptt or "vox",
        )
        return self

    async def _ptt_open(self) -> Ptt:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._ptt_thread, self._open_ptt)

    def _open_ptt(self) -> Ptt:
        o = self.options
        line: Literal["rts", "dtr"] = "dtr" if o.ptt_line == "dtr" else "rts"
        try:
            return SerialPtt(o.ptt, line=line, invert=o.ptt_invert, max_seconds=o.ptt_limit + 5)
        except OSError as exc:
            # A port without modem-control lines (a pty, some USB adapters) fails here.
            msg = f"{self.name}: PTT port {o.ptt} cannot drive {line.upper()}: {exc}"
            raise AdapterConnectionError(msg) from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        if self._rx_task is not None:
            self._rx_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rx_task
            self._rx_task = None
        await self.station.stop()
        async with self._tx_lock:  # let a transmission in progress end (PTT released)
            await self._release()
        log.info("afsk_station_stopped", adapter=self.name)

    async def _release(self) -> None:
        if isinstance(self.input, UdpInput):
            self.input.close()
        await self.output.close()
        ptt, self.ptt = self.ptt, NoPtt()
        with contextlib.suppress(OSError):
            await self._ptt_call(ptt.close)
        self._ptt_thread.shutdown(wait=False)

    # -- source side -----------------------------------------------------------------------
    async def messages(self) -> AsyncIterator[Received]:
        async for item in self.station.subscribe():
            yield item

    @property
    def text_profile(self) -> TextProfile:
        """The APRS text this radio sends (bulletins or directed messages)."""
        return self.station.text_profile

    def subscribe(self) -> AsyncIterator[Received]:
        """An independent stream of inbound items (one per consumer)."""
        return self.station.subscribe()

    def health(self) -> list[SourceHealth]:
        """The audio input is running (a frame need not have been heard: APRS can be quiet).
        A transmit-only station (no ``audio_in``) has no stream to report."""
        if self.options.audio_in is None:
            return []
        running = self.input is not None and self.input.running
        detail = "" if running else "audio input not running"
        return [SourceHealth(self.name, running, self._last_frame_at, detail)]

    async def _receive(self) -> None:
        """Run the audio input for as long as the adapter runs; a failure of the input itself
        (not of the audio it carries) is logged and the input started again."""
        assert self.input is not None
        retries = Backoff(
            self.options.restart_initial, self.options.restart_max, jitter=0.0
        ).retries()
        while True:
            try:
                await self.input.run(self._on_audio, self._on_gap)
            except (OSError, ValueError, RuntimeError) as exc:
                log.exception("afsk_receiver_failed", adapter=self.name, error=str(exc))
                self._on_gap("receiver failed")
                await self.clock.sleep(retries.next_delay())
                continue
            return  # a regular file read to its end

    def _on_gap(self, reason: str) -> None:
        # The stream was interrupted: what the demodulator holds belongs to another stream.
        self._demod = Afsk1200Demodulator(self.options.rate, repair=self.options.repair)
        log.info("afsk_receiver_reset", adapter=self.name, reason=reason)

    async def _on_audio(self, pcm: bytes) -> None:
        try:
            frames, carrier = await asyncio.to_thread(self._demodulate, pcm)
        except Exception as exc:  # noqa: BLE001 - hostile audio must never end reception
            INPUT_REJECTED.inc(component=self.component, reason="audio")
            log.warning(
                "afsk_audio_rejected", adapter=self.name, error=f"{type(exc).__name__}: {exc}"
            )
            self._on_gap("demodulator error")
            return
        now = self.clock.monotonic()
        if carrier or frames:
            self._busy_until = now + self._hold
        for frame in frames:
            FRAMES_RECEIVED.inc(adapter=self.name)
            self._last_frame_at = self.clock.now()
            self.station.on_frame(frame.data)

    def _demodulate(self, pcm: bytes) -> tuple[list[HdlcFrame], bool]:
        """Worker-thread part of reception: demodulate and detect a carrier; count what the
        demodulator refused."""
        samples = as_float_samples(pcm)
        demod = self._demod
        try:
            return demod.feed(samples), self._dcd.update(samples)
        finally:
            count_rejections(demod.rejections)

    def channel_busy(self) -> bool:
        return self.clock.monotonic() < self._busy_until

    # -- sink side -------------------------------------------------------------------------
    @property
    def line_rate(self) -> int:
        """Bit/s on the air, for the air-time budget of ``[[link]]`` targets."""
        return self.options.line_rate

    async def send(self, item: Outbound) -> None:
        if not self._open:
            raise DeliveryError(f"{self.name}: the sound-card station is not running")
        await self.station.send(item)

    async def _transmit(self, frames: Sequence[bytes], kind: str) -> None:
        """Put ``frames`` on the air: as one transmission, or several when together they would
        key the transmitter for longer than ``ptt_limit``."""
        for group in self._groups(frames):
            await self._transmit_once(group, kind)

    def _groups(self, frames: Sequence[bytes]) -> list[list[bytes]]:
        """Frames in order, cut into runs whose air time fits in ``ptt_limit``."""
        o = self.options
        budget = o.ptt_limit - (o.txdelay_ms + o.txtail_ms) / 1000
        groups: list[list[bytes]] = []
        used = budget
        for frame in frames:
            cost = air_time(len(frame))
            if groups and used + cost <= budget:
                groups[-1].append(frame)
                used += cost
            else:
                groups.append([frame])
                used = cost
        return groups

    async def _transmit_once(self, frames: list[bytes], kind: str) -> None:
        async with self._tx_lock:
            if not self._open:
                raise DeliveryError(f"{self.name}: the sound-card station is not running")
            try:
                pcm = await asyncio.to_thread(self._modulate, frames)
            except FrameError as exc:
                raise DeliveryError(f"{self.name}: {exc}", retryable=False) from exc
            seconds = len(pcm) / 2 / self.options.rate
            if seconds > self.options.ptt_limit:
                msg = (
                    f"{self.name}: transmission of {seconds:.1f} s exceeds ptt_limit "
                    f"{self.options.ptt_limit:g} s"
                )
                raise DeliveryError(msg, retryable=False)
            await self._channel_access()
            try:
                await self._ptt_call(self.ptt.key)
                # Whatever the output does (a FIFO nobody drains), the transmitter is released.
                async with asyncio.timeout(seconds + PLAY_GRACE):
                    await self.output.play(pcm)
            except OSError as exc:
                raise DeliveryError(f"{self.name}: PTT {self.options.ptt}: {exc}") from exc
            except TimeoutError:
                msg = f"{self.name}: audio output {self.options.audio_out} stalled; PTT released"
                raise DeliveryError(msg) from None
            finally:
                try:
                    await self._ptt_call(self.ptt.unkey)
                except OSError as exc:
                    log.error("afsk_ptt_release_failed", adapter=self.name, error=str(exc))  # noqa: TRY400 - reason in the event
            AIR_SECONDS.inc(seconds, adapter=self.name)
            for _ in frames:
                FRAMES_SENT.inc(adapter=self.name, kind=kind)
            log.info(
                "afsk_transmitted",
                adapter=self.name,
                kind=kind,
                frames=len(frames),
                seconds=seconds,
            )

    async def _ptt_call(self, action: Callable[[], None]) -> None:
        """Key or release in the PTT's own worker thread: a network serial port
        (``rfc2217://``) answers over the network, which must not stall the event loop. Calls
        run in order and complete even when the caller is cancelled, so a release is never
        overtaken by the key-up it follows."""
        loop = asyncio.get_running_loop()
        await asyncio.shield(loop.run_in_executor(self._ptt_thread, action))

    def _modulate(self, frames: list[bytes]) -> bytes:
        audio = self._modulator.modulate(frames)
        return to_pcm16(audio)

    async def _channel_access(self) -> None:
        """Wait for a clear channel, then p-persistence: go with probability (P + 1) / 256
        each slot time (the KISS TNC rule)."""
        o = self.options
        if o.full_duplex:
            return
        slot = o.slot_time_ms / 1000
        deadline = self.clock.monotonic() + o.busy_timeout
        waited = False
        while True:
            if not self.channel_busy() and self._random.randint(0, 255) <= o.persistence:
                return
            if self.channel_busy() and not waited:
                waited = True
                CHANNEL_BUSY.inc(adapter=self.name)
                log.info("afsk_channel_busy", adapter=self.name)
            if self.clock.monotonic() >= deadline:
                raise DeliveryError(
                    f"{self.name}: channel busy for {o.busy_timeout:g} s; not transmitted"
                )
            await self.clock.sleep(slot)


def from_context(ctx: AdapterContext) -> AfskAdapter:
    """Factory named in ``gateway.adapter.REGISTRY`` as ``afsk``."""
    return AfskAdapter(
        ctx.name, AfskOptions.from_mapping(ctx.name, ctx.options, data_dir=ctx.data_dir), ctx.clock
    )
