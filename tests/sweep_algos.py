"""Algorithms for the sweep's fault tests: one whose worker dies once, one that raises."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from algos import Order
from algos.examples import MovingAverageCross

FAULT_AT_QUOTE = 50


class Faulty(MovingAverageCross):
    """A moving-average cross that, by its ``mode`` param, dies or raises on quote 50.

    ``mode=die`` kills its own process (``os._exit``) on the first attempt
    only: it leaves ``<marker>-<symbol>`` behind, and a later attempt that
    finds it trades as ``mode=ok`` does. ``mode=raise`` raises every time.
    """

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self.mode = str(params.get("mode", "ok"))
        self.marker = str(params.get("marker", ""))
        self.handled = 0
        return super().initialize(params)

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        self.handled += 1
        if self.handled == FAULT_AT_QUOTE:
            if self.mode == "raise":
                raise ValueError(f"quote {FAULT_AT_QUOTE} is cursed")
            marker = Path(f"{self.marker}-{quote['sid']}")
            if self.mode == "die" and not marker.exists():
                marker.touch()
                os._exit(3)
        return super().event(quote)
