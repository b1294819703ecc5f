"""Helpers shared by the whole suite: external tools, free ports, a real Mosquitto broker."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """Return the path of an external tool; skip without it, but fail under CI=true."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        message = f"external tool {name!r} is not installed (make test installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def corpus_dir(*parts: str) -> Path:
    """A folder of the shared corpus of published alerts; skip when it is not beside the repo."""
    path = SHARED_CORPUS.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"shared corpus not present at {path}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    msg = f"nothing listening on {host}:{port} after {timeout}s"
    raise TimeoutError(msg)


@dataclass
class Broker:
    """A real Mosquitto broker on a free loopback port."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    config: Path

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (persistence off: sessions are lost)."""
        self.stop()
        self.process = _spawn_mosquitto(self.config)
        wait_for_port(self.host, self.port)


def mosquitto_user() -> str:
    """The ``user`` line that keeps Mosquitto as the user running it: started as root it
    would become ``mosquitto``, which cannot write a persistence file into (or read an ACL
    file from) a private temporary folder -- and says so only in a log nobody reads."""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"


def _spawn_mosquitto(config: Path) -> subprocess.Popen[bytes]:
    binary = require_tool("mosquitto")
    return subprocess.Popen(
        [binary, "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def run_mosquitto(port: int | None = None, *, extra: str = "") -> Iterator[Broker]:
    """Start Mosquitto on 127.0.0.1 on a free port (or ``port``) and stop it afterwards;
    ``extra`` lines are added to its configuration (``{tmp}`` is its folder)."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="mosq-") as tmp:
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(
            f"{mosquitto_user()}listener {port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nmax_queued_messages 100000\n" + extra.replace("{tmp}", tmp),
            encoding="utf-8",
        )
        broker = Broker("127.0.0.1", port, _spawn_mosquitto(config), config)
        try:
            wait_for_port(broker.host, port)
            yield broker
        finally:
            broker.stop()


# ------------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    """A real PostgreSQL server on a free loopback port, in a temporary folder."""

    host: str
    port: int
    datadir: Path
    options: str = ""  # the server options it was started with (pg_ctl -o)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def stop(self, mode: str = "immediate") -> None:
        """``pg_ctl stop -m MODE``: ``immediate`` is a crash (no checkpoint, clients cut)."""
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"]),
            check=False, capture_output=True, timeout=120,
        )

    def start(self) -> None:
        """``pg_ctl start`` again with the same options, on the same port (after a
        :meth:`stop`: crash recovery runs first)."""
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-o", self.options,
                          "-l", str(self.datadir.parent / "server.log"), "-w", "start"]),
            check=True, capture_output=True, timeout=120,
        )
        wait_for_port(self.host, self.port, timeout=30)


def _pg_bin(name: str) -> str:
    """A server program of the installed PostgreSQL (the newest major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    if found:
        return str(found[-1])
    return require_tool(name)


def _as_postgres(argv: list[str]) -> list[str]:
    """The server refuses to run as root: as root, run it as the ``postgres`` user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextlib.contextmanager
def run_postgres() -> Iterator[Postgres]:
    """initdb + pg_ctl start on 127.0.0.1 (a free port; socket in the temp folder); stopped and
    removed afterwards. ``fsync`` is off: these servers hold test data only."""
    initdb = _pg_bin("initdb")
    pg_ctl = _pg_bin("pg_ctl")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pg-") as tmp:
        base = Path(tmp)
        datadir = base / "data"
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
        subprocess.run(
            _as_postgres([initdb, "-D", str(datadir), "-U", "postgres", "--auth=trust",
                          "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True, timeout=120,
        )
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base}"
            " -c fsync=off -c max_connections=300"
        )
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(datadir), "-o", options, "-l",
                          str(base / "server.log"), "-w", "start"]),
            check=True, capture_output=True, timeout=120,
        )
        server = Postgres("127.0.0.1", port, datadir, options)
        try:
            wait_for_port("127.0.0.1", port, timeout=30)
            yield server
        finally:
            server.stop()


def record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the path of every file ``os.fdatasync`` syncs from now on (it still syncs)."""
    synced: list[str] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return synced
