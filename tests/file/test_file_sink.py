"""The file sink on its own: complete files only, repeats beside the first, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.file.adapter import FileSink, from_context
from gateway.adapter import AdapterContext, Outbound
from gateway.errors import ConfigError, DeliveryError


def _item(delivery_id: str = "abc123", parts: tuple[bytes, ...] = (b"<alert/>",)) -> Outbound:
    return Outbound(
        key=None,
        sink="eoc",
        parts=parts,
        content_type="application/cap+xml",
        attributes={"delivery_id": delivery_id, "status": "Actual"},
    )


async def test_writes_parts_then_attributes(tmp_path: Path) -> None:
    async with FileSink("eoc", tmp_path / "spool") as sink:
        await sink.send(_item(parts=(b"one", b"two")))
    spool = tmp_path / "spool"
    assert (spool / "abc123.1").read_bytes() == b"one"
    assert (spool / "abc123.2").read_bytes() == b"two"
    meta = json.loads((spool / "abc123.json").read_text(encoding="utf-8"))
    assert meta["delivery_id"] == "abc123"
    assert meta["parts"] == 2
    assert meta["repeat"] == 1
    assert meta["attributes"]["status"] == "Actual"
    assert meta["content_type"] == "application/cap+xml"
    # No temporary file is left for a reader to trip on.
    assert sorted(p.name for p in spool.iterdir()) == ["abc123.1", "abc123.2", "abc123.json"]


async def test_a_repeat_is_written_beside_the_first(tmp_path: Path) -> None:
    async with FileSink("eoc", tmp_path) as sink:
        await sink.send(_item(parts=(b"first",)))
        await sink.send(_item(parts=(b"again",)))
        await sink.send(_item(parts=(b"third",)))
    assert (tmp_path / "abc123.1").read_bytes() == b"first"
    assert json.loads((tmp_path / "abc123~2.json").read_text(encoding="utf-8"))["repeat"] == 2
    assert json.loads((tmp_path / "abc123~3.json").read_text(encoding="utf-8"))["repeat"] == 3


async def test_hostile_delivery_id_stays_inside_the_directory(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    async with FileSink("eoc", spool) as sink:
        await sink.send(_item(delivery_id="../../etc/passwd"))
    assert not (tmp_path / "etc").exists()
    names = [p.name for p in spool.iterdir()]
    assert names
    assert all("/" not in n for n in names)
    assert {p.parent for p in spool.iterdir()} == {spool}


async def test_a_write_that_fails_is_a_delivery_error(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    async with FileSink("eoc", spool) as sink:
        spool.rmdir()
        spool.write_text("not a directory", encoding="utf-8")
        with pytest.raises(DeliveryError, match="file sink eoc: cannot write abc123"):
            await sink.send(_item())


async def test_a_directory_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="file sink 'eoc': cannot use"):
        async with FileSink("eoc", blocker / "spool"):
            pass


def test_relative_path_is_beside_the_configuration(tmp_path: Path) -> None:
    ctx = AdapterContext(
        name="eoc", options={"path": "spool"}, config_path=str(tmp_path / "borderlink.toml")
    )
    assert from_context(ctx).directory == tmp_path / "spool"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r'^sink "eoc"\.path: is required'),
        ({"path": ""}, r'^sink "eoc"\.path: is required'),
        ({"path": 3}, r'^sink "eoc"\.path: must be a string, got an integer'),
        ({"path": "x", "dir": "y"}, r'^sink "eoc": unknown key\(s\) dir; allowed: path$'),
    ],
)
def test_bad_options_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_context(AdapterContext(name="eoc", options=options))
