"""MQTT over TLS with a password and a client certificate, against a real Mosquitto."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker, free_port, require_tool, wait_for_port


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for suffix in (".pem", ".key"):
        path.with_suffix(suffix).chmod(0o644)  # Mosquitto runs as its own user


@contextlib.contextmanager
def tls_mosquitto() -> Iterator[tuple[Broker, int, Path]]:
    """Mosquitto with a TLS listener (password + client certificate required) and a plain
    anonymous listener for the test's own clients."""
    binary = require_tool("mosquitto")
    passwd = require_tool("mosquitto_passwd")
    with tempfile.TemporaryDirectory(prefix="mosq-tls-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert("borderlink test CA", ca_key, None, ca=True)
        _write(d / "ca", ca, ca_key)
        for name, ip in (("server", "127.0.0.1"), ("client", None)):
            key = ec.generate_private_key(ec.SECP256R1())
            _write(d / name, _cert(name, key, (ca.subject, ca_key), ip=ip), key)
        (d / "passwords").write_text("")
        subprocess.run(
            [passwd, "-b", str(d / "passwords"), "gateway", "correct horse"], check=True
        )
        (d / "passwords").chmod(0o644)
        tls_port, plain_port = free_port(), free_port()
        config = d / "mosquitto.conf"
        config.write_text(
            "per_listener_settings true\n"
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {d / 'ca.pem'}\ncertfile {d / 'server.pem'}\nkeyfile {d / 'server.key'}\n"
            "require_certificate true\nallow_anonymous false\n"
            f"password_file {d / 'passwords'}\n"
            f"listener {plain_port} 127.0.0.1\nallow_anonymous true\n"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        broker = Broker("127.0.0.1", plain_port, proc, config)
        try:
            wait_for_port("127.0.0.1", tls_port)
            wait_for_port("127.0.0.1", plain_port)
            yield broker, tls_port, d
        finally:
            broker.stop()


def _tls_config(tmp: Path, port: int, certs: Path, *, password: str, client_cert: bool) -> Path:
    (tmp / "mqtt-password").write_text(password + "\n")
    path = daemon_toml(tmp, f"mqtts://127.0.0.1:{port}")
    cert = (
        f', cert_file = "{certs / "client.pem"}", key_file = "{certs / "client.key"}"'
        if client_cert
        else ""
    )
    path.write_text(
        path.read_text().replace(
            "[mqtt]\n",
            '[mqtt]\nusername = "gateway"\npassword_file = "mqtt-password"\ntimeout = 1\n'
            f'tls = {{ ca_file = "{certs / "ca.pem"}"{cert} }}\n',
        )
    )
    return path


class TestTls:
    """The gateway connects with TLS, a password and a client certificate; without the
    right credentials it does not get in and says why."""

    async def test_tls_password_and_client_certificate(
        self, tmp_path: Path, cap: CapFactory
    ) -> None:
        with tls_mosquitto() as (plain, tls_port, certs):
            config = load(
                _tls_config(tmp_path, tls_port, certs, password="correct horse", client_cert=True)
            )
            alert = cap(severity="Severe")
            async with (
                subscriber(plain, ["out/#"]) as out,
                running_daemon(config),
            ):
                await publish_all(plain, [alert])
                await out.wait_for(lambda: len(out.messages) == 2)
        assert {m.alert_key for m in out.messages} == {CapFactory.key_of(alert)}

    async def test_wrong_credentials_are_refused(self, tmp_path: Path) -> None:
        with tls_mosquitto() as (_plain, tls_port, certs):
            for password, client_cert in (("wrong", True), ("correct horse", False)):
                workdir = tmp_path / f"{password[:5]}-{client_cert}"
                workdir.mkdir()
                path = _tls_config(
                    workdir, tls_port, certs, password=password, client_cert=client_cert
                )
                config = load(path)
                async with running_daemon(config, wait_input=False) as daemon:

                    async def refused() -> bool:
                        return daemon.supervisor.failures.get("out-cap", 0) >= 1

                    await poll_until(refused)
                    sink = daemon.sinks["out-cap"]
                    assert not sink.connected.is_set()  # type: ignore[attr-defined]
                    assert "cannot connect" in daemon.supervisor.last_error["out-cap"]
