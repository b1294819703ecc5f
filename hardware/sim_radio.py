"""``borderlink sim tnc|radio|modem|tap|raw``: simulated radio devices for technicians and tests.

Each runs one station (plus its companions) on a simulated RF channel
(:mod:`hardware.rf_channel`) and prints one JSON line with the ports to connect to, then serves
until interrupted:

- ``sim tnc --tcp HOST:PORT [--loopback]`` — a KISS TNC; with ``--loopback`` it returns every
  frame it is given (after its air time), as a TNC with a loopback plug does; without, a second
  TNC (``--peer-tcp``) shares the channel.
- ``sim radio --tcp HOST:PORT --unit 9001 --talkgroup CA-EAST [--console HOST:PORT]`` — a data
  radio speaking the default text-modem dialect, and a handheld console on the same talkgroup
  where a person can type (``nc 127.0.0.1 PORT``).
- ``sim modem --tcp HOST:PORT`` — a data radio in loopback (what it sends comes back as ``+RXT:``).
- ``sim tap --tcp HOST:PORT [--password PW] [--max-length 80]`` — a paging terminal (TAP 1.8)
  and a pager that shows every page on ``--pager-tcp``.
- ``sim raw --tcp HOST:PORT`` — a loopback plug on a serial line (8N1 timing).

``--pty`` serves a pty instead of TCP (always drained). ``--line-rate``, ``--loss``,
``--corrupt`` and ``--seed`` shape the channel (for ``tap``: the serial line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from gateway.commands import Subparsers
from hardware.command import add_kind, run_until_stopped
from hardware.rf_channel import simulation

Handler = Callable[[argparse.Namespace], int]


def _common(parser: argparse.ArgumentParser, *, port: int, rate: int) -> None:
    parser.add_argument(
        "--tcp",
        default=f"127.0.0.1:{port}",
        help=f"HOST:PORT the gateway connects to (default 127.0.0.1:{port})",
    )
    parser.add_argument("--pty", action="store_true", help="serve a pty instead of TCP")
    parser.add_argument("--loopback", action="store_true", help="return what is transmitted")
    parser.add_argument("--line-rate", type=int, default=rate, help=f"bit/s (default {rate})")
    parser.add_argument("--loss", type=float, default=0.0, help="probability a frame is lost")
    parser.add_argument(
        "--corrupt",
        type=float,
        default=0.0,
        help="probability a frame is damaged (receivers drop it on its FCS)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of loss and corruption")


def _host(args: argparse.Namespace) -> dict[str, Any]:
    return {"pty": True} if args.pty else {"tcp": args.tcp}


def _channel(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "rf",
        "line_rate": args.line_rate,
        "loss": args.loss,
        "corruption": args.corrupt,
        "seed": args.seed,
    }


def tnc_options(args: argparse.Namespace) -> dict[str, Any]:
    stations = [{"name": "tnc", "kind": "tnc", "loopback": args.loopback, **_host(args)}]
    if not args.loopback:
        stations.append({"name": "peer", "kind": "tnc", "tcp": args.peer_tcp})
    return {"channels": [_channel(args)], "stations": stations}


def radio_options(args: argparse.Namespace) -> dict[str, Any]:
    talkgroups = args.talkgroup or ["LOOP"]
    stations: list[dict[str, Any]] = [
        {
            "name": "radio",
            "kind": "radio",
            "unit": args.unit,
            "talkgroups": talkgroups,
            "loopback": args.loopback,
            **_host(args),
        },
    ]
    if not args.loopback:
        stations.append(
            {
                "name": "console",
                "kind": "console",
                "unit": args.console_unit,
                "talkgroups": talkgroups[:1],
                "tcp": args.console,
            }
        )
    return {"channels": [_channel(args)], "stations": stations}


def tap_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "channels": [{"name": "paging", "line_rate": args.line_rate}],
        "stations": [
            {
                "name": "terminal",
                "kind": "tap",
                "password": args.password,
                "max_length": args.max_length,
                "loss": args.loss,
                "corruption": args.corrupt,
                "seed": args.seed,
                **_host(args),
            },
            {"name": "pager", "kind": "pager", "pager_ids": args.pager_id, "tcp": args.pager_tcp},
        ],
    }


async def serve(options: dict[str, Any]) -> None:
    """Run the stations of ``options``, print their ports as one JSON line, serve until
    cancelled (by SIGINT or SIGTERM: :func:`hardware.command.run_until_stopped`)."""
    async with simulation(options) as sim:
        ports = {name: station.url for name, station in sim.stations.items() if station.url}
        sys.stdout.write(json.dumps(ports) + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


def _runner(build: Callable[[argparse.Namespace], dict[str, Any]]) -> Handler:
    def run(args: argparse.Namespace) -> int:
        return run_until_stopped(args.sim_kind, lambda: serve(build(args)))

    return run


def register(kinds: Subparsers) -> None:
    tnc = add_kind(
        kinds, "tnc", summary="a simulated KISS TNC (TCP or pty), optionally in loopback"
    )
    _common(tnc, port=8001, rate=1200)
    tnc.add_argument(
        "--peer-tcp",
        default="127.0.0.1:0",
        help="HOST:PORT of a second TNC on the same channel (without --loopback)",
    )
    tnc.set_defaults(handler=_runner(tnc_options))

    radio = add_kind(kinds, "radio", summary="a simulated data radio and a handheld console")
    _common(radio, port=7301, rate=9600)
    radio.add_argument("--unit", default="9001", help="the radio's unit ID")
    radio.add_argument("--talkgroup", action="append", default=[], help="talkgroup (repeatable)")
    radio.add_argument("--console", default="127.0.0.1:0", help="HOST:PORT of the handheld")
    radio.add_argument("--console-unit", default="2001", help="the handheld's unit ID")
    radio.set_defaults(handler=_runner(radio_options))

    modem = add_kind(kinds, "modem", summary="a simulated data radio in loopback")
    _common(modem, port=7302, rate=9600)
    modem.add_argument("--unit", default="9001")
    modem.set_defaults(handler=_runner(lambda a: radio_options(_loop(a))))

    raw = add_kind(kinds, "raw", summary="a serial loopback plug: every line comes back")
    _common(raw, port=7501, rate=9600)
    raw.set_defaults(handler=_runner(raw_options))

    tap = add_kind(kinds, "tap", summary="a simulated TAP paging terminal and a pager")
    _common(tap, port=7401, rate=9600)
    tap.add_argument("--password", default="", help="the PG1 logon password")
    tap.add_argument("--max-length", type=int, default=80, help="characters a page (80)")
    tap.add_argument("--pager-id", action="append", default=[], help="pager IDs (repeatable)")
    tap.add_argument("--pager-tcp", default="127.0.0.1:0", help="where the pager shows pages")
    tap.set_defaults(handler=_runner(tap_options))


def raw_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "channels": [_channel(args)],
        "stations": [{"name": "line", "kind": "raw", **_host(args)}],
    }


def _loop(args: argparse.Namespace) -> argparse.Namespace:
    args.loopback = True
    args.talkgroup = ["LOOP"]
    return args
