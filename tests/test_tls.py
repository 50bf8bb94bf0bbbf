"""MQTT over TLS (``mqtts://`` with ``--mqtt-ca``) against a real mosquitto with a TLS listener.

The CAs and the broker's certificate are made here with the openssl CLI: a
CA that signed the broker's certificate (for IP 127.0.0.1 only), and another
CA that did not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker import BusClient, MqttSettings
from tests.support import REPO_ROOT, Proc, Processes, free_port, unique, wait_until
from tickbus.errors import ConfigError

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA: `name`.pem and `name`.key in `directory`."""
    openssl(
        "req", "-x509", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=tickbus test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


def make_server_cert(directory: Path, ca: str) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 (and no host name), signed by `ca`."""
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl(
        "req", *EC_KEY, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    return directory / "server.pem", directory / "server.key"


@dataclass(frozen=True)
class TlsBroker:
    """mosquitto with one TLS listener on 127.0.0.1:`port` (anonymous access)."""

    port: int
    ca: Path
    other_ca: Path

    def settings(self, ca: Path | None, host: str = "127.0.0.1") -> MqttSettings:
        return MqttSettings(host=host, port=self.port, tls=True, ca_file=ca)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    if not Path(OPENSSL).exists():
        pytest.fail("the openssl CLI is not installed")
    directory = tmp_path_factory.mktemp("tls")
    ca, other_ca = make_ca(directory, "ca"), make_ca(directory, "other-ca")
    cert, key = make_server_cert(directory, "ca")
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
        "allow_anonymous true\npersistence false\n" + ("user root\n" if os.geteuid() == 0 else "")
        # As root, stay root: tmp_path is private to this user.
    )
    proc = Proc([MOSQUITTO, "-c", str(conf)], directory / "mosquitto.log")
    try:
        wait_until(
            lambda: " running" in proc.log() or not proc.alive(),
            timeout=30,
            what=f"mosquitto with TLS on port {port}",
        )
        assert proc.alive(), proc.log()
        yield TlsBroker(port=port, ca=ca, other_ca=other_ca)
    finally:
        proc.stop()


def test_mqtts_with_the_ca_file_carries_messages(tls_broker: TlsBroker) -> None:
    topic, got = unique("quotes/T"), []
    client = BusClient(
        tls_broker.settings(tls_broker.ca),
        component="test",
        name=unique("tls"),
        on_message=lambda _topic, payload: got.append(payload),
    )
    with client:
        assert client._client.socket().version() in ("TLSv1.2", "TLSv1.3")
        client.subscribe([topic])
        wait_until(
            lambda: client.publish(topic, b"x").wait_for_publish(2) or got,
            timeout=30,
            what=f"a message on {topic} over TLS",
        )


def test_the_cli_connects_with_mqtts_and_mqtt_ca(tls_broker: TlsBroker, procs: Processes) -> None:
    sid, got = unique("T").upper(), []
    reader = BusClient(
        tls_broker.settings(tls_broker.ca),
        component="test",
        name=unique("tls"),
        on_message=lambda _topic, payload: got.append(payload),
        announce=False,
    )
    with reader:
        reader.subscribe([f"quotes/{sid}"])
        url = f"mqtts://127.0.0.1:{tls_broker.port}"
        procs.tickbus(
            "feed", "synthetic", "--mqtt", url, "--mqtt-ca", str(tls_broker.ca),
            "--symbols", sid, "--rate", "20", name="feed",
        )  # fmt: skip
        wait_until(lambda: got, timeout=60, what=f"quotes/{sid} from a feed over TLS")


def test_a_different_ca_fails_at_once_naming_the_ca_file(tls_broker: TlsBroker) -> None:
    started = time.monotonic()
    settings = tls_broker.settings(tls_broker.other_ca)
    with (
        pytest.raises(ConfigError) as info,
        BusClient(settings, component="test", name="wrong-ca", connect_timeout=60),
    ):
        pass
    assert time.monotonic() - started < 30, "a certificate that fails must not wait for the timeout"
    assert info.value.reason == (
        f"cannot connect to the MQTT broker at mqtts://127.0.0.1:{tls_broker.port}: the broker's "
        f"TLS certificate could not be verified with the CA file {tls_broker.other_ca}: "
        "unable to get local issuer certificate"
    )


def test_a_different_ca_fails_in_the_cli_too(tls_broker: TlsBroker) -> None:
    url = f"mqtts://127.0.0.1:{tls_broker.port}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickbus",
            "view",
            "--mqtt",
            url,
            "--mqtt-ca",
            str(tls_broker.other_ca),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1
    assert "the broker's TLS certificate could not be verified with the CA file" in result.stderr
    assert str(tls_broker.other_ca) in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_ca_file_the_system_cas_are_trusted_and_say_so(tls_broker: TlsBroker) -> None:
    with (
        pytest.raises(ConfigError) as info,
        BusClient(tls_broker.settings(None), component="test", name="system-cas"),
    ):
        pass
    assert "could not be verified with the system's trusted CAs" in info.value.reason
    assert "--mqtt-ca FILE" in info.value.reason


def test_a_host_name_the_certificate_does_not_name_fails(tls_broker: TlsBroker) -> None:
    settings = tls_broker.settings(tls_broker.ca, host="localhost")
    with pytest.raises(ConfigError) as info, BusClient(settings, component="test", name="host"):
        pass
    assert f"could not be verified with the CA file {tls_broker.ca}" in info.value.reason
    assert "Hostname mismatch" in info.value.reason


def test_a_tls_client_on_a_plain_listener_is_told_so(mosquitto_port: int) -> None:
    settings = MqttSettings(host="127.0.0.1", port=mosquitto_port, tls=True)
    with (
        pytest.raises(ConfigError) as info,
        BusClient(settings, component="test", name="plain", connect_timeout=3),
    ):
        pass
    assert f"the MQTT broker at mqtts://127.0.0.1:{mosquitto_port}" in info.value.reason
    assert "is this port a TLS listener?" in info.value.reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read the CA file {path}: No such file or directory"),
        ("not a certificate\n", "the CA file {path} holds no usable PEM certificate"),
    ],
    ids=["missing", "not-pem"],
)
def test_an_unusable_ca_file_is_named(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    settings = MqttSettings(host="127.0.0.1", port=8883, tls=True, ca_file=path)
    with pytest.raises(ConfigError) as info:
        BusClient(settings, component="test", name="bad-ca")
    assert info.value.reason.startswith(reason.format(path=path))
