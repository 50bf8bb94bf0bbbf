"""The benchmark's workload as tickbus users write it: a moving-average cross on the mid.

Per symbol, the mid ``(bid + ask) / 2`` rounded to the cent feeds a fast and
a slow simple moving average, kept incrementally (running sums over one
window). On an upward cross (fast from <= slow to > slow) it buys 10 shares
when flat; on a downward cross it sells the whole position. backtrader,
NautilusTrader and the bare loop in ``_backtest_harness.py`` run the very
same rule (`Crossing`) on the same numbers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from algos import Algorithm, Order


class Crossing:
    """One symbol's moving averages; `update` says ``"up"``, ``"down"`` or None per mid."""

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.window: deque[float] = deque()
        self.fast_sum = self.slow_sum = 0.0
        self.above: bool | None = None

    def update(self, mid: float) -> str | None:
        window = self.window
        window.append(mid)
        self.fast_sum += mid
        self.slow_sum += mid
        if len(window) > self.fast:
            self.fast_sum -= window[-self.fast - 1]
        if len(window) > self.slow:
            self.slow_sum -= window.popleft()
        if len(window) < self.slow:
            return None
        above = self.fast_sum * self.slow > self.slow_sum * self.fast
        was, self.above = self.above, above
        if was is False and above:
            return "up"
        if was and not above:
            return "down"
        return None


class BenchMovingAverageCross(Algorithm):
    """Buy 10 on an upward cross when flat, sell everything on a downward one."""

    def initialize(self, params: Mapping[str, Any]) -> None:
        self.fast = int(params.get("fast", 10))
        self.slow = int(params.get("slow", 30))
        self.crossings: dict[str, Crossing] = {}

    def event(self, quote: Mapping[str, Any]) -> list[Order | None] | None:
        sid = quote["sid"]
        crossing = self.crossings.get(sid)
        if crossing is None:
            crossing = self.crossings[sid] = Crossing(self.fast, self.slow)
        signal = crossing.update(round((quote["bid"] + quote["ask"]) / 2, 2))
        if signal == "up" and sid not in self.portfolio.positions:
            return [self.buy(quote, 10)]
        if signal == "down":
            held = self.portfolio.available_shares(sid)
            if held:
                return [self.sell(quote, held)]
        return None
