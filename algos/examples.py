"""Example algorithms: `RandomAlgo` and `MovingAverageCross`.

Serve one with ``tickbus algo serve algos.examples:RandomAlgo``.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from itertools import islice
from typing import Any

from algos._base import Algorithm
from algos._params import optional_int, param_float, param_int
from algos._run import Order
from tickbus.errors import ConfigError

__all__ = ["MovingAverageCross", "RandomAlgo"]


class RandomAlgo(Algorithm):
    """Buys at random: a baseline and a smoke test for the whole stack.

    On each quote it draws ``random()`` in [0, 1); when the draw is above
    ``threshold`` it buys ``portfolio.optimize(quote)`` shares, if that is > 0.
    It never sells.

    Params (besides ``starting_cash`` and ``channels``):
        threshold: Number in [0, 1], default 0.5. With 0 it buys on (almost)
            every quote it can afford; with 1 it never buys.
        seed: Optional int; the same seed and quotes give the same orders.
    """

    def __init__(self) -> None:
        self._threshold = 0.5
        self._random = random.Random()

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        """Read ``threshold`` and ``seed``; returns the class's channels.

        Raises:
            ConfigError: A param is of the wrong type or out of range.
        """
        threshold = param_float(params, "threshold", 0.5, low=0.0, high=1.0)
        seed = optional_int(params, "seed")
        self._threshold = threshold
        self._random = random.Random(seed)
        return list(self.channels)

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        """Buy the sized quantity when the draw beats the threshold."""
        if self._random.random() <= self._threshold:
            return []
        qty = self.portfolio.optimize(quote)
        order = self.buy(quote, qty) if qty > 0 else None
        return [order] if order is not None else []


class MovingAverageCross(Algorithm):
    """Trend following on a fast and a slow simple moving average, per symbol.

    For each symbol it keeps the last ``slow`` prices. Once it has them, it
    compares the fast MA (the last ``fast`` prices) with the slow MA (all
    ``slow``). When the fast MA goes from <= the slow MA to > it (an upward
    cross) it buys ``portfolio.optimize(quote)`` shares; on the opposite move
    it sells every share of that symbol it holds and is not already selling. The first full
    window only sets the starting side, so the first signal can come on
    quote ``slow + 1``. MAs within float rounding (relative 1e-12) of each
    other count as equal, so a flat price series never signals.

    Params (besides ``starting_cash`` and ``channels``):
        fast: Int >= 1, default 5.
        slow: Int > fast, default 20.
    """

    def __init__(self) -> None:
        self._fast = 5
        self._slow = 20
        self._prices: dict[str, deque[float]] = {}
        self._fast_above: dict[str, bool] = {}

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        """Read ``fast`` and ``slow``; returns the class's channels.

        Raises:
            ConfigError: A param is not an int, ``fast`` < 1, or ``fast`` >= ``slow``.
        """
        fast = param_int(params, "fast", 5, low=1)
        slow = param_int(params, "slow", 20, low=2)
        if fast >= slow:
            raise ConfigError(f"fast must be less than slow, got fast={fast} and slow={slow}")
        self._fast, self._slow = fast, slow
        self._prices = {}
        self._fast_above = {}
        return list(self.channels)

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        """Buy on an upward cross, sell the whole position on a downward one."""
        sid = quote["sid"]
        prices = self._prices.setdefault(sid, deque(maxlen=self._slow))
        prices.append(quote["price"])
        if len(prices) < self._slow:
            return []
        fast_above = self._fast_is_above(prices)
        was_above = self._fast_above.get(sid)
        self._fast_above[sid] = fast_above
        order = None
        if was_above is False and fast_above:
            qty = self.portfolio.optimize(quote)
            order = self.buy(quote, qty) if qty > 0 else None
        elif was_above and not fast_above:
            shares = self.portfolio.available_shares(sid)
            order = self.sell(quote, shares) if shares > 0 else None
        return [order] if order is not None else []

    def _fast_is_above(self, prices: deque[float]) -> bool:
        slow_ma = math.fsum(prices) / len(prices)
        fast_ma = math.fsum(islice(prices, len(prices) - self._fast, None)) / self._fast
        return fast_ma > slow_ma and not math.isclose(fast_ma, slow_ma, rel_tol=1e-12)
