"""The one option reader (gateway/options.py): the daemon's sections and every adapter's
options, each error naming the file, the key path and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.errors import ConfigError
from gateway.options import OptionReader, adapter_options


class TestOptionReader:
    """Values are checked by type and range; a bad one names where it is."""

    def test_defaults_and_values(self) -> None:
        r = adapter_options("sink", "radio", {"n": 4, "t": 2.5, "on": True, "u": "https://x/"})
        assert r.integer("n", 1, minimum=1) == 4
        assert r.number("t", 1.0, maximum=3) == 2.5
        assert r.boolean("on", False) is True
        assert r.url("u", "") == "https://x/"
        assert r.string("absent", "dflt") == "dflt"
        r.finish()

    @pytest.mark.parametrize(
        ("options", "read", "message"),
        [
            ({"n": True}, lambda r: r.integer("n", 1), r'sink "radio"\.n: must be an integer'),
            ({"n": 0}, lambda r: r.integer("n", 1, minimum=1), r"n: must be at least 1, got 0"),
            ({"t": "3"}, lambda r: r.number("t", 1.0), r"t: must be a number, got '3'"),
            ({"on": 1}, lambda r: r.boolean("on", False), r"on: must be true or false"),
            ({"u": "ftp://x"}, lambda r: r.url("u", ""), r"u: must be a http or https URL"),
            ({}, lambda r: r.url("u", ""), r"u: is required"),
            ({"m": "x"}, lambda r: r.string("m", "a", choices=("a", "b")), r"allowed: a, b"),
        ],
    )
    def test_a_bad_value_names_the_key_path(
        self, options: dict[str, object], read: object, message: str
    ) -> None:
        r = adapter_options("sink", "radio", options)
        with pytest.raises(ConfigError, match=message) as caught:
            read(r)  # type: ignore[operator]
        assert caught.value.place is not None
        assert caught.value.place.startswith('sink "radio".')

    def test_unknown_keys_are_refused_with_what_is_allowed(self) -> None:
        r = adapter_options("source", "east", {"port": "x", "policy": "hold"})
        r.string("port", "")
        r.finish(allowed_extra=("policy",))  # the daemon's keys pass
        r = adapter_options("source", "east", {"port": "x", "bogus": 1})
        r.string("port", "")
        allowed = r'^source "east": unknown key\(s\) bogus; allowed: port$'
        with pytest.raises(ConfigError, match=allowed):
            r.finish()

    def test_sub_tables_extend_the_key_path(self) -> None:
        r = adapter_options("sink", "bus", {"tls": {"ca_file": 5}})
        with pytest.raises(ConfigError, match=r'^sink "bus"\.tls\.ca_file: must be a string'):
            r.sub("tls").string("ca_file", None)

    def test_the_file_is_named_when_known(self, tmp_path: Path) -> None:
        config = tmp_path / "site.toml"
        r = OptionReader(str(config), 'sink "radio"', {"n": "x"})
        with pytest.raises(ConfigError) as caught:
            r.integer("n", 1)
        assert str(caught.value) == f"{config}: sink \"radio\".n: must be an integer, got 'x'"
        assert caught.value.file == str(config)


class TestThroughTheDaemon:
    """Building the daemon from a file, an adapter's bad option is named by file and key path,
    whichever side (source or sink) the table is."""

    @pytest.mark.parametrize(
        ("table", "expected"),
        [
            (
                '[[sink]]\nname = "spool"\ntype = "file"\npath = "out"\nfolder = "x"\n',
                'sink "spool": unknown key(s) folder; allowed: path',
            ),
            (
                '[[source]]\nname = "radio-in"\ntype = "endec"\nport = "socket://127.0.0.1:9"\n'
                'output = "xml"\n',
                "source \"radio-in\".output: 'xml' is not allowed; allowed: cap, same",
            ),
        ],
    )
    def test_the_error_names_file_and_key_path(
        self, tmp_path: Path, table: str, expected: str
    ) -> None:
        path = tmp_path / "site.toml"
        path.write_text(
            f'[gateway]\ndata_dir = "{tmp_path}"\n[mqtt]\nenabled = false\n\n{table}',
            encoding="utf-8",
        )
        with pytest.raises(ConfigError) as caught:
            Daemon(load_config(path))
        assert str(caught.value) == f"{path}: {expected}"
