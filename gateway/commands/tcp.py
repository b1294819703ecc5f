"""``borderlink tcp HOST:PORT``: a line terminal on a TCP port, for the simulated handhelds,
pager displays and any device served on a loopback port, with no other tool installed.

What arrives is written to standard output as it comes; what is typed (or piped) on standard
input is sent. End of input (Ctrl-D, the end of a pipe or of a file, or /dev/null at once)
closes the sending side and the command keeps printing until the other end closes; Ctrl-C ends
it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import socket
import sys

from gateway.commands import Subparsers, add_command, described

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "a line terminal on a TCP port (simulated handhelds, pager displays)"


_CHUNK = 4096
EXIT_CODES = {
    0: "the connection ended (closed by the other end, or Ctrl-C)",
    2: "a bad address, or a port that cannot be reached (the address is named)",
}


def split_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a pair; ``ValueError`` says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: give HOST:PORT, e.g. 127.0.0.1:7311")
    host = host.removeprefix("[").removesuffix("]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def _end_of_input(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)


def _pump(conn: socket.socket, stdin: int, stdout: int) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(conn, selectors.EVENT_READ)
        try:
            selector.register(stdin, selectors.EVENT_READ)
        except PermissionError:
            # A regular file or /dev/null (a script's or a service's input): always readable,
            # and refused by epoll. Send it whole, as the end of a pipe would be.
            while typed := os.read(stdin, _CHUNK):
                conn.sendall(typed)
            _end_of_input(conn)
        while True:
            for key, _ in selector.select():
                if key.fileobj is conn:
                    data = conn.recv(_CHUNK)
                    if not data:
                        return  # the other end closed
                    os.write(stdout, data)
                else:
                    typed = os.read(stdin, _CHUNK)
                    if typed:
                        conn.sendall(typed)
                    else:
                        selector.unregister(stdin)
                        _end_of_input(conn)


def handle(args: argparse.Namespace) -> int:
    try:
        host, port = split_address(args.address)
    except ValueError as exc:
        print(f"borderlink tcp: {exc}", file=sys.stderr)  # noqa: T201 - the command's message
        return 2
    try:
        conn = socket.create_connection((host, port), timeout=args.timeout)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"borderlink tcp: cannot connect to {host}:{port}: {reason}", file=sys.stderr)  # noqa: T201
        return 2
    conn.settimeout(None)
    print(f"borderlink tcp: connected to {host}:{port} (Ctrl-C to leave)", file=sys.stderr)  # noqa: T201
    with conn:
        try:
            _pump(conn, sys.stdin.fileno(), sys.stdout.fileno())
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            print(f"borderlink tcp: {host}:{port}: {exc.strerror or exc}", file=sys.stderr)  # noqa: T201
    return 0


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "tcp",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("address", metavar="HOST:PORT", help="e.g. 127.0.0.1:7311")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the connection (5)"
    )
    parser.set_defaults(handler=handle)
