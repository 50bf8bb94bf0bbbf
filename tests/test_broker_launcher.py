"""`tickbus broker`: the real command in a subprocess, with each engine, on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from broker import ACL_FILE, BrokerAuth, BusClient, MqttSettings
from broker._launcher import (
    LocalBrokerConfig,
    broker_listening,
    mosquitto_config,
    run_local_broker,
)
from tests.support import REPO_ROOT, Proc, Processes, free_port, recorder, unique, wait_until
from tickbus.errors import ConfigError

WARNING = "embedded amqtt broker, which is meant for trying things out"


def broker_cli(*args: str) -> list[str]:
    """The real `tickbus broker` command line."""
    return [sys.executable, "-m", "tickbus", "broker", *args]


def start_broker(procs: Processes, engine: str, port: int) -> Proc:
    proc = procs.start(*broker_cli("--port", str(port), "--engine", engine), name=engine)
    wait_until(
        lambda: broker_listening("127.0.0.1", port) or not proc.alive(),
        timeout=15,
        what=f"{engine} broker on port {port}",
    )
    assert proc.alive(), proc.log()
    return proc


@pytest.fixture(params=["mosquitto", "amqtt"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_relays_a_message_between_two_clients(engine: str, procs: Processes) -> None:
    port = free_port()
    start_broker(procs, engine, port)
    topic = unique("quotes/T")
    with recorder(port, topic) as receiver, recorder(port, unique("unused/")) as sender:
        sender.publish(topic, b'{"GOOG": 345.1}')
        wait_until(lambda: receiver.on(topic), timeout=5, what=f"a message on {topic}")
    assert receiver.on(topic) == [b'{"GOOG": 345.1}']


def test_bus_clients_speak_the_urls_protocol_with_nodelay(engine: str, procs: Processes) -> None:
    port = free_port()
    start_broker(procs, engine, port)
    topic, got = unique("quotes/V"), []
    protocol = "5" if engine == "mosquitto" else "3.1.1"  # amqtt speaks only 3.1.1
    settings = MqttSettings.from_url(f"mqtt://127.0.0.1:{port}?protocol={protocol}")
    client = BusClient(
        settings, component="test", name=unique("v"), on_message=lambda _t, p: got.append(p)
    )
    with client:
        assert client._client.protocol == {"5": 5, "3.1.1": 4}[protocol]
        sock = client._client.socket()  # the one way to see the option actually set
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        client.subscribe([topic])
        wait_until(
            lambda: client.publish(topic, b"x").wait_for_publish(1) or got,
            timeout=5,
            what=f"a message on {topic}",
        )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_with_exit_code_0_on_signal(engine: str, signum: int, procs: Processes) -> None:
    port = free_port()
    proc = start_broker(procs, engine, port)
    proc.signal(signum)
    assert proc.wait(timeout=5) == 0, proc.log()
    assert not broker_listening("127.0.0.1", port)


def test_refuses_a_busy_port(engine: str, procs: Processes) -> None:
    port = free_port()
    first = start_broker(procs, engine, port)
    second = procs.start(*broker_cli("--port", str(port), "--engine", engine), name="second")
    assert second.wait(timeout=15) != 0
    log = second.log()
    assert f"something already listens on 127.0.0.1:{port}" in log
    assert "Traceback" not in log
    assert first.alive()


def test_only_the_embedded_broker_warns_once(engine: str, procs: Processes) -> None:
    proc = start_broker(procs, engine, free_port())
    warnings = [line for line in proc.log().splitlines() if WARNING in line]
    assert len(warnings) == (1 if engine == "amqtt" else 0), proc.log()


def test_auto_prefers_mosquitto_when_installed(procs: Processes) -> None:
    proc = start_broker(procs, "auto", free_port())
    wait_until(lambda: "mosquitto version" in proc.log(), timeout=5, what="mosquitto's banner")
    assert WARNING not in proc.log()


def test_missing_amqtt_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)
    with pytest.raises(ConfigError, match=r"pip install 'tickbus\[embedded-broker\]'"):
        run_local_broker(LocalBrokerConfig(port=free_port(), engine="amqtt"))


@pytest.mark.parametrize("port", [0, 65536])
def test_config_rejects_a_port_out_of_range(port: int) -> None:
    with pytest.raises(ConfigError, match="port must be between 1 and 65535"):
        LocalBrokerConfig(port=port)


def test_mosquitto_config_persists_only_with_a_directory(tmp_path: Path) -> None:
    ephemeral = mosquitto_config(port=1884, bind="127.0.0.1", persistence_dir=None)
    assert "listener 1884 127.0.0.1\n" in ephemeral
    assert "persistence false\n" in ephemeral
    assert "persistence_location" not in ephemeral
    durable = mosquitto_config(port=1884, bind="127.0.0.1", persistence_dir=tmp_path)
    assert "persistence true\n" in durable
    assert f"persistence_location {tmp_path}/\n" in durable
    for text in (ephemeral, durable):
        assert "allow_anonymous true\n" in text
        assert "set_tcp_nodelay true\n" in text
        assert "max_queued_messages 100000\n" in text


@pytest.mark.parametrize("bind", ["", "127.0.0.1 extra", "127.0.0.1\nlistener 1"])
def test_config_rejects_a_bind_that_is_not_one_address(bind: str) -> None:
    with pytest.raises(ConfigError, match="bind must be one address or host name"):
        LocalBrokerConfig(bind=bind)


def test_mosquitto_config_refuses_line_breaks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line breaks"):
        mosquitto_config(port=1884, bind="127.0.0.1", persistence_dir=tmp_path / "a\nuser root")


def test_mosquitto_config_with_auth_refuses_anonymous_clients(tmp_path: Path) -> None:
    auth = BrokerAuth(password_file=tmp_path / "passwords", acl_file=ACL_FILE)
    text = mosquitto_config(port=1884, bind="127.0.0.1", persistence_dir=None, auth=auth)
    assert "allow_anonymous false\n" in text
    assert "allow_anonymous true" not in text
    assert f"password_file {tmp_path}/passwords\n" in text
    assert f"acl_file {ACL_FILE}\n" in text
    # As root, mosquitto would switch to its own account, which cannot read the password file.
    assert ("user root\n" in text) == (os.geteuid() == 0)
    anonymous = mosquitto_config(port=1884, bind="127.0.0.1", persistence_dir=None)
    assert "password_file" not in anonymous
    assert "user " not in anonymous


def test_mosquitto_config_refuses_line_breaks_in_auth_files(tmp_path: Path) -> None:
    auth = BrokerAuth(password_file=tmp_path / "a\nallow_anonymous true", acl_file=ACL_FILE)
    with pytest.raises(ConfigError, match="line breaks"):
        mosquitto_config(port=1884, bind="127.0.0.1", persistence_dir=None, auth=auth)


def test_auth_needs_mosquitto(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--auth needs mosquitto: the embedded amqtt broker"):
        LocalBrokerConfig(engine="amqtt", auth_dir=tmp_path)
    result = subprocess.run(
        broker_cli("--engine", "amqtt", "--auth", str(tmp_path / "creds")),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1
    assert "--auth needs mosquitto: the embedded amqtt broker has no per-role ACLs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "creds").exists()
