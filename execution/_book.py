"""Paper matching: validated orders and quotes in, fills and rejections out. No MQTT here.

The book is plain Python so its pricing can be tested without a broker. It is
not thread-safe: one caller at a time (the service holds one lock around every
call, so a quote and an order are never matched concurrently).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import NamedTuple, TypedDict

from broker import Order, Quote

MAX_SEEN_ORDERS = 1_000_000
"""How many (algo, id) pairs the book remembers to refuse duplicates; older ones are forgotten."""

MAX_WAITING_ORDERS = 10_000
"""Most orders waiting at once; each quote of a symbol re-checks all of its waiting orders."""

_BPS = 10_000.0


class Fill(TypedDict):
    """One execution of a whole order, as published on ``fills/<algo>``.

    Attributes:
        id: The fill's own id, a uuid4 hex.
        order_id: The ``id`` of the order it fills.
        algo: The algorithm that sent the order.
        sid: The symbol, upper-case.
        side: ``"buy"`` or ``"sell"``.
        qty: Shares, the order's whole ``qty`` (no partial fills).
        price: The price per share, slippage included.
        fee: ``|qty * price| * fee_bps / 10,000``.
        ts: When the fill happened, seconds since the epoch.
    """

    id: str
    order_id: str
    algo: str
    sid: str
    side: str
    qty: int
    price: float
    fee: float
    ts: float


class Rejection(NamedTuple):
    """An order the book gave up on, and why."""

    order: Order
    reason: str


class PaperBook:
    """Fills orders against the latest quote of their symbol, with slippage and a fee.

    Prices, with ``s = slippage_bps / 10,000``:

    * a buy looks at the quote's ``ask`` (its ``price`` when it has no ask); a
      market buy fills at ``ask * (1 + s)``; a limit buy fills once
      ``ask <= limit_price``, at ``min(ask * (1 + s), limit_price)``;
    * a sell looks at the ``bid`` (or ``price``); a market sell fills at
      ``bid * (1 - s)``; a limit sell fills once ``bid >= limit_price``, at
      ``max(bid * (1 - s), limit_price)``.

    An order whose symbol has no quote yet, and a limit order the market has
    not reached, waits; every later quote of its symbol re-checks the waiting
    orders of that symbol in arrival order. A waiting market order is given up
    after `quote_timeout` seconds (`expire`); a limit order waits until it
    fills or `cancel_all`. Orders fill whole, never in parts.

    An order is identified by ``(algo, id)``: a second order with the same
    pair is a duplicate, counted in `duplicates` and otherwise ignored, even
    when the first one was rejected. The book remembers the last
    `MAX_SEEN_ORDERS` pairs (in arrival order); a copy arriving after that many
    newer orders would be filled again.

    Args:
        slippage_bps: Slippage in basis points, ``0 <= slippage_bps < 10,000``.
        fee_bps: Fee in basis points of the traded value, ``>= 0``.
        quote_timeout: Seconds a market order may wait for a first quote.
        max_seen: How many order ids to remember for duplicate detection.
        max_waiting: Most orders waiting at once; beyond it, orders that
            would wait are rejected.
        clock: Wall clock for the fills' ``ts``.
        monotonic: Clock for timeouts.
        new_id: Makes a fill id.

    Attributes:
        waiting: How many orders wait for a quote or for the market to reach
            their limit. Read it, never set it (a plain attribute because the
            backtester reads it on every quote).
        duplicates: Orders ignored as duplicates so far.
    """

    def __init__(
        self,
        *,
        slippage_bps: float = 0.0,
        fee_bps: float = 0.0,
        quote_timeout: float = 5.0,
        max_seen: int = MAX_SEEN_ORDERS,
        max_waiting: int = MAX_WAITING_ORDERS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if not 0 <= slippage_bps < _BPS:
            raise ValueError(f"slippage_bps must be in [0, 10000), got {slippage_bps!r}")
        if fee_bps < 0:
            raise ValueError(f"fee_bps must be >= 0, got {fee_bps!r}")
        self._slippage = slippage_bps / _BPS
        self._fee = fee_bps / _BPS
        self._quote_timeout = quote_timeout
        self._max_seen = max_seen
        self._max_waiting = max_waiting
        self._clock, self._monotonic, self._new_id = clock, monotonic, new_id
        self._latest: dict[str, Quote] = {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Per symbol, the waiting orders in arrival order (dicts keep insertion order).
        self._waiting: dict[str, dict[tuple[str, str], Order]] = {}
        self.waiting = 0
        self._deadlines: deque[tuple[float, str, tuple[str, str]]] = deque()
        self.duplicates = 0

    def submit(self, order: Order) -> Fill | Rejection | None:
        """Take one validated order.

        Returns:
            Its fill, when the latest quote of its symbol fills it now; a
            `Rejection` when it would have to wait and `max_waiting` orders
            already do; None when it waits, or is a duplicate.
        """
        key = (order["algo"], order["id"])
        if key in self._seen:
            self.duplicates += 1
            return None
        self._remember(key)
        quote = self._latest.get(order["sid"])
        if quote is not None:
            fill = self._match(order, quote)
            if fill is not None:
                return fill
        if self.waiting >= self._max_waiting:
            return Rejection(order, f"too many waiting orders (the limit is {self._max_waiting})")
        self._waiting.setdefault(order["sid"], {})[key] = order
        self.waiting += 1
        if order["type"] == "market":
            deadline = self._monotonic() + self._quote_timeout
            self._deadlines.append((deadline, order["sid"], key))
        return None

    def on_quote(self, quote: Quote) -> list[Fill]:
        """Keep `quote` as its symbol's latest and fill the waiting orders it reaches, in order."""
        sid = quote["sid"]
        self._latest[sid] = quote
        waiting = self._waiting.get(sid)
        if not waiting:
            return []
        fills: list[Fill] = []
        for key, order in list(waiting.items()):
            fill = self._match(order, quote)
            if fill is not None:
                fills.append(fill)
                del waiting[key]
        self.waiting -= len(fills)
        if not waiting:
            del self._waiting[sid]
        return fills

    def expire(self) -> list[Rejection]:
        """Give up the market orders that waited `quote_timeout` seconds without a quote."""
        now = self._monotonic()
        expired: list[Rejection] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, sid, key = self._deadlines.popleft()
            order = self._unwait(sid, key)
            if order is not None:  # else it filled in the meantime
                reason = f"no quote for {sid} within {self._quote_timeout:g} s"
                expired.append(Rejection(order, reason))
        return expired

    def cancel_all(self, reason: str) -> list[Rejection]:
        """Give up every waiting order, in arrival order per symbol, with `reason`."""
        cancelled = [
            Rejection(order, reason)
            for orders in self._waiting.values()
            for order in orders.values()
        ]
        self._waiting.clear()
        self._deadlines.clear()
        self.waiting = 0
        return cancelled

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen[key] = None
        if len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)

    def _unwait(self, sid: str, key: tuple[str, str]) -> Order | None:
        waiting = self._waiting.get(sid)
        order = None if waiting is None else waiting.pop(key, None)
        if order is not None:
            self.waiting -= 1
            if not waiting:
                del self._waiting[sid]
        return order

    def _match(self, order: Order, quote: Quote) -> Fill | None:
        """The fill of `order` at `quote`, or None when a limit is not reached."""
        if order["side"] == "buy":
            market = quote.get("ask", quote["price"])
            price = market * (1 + self._slippage)
            if order["type"] == "limit":
                if market > order["limit_price"]:
                    return None
                price = min(price, order["limit_price"])
        else:
            market = quote.get("bid", quote["price"])
            price = market * (1 - self._slippage)
            if order["type"] == "limit":
                if market < order["limit_price"]:
                    return None
                price = max(price, order["limit_price"])
        return {
            "id": self._new_id(),
            "order_id": order["id"],
            "algo": order["algo"],
            "sid": order["sid"],
            "side": order["side"],
            "qty": order["qty"],
            "price": price,
            "fee": abs(order["qty"] * price) * self._fee,
            "ts": self._clock(),
        }
