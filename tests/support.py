"""Test helpers: free ports, deadline waits, real subprocesses and an MQTT recorder.

Nothing here mocks the broker or the RPC: these helpers start and watch the real
things and stop them at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(prefix: str) -> str:
    """A name no other test uses: topics, bridge names, feed names."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Proc:
    """A real subprocess whose output goes to a log file, stopped at teardown."""

    def __init__(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        self._log.close()
        return self.popen.returncode


class Processes:
    """Starts processes for one test and stops all of them at teardown."""

    def __init__(self, tmp_path: Path):
        self._tmp_path = tmp_path
        self._procs: list[Proc] = []

    def start(self, *args: str, name: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(args, self._tmp_path / f"{name}-{len(self._procs)}.log", env)
        self._procs.append(proc)
        return proc

    def tickbus(self, *args: str, name: str, env: dict[str, str] | None = None) -> Proc:
        """Run the real CLI, exactly as a user would (`tickbus ...`)."""
        return self.start(sys.executable, "-m", "tickbus", *args, name=name, env=env)

    def stop_all(self) -> None:
        for proc in reversed(self._procs):
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.args}\n{p.log()}" for p in self._procs)


class MqttRecorder:
    """A real paho subscriber that keeps every message it receives, per topic."""

    def __init__(self, url_port: int, filters: Sequence[str], host: str = "127.0.0.1"):
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._filters = list(filters)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("rec-"))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, url_port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("recorder did not subscribe within 10 s")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(f, 1) for f in self._filters])

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def on(self, topic_filter: str) -> list[bytes]:
        """Payloads received on topics matching `topic_filter`, in arrival order."""
        with self._lock:
            return [p for t, p in self.messages if mqtt.topic_matches_sub(topic_filter, t)]

    def json_on(self, topic_filter: str) -> list[Any]:
        return [json.loads(p) for p in self.on(topic_filter)]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def recorder(port: int, *filters: str) -> Iterator[MqttRecorder]:
    rec = MqttRecorder(port, filters)
    try:
        yield rec
    finally:
        rec.close()


def publish_retained(port: int, statuses: dict[str, bytes]) -> None:
    """Publish ``component/name`` -> payload as retained QoS 1 statuses, as components do."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("statuses-"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [
            client.publish(f"status/{key}", value, qos=1, retain=True)
            for key, value in statuses.items()
        ]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def serve_algorithm(procs: Processes, spec: str, *params: str, app_dir: str = ".") -> str:
    """Run `tickbus algo serve SPEC` on a free port; returns its address once it serves."""
    addr = f"tcp://127.0.0.1:{free_port()}"
    args = ["algo", "serve", spec, "--addr", addr, "--app-dir", app_dir]
    for param in params:
        args += ["--param", param]
    proc = procs.tickbus(*args, name="algo")
    wait_until(lambda: "serving" in proc.log(), timeout=15, what=f"{spec} serving on {addr}")
    return addr


def start_bridge(
    procs: Processes,
    mqtt_url: str,
    rpc: str,
    name: str,
    *params: str,
    source: str = "mqtt",
    flags: Sequence[str] = (),
) -> Proc:
    """Run `tickbus bridge` for algorithm `rpc` under `name`; `params` become `--param`s."""
    args = ["bridge", "--mqtt", mqtt_url, "--rpc", rpc, "--name", name, "--source", source]
    args += flags
    for param in params:
        args += ["--param", param]
    return procs.tickbus(*args, name=f"bridge-{name}")


def start_execution(procs: Processes, mqtt_url: str, *flags: str) -> str:
    """Run `tickbus execution paper` under a unique name; returns the name once it is online."""
    name = unique("paper")
    port = int(mqtt_url.rsplit(":", 1)[1])
    with recorder(port, f"status/execution/{name}") as rec:
        procs.tickbus("execution", "paper", "--mqtt", mqtt_url, "--name", name, *flags, name=name)
        wait_until(
            # Counters come after the subscriptions; the bare "online" of the connect before.
            lambda: any("waiting" in s for s in rec.json_on(f"status/execution/{name}")),
            timeout=15,
            what=f"execution {name} online",
        )
    return name


def wait_online(rec: MqttRecorder, name: str) -> dict[str, Any]:
    """The first status of bridge `name` that says it is online and subscribed."""

    def online() -> dict[str, Any] | None:
        for status in rec.json_on(f"status/bridge/{name}"):
            if status["state"] == "online" and status.get("channels"):
                return dict(status)
        return None

    return wait_until(online, timeout=20, what=f"bridge {name} online")  # type: ignore[no-any-return]


def swap(mqtt_url: str, bridge: str, rpc: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run `tickbus swap` to completion; `flags` are added to its command line."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tickbus",
            "swap",
            "--mqtt",
            mqtt_url,
            "--bridge",
            bridge,
            "--rpc",
            rpc,
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """A real mosquitto on a free 127.0.0.1 port, which a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._workdir = workdir
        self._conf = workdir / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            "persistence false\nmax_queued_messages 100000\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self) -> None:
        log = self._workdir / f"mosquitto-{self._starts}.log"
        self._starts += 1
        with open(log, "wb") as out:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self._conf)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_until(lambda: port_open(self.port), timeout=10, what=f"mosquitto on {self.port}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)


def run_on_terminal(args: Sequence[str], *, timeout: float = 120) -> tuple[int, str]:
    """Run ``tickbus ARGS`` with stderr on a 120-column pseudo-terminal, stdout discarded.

    Returns:
        The exit code, and what the terminal was sent.
    """
    import fcntl
    import pty
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    with open(os.devnull, "wb") as nowhere:
        run = subprocess.run(
            [sys.executable, "-m", "tickbus", *args],
            stdout=nowhere, stderr=child, cwd=REPO_ROOT, timeout=timeout, check=False,
        )  # fmt: skip
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    return run.returncode, shown.decode(errors="replace")
