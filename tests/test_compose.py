"""docker-compose.yml, broker/mosquitto.conf and broker/make-credentials.sh, without Docker.

The compose file is validated against the Compose Specification's schema and
against the repository (services, mounted files, credentials, the real CLI);
the credentials script runs for real, and the broker config is loaded by a
real mosquitto on free ports, with those credentials.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from broker._auth import ACL_FILE, ROLES
from tests.support import REPO_ROOT, Proc, Processes, free_port, unique, wait_until

COMPOSE_SPEC = Path(__file__).with_name("compose-spec.json")
"""The Compose Specification's JSON schema (draft-07), kept here so the test runs from any clone."""
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
MOSQUITTO_CONF = REPO_ROOT / "broker" / "mosquitto.conf"
MAKE_CREDENTIALS = REPO_ROOT / "broker" / "make-credentials.sh"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

BROKER_SERVICE = "mosquitto"
CREDENTIALS_SERVICE = "credentials"
PYTHON_SERVICES = (
    "feed",
    "execution",
    "algo-random",
    "algo-sma",
    "bridge-random",
    "bridge-sma",
    "recorder",
    "view",
    "dashboard",
)
TOOL_SERVICES = ("operator",)
"""Python services for `docker compose run`, not started by `up` (profile "tools")."""
PYTHON_IMAGE = "tickbus:dev"
CREDENTIALS_MOUNT = "/credentials"
OPERATOR_MOUNT = "/operator-credentials"
"""Where the dashboard, alone, also mounts the operator's credentials."""


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


def mqtt_connection(service: dict[str, Any]) -> tuple[str, str] | None:
    """The (URL, password file) a service connects with, from its flags or environment."""
    command, env = service["command"], service.get("environment", {})
    if "--mqtt" in command:
        return option(command, "--mqtt"), option(command, "--mqtt-password-file")
    if "TICKBUS_MQTT_URL" in env:
        return env["TICKBUS_MQTT_URL"], env["TICKBUS_MQTT_PASSWORD_FILE"]
    return None


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a service's volumes (short syntax), without the :ro."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in service.get("volumes", [])}


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
    assert set(services) == {BROKER_SERVICE, CREDENTIALS_SERVICE, *PYTHON_SERVICES, *TOOL_SERVICES}


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
    for name in (*PYTHON_SERVICES, *TOOL_SERVICES):
        service = services[name]
        assert service["build"] == ".", name
        assert service["image"] == PYTHON_IMAGE, name
        assert depends_on(service)[BROKER_SERVICE] == "service_healthy", name
    for name in PYTHON_SERVICES:
        assert services[name]["restart"] == "unless-stopped", name
        assert "profiles" not in services[name], name
    for name in TOOL_SERVICES:
        assert services[name]["profiles"] == ["tools"], name


def test_commands_are_tickbus_in_exec_form(services: dict[str, dict[str, Any]]) -> None:
    for name in (*PYTHON_SERVICES, *TOOL_SERVICES):
        command = services[name]["command"]
        assert isinstance(command, list), f"{name}: use the list form"
        assert all(isinstance(arg, str) for arg in command), name
        assert command[0] == "tickbus", name


def test_mqtt_urls_name_the_broker_service(services: dict[str, dict[str, Any]]) -> None:
    for name in (*PYTHON_SERVICES, *TOOL_SERVICES):
        connection = mqtt_connection(services[name])
        if connection is not None:
            assert urlsplit(connection[0]).hostname == BROKER_SERVICE, name


def test_the_broker_starts_after_its_credentials_are_made(
    services: dict[str, dict[str, Any]],
) -> None:
    broker, maker = services[BROKER_SERVICE], services[CREDENTIALS_SERVICE]
    assert depends_on(broker)[CREDENTIALS_SERVICE] == "service_completed_successfully"
    assert maker["image"] == broker["image"], "mosquitto_passwd comes with the broker's image"
    assert maker["restart"] == "no"
    assert mounts(maker)[maker["command"][1]] == "./broker/make-credentials.sh"
    assert maker["command"][2] == CREDENTIALS_MOUNT
    assert mounts(broker)["/mosquitto/config/acl"] == "./broker/acl"
    assert mounts(broker)["/mosquitto/credentials"] == mounts(maker)["/credentials/broker"]


def test_each_service_logs_in_as_its_role_with_only_its_password(
    services: dict[str, dict[str, Any]],
) -> None:
    made = mounts(services[CREDENTIALS_SERVICE])
    roles_used = set()
    for name in (*PYTHON_SERVICES, *TOOL_SERVICES):
        service = services[name]
        connection = mqtt_connection(service)
        if connection is None:
            assert CREDENTIALS_MOUNT not in mounts(service), name
            continue
        url, password_file = connection
        role = urlsplit(url).username
        assert role in ROLES, name
        assert urlsplit(url).password is None, f"{name}: a password in a command line"
        assert password_file == f"{CREDENTIALS_MOUNT}/{role}.password", name
        assert f"{CREDENTIALS_MOUNT}:ro" in [v.split(":", 1)[1] for v in service["volumes"]], name
        # Its role's volume, filled by the credentials service, and no other; but the
        # dashboard, which also holds the operator's, for its actions (never sent to browsers).
        assert mounts(service)[CREDENTIALS_MOUNT] == made[f"{CREDENTIALS_MOUNT}/{role}"], name
        extra = (
            {OPERATOR_MOUNT: made[f"{CREDENTIALS_MOUNT}/operator"]} if name == "dashboard" else {}
        )
        held = set(mounts(service).values()) & set(made.values())
        assert held == {made[f"{CREDENTIALS_MOUNT}/{role}"], *extra.values()}, name
        assert all(mounts(service)[target] == source for target, source in extra.items()), name
        roles_used.add(role)
    assert roles_used == {"feed", "execution", "bridge", "recorder", "viewer", "operator"}


def test_the_recorder_keeps_its_dataset_on_a_volume_the_image_made_its_own(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    command = services["recorder"]["command"]
    out = command[command.index("--out") + 1]
    volume = mounts(services["recorder"])[f"/home/tickbus/{out}"]
    assert volume in compose["volumes"], "a named volume: the dataset outlives the container"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "WORKDIR /home/tickbus" in dockerfile and f"RUN mkdir {out}" in dockerfile
    assert dockerfile.index("USER tickbus") < dockerfile.index(f"RUN mkdir {out}")


def test_the_roles_agree_between_acl_script_and_code() -> None:
    acl_users = re.findall(r"^user (\S+)$", ACL_FILE.read_text(), flags=re.MULTILINE)
    script_roles = re.search(r'^roles="([^"]*)"$', MAKE_CREDENTIALS.read_text(), re.MULTILINE)
    assert script_roles is not None
    assert acl_users == list(ROLES) == script_roles.group(1).split()


def test_bridges_reach_an_algorithm_they_wait_for(services: dict[str, dict[str, Any]]) -> None:
    bridges = [name for name in PYTHON_SERVICES if "--rpc" in services[name]["command"]]
    assert bridges == ["bridge-random", "bridge-sma"]
    for name in bridges:
        rpc = urlsplit(option(services[name]["command"], "--rpc"))
        assert depends_on(services[name]).get(str(rpc.hostname)) == "service_started", name
        algo_addr = urlsplit(option(services[str(rpc.hostname)]["command"], "--addr"))
        assert algo_addr.port == rpc.port, name


@pytest.mark.parametrize("name", (*PYTHON_SERVICES, *TOOL_SERVICES))
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


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the compose service "credentials" makes: the real script, run here."""
    directory = tmp_path_factory.mktemp("compose") / "credentials"
    made = subprocess.run(
        ["sh", str(MAKE_CREDENTIALS), str(directory)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    return directory


def password(credentials: Path, role: str) -> str:
    return (credentials / role / f"{role}.password").read_text().removesuffix("\n")


def test_credentials_are_private_per_role_and_kept(credentials: Path) -> None:
    files = sorted(p.relative_to(credentials).as_posix() for p in credentials.rglob("*.*"))
    assert files == sorted(f"{role}/{role}.password" for role in ROLES)
    for path in [*credentials.rglob("*.password"), *(credentials / "broker").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    passwords = {role: password(credentials, role) for role in ROLES}
    assert len(set(passwords.values())) == len(ROLES)
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", p) for p in passwords.values())
    hashed = (credentials / "broker" / "passwords").read_text()
    assert [line.split(":")[0] for line in hashed.splitlines()] == list(ROLES)
    assert not any(p in hashed for p in passwords.values())
    again = subprocess.run(
        ["sh", str(MAKE_CREDENTIALS), str(credentials)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert "keeping" in again.stderr
    assert {role: password(credentials, role) for role in ROLES} == passwords


@dataclass(frozen=True)
class ComposeBroker:
    """A real mosquitto running broker/mosquitto.conf with its ports and files moved."""

    mqtt_port: int
    ws_port: int | None
    credentials: Path
    ws_missing_reason: str = ""


def compose_conf_on_free_ports(
    tmp_path: Path, credentials: Path, mqtt_port: int, ws_port: int | None
) -> Path:
    """broker/mosquitto.conf on free 127.0.0.1 ports, persisting to tmp; no ws without ws_port.

    The password file is the one the credentials script made, the ACL the
    repository's. As root, mosquitto stays root here, as `tickbus broker --auth`
    makes it: tmp_path is private, so the `mosquitto` account could not read it.
    """
    replacements = {
        r"^listener 1883$": f"listener {mqtt_port} 127.0.0.1",
        r"^listener 9001$": f"listener {ws_port} 127.0.0.1" if ws_port else "",
        r"^persistence_location .*$": f"persistence_location {tmp_path}/",
        r"^password_file .*$": f"password_file {credentials}/broker/passwords",
        r"^acl_file .*$": f"acl_file {ACL_FILE}",
    }
    if ws_port is None:
        replacements[r"^protocol websockets$"] = ""
    text = MOSQUITTO_CONF.read_text()
    for pattern, replacement in replacements.items():
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{pattern!r} should match exactly one line of {MOSQUITTO_CONF}"
    if os.geteuid() == 0:
        text += "user root\n"
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
def compose_broker(tmp_path: Path, procs: Processes, credentials: Path) -> Iterator[ComposeBroker]:
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed; .ci/run installs it with apt-get")
    mqtt_port, ws_port = free_port(), free_port()
    conf = compose_conf_on_free_ports(tmp_path, credentials, mqtt_port, ws_port)
    proc = start_mosquitto(procs, conf)
    if proc.alive():
        yield ComposeBroker(mqtt_port=mqtt_port, ws_port=ws_port, credentials=credentials)
        return
    if "websockets support not available" not in proc.log().lower():
        pytest.fail(f"mosquitto rejected {MOSQUITTO_CONF}:\n{proc.log()}")
    # This mosquitto build lacks websockets; check everything else without that listener.
    reason = f"{MOSQUITTO} was built without websockets support"
    proc = start_mosquitto(
        procs, compose_conf_on_free_ports(tmp_path, credentials, mqtt_port, None)
    )
    assert proc.alive(), proc.log()
    yield ComposeBroker(
        mqtt_port=mqtt_port, ws_port=None, credentials=credentials, ws_missing_reason=reason
    )


class Client:
    """A real paho client logged in as one role; records what it receives."""

    def __init__(self, broker: ComposeBroker, role: str | None, transport: str = "tcp") -> None:
        self.received: list[tuple[str, bytes]] = []
        self.refusal: str | None = None
        self._answered, self._subscribed = threading.Event(), threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=unique(f"{role}-"), transport=transport
        )
        if role is not None:
            self.client.username_pw_set(role, password(broker.credentials, role))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.received.append((msg.topic, msg.payload))
        port = broker.ws_port if transport == "websockets" else broker.mqtt_port
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._answered.wait(10), f"no CONNACK for {role} within 10 s"

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.refusal = str(reason) if reason.is_failure else None
        self._answered.set()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(10), f"no SUBACK for {topic} within 10 s"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def connect(broker: ComposeBroker, role: str | None, transport: str = "tcp") -> Client:
        made.append(Client(broker, role, transport))
        return made[-1]

    yield connect
    for client in made:
        client.close()


def test_mosquitto_conf_serves_mqtt_to_the_roles(
    compose_broker: ComposeBroker, clients: Callable[..., Client]
) -> None:
    topic = unique("quotes/C")
    reader = clients(compose_broker, "execution")
    reader.subscribe(topic)
    clients(compose_broker, "feed").publish(topic, b'{"AAPL": 190.5}')
    wait_until(lambda: reader.received, timeout=10, what=f"a message on {topic}")
    assert reader.received == [(topic, b'{"AAPL": 190.5}')]


def test_mosquitto_conf_refuses_anonymous_clients_and_confines_roles(
    compose_broker: ComposeBroker, clients: Callable[..., Client]
) -> None:
    assert clients(compose_broker, None).refusal == "Not authorized"
    orders, sentinel = unique("orders/c"), unique("quotes/S")
    reader = clients(compose_broker, "execution")
    reader.subscribe(orders)
    reader.subscribe(sentinel)
    feed = clients(compose_broker, "feed")
    feed.publish(orders, b"not a feed's to send")  # refused: PUBACK "Not authorized"
    feed.publish(sentinel, b"{}")
    wait_until(lambda: reader.received, timeout=10, what=f"a message on {sentinel}")
    assert [topic for topic, _ in reader.received] == [sentinel]


def test_mosquitto_conf_serves_mqtt_over_websockets(
    compose_broker: ComposeBroker, clients: Callable[..., Client]
) -> None:
    if compose_broker.ws_port is None:
        pytest.skip(compose_broker.ws_missing_reason)
    topic = unique("quotes/W")
    assert clients(compose_broker, None, "websockets").refusal == "Not authorized"
    reader = clients(compose_broker, "bridge", "websockets")
    reader.subscribe(topic)
    clients(compose_broker, "feed").publish(topic, b'{"MSFT": 410.2}')
    wait_until(lambda: reader.received, timeout=10, what=f"a message on {topic} over websockets")


def test_healthcheck_passes_against_the_broker(
    services: dict[str, dict[str, Any]], compose_broker: ComposeBroker
) -> None:
    test = services[BROKER_SERVICE]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "env", "XDG_CONFIG_HOME=/mosquitto/credentials"]
    if shutil.which(test[3]) is None:
        pytest.skip(f"{test[3]} is not installed")
    # Compose turns `$$` into `$`; the port and options file are this test's broker's.
    command = [arg.replace("$$", "$") for arg in test[3:]] + ["-p", str(compose_broker.mqtt_port)]
    env = {**os.environ, "XDG_CONFIG_HOME": str(compose_broker.credentials / "broker")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=10, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    # Without the viewer's options file, the same check is refused: the login is what passes it.
    env["XDG_CONFIG_HOME"] = str(compose_broker.credentials / "nowhere")
    anonymous = subprocess.run(command, capture_output=True, text=True, timeout=10, env=env)
    assert anonymous.returncode != 0
    assert "not authorised" in anonymous.stderr


def test_algorithm_servers_bind_beyond_loopback_only_with_allow_remote(
    services: dict[str, dict[str, Any]],
) -> None:
    """`tickbus algo serve` refuses 0.0.0.0 without --allow-remote; --help would not show it."""
    servers = {
        n: s["command"]
        for n, s in services.items()
        if s.get("command", [])[1:3] == ["algo", "serve"]
    }
    assert servers, "the stack has algorithm servers"
    for name, command in servers.items():
        host = urlsplit(option(command, "--addr")).hostname
        assert host in ("127.0.0.1", "localhost") or "--allow-remote" in command, name
