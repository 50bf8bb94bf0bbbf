"""The live view's board and rendering, fed with status payloads as components publish them.

The real `tickbus view` runs against the session's broker, reading statuses
this test published under names of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from tests.support import REPO_ROOT, publish_retained, unique
from tickbus._view import StatusBoard, render


def status(board: StatusBoard, topic: str, **fields: object) -> None:
    board.on_status(topic, json.dumps(fields).encode())


def test_render_shows_rate_orders_fills_equity_and_problems() -> None:
    board = StatusBoard()
    status(board, "status/execution/paper", state="online", fills=6)
    status(board, "status/feed/synthetic", state="online", published=100)
    board.quotes_per_second(now=10.0)
    status(board, "status/feed/synthetic", state="online", published=300)
    status(
        board,
        "status/bridge/random",
        state="online",
        forwarded=250,
        orders=7,
        fills=6,
        orders_rejected=2,
        killed="runaway",
        rpc="tcp://127.0.0.1:4242",
        algo={
            "portfolio": {
                "equity": 100123.456,
                "cash": 5000.0,
                "realised_pnl": -12.5,
                "unrealised_pnl": 135.956,
                "positions": {"GOOG": {"qty": 40, "avg_cost": 2500.0, "last_price": 2503.4}},
            }
        },
    )
    status(board, "status/bridge/sma", state="degraded", reason="algorithm lost", forwarded=3)
    board.on_status("status/bridge/garbage", b"not json")
    lines = render(board, now=12.0, broker_url="mqtt://127.0.0.1:1883")
    text = "\n".join(lines)
    assert "quotes/s     100.0" in text
    assert "feeds: synthetic online" in text
    random_row = next(line for line in lines if line.startswith("random"))
    assert random_row.split() == [
        "random",
        "online",
        "250",
        "7",
        "6",
        "100,123.46",
        "5,000.00",
        "-12.50",
        "135.96",
        "tcp://127.0.0.1:4242",
    ]
    assert lines[lines.index(random_row) + 1].split() == [
        "positions:",
        "GOOG",
        "40",
        "@",
        "2,500.00",
    ]
    assert "execution: paper online" in text
    assert "! kill switch on: runaway" in text
    assert "2 orders refused by risk checks" in text
    assert "! algorithm lost" in text
    assert "garbage" not in text


def test_render_before_anything_reported() -> None:
    lines = render(StatusBoard(), now=1.0, broker_url="mqtt://h:1")
    assert "(no bridge has reported yet)" in lines
    assert "feeds: none yet" in lines[1]
    assert "execution: none (orders are not filled)" in lines[1]


# -- components that stopped long ago, and the algorithm behind each bridge ---------------


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_offline_components_older_than_forget_after_are_hidden_and_counted() -> None:
    clock = Clock(1_000_000.0)
    board = StatusBoard(forget_after=60.0, clock=clock)
    now = clock.now
    status(board, "status/feed/old", state="offline", ts=now - 61, published=5)
    status(board, "status/feed/live", state="online", ts=now, published=5)
    status(board, "status/execution/timeless", state="offline")
    status(board, "status/bridge/recent", state="offline", ts=now - 59, forwarded=1)
    status(board, "status/bridge/gone", state="offline", ts=now - 3600, forwarded=1)
    status(board, "status/bridge/hung", state="online", ts=now - 3600, forwarded=1)

    assert list(board.of("feed")) == ["live"]
    assert list(board.of("execution")) == []
    assert list(board.of("bridge")) == ["hung", "recent"], "only offline ones are hidden"
    assert board.hidden() == ["bridge/gone", "execution/timeless", "feed/old"]
    lines = render(board, now=1.0, broker_url="mqtt://h:1")
    assert lines[0].endswith("(3 offline for over 60s not shown)")
    assert "execution: none (orders are not filled)" in lines[1]
    assert [line.split()[0] for line in lines[4:]] == ["hung", "recent"]

    clock.now += 2
    assert list(board.of("bridge")) == ["hung"], "recent is 61 s old now"


def test_a_component_lost_without_a_clean_stop_stays_until_it_runs_again() -> None:
    clock = Clock(1_000_000.0)
    board = StatusBoard(forget_after=60.0, clock=clock)
    started = clock.now - 3600
    status(board, "status/bridge/b", state="online", ts=clock.now, forwarded=1)
    # Its will: stamped when it connected, an hour ago, and marked lost.
    status(board, "status/bridge/b", state="offline", lost=True, ts=started)
    clock.now += 3600
    assert list(board.of("bridge")) == ["b"] and board.hidden() == []
    status(board, "status/bridge/b", state="online", ts=clock.now)
    assert list(board.of("bridge")) == ["b"], "back online"
    status(board, "status/bridge/b", state="offline", ts=clock.now)  # a clean stop
    clock.now += 61
    assert board.of("bridge") == {} and board.hidden() == ["bridge/b"]


def test_a_cleared_status_removes_the_component() -> None:
    board = StatusBoard()
    status(board, "status/feed/f", state="offline")
    status(board, "status/bridge/b", state="online", forwarded=1)
    board.on_status("status/feed/f", b"")
    board.on_status("status/bridge/b", b"")
    assert board.of("feed") == {} and board.of("bridge") == {} and board.hidden() == []


def test_a_bridge_row_names_its_algorithm_class_and_the_line_below_its_address() -> None:
    board = StatusBoard()
    status(
        board,
        "status/bridge/sma",
        state="online",
        forwarded=123456789,
        orders=1234567,
        fills=123456,
        rpc="tcp://127.0.0.1:55231",
        algo={
            "algorithm": "algos.examples:MovingAverageCross",
            "portfolio": {
                "equity": 1_100_138.2,
                "cash": 982_135.18,
                "realised_pnl": -123_458.05,
                "unrealised_pnl": 123_480.14,
                "positions": {"GOOG": {"qty": 18, "avg_cost": 500.65}},
            },
        },
    )
    status(board, "status/bridge/old", state="online", rpc="tcp://127.0.0.1:4242", algo={})
    status(board, "status/bridge/odd", state="online", algo={"algorithm": 42}, rpc="tcp://x:1")
    status(board, "status/bridge/bare", state="online", algo="not a dict")
    lines = render(board, now=1.0, broker_url="mqtt://h:1")
    rows = {line.split()[0]: line for line in lines[3:] if not line.startswith(" ")}
    assert rows["sma"].split()[-1] == "MovingAverageCross"
    assert rows["sma"].split()[2:5] == ["123456789", "1234567", "123456"]
    below = lines[lines.index(rows["sma"]) + 1]
    assert below.split() == [
        "rpc",
        "tcp://127.0.0.1:55231",
        "positions:",
        "GOOG",
        "18",
        "@",
        "500.65",
    ]
    assert max(len(line) for line in [lines[3], rows["sma"], below]) <= 120
    assert rows["old"].split()[-1] == "tcp://127.0.0.1:4242", "no class: the address"
    assert rows["odd"].split()[-1] == "tcp://x:1"
    assert rows["bare"].split()[:2] == ["bare", "online"]
    after_old = lines[lines.index(rows["old"]) + 1]
    assert after_old == rows["sma"], "the address is in the row: no line below"


# -- the real command ------------------------------------------------------------------


def last_view(mqtt_url: str, *flags: str) -> list[str]:
    """Run `tickbus view` for a few refreshes; the lines of its last one."""
    args = ["view", "--mqtt", mqtt_url, "--interval", "0.3", "--duration", "1.2", *flags]
    view = subprocess.run(
        [sys.executable, "-m", "tickbus", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert view.returncode == 0, view.stderr
    refreshes = view.stdout.split("\ntickbus  ")
    assert len(refreshes) >= 2, view.stdout
    return refreshes[-1].splitlines()


def test_the_view_hides_long_offline_components_and_names_each_algorithm(
    mqtt_url: str, mosquitto_port: int
) -> None:
    swapped, old, recent = unique("swapped"), unique("old"), unique("recent")
    now = time.time()
    statuses: dict[str, dict[str, Any]] = {
        f"bridge/{swapped}": {
            "state": "online",
            "ts": now,
            "forwarded": 12,
            "rpc": "tcp://127.0.0.1:4243",
            "algo": {"algorithm": "algos.examples:RandomAlgo", "portfolio": {"cash": 10.0}},
        },
        f"bridge/{old}": {"state": "offline", "ts": now - 600, "forwarded": 3},
        f"bridge/{recent}": {"state": "offline", "ts": now - 5, "forwarded": 4},
    }
    publish_retained(mosquitto_port, {k: json.dumps(v).encode() for k, v in statuses.items()})

    rows = {line.split()[0]: line.split() for line in last_view(mqtt_url) if line.strip()}
    assert rows[swapped][:3] == [swapped, "online", "12"]
    assert rows[swapped][-1] == "RandomAlgo"
    assert rows[recent][:2] == [recent, "offline"]
    assert old not in rows

    rows = {
        line.split()[0]: line.split()
        for line in last_view(mqtt_url, "--forget-after", "2")
        if line.strip()
    }
    assert swapped in rows and old not in rows and recent not in rows
