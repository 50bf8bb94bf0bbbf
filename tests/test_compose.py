"""docker-compose.yml and broker/mosquitto.conf, checked without a Docker engine.

The compose file is validated against the Compose Specification's schema and
against the repository (services, mounted files, the real CLI); the broker
config is loaded by a real mosquitto on free ports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import REPO_ROOT, Proc, Processes, free_port, recorder, unique, wait_until

COMPOSE_SPEC = Path(__file__).parents[2] / "shared" / "compose-spec.json"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
MOSQUITTO_CONF = REPO_ROOT / "broker" / "mosquitto.conf"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

BROKER_SERVICE = "mosquitto"
PYTHON_SERVICES = (
    "feed",
    "execution",
    "algo-random",
    "algo-sma",
    "bridge-random",
    "bridge-sma",
    "view",
)
PYTHON_IMAGE = "tickbus:dev"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency name -> condition, for both the list and the mapping forms."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def test_compose_file_follows_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SPEC.read_text())
    # Its "$schema" URL is not one jsonschema recognises, so name the draft here.
    assert "draft-07" in schema["$schema"]
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert errors == []


def test_services_are_the_whole_stack(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {BROKER_SERVICE, *PYTHON_SERVICES}


def test_every_dependency_is_a_defined_service(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert set(depends_on(service)) <= set(services), name


def test_bind_mounted_host_paths_exist_in_the_repo(services: dict[str, dict[str, Any]]) -> None:
    mounts = 0
    for service in services.values():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":", 1)[0]
            elif volume.get("type") == "bind":
                source = volume["source"]
            else:
                continue
            if source.startswith((".", "/")):  # anything else is a named volume
                mounts += 1
                host_path = (REPO_ROOT / source).resolve()
                assert host_path.exists(), f"{source} does not exist"
                assert host_path.is_relative_to(REPO_ROOT), f"{source} is outside the repo"
    assert mounts > 0


def test_python_services_share_one_image_and_wait_for_the_broker(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in PYTHON_SERVICES:
        service = services[name]
        assert service["build"] == ".", name
        assert service["image"] == PYTHON_IMAGE, name
        assert service["restart"] == "unless-stopped", name
        assert depends_on(service)[BROKER_SERVICE] == "service_healthy", name


def test_commands_are_tickbus_in_exec_form(services: dict[str, dict[str, Any]]) -> None:
    for name in PYTHON_SERVICES:
        command = services[name]["command"]
        assert isinstance(command, list), f"{name}: use the list form"
        assert all(isinstance(arg, str) for arg in command), name
        assert command[0] == "tickbus", name


def test_mqtt_urls_name_the_broker_service(services: dict[str, dict[str, Any]]) -> None:
    for name in PYTHON_SERVICES:
        command = services[name]["command"]
        if "--mqtt" in command:
            assert urlsplit(option(command, "--mqtt")).hostname == BROKER_SERVICE, name


def test_bridges_reach_an_algorithm_they_wait_for(services: dict[str, dict[str, Any]]) -> None:
    bridges = [name for name in PYTHON_SERVICES if "--rpc" in services[name]["command"]]
    assert bridges == ["bridge-random", "bridge-sma"]
    for name in bridges:
        rpc = urlsplit(option(services[name]["command"], "--rpc"))
        assert depends_on(services[name]).get(str(rpc.hostname)) == "service_started", name
        algo_addr = urlsplit(option(services[str(rpc.hostname)]["command"], "--addr"))
        assert algo_addr.port == rpc.port, name


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_command_is_accepted_by_the_real_cli(
    name: str, services: dict[str, dict[str, Any]]
) -> None:
    command = services[name]["command"]
    result = subprocess.run(
        [sys.executable, "-m", "tickbus", *command[1:], "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass(frozen=True)
class ComposeBroker:
    """A real mosquitto running broker/mosquitto.conf with its ports moved."""

    mqtt_port: int
    ws_port: int | None
    ws_missing_reason: str = ""


def compose_conf_on_free_ports(tmp_path: Path, mqtt_port: int, ws_port: int | None) -> Path:
    """broker/mosquitto.conf on free 127.0.0.1 ports, persisting to tmp; no ws without ws_port."""
    replacements = {
        r"^listener 1883$": f"listener {mqtt_port} 127.0.0.1",
        r"^listener 9001$": f"listener {ws_port} 127.0.0.1" if ws_port else "",
        r"^persistence_location .*$": f"persistence_location {tmp_path}/",
    }
    if ws_port is None:
        replacements[r"^protocol websockets$"] = ""
    text = MOSQUITTO_CONF.read_text()
    for pattern, replacement in replacements.items():
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{pattern!r} should match exactly one line of {MOSQUITTO_CONF}"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    return conf


def start_mosquitto(procs: Processes, conf: Path) -> Proc:
    """Start mosquitto on `conf`; returns once it runs or has exited."""
    proc = procs.start(MOSQUITTO, "-c", str(conf), name="compose-mosquitto")
    wait_until(
        lambda: not proc.alive() or " running" in proc.log(),
        timeout=10,
        what=f"mosquitto on {conf}",
    )
    return proc


@pytest.fixture
def compose_broker(tmp_path: Path, procs: Processes) -> Iterator[ComposeBroker]:
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed; .ci/run installs it with apt-get")
    mqtt_port, ws_port = free_port(), free_port()
    proc = start_mosquitto(procs, compose_conf_on_free_ports(tmp_path, mqtt_port, ws_port))
    if proc.alive():
        yield ComposeBroker(mqtt_port=mqtt_port, ws_port=ws_port)
        return
    if "websockets support not available" not in proc.log().lower():
        pytest.fail(f"mosquitto rejected {MOSQUITTO_CONF}:\n{proc.log()}")
    # This mosquitto build lacks websockets; check everything else without that listener.
    reason = f"{MOSQUITTO} was built without websockets support"
    proc = start_mosquitto(procs, compose_conf_on_free_ports(tmp_path, mqtt_port, None))
    assert proc.alive(), proc.log()
    yield ComposeBroker(mqtt_port=mqtt_port, ws_port=None, ws_missing_reason=reason)


def test_mosquitto_conf_serves_mqtt(compose_broker: ComposeBroker) -> None:
    topic = unique("quotes/C")
    with recorder(compose_broker.mqtt_port, topic) as rec:
        rec.publish(topic, b'{"AAPL": 190.5}')
        wait_until(lambda: rec.on(topic), timeout=5, what=f"a message on {topic}")


def test_mosquitto_conf_serves_mqtt_over_websockets(compose_broker: ComposeBroker) -> None:
    if compose_broker.ws_port is None:
        pytest.skip(compose_broker.ws_missing_reason)
    topic = unique("quotes/W")
    subscribed, received = threading.Event(), threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=unique("ws-"), transport="websockets"
    )
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda *_: received.set()
    client.connect("127.0.0.1", compose_broker.ws_port)
    client.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK over websockets within 10 s"
        with recorder(compose_broker.mqtt_port, unique("unused/")) as sender:
            sender.publish(topic, b'{"MSFT": 410.2}')
        assert received.wait(5), "the message did not arrive over websockets within 5 s"
    finally:
        client.disconnect()
        client.loop_stop()


def test_healthcheck_passes_against_the_broker(
    services: dict[str, dict[str, Any]], compose_broker: ComposeBroker
) -> None:
    test = services[BROKER_SERVICE]["healthcheck"]["test"]
    assert test[0] == "CMD"
    if shutil.which(test[1]) is None:
        pytest.skip(f"{test[1]} is not installed")
    # Compose turns `$$` into `$`; the port is the one this test's broker uses.
    command = [arg.replace("$$", "$") for arg in test[1:]] + ["-p", str(compose_broker.mqtt_port)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stdout + result.stderr
