"""`tickbus up`: the whole stack as child processes, shown trading, and stopped cleanly."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from broker import broker_listening
from tests.support import Processes, free_port, wait_until


def bridge_rows(output: str) -> dict[str, list[str]]:
    """The last row the view printed for each bridge: name -> columns."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        columns = line.split()
        if len(columns) >= 9 and columns[0] in ("random", "sma") and columns[1] == "online":
            rows[columns[0]] = columns
    return rows


def assert_all_stopped(log_dir: Path, broker_port: int | None) -> None:
    """Every algorithm server `up` started (from their logs) and its broker are gone."""
    served = [
        port
        for log in log_dir.glob("algo-*.log")
        for port in re.findall(r"serving \S+ on tcp://127\.0\.0\.1:(\d+)", log.read_text())
    ]
    assert len(served) == 2, "both algorithm servers had started"
    for port in served:
        assert not broker_listening("127.0.0.1", int(port)), f"algorithm on {port} still up"
    if broker_port is not None:
        assert not broker_listening("127.0.0.1", broker_port), "broker still up"


def dashboard_state(page: str) -> dict[str, Any] | None:
    """The dashboard's /api/state once it shows both bridges with orders, else None."""
    try:
        with urllib.request.urlopen(f"{page}api/state", timeout=2) as answer:
            state: dict[str, Any] = json.loads(answer.read())
    except OSError:
        return None
    bridges = state["bridges"]
    if {"random", "sma"} <= set(bridges) and bridges["random"]["fills"] > 0 and state["orders"]:
        return state
    return None


def test_up_starts_a_broker_trades_and_stops_everything(procs: Processes, tmp_path: Path) -> None:
    port, page_port = free_port(), free_port()
    up = procs.tickbus(
        "up",
        "--port",
        str(port),
        "--duration",
        "8",
        "--rate",
        "100",
        "--log-dir",
        str(tmp_path / "logs"),
        "--dashboard-port",
        str(page_port),
        name="up",
    )
    page = f"http://localhost:{page_port}/"
    state = wait_until(lambda: dashboard_state(page), timeout=30, what="the dashboard's state")
    assert {c["name"] for c in state["components"]} >= {"random", "sma", "paper", "synthetic"}
    assert up.wait(timeout=60) == 0, up.log()
    assert f"dashboard: {page}" in up.log()
    output = up.log()
    rows = bridge_rows(output)
    assert set(rows) == {"random", "sma"}, output
    assert int(rows["random"][3]) > 0, "RandomAlgo sent orders"
    assert int(rows["random"][4]) > 0, "paper execution filled them"
    assert int(rows["random"][2]) > 0 and int(rows["sma"][2]) > 0, "quotes reached both"
    assert "stopped every process" in output
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "algo-random.log",
        "algo-sma.log",
        "bridge-random.log",
        "bridge-sma.log",
        "broker.log",
        "dashboard.log",
        "execution.log",
        "feed.log",
    ]
    assert_all_stopped(tmp_path / "logs", port)


def test_up_uses_a_broker_that_already_listens(
    procs: Processes, mosquitto_port: int, tmp_path: Path
) -> None:
    up = procs.tickbus(
        "up",
        "--port",
        str(mosquitto_port),
        "--duration",
        "4",
        "--log-dir",
        str(tmp_path),
        name="up",
    )
    assert up.wait(timeout=60) == 0, up.log()
    assert f"a broker already listens on 127.0.0.1:{mosquitto_port}; using it" in up.log()
    assert not (tmp_path / "broker.log").exists()
    assert broker_listening("127.0.0.1", mosquitto_port), "the existing broker is left alone"
    assert_all_stopped(tmp_path, None)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_up_stops_every_child_on_a_signal(
    procs: Processes, tmp_path: Path, signum: signal.Signals
) -> None:
    port = free_port()
    up = procs.tickbus("up", "--port", str(port), "--log-dir", str(tmp_path), name="up")
    wait_until(lambda: len(bridge_rows(up.log())) == 2, timeout=30, what="both bridges online")
    up.signal(signum)
    assert up.wait(timeout=30) == 0, up.log()
    assert "stopped every process" in up.log()
    assert_all_stopped(tmp_path, port)


def test_up_with_an_unreachable_broker_fails_clearly_and_leaves_nothing_running(
    procs: Processes, tmp_path: Path
) -> None:
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    up = procs.tickbus("up", "--mqtt", url, "--log-dir", str(logs), name="up")
    assert up.wait(timeout=60) != 0
    assert f"cannot reach the MQTT broker at {url}: nothing listens on 127.0.0.1:{port}" in up.log()
    assert "Traceback" not in up.log()
    # The broker is checked before any child starts (is a stack already there?).
    assert list(logs.glob("*.log")) == [], "up started nothing"


def test_up_with_auth_logs_every_process_in_as_its_role(procs: Processes, tmp_path: Path) -> None:
    port, logs = free_port(), tmp_path / "logs"
    page_port = free_port()
    up = procs.tickbus(
        "up", "--auth", "--port", str(port), "--duration", "8", "--rate", "100",
        "--log-dir", str(logs), "--dashboard-port", str(page_port), name="up",
    )  # fmt: skip
    page = f"http://localhost:{page_port}/"
    state = wait_until(lambda: dashboard_state(page), timeout=30, what="the dashboard as viewer")
    assert state["fills"], "the viewer reads the fills"
    assert up.wait(timeout=60) == 0, up.log()
    rows = bridge_rows(up.log())
    assert set(rows) == {"random", "sma"}, up.log()
    assert int(rows["random"][3]) > 0 and int(rows["random"][4]) > 0, "orders, and their fills"
    credentials = logs / "credentials"
    assert sorted(p.name for p in credentials.glob("*.password")) == [
        f"{role}.password"
        for role in ("bridge", "execution", "feed", "operator", "recorder", "relay", "viewer")
    ]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in credentials.glob("*.password"))
    assert "Not authorized" not in "".join(p.read_text() for p in logs.glob("*.log"))
    assert_all_stopped(logs, port)


def test_up_with_auth_refuses_a_broker_it_did_not_start(procs: Processes, tmp_path: Path) -> None:
    result = procs.tickbus("up", "--auth", "--mqtt", "mqtt://127.0.0.1:1", name="up")
    assert result.wait(timeout=30) != 0
    assert "--auth starts a broker of its own" in result.log()
