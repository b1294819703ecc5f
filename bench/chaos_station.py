"""The far end of the chaos scenario's radio sink: an APRS station behind a KISS TCP port.

:mod:`bench.chaos` runs it as a process of its own, so that it lives through every SIGKILL of
the daemon, as a TNC and the station beyond it would. It plays the TNC and the addressee at
once, with the project's own codecs in the device role:

* it takes connections in turn (the daemon connects again after each restart; a connection of
  a killed daemon simply ends) and decodes every KISS data frame as AX.25 and APRS;
* it appends one JSON line per frame to the record file -- written and flushed **before** it
  answers anything, so an ack the daemon sees always stands for a recorded copy;
* it acknowledges every numbered message addressed to its callsign, copies included (the
  sender may have missed the first ack), after ``--ack-delay`` seconds: a radio's turnaround,
  which also leaves the daemon's kills a window between the copy and its ack.

It drops nothing and dedupes nothing: judging repeats (a number heard twice) and duplicates (an
alert under two numbers) is the accounting's job, from the record.

    python -m bench.chaos_station --port 8001 --callsign VA3EOC --record radio.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from adapters.kiss import aprs, ax25, kiss
from gateway.errors import FrameError


def describe(raw: bytes, callsign: ax25.Address) -> tuple[dict[str, Any], aprs.Ack | None]:
    """The record line of a frame, and the ack it calls for (a numbered message to us)."""
    try:
        frame = ax25.Frame.from_bytes(raw)
        packet = aprs.decode(frame.info)
    except FrameError as exc:
        return {"kind": "bad", "error": str(exc), "hex": raw.hex()}, None
    sender = frame.source.base
    line: dict[str, Any] = {"source": sender, "kind": type(packet).__name__.lower()}
    if packet is None:
        return line | {"kind": "other", "info": frame.info.decode("latin-1")}, None
    if isinstance(packet, aprs.Bulletin):
        return line | {"addressee": packet.addressee, "text": packet.text}, None
    line |= {"addressee": packet.addressee, "number": packet.number}
    if not isinstance(packet, aprs.Message):
        return line, None  # an ack or a rej: never answered
    line["text"] = packet.text
    ours = packet.addressee.upper() == callsign.base
    return line, aprs.Ack(sender, packet.number) if ours and packet.number is not None else None


@dataclass
class Station:
    """Records every frame and acks the numbered messages addressed to ``callsign``."""

    callsign: ax25.Address
    record: IO[str]
    ack_delay: float
    connections: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        decoder = kiss.KissDecoder()
        try:
            while data := await reader.read(4096):
                for frame in decoder.feed(data):
                    if frame.command is kiss.Command.DATA:
                        await self._heard(frame.data, connection, writer)
                for error in decoder.take_errors():
                    self._write({"kind": "bad", "error": str(error), "connection": connection})
        except ConnectionError:
            pass  # the daemon was killed mid-stream: what it wrote before is recorded
        finally:
            writer.close()

    async def _heard(self, raw: bytes, connection: int, writer: asyncio.StreamWriter) -> None:
        line, ack = describe(raw, self.callsign)
        self._write(line | {"connection": connection})
        if ack is None:
            return
        await asyncio.sleep(self.ack_delay)
        reply = ax25.Frame(ax25.Address("APZBDL"), self.callsign, (), ack.to_info())
        with contextlib.suppress(ConnectionError):
            writer.write(kiss.data_frame(reply.to_bytes()).to_bytes())
            await writer.drain()

    def _write(self, line: dict[str, Any]) -> None:
        self.record.write(json.dumps(line) + "\n")
        self.record.flush()


async def serve(port: int, callsign: str, record: Path, ack_delay: float) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with record.open("a", encoding="utf-8") as handle:
        station = Station(ax25.Address.parse(callsign), handle, ack_delay)
        server = await asyncio.start_server(station.serve, "127.0.0.1", port)
        async with server:
            await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True, help="KISS TCP port on 127.0.0.1")
    parser.add_argument("--callsign", default="VA3EOC", help="the station acks messages to it")
    parser.add_argument("--record", type=Path, required=True, help="JSON lines, one per frame")
    parser.add_argument("--ack-delay", type=float, default=0.02, help="seconds before an ack")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.callsign, args.record, args.ack_delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
