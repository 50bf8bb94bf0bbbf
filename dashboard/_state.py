"""What the dashboard knows: the bus's statuses, orders, fills, rejections and dead letters.

`BusState` is fed from paho's network thread (`on_message`) and read by the
web server (`snapshot`). Everything it keeps is bounded: the newest status
per component, the last `HISTORY` orders, fills, rejections and dead letters,
and per bridge the last `EQUITY_POINTS` equity samples (one per status the
bridge publishes, about one a second). A payload that is not JSON is kept as
text, never dropped silently, and never stops the dashboard.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from tickbus._status import (
    DEFAULT_FORGET_AFTER,
    DEFAULT_STALE_AFTER,
    judge,
    key_counters,
    split_long_offline,
)

HISTORY = 200
"""Orders, fills, rejections and dead letters kept, each."""

EQUITY_POINTS = 3_600
"""Equity samples kept per bridge (an hour at one status a second)."""

FILTERS = ("status/#", "orders/+", "orders/+/rejected", "fills/+", "deadletter/#")
"""What the dashboard subscribes to."""


class BusState:
    """The dashboard's bounded picture of the bus (see the module docstring).

    Args:
        stale_after: An online status older than this is shown stale.
        forget_after: A component stopped cleanly longer ago is left out.
        clock: Wall time, for ages.
    """

    def __init__(
        self,
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        forget_after: float = DEFAULT_FORGET_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stale_after = stale_after
        self._forget_after = forget_after
        self._clock = clock
        self._lock = threading.Lock()
        self._statuses: dict[str, bytes] = {}
        self._equity: dict[str, deque[tuple[float, float]]] = {}
        self._orders: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._fills: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._rejections: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._dead_letters: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._published: tuple[float, int] | None = None
        self._quote_rate = 0.0
        self.version = 0
        """Bumped by every change: a pusher sends a snapshot only when it moved."""

    def on_message(self, topic: str, payload: bytes) -> None:
        """Take one message of `FILTERS` (paho's thread)."""
        parts = topic.split("/")
        now = self._clock()
        with self._lock:
            self.version += 1
            if parts[0] == "status":
                self._on_status(topic, parts, payload, now)
            elif parts[0] == "fills":
                self._fills.append(_record(parts[1], payload, now))
            elif parts[0] == "orders":
                rejected = len(parts) == 3
                (self._rejections if rejected else self._orders).append(
                    _record(parts[1], payload, now)
                )
            elif parts[0] == "deadletter":
                self._dead_letters.append(_record("/".join(parts[1:]), payload, now))

    def _on_status(self, topic: str, parts: list[str], payload: bytes, now: float) -> None:
        if not payload:  # cleared: `tickbus status --forget`
            self._statuses.pop(topic, None)
            return
        self._statuses[topic] = payload
        if len(parts) == 3 and parts[1] == "bridge":
            equity = _equity_of(payload)
            if equity is not None:
                points = self._equity.setdefault(parts[2], deque(maxlen=EQUITY_POINTS))
                points.append((now, equity))
        if len(parts) == 3 and parts[1] == "feed":
            self._note_published(now)

    def _note_published(self, now: float) -> None:
        """Quotes per second of the online feeds, from their ``published`` counters."""
        total = 0
        for topic, payload in self._statuses.items():
            if topic.startswith("status/feed/"):
                status = _json(payload)
                if isinstance(status, dict) and status.get("state") == "online":
                    total += int(status.get("published") or 0)
        previous, self._published = self._published, (now, total)
        if previous is not None and now - previous[0] >= 0.5:
            self._quote_rate = max(0.0, (total - previous[1]) / (now - previous[0]))
        elif previous is not None:
            self._published = previous  # too close to measure: keep the older point

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready data."""
        now = self._clock()
        with self._lock:
            payloads = dict(self._statuses)
            equity = {name: list(points) for name, points in self._equity.items()}
            lists = {
                "orders": list(self._orders),
                "fills": list(self._fills),
                "rejections": list(self._rejections),
                "dead_letters": list(self._dead_letters),
            }
            version, rate = self.version, self._quote_rate
        judged = judge(payloads, now=now, stale_after=self._stale_after)
        kept, gone = split_long_offline(judged, forget_after=self._forget_after)
        components = [
            {
                "component": s.component,
                "name": s.name,
                "health": s.health,
                "age_s": None if s.age is None else round(s.age, 1),
                "reason": s.status.get("reason"),
                "counters": key_counters(s.component, s.status),
            }
            for s in kept
        ]
        bridges = {
            s.name: _bridge(s.health, s.status, equity.get(s.name, []))
            for s in kept
            if s.component == "bridge"
        }
        return {
            "version": version,
            "now": now,
            "quotes_per_s": round(rate, 1),
            "components": components,
            "hidden": [s.key for s in gone],
            "bridges": bridges,
            **{key: value[::-1] for key, value in lists.items()},  # newest first
        }


def _bridge(
    health: str, status: Mapping[str, Any], equity: list[tuple[float, float]]
) -> dict[str, Any]:
    algo = _mapping(status.get("algo"))
    portfolio = _mapping(algo.get("portfolio"))
    return {
        "health": health,
        "rpc": status.get("rpc"),
        "algorithm": algo.get("algorithm"),
        "killed": status.get("killed"),
        "orders": status.get("orders", 0),
        "fills": status.get("fills", 0),
        "orders_rejected": status.get("orders_rejected", 0),
        "equity": portfolio.get("equity"),
        "cash": portfolio.get("cash"),
        "realised_pnl": portfolio.get("realised_pnl"),
        "unrealised_pnl": portfolio.get("unrealised_pnl"),
        "positions": _mapping(portfolio.get("positions")),
        "equity_curve": [[round(ts, 3), value] for ts, value in equity],
        "last_swap": status.get("last_swap"),
    }


def _equity_of(payload: bytes) -> float | None:
    status = _json(payload)
    if not isinstance(status, dict):
        return None
    equity = _mapping(_mapping(status.get("algo")).get("portfolio")).get("equity")
    return float(equity) if isinstance(equity, int | float) else None


def _record(source: str, payload: bytes, now: float) -> dict[str, Any]:
    """A message as a row: its JSON object (or its text), where from, when received."""
    body = _json(payload)
    if isinstance(body, dict):
        return {"source": source, "received": now, **body}
    return {"source": source, "received": now, "text": payload[:500].decode(errors="replace")}


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
