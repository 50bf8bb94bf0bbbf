"""`Algorithm`: the base class of every tickbus algorithm, and the `Order` it emits."""

from __future__ import annotations

import abc
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, TypedDict

from algos._params import param_float, parse_channels, require_mapping
from algos._quote import checked_quote
from portfolio import Portfolio
from tickbus.errors import ConfigError, NotInitialized, PortfolioError, QuoteRejected

log = logging.getLogger(__name__)

DEFAULT_CHANNELS: tuple[str, ...] = ("quotes", "quotes/#")
"""The MQTT topic filters an algorithm subscribes to unless told otherwise."""

_FILL_KEYS = ("sid", "side", "qty", "price")


class Order(TypedDict):
    """An order an algorithm emitted; in this stage it is already filled.

    Attributes:
        id: Unique id, a uuid4 hex string.
        sid: Symbol, upper-case.
        side: ``"buy"`` or ``"sell"``.
        qty: Shares, > 0.
        type: Always ``"market"``.
        price: The quote price it was filled at.
        ts: The ``ts`` of the quote it was filled on (epoch seconds).
    """

    id: str
    sid: str
    side: Literal["buy", "sell"]
    qty: int
    type: Literal["market"]
    price: float
    ts: float


class Algorithm(abc.ABC):
    """A trading algorithm: quotes in, orders out, a `Portfolio` alongside.

    The public methods are the RPC contract an algorithm server exposes:
    `initialize`, `event`, `events`, `fill`, `state` and `finalize`. Subclasses
    implement `event` and may extend `initialize` and `finalize`. They are
    constructed without arguments; settings arrive in `initialize(params)`.

    Every quote takes one path, `events`: the batch is checked against the
    quote contract first (a bad quote rejects the whole batch before anything
    happens), then each quote marks the portfolio and goes to `event`.

    Orders are made only by `buy` and `sell`, which fill them against the
    portfolio at once at the quote's price. An order the portfolio cannot pay
    for, or a sale beyond the position, is refused: the helper returns None and
    nothing is emitted. `events` emits exactly the orders the helpers filled,
    so the orders on the bus always match the portfolio.

    Not thread-safe: the server calls it from one thread.

    Attributes:
        channels: Class default for the MQTT topic filters (`DEFAULT_CHANNELS`).
        params: The params of the last successful `initialize`.
    """

    channels: ClassVar[tuple[str, ...]] = DEFAULT_CHANNELS

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self._portfolio: Portfolio | None = None
        self._quotes_seen = 0
        self._orders_emitted = 0
        self._errors = 0
        self._last_error: str | None = None
        self._placed: list[Order] | None = None

    @property
    def portfolio(self) -> Portfolio:
        """The portfolio `initialize` created; a subclass may replace it (e.g. other sizing).

        Raises:
            ConfigError: `initialize` has not been called yet.
        """
        if self._portfolio is None:
            raise self._not_initialized("portfolio")
        return self._portfolio

    @portfolio.setter
    def portfolio(self, portfolio: Portfolio) -> None:
        if not isinstance(portfolio, Portfolio):
            raise ConfigError(f"portfolio must be a Portfolio, got {type(portfolio).__name__}")
        self._portfolio = portfolio

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        """Start over with `params`: a fresh portfolio and zeroed counters.

        Recognised params: ``starting_cash`` (number >= 0, default 100000) and
        ``channels`` (a list of MQTT topic filters or a comma-separated string;
        default the class attribute `channels`). Other keys are kept in
        `params` for subclasses. A subclass override should check its own
        params, then call ``super().initialize(params)``, then set its state,
        so a rejected call changes nothing.

        Returns:
            The MQTT topic filters to subscribe to.

        Raises:
            ConfigError: `params` is not a mapping or a value is unusable; the
                reason names the param. The algorithm is unchanged.
        """
        params = require_mapping(params)
        cash = param_float(params, "starting_cash", 100_000.0, low=0.0)
        raw_channels = params.get("channels")
        channels = parse_channels(self.channels if raw_channels is None else raw_channels)
        self.params = dict(params)
        self._portfolio = Portfolio(cash=cash)
        self._quotes_seen = 0
        self._orders_emitted = 0
        self._errors = 0
        self._last_error = None
        return channels

    @abc.abstractmethod
    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        """React to one quote; called by `events` only, after the portfolio is marked.

        Args:
            quote: A checked copy: ``sid`` upper-case, ``price``/``ts`` floats.

        Returns:
            The orders placed for this quote with `buy`/`sell` (None entries,
            from refused orders, are skipped). An order filled but left out is
            still emitted, because the portfolio already holds it. Returning
            an order `buy`/`sell` did not fill for this quote (or one changed
            since), or anything but a list, counts as an error of this quote
            (see `events`).
        """

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        """Handle a batch of quotes in order; the one path every quote takes.

        An exception from `event` (or an order it returned that `buy`/`sell`
        did not fill) fails that one quote only: it is logged and counted in
        `state()` (``errors``, ``last_error``), the orders the helpers had
        already filled for that quote are still emitted (the portfolio holds
        them), and the batch goes on. So the orders on the bus always match the
        portfolio, and one bad quote never costs the others their orders.

        Returns:
            Every order filled while handling the batch, in the order placed.

        Raises:
            NotInitialized: `initialize` has not been called yet.
            QuoteRejected: `quotes` is not a list, or one quote breaks the
                quote contract; nothing in the batch is handled.
        """
        self._require_initialized("events")
        if isinstance(quotes, str | bytes) or not isinstance(quotes, Sequence):
            raise QuoteRejected(f"events() takes a list of quotes, got {type(quotes).__name__}")
        checked = [checked_quote(quote, f"quote #{i}") for i, quote in enumerate(quotes)]
        orders: list[Order] = []
        for quote in checked:
            self.portfolio.mark(quote)
            self._quotes_seen += 1
            orders.extend(self._handle(quote))
        return orders

    def fill(self, fill: Mapping[str, Any]) -> None:
        """Apply an externally executed fill ``{sid, side, qty, price, fee?}`` to the portfolio.

        Orders made by `buy`/`sell` are already applied; do not report them again.

        Raises:
            ConfigError: `initialize` has not been called yet.
            PortfolioError: A key is missing, a value is invalid, or the fill
                would break a portfolio invariant; the portfolio is unchanged.
        """
        portfolio = self.portfolio
        if not isinstance(fill, Mapping):
            raise PortfolioError(f"a fill must be a mapping, got {type(fill).__name__}")
        missing = [key for key in _FILL_KEYS if key not in fill]
        if missing:
            raise PortfolioError(f"fill is missing {missing}: {dict(fill)!r}")
        fee = fill.get("fee")
        portfolio.apply_fill(
            sid=fill["sid"],
            side=fill["side"],
            qty=fill["qty"],
            price=fill["price"],
            fee=0.0 if fee is None else fee,
        )

    def state(self) -> dict[str, Any]:
        """JSON-safe state: the portfolio's summary and snapshot, and counters.

        Keys: ``portfolio`` (`Portfolio.summary`), ``portfolio_snapshot``
        (`Portfolio.snapshot`: what ``tickbus swap --carry-portfolio`` hands to
        the next algorithm), ``quotes``, ``orders``, ``errors``, ``last_error``.

        A bridge calls it every second for its status, on the same worker
        thread as `events`: an override must stay cheap (no sorting of long
        histories), or quotes wait behind it.

        Raises:
            ConfigError: `initialize` has not been called yet.
        """
        self._require_initialized("state")
        return {
            "portfolio": self.portfolio.summary(),
            "portfolio_snapshot": self.portfolio.snapshot(),
            "quotes": self._quotes_seen,
            "orders": self._orders_emitted,
            "errors": self._errors,
            "last_error": self._last_error,
        }

    def finalize(self) -> dict[str, Any]:
        """Wrap up and return the final `state`; subclasses may add to the dict.

        Raises:
            ConfigError: `initialize` has not been called yet.
        """
        return self.state()

    def buy(self, quote: Mapping[str, Any], qty: int) -> Order | None:
        """Buy `qty` shares at ``quote["price"]``, filled at once; call from `event` only.

        Returns:
            The filled order, or None when `qty` is 0 or the cash does not cover it.

        Raises:
            PortfolioError: `qty` is not an int >= 0.
            QuoteRejected: `quote` breaks the quote contract.
            RuntimeError: Called outside `event`.
        """
        return self._place(quote, "buy", qty)

    def sell(self, quote: Mapping[str, Any], qty: int) -> Order | None:
        """Sell `qty` shares at ``quote["price"]``, filled at once; call from `event` only.

        Returns:
            The filled order, or None when `qty` is 0 or exceeds the position
            (no short selling).

        Raises:
            PortfolioError: `qty` is not an int >= 0.
            QuoteRejected: `quote` breaks the quote contract.
            RuntimeError: Called outside `event`.
        """
        return self._place(quote, "sell", qty)

    def _place(
        self, quote: Mapping[str, Any], side: Literal["buy", "sell"], qty: int
    ) -> Order | None:
        placed = self._placed
        if placed is None:
            raise RuntimeError(
                f"{side}() places orders only inside event(), while events() handles a "
                "quote; outside it the order would never reach the bus"
            )
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise PortfolioError(f"{side} qty must be an int >= 0, got {qty!r}")
        if qty == 0:
            return None
        checked = checked_quote(quote, f"{side}() quote")
        sid, price = checked["sid"], checked["price"]
        try:
            self.portfolio.apply_fill(sid=sid, side=side, qty=qty, price=price)
        except PortfolioError:  # qty, price and sid are valid here: cash or position falls short
            return None
        order: Order = {
            "id": uuid.uuid4().hex,
            "sid": sid,
            "side": side,
            "qty": qty,
            "type": "market",
            "price": price,
            "ts": checked["ts"],
        }
        placed.append(order)
        return order.copy()

    def _handle(self, quote: dict[str, Any]) -> list[Order]:
        placed: list[Order] = []
        self._placed = placed
        try:
            self._check_returned(self.event(quote), placed)
        except Exception as exc:
            self._errors += 1
            self._last_error = f"{type(exc).__name__} on {quote['sid']}: {exc}"
            log.exception("%s.event() failed", type(self).__name__)
        finally:
            self._placed = None
        self._orders_emitted += len(placed)
        return [order.copy() for order in placed]

    def _check_returned(self, returned: object, placed: list[Order]) -> None:
        if returned is None:
            return
        if isinstance(returned, Mapping | str | bytes) or not isinstance(returned, Sequence):
            raise TypeError(
                f"{type(self).__name__}.event() must return a list of orders, "
                f"got {type(returned).__name__}"
            )
        for item in returned:
            if item is not None and item not in placed:
                raise PortfolioError(
                    f"{type(self).__name__}.event() returned {item!r}, which is not an order "
                    "buy()/sell() filled for this quote (or it was changed since); make "
                    "orders with self.buy()/self.sell() and return them unchanged"
                )

    def _require_initialized(self, what: str) -> None:
        if self._portfolio is None:
            raise self._not_initialized(what)

    def _not_initialized(self, what: str) -> NotInitialized:
        return NotInitialized(
            f"{type(self).__name__} is not initialized: call initialize(params) before {what}"
        )
