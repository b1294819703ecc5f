"""``borderlink tcp``: the README's way to talk to a simulated handheld, as a subprocess."""

from __future__ import annotations

import os
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.commands.tcp import split_address
from tests.helpers import free_port

CLI = [sys.executable, "-m", "gateway", "tcp"]


class _Shouting(socketserver.BaseRequestHandler):
    """Greets, then answers each line in capitals until the client stops sending."""

    def handle(self) -> None:
        self.request.sendall(b"HANDHELD READY\n")
        pending = b""
        while data := self.request.recv(1024):
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self.request.sendall(line.upper() + b"\n")


@pytest.fixture
def device() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Shouting)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_typed_lines_go_out_and_answers_come_back(device: int) -> None:
    done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [*CLI, f"127.0.0.1:{device}"],
        input=b"flood at the bridge\nsecond line\n",
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"HANDHELD READY\nFLOOD AT THE BRIDGE\nSECOND LINE\n"
    assert b"connected to 127.0.0.1:" in done.stderr


@pytest.mark.parametrize("source", ["devnull", "file"])
def test_input_from_a_file_or_dev_null(device: int, source: str, tmp_path: Path) -> None:
    # A script, a cron job or a service has no terminal: its input is /dev/null or a file,
    # which the selector refuses (EPERM); the file is sent, then the other end is listened to.
    path = Path(os.devnull)
    if source == "file":
        path = tmp_path / "lines.txt"
        path.write_bytes(b"from a file\n")
    with path.open("rb") as stdin:
        done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
            [*CLI, f"127.0.0.1:{device}"], stdin=stdin, capture_output=True, timeout=30
        )
    assert b"not permitted" not in done.stderr
    assert done.returncode == 0, done.stderr
    expected = b"HANDHELD READY\n" + (b"FROM A FILE\n" if source == "file" else b"")
    assert done.stdout == expected


def test_nothing_listening_is_exit_2_with_the_address() -> None:
    port = free_port()
    done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [*CLI, f"127.0.0.1:{port}"], input=b"", capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert f"cannot connect to 127.0.0.1:{port}".encode() in done.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [("7311", "give HOST:PORT"), ("127.0.0.1:http", "port must be"), ("h:70000", "port must")],
)
def test_bad_addresses_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_address(text)
    done = subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [*CLI, text], input=b"", capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert message.encode() in done.stderr


def test_ipv6_brackets() -> None:
    assert split_address("[::1]:7311") == ("::1", 7311)
    assert split_address("localhost:7311") == ("localhost", 7311)
