"""Algorithms that exist only to be served in tests (`tests.algos_for_tests:Name`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from algos import Algorithm, Order
from tickbus.errors import NotInitialized


class RecordingAlgo(Algorithm):
    """Orders nothing; keeps every quote it is given as [sid, ts, price], in order."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        channels = super().initialize(params)
        self.received: list[list[Any]] = []
        return channels

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        self.received.append([quote["sid"], quote["ts"], quote["price"]])
        return []

    def state(self) -> dict[str, Any]:
        return {**super().state(), "received": self.received}


class TimingAlgo(RecordingAlgo):
    """Also keeps, per quote, the seconds from its ``ts`` to the start of the events call."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        channels = super().initialize(params)
        self.delays: list[float] = []
        self._entered = 0.0
        return channels

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        self._entered = time.time()
        return super().events(quotes)

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        self.delays.append(self._entered - quote["ts"])
        return super().event(quote)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "delays": self.delays}


class SlowAlgo(RecordingAlgo):
    """A RecordingAlgo slower than its feed: every events call takes ``delay_s`` (param) more."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self._delay = float(params.get("delay_s", 0.05))
        return super().initialize(params)

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        time.sleep(self._delay)
        return super().events(quotes)


class OrderEveryQuote(Algorithm):
    """Places one market buy of ``qty`` shares (param, default 1) on every quote it can cover."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self._qty = int(params.get("qty", 1))
        return super().initialize(params)

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        order = self.buy(quote, self._qty)
        return [order] if order is not None else []


UNSAFE_STATES: dict[str, dict[str, Any]] = {
    "int_keys": {"by_id": {1: "x"}},
    "nan": {"pnl": [float("nan")]},
    "bytes": {"raw": b"\xff"},
    "set": {"ids": {1, 2}},
    "none": {},
}
"""What `UnsafeStateAlgo` adds to its state, by the ``unsafe`` param."""


class UnsafeStateAlgo(RecordingAlgo):
    """A RecordingAlgo whose state() is not JSON-safe: it adds ``UNSAFE_STATES[unsafe]``.

    The ``unsafe`` param picks the breach (default ``int_keys``); ``none`` adds nothing.
    """

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self._unsafe = UNSAFE_STATES[str(params.get("unsafe", "int_keys"))]
        return super().initialize(params)

    def state(self) -> dict[str, Any]:
        return {**super().state(), **self._unsafe}


class UnsafeOrdersAlgo(RecordingAlgo):
    """A RecordingAlgo whose `events` override returns an order with an int key."""

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        super().events(quotes)
        return [{1: "not an order"}]  # type: ignore[list-item]


class ForgetfulAlgo(Algorithm):
    """A broken server: its events always answers that it is not initialized."""

    def event(self, quote: Mapping[str, Any]) -> None:
        return None

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        raise NotInitialized("ForgetfulAlgo forgot its initialize")
