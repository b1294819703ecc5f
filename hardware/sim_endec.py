"""A simulated EAS ENDEC with its serial side on a loopback TCP port (``socket://`` URL).

Receive path: audio (a WAV file, raw 16-bit PCM, or samples) is "heard off the air" through
borderlink's own SAME decoder, and each header and EOM it decodes is reported on the serial
side in the configured line framing, as a real ENDEC reports what it decodes.

Transmit path: each header the gateway writes on the serial side is "aired": the complete
transmission (bursts, attention signal, EOM) is written as a WAV file into ``air_dir`` and
listed in :attr:`SimEndec.aired`.

``borderlink sim endec --port 7355 --air-dir var/air --play alert.wav`` runs it from the
command line; the daemon starts it from ``[[simulator]] type = "endec"`` via :func:`simulator`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import structlog

from adapters.eas import audio, same_modem
from adapters.eas.adapter import write_alert_wav
from adapters.eas.endec import EndecCodec, EndecFraming
from adapters.modem.fsk import FloatArray
from gateway.commands import Subparsers
from hardware.command import add_kind, run_until_stopped

log = structlog.get_logger(__name__)


class SimEndec:
    """The simulated ENDEC; an async context manager that serves while open."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        air_dir: Path | None = None,
        framing: EndecFraming | None = None,
        encoder: same_modem.EncoderOptions | None = None,
        play: Sequence[Path] = (),
        play_delay: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.air_dir = air_dir
        self.framing = framing or EndecFraming()
        self.encoder = encoder or same_modem.EncoderOptions(attention=1.0)
        self._play = list(play)
        self._play_delay = play_delay
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.aired: list[tuple[str, Path | None]] = []
        self.aired_queue: asyncio.Queue[tuple[str, Path | None]] = asyncio.Queue()
        self.reported: list[str] = []
        self._client_change = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("sim_endec_listening", url=self.url, air_dir=str(self.air_dir))
        if self._play:
            self._spawn(self._play_files())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for writer in list(self._clients):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_connected(self, clients: int = 1) -> None:
        """Wait until ``clients`` gateways are connected to the serial side."""
        async with self._client_change:
            await self._client_change.wait_for(lambda: len(self._clients) >= clients)

    # ------------------------------------------------------------- receive (off the air)

    async def hear(
        self, samples: FloatArray | bytes | Iterable[FloatArray], rate: int = 22050
    ) -> list[same_modem.SameMessage]:
        """Decode audio as if received off the air; report what it holds on the serial side."""

        chunks: list[FloatArray | bytes]
        chunks = [samples] if isinstance(samples, bytes | np.ndarray) else list(samples)

        def run() -> list[same_modem.SameMessage]:
            decoder = same_modem.SameDecoder(rate)
            found: list[same_modem.SameMessage] = []
            for chunk in chunks:
                found += decoder.feed(chunk)
            return found + decoder.flush()

        messages = await asyncio.to_thread(run)
        for message in messages:
            await self.report(message.text)
        return messages

    async def hear_file(self, path: Path, *, rate: int = 22050) -> list[same_modem.SameMessage]:
        """Play a WAV file (or raw 16-bit PCM at ``rate``) into the receiver."""
        data = await asyncio.to_thread(path.read_bytes)
        if data[:4] == b"RIFF":
            wav_rate, chunks = audio.open_wav(io.BytesIO(data))
            return await self.hear(list(chunks), wav_rate)
        return await self.hear(data, rate)

    async def report(self, text: str) -> None:
        """Send one header (or NNNN) line to every connected client."""
        line = EndecCodec(self.framing).to_bytes(text)
        self.reported.append(text)
        log.info("sim_endec_reported", text=text, clients=len(self._clients))
        for writer in list(self._clients):
            try:
                writer.write(line)
                await writer.drain()
            except (OSError, ConnectionError):
                self._clients.discard(writer)

    async def _play_files(self) -> None:
        # What the receiver hears is reported on the serial side: played before a gateway is
        # connected, nobody would see it. Wait for the first one, then play.
        if not self._clients:
            log.info("sim_endec_play_waiting", files=len(self._play), url=self.url)
        await self.wait_connected()
        await asyncio.sleep(self._play_delay)
        for path in self._play:
            try:
                await self.hear_file(path)
            except (OSError, ValueError) as exc:
                log.warning("sim_endec_play_failed", path=str(path), error=str(exc))

    # ------------------------------------------------------------- transmit (on the air)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        async with self._client_change:
            self._clients.add(writer)
            self._client_change.notify_all()
        codec = EndecCodec(self.framing)
        try:
            while data := await reader.read(4096):
                for line in codec.feed(data):
                    if line.kind == "header":
                        await self._air(line.text)
        except (OSError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # The connection callback is the top of this task: ending it cancelled makes
            # asyncio's stream server log a spurious error at shutdown.
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _air(self, header: str) -> None:
        path: Path | None = None
        if self.air_dir is not None:
            path = await asyncio.to_thread(write_alert_wav, self.air_dir, header, self.encoder)
        self.aired.append((header, path))
        self.aired_queue.put_nowait((header, path))
        log.info("sim_endec_aired", header=header, path=str(path) if path else None)


def simulator(options: Mapping[str, Any]) -> SimEndec:
    """The daemon's ``[[simulator]] type = "endec"`` entry.

    Options: ``host`` (default 127.0.0.1), ``port`` (default 17355), ``air_dir`` (folder for
    the WAV files of aired headers; default none), ``play`` (list of WAV files heard off the
    air after ``play_delay`` seconds), ``prefix``/``terminator`` (line framing),
    ``attention`` (seconds in aired WAV files, default 1).
    """
    air_dir = options.get("air_dir")
    return SimEndec(
        host=str(options.get("host", "127.0.0.1")),
        port=int(options.get("port", 17355)),
        air_dir=Path(air_dir) if air_dir else None,
        framing=EndecFraming.from_options(
            str(options.get("prefix", "")), str(options.get("terminator", "\\r\\n"))
        ),
        encoder=same_modem.EncoderOptions(attention=float(options.get("attention", 1.0))),
        play=[Path(p) for p in options.get("play", [])],
        play_delay=float(options.get("play_delay", 1.0)),
    )


def register(kinds: Subparsers) -> None:
    parser = add_kind(
        kinds,
        "endec",
        summary="EAS ENDEC simulator: reports headers decoded from audio, airs headers it is sent",
        description=(
            "Serve an ENDEC's serial side on a loopback TCP port (socket://HOST:PORT). Audio "
            "files given with --play are decoded and their headers reported on the line; "
            "headers written to the line are aired as WAV files in --air-dir."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7355, help="TCP port (default 7355)")
    parser.add_argument("--air-dir", type=Path, help="folder for WAV files of aired headers")
    parser.add_argument("--play", type=Path, action="append", default=[], help="audio to hear")
    parser.add_argument("--prefix", default="", help="line prefix (backslash escapes)")
    parser.add_argument("--terminator", default="\\r\\n", help="line terminator")
    parser.add_argument("--attention", type=float, default=1.0, help="seconds in aired WAVs")
    parser.set_defaults(handler=_run)


async def _serve(args: argparse.Namespace) -> None:
    sim = SimEndec(
        host=args.host,
        port=args.port,
        air_dir=args.air_dir,
        framing=EndecFraming.from_options(args.prefix, args.terminator),
        encoder=same_modem.EncoderOptions(attention=args.attention),
        play=args.play,
    )
    async with sim:
        sys.stdout.write(json.dumps({"serial": sim.url, "air_dir": str(args.air_dir)}) + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


def _run(args: argparse.Namespace) -> int:
    return run_until_stopped("endec", lambda: _serve(args))
