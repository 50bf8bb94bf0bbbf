"""Processes and the bus watcher of bench/soak.py.

`Broker` is a mosquitto on a fixed port that can be killed and started again;
`Stack` runs the tickbus processes of one soak (feed, paper execution, an
algorithm server and its bridge) by role, each restartable with the same
arguments; `Watcher` is one MQTT client that keeps every component's latest
status per process, counts orders (and their ids), fills and dead letters,
and injects bad payloads. Child processes, their log files, ``wait_until``
and the /proc readings come from ``_bus_harness.py``.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from _bus_harness import Child, Children, free_port, rss_mb, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from broker import find_mosquitto, mosquitto_config

START_TIMEOUT_S = 30.0
"""Longest wait for a process (or the broker) to come up."""


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"bench/soak.py: {message}", file=sys.stderr, flush=True)


class Broker:
    """mosquitto with tickbus's generated config (no persistence) on one port for the run."""

    def __init__(self, children: Children) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._children = children
        self._conf = children.workdir / "mosquitto.conf"
        self._conf.write_text(
            mosquitto_config(port=self.port, bind="127.0.0.1", persistence_dir=None)
        )
        self._binary = binary
        self.child = self.start()
        self.first_pid = self.child.pid

    def start(self) -> Child:
        """Start mosquitto on the port and wait until it listens."""
        self.child = self._children.start("mosquitto", self._binary, "-c", str(self._conf))
        wait_until(self._listening, timeout=START_TIMEOUT_S, what=f"mosquitto on {self.port}")
        return self.child

    def kill(self) -> None:
        """SIGKILL mosquitto: every client loses its connection at once."""
        self.child.popen.send_signal(signal.SIGKILL)
        self.child.popen.wait()

    def _listening(self) -> bool:
        self.child.check_alive()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


class Stack:
    """The soak's tickbus processes by role; each can be killed and started again as it was.

    Roles: ``execution``, ``algo``, ``bridge``, ``feed``. The algorithm server keeps its
    portfolio in a state directory, so a restarted one goes on with the same book.
    """

    def __init__(
        self,
        children: Children,
        url: str,
        *,
        tag: str,
        symbols: Sequence[str],
        rate: float,
        algo: str,
    ) -> None:
        self.name = f"soak-{tag}"
        self.addr = f"tcp://127.0.0.1:{free_port()}"
        self.symbols = list(symbols)
        state_dir = children.workdir / "book"
        channels = json.dumps([f"quotes/{sid}" for sid in symbols])
        bridge = ["bridge", "--mqtt", url, "--rpc", self.addr, "--name", self.name]
        feed = ["feed", "synthetic", "--mqtt", url, "--rate", f"{rate:g}", "--name", self.name]
        self._args = {
            "execution": ["execution", "paper", "--mqtt", url, "--name", self.name],
            "algo": ["algo", "serve", algo, "--addr", self.addr, "--state-dir", str(state_dir)],
            "bridge": [*bridge, "--param", f"channels={channels}"],
            "feed": [*feed, "--symbols", ",".join(symbols), "--seed", "11"],
        }
        self._children = children
        self.current: dict[str, Child] = {}
        self.first_pid: dict[str, int] = {}

    def start(self, role: str) -> Child:
        """Start `role` with its arguments; the algorithm server is waited for."""
        child = self._children.tickbus(role, *self._args[role])
        self.current[role] = child
        self.first_pid.setdefault(role, child.pid)
        if role == "algo":
            child.wait_ready("serving")
        return child

    def kill(self, role: str) -> None:
        """SIGKILL the current process of `role`."""
        child = self.current[role]
        child.popen.send_signal(signal.SIGKILL)
        child.popen.wait()

    def stop(self, role: str, grace: float = 10.0) -> int | None:
        """SIGTERM the current process of `role`; its exit code (-9: SIGKILLed after `grace`)."""
        child = self.current[role]
        child.stop(grace)
        return child.popen.returncode


class Watcher:
    """One MQTT client on ``status/#``, ``orders/NAME``, ``fills/NAME`` and ``deadletter/#``.

    Per component and process (``pid``), it keeps the fields of every status merged: the
    latest value of each counter survives the will message of a killed process.

    It reconnects by itself when the broker comes back (subscribing again). QoS 1 on
    orders and fills: what the broker delivers, it delivers at least once to the watcher.
    Messages published while the watcher is cut off are not seen: its counts are the bus
    as a subscriber saw it, next to each component's own counters.
    """

    def __init__(self, port: int, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._statuses: dict[str, dict[int, dict[str, Any]]] = {}
        self.order_ids: Counter[str] = Counter()
        self.fills = 0
        self.dead_letters: Counter[str] = Counter()
        self.injected = 0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._connected = threading.Event()
        self._client.on_disconnect = lambda *_: self._connected.clear()
        self._client.connect_async("127.0.0.1", port)
        self._client.loop_start()
        if not self._connected.wait(START_TIMEOUT_S):
            raise RuntimeError(f"the watcher cannot reach the broker on port {port}")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        filters = ["status/#", f"orders/{self._name}", f"fills/{self._name}", "deadletter/#"]
        client.subscribe([(topic, 1) for topic in filters])
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = None
        with self._lock:
            if topic.startswith("status/") and isinstance(payload, dict) and "pid" in payload:
                # Merged, not replaced: the will of a killed process says only "offline".
                self._statuses.setdefault(topic, {}).setdefault(payload["pid"], {}).update(payload)
            elif topic.startswith("deadletter/"):
                self.dead_letters[topic.removeprefix("deadletter/")] += 1
            elif topic.startswith("fills/"):
                self.fills += 1
            elif isinstance(payload, dict) and "id" in payload:  # an order, not a bad payload
                self.order_ids[str(payload["id"])] += 1

    def status(self, component: str, pid: int | None = None) -> dict[str, Any]:
        """The latest status of the soak's `component`, from process `pid` (default: any)."""
        by_pid = self.every_status(component)
        if pid is not None:
            return by_pid.get(pid, {})
        return max(by_pid.values(), key=lambda s: s.get("ts", 0), default={})

    def every_status(self, component: str) -> dict[int, dict[str, Any]]:
        """The latest status of each process that ran as the soak's `component`, by pid."""
        with self._lock:
            by_pid = self._statuses.get(f"status/{component}/{self._name}", {})
            return {pid: dict(status) for pid, status in by_pid.items()}

    def inject(self, topic: str, payload: bytes) -> None:
        """Publish a bad payload (QoS 0); counted only when the broker could be reached."""
        info = self._client.publish(topic, payload)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.injected += 1

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


BAD_PAYLOADS: tuple[tuple[str, bytes], ...] = (
    ("quote", b"not json"),
    ("quote", b'{"price": 3}'),
    ("quote", b'{"sid": "X", "price": -1}'),
    ("quote", b'{"sid": "X", "price": NaN}'),
    ("quote", b"\xff\xfe"),
    ("control", b'{"rpc": 42}'),
    ("order", b"not an order"),
)
"""What `bad_payload` cycles through: (where it goes, payload)."""


def bad_payload(n: int, name: str, sid: str) -> tuple[str, bytes]:
    """Bad payload number `n`: a quote on ``quotes/SID`` (the bridge and execution reject
    it), a control command of the bridge, or an order execution cannot read."""
    kind, payload = BAD_PAYLOADS[n % len(BAD_PAYLOADS)]
    topics = {
        "quote": f"quotes/{sid}",
        "control": f"control/bridge/{name}",
        "order": f"orders/{name}",
    }
    return topics[kind], payload


def rss_of(children: dict[str, Child]) -> dict[str, float | None]:
    """VmRSS in MiB of each running child by role (None for one that is not running)."""
    figures: dict[str, float | None] = {}
    for role, child in children.items():
        try:
            figures[role] = round(rss_mb(child.pid), 1) if child.alive() else None
        except (OSError, RuntimeError):
            figures[role] = None
    return figures
