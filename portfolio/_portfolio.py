"""`Portfolio`: cash, long positions, bet sizing and PnL for one algorithm."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from portfolio._checks import finite_float, positive_int, symbol
from portfolio._position import Position
from portfolio._quote import buy_price, quote_price, quote_symbol
from portfolio._sizing import FractionOfCash, SizingPolicy
from portfolio._snapshot import SnapshotState, build_snapshot, parse_snapshot
from tickbus.errors import ConfigError, PortfolioError


class Portfolio:
    """Cash and long-only positions with average-cost accounting.

    Invariants, checked on every change: cash is never negative, positions
    are never short (a position is removed when it reaches 0), and every
    position has a last price, so `equity` is always ``cash + sum(qty * last
    price)``. A rejected operation leaves the portfolio unchanged.

    Fees are realised when paid: a buy's fee lowers `realised_pnl` at once and
    is not folded into `Position.avg_cost`, so a round trip at one price loses
    exactly the two fees.

    Not thread-safe: one algorithm owns it and calls it from one thread.

    Args:
        cash: Starting cash, a finite number >= 0.
        sizing: How `optimize` sizes bets (default ``FractionOfCash(fraction=0.1)``).

    Raises:
        PortfolioError: `cash` is negative or not a finite number.
        ConfigError: `sizing` has no ``quantity`` method.
    """

    def __init__(self, *, cash: float, sizing: SizingPolicy | None = None) -> None:
        checked = finite_float(cash)
        if checked is None or checked < 0:
            raise PortfolioError(f"cash must be a finite number >= 0, got {cash!r}")
        if sizing is None:
            sizing = FractionOfCash(fraction=0.1)
        elif not callable(getattr(sizing, "quantity", None)):
            raise ConfigError(f"sizing must have a quantity(*, cash, price) method, got {sizing!r}")
        self._cash = checked
        self._sizing = sizing
        self._positions: dict[str, Position] = {}
        self._last_prices: dict[str, float] = {}
        self._realised_pnl = 0.0
        self._fills = 0

    @property
    def sizing(self) -> SizingPolicy:
        """The policy `optimize` sizes bets with."""
        return self._sizing

    @property
    def fills(self) -> int:
        """Fills booked by this object (not carried by `snapshot`): a change counter."""
        return self._fills

    @property
    def cash(self) -> float:
        """Cash on hand, always >= 0."""
        return self._cash

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
        sid = quote_symbol(quote)
        self._last_prices[sid] = quote_price(quote)

    def optimize(self, quote: Mapping[str, Any]) -> int:
        """How many shares to buy now at the quote's buy price.

        The buy price is the ``ask`` when the quote has one, else its
        ``price``. The sizing policy proposes a quantity, capped at what the
        cash affords at that price (fees are not known here and not counted).

        Returns:
            Shares to buy, >= 0; 0 means do not bet.

        Raises:
            QuoteRejected: The quote has no usable ``sid`` or buy price.
            ConfigError: The sizing policy returned something other than an int >= 0.
        """
        price = buy_price(quote)
        wanted = self._sizing.quantity(cash=self._cash, price=price)
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
            raise ConfigError(
                f"sizing policy {self._sizing!r} must return an int >= 0, got {wanted!r}"
            )
        return min(wanted, self._affordable(price))

    def apply_fill(self, *, sid: str, side: str, qty: int, price: float, fee: float = 0.0) -> None:
        """Book an executed trade and mark its symbol at the fill price.

        A buy costs ``qty * price + fee``. A sell brings in ``qty * price - fee``
        and realises ``(price - avg_cost) * qty - fee``. `sid` is upper-cased.

        Args:
            sid: Symbol traded.
            side: ``"buy"`` or ``"sell"``.
            qty: Shares, an int > 0.
            price: Price per share, a finite number > 0.
            fee: Commission paid, a finite number >= 0.

        Raises:
            PortfolioError: An argument is invalid, a buy costs more than the
                cash, a sell exceeds the position (no short selling), or a
                sell's fee exceeds cash plus proceeds. The reason carries the
                figures; the portfolio is unchanged.
        """
        symbol_ = symbol(sid)
        checked_qty = positive_int(qty)
        checked_price = finite_float(price)
        checked_fee = finite_float(fee)
        if symbol_ is None:
            raise PortfolioError(f"fill sid must be a non-empty string, got {sid!r}")
        if checked_qty is None:
            raise PortfolioError(f"fill qty must be an int > 0, got {qty!r}")
        if checked_price is None or checked_price <= 0:
            raise PortfolioError(f"fill price must be a finite number > 0, got {price!r}")
        if checked_fee is None or checked_fee < 0:
            raise PortfolioError(f"fill fee must be a finite number >= 0, got {fee!r}")
        if side == "buy":
            self._buy(symbol_, checked_qty, checked_price, checked_fee)
        elif side == "sell":
            self._sell(symbol_, checked_qty, checked_price, checked_fee)
        else:
            raise PortfolioError(f"fill side must be 'buy' or 'sell', got {side!r}")
        self._last_prices[symbol_] = checked_price
        self._fills += 1

    def summary(self) -> dict[str, Any]:
        """A JSON-safe report: cash, equity, PnL and positions with last prices."""
        return {
            "cash": self._cash,
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
            )
        )

    @classmethod
    def restore(
        cls, snapshot: Mapping[str, Any], *, sizing: SizingPolicy | None = None
    ) -> Portfolio:
        """A portfolio equal in every observable to the one that made `snapshot`.

        Args:
            snapshot: What `snapshot` returned, possibly through JSON.
            sizing: The sizing policy for the new portfolio (default as in the constructor).

        Raises:
            PortfolioError: The snapshot is malformed; the reason names the field.
        """
        state = parse_snapshot(snapshot)
        portfolio = cls(cash=state.cash, sizing=sizing)
        portfolio._realised_pnl = state.realised_pnl
        portfolio._positions = dict(state.positions)
        portfolio._last_prices = dict(state.last_prices)
        return portfolio

    def _affordable(self, price: float) -> int:
        shares = math.floor(self._cash / price)
        # The division rounds; step down until the same product `_buy` checks fits.
        while shares > 0 and shares * price > self._cash:
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
