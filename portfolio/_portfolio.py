"""`Portfolio`: cash, long positions, bet sizing and PnL for one algorithm."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

from portfolio._checks import finite_float, positive_int, symbol
from portfolio._open_order import OpenOrder, Side
from portfolio._position import Position
from portfolio._quote import buy_price, quote_price, quote_symbol
from portfolio._sizing import FractionOfCash, SizingPolicy
from portfolio._snapshot import SnapshotState, build_snapshot, parse_snapshot
from tickbus.errors import ConfigError, PortfolioError

DEFAULT_BUFFER_BPS = 50.0
"""Cash a buy holds back above its reference price, in basis points (0.5%)."""


class Portfolio:
    """Cash and long-only positions with average-cost accounting, and open orders.

    Invariants, checked on every change: cash is never negative, positions
    are never short (a position is removed when it reaches 0), and every
    position has a last price, so `equity` is always ``cash + sum(qty * last
    price)``. A rejected operation leaves the portfolio unchanged.

    Orders are placed, then filled. `reserve` records an open order and holds
    back what it may cost: a buy holds ``qty * price * (1 + buffer_bps / 10,000)``
    of cash (the buffer covers slippage and fees), a sell holds its shares.
    `optimize`, and the next `reserve`, see only what is not held back
    (`available_cash`, `available_shares`), so open orders can never commit
    more cash or shares than there are. A fill naming the order (`apply_fill`
    with ``order_id``) books what was executed, at the executed price, and
    frees the hold; `release` frees it when the order is rejected.

    Fees are realised when paid: a buy's fee lowers `realised_pnl` at once and
    is not folded into `Position.avg_cost`, so a round trip at one price loses
    exactly the two fees.

    Not thread-safe: one algorithm owns it and calls it from one thread.

    Args:
        cash: Starting cash, a finite number >= 0.
        sizing: How `optimize` sizes bets (default ``FractionOfCash(fraction=0.1)``).
        buffer_bps: Cash a buy holds back above its reference price, in basis
            points, finite and >= 0 (default `DEFAULT_BUFFER_BPS`).

    Raises:
        PortfolioError: `cash` is negative or not a finite number.
        ConfigError: `sizing` has no ``quantity`` method, or `buffer_bps` is
            not a finite number >= 0.
    """

    def __init__(
        self,
        *,
        cash: float,
        sizing: SizingPolicy | None = None,
        buffer_bps: float = DEFAULT_BUFFER_BPS,
    ) -> None:
        checked = finite_float(cash)
        if checked is None or checked < 0:
            raise PortfolioError(f"cash must be a finite number >= 0, got {cash!r}")
        buffer = finite_float(buffer_bps)
        if buffer is None or buffer < 0:
            raise ConfigError(f"buffer_bps must be a finite number >= 0, got {buffer_bps!r}")
        if sizing is None:
            sizing = FractionOfCash(fraction=0.1)
        elif not callable(getattr(sizing, "quantity", None)):
            raise ConfigError(f"sizing must have a quantity(*, cash, price) method, got {sizing!r}")
        self._cash = checked
        self._sizing = sizing
        self._buffer_bps = buffer
        self._positions: dict[str, Position] = {}
        self._last_prices: dict[str, float] = {}
        self._open_orders: dict[str, OpenOrder] = {}
        self._realised_pnl = 0.0
        self._changes = 0

    @property
    def sizing(self) -> SizingPolicy:
        """The policy `optimize` sizes bets with."""
        return self._sizing

    @property
    def buffer_bps(self) -> float:
        """Cash a buy holds back above its reference price, in basis points."""
        return self._buffer_bps

    @property
    def changes(self) -> int:
        """A counter that tells a saver when to save.

        Bumped by every fill, `reserve` and `release` of this object; not by
        `mark`, and not carried by `snapshot`.
        """
        return self._changes

    @property
    def cash(self) -> float:
        """Cash on hand, always >= 0; open buys hold back part of it (`available_cash`)."""
        return self._cash

    @property
    def available_cash(self) -> float:
        """Cash not held back by open buys; < 0 only after a fill cost more than its hold."""
        return self._cash - math.fsum(o.reserved_cash for o in self._open_orders.values())

    def held_shares(self, sid: str) -> int:
        """Shares of `sid` held, open sells included (0 when none); `sid` as `positions` keys it.

        `positions` gives the same figure from a copy of every position; this
        reads one, for callers that ask after every fill (the backtester).
        """
        held = self._positions.get(sid)
        return 0 if held is None else held.qty

    def available_shares(self, sid: str) -> int:
        """Shares of `sid` held and not held back by open sells (0 when none).

        Raises:
            PortfolioError: `sid` is not a non-empty string.
        """
        symbol_ = symbol(sid)
        if symbol_ is None:
            raise PortfolioError(f"sid must be a non-empty string, got {sid!r}")
        held = self._positions.get(symbol_)
        selling = sum(
            o.qty for o in self._open_orders.values() if o.sid == symbol_ and o.side == "sell"
        )
        return (0 if held is None else held.qty) - selling

    @property
    def open_orders(self) -> Mapping[str, OpenOrder]:
        """Orders placed and not yet filled or released, by order id (a read-only copy)."""
        return MappingProxyType(dict(self._open_orders))

    @property
    def positions(self) -> Mapping[str, Position]:
        """Open positions by symbol: a read-only copy taken at the time of the call."""
        return MappingProxyType(dict(self._positions))

    @property
    def equity(self) -> float:
        """Cash plus every position valued at its symbol's last price."""
        held = sum((p.qty * self._last_prices[sid] for sid, p in self._positions.items()), 0.0)
        return self._cash + held

    @property
    def realised_pnl(self) -> float:
        """Profit and loss closed so far, net of every fee paid."""
        return self._realised_pnl

    @property
    def unrealised_pnl(self) -> float:
        """Open profit and loss: sum of ``qty * (last price - avg_cost)``."""
        return sum(
            (p.qty * (self._last_prices[sid] - p.avg_cost) for sid, p in self._positions.items()),
            0.0,
        )

    def mark(self, quote: Mapping[str, Any]) -> None:
        """Remember the quote's ``price`` as its symbol's last price, for `equity`.

        Raises:
            QuoteRejected: The quote has no usable ``sid`` or ``price``.
        """
        if type(quote) is dict:  # the common case, a checked quote as events() has: no copies
            sid, price = quote.get("sid"), quote.get("price")
            if type(sid) is str and type(price) is float and sid.isupper() and 0 < price < math.inf:
                self._last_prices[sid] = price
                return
        sid = quote_symbol(quote)
        self._last_prices[sid] = quote_price(quote)

    def mark_checked(self, sid: str, price: float) -> None:
        """`mark` for a caller whose quote passed the quote contract (`algos.checked_quote`).

        No checks: `sid` must be upper-case text and `price` a finite float > 0,
        as that contract guarantees. For the per-quote path of
        `algos.Algorithm.handle_checked`; anyone else calls `mark`.
        """
        self._last_prices[sid] = price

    def optimize(self, quote: Mapping[str, Any]) -> int:
        """How many shares to buy now at the quote's buy price.

        The buy price is the ``ask`` when the quote has one, else its
        ``price``. The sizing policy proposes a quantity from the
        `available_cash`, capped at what that cash affords at the buy price
        plus the buffer: exactly what `reserve` will accept for a buy there.

        Returns:
            Shares to buy, >= 0; 0 means do not bet.

        Raises:
            QuoteRejected: The quote has no usable ``sid`` or buy price.
            ConfigError: The sizing policy returned something other than an int >= 0.
        """
        price = buy_price(quote)
        available = max(0.0, self.available_cash)
        wanted = self._sizing.quantity(cash=available, price=price)
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
            raise ConfigError(
                f"sizing policy {self._sizing!r} must return an int >= 0, got {wanted!r}"
            )
        return min(wanted, self._affordable(price, available))

    def reserve(self, order_id: str, *, sid: str, side: str, qty: int, price: float) -> OpenOrder:
        """Record an open order and hold back what it may cost.

        Args:
            order_id: The order's id, unique among open orders.
            sid: Symbol.
            side: ``"buy"`` or ``"sell"``.
            qty: Shares, an int > 0.
            price: The buy's reference price (its limit price, else the quote's
                buy price), a finite number > 0; unused for a sell.

        Returns:
            The open order.

        Raises:
            PortfolioError: An argument is invalid (`order_id` must be a
                non-empty string), the id is already open, a
                buy's hold exceeds `available_cash`, or a sell exceeds
                `available_shares` (no short selling). The portfolio is unchanged.
        """
        symbol_, checked_qty, checked_price = self._checked_trade(sid, side, qty, price)
        if not isinstance(order_id, str) or not order_id:
            raise PortfolioError(f"order_id must be a non-empty string, got {order_id!r}")
        if order_id in self._open_orders:
            raise PortfolioError(f"order {order_id!r} is already open")
        if side == "buy":
            hold = checked_qty * checked_price * (1 + self._buffer_bps / 10_000)
            if hold > self.available_cash:
                raise PortfolioError(
                    f"buying {checked_qty} {symbol_} at {checked_price} holds back {hold:.2f}, "
                    f"but only {self.available_cash:.2f} of cash is available"
                )
        else:
            hold = 0.0
            available = self.available_shares(symbol_)
            if checked_qty > available:
                raise PortfolioError(
                    f"cannot sell {checked_qty} {symbol_}: {available} shares are available "
                    "(open sells hold back the rest) and short selling is not allowed"
                )
        order = OpenOrder(sid=symbol_, side=cast(Side, side), qty=checked_qty, reserved_cash=hold)
        self._open_orders[order_id] = order
        self._changes += 1
        return order

    def release(self, order_id: str) -> OpenOrder:
        """Forget an open order that will not fill (rejected, cancelled); frees its hold.

        Raises:
            PortfolioError: No open order has that id.
        """
        order = self._open_orders.pop(order_id, None)
        if order is None:
            raise PortfolioError(f"no open order {order_id!r} (already filled or released?)")
        self._changes += 1
        return order

    def apply_fill(
        self,
        *,
        sid: str,
        side: str,
        qty: int,
        price: float,
        fee: float = 0.0,
        order_id: str | None = None,
    ) -> None:
        """Book an executed trade and mark its symbol at the fill price.

        A buy costs ``qty * price + fee``. A sell brings in ``qty * price - fee``
        and realises ``(price - avg_cost) * qty - fee``. `sid` is upper-cased.

        Args:
            sid: Symbol traded.
            side: ``"buy"`` or ``"sell"``.
            qty: Shares, an int > 0.
            price: Price per share, a finite number > 0.
            fee: Commission paid, a finite number >= 0.
            order_id: The open order this fill executes (whole: orders never
                fill in parts); its hold is freed. None books a trade made
                outside this portfolio's orders, which may use only what open
                orders do not hold (`available_cash`, `available_shares`).

        Raises:
            PortfolioError: An argument is invalid; `order_id` is not open
                (a second fill of one order is refused here) or its symbol,
                side or quantity differ from the fill's; a buy costs more than
                the cash; a sell exceeds the position (no short selling); an
                outside trade needs cash or shares open orders hold; or a
                sell's fee exceeds cash plus proceeds. The reason carries the
                figures; the portfolio is unchanged.
        """
        symbol_, checked_qty, checked_price = self._checked_trade(sid, side, qty, price)
        checked_fee = finite_float(fee)
        if checked_fee is None or checked_fee < 0:
            raise PortfolioError(f"fill fee must be a finite number >= 0, got {fee!r}")
        if order_id is not None:
            self._check_fills_order(order_id, symbol_, side, checked_qty)
        else:
            self._check_outside_trade(
                symbol_, side, checked_qty, checked_qty * checked_price + checked_fee
            )
        if side == "buy":
            self._buy(symbol_, checked_qty, checked_price, checked_fee)
        else:
            self._sell(symbol_, checked_qty, checked_price, checked_fee)
        if order_id is not None:
            del self._open_orders[order_id]
        self._last_prices[symbol_] = checked_price
        self._changes += 1

    def _check_outside_trade(self, sid: str, side: str, qty: int, cost: float) -> None:
        if not self._open_orders:
            return  # nothing held: the cash and position checks of the trade suffice
        if side == "sell" and qty > self.available_shares(sid):
            raise PortfolioError(
                f"an outside sell of {qty} {sid} needs shares open sells hold: only "
                f"{self.available_shares(sid)} are available"
            )
        if side == "buy" and cost > self.available_cash:
            raise PortfolioError(
                f"an outside buy of {qty} {sid} costs {cost:.2f}, but only "
                f"{self.available_cash:.2f} of cash is not held by open orders"
            )

    def _check_fills_order(self, order_id: str, sid: str, side: str, qty: int) -> None:
        order = self._open_orders.get(order_id)
        if order is None:
            raise PortfolioError(
                f"fill for order {order_id!r}, which is not open here (filled already, "
                "released, or never placed by this portfolio): refused"
            )
        if (order.sid, order.side, order.qty) != (sid, side, qty):
            raise PortfolioError(
                f"fill {side} {qty} {sid} does not match open order {order_id!r} "
                f"({order.side} {order.qty} {order.sid})"
            )

    def _checked_trade(self, sid: str, side: str, qty: int, price: float) -> tuple[str, int, float]:
        """`sid` upper-cased, `qty` and `price` checked, `side` buy or sell."""
        symbol_ = symbol(sid)
        checked_qty = positive_int(qty)
        checked_price = finite_float(price)
        if symbol_ is None:
            raise PortfolioError(f"sid must be a non-empty string, got {sid!r}")
        if side not in ("buy", "sell"):
            raise PortfolioError(f"side must be 'buy' or 'sell', got {side!r}")
        if checked_qty is None:
            raise PortfolioError(f"qty must be an int > 0, got {qty!r}")
        if checked_price is None or checked_price <= 0:
            raise PortfolioError(f"price must be a finite number > 0, got {price!r}")
        return symbol_, checked_qty, checked_price

    def summary(self) -> dict[str, Any]:
        """A JSON-safe report: cash, equity, PnL, positions with last prices, open orders."""
        return {
            "cash": self._cash,
            "available_cash": self.available_cash,
            "open_orders": len(self._open_orders),
            "equity": self.equity,
            "realised_pnl": self._realised_pnl,
            "unrealised_pnl": self.unrealised_pnl,
            "positions": {
                sid: {"qty": p.qty, "avg_cost": p.avg_cost, "last_price": self._last_prices[sid]}
                for sid, p in sorted(self._positions.items())
            },
        }

    def snapshot(self) -> dict[str, Any]:
        """The complete state as a JSON-safe dict that `restore` accepts.

        The sizing policy is behaviour, not state: it is not in the snapshot.
        """
        return build_snapshot(
            SnapshotState(
                cash=self._cash,
                realised_pnl=self._realised_pnl,
                positions=dict(self._positions),
                last_prices=dict(self._last_prices),
                open_orders=dict(self._open_orders),
            )
        )

    @classmethod
    def restore(
        cls,
        snapshot: Mapping[str, Any],
        *,
        sizing: SizingPolicy | None = None,
        buffer_bps: float = DEFAULT_BUFFER_BPS,
    ) -> Portfolio:
        """A portfolio equal in every observable to the one that made `snapshot`.

        Args:
            snapshot: What `snapshot` returned, possibly through JSON.
            sizing: The sizing policy for the new portfolio (default as in the constructor).
            buffer_bps: The buffer for the new portfolio's buys (default as in the constructor).

        Raises:
            PortfolioError: The snapshot is malformed; the reason names the field.
        """
        state = parse_snapshot(snapshot)
        portfolio = cls(cash=state.cash, sizing=sizing, buffer_bps=buffer_bps)
        portfolio._realised_pnl = state.realised_pnl
        portfolio._positions = dict(state.positions)
        portfolio._last_prices = dict(state.last_prices)
        portfolio._open_orders = dict(state.open_orders)
        return portfolio

    def _affordable(self, price: float, cash: float) -> int:
        """Most shares whose hold at `price` (buffer included) fits in `cash`."""
        unit = price * (1 + self._buffer_bps / 10_000)
        shares = math.floor(cash / unit)
        # The division rounds; step down until the same product `reserve` checks fits.
        while shares > 0 and shares * price * (1 + self._buffer_bps / 10_000) > cash:
            shares -= 1
        return shares

    def _buy(self, sid: str, qty: int, price: float, fee: float) -> None:
        cost = qty * price + fee
        cash = self._cash - cost
        if cash < 0:
            raise PortfolioError(
                f"buying {qty} {sid} at {price} with fee {fee} costs {cost}, "
                f"but cash is only {self._cash}"
            )
        held = self._positions.get(sid)
        if held is None:
            position = Position(qty=qty, avg_cost=price)
        else:
            total = held.qty + qty
            avg_cost = (held.qty * held.avg_cost + qty * price) / total
            position = Position(qty=total, avg_cost=avg_cost)
        self._cash = cash
        self._realised_pnl -= fee
        self._positions[sid] = position

    def _sell(self, sid: str, qty: int, price: float, fee: float) -> None:
        held = self._positions.get(sid)
        have = 0 if held is None else held.qty
        if held is None or qty > have:
            raise PortfolioError(
                f"cannot sell {qty} {sid}: the position is {have} and short selling is not allowed"
            )
        cash = self._cash + (qty * price - fee)
        if cash < 0:
            raise PortfolioError(
                f"selling {qty} {sid} at {price} with fee {fee} would leave cash at {cash}"
            )
        self._cash = cash
        self._realised_pnl += (price - held.avg_cost) * qty - fee
        if qty == have:
            del self._positions[sid]
        else:
            self._positions[sid] = Position(qty=have - qty, avg_cost=held.avg_cost)
