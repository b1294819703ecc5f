"""``borderlink run CONFIG``: the daemon.

Runs the gateway on a TOML configuration until SIGTERM or SIGINT (then it finishes what it
is delivering, up to ``[gateway] drain_timeout``). SIGHUP re-reads the routes of CONFIG.
'borderlink check-config CONFIG' checks a configuration without running it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import structlog

from gateway.collector import settle
from gateway.commands import Subparsers, add_command, described
from gateway.config import load_config
from gateway.errors import ConfigError, GatewayError

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "run the gateway daemon"


log = structlog.get_logger(__name__)

EXIT_CODES = {
    0: "stopped cleanly (SIGTERM or SIGINT)",
    1: "the daemon could not start or stopped on an error (a port taken, the ledger "
    "unreadable); the reason is printed",
    2: "the configuration was refused (the message names the file, the key path and what is "
    "allowed)",
}


async def _main(path: str) -> int:
    from gateway.daemon import Daemon  # noqa: PLC0415 - after the configuration is read

    config = load_config(path)
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop)
    loop.add_signal_handler(signal.SIGINT, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    run = asyncio.ensure_future(daemon.run())
    started = asyncio.ensure_future(daemon.started.wait())
    await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
    if started.done() and config.http.enabled:
        where = f"http://{config.http.host}:{daemon.http_port}"
        if daemon.token_file is not None:
            print(  # noqa: T201 - what a newcomer needs to see on the terminal
                f"borderlink: API on {where}; writes need the bearer token in {daemon.token_file}",
                file=sys.stderr,
            )
        else:
            print(f"borderlink: API on {where}", file=sys.stderr)  # noqa: T201 - for the operator
    if started.done() and daemon.mqtt_password_file is not None:
        mqtt = config.mqtt
        print(  # noqa: T201 - what a newcomer needs to see on the terminal
            f"borderlink: MQTT on mqtt://{mqtt.embedded_host}:{mqtt.embedded_port};"
            f" user operator, password in {daemon.mqtt_password_file}",
            file=sys.stderr,
        )
    if started.done() and daemon.console_password_file is not None:
        print(  # noqa: T201 - what a newcomer needs to see on the terminal
            f"borderlink: console on http://{config.http.host}:{daemon.http_port}/;"
            f" user operator, password in {daemon.console_password_file}",
            file=sys.stderr,
        )
    started.cancel()
    if started.done():
        settle()  # what start-up built stays out of the garbage collector's walks
    await run
    return 0


def handle(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args.config))
    except ConfigError as exc:
        log.error("config_refused", error=str(exc))  # noqa: TRY400 - the message is the point
        print(f"borderlink: {exc}", file=sys.stderr)  # noqa: T201 - for the operator
        return 2
    except (GatewayError, OSError) as exc:  # a port is taken, the ledger cannot be opened...
        log.error("daemon_failed", error=str(exc))  # noqa: TRY400 - the message is the point
        print(f"borderlink: {exc}", file=sys.stderr)  # noqa: T201 - for the operator
        return 1


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "run",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("config", metavar="CONFIG", help="TOML configuration file")
    parser.set_defaults(handler=handle)
