"""`tickbus up`: the whole stack on one machine, as child processes, with a live view.

Children: a broker (unless one already listens, or ``--mqtt`` names one), the
paper execution service, the two example algorithm servers, a bridge for
each, and a synthetic feed. On a broker that is already there, `up` first
checks that it is an MQTT broker and that no component of another stack
with the names it is about to start is live on it (`STACK_COMPONENTS`): two
stacks on one broker would trade on each other's orders and fills. Their
output goes to log files so it does not tear through the live view. SIGTERM
or Ctrl-C stops them in reverse order of start (feed first, broker last), each
with SIGTERM and, after a grace period, SIGKILL. If a child dies on its own,
`up` shows the end of its log and stops the rest: a half stack that looks
healthy would be worse than a clear failure.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from broker import (
    LiveComponent,
    MqttSettings,
    broker_listening,
    find_live_components,
    find_mosquitto,
    read_password_file,
    role_password_file,
    speaks_mqtt,
    write_secret_file,
)
from tickbus._view import ViewConfig, run_view
from tickbus.errors import ConfigError

STOP_GRACE_S = 5.0
START_TIMEOUT_S = 15.0
UP_SLIPPAGE_BPS = 2.0
UP_FEE_BPS = 1.0

EXECUTION_NAME = "paper"
FEED_NAME = "synthetic"
ALGORITHMS = {
    "random": ("algos.examples:RandomAlgo", ("--param", "threshold=0.9")),
    "sma": ("algos.examples:MovingAverageCross", ()),
}
"""Bridge name -> (algorithm spec, extra `tickbus algo serve` arguments)."""

STACK_COMPONENTS = (
    ("execution", EXECUTION_NAME),
    *(("bridge", name) for name in ALGORITHMS),
    ("feed", FEED_NAME),
)
"""The (component, name) pairs `up` starts: on a shared broker, none may be live already."""


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """What `tickbus up` starts.

    Attributes:
        mqtt: An existing broker to use; None starts one on 127.0.0.1:`port`
            unless an MQTT broker already listens there. On an existing
            broker, `up` refuses to start when any of `STACK_COMPONENTS` is live.
        port: Port of the local broker (1883).
        symbols: Symbols the synthetic feed quotes.
        rate: Quotes per second of the feed.
        duration: Stop after this many seconds; None runs until stopped.
        log_dir: Where the children's logs go; None makes a temporary directory.
        auth: Start the broker with a login per role (``tickbus broker --auth``,
            credentials in ``LOG_DIR/credentials``) and log every child in as
            its role; needs a broker of its own (no `mqtt`, none listening).
        dashboard_port: The web dashboard's port on 127.0.0.1 (another free
            port when it is taken); None starts no dashboard.
    """

    mqtt: MqttSettings | None
    port: int = 1883
    symbols: str = "GOOG,AAPL,MSFT"
    rate: float = 50.0
    duration: float | None = None
    log_dir: Path | None = None
    auth: bool = False
    dashboard_port: int | None = 8080


@dataclass
class Child:
    """One started child process and its log."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 15) -> str:
        """The last lines of the child's log."""
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Stack:
    """Starts the children of `tickbus up`, watches them, and stops them all.

    Use as a context manager; leaving stops every child that is still running.
    """

    def __init__(self, config: StackConfig, *, log_dir: Path) -> None:
        self._config = config
        self._log_dir = log_dir
        self.children: list[Child] = []
        self.stopping = False
        self._credentials: Path | None = None  # with auth: where each role's password is
        self.dashboard_url: str | None = None

    def __enter__(self) -> Stack:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> MqttSettings:
        """Start every child; returns the broker the stack uses (as the viewer, with auth).

        Raises:
            ConfigError: Before anything starts: what listens on the port is not
                an MQTT broker, or the broker already carries a live component
                with a name of this stack (`STACK_COMPONENTS`). Later: a child
                died during start-up, or the broker did not come up.
        """
        settings = self._broker()
        # Costs like a liquid market's, so the view shows what they do to PnL.
        costs = ["--slippage-bps", str(UP_SLIPPAGE_BPS), "--fee-bps", str(UP_FEE_BPS)]
        execution = ["execution", "paper", *self._login(settings, "execution")]
        self._spawn("execution", [*execution, "--name", EXECUTION_NAME, *costs])
        for name, (spec, params) in ALGORITHMS.items():
            addr = f"tcp://127.0.0.1:{_free_port()}"
            self._spawn(f"algo-{name}", ["algo", "serve", spec, "--addr", addr, *params])
            bridge = ["bridge", *self._login(settings, "bridge"), "--rpc", addr, "--name", name]
            self._spawn(f"bridge-{name}", bridge)
        self._spawn(
            "feed",
            [
                "feed",
                "synthetic",
                *self._login(settings, "feed"),
                "--name",
                FEED_NAME,
                "--symbols",
                self._config.symbols,
                "--rate",
                str(self._config.rate),
            ],
        )
        if self._config.dashboard_port is not None:
            self._start_dashboard(settings, self._config.dashboard_port)
        if self._credentials is None:
            return settings
        viewer = role_password_file(self._credentials, "viewer")
        return dataclasses.replace(settings, username="viewer", password=read_password_file(viewer))

    def _start_dashboard(self, settings: MqttSettings, preferred: int) -> None:
        """The dashboard as the viewer, acting as the operator; on `preferred` or a free port."""
        port = preferred if not _port_taken(preferred) else _free_port()
        args = ["dashboard", *self._login(settings, "viewer"), "--port", str(port)]
        if self._credentials is not None:
            operator = role_password_file(self._credentials, "operator")
            args += ["--operator-password-file", str(operator)]
        self._spawn("dashboard", args)
        self.dashboard_url = f"http://localhost:{port}/"
        if port != preferred:
            print(f"port {preferred} is taken; the dashboard uses {port}", file=sys.stderr)

    def _login(self, settings: MqttSettings, role: str) -> list[str]:
        """A child's connection options: the password goes in a 0600 file, never argv.

        With auth, the child logs in as `role` with the password the broker made for it.
        """
        if self._credentials is not None:
            as_role = dataclasses.replace(settings, username=role)
            password_file = role_password_file(self._credentials, role)
            return ["--mqtt", as_role.url, "--mqtt-password-file", str(password_file)]
        args = ["--mqtt", settings.url]  # `url` never shows the password
        if settings.password is not None:
            password_file = self._log_dir / "mqtt.password"
            write_secret_file(password_file, settings.password)
            args += ["--mqtt-password-file", str(password_file)]
        if settings.ca_file is not None:
            args += ["--mqtt-ca", str(settings.ca_file)]
        return args

    def _broker(self) -> MqttSettings:
        port = self._config.port
        if self._config.auth and (
            self._config.mqtt is not None or broker_listening("127.0.0.1", port)
        ):
            raise ConfigError(
                "--auth starts a broker of its own with a login per role: it cannot use "
                f"--mqtt or the broker already listening on 127.0.0.1:{port} (try --port)"
            )
        if self._config.mqtt is not None:
            _refuse_a_second_stack(self._config.mqtt, port)
            return self._config.mqtt
        if broker_listening("127.0.0.1", port):
            if not speaks_mqtt("127.0.0.1", port):
                raise ConfigError(
                    f"something listens on 127.0.0.1:{port} but it is not an MQTT broker; "
                    f"choose another --port, e.g. --port {_spare_port(port)}"
                )
            settings = MqttSettings(host="127.0.0.1", port=port)
            _refuse_a_second_stack(settings, port)
            print(f"a broker already listens on 127.0.0.1:{port}; using it", file=sys.stderr)
            return settings
        # `tickbus broker` runs mosquitto when installed, else amqtt, which speaks only 3.1.1.
        protocol = "5" if find_mosquitto() is not None else "3.1.1"
        settings = MqttSettings(host="127.0.0.1", port=port, protocol=protocol)
        args = ["broker", "--port", str(port)]
        if self._config.auth:
            self._credentials = self._log_dir / "credentials"
            args += ["--auth", str(self._credentials)]
        child = self._spawn("broker", args)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not broker_listening("127.0.0.1", port):
            if child.popen.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"the broker did not start:\n{child.tail()}")
            time.sleep(0.05)
        return settings

    def _spawn(self, name: str, args: Sequence[str]) -> Child:
        log_path = self._log_dir / f"{name}.log"
        log_file = log_path.open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "tickbus", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        child = Child(name, popen, log_path, log_file)
        self.children.append(child)
        return child

    def dead_child(self) -> Child | None:
        """The first child that exited while the stack was meant to run, if any."""
        return next((c for c in self.children if c.popen.poll() is not None), None)

    def stop(self) -> None:
        """Stop every child, newest first: SIGTERM, then SIGKILL after the grace period."""
        for child in reversed(self.children):
            if child.popen.poll() is None:
                child.popen.send_signal(signal.SIGTERM)
                try:
                    child.popen.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    child.popen.kill()
                    child.popen.wait()
            child.log_file.close()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True


def run_stack(config: StackConfig) -> int:
    """Run the stack until `duration`, a signal, or a child's death; returns the exit code."""
    log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="tickbus-up-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"logs of every process: {log_dir}", file=sys.stderr)
    with Stack(config, log_dir=log_dir) as stack:
        settings = stack.start()
        page = f"dashboard: {stack.dashboard_url}   " if stack.dashboard_url else ""
        if page:
            print(page.strip(), file=sys.stderr)
        run_view(
            ViewConfig(mqtt=settings, duration=config.duration),
            keep_going=lambda: not stack.stopping and stack.dead_child() is None,
            footer=f"{page}logs: {log_dir}   Ctrl-C stops every process",
        )
        dead = stack.dead_child()
        if dead is not None and not stack.stopping:
            print(
                f"\n{dead.name} exited with code {dead.popen.returncode}:\n{dead.tail()}",
                file=sys.stderr,
            )
            return 1
    print("stopped every process", file=sys.stderr)
    return 0


def _refuse_a_second_stack(settings: MqttSettings, port: int) -> None:
    """Raise ConfigError when a component `up` would start is already live on the broker.

    Args:
        settings: The broker the stack would use.
        port: The --port, from which a port for a broker of its own is suggested.
    """
    live = find_live_components(settings, STACK_COMPONENTS)
    if live:
        raise ConfigError(
            f"a tickbus stack already runs on {settings.url}: {_listed(live)}. A second "
            "stack on the same broker would trade on the first one's orders and fills. "
            "Stop the first one (Ctrl-C where it runs), or start this one with a broker of "
            f"its own: tickbus up --port {_spare_port(port)}"
        )


def _listed(live: Sequence[LiveComponent]) -> str:
    """``execution 'paper' (pid 12, last status 0.3 s ago), bridge 'random' (...)``."""
    return ", ".join(f"{c.component} {c.name!r} ({c.facts()})" for c in live)


def _spare_port(port: int) -> int:
    """A port above `port` where nothing listens on 127.0.0.1, to suggest for a second broker."""
    candidates = [p for p in range(port + 1, port + 100) if p <= 65535] or [1884]
    free = (p for p in candidates if not broker_listening("127.0.0.1", p, timeout=0.2))
    return next(free, candidates[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_taken(port: int) -> bool:
    """Whether 127.0.0.1:`port` cannot be bound (something listens there, or is about to)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
