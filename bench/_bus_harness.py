"""Processes and clients for bench/bus.py, and the bench's own child roles.

The parent side: `Children` (child processes with their output in log files,
all stopped at the end), `start_broker`, `StatusWatcher` (bridges' retained
statuses), `AlgoClient` (zerorpc to a `_bus_algos` server), /proc readings,
`Stack` (a server and its bridge) and the report's `medians` and `machine_info`.

The child side, run as ``python bench/bus.py --role ROLE ...`` (see
`run_role`): ``publish`` (a paho publisher, as fast as it can or paced with
absolute deadlines), ``subscribe`` (a bare paho subscriber that only counts:
the MQTT ceiling) and ``naive`` (the classic design, one synchronous zerorpc
call per MQTT message). A role prints ``ready`` once connected and one JSON
line with its figures at the end; it ignores Ctrl-C (the parent stops it) and
dies by SIGALRM after `CHILD_LIMIT_S`, so an orphan never runs for long.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gevent
import paho.mqtt.client as mqtt
import zerorpc

from algos.server import DEFAULT_HEARTBEAT_S
from broker import Quote, decode_quotes, encode_quote_json, encode_quotes_msgpack, quote_topic

REPO_ROOT = Path(__file__).resolve().parent.parent
BUS_SCRIPT = Path(__file__).resolve().parent / "bus.py"
CHILD_LIMIT_S = 900
"""A role child stops by itself (SIGALRM) after this long, whatever its parent does."""
START_TIMEOUT_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"bench/bus.py: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], Any], *, timeout: float, what: str, poll: float = 0.05
) -> Any:
    """Poll `condition` until it returns something truthy; RuntimeError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


# --- child processes -------------------------------------------------------------


class Child:
    """One child process: stdout in ``<name>.out`` (a role's ``ready`` and result), stderr
    in ``<name>.log``."""

    def __init__(self, name: str, args: Sequence[str], workdir: Path) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.log_path = workdir / f"{name}.log"
        with open(self.out_path, "wb") as out, open(self.log_path, "wb") as err:
            self.popen = subprocess.Popen(
                list(args),
                stdout=out,
                stderr=err,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.popen.poll() is None

    def output(self) -> list[str]:
        """The lines it printed on stdout so far."""
        return self.out_path.read_text(errors="replace").splitlines()

    def wait_ready(self, marker: str = "ready", timeout: float = START_TIMEOUT_S) -> None:
        """Wait until a stdout line starts with `marker`; RuntimeError if it exits first."""

        def ready() -> bool:
            if any(line.startswith(marker) for line in self.output()):
                return True
            self.check_alive()
            return False

        wait_until(ready, timeout=timeout, what=f"{self.name} to print {marker!r}")

    def check_alive(self) -> None:
        """RuntimeError with the tail of its log if the process has exited."""
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait for the process to exit (0) and return its last stdout line, parsed as JSON."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.name} did not finish within {timeout:g} s") from None
        lines = self.output()
        if code != 0 or not lines or not lines[-1].startswith("{"):
            raise RuntimeError(f"{self.name} exited with {code} and no result:\n{self.tail()}")
        return dict(json.loads(lines[-1]))

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` s."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.popen.wait()

    def tail(self, lines: int = 15) -> str:
        """The last lines of its stderr and stdout."""
        text = self.log_path.read_text(errors="replace").splitlines()
        text += self.out_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  {line}" for line in text[-lines:])


class Children:
    """Starts child processes; `stop_all` stops those still running, newest first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._started: list[Child] = []

    def start(self, name: str, *args: str) -> Child:
        """Start ``args`` as `name` (a unique log file name is made from it)."""
        child = Child(f"{len(self._started):02d}-{name}", args, self.workdir)
        self._started.append(child)
        return child

    def tickbus(self, name: str, *args: str) -> Child:
        """``python -m tickbus ARGS``, as a user runs it."""
        return self.start(name, sys.executable, "-m", "tickbus", *args)

    def role(self, role: str, *args: str) -> Child:
        """``python bench/bus.py --role ROLE ARGS``: a bench child (see `run_role`)."""
        return self.start(role, sys.executable, str(BUS_SCRIPT), "--role", role, *args)

    def cpu_s(self) -> float:
        """CPU seconds of this process and every child it started, grandchildren (mosquitto)
        included: the exited ones through `os.times`, the running ones through /proc."""
        times = os.times()
        running = [child.pid for child in self._started if child.alive()]
        running += [pid for parent in running for pid in child_pids(parent)]
        own = times.user + times.system + times.children_user + times.children_system
        return own + sum(cpu_s(pid) for pid in running)

    def stop_all(self) -> None:
        """Stop every child still running, the last started first (bridges before the broker)."""
        for child in reversed(self._started):
            child.stop()

    def report_failures(self) -> None:
        """Log the output tail of every child (after an error)."""
        for child in self._started:
            log(f"--- {child.name} (pid {child.pid}, exit {child.popen.poll()}):\n{child.tail()}")


def start_broker(children: Children) -> tuple[Child, int]:
    """``tickbus broker --engine mosquitto`` on a free port; returns it once it listens."""
    port = free_port()
    child = children.tickbus("broker", "broker", "--port", str(port), "--engine", "mosquitto")

    def listening() -> bool:
        child.check_alive()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout=START_TIMEOUT_S, what=f"mosquitto on port {port}")
    return child, port


# --- /proc readings --------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) `pid` has used; 0.0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (e.g. the mosquitto that ``tickbus broker`` runs)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


# --- parent-side clients ---------------------------------------------------------------


class StatusWatcher:
    """Keeps the latest retained status of every bridge (``status/bridge/+``)."""

    def __init__(self, port: int, protocol: str) -> None:
        self._latest: dict[str, dict[str, Any]] = {}
        self._subscribed = threading.Event()
        self._client = _paho_client(protocol)
        self._client.on_connect = lambda c, *_: c.subscribe("status/bridge/+", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(START_TIMEOUT_S):
            raise RuntimeError("the status watcher could not subscribe")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._latest[msg.topic.rsplit("/", 1)[1]] = json.loads(msg.payload)

    def latest(self, name: str) -> dict[str, Any]:
        """The last status bridge `name` published (empty before the first)."""
        return self._latest.get(name, {})

    def wait_online(self, bridge: Child, name: str) -> dict[str, Any]:
        """The first status of `name` that is online with its channels set."""

        def online() -> dict[str, Any] | None:
            bridge.check_alive()
            status = self.latest(name)
            return status if status.get("state") == "online" and status.get("channels") else None

        return dict(wait_until(online, timeout=START_TIMEOUT_S, what=f"bridge {name} online"))

    def wait_fresh(self, name: str, since: float) -> dict[str, Any]:
        """The first status of `name` published after `since` (``time.time()``)."""
        return dict(
            wait_until(
                lambda: (s := self.latest(name)) and s.get("ts", 0) > since and s,
                timeout=START_TIMEOUT_S,
                what=f"a status of bridge {name}",
            )
        )

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


class AlgoClient:
    """zerorpc calls to a `_bus_algos` server: the figures of its current run."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self._client = zerorpc.Client(timeout=60, heartbeat=DEFAULT_HEARTBEAT_S)
        self._client.connect(addr)

    def figures(self) -> dict[str, Any]:
        """The current run's counts (``state()["bench"]``)."""
        return dict(self._client("state")["bench"])

    def finish_run(self) -> dict[str, Any]:
        """The current run's counts and delay percentiles; a new run starts (``finalize``)."""
        return dict(self._client("finalize")["bench"])

    def wait_idle(self, quiet_s: float, timeout: float) -> dict[str, Any]:
        """Wait until quotes arrived and then none for `quiet_s`; the run's figures so far."""

        def idle() -> dict[str, Any] | None:
            figures = self.figures()
            quiet = figures["quotes"] and figures["idle_s"] >= quiet_s
            return figures if quiet else None

        return dict(wait_until(idle, timeout=timeout, what=f"{self.addr} to go idle", poll=0.2))

    def close(self) -> None:
        """Close the client."""
        self._client.close()


def _paho_client(protocol: str) -> mqtt.Client:
    """A paho 2.x client speaking MQTT `protocol` (``"5"`` or ``"3.1.1"``, as tickbus URLs
    say), with TCP_NODELAY and no limit on queued messages (QoS 0 here)."""
    version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=version)
    client.max_queued_messages_set(0)
    client.on_socket_open = _set_tcp_nodelay
    return client


def _set_tcp_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connect(client: mqtt.Client, port: int) -> None:
    """Connect, start paho's network thread and wait for the CONNACK."""
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(START_TIMEOUT_S):
        raise RuntimeError(f"no MQTT connection to port {port}")


def _subscribe(client: mqtt.Client, topics: Sequence[str]) -> None:
    """Subscribe (QoS 0) and wait for the SUBACK."""
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe([(topic, 0) for topic in topics])
    if not subscribed.wait(START_TIMEOUT_S):
        raise RuntimeError(f"no SUBACK for {topics}")


# --- the processes under test, and the report ------------------------------------------


@dataclass(frozen=True)
class StackSpec:
    """An algorithm server, and the bridge in front of it (if any).

    Attributes:
        prefix: Its symbols are PREFIX0, PREFIX1, ...
        algo: The `_bus_algos` class it serves.
        bridge: Whether a bridge forwards to it (the naive client talks to it directly).
        ring: The bridge reads the bench's ring instead of MQTT.
        tuned: The bridge gets the bench's ``--max-pending`` and its
            channels are its own topics; else every bridge option and the
            algorithm's channels (``quotes/#``) are the defaults.
        warm_up: Quotes go through it once, untimed, when it starts.
    """

    prefix: str
    algo: str = "CountingAlgo"
    bridge: bool = True
    ring: bool = False
    tuned: bool = True
    warm_up: bool = True


@dataclass
class Stack:
    """A running `StackSpec`: its server, bridge (or None) and RPC client."""

    kind: str
    name: str
    symbols: list[str]
    server: Child
    bridge: Child | None
    algo: AlgoClient

    def pids(self) -> dict[str, int]:
        """Process ids by role: ``bridge`` (when there is one) and ``algo``."""
        pids = {"algo": self.server.pid}
        if self.bridge is not None:
            pids["bridge"] = self.bridge.pid
        return pids


def medians(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the runs (None if any run had None)."""
    middle = {}
    for key in figures[0]:
        values = [f[key] for f in figures]
        middle[key] = None if None in values else statistics.median(values)
    return rounded(middle)


def rounded(figures: dict[str, Any]) -> dict[str, Any]:
    """Plain numbers (numpy's do not serialise): 3 decimals below 1000, whole above; ints
    and None stay."""
    return {key: _round(value) for key, value in figures.items()}


def _round(value: float | None) -> float | None:
    if value is None or isinstance(value, int):
        return value
    return round(float(value), 3 if abs(value) < 1000 else None)


def machine_info(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """Processor, Python, mosquitto and package versions, load averages before and after."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    packages = ("paho-mqtt", "zerorpc", "gevent", "pyzmq", "msgpack", "numpy")
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": models[0] if models else "",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mosquitto": mosquitto.stdout.split("\n", 1)[0],
        "versions": {package: version(package) for package in packages},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


# --- child roles -------------------------------------------------------------------------


def _payload_pool(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    """Pre-encoded (topic, payload) pairs cycling over the symbols, ``ts`` = now.

    JSON: one quote per message; packed: `args.batch` quotes of one symbol.
    """
    symbols, ts = args.symbols.split(","), time.time()
    pool = []
    for i in range(1024 if args.format == "json" else 64):
        sid = symbols[i % len(symbols)]
        quotes = [Quote(sid=sid, price=100.0 + (i + j) % 8 * 0.01, ts=ts) for j in range(8)]
        if args.format == "json":
            pool.append((quote_topic(sid), encode_quote_json(quotes[0])))
        else:
            batch = [quotes[j % 8] for j in range(args.batch)]
            pool.append((quote_topic(sid), encode_quotes_msgpack(batch)))
    return pool


def _fresh_payloads(symbols: Sequence[str]) -> Callable[[int], tuple[str, bytes]]:
    """Message i: one JSON quote of ``symbols[i % n]`` whose ``ts`` is ``time.time()`` now."""
    topics = [quote_topic(sid) for sid in symbols]

    def make(i: int) -> tuple[str, bytes]:
        sid = symbols[i % len(symbols)]
        quote = Quote(sid=sid, price=100.0 + i % 8 * 0.01, ts=time.time())
        return topics[i % len(topics)], encode_quote_json(quote)

    return make


def _cycle(args: argparse.Namespace) -> Callable[[int], tuple[str, bytes]]:
    """Message i: entry i (modulo its size) of the pre-encoded `_payload_pool`."""
    pool = _payload_pool(args)
    return lambda i: pool[i % len(pool)]


def publish_role(args: argparse.Namespace) -> dict[str, Any]:
    """Publish (QoS 0) until `args.seconds` pass or `args.count` messages went out.

    ``--rate 0``: as fast as the publisher can, cycling over a pre-encoded pool.
    ``--rate R`` (quotes/s): message i is due at start + i * per_message / R;
    each wake-up publishes every message due, then sleeps until the next one.
    ``--fresh-ts``: each message is encoded when sent, with ``ts`` = now.
    """
    client = _paho_client(args.protocol)
    _connect(client, args.port)
    per_message = args.batch if args.format == "packed" else 1
    message = _fresh_payloads(args.symbols.split(",")) if args.fresh_ts else _cycle(args)
    limit = args.count or sys.maxsize
    print("ready", flush=True)
    cpu0, start = time.process_time(), time.perf_counter()
    if args.rate:
        sent, late = _publish_paced(client, message, args.rate / per_message, args, limit)
    else:
        sent, late = _publish_burst(client, message, args.seconds, limit), 0.0
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return {
        "messages": sent,
        "quotes": sent * per_message,
        "elapsed_s": elapsed,
        "messages_per_s": sent / elapsed,
        "quotes_per_s": sent * per_message / elapsed,
        "cpu_s": time.process_time() - cpu0,
        "max_late_ms": late * 1e3,
    }


def _publish_burst(
    client: mqtt.Client, message: Callable[[int], tuple[str, bytes]], seconds: float, limit: int
) -> int:
    """Publish as fast as possible, checking the clock every 256 messages; waits for the
    last one to be written. Returns the messages sent."""
    publish, end, sent = client.publish, time.perf_counter() + seconds, 0
    info = None
    while sent < limit and time.perf_counter() < end:
        for i in range(sent, min(sent + 256, limit)):
            topic, payload = message(i)
            info = publish(topic, payload)
        sent = min(sent + 256, limit)
    if info is not None:
        info.wait_for_publish(START_TIMEOUT_S)
    return sent


def _publish_paced(
    client: mqtt.Client,
    message: Callable[[int], tuple[str, bytes]],
    per_s: float,
    args: argparse.Namespace,
    limit: int,
) -> tuple[int, float]:
    """Message i at start + i / per_s (absolute deadlines, no drift) for `args.seconds`;
    returns (messages sent, the most a wake-up came late in s)."""
    publish, clock = client.publish, time.perf_counter
    start = clock()
    end, sent, late = start + args.seconds, 0, 0.0
    while (now := clock()) < end and sent < limit:
        due = min(limit, int((now - start) * per_s) + 1)
        late = max(late, now - (start + sent / per_s))
        for i in range(sent, due):
            topic, payload = message(i)
            publish(topic, payload)
        sent = due
        time.sleep(max(0.0, start + sent / per_s - clock()))
    return sent, late


def subscribe_role(args: argparse.Namespace) -> dict[str, Any]:
    """Count messages on the topics of `args.symbols` until `args.idle` s pass without one.

    ``on_message`` only counts and stamps arrival times: the MQTT ceiling for a
    Python subscriber. Rate = (received - 1) / (last arrival - first arrival);
    ``cpu``: its CPU seconds (connecting included) per second of that span.
    """
    stamps = {"received": 0, "first": 0.0, "last": 0.0}
    clock, cpu0 = time.perf_counter, time.process_time()

    def on_message(_client: mqtt.Client, _userdata: Any, _msg: mqtt.MQTTMessage) -> None:
        now = clock()
        if not stamps["received"]:
            stamps["first"] = now
        stamps["last"] = now
        stamps["received"] += 1

    client = _paho_client(args.protocol)
    client.on_message = on_message
    _connect(client, args.port)
    _subscribe(client, [quote_topic(sid) for sid in args.symbols.split(",")])
    print("ready", flush=True)
    while not stamps["received"] or clock() - stamps["last"] < args.idle:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    span = stamps["last"] - stamps["first"]
    received = int(stamps["received"])
    return {
        "received": received,
        "per_s": (received - 1) / span if span else 0,
        "cpu": (time.process_time() - cpu0) / span if span else 0,
    }


def naive_role(args: argparse.Namespace) -> dict[str, Any]:
    """The classic design: one synchronous zerorpc ``event(quote)`` per MQTT message.

    paho's network thread appends each payload to a deque; the main thread
    (the gevent hub's, as zerorpc requires) takes them one by one, decodes and
    calls the server; an empty deque is polled with ``gevent.sleep(0.001)``.
    Counts the calls completed in `args.seconds` from the first message.
    """
    rpc = zerorpc.Client(timeout=60, heartbeat=DEFAULT_HEARTBEAT_S)
    rpc.connect(args.rpc)
    rpc("initialize", {})
    backlog: deque[bytes] = deque()
    client = _paho_client(args.protocol)
    client.on_message = lambda _c, _u, msg: backlog.append(msg.payload)
    _connect(client, args.port)
    _subscribe(client, [quote_topic(sid) for sid in args.symbols.split(",")])
    print("ready", flush=True)
    while not backlog:
        gevent.sleep(0.001)
    calls, clock = 0, time.perf_counter
    start = clock()
    while clock() < start + args.seconds:
        if backlog:
            rpc("event", decode_quotes(backlog.popleft())[0])
            calls += 1
        else:
            gevent.sleep(0.001)
    elapsed = clock() - start
    client.disconnect()
    client.loop_stop()
    rpc.close()
    return {
        "calls": calls,
        "elapsed_s": elapsed,
        "per_s": calls / elapsed,
        "backlog_left": len(backlog),
    }


ROLES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "publish": publish_role,
    "subscribe": subscribe_role,
    "naive": naive_role,
}


def _role_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bus.py --role", description="a bench/bus.py child")
    parser.add_argument("role", choices=list(ROLES))
    parser.add_argument("--port", type=int, required=True, help="the broker's MQTT port")
    parser.add_argument("--symbols", required=True, help="comma-separated; topics quotes/<SID>")
    parser.add_argument("--protocol", choices=("5", "3.1.1"), default="5", help="MQTT version")
    parser.add_argument("--format", choices=("json", "packed"), default="json")
    parser.add_argument("--batch", type=int, default=100, help="quotes per packed message")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=0, help="most messages (0: no limit)")
    parser.add_argument("--rate", type=float, default=0.0, help="quotes/s (0: no pacing)")
    parser.add_argument("--fresh-ts", action="store_true", help="ts = time.time() at publish")
    parser.add_argument("--idle", type=float, default=1.0, help="subscribe: stop when quiet")
    parser.add_argument("--rpc", help="naive: the algorithm server")
    return parser


def run_role(argv: Sequence[str]) -> None:
    """Run one child role and print its figures as one JSON line."""
    args = _role_parser().parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.alarm(CHILD_LIMIT_S)
    print(json.dumps(ROLES[args.role](args)), flush=True)
