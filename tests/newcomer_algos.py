"""Algorithms written as a newcomer writes them: no super(), a plain class, failing code.

Each also returns what it saw from ``state()`` (a user may extend it), so a
test can check that every quote arrived exactly once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from algos import Algorithm


class Counter(Algorithm):
    """The issue's example, as written there."""

    def initialize(self, params):  # type: ignore[no-untyped-def]
        self.seen = []
        return ["quotes/#"]

    def event(self, quote):  # type: ignore[no-untyped-def]
        self.seen.append(quote["sid"])
        return []

    def state(self) -> dict[str, Any]:
        return {**super().state(), "seen": len(self.seen)}


class RandomAlgo(Algorithm):
    """Seed style: initialize only sets threshold and returns ['quotes']."""

    def initialize(self, params):  # type: ignore[no-untyped-def]
        self.threshold = params.get("threshold", 0.5)
        self.ts: list[float] = []
        return ["quotes"]

    def event(self, quote):  # type: ignore[no-untyped-def]
        self.ts.append(quote["ts"])
        if random.random() > self.threshold:
            return [self.buy(quote, self.portfolio.optimize(quote))]
        return None

    def state(self) -> dict[str, Any]:
        return {**super().state(), "ts": self.ts}


class PlainRandomAlgo(object):  # noqa: UP004 - the seed writes it so
    """A plain class: no base class, orders as dicts."""

    def initialize(self, params):  # type: ignore[no-untyped-def]
        self.threshold = params.get("threshold", 0.5)
        return ["quotes/#"]

    def event(self, quote):  # type: ignore[no-untyped-def]
        if random.random() > self.threshold:
            return [{"sid": quote["sid"], "side": "buy", "qty": 1}]
        return None


class ThirdQuoteFails(Algorithm):
    """Raises on every third quote it sees."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self.n = 0
        return ["quotes/#"]

    def event(self, quote: Mapping[str, Any]) -> None:
        self.n += 1
        if self.n % 3 == 0:
            raise ValueError(f"quote {self.n} is cursed")


class EventsAlwaysRaises(Algorithm):
    """Overrides events (the batched RPC) and always raises."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        return ["quotes/#"]

    def event(self, quote: Mapping[str, Any]) -> None:
        return None

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Any]:
        raise RuntimeError(f"cannot take {len(quotes)} quotes")


class ScribblesOnQuotes(Algorithm):
    """Buys 1 share every 50th quote, then writes absurd prices into the quote it was handed."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self.n = 0
        return ["quotes/#"]

    def event(self, quote: Mapping[str, Any]) -> list[Any] | None:
        self.n += 1
        order = self.buy(quote, 1) if self.n % 50 == 0 else None
        scribbled: dict[str, Any] = quote  # type: ignore[assignment]
        scribbled.update(price=1e6, bid=1e6, ask=1e6)
        return None if order is None else [order]
