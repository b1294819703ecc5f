"""The file sink through the daemon: an alert published on MQTT lands as complete files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
)
from tests.helpers import Broker

SINKS = (
    '[[sink]]\nname = "eoc-cap"\ntype = "file"\npath = "spool/cap"\n\n'
    '[[sink]]\nname = "eoc-json"\ntype = "file"\nformat = "json"\npath = "spool/json"\n'
)
ROUTES = '[[route]]\nname = "all"\nsinks = ["eoc-cap", "eoc-json"]\n'


async def test_each_alert_once_per_file_sink(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    config = load(daemon_toml(tmp_path, mosquitto.url, sinks=SINKS, routes=ROUTES))
    alerts = [cap(headline=f"file sink {i}") for i in range(3)]
    cap_dir, json_dir = tmp_path / "spool" / "cap", tmp_path / "spool" / "json"
    async with running_daemon(config):
        await publish_all(mosquitto, alerts)

        async def all_written() -> bool:
            return (
                len(list(cap_dir.glob("*.json"))) == 3 and len(list(json_dir.glob("*.json"))) == 3
            )

        await poll_until(all_written)
    written = sorted(p.read_bytes() for p in cap_dir.glob("*.1"))
    assert written == sorted(alerts)
    summaries = {p.name[: -len(".1")]: json.loads(p.read_bytes()) for p in json_dir.glob("*.1")}
    assert sorted(s["alert_key"] for s in summaries.values()) == sorted(
        CapFactory.key_of(a) for a in alerts
    )
    # The summary names the delivery whose files it is in.
    assert all(s["delivery_id"] == ident for ident, s in summaries.items())
    metas = [json.loads(p.read_bytes()) for p in cap_dir.glob("*.json")]
    assert all(m["repeat"] == 1 and m["parts"] == 1 for m in metas)
    assert len({m["delivery_id"] for m in metas}) == 3
    assert not list(cap_dir.glob("*~*"))
