"""The README's quick start, run as written against ``make run``'s configuration.

``config/demo.toml`` is copied into a temporary folder with every port moved to a free one;
the daemon runs there as ``make run`` runs it, and each command of the README's "Watch it" and
"Post your own CAP" blocks runs through ``bash`` from that folder, with the same ports moved
the same way, and what it prints is checked. (The loopback section's block is run as written
by ``tests/radio/test_loopback.py``.) ``make smoke`` runs this file alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import CapFactory
from tests.helpers import free_port, require_tool

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Every port the demo listens on or dials (9600 and 1200 are line rates, not ports).
DEMO_PORTS = (1883, 8080, 18080, 18081, 18088, 18090, 18091, 7301, 7302, 7311, 7312, 8001,
              8002, 7401, 7411, 17355)  # fmt: skip


def readme_blocks(heading: str) -> list[list[str]]:
    """The ``sh`` blocks of a README section, each as its commands (continuations joined)."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [
        [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
        for block in blocks
    ]


class Ports:
    """The demo's ports and a free port for each, applied to text the same way everywhere."""

    def __init__(self) -> None:
        self.moved = {port: free_port() for port in DEMO_PORTS}

    def __call__(self, text: str) -> str:
        return re.sub(
            r"(?<![0-9])(" + "|".join(map(str, self.moved)) + r")(?![0-9])",
            lambda m: str(self.moved[int(m.group(1))]),
            text,
        )


class Shell:
    """A README command running in ``bash`` in the demo's folder; its output read as it comes."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            command,
            shell=True,
            executable="/bin/bash",
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, predicate: Callable[[str], bool], within: float = 30.0) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if predicate(self.text):
                return self.text
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        if predicate(self.text):
            return self.text
        msg = f"{self.command!r} did not print what was expected; it printed:\n{self.text}"
        raise AssertionError(msg)

    def finish(self, within: float = 30.0) -> tuple[int, str]:
        code = self.proc.wait(timeout=within)
        self._close()
        return code, self.text

    def _close(self) -> None:
        self._reader.join(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self._close()


class Demo:
    """``make run`` in a temporary folder: the README's commands run from there."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = Ports()
        (folder / "demo.toml").write_text(
            self.ports((ROOT / "config" / "demo.toml").read_text(encoding="utf-8")),
            encoding="utf-8",
        )
        # ``.venv/bin/borderlink`` as the README writes it, from the demo's folder.
        (folder / ".venv").mkdir()
        (folder / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin",
        }
        self.env.pop("BORDERLINK_HTTP__PORT", None)
        self.shells: list[Shell] = []

    def shell(self, command: str) -> Shell:
        command = self.ports(command)
        if re.search(r"borderlink (alerts|watch)\b", command):
            # Their default --url is the demo's port 8080: give them the moved one.
            command += f" --url {self.url('')}"
        shell = Shell(command, self.folder, self.env)
        self.shells.append(shell)
        return shell

    def run(self, command: str, within: float = 60.0) -> str:
        """A command that ends: its output, after checking it ended well."""
        code, text = self.shell(command).finish(within)
        assert code == 0, f"{command!r} exited {code}:\n{text}"
        return text

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.moved[8080]}{path}"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url(path), timeout=5) as answer:
            body: bytes = answer.read()
            return body

    def wait_ready(self, daemon: Shell, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert daemon.proc.poll() is None, f"make run's daemon stopped:\n{daemon.text}"
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.get("/healthz")).get("status") == "ok":
                    return
            time.sleep(0.2)
        msg = f"the demo was not healthy within {within} s:\n{daemon.text}"
        raise AssertionError(msg)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    demo = Demo(tmp_path)
    try:
        yield demo
    finally:
        for shell in reversed(demo.shells):
            shell.stop()


def _in(*words: str) -> Callable[[str], bool]:
    return lambda text: all(word in text for word in words)


class TestQuickStart:
    def test_watch_it_and_post_your_own_cap_as_written(self, demo: Demo) -> None:
        for tool in ("mosquitto_sub", "mosquitto_pub", "curl"):
            require_tool(tool)
        watch_block, post_block = readme_blocks("Quick start")[1:3]
        assert len(watch_block) == 7
        assert len(post_block) == 2
        sub, active, metrics, watch, ca_radio, us_radio, pager = watch_block
        daemon = demo.shell(f"{sys.executable} -m gateway run demo.toml")
        demo.wait_ready(daemon)

        # mosquitto_sub with the operator's generated password sees the demo's traffic.
        subscribed = demo.shell(sub)
        subscribed.wait_for(_in("borderlink/alerts/ca/actual/", "borderlink/us/ipaws/"))
        watching = demo.shell(watch.split("#", 1)[0])
        watching.wait_for(lambda text: len(text.splitlines()) >= 1, within=20)

        # The active alerts, as JSON and (the comment's alternative) as a table.
        answer = json.loads(demo.run(active.split("#", 1)[0]))
        assert any(a["event"] == "tornado" for a in answer["alerts"]), answer
        table = demo.run(active.split("# or:", 1)[1].strip())
        assert "tornado" in table
        assert "Extreme" in table
        assert re.search(
            r"^borderlink_admitted_total\{decision=\"new\"\} [1-9]", demo.run(metrics), re.M
        )

        # The handhelds and the pager display, as the README opens them.
        canadian, american, display = (
            demo.shell(command.split("#", 1)[0]) for command in (ca_radio, us_radio, pager)
        )
        for terminal in (canadian, american, display):
            terminal.wait_for(lambda text: "connected" in text.lower(), within=15)

        # Post your own CAP over HTTP, then the same file over MQTT: one new, one duplicate.
        alert = CapFactory(sender="readme@borderlink.invalid")(
            event="README smoke", severity="Severe", urgency="Immediate"
        )
        (demo.folder / "alert.xml").write_bytes(alert)
        identifier = CapFactory.key_of(alert).split(",")[1]
        posted = json.loads(demo.run(post_block[0]))
        assert posted["decision"] == "new", posted
        subscribed.wait_for(
            _in("borderlink/alerts/us/actual/readme-smoke <?xml", f"<identifier>{identifier}<")
        )
        watching.wait_for(_in("admitted   new       Severe   README smoke: test headline"))
        display.wait_for(_in("README smoke"))
        assert demo.run(post_block[1]) == ""
        daemon.wait_for(
            lambda log: any(
                identifier in line
                and '"decision": "duplicate"' in line
                and '"source": "mqtt"' in line
                for line in log.splitlines()
            ),
            within=10,
        )

        # A line typed on the Canadian handheld reaches the US handheld.
        canadian.type("README SMOKE ON CA-EAST")
        american.wait_for(_in("README SMOKE ON CA-EAST"))
