"""The live view: quotes/s, orders and fills per algorithm, each portfolio's equity, PnL, positions.

It reads nothing but the retained status topics (``status/#``), so it works
against any tickbus stack: local, in Docker, or on another host.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from broker import BusClient, MqttSettings

CLEAR_SCREEN = "\x1b[H\x1b[2J"


@dataclass(frozen=True, kw_only=True)
class ViewConfig:
    """How the live view runs.

    Attributes:
        mqtt: The broker whose status topics are read.
        interval: Seconds between refreshes (1.0).
        duration: Stop after this many seconds; None runs until stopped.
    """

    mqtt: MqttSettings
    interval: float = 1.0
    duration: float | None = None


class StatusBoard:
    """The latest status of every component, fed from paho's thread, read by the renderer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._published: tuple[float, int] | None = None

    def on_status(self, topic: str, payload: bytes) -> None:
        """Keep the newest status per ``status/<component>/<name>``; ignore bad ones."""
        parts = topic.split("/")
        try:
            status = json.loads(payload)
        except ValueError:
            return
        if len(parts) == 3 and isinstance(status, dict):
            with self._lock:
                self._latest[(parts[1], parts[2])] = status

    def of(self, component: str) -> dict[str, dict[str, Any]]:
        """Name -> latest status, for every component of this kind."""
        with self._lock:
            return {n: s for (c, n), s in sorted(self._latest.items()) if c == component}

    def quotes_per_second(self, now: float) -> float:
        """Quotes per second published by online feeds since the previous call."""
        total = sum(
            int(s.get("published", 0))
            for s in self.of("feed").values()
            if s.get("state") == "online"
        )
        previous, self._published = self._published, (now, total)
        if previous is None or now <= previous[0]:
            return 0.0
        return max(0.0, (total - previous[1]) / (now - previous[0]))


def render(board: StatusBoard, *, now: float, broker_url: str) -> list[str]:
    """The view's lines: a header, the feeds and execution, and one row per bridge."""
    feeds = board.of("feed")
    executions = board.of("execution")
    lines = [
        f"tickbus  {time.strftime('%H:%M:%S')}  broker {broker_url}",
        f"quotes/s {board.quotes_per_second(now):9.1f}   feeds: "
        + (", ".join(f"{n} {s.get('state')}" for n, s in feeds.items()) or "none yet")
        + "   execution: "
        + (
            ", ".join(f"{n} {s.get('state')}" for n, s in executions.items())
            or "none (orders are not filled)"
        ),
        "",
        f"{'bridge':<12}{'state':<10}{'quotes':>10}{'orders':>9}{'fills':>8}{'equity':>14}"
        f"{'cash':>14}{'realised':>12}{'unrealised':>12}  algorithm",
    ]
    for name, status in board.of("bridge").items():
        portfolio = ((status.get("algo") or {}).get("portfolio")) or {}
        lines.append(
            f"{name:<12}{status.get('state', '?'):<10}{status.get('forwarded', 0):>10}"
            f"{status.get('orders', 0):>9}{status.get('fills', 0):>8}"
            f"{_money(portfolio.get('equity')):>14}"
            f"{_money(portfolio.get('cash')):>14}{_money(portfolio.get('realised_pnl')):>12}"
            f"{_money(portfolio.get('unrealised_pnl')):>12}  {status.get('rpc', '')}"
        )
        if portfolio.get("positions"):
            lines.append(f"{'':<12}  {_positions(portfolio['positions'])}")
        if status.get("reason"):
            lines.append(f"{'':<12}! {status['reason']}")
        if status.get("killed"):
            lines.append(f"{'':<12}! kill switch on: {status['killed']}")
        if status.get("orders_rejected"):
            lines.append(f"{'':<12}  {status['orders_rejected']} orders refused by risk checks")
    if not board.of("bridge"):
        lines.append("(no bridge has reported yet)")
    return lines


def _money(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, int | float) else "-"


def _positions(positions: Any) -> str:
    """``GOOG 40 @ 101.20, AAPL 12 @ 190.00``: shares and average cost per symbol."""
    if not isinstance(positions, dict):
        return "positions: ?"
    held = [
        f"{sid} {p.get('qty', '?')} @ {_money(p.get('avg_cost'))}"
        for sid, p in positions.items()
        if isinstance(p, dict)
    ]
    return "positions: " + ", ".join(held)


def run_view(
    config: ViewConfig,
    *,
    out: TextIO = sys.stdout,
    keep_going: Callable[[], bool] = lambda: True,
    footer: str = "",
) -> None:
    """Refresh the view every `config.interval` s until `duration` passes or `keep_going()` fails.

    On a terminal the view is redrawn in place; otherwise (a pipe, docker logs)
    each refresh is printed below the previous one. `footer` goes under the table.
    """
    board = StatusBoard()
    redraw = out.isatty()
    deadline = None if config.duration is None else time.monotonic() + config.duration
    with BusClient(
        config.mqtt, component="view", name="view", on_message=board.on_status, announce=False
    ) as bus:
        bus.subscribe(["status/#"])
        while keep_going() and (deadline is None or time.monotonic() < deadline):
            time.sleep(config.interval)
            lines = render(board, now=time.monotonic(), broker_url=config.mqtt.url)
            lines += ["", footer] if footer else []
            out.write((CLEAR_SCREEN if redraw else "\n") + "\n".join(lines) + "\n")
            out.flush()
