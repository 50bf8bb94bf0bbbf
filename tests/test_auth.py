"""Logins and per-role ACLs: `tickbus broker --auth DIR`, a real mosquitto, the real CLI.

One broker serves the module; every test uses unique topics and names. Each
refusal is checked from both sides: the broker answers "Not authorized", and a
subscriber that may read the topic sees nothing arrive, while a sentinel sent
afterwards does (mosquitto handles a publish before it acknowledges it, so the
sentinel cannot overtake it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker import ROLES, BusClient, MqttSettings, read_password_file, role_password_file
from broker._secret_file import write_secret_file
from tests.support import (
    REPO_ROOT,
    Proc,
    Processes,
    free_port,
    serve_algorithm,
    unique,
    wait_until,
)
from tickbus.errors import ConfigError

FORBIDDEN = b"a message the broker must not pass on"
SENTINEL = b"sentinel"


@dataclass(frozen=True)
class AuthBroker:
    """`tickbus broker --auth` running on `port`, with its credentials in `credentials`."""

    port: int
    credentials: Path
    proc: Proc

    def url(self, role: str | None) -> str:
        return f"mqtt://{role}@127.0.0.1:{self.port}" if role else f"mqtt://127.0.0.1:{self.port}"

    def password(self, role: str) -> str:
        return read_password_file(role_password_file(self.credentials, role))

    def settings(self, role: str | None) -> MqttSettings:
        settings = MqttSettings.from_url(self.url(role))
        if role is None:
            return settings
        return MqttSettings(
            host=settings.host, port=settings.port, username=role, password=self.password(role)
        )

    def login(self, role: str) -> list[str]:
        """The flags that log a CLI command in as `role`, the password from its file."""
        file = role_password_file(self.credentials, role)
        return ["--mqtt", self.url(role), "--mqtt-password-file", str(file)]


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthBroker]:
    workdir = tmp_path_factory.mktemp("auth")
    port, credentials = free_port(), workdir / "credentials"
    args = ["--port", str(port), "--auth", str(credentials)]
    proc = Proc([sys.executable, "-m", "tickbus", "broker", *args], workdir / "broker.log")
    try:
        wait_until(
            lambda: " running" in proc.log() or not proc.alive(),
            timeout=30,
            what=f"tickbus broker --auth on port {port}",
        )
        assert proc.alive(), proc.log()
        yield AuthBroker(port=port, credentials=credentials, proc=proc)
    finally:
        proc.stop()


class Reader:
    """A `BusClient` logged in as one role that keeps every message it receives."""

    def __init__(self, broker: AuthBroker, role: str, *filters: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.bus = BusClient(
            broker.settings(role),
            component="test",
            name=unique(f"{role}-"),
            on_message=lambda topic, payload: self.messages.append((topic, payload)),
            announce=False,
        )
        self.bus.__enter__()
        self.bus.subscribe(filters, qos=1)

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.messages]

    def statuses(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for t, payload in self.messages if t == topic]


@pytest.fixture
def connect(auth_broker: AuthBroker) -> Iterator[Callable[..., Any]]:
    """connect(role) -> a BusClient that announces nothing; connect(role, *filters) -> a Reader."""
    opened: list[BusClient] = []

    def open_one(role: str, *filters: str) -> Any:
        if filters:
            reader = Reader(auth_broker, role, *filters)
            opened.append(reader.bus)
            return reader
        bus = BusClient(
            auth_broker.settings(role), component="test", name=unique("w"), announce=False
        )
        opened.append(bus.__enter__())
        return bus

    yield open_one
    for bus in opened:
        bus.close()


def publish_until_seen(writer: BusClient, reader: Reader, topic: str) -> None:
    """Publish on `topic` until `reader` has it: its subscriptions are in place from then on."""
    wait_until(
        lambda: writer.publish(topic, b"{}", qos=1).wait_for_publish(2) or topic in reader.topics(),
        timeout=30,
        what=f"{topic} to arrive",
    )


def pubacks(bus: BusClient) -> list[str]:
    """The reason codes of the broker's acknowledgements of `bus`'s QoS 1 messages, from now on.

    BusClient does not watch them (a callback on every publish costs too much),
    so the test listens on its paho client.
    """
    reasons: list[str] = []
    bus._client.on_publish = lambda _c, _u, _mid, reason, _p: reasons.append(str(reason))
    return reasons


def publish_then_seen(writer: BusClient, reader: Reader, topic: str) -> None:
    """Publish one sentinel on `topic` and wait for `reader` to get it."""
    writer.publish(topic, SENTINEL, qos=1).wait_for_publish(10)
    wait_until(
        lambda: (topic, SENTINEL) in reader.messages, timeout=30, what=f"the sentinel on {topic}"
    )


def run_tickbus(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickbus", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


@pytest.mark.parametrize(
    ("content", "password"),
    [
        (b"pw", "pw"),
        (b"pw\n", "pw"),
        (b"pw\r\n", "pw"),
        (b" p w \n", " p w "),
        ("pässwörd€\n".encode(), "pässwörd€"),
        (b"p" * 65535 + b"\n", "p" * 65535),
    ],
    ids=["bare", "newline", "crlf", "spaces", "utf-8", "longest"],
)
def test_a_password_file_holds_the_password_and_one_line_break(
    tmp_path: Path, content: bytes, password: str
) -> None:
    path = tmp_path / "password"
    path.write_bytes(content)
    assert read_password_file(path) == password


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"s3cr3t\nmore\n", "holds more than one line"),
        (b"s3cr3t\r", "holds more than one line"),
        (b"s3cr3t\xff", "is not UTF-8 text"),
        (b"s3cr3t" * 11000, "holds more than 65535 bytes"),
    ],
    ids=["empty", "blank", "two-lines", "cr", "not-utf-8", "too-long"],
)
def test_an_unusable_password_file_is_named_not_quoted(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "password"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        read_password_file(path)
    assert info.value.reason.startswith(f"the MQTT password file {path} {reason}")
    assert "s3cr3t" not in str(info.value)
    assert info.value.__cause__ is None


def test_a_secret_file_is_made_private_even_when_it_existed(tmp_path: Path) -> None:
    path = tmp_path / "feed.password"
    path.write_text("old\n")
    path.chmod(0o644)
    write_secret_file(path, "new\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "new\n"
    link = tmp_path / "link.password"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=f"cannot write {link}"):
        write_secret_file(link, "s3cr3t")
    assert not (tmp_path / "elsewhere").exists()


def test_broker_auth_writes_a_private_new_password_per_role(auth_broker: AuthBroker) -> None:
    directory = auth_broker.credentials
    assert directory.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in directory.iterdir()) == sorted(f"{r}.password" for r in ROLES)
    passwords = {role: auth_broker.password(role) for role in ROLES}
    for role in ROLES:
        assert role_password_file(directory, role).stat().st_mode & 0o777 == 0o600, role
        assert len(passwords[role]) >= 32, role
    assert len(set(passwords.values())) == len(ROLES)
    log = auth_broker.proc.log()
    assert f"--mqtt-password-file {directory}/feed.password" in log
    assert not any(password in log for password in passwords.values())


def test_an_anonymous_client_is_refused_at_once_with_the_reason(auth_broker: AuthBroker) -> None:
    started = time.monotonic()
    with (
        pytest.raises(ConfigError) as info,
        BusClient(auth_broker.settings(None), component="test", name="anon", connect_timeout=60),
    ):
        pass
    assert time.monotonic() - started < 30, "a refused login must not wait for the timeout"
    assert "refused the connection: Not authorized" in info.value.reason
    assert "the broker requires a login" in info.value.reason
    assert "--mqtt-password-file" in info.value.reason


def test_a_wrong_password_is_refused_without_echoing_it(auth_broker: AuthBroker) -> None:
    settings = MqttSettings(
        host="127.0.0.1", port=auth_broker.port, username="feed", password="wr0ng-s3cret"
    )
    with pytest.raises(ConfigError) as info, BusClient(settings, component="test", name="wrong"):
        pass
    assert "refused the connection: Not authorized" in info.value.reason
    assert "check the password of user 'feed'" in info.value.reason
    assert "wr0ng-s3cret" not in info.value.reason


def test_the_feed_cannot_write_orders(connect: Callable[..., Any]) -> None:
    orders, quotes = unique("orders/f"), unique("quotes/F")
    execution = connect("execution", orders, quotes)
    feed = connect("feed")
    publish_until_seen(feed, execution, quotes)
    answers = pubacks(feed)
    feed.publish(orders, FORBIDDEN, qos=1).wait_for_publish(10)
    feed.publish(orders, FORBIDDEN, qos=0)
    publish_then_seen(feed, execution, quotes)
    assert orders not in execution.topics()
    # The QoS 0 message is dropped without an answer ("Success" is paho's, once it is sent).
    assert answers == ["Not authorized", "Success", "Success"]


def test_a_viewer_can_write_nothing(connect: Callable[..., Any]) -> None:
    name, sid = unique("v"), unique("V").upper()
    # Between them, these readers may read every topic the viewer tries below.
    operator = connect("operator", f"status/+/{name}", f"deadletter/{name}")
    execution = connect("execution", f"quotes/{sid}", f"orders/{name}")
    bridge = connect("bridge", f"control/bridge/{name}", f"fills/{name}")
    feed, operator_writer = connect("feed"), connect("operator")
    publish_until_seen(feed, operator, f"status/feed/{name}")
    publish_until_seen(feed, execution, f"quotes/{sid}")
    publish_until_seen(operator_writer, bridge, f"control/bridge/{name}")
    viewer = connect("viewer")
    forbidden = [
        f"status/view/{name}",
        f"deadletter/{name}",
        f"quotes/{sid}",
        f"orders/{name}",
        f"control/bridge/{name}",
        f"fills/{name}",
    ]
    answers = pubacks(viewer)
    for topic in forbidden:
        viewer.publish(topic, FORBIDDEN, qos=1).wait_for_publish(10)
    assert answers == ["Not authorized"] * len(forbidden)
    publish_then_seen(feed, operator, f"status/feed/{name}")
    publish_then_seen(feed, execution, f"quotes/{sid}")
    publish_then_seen(operator_writer, bridge, f"control/bridge/{name}")
    for reader in (operator, execution, bridge):
        assert FORBIDDEN not in [payload for _, payload in reader.messages]


def test_a_subscription_outside_the_role_delivers_nothing(connect: Callable[..., Any]) -> None:
    name, sid = unique("s"), unique("S").upper()
    feed, operator = connect("feed"), connect("operator")
    viewer = connect("viewer", f"quotes/{sid}", f"control/bridge/{name}", f"status/feed/{name}")
    execution = connect("execution", f"quotes/{sid}")
    bridge = connect("bridge", f"control/bridge/{name}")
    publish_until_seen(feed, viewer, f"status/feed/{name}")  # the viewer's filters are in place
    publish_until_seen(feed, execution, f"quotes/{sid}")
    publish_until_seen(operator, bridge, f"control/bridge/{name}")
    publish_then_seen(feed, viewer, f"status/feed/{name}")
    assert set(viewer.topics()) == {f"status/feed/{name}"}


def test_a_viewer_sees_orders_fills_rejections_and_dead_letters(
    connect: Callable[..., Any],
) -> None:
    name = unique("v")
    topics = [f"orders/{name}", f"orders/{name}/rejected", f"fills/{name}", "deadletter/bridge"]
    viewer = connect("viewer", *topics)
    bridge, execution = connect("bridge"), connect("execution")
    publish_until_seen(bridge, viewer, f"orders/{name}")
    publish_until_seen(bridge, viewer, f"orders/{name}/rejected")
    publish_until_seen(execution, viewer, f"fills/{name}")
    publish_until_seen(bridge, viewer, "deadletter/bridge")


def test_a_component_reads_its_password_from_a_file_not_its_command_line(
    auth_broker: AuthBroker, connect: Callable[..., Any], procs: Processes
) -> None:
    name, sid = unique("feed"), unique("P").upper()
    bridge = connect("bridge", f"quotes/{sid}")
    viewer = connect("viewer", f"status/feed/{name}")
    feed = procs.tickbus(
        "feed", "synthetic", *auth_broker.login("feed"), "--symbols", sid, "--rate", "20",
        "--name", name, name="feed",
    )  # fmt: skip
    wait_until(lambda: bridge.messages, timeout=60, what=f"quotes from feed {name}")
    wait_until(
        lambda: any(s["state"] == "online" for s in viewer.statuses(f"status/feed/{name}")),
        timeout=30,
        what=f"feed {name} online",
    )
    cmdline = Path(f"/proc/{feed.popen.pid}/cmdline").read_bytes()
    assert b"--mqtt-password-file" in cmdline
    assert not any(auth_broker.password(role).encode() in cmdline for role in ROLES)


@pytest.mark.parametrize(
    ("url_role", "url_password", "file", "error"),
    [
        (None, None, "feed", "a password needs a user: name it in the URL"),
        ("feed", "s3cr3t", "feed", "the --mqtt URL holds a password too"),
        ("feed", None, "missing", "cannot read the MQTT password file"),
    ],
    ids=["no-user", "two-passwords", "missing-file"],
)
def test_password_file_misuse_is_a_usage_error(
    auth_broker: AuthBroker, url_role: str | None, url_password: str | None, file: str, error: str
) -> None:
    user = "" if url_role is None else f"{url_role}{':' + url_password if url_password else ''}@"
    url = f"mqtt://{user}127.0.0.1:{auth_broker.port}"
    path = role_password_file(auth_broker.credentials, file)
    result = run_tickbus(
        "view", "--mqtt", url, "--mqtt-password-file", str(path), "--duration", "1"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Invalid value for '--mqtt-password-file': {error}" in result.stderr
    assert "s3cr3t" not in result.stderr
    assert auth_broker.password("feed") not in result.stderr


def test_a_refused_login_from_the_cli_says_why(auth_broker: AuthBroker, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("n0t-the-p4ssword\n")
    url = auth_broker.url("operator")
    result = run_tickbus("view", "--mqtt", url, "--mqtt-password-file", str(wrong))
    assert result.returncode == 1
    shown = f"mqtt://operator:***@127.0.0.1:{auth_broker.port}"  # the password, redacted
    assert f"the MQTT broker at {shown} refused the connection: Not authorized" in result.stderr
    assert "check the password of user 'operator'" in result.stderr
    assert "n0t-the-p4ssword" not in result.stdout + result.stderr


def test_the_stack_runs_on_its_roles(
    auth_broker: AuthBroker, connect: Callable[..., Any], procs: Processes
) -> None:
    """Feed, bridge, execution, the operator's kill switch and the view, each as its own role."""
    bridge_name, execution_name, sid = unique("b"), unique("paper"), unique("Q").upper()
    viewer = connect("viewer", "status/#")
    rpc = serve_algorithm(procs, "tests.algos_for_tests:OrderEveryQuote")
    started = [
        procs.tickbus(
            "execution", "paper", *auth_broker.login("execution"), "--name", execution_name,
            name="execution",
        ),
        procs.tickbus(
            "bridge", *auth_broker.login("bridge"), "--rpc", rpc, "--name", bridge_name,
            "--param", f"channels=quotes/{sid}", name="bridge",
        ),
        procs.tickbus(
            "feed", "synthetic", *auth_broker.login("feed"), "--symbols", sid, "--rate", "5",
            "--name", unique("feed"), name="feed",
        ),
    ]  # fmt: skip
    bridge_status = f"status/bridge/{bridge_name}"
    wait_until(
        lambda: any(s.get("fills", 0) >= 1 for s in viewer.statuses(bridge_status)),
        timeout=90,
        what=f"bridge {bridge_name} to report a fill",
    )
    kill = run_tickbus(
        "risk", "kill", *auth_broker.login("operator"), "--bridge", bridge_name, "--reason", "auth"
    )
    assert kill.returncode == 0, kill.stdout + kill.stderr
    wait_until(
        lambda: any(s.get("killed") == "auth" for s in viewer.statuses(bridge_status)),
        timeout=30,
        what=f"bridge {bridge_name} killed",
    )
    view = run_tickbus("view", *auth_broker.login("viewer"), "--duration", "3", "--interval", "1")
    assert view.returncode == 0, view.stdout + view.stderr
    assert any(line.startswith(bridge_name) for line in view.stdout.splitlines()), view.stdout
    assert all(proc.alive() for proc in started), [proc.log() for proc in started]
    for proc in started:
        cmdline = Path(f"/proc/{proc.popen.pid}/cmdline").read_bytes()
        assert not any(auth_broker.password(role).encode() in cmdline for role in ROLES)
