"""The live view: quotes/s, orders and fills per algorithm, each portfolio's equity, PnL, positions.

It reads nothing but the retained status topics (``status/#``), so it works
against any tickbus stack: local, in Docker, or on another host.

Components stopped cleanly longer than `ViewConfig.forget_after` ago drop out
of the view; a component lost without a clean stop (the broker's will) stays
until it runs again or is forgotten (see `tickbus._status`).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from broker import BusClient, MqttSettings
from tickbus._status import DEFAULT_FORGET_AFTER, long_offline, status_age

CLEAR_SCREEN = "\x1b[H\x1b[2J"
NAME_WIDTH = 12
"""The bridge column's width; longer names widen it for every row."""
_INDENT = " " * 14
"""Where a bridge's detail lines (address, positions) start."""


@dataclass(frozen=True, kw_only=True)
class ViewConfig:
    """How the live view runs.

    Attributes:
        mqtt: The broker whose status topics are read.
        interval: Seconds between refreshes (1.0).
        duration: Stop after this many seconds; None runs until stopped.
        forget_after: Hide components whose last status is ``offline`` and older
            than this many seconds, or without a ``ts`` (60.0).
    """

    mqtt: MqttSettings
    interval: float = 1.0
    duration: float | None = None
    forget_after: float = DEFAULT_FORGET_AFTER


class StatusBoard:
    """The latest status of every component, fed from paho's thread, read by the renderer.

    Components stopped cleanly more than `forget_after` seconds ago are left
    out of `of` (and listed by `hidden`); a status's age is its ``ts`` to
    `clock()` (wall time).
    """

    def __init__(
        self,
        *,
        forget_after: float = DEFAULT_FORGET_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.forget_after = forget_after
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._published: tuple[float, int] | None = None

    def on_status(self, topic: str, payload: bytes) -> None:
        """Keep the newest status per ``status/<component>/<name>``; ignore bad ones.

        An empty payload (a cleared status: ``tickbus status --forget``) removes
        the component.
        """
        parts = topic.split("/")
        if len(parts) != 3:
            return
        key = (parts[1], parts[2])
        if not payload:
            with self._lock:
                self._latest.pop(key, None)
            return
        try:
            status = json.loads(payload)
        except ValueError:
            return
        if isinstance(status, dict):
            with self._lock:
                self._latest[key] = status

    def of(self, component: str) -> dict[str, dict[str, Any]]:
        """Name -> latest status, for every component of this kind that is not long offline."""
        now = self._clock()
        with self._lock:
            return {
                n: s
                for (c, n), s in sorted(self._latest.items())
                if c == component and not self._is_long_offline(s, now)
            }

    def hidden(self) -> list[str]:
        """``component/name`` of every component left out for being long offline, sorted."""
        now = self._clock()
        with self._lock:
            return [
                f"{c}/{n}"
                for (c, n), s in sorted(self._latest.items())
                if self._is_long_offline(s, now)
            ]

    def _is_long_offline(self, status: Mapping[str, Any], now: float) -> bool:
        age = status_age(status, now=now)
        return long_offline(status, age, forget_after=self.forget_after)

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
    """The view's lines: a header, the feeds and execution, and one row per bridge.

    Each bridge's row ends with its algorithm's class (from ``algo["algorithm"]``
    in its status, ``"module:Class"``), or its address when the status does not
    name it; the line below gives the address (``rpc ...``) and the positions.
    Rows stay within 120 columns for bridge names of up to 10 characters and
    class names of up to 18 (``MovingAverageCross``).

    Args:
        board: The statuses.
        now: A monotonic time, for the quote rate.
        broker_url: Shown in the header.
    """
    feeds = board.of("feed")
    executions = board.of("execution")
    hidden = board.hidden()
    header = f"tickbus  {time.strftime('%H:%M:%S')}  broker {broker_url}"
    if hidden:
        header += f"   ({len(hidden)} offline for over {board.forget_after:g}s not shown)"
    lines = [
        header,
        f"quotes/s {board.quotes_per_second(now):9.1f}   feeds: "
        + (", ".join(f"{n} {s.get('state')}" for n, s in feeds.items()) or "none yet")
        + "   execution: "
        + (
            ", ".join(f"{n} {s.get('state')}" for n, s in executions.items())
            or "none (orders are not filled)"
        ),
    ]
    bridges = board.of("bridge")
    width = max([NAME_WIDTH, *(len(name) + 2 for name in bridges)])
    lines += [
        "",
        f"{'bridge':<{width}}{'state':<10}{'quotes':>9}{'orders':>8}{'fills':>7}{'equity':>14}"
        f"{'cash':>14}{'realised':>12}{'unrealised':>12}  algorithm",
    ]
    for name, status in bridges.items():
        lines += _bridge_lines(name, status, width=width)
    if not bridges:
        lines.append("(no bridge has reported yet)")
    return lines


def _bridge_lines(name: str, status: Mapping[str, Any], *, width: int) -> list[str]:
    """A bridge's row (its name `width` wide), its address and positions line, its problems."""
    algo = _mapping(status.get("algo"))
    portfolio = _mapping(algo.get("portfolio"))
    rpc = status.get("rpc") or ""
    algorithm = _algorithm_class(algo)
    row = (
        f"{name:<{width}}{status.get('state', '?'):<10}{status.get('forwarded', 0):>9}"
        f"{status.get('orders', 0):>8}{status.get('fills', 0):>7}"
        f"{_money(portfolio.get('equity')):>14}"
        f"{_money(portfolio.get('cash')):>14}{_money(portfolio.get('realised_pnl')):>12}"
        f"{_money(portfolio.get('unrealised_pnl')):>12}  {algorithm or rpc}"
    )
    lines = [row.rstrip()]
    details = [f"rpc {rpc}"] if algorithm and rpc else []
    if portfolio.get("positions"):
        details.append(_positions(portfolio["positions"]))
    if details:
        lines.append(_INDENT + "   ".join(details))
    if status.get("reason"):
        lines.append(f"{'':<12}! {status['reason']}")
    if status.get("killed"):
        lines.append(f"{'':<12}! kill switch on: {status['killed']}")
    if status.get("orders_rejected"):
        lines.append(f"{'':<12}  {status['orders_rejected']} orders refused by risk checks")
    return lines


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one: a bad status must not stop the view."""
    return value if isinstance(value, dict) else {}


def _algorithm_class(algo: Mapping[str, Any]) -> str:
    """``"algos.examples:RandomAlgo"`` -> ``"RandomAlgo"``; "" when the state does not say."""
    spec = algo.get("algorithm")
    if not isinstance(spec, str):
        return ""
    return spec.rpartition(":")[2].strip()


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
    board = StatusBoard(forget_after=config.forget_after)
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
