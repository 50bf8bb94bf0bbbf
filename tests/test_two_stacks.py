"""One name, one process: a second component or stack with a running one's names is refused.

Real mosquitto, the real CLI in subprocesses. The first process must go on undisturbed:
no reconnect (a second process with its fixed client id would have kicked it off the
broker), no status from another pid on its topic, and for a stack, fills only for its
own orders.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    REPO_ROOT,
    Mosquitto,
    MqttRecorder,
    Proc,
    Processes,
    publish_retained,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_until,
)

KINDS = ("bridge", "feed", "execution")
REFUSED_WITHIN_S = 10.0  # a live component answers its heartbeat within a second or two


def start(procs: Processes, kind: str, mqtt_url: str, name: str, rpc: str | None) -> Proc:
    """Start one component of `kind` named `name` (a bridge forwards to `rpc`)."""
    if kind == "bridge":
        assert rpc is not None
        return start_bridge(procs, mqtt_url, rpc, name, "channels=quotes/NOTHING")
    if kind == "feed":
        args = ["feed", "synthetic", "--symbols", unique("S").upper(), "--rate", "5"]
        return procs.tickbus(*args, "--mqtt", mqtt_url, "--name", name, name=f"feed-{name}")
    return procs.tickbus(
        "execution", "paper", "--mqtt", mqtt_url, "--name", name, name=f"execution-{name}"
    )


def heartbeats(rec: MqttRecorder, kind: str, name: str, pid: int) -> list[dict[str, Any]]:
    """The live statuses process `pid` sent on ``status/<kind>/<name>``, with counters."""
    return [
        status
        for status in rec.json_on(f"status/{kind}/{name}")
        if status.get("pid") == pid and status["state"] == "online" and "mqtt_reconnects" in status
    ]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``tickbus ARGS`` to completion, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "tickbus", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_component_with_a_running_ones_name_is_refused_and_the_first_goes_on(
    kind: str, procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name = unique(f"{kind}-")
    rpc = (
        serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo") if kind == "bridge" else None
    )
    with recorder(mosquitto_port, f"status/{kind}/{name}") as rec:
        first = start(procs, kind, mqtt_url, name, rpc)
        pid = first.popen.pid
        wait_until(lambda: heartbeats(rec, kind, name, pid), timeout=20, what=f"{kind} online")

        second = start(procs, kind, mqtt_url, name, rpc)
        assert second.wait(timeout=REFUSED_WITHIN_S) != 0, second.log()
        seen = len(heartbeats(rec, kind, name, pid))
        wait_until(
            lambda: len(heartbeats(rec, kind, name, pid)) >= seen + 2,
            timeout=10,
            what="two more heartbeats of the first",
        )

        article = "an" if kind == "execution" else "a"
        assert f"{article} {kind} named {name!r} is already running on {mqtt_url}" in second.log()
        assert f"(pid {pid}, last status" in second.log()
        assert "give this one another --name" in second.log()
        assert "Traceback" not in second.log()
        assert first.alive(), first.log()
        assert {s["pid"] for s in rec.json_on(f"status/{kind}/{name}")} == {pid}
        assert heartbeats(rec, kind, name, pid)[-1]["mqtt_reconnects"] == 0, "never kicked off"

        first.signal(signal.SIGKILL)
        first.wait(timeout=5)
        again = start(procs, kind, mqtt_url, name, rpc)
        wait_until(
            lambda: heartbeats(rec, kind, name, again.popen.pid),
            timeout=20,
            what=f"the same name started again after kill -9 of the first {kind}",
        )


@pytest.mark.parametrize(
    ("state", "age", "extra_at_most"),
    [("online", 600.0, 1.0), ("offline", 0.0, 1.0), ("online", 0.0, 2.5 + 1.5)],
    ids=["old-online-ghost", "offline", "recent-online-ghost"],
)
def test_a_status_nobody_answers_for_does_not_block_a_start(
    state: str, age: float, extra_at_most: float, mosquitto_port: int, mqtt_url: str
) -> None:
    """A ghost: retained online but no heartbeat. An old one costs nothing; a recent one
    costs the wait for a heartbeat (2.5 s); offline costs nothing either.

    Timed against the same start without any status, run just before, so the
    machine's load does not count."""

    def start_feed(name: str) -> float:
        started = time.monotonic()
        result = run_cli(
            "feed", "synthetic", "--mqtt", mqtt_url, "--name", name, "--count", "1", "--rate", "0"
        )
        assert result.returncode == 0, result.stderr
        return time.monotonic() - started

    baseline = start_feed(unique("clean-"))
    name = unique("ghost-")
    ghost = {"state": state, "component": "feed", "name": name, "pid": 1, "ts": time.time() - age}
    publish_retained(mosquitto_port, {f"feed/{name}": json.dumps(ghost).encode()})
    took = start_feed(name)
    assert took - baseline < extra_at_most, f"{took:.1f} s, {baseline:.1f} s without the ghost"


def stack_logs(log_dir: Path) -> list[str]:
    """The children's logs `up` wrote into `log_dir`: none, when it started nothing."""
    return sorted(p.name for p in log_dir.glob("*.log")) if log_dir.exists() else []


def test_a_second_stack_on_the_same_broker_is_refused_and_the_first_trades_alone(
    procs: Processes, own_broker: Mosquitto, tmp_path: Path
) -> None:
    url, port = own_broker.url, own_broker.port
    topics = ("status/#", "orders/+", "fills/+")
    with recorder(port, *topics) as rec:
        first = procs.tickbus(
            "up", "--mqtt", url, "--rate", "100", "--log-dir", str(tmp_path / "first"), name="up"
        )
        wait_until(lambda: rec.json_on("fills/random"), timeout=40, what="the first stack's fills")
        for option in (["--mqtt", url], ["--port", str(port)]):
            log_dir = tmp_path / unique("second")
            second = run_cli("up", *option, "--log-dir", str(log_dir), "--duration", "5")
            assert second.returncode != 0, second.stderr
            assert f"a tickbus stack already runs on {url}: " in second.stderr
            for component in (
                "execution 'paper'",
                "bridge 'random'",
                "bridge 'sma'",
                "feed 'synthetic'",
            ):
                assert component in second.stderr
            assert "tickbus up --port " in second.stderr
            assert "a broker already listens" not in second.stderr
            assert stack_logs(log_dir) == [], "the second stack started nothing"
        # RandomAlgo never sells, so it may have spent its cash by now: count both algorithms.
        seen = len(rec.on("fills/+"))
        wait_until(
            lambda: len(rec.on("fills/+")) > seen, timeout=20, what="fills after the refusals"
        )
        assert first.alive(), first.log()
        first.signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.log()
    status_pids: dict[str, set[int]] = {}
    for topic, payload in rec.messages:
        if topic.startswith("status/"):
            status_pids.setdefault(topic, set()).add(json.loads(payload)["pid"])
    assert all(len(pids) == 1 for pids in status_pids.values()), status_pids
    for algo in ("random", "sma"):
        order_ids = [order["id"] for order in rec.json_on(f"orders/{algo}")]
        filled = [fill["order_id"] for fill in rec.json_on(f"fills/{algo}")]
        assert set(filled) <= set(order_ids), f"{algo}: a fill for an order it never sent"
        assert len(filled) == len(set(filled)), f"{algo}: an order filled twice"
    assert rec.json_on("fills/random"), "the first stack traded"
