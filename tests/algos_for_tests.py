"""Algorithms that exist only to be served in tests (`tests.algos_for_tests:Name`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from algos import Algorithm, Order


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
