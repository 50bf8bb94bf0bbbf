"""`OrderDesk`: where an algorithm's orders meet the bus, and its fills come back.

Every order the algorithm returns passes the desk's `risk.OrderScreen`
(stamped with the bridge's name, validated against the bus's order schema,
checked by the `RiskGate` against the limits and the kill switch); only then
is it published on ``orders/<name>`` (QoS 1).

A refused order is published on ``orders/<name>/rejected`` with its reason
(``by: "bridge"``), counted, and reported back to the algorithm so that its
portfolio frees what the order held.

In the other direction, fills (``fills/<name>``) and execution's rejections
(``orders/<name>/rejected``, ``by: "execution"``) become a `Report` each, which
the desk delivers to the algorithm with the RPC ``fill``, in arrival order.
A report the algorithm cannot be reached for is kept and delivered after the
reconnect: a fill is never dropped by the bridge.

Not thread-safe: the hub's greenlet calls everything but `report_from`, which
paho's thread calls (it touches no state).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from algos import REJECTED_KEY
from bridge._link import AlgorithmLink
from broker import (
    REJECTED_BY_BRIDGE,
    BusClient,
    Quote,
    decode_report,
    encode_order,
    fills_topic,
    orders_topic,
    rejected_order_id,
    rejected_orders_topic,
    rejection_notice,
)
from risk import OrderScreen, Refusal, RiskGate
from tickbus.errors import AlgorithmError
from tickbus.logs import LogThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """What execution said about one order, for the algorithm's ``fill`` call.

    Attributes:
        body: The argument of ``fill``: a fill as execution published it, or
            ``{"order_id": id, "rejected": reason}``.
        refused: For a rejection, the order refused after the gate let it
            through, so the gate stops counting it; None for a fill.
    """

    body: dict[str, Any]
    refused: Mapping[str, Any] | None = None


@dataclass
class DeskCounters:
    """Published on the bridge's status."""

    orders: int = 0
    orders_rejected: int = 0
    bad_orders: int = 0
    fills: int = 0
    execution_rejections: int = 0
    fill_errors: int = 0


class OrderDesk:
    """Checks and publishes one algorithm's orders; delivers its fills and rejections.

    Args:
        name: The bridge's name (the orders' ``algo``).
        gate: The risk gate every valid order must pass (in the desk's `screen`).
        bus: Where orders and rejection notices are published.
        dead_letter: Called with (reason, topic, payload) for what cannot go
            anywhere else; the topic is where it came from or was headed.
    """

    def __init__(
        self,
        name: str,
        gate: RiskGate,
        bus: BusClient,
        dead_letter: Callable[[str, str, bytes], None],
    ) -> None:
        self.screen = OrderScreen(name, gate)
        self.gate = gate
        self.counters = DeskCounters()
        self._name = name
        self._bus = bus
        self._dead_letter = dead_letter
        self._orders_topic = orders_topic(name)
        self._rejected_topic = rejected_orders_topic(name)
        self._fills_topic = fills_topic(name)
        self._refusal_log = LogThrottle(log, level=logging.INFO)
        self._report_log = LogThrottle(log)
        self._pending: deque[Report] = deque()

    @property
    def pending(self) -> int:
        """Reports waiting for the algorithm to be reachable."""
        return len(self._pending)

    def note_prices(self, quotes: Sequence[Quote]) -> None:
        """Remember each symbol's last price, for the limits that need it."""
        self.screen.note_prices(quotes)

    def seed(self, state: Mapping[str, Any]) -> None:
        """Start the gate's positions from an algorithm's `state()`: held plus open orders.

        A state without the base class's ``portfolio`` keys leaves the gate as it is.
        """
        try:
            held = {sid: p["qty"] for sid, p in state["portfolio"]["positions"].items()}
            for order in state["portfolio_snapshot"]["open_orders"].values():
                signed = order["qty"] if order["side"] == "buy" else -order["qty"]
                held[order["sid"]] = held.get(order["sid"], 0) + signed
        except (KeyError, TypeError, AttributeError):
            log.warning("the algorithm's state has no positions: risk positions start at 0")
            return
        self.gate.reset_positions(held)

    def submit(self, orders: Sequence[Any]) -> None:
        """Check every order; publish those that pass, refuse the others (see the module doc)."""
        for order in orders:
            checked = self.screen.check(order)
            if not isinstance(checked, Refusal):
                self._bus.publish(self._orders_topic, encode_order(checked), qos=1)
                self.counters.orders += 1
                continue
            if checked.invalid:
                self.counters.bad_orders += 1
            if checked.order is None:
                self._dead_letter(checked.reason, self._orders_topic, repr(order).encode()[:4096])
            else:
                self._refuse(checked.order, checked.reason)

    def report_from(self, topic: str, payload: bytes) -> Report | None:
        """The report a message on ``fills/<name>`` or ``orders/<name>/rejected`` carries.

        None for this bridge's own rejection notices (the algorithm was told
        already). Called on paho's thread.

        Raises:
            OrderRejected: The payload is not a usable fill or notice; the reason says why.
        """
        body = decode_report(payload)
        if topic != self._rejected_topic:
            return Report(body)
        if body.get("by") == REJECTED_BY_BRIDGE:
            return None
        order_id = rejected_order_id(body)
        reason = str(body.get("reason", "no reason given"))
        return Report({"order_id": order_id, REJECTED_KEY: reason}, refused=body["order"])

    def queue(self, report: Report) -> None:
        """Keep `report` for delivery; a refusal is taken off the gate's positions at once."""
        if report.refused is not None:
            self.counters.execution_rejections += 1
            self.gate.forget(report.refused)
        self._pending.append(report)

    def deliver(self, link: AlgorithmLink) -> None:
        """Give every kept report to the algorithm, oldest first.

        A report the algorithm raises on (a duplicate fill, a fill its book
        cannot take) is counted in ``fill_errors`` and dead-lettered.

        Raises:
            AlgorithmUnavailable: No answer; the report stays first in line.
        """
        while self._pending:
            report = self._pending[0]
            try:
                link.fill(report.body)
            except AlgorithmError as exc:
                self.counters.fill_errors += 1
                self._report_log.log("the algorithm refused a report: %s", exc.reason)
                topic = self._rejected_topic if REJECTED_KEY in report.body else self._fills_topic
                self._dead_letter(
                    f"the algorithm refused it: {exc.reason}", topic, repr(report.body).encode()
                )
            else:
                if REJECTED_KEY not in report.body:
                    self.counters.fills += 1
            self._pending.popleft()

    def _refuse(self, order: Mapping[str, Any], reason: str) -> None:
        self._refusal_log.log("refused an order of %s: %s", self._name, reason)
        self.counters.orders_rejected += 1
        self._bus.publish_json(
            self._rejected_topic, rejection_notice(order, reason, by=REJECTED_BY_BRIDGE), qos=1
        )
        order_id = order.get("id")
        if isinstance(order_id, str) and order_id:
            self._pending.append(Report({"order_id": order_id, REJECTED_KEY: reason}))
