"""`OrderScreen`: the checks every order of one algorithm passes before execution sees it.

1. It is stamped with the algorithm's name (``algo``) and validated against
   the bus's order schema (`broker.parse_order`);
2. the `RiskGate` checks it against the limits and the kill switch.

The screen knows no bus: the bridge publishes what passes and reports what
is refused; the backtester hands what passes to paper matching. One copy of
the rules for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker import Order, Quote, parse_order
from risk._gate import RiskGate
from tickbus.errors import OrderRejected


@dataclass(frozen=True)
class Refusal:
    """An order the screen did not let through, and why.

    Attributes:
        reason: Why, in words (``"invalid order: ..."``, or the gate's reason).
        order: The order as stamped, or None when it was not even an object.
        invalid: True when it broke the order schema (or was not an object),
            False when a risk limit or the kill switch refused a valid order.
    """

    reason: str
    order: Mapping[str, Any] | None
    invalid: bool


class OrderScreen:
    """Stamps, validates and risk-checks one algorithm's orders, one at a time.

    Not thread-safe, as the gate (apart from the gate's `RiskGate.kill` and
    `RiskGate.lift`).

    Args:
        name: The algorithm's name on the bus (each order's ``algo``).
        gate: The risk gate every valid order must pass.
    """

    def __init__(self, name: str, gate: RiskGate) -> None:
        self.name = name
        self.gate = gate
        self._last_prices: dict[str, float] = {}

    def note_prices(self, quotes: Iterable[Quote]) -> None:
        """Remember each symbol's last price, when a limit needs it (the notional)."""
        if self.gate.limits.max_order_notional is not None:
            self._last_prices.update((quote["sid"], quote["price"]) for quote in quotes)

    def check(self, order: object) -> Order | Refusal:
        """`order` stamped and validated when it passes (the gate then counts it), else why not."""
        if not isinstance(order, dict):
            reason = f"algorithm returned a bad order: not an object but {type(order).__name__}"
            return Refusal(reason, None, invalid=True)
        stamped = {**order, "algo": self.name}
        try:
            checked = parse_order(stamped)
        except OrderRejected as exc:
            return Refusal(f"invalid order: {exc.reason}", stamped, invalid=True)
        refused = self.gate.check(checked, self._last_prices.get(checked["sid"]))
        if refused is not None:
            return Refusal(refused, checked, invalid=False)
        return checked
