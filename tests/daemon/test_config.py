"""Configuration: TOML into frozen dataclasses; errors name file, key path and what is allowed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.assembly import check_names
from gateway.config import apply_env_overrides, load_config
from gateway.errors import ConfigError
from tests.daemon.conftest import ROOT

BASE = """
[mqtt]
broker = "mqtt://127.0.0.1:1883"

[[sink]]
name = "out"
type = "mqtt"
topic = "x/{key}"

[[route]]
name = "r"
sinks = ["out"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        check_names(load_config(path, environ=env or {}))
    message = str(info.value)
    assert str(path) in message
    return message


class TestLoading:
    """Valid files load into frozen dataclasses with the documented defaults."""

    def test_demo_config_loads(self) -> None:
        config = load_config(ROOT / "config" / "demo.toml", environ={})
        assert config.mqtt.embedded
        assert config.http.port == 8080
        sinks = {s.name: s for s in config.sinks}
        assert sinks["mqtt-json"].format == "json"
        # The demo shows both countries' feeds, both translations, radio and the ENDEC.
        assert {"mqtt-cap", "mqtt-us-ipaws", "mqtt-ca-capcp", "aprs", "pager", "endec-sim"} <= set(
            sinks
        )
        assert {s.type for s in config.sources} >= {"demo", "naad", "ipaws", "nws"}
        simulators = {s.type for s in config.simulators}
        assert simulators == {"naad", "ipaws", "nws", "rf-channel", "endec"}
        translations = {r.translation for r in config.routes}
        assert translations >= {"identity", "ipaws", "cap-cp", "text", "same"}
        assert config.links
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.http.port = 1  # type: ignore[misc]

    def test_example_configs_load(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BORDERLINK_MQTT_PASSWORD", "secret")
        monkeypatch.setenv("BORDERLINK_API_TOKEN", "0123456789abcdef0123")
        (tmp_path / "tokens").write_text("0123456789abcdef0123\n")
        examples = sorted((ROOT / "config").glob("example-*.toml"))
        assert len(examples) >= 2
        for path in examples:
            # Deployment paths of secrets are pointed at a file of the test.
            text = path.read_text().replace("/etc/borderlink/api-tokens", "tokens")
            config = load_config(write(tmp_path, text), environ={})
            assert config.routes
            assert config.sinks

    def test_defaults_and_adapter_options_kept(self, tmp_path: Path) -> None:
        config = load_config(write(tmp_path, BASE), environ={})
        sink = config.sinks[0]
        assert sink.live is False
        assert dict(sink.options) == {"topic": "x/{key}"}
        assert config.routes[0].translation == "identity"
        assert config.routes[0].sources is None
        assert config.ledger.dedup_floor_days == 7.0

    def test_links_are_kept_raw(self, tmp_path: Path) -> None:
        text = BASE + '\n[[link]]\nname = "east"\nfrom = ["a"]\nanything = {x = 1}\n'
        config = load_config(write(tmp_path, text), environ={})
        assert dict(config.links[0]) == {"name": "east", "from": ["a"], "anything": {"x": 1}}


class TestErrors:
    """Every refusal names the file, the key path and what is allowed."""

    def test_unknown_section(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE + "\n[bogus]\nx = 1\n")
        assert "bogus" in message
        assert "allowed: gateway, mqtt" in message

    def test_shared_group_needs_an_external_mqtt5_broker(self, tmp_path: Path) -> None:
        embedded = BASE.replace('broker = "mqtt://127.0.0.1:1883"', 'shared_group = "eoc"')
        message = refused(tmp_path, embedded)
        assert "mqtt.shared_group" in message
        assert "external MQTT 5 broker" in message
        text = BASE.replace("[mqtt]\n", '[mqtt]\nshared_group = "eoc"\n', 1)
        assert load_config(write(tmp_path, text), environ={}).mqtt.shared_group == "eoc"

    def test_unknown_key(self, tmp_path: Path) -> None:
        message = refused(tmp_path, "[http]\nprot = 1\n" + BASE)
        assert "http: unknown key(s) prot" in message
        assert "port" in message

    def test_bad_enum_value_in_route_filter(self, tmp_path: Path) -> None:
        text = BASE + '[route.match]\nseverity = ["Huge"]\n'
        message = refused(tmp_path, text)
        assert 'route #1 "r".match.severity' in message
        assert "Extreme, Severe, Moderate, Minor, Unknown" in message

    def test_filter_values_are_case_insensitive(self, tmp_path: Path) -> None:
        text = BASE + '[route.match]\nseverity = ["extreme"]\nstatus = ["actual"]\n'
        config = load_config(write(tmp_path, text), environ={})
        assert config.routes[0].match.severity == ("Extreme",)
        assert config.routes[0].match.status == ("Actual",)

    def test_route_names_undefined_sink(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE.replace('sinks = ["out"]', 'sinks = ["nope"]'))
        assert 'route #1 "r".sinks' in message
        assert "'nope'" in message
        assert "defined: out" in message
        sinkless = BASE.partition("[[sink]]")[0] + '[[route]]\nname = "r"\nsinks = ["out"]\n'
        message = refused(tmp_path, sinkless)
        assert "no sink named 'out'; the file defines no [[sink]]" in message

    def test_unknown_adapter_type(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE.replace('type = "mqtt"', 'type = "carrier-pigeon"'))
        assert 'sink #1 "out".type' in message
        assert "allowed:" in message
        assert "mqtt" in message

    def test_unknown_translation(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE + 'translation = "klingon"\n')
        assert 'route #1 "r".translation' in message
        assert "identity" in message

    def test_unknown_simulator(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE + '\n[[simulator]]\ntype = "weather-machine"\n')
        assert "simulator #1" in message
        assert "naad" in message

    def test_bad_broker(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE.replace("mqtt://127.0.0.1:1883", "http://x"))
        assert "mqtt.broker" in message
        assert '"embedded"' in message

    def test_wrong_type(self, tmp_path: Path) -> None:
        message = refused(tmp_path, '[http]\nport = "eighty"\n' + BASE)
        assert "http.port: must be an integer" in message

    def test_duplicate_names(self, tmp_path: Path) -> None:
        text = BASE + '\n[[sink]]\nname = "out"\ntype = "mqtt"\n'
        assert 'sink #2 "out".name: is used twice' in refused(tmp_path, text)

    def test_reserved_source_name(self, tmp_path: Path) -> None:
        text = BASE + '\n[[source]]\nname = "mqtt"\ntype = "demo"\n'
        assert "reserved" in refused(tmp_path, text)

    def test_bad_region(self, tmp_path: Path) -> None:
        text = BASE + "[route.match]\nregion = { polygon = [[1, 2], [3]] }\n"
        message = refused(tmp_path, text)
        assert 'route #1 "r".match.regions[0].polygon' in message

    def test_not_toml(self, tmp_path: Path) -> None:
        assert "not valid TOML" in refused(tmp_path, "[[[")


class TestSecrets:
    """Secrets come from files or the environment, never inline."""

    def test_inline_password_refused(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE.replace("[mqtt]\n", '[mqtt]\npassword = "hunter2"\n'))
        assert "mqtt.password" in message
        assert "password_file" in message

    def test_password_from_file_and_env(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "pw").write_text("s3cret\n")
        text = BASE.replace("[mqtt]\n", '[mqtt]\nusername = "gw"\npassword_file = "pw"\n')
        config = load_config(write(tmp_path, text), environ={})
        assert config.mqtt.password == "s3cret"
        assert "s3cret" not in repr(config.mqtt)
        monkeypatch.setenv("BORDERLINK_MQTT_PW", "from-env")
        text = BASE.replace("[mqtt]\n", '[mqtt]\npassword_env = "BORDERLINK_MQTT_PW"\n')
        config = load_config(write(tmp_path, text))
        assert config.mqtt.password == "from-env"
        monkeypatch.delenv("BORDERLINK_MQTT_PW")
        assert "BORDERLINK_MQTT_PW is not set" in refused(tmp_path, text)

    def test_missing_secret_file(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE.replace("[mqtt]\n", '[mqtt]\npassword_file = "nope"\n'))
        assert "mqtt.password_file" in message

    def test_tokens(self, tmp_path: Path) -> None:
        (tmp_path / "tokens").write_text("# api\n" + "a" * 20 + "\n" + "b" * 20 + "\n")
        config = load_config(
            write(tmp_path, '[http]\ntokens_file = "tokens"\n' + BASE), environ={}
        )
        assert config.http.tokens == ("a" * 20, "b" * 20)
        (tmp_path / "short").write_text("abc\n")
        message = refused(tmp_path, '[http]\ntoken_file = "short"\n' + BASE)
        assert "at least 16" in message


class TestEnvironment:
    """BORDERLINK_* variables override the file."""

    def test_section_override(self, tmp_path: Path) -> None:
        config = load_config(
            write(tmp_path, BASE),
            environ={"BORDERLINK_HTTP__PORT": "9090", "BORDERLINK_MQTT__PREFIX": "gw1"},
        )
        assert config.http.port == 9090
        assert config.mqtt.prefix == "gw1"

    def test_named_sink_override(self, tmp_path: Path) -> None:
        config = load_config(
            write(tmp_path, BASE), environ={"BORDERLINK_SINK__OUT__LIVE": "true"}
        )
        assert config.sinks[0].live is True

    def test_bad_override_is_named(self, tmp_path: Path) -> None:
        message = refused(tmp_path, BASE, env={"BORDERLINK_HTTP__PORT": "x"})
        assert "http.port" in message
        with pytest.raises(ConfigError, match="BORDERLINK_NOPE__X"):
            apply_env_overrides({}, {"BORDERLINK_NOPE__X": "1"})
        with pytest.raises(ConfigError, match="no \\[\\[sink\\]\\] named"):
            apply_env_overrides({}, {"BORDERLINK_SINK__GHOST__LIVE": "true"})


class TestCheckConfigCommand:
    """``borderlink check-config`` exits 0 on a good file and 2 with the reason on a bad one."""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "check-config", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )

    def test_good_and_bad(self, tmp_path: Path) -> None:
        good = self.run(str(ROOT / "config" / "demo.toml"))
        assert good.returncode == 0, good.stderr
        assert "ok" in good.stdout
        bad_path = write(tmp_path, BASE.replace("x/{key}", "x/{nope}"))
        bad = self.run(str(bad_path))
        assert bad.returncode == 2
        assert "unknown placeholder {nope}" in bad.stderr


class TestErrorsPointToTheirPlace:
    """An error names what the user wrote: the route by place and name, the environment
    variable that set a bad value, the key a short token came from."""

    def test_tables_by_place_and_name(self, tmp_path: Path) -> None:
        text = BASE + '\n[[route]]\nname = "second"\nsinks = ["nope"]\n'
        assert 'route #2 "second".sinks' in refused(tmp_path, text)
        unnamed = BASE + '\n[[route]]\nsinks = ["out"]\naction = "shout"\n'
        assert "route #2.action" in refused(tmp_path, unnamed)

    def test_environment_variable_is_named(self, tmp_path: Path) -> None:
        path = write(tmp_path, BASE)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={"BORDERLINK_HTTP__PORT": "abc"})
        message = str(info.value)
        assert message.startswith(f"environment BORDERLINK_HTTP__PORT (http.port of {path}):")
        expected = r'environment BORDERLINK_SINK__OUT__LIVE \(sink #1 "out"\.live'
        with pytest.raises(ConfigError, match=expected):
            load_config(path, environ={"BORDERLINK_SINK__OUT__LIVE": '"maybe"'})

    def test_short_token_names_its_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GW_TOKEN", "short")
        text = BASE + '\n[http]\ntoken_env = "GW_TOKEN"\n'
        with pytest.raises(ConfigError, match=r"http\.token_env: every API token"):
            load_config(write(tmp_path, text), environ={})
