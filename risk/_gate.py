"""Pre-trade risk limits: the checks applied to every order before it reaches execution.

Live, the gate runs in the bridge, outside the algorithm's process, so a
broken or runaway algorithm cannot skip it; the backtester runs the same gate
in process. It knows nothing of MQTT: the caller asks `RiskGate.check` about
each order and acts on the refused ones with their reason.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tickbus.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class RiskLimits:
    """Per-algorithm limits; None turns a limit off.

    Attributes:
        max_order_qty: Most shares in one order.
        max_order_notional: Most ``qty * price`` in one order, priced at the
            order's limit price, else at the last quote of its symbol.
        max_position: Most shares held in one symbol, long or short, counting
            every order let through as if it filled.
        max_orders_per_s: Most orders let through in any one-second window.
    """

    max_order_qty: int | None = None
    max_order_notional: float | None = None
    max_position: int | None = None
    max_orders_per_s: float | None = None

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"risk limit {spec.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(
                    f"risk limit {spec.name} must be a finite number > 0, got {value}"
                )

    @classmethod
    def from_file(cls, path: Path) -> RiskLimits:
        """Read limits from a JSON object such as ``{"max_order_qty": 100}``.

        Raises:
            ConfigError: The file cannot be read, is not a JSON object, names an
                unknown limit, or holds a bad value; the reason names the file.
        """
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read risk limits from {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"risk limits in {path} must be a JSON object")
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown risk limits in {path}: {unknown}; known: {sorted(known)}")
        return cls(**raw)

    def merged(self, overrides: Mapping[str, Any]) -> RiskLimits:
        """These limits with every non-None value of `overrides` put over them."""
        values = {spec.name: getattr(self, spec.name) for spec in fields(self)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return RiskLimits(**values)


class RiskGate:
    """Decides, order by order, whether an algorithm's order may go onto the bus.

    Not thread-safe: the bridge's hub calls it, apart from `kill` and `lift`,
    which set one attribute and may be called from any thread (so a kill
    applies to the very next order). An order let through counts at once
    toward the position and rate limits.

    Args:
        limits: The limits to enforce.
        clock: Monotonic seconds, for the rate limit; tests inject one.
    """

    def __init__(self, limits: RiskLimits, *, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.killed: str | None = None
        self._clock = clock
        self._positions: dict[str, int] = {}
        self._recent: deque[float] = deque()

    def kill(self, reason: str) -> None:
        """Refuse every order from now on, with `reason`, until `lift`."""
        self.killed = reason

    def lift(self) -> None:
        """Let orders through again (each still checked against the limits)."""
        self.killed = None

    def forget(self, order: Mapping[str, Any]) -> None:
        """Stop counting an order let through that will not fill (execution rejected it).

        An order that is not a mapping with ``sid``, ``side`` and an int ``qty``
        is ignored: it never passed `check`.
        """
        try:
            sid, side, qty = order["sid"], order["side"], order["qty"]
        except (KeyError, TypeError):
            return
        if isinstance(sid, str) and isinstance(qty, int) and side in ("buy", "sell"):
            self._positions[sid] = self.position(sid) - (qty if side == "buy" else -qty)

    def reset_positions(self, positions: Mapping[str, int]) -> None:
        """Count from `positions` (shares by symbol, orders let through included) from now on."""
        self._positions = dict(positions)

    def position(self, sid: str) -> int:
        """Shares in `sid` implied by the orders let through (sells count negative)."""
        return self._positions.get(sid, 0)

    def check(self, order: Mapping[str, Any], last_price: float | None) -> str | None:
        """Why `order` is refused, or None when it passes (and is then counted).

        Args:
            order: A valid order: ``sid``, ``side``, ``qty`` and, for a limit
                order, ``limit_price``.
            last_price: The last quote price of the order's symbol, or None
                when the bridge has seen none.
        """
        reason = self._refusal(order, last_price)
        if reason is None:
            signed = order["qty"] if order["side"] == "buy" else -order["qty"]
            self._positions[order["sid"]] = self.position(order["sid"]) + signed
            if self.limits.max_orders_per_s is not None:
                self._recent.append(self._clock())
        return reason

    def _refusal(self, order: Mapping[str, Any], last_price: float | None) -> str | None:
        limits, qty, sid = self.limits, order["qty"], order["sid"]
        killed = self.killed  # read once: another thread may lift it meanwhile
        if killed is not None:
            return f"kill switch on: {killed}"
        if limits.max_order_qty is not None and qty > limits.max_order_qty:
            return f"qty {qty} is above max_order_qty {limits.max_order_qty}"
        if limits.max_order_notional is not None:
            price = order.get("limit_price") or last_price
            if price is None:
                return f"no price known for {sid} to check max_order_notional"
            if qty * price > limits.max_order_notional:
                return (
                    f"notional {qty * price:.2f} is above max_order_notional "
                    f"{limits.max_order_notional:g}"
                )
        if limits.max_position is not None:
            after = self.position(sid) + (qty if order["side"] == "buy" else -qty)
            if abs(after) > limits.max_position:
                return (
                    f"position in {sid} would be {after}, beyond max_position {limits.max_position}"
                )
        if limits.max_orders_per_s is not None:
            now = self._clock()
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= limits.max_orders_per_s:
                return f"more than max_orders_per_s {limits.max_orders_per_s:g} orders in 1 s"
        return None
