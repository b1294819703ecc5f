"""A daemon with its console, on free loopback ports, and the system's Chromium driven by
Playwright -- the browser tests check the console as an operator would use it.

One daemon serves a whole module (starting one takes a second or two); each test signs in
with its own browser context. Screenshots of the main views are saved under
``BORDERLINK_ARTIFACTS`` (default ``var/test-artifacts``) for people to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.console.accounts import add_account
from tests.helpers import free_port, in_ci
from tests.signature.pki import build_pki, key_pem, pem

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-test-token-0123456789"
PASSWORDS = {"alice": "alice-pass-4242", "victor": "victor-pass-4242", "ada": "ada-pass-4242"}


def chromium() -> str:
    """The system's Chromium (Debian package ``chromium``); the suite installs it."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    message = "Chromium is not installed (make test installs the Debian package chromium)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def artifacts() -> Path:
    folder = Path(os.environ.get("BORDERLINK_ARTIFACTS", ROOT / "var" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class ConsoleDaemon:
    url: str
    folder: Path
    process: subprocess.Popen[bytes]

    def post(self, body: bytes) -> dict[str, object]:
        request = urllib.request.Request(
            f"{self.url}/api/v1/alerts",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cap+xml"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            result: dict[str, object] = json.loads(answer.read())
            return result

    def files(self, sink: str) -> list[Path]:
        folder = self.folder / sink
        return sorted(folder.glob("*.json")) if folder.exists() else []


def _config(folder: Path, http_port: int, dead_port: int) -> Path:
    text = f"""
[gateway]
name = "windsor-detroit"
data_dir = "{folder}"
housekeeping_interval = 0.5

[mqtt]
enabled = false

[http]
host = "127.0.0.1"
port = {http_port}
token_file = "token"
validation = "warn"

[console]
title = "Windsor-Detroit EOC"
users_file = "users"
session_hours = 1
lockout_failures = 5
lockout_minutes = 10
signing_key_file = "{folder / "eoc.key"}"
signing_cert_file = "{folder / "eoc.pem"}"

[ledger]
path = "{folder / "ledger.sqlite3"}"

# A required NAAD stream that is never there: the health strip shows it red.
[[source]]
name = "naad-east"
type = "naad"
required = true
streams = ["tcp://127.0.0.1:{dead_port}"]

[[sink]]
name = "eoc-files"
type = "file"
path = "eoc-files"

[[sink]]
name = "air-files"
type = "file"
path = "air-files"

[[route]]
name = "to-eoc"
sinks = ["eoc-files"]

# The SAME header of Extreme alerts, as an ENDEC would get it.
[[sink]]
name = "same-files"
type = "file"
path = "same-files"

[[route]]
name = "to-same"
sinks = ["same-files"]
translation = "same"
match.severity = ["Extreme"]

# Extreme alerts for the air wait for an operator.
[[route]]
name = "to-air"
sinks = ["air-files"]
action = "hold"
match.severity = ["Extreme"]
"""
    path = folder / "borderlink.toml"
    path.write_text(text, encoding="utf-8")
    (folder / "token").write_text(TOKEN + "\n", encoding="utf-8")
    return path


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, within: float = 30.0
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the daemon stopped:\n{log.read_text(errors='replace')}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"{url}/login", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError("the console did not answer in time")


@pytest.fixture(scope="module")
def console_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    folder = tmp_path_factory.mktemp("console")
    users = folder / "users"
    add_account(users, "alice", "operator", PASSWORDS["alice"])
    add_account(users, "victor", "viewer", PASSWORDS["victor"])
    add_account(users, "ada", "admin", PASSWORDS["ada"])
    pki = build_pki()
    (folder / "eoc.key").write_bytes(key_pem(pki.signer_key))
    (folder / "eoc.pem").write_bytes(pem(pki.signer))
    port = free_port()
    with console_process(_config(folder, port, free_port()), folder, port) as daemon:
        yield daemon


@contextlib.contextmanager
def console_process(config: Path, folder: Path, port: int) -> Iterator[ConsoleDaemon]:
    """``borderlink run config`` in ``folder``, once its console answers on ``port``."""
    log = (folder / "daemon.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-json", "run", str(config)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, folder / "daemon.log")
        yield ConsoleDaemon(url, folder, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
