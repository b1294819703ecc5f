"""The adapter contract (gateway/adapter.py, docs/adapters.md): the optional abilities are
Protocols the gateway asks for with isinstance(), and the built-in adapters claim them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.afsk.adapter import AfskAdapter
from adapters.eas.adapter import EndecAdapter
from adapters.file.adapter import FileSink
from adapters.kiss.adapter import KissAdapter
from adapters.mqtt.adapter import MqttAdapter
from adapters.naad.adapter import NaadSource
from adapters.pager.adapter import TapAdapter
from adapters.textmodem.adapter import TextModemAdapter
from gateway.adapter import (
    BatchSends,
    ClosingWatch,
    ConcurrentSends,
    DoorTrust,
    HealthReporting,
    Hearing,
    LineRate,
    MultipleSignatures,
    SinkAdapter,
    SourceAdapter,
    TextProfiled,
)
from gateway.config import load_config
from gateway.daemon import Daemon

ROOT = Path(__file__).resolve().parents[1]

ABILITIES: list[tuple[type, tuple[type, ...]]] = [
    (KissAdapter, (SinkAdapter, Hearing, ClosingWatch, LineRate, TextProfiled)),
    (AfskAdapter, (SinkAdapter, Hearing, LineRate, TextProfiled, HealthReporting)),
    (TextModemAdapter, (SinkAdapter, Hearing, ClosingWatch, LineRate, TextProfiled)),
    (TapAdapter, (SinkAdapter, TextProfiled)),
    (
        MqttAdapter,
        (SinkAdapter, SourceAdapter, ConcurrentSends, BatchSends, ClosingWatch, DoorTrust),
    ),
    (FileSink, (SinkAdapter, ConcurrentSends)),
    (EndecAdapter, (SinkAdapter, SourceAdapter, HealthReporting)),
    (NaadSource, (SourceAdapter, HealthReporting, DoorTrust, MultipleSignatures)),
]


class TestAbilities:
    """Each built-in adapter has the abilities it is known for, as Protocols."""

    @pytest.mark.parametrize(
        ("cls", "abilities"), ABILITIES, ids=[c.__name__ for c, _ in ABILITIES]
    )
    def test_claims(self, cls: type, abilities: tuple[type, ...]) -> None:
        for ability in abilities:
            members = [m for m in dir(ability) if not m.startswith("_")] + (
                ["__aenter__", "__aexit__"] if ability in (SinkAdapter, SourceAdapter) else []
            )
            missing = [m for m in members if not hasattr(cls, m) and m != "name"]
            assert missing == [], f"{cls.__name__} lacks {ability.__name__}: {missing}"

    def test_a_sink_without_them_is_asked_not_guessed(self) -> None:
        class Plain:
            name = "plain"

            async def send(self, item: object) -> None: ...

        plain = Plain()
        for ability in (Hearing, ClosingWatch, ConcurrentSends, BatchSends, LineRate, TextProfiled):
            assert not isinstance(plain, ability)

    def test_the_gateway_does_not_look_for_abilities_by_name(self) -> None:
        pattern = re.compile(
            r"(getattr|hasattr)\([^)]*\"(subscribe|wait_closed|concurrent_sends|line_rate|"
            r"text_profile|send|messages)\""
        )
        found = [
            f"{path.relative_to(ROOT)}:{number}"
            for path in sorted((ROOT / "gateway").rglob("*.py"))
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line)
        ]
        assert found == []


class TestSignaturesByAbility:
    """The CAP library names no adapter: a NAAD source allows two signatures because its
    adapter says so, an IPAWS source does not."""

    def test_policy_follows_the_adapter(self, tmp_path: Path) -> None:
        path = tmp_path / "site.toml"
        path.write_text(
            f'[gateway]\ndata_dir = "{tmp_path}"\n[mqtt]\nenabled = false\n\n'
            '[[source]]\nname = "naad"\ntype = "naad"\nstreams = ["tcp://127.0.0.1:9"]\n\n'
            '[[source]]\nname = "fema"\ntype = "ipaws"\nstate_dir = "."\n',
            encoding="utf-8",
        )
        daemon = Daemon(load_config(path))
        assert daemon.policies["naad"].signature.allow_multiple
        assert not daemon.policies["fema"].signature.allow_multiple


# Where each adapter package's tests live (docs/adapters.md, "Where the tests of an adapter go").
TEST_HOMES = {
    "mqtt": "mqtt",
    "naad": "feeds",
    "ipaws": "feeds",
    "nws": "feeds",
    "feeds": "feeds",
    "atom": "feeds_out",
    "kiss": "radio",
    "pager": "radio",
    "textmodem": "radio",
    "afsk": "radio",
    "ports": "radio",
    "loopback": "radio",
    "eas": "audio",
    "modem": "audio",
    "file": "file",
    "demo": "daemon",
}


class TestEveryAdapterIsTested:
    """Each package of adapters/ has its tests in its one folder of tests/."""

    def test_the_table_names_every_package(self) -> None:
        packages = {
            p.stem if p.is_file() else p.name
            for p in (ROOT / "adapters").iterdir()
            if (p.is_dir() and (p / "__init__.py").exists())
            or (p.suffix == ".py" and p.stem != "__init__")
        }
        assert packages == set(TEST_HOMES)

    @pytest.mark.parametrize(("package", "home"), sorted(TEST_HOMES.items()))
    def test_its_folder_tests_it(self, package: str, home: str) -> None:
        imports = re.compile(rf"\badapters\.{package}\b|from adapters import {package}\b")
        tests = [
            path.name
            for path in sorted((ROOT / "tests" / home).glob("test_*.py"))
            if imports.search(path.read_text(encoding="utf-8"))
        ]
        assert tests, f"no test in tests/{home}/ imports adapters.{package}"
