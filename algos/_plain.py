"""Serving a plain class: one with ``initialize(params)`` and ``event(quote)``, no base class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from algos._base import Algorithm


class PlainAlgorithm(Algorithm):
    """Adapts an object with ``initialize`` and ``event`` to the full algorithm contract.

    The object keeps its own attributes and is called exactly as written:
    ``initialize(params)`` returns its channels (None for the defaults),
    ``event(quote)`` returns None or a list of order requests
    (``{"sid", "side", "qty"[, "limit_price"]}``), which are placed through
    the adapter's `Portfolio` as `Algorithm.buy`/`Algorithm.sell` place them.
    The portfolio is composed alongside: counters, fills, `state` and
    `finalize` are the adapter's. If the object has no ``portfolio``
    attribute of its own, it gets the adapter's as ``self.portfolio``, so it
    can size its bets (``self.portfolio.optimize(quote)``).

    Args:
        inner: The plain algorithm instance.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._gave_portfolio = False

    def initialize(self, params: Mapping[str, Any]) -> list[str] | None:
        """Call the plain object's ``initialize``, after lending it the portfolio."""
        if self._gave_portfolio or not hasattr(self._inner, "portfolio"):
            self._inner.portfolio = self.portfolio
            self._gave_portfolio = True
        returned: list[str] | None = self._inner.initialize(params)
        return returned

    def event(self, quote: Mapping[str, Any]) -> Sequence[Any] | None:
        """Call the plain object's ``event``; what it returns is checked by `Algorithm.events`."""
        returned: Sequence[Any] | None = self._inner.event(quote)
        return returned

    def describe(self) -> str:
        """The plain class, as ``"module:Class"``."""
        cls = type(self._inner)
        return f"{cls.__module__}:{cls.__qualname__}"
