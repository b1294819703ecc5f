"""Audio transports of the sound-card modem: signed 16-bit little-endian mono PCM in and out.

An audio device is named by a string, as direwolf names its ``ADEVICE``:

- ``exec:COMMAND ARGS`` — a command whose standard output is the audio (input, e.g.
  ``exec:arecord -q -t raw -f S16_LE -r 48000 -c 1``) or whose standard input takes it
  (output, e.g. ``exec:aplay -q -t raw -f S16_LE -r 48000 -c 1``). An input command runs for
  as long as the adapter does; when it exits it is started again after a delay that doubles
  up to a limit (and starts over once a run lasted a minute). An output command is started
  for each transmission and ends when its audio has played (``aplay`` drains the sound card
  before exiting), so the transmitter is released exactly at the end of the audio whatever
  the sound card's buffering. The command's standard error is logged line by line. The
  command line is split like a shell would (quotes), but no shell runs it.
- ``udp:PORT`` or ``udp:HOST:PORT`` — raw PCM in UDP datagrams, as direwolf's ``udp:``
  audio device and SDR front ends (``rtl_fm ... | socat - udp:...``) use; input listens on
  HOST (default 127.0.0.1), output sends to it, paced at the audio's real-time rate.
- ``file:PATH`` or a plain path — a FIFO (read or written as a stream) or a regular file
  (input: read once to its end; output: appended to).

Hostile input: an odd-length UDP datagram is counted in ``INPUT_REJECTED`` (reason
``odd_datagram``) and its last byte dropped; datagrams arriving faster than the demodulator
keeps up are dropped oldest first and counted (``overrun``). A stream may split a sample
across reads: the odd byte is kept for the next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import stat
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from gateway.adapter import Clock
from gateway.backoff import Backoff
from gateway.errors import AdapterConnectionError, ConfigError, DeliveryError
from gateway.metrics import INPUT_REJECTED, REGISTRY

log = structlog.get_logger(__name__)

AUDIO_RESTARTS = REGISTRY.counter(
    "borderlink_afsk_audio_restarts_total",
    "Audio input commands or streams that ended and were started again",
    ["adapter"],
)

OnAudio = Callable[[bytes], Awaitable[None]]
OnGap = Callable[[str], None]

UDP_QUEUE = 512  # datagrams waiting for the demodulator (about 5 s of 48 kHz audio)
UDP_DATAGRAM = 1024  # bytes of audio per datagram sent (direwolf's SDR examples use 1024)
STDERR_LINE = 400


@dataclass(frozen=True, slots=True)
class AudioDevice:
    """A parsed audio device string."""

    kind: Literal["exec", "udp", "file"]
    argv: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    path: str = ""

    @classmethod
    def parse(cls, where: str, key: str, text: object) -> AudioDevice:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                f"{where}: option {key!r} must be 'exec:COMMAND', 'udp:[HOST:]PORT' or a "
                f"file/FIFO path, got {text!r}"
            )
        text = text.strip()
        if text.startswith("exec:"):
            try:
                argv = tuple(shlex.split(text[5:]))
            except ValueError as exc:
                raise ConfigError(f"{where}: option {key!r}: command line: {exc}") from None
            if not argv:
                raise ConfigError(f"{where}: option {key!r}: 'exec:' needs a command")
            return cls("exec", argv=argv)
        if text.startswith("udp:"):
            host, _, port_text = text[4:].rpartition(":")
            host = host.strip("[]") or "127.0.0.1"
            # isdecimal() alone admits other scripts' digits; int() would then fail.
            if not (port_text.isascii() and port_text.isdecimal()) or not (
                1 <= int(port_text) <= 65535
            ):
                raise ConfigError(
                    f"{where}: option {key!r}: {text!r} is not udp:PORT or udp:HOST:PORT "
                    "(port 1-65535)"
                )
            return cls("udp", host=host, port=int(port_text))
        path = text.removeprefix("file:")
        if not path:
            raise ConfigError(f"{where}: option {key!r}: 'file:' needs a path")
        return cls("file", path=path)

    def __str__(self) -> str:
        if self.kind == "exec":
            return "exec:" + shlex.join(self.argv)
        if self.kind == "udp":
            return f"udp:{self.host}:{self.port}"
        return self.path


# ---------------------------------------------------------------------------------------------
# Input


class _Aligner:
    """Keeps whole 16-bit samples: an odd byte at the end of a read waits for the next."""

    def __init__(self) -> None:
        self._odd = b""

    def __call__(self, data: bytes) -> bytes:
        data = self._odd + data
        cut = len(data) & ~1
        self._odd = data[cut:]
        return data[:cut]

    def reset(self) -> None:
        self._odd = b""


class AudioInput(ABC):
    """Audio coming in; :meth:`run` delivers PCM (whole samples) until cancelled.

    A sound card delivers samples all the time; a UDP sender, a FIFO or a command may go quiet
    between transmissions. The demodulator needs a few milliseconds of signal after a frame
    to finish it, so when such a source falls silent after audio (``idle`` seconds without
    data), or ends, ``idle`` seconds of silence are delivered once in its place.
    """

    IDLE = 0.1

    def __init__(self, adapter: str, device: AudioDevice, *, chunk: int, rate: int) -> None:
        self.adapter = adapter
        self.device = device
        self.chunk = chunk
        self.running = False
        self.silence = bytes(2 * round(rate * self.IDLE))
        self._quiet = True  # no audio since the last silence delivered

    async def _read(self, read: Callable[[], Awaitable[bytes]], on_audio: OnAudio) -> bytes:
        """``read()``, delivering silence once if the source goes quiet after audio."""
        if not self._quiet:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the read completes, and the reader would never end.
            try:
                async with asyncio.timeout(self.IDLE):
                    data = await read()
            except TimeoutError:
                await self._flush(on_audio)
            else:
                self._quiet = not data
                return data
        data = await read()
        self._quiet = not data
        return data

    async def _flush(self, on_audio: OnAudio) -> None:
        if not self._quiet:
            self._quiet = True
            await on_audio(self.silence)

    @abstractmethod
    async def run(self, on_audio: OnAudio, on_gap: OnGap) -> None:
        """Deliver audio to ``on_audio``; call ``on_gap`` when the stream was interrupted."""


class ExecInput(AudioInput):
    """A command's standard output, restarted with backoff when it ends."""

    def __init__(
        self,
        adapter: str,
        device: AudioDevice,
        *,
        chunk: int,
        rate: int,
        clock: Clock,
        restart_initial: float = 1.0,
        restart_max: float = 60.0,
        stable_after: float = 60.0,
    ) -> None:
        super().__init__(adapter, device, chunk=chunk, rate=rate)
        self.clock = clock
        self.restart_initial = restart_initial
        self.restart_max = restart_max
        self.stable_after = stable_after
        self.restarts = 0
        self.pid: int | None = None

    async def run(self, on_audio: OnAudio, on_gap: OnGap) -> None:
        retries = Backoff(self.restart_initial, self.restart_max, jitter=0.0).retries()
        while True:
            started = self.clock.monotonic()
            reason = await self._run_once(on_audio)
            self.running = False
            self.restarts += 1
            AUDIO_RESTARTS.inc(adapter=self.adapter)
            on_gap(reason)
            if self.clock.monotonic() - started >= self.stable_after:
                retries.reset()
            delay = retries.next_delay()
            log.warning(
                "afsk_audio_input_ended",
                adapter=self.adapter,
                device=str(self.device),
                reason=reason,
                restart_in=delay,
            )
            await self.clock.sleep(delay)

    async def _run_once(self, on_audio: OnAudio) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.device.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return f"cannot start {self.device.argv[0]}: {exc}"
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.pid = proc.pid
        self.running = True
        log.info("afsk_audio_input_started", adapter=self.adapter, pid=proc.pid)
        stderr = asyncio.create_task(log_stderr(self.adapter, proc.stderr))
        align = _Aligner()
        try:
            stdout = proc.stdout
            while data := await self._read(lambda: stdout.read(self.chunk), on_audio):
                pcm = align(data)
                if pcm:
                    await on_audio(pcm)
            await self._flush(on_audio)
            code = await proc.wait()
            return f"command exited with status {code}"
        finally:
            await reap(proc)
            await finish(stderr)
            self.pid = None


class _DatagramQueue(asyncio.DatagramProtocol):
    def __init__(self, adapter: str, component: str) -> None:
        self.adapter = adapter
        self.component = component
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(UDP_QUEUE)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(data) % 2:
            INPUT_REJECTED.inc(component=self.component, reason="odd_datagram")
            log.warning(
                "afsk_audio_rejected", adapter=self.adapter, reason="odd_datagram", size=len(data)
            )
            data = data[:-1]
        if not data:
            return
        if self.queue.full():
            self.queue.get_nowait()
            INPUT_REJECTED.inc(component=self.component, reason="overrun")
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("afsk_udp_error", adapter=self.adapter, error=str(exc))


class UdpInput(AudioInput):
    """PCM in UDP datagrams on a local port."""

    def __init__(
        self, adapter: str, device: AudioDevice, *, chunk: int, rate: int, component: str
    ) -> None:
        super().__init__(adapter, device, chunk=chunk, rate=rate)
        self.component = component
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _DatagramQueue | None = None

    async def bind(self) -> None:
        """Bind the port now (so a bad address fails the adapter's start, not later)."""
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _DatagramQueue(self.adapter, self.component),
                local_addr=(self.device.host, self.device.port),
            )
        except OSError as exc:
            # Often passing (the previous process still holds the port): worth a retry.
            msg = f"{self.adapter}: cannot listen on {self.device}: {exc}"
            raise AdapterConnectionError(msg) from exc
        self._transport, self._protocol = transport, protocol
        self.running = True

    async def run(self, on_audio: OnAudio, on_gap: OnGap) -> None:
        if self._protocol is None:
            await self.bind()
        assert self._protocol is not None
        try:
            while True:
                queue = self._protocol.queue
                await on_audio(await self._read(queue.get, on_audio))
        finally:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.running = False


class FileInput(AudioInput):
    """A FIFO (read forever; writers may come and go) or a regular file (read once)."""

    async def run(self, on_audio: OnAudio, on_gap: OnGap) -> None:
        path = Path(self.device.path)
        try:
            mode = (await asyncio.to_thread(path.stat)).st_mode
        except OSError as exc:
            on_gap(f"cannot open {path}: {exc}")
            log.error(  # noqa: TRY400 - the reason is in the event, no traceback wanted
                "afsk_audio_input_failed", adapter=self.adapter, path=str(path), error=str(exc)
            )
            return
        if stat.S_ISREG(mode):
            await self._read_regular(path, on_audio)
            on_gap("end of file")
            log.info("afsk_audio_input_ended", adapter=self.adapter, path=str(path))
            return
        await self._read_stream(path, stat.S_ISFIFO(mode), on_audio)

    async def _read_regular(self, path: Path, on_audio: OnAudio) -> None:
        align = _Aligner()
        with path.open("rb") as handle:
            self.running = True
            try:
                while data := await asyncio.to_thread(handle.read, self.chunk):
                    self._quiet = False
                    pcm = align(data)
                    if pcm:
                        await on_audio(pcm)
                await self._flush(on_audio)
            finally:
                self.running = False

    async def _read_stream(self, path: Path, fifo: bool, on_audio: OnAudio) -> None:
        # A FIFO is opened read-write: we are then a writer ourselves, so the stream never
        # reaches end-of-file when the program feeding it stops, and opening never blocks.
        flags = (os.O_RDWR if fifo else os.O_RDONLY) | os.O_NONBLOCK
        fd = os.open(path, flags)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.chunk * 4)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        self.running = True
        align = _Aligner()
        try:
            while data := await self._read(lambda: reader.read(self.chunk), on_audio):
                pcm = align(data)
                if pcm:
                    await on_audio(pcm)
        finally:
            self.running = False
            transport.close()


# ---------------------------------------------------------------------------------------------
# Output


class AudioOutput(ABC):
    """Audio going out: :meth:`play` returns once the audio has been played."""

    def __init__(self, adapter: str, device: AudioDevice, *, rate: int, clock: Clock) -> None:
        self.adapter = adapter
        self.device = device
        self.rate = rate
        self.clock = clock

    async def open(self) -> None:  # noqa: B027 - most outputs have nothing to open
        """Prepare the output (bind a socket); called when the adapter starts."""

    async def close(self) -> None:  # noqa: B027 - most outputs have nothing to close
        """Release the output."""

    @abstractmethod
    async def play(self, pcm: bytes) -> None:
        """Play ``pcm``; return when it has been played (at least its duration)."""

    def duration(self, pcm: bytes) -> float:
        return len(pcm) / 2 / self.rate

    async def _until(self, deadline: float) -> None:
        remaining = deadline - self.clock.monotonic()
        if remaining > 0:
            await self.clock.sleep(remaining)


class ExecOutput(AudioOutput):
    """One process per transmission; the audio has played when it exits."""

    def __init__(
        self, adapter: str, device: AudioDevice, *, rate: int, clock: Clock, grace: float = 10.0
    ) -> None:
        super().__init__(adapter, device, rate=rate, clock=clock)
        self.grace = grace

    async def play(self, pcm: bytes) -> None:
        started = self.clock.monotonic()
        seconds = self.duration(pcm)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.device.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            msg = f"{self.adapter}: cannot start audio output {self.device.argv[0]}: {exc}"
            raise DeliveryError(msg) from exc
        assert proc.stdin is not None
        assert proc.stderr is not None
        stderr = asyncio.create_task(log_stderr(self.adapter, proc.stderr))
        try:
            try:
                proc.stdin.write(pcm)
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError) as exc:
                code: int | str = "unknown"
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.grace):
                        code = await proc.wait()
                msg = (
                    f"{self.adapter}: audio output command exited with status {code} "
                    "before taking all the audio"
                )
                raise DeliveryError(msg) from exc
            try:
                async with asyncio.timeout(seconds + self.grace):
                    code = await proc.wait()
            except TimeoutError:
                limit = seconds + self.grace
                msg = f"{self.adapter}: audio output did not finish within {limit:.1f} s"
                raise DeliveryError(msg) from None
            if code != 0:
                msg = f"{self.adapter}: audio output command exited with status {code}"
                raise DeliveryError(msg)
        finally:
            await reap(proc)
            await finish(stderr)
        await self._until(started + seconds)


class UdpOutput(AudioOutput):
    """PCM datagrams to HOST:PORT at the audio's real-time rate (a small lead ahead)."""

    LEAD = 0.2

    def __init__(self, adapter: str, device: AudioDevice, *, rate: int, clock: Clock) -> None:
        super().__init__(adapter, device, rate=rate, clock=clock)
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        # Not connected: a receiver that is not listening yet does not turn into errors.
        local = ("::1", 0) if ":" in self.device.host else ("127.0.0.1", 0)
        if self.device.host not in {"127.0.0.1", "::1", "localhost"}:
            local = ("0.0.0.0", 0)  # noqa: S104 - sending to a remote audio receiver
        self._transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=local
        )

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def play(self, pcm: bytes) -> None:
        if self._transport is None:
            await self.open()
        assert self._transport is not None
        started = self.clock.monotonic()
        bytes_per_second = 2 * self.rate
        addr = (self.device.host, self.device.port)
        for offset in range(0, len(pcm), UDP_DATAGRAM):
            ahead = started + offset / bytes_per_second - self.LEAD
            await self._until(ahead)
            try:
                self._transport.sendto(pcm[offset : offset + UDP_DATAGRAM], addr)
            except OSError as exc:
                raise DeliveryError(f"{self.adapter}: UDP audio to {addr}: {exc}") from exc
        await self._until(started + self.duration(pcm))


class FileOutput(AudioOutput):
    """Appended to a regular file, or written to a FIFO (someone must be reading it)."""

    async def play(self, pcm: bytes) -> None:
        started = self.clock.monotonic()
        try:
            await asyncio.to_thread(self._write, pcm)
        except OSError as exc:
            raise DeliveryError(f"{self.adapter}: audio output {self.device.path}: {exc}") from exc
        await self._until(started + self.duration(pcm))

    def _write(self, pcm: bytes) -> None:
        path = Path(self.device.path)
        fifo = path.exists() and stat.S_ISFIFO(path.stat().st_mode)
        # A FIFO without a reader fails at once (ENXIO) instead of blocking forever.
        flags = os.O_WRONLY | (os.O_NONBLOCK if fifo else os.O_APPEND | os.O_CREAT)
        fd = os.open(path, flags, 0o644)
        try:
            if fifo:
                os.set_blocking(fd, True)
            view = memoryview(pcm)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# Processes


async def log_stderr(adapter: str, stream: asyncio.StreamReader) -> None:
    """Log a command's standard error line by line (each line cut to a sane length)."""
    with contextlib.suppress(ValueError, ConnectionError):
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                log.warning("afsk_audio_command_said", adapter=adapter, line=text[:STDERR_LINE])


async def reap(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    """End ``proc`` if it still runs (terminate, then kill) and wait for it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        waiter = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.wait({waiter}, timeout=grace)
        if not done:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await waiter
    await proc.wait()


async def finish(task: asyncio.Task[None], grace: float = 1.0) -> None:
    """Give ``task`` (a stderr logger, ending at end-of-file) ``grace`` seconds, then cancel it.

    ``asyncio.wait`` neither cancels on timeout nor swallows a cancellation of the caller."""
    await asyncio.wait({task}, timeout=grace)
    task.cancel()


def make_input(
    adapter: str,
    device: AudioDevice,
    *,
    rate: int,
    clock: Clock,
    component: str,
    restart_initial: float = 1.0,
    restart_max: float = 60.0,
) -> AudioInput:
    chunk = max(256, (rate // 10) * 2)  # about 0.1 s of audio per read
    if device.kind == "exec":
        return ExecInput(
            adapter,
            device,
            chunk=chunk,
            rate=rate,
            clock=clock,
            restart_initial=restart_initial,
            restart_max=restart_max,
        )
    if device.kind == "udp":
        return UdpInput(adapter, device, chunk=chunk, rate=rate, component=component)
    return FileInput(adapter, device, chunk=chunk, rate=rate)


def make_output(adapter: str, device: AudioDevice, *, rate: int, clock: Clock) -> AudioOutput:
    if device.kind == "exec":
        return ExecOutput(adapter, device, rate=rate, clock=clock)
    if device.kind == "udp":
        return UdpOutput(adapter, device, rate=rate, clock=clock)
    return FileOutput(adapter, device, rate=rate, clock=clock)
