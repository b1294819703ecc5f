"""The worked example of docs/adapters.md, built and run: a new feed (a spool folder) written
from scratch, registered by name, configured in a file and run through the daemon to a sink."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import adapter
from gateway.daemon import Daemon
from gateway.errors import ConfigError
from gateway.metrics import INPUT_REJECTED
from tests.daemon.conftest import CapFactory, daemon_toml, load, poll_until, running_daemon
from tests.feeds.example_spool.codec import Entry, Spool
from tests.helpers import Broker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path(__file__).with_name("example_spool")

SINK = '[[sink]]\nname = "eoc"\ntype = "file"\npath = "out"\n'
ROUTE = '[[route]]\nname = "spooled"\nsources = ["partner-drop"]\nsinks = ["eoc"]\n'


def source(folder: Path, **extra: str) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return (
        f'[[source]]\nname = "partner-drop"\ntype = "spool"\nfolder = "{folder}"\n'
        f"interval = 0.1\n{lines}"
    )


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the entry point of an installed package does, done in-process for the test."""
    monkeypatch.setitem(adapter.REGISTRY, "spool", "tests.feeds.example_spool.adapter:from_context")


class TestSpoolCodec:
    """A file is new once, and again only when it changed."""

    def test_new_files(self) -> None:
        spool = Spool("*.xml")
        first = [Entry("b.xml", 10, 1), Entry("a.xml", 5, 1), Entry("notes.txt", 3, 1)]
        assert [e.name for e in spool.new(first)] == ["a.xml", "b.xml"]
        assert spool.new(first) == []
        assert [e.name for e in spool.new([Entry("a.xml", 6, 2)])] == ["a.xml"]


@pytest.mark.usefixtures("registered")
class TestSpoolThroughTheDaemon:
    """Dropped alerts reach the sink once; a bad option or an oversize file is named."""

    async def test_dropped_alerts_reach_the_sink_once(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        drop = tmp_path / "drop"
        drop.mkdir()
        cap = CapFactory()
        alerts = [cap(headline=f"dropped {i}") for i in range(2)]
        extra = source(drop, max_bytes=str(64 * 1024))
        config = load(daemon_toml(tmp_path, mosquitto.url, sinks=SINK, routes=ROUTE, extra=extra))
        out = tmp_path / "out"
        before = INPUT_REJECTED.value(component="spool", reason="oversize")
        async with running_daemon(config):
            for i, alert in enumerate(alerts):
                (drop / f"alert-{i}.xml").write_bytes(alert)
            (drop / "huge.xml").write_bytes(b"<alert>" + b" " * 70_000 + b"</alert>")

            async def delivered() -> bool:
                return len(list(out.glob("*.1"))) == 2

            await poll_until(delivered)
        assert sorted(p.read_bytes() for p in out.glob("*.1")) == sorted(alerts)
        assert INPUT_REJECTED.value(component="spool", reason="oversize") == before + 1

    def test_a_bad_option_names_file_and_key(self, mosquitto: Broker, tmp_path: Path) -> None:
        extra = source(tmp_path, interval_s="1")
        path = daemon_toml(tmp_path, mosquitto.url, sinks=SINK, routes=ROUTE, extra=extra)
        with pytest.raises(ConfigError) as caught:
            Daemon(load(path))
        assert str(caught.value).startswith(
            f'{path}: source "partner-drop": unknown key(s) interval_s; allowed: folder,'
        )


class TestTheGuideShowsThisCode:
    """docs/adapters.md quotes the example's files whole: the guide stays true."""

    @pytest.mark.parametrize("name", ["codec.py", "adapter.py"])
    def test_quoted_whole(self, name: str) -> None:
        guide = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
        blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
        assert (EXAMPLE / name).read_text(encoding="utf-8") in blocks
