"""`Algorithm`: the base class of every tickbus algorithm, and the `Order` it emits."""

from __future__ import annotations

import abc
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

from algos._params import param_float, parse_channels, require_mapping
from algos._quote import checked_quote
from portfolio import DEFAULT_BUFFER_BPS, Portfolio
from tickbus.errors import ConfigError, NotInitialized, PortfolioError, QuoteRejected

log = logging.getLogger(__name__)

DEFAULT_CHANNELS: tuple[str, ...] = ("quotes", "quotes/#")
"""The MQTT topic filters an algorithm subscribes to unless told otherwise."""

_FILL_KEYS = ("sid", "side", "qty", "price")

REJECTED_KEY = "rejected"
"""The key that makes a `fill` report a rejection: ``{"order_id": ..., "rejected": reason}``."""


class Order(TypedDict):
    """An order an algorithm placed: sent to execution, not yet filled.

    The bridge adds ``algo`` and validates it against the bus's order schema
    before it goes onto ``orders/<algo>``.

    Attributes:
        id: Unique id, a uuid4 hex string.
        sid: Symbol, upper-case.
        side: ``"buy"`` or ``"sell"``.
        qty: Shares, > 0.
        type: ``"market"`` or ``"limit"``.
        ts: The ``ts`` of the quote it was placed on (epoch seconds).
        limit_price: For limit orders only: the worst acceptable price.
    """

    id: str
    sid: str
    side: Literal["buy", "sell"]
    qty: int
    type: Literal["market", "limit"]
    ts: float
    limit_price: NotRequired[float]


class Algorithm(abc.ABC):
    """A trading algorithm: quotes in, orders out, a `Portfolio` alongside.

    The public methods are the RPC contract an algorithm server exposes:
    `initialize`, `event`, `events`, `fill`, `state` and `finalize`. Subclasses
    implement `event` and may extend `initialize` and `finalize`. They are
    constructed without arguments; settings arrive in `initialize(params)`.

    Every quote takes one path, `events`: the batch is checked against the
    quote contract first (a bad quote rejects the whole batch before anything
    happens), then each quote marks the portfolio and goes to `event`.

    Orders are made only by `buy` and `sell`, which place them: the portfolio
    records each as open and holds back its cash (a buy) or shares (a sell),
    so open orders never commit more than there is. An order the available
    cash or shares cannot cover is refused: the helper returns None and
    nothing is emitted. `events` emits exactly the orders the helpers placed.
    Cash and positions move only when execution reports a fill (`fill`); a
    rejection reported the same way frees the hold.

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
        self._fills = 0
        self._rejections = 0
        self._last_rejection: str | None = None
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

        Recognised params: ``starting_cash`` (number >= 0, default 100000),
        ``buffer_bps`` (cash a buy holds back above its price for slippage and
        fees, number >= 0, default 50) and ``channels`` (a list of MQTT topic
        filters or a comma-separated string; default the class attribute
        `channels`). Other keys are kept in
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
        buffer_bps = param_float(params, "buffer_bps", DEFAULT_BUFFER_BPS, low=0.0)
        raw_channels = params.get("channels")
        channels = parse_channels(self.channels if raw_channels is None else raw_channels)
        self.params = dict(params)
        self._portfolio = Portfolio(cash=cash, buffer_bps=buffer_bps)
        self._quotes_seen = 0
        self._orders_emitted = 0
        self._fills = 0
        self._rejections = 0
        self._last_rejection = None
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
            from refused orders, are skipped). An order placed but left out is
            still emitted, because the portfolio already holds it open.
            Returning an order `buy`/`sell` did not place for this quote (or
            one changed since), or anything but a list, counts as an error of
            this quote (see `events`).
        """

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        """Handle a batch of quotes in order; the one path every quote takes.

        An exception from `event` (or an order it returned that `buy`/`sell`
        did not place) fails that one quote only: it is logged and counted in
        `state()` (``errors``, ``last_error``), the orders the helpers had
        already placed for that quote are still emitted (the portfolio holds
        them open), and the batch goes on. So the orders on the bus always
        match the portfolio's open orders, and one bad quote never costs the
        others their orders.

        Returns:
            Every order placed while handling the batch, in the order placed.

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

    def fill(self, report: Mapping[str, Any]) -> None:
        """Apply what execution reports about an order: a fill, or a rejection.

        A fill ``{order_id?, sid, side, qty, price, fee?}`` (other keys, such as
        the fill's ``id``, ``algo`` and ``ts``, are ignored) moves cash and the
        position by what was executed, at the executed price and fee. With
        ``order_id`` it executes that open order and frees its hold; a second
        fill of the same order is refused, so a duplicate is never booked
        twice. Without it, it books a trade made outside this algorithm's
        orders.

        A rejection ``{"order_id": ..., "rejected": "reason"}`` frees the hold of
        that open order; it is counted in `state` (``rejected``, ``last_rejection``).

        Raises:
            NotInitialized: `initialize` has not been called yet.
            PortfolioError: A key is missing, a value is invalid, the order is
                not open, or the fill would break a portfolio invariant; the
                portfolio is unchanged.
        """
        portfolio = self.portfolio
        if not isinstance(report, Mapping):
            raise PortfolioError(f"a fill must be a mapping, got {type(report).__name__}")
        order_id = report.get("order_id")
        if order_id is not None and not isinstance(order_id, str):
            raise PortfolioError(f"order_id must be a string, got {order_id!r}")
        if REJECTED_KEY in report:
            if order_id is None:
                raise PortfolioError(f"a rejection needs the order_id: {dict(report)!r}")
            portfolio.release(order_id)
            self._rejections += 1
            self._last_rejection = f"{order_id}: {report[REJECTED_KEY]}"
            return
        missing = [key for key in _FILL_KEYS if key not in report]
        if missing:
            raise PortfolioError(f"fill is missing {missing}: {dict(report)!r}")
        fee = report.get("fee")
        portfolio.apply_fill(
            sid=report["sid"],
            side=report["side"],
            qty=report["qty"],
            price=report["price"],
            fee=0.0 if fee is None else fee,
            order_id=order_id,
        )
        self._fills += 1

    def state(self) -> dict[str, Any]:
        """JSON-safe state: the portfolio's summary and snapshot, and counters.

        Keys: ``portfolio`` (`Portfolio.summary`), ``portfolio_snapshot``
        (`Portfolio.snapshot`: what ``tickbus swap --carry-portfolio`` hands to
        the next algorithm), ``quotes``, ``orders`` (placed), ``fills``,
        ``rejected`` and ``last_rejection`` (reported by `fill`), ``errors``
        and ``last_error``.

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
            "fills": self._fills,
            "rejected": self._rejections,
            "last_rejection": self._last_rejection,
            "errors": self._errors,
            "last_error": self._last_error,
        }

    def finalize(self) -> dict[str, Any]:
        """Wrap up and return the final `state`; subclasses may add to the dict.

        Raises:
            ConfigError: `initialize` has not been called yet.
        """
        return self.state()

    def buy(
        self, quote: Mapping[str, Any], qty: int, *, limit_price: float | None = None
    ) -> Order | None:
        """Place an order to buy `qty` shares; call from `event` only.

        A market order (no `limit_price`) holds back cash for `qty` at the
        quote's buy price (its ``ask``, else its ``price``) plus the
        portfolio's buffer; a limit order holds back `qty` at `limit_price`
        plus the buffer. Nothing is bought until execution reports the fill.

        Returns:
            The placed order, or None when `qty` is 0 or the available cash
            does not cover the hold.

        Raises:
            PortfolioError: `qty` is not an int >= 0, or `limit_price` is not a
                finite number > 0.
            QuoteRejected: `quote` breaks the quote contract.
            RuntimeError: Called outside `event`.
        """
        return self._place(quote, "buy", qty, limit_price)

    def sell(
        self, quote: Mapping[str, Any], qty: int, *, limit_price: float | None = None
    ) -> Order | None:
        """Place an order to sell `qty` shares; call from `event` only.

        The shares are held back until execution reports the fill or the
        rejection. With `limit_price`, a limit order.

        Returns:
            The placed order, or None when `qty` is 0 or exceeds the shares
            available (held and not already being sold: no short selling).

        Raises:
            PortfolioError: `qty` is not an int >= 0, or `limit_price` is not a
                finite number > 0.
            QuoteRejected: `quote` breaks the quote contract.
            RuntimeError: Called outside `event`.
        """
        return self._place(quote, "sell", qty, limit_price)

    def _place(
        self,
        quote: Mapping[str, Any],
        side: Literal["buy", "sell"],
        qty: int,
        limit_price: float | None,
    ) -> Order | None:
        placed = self._placed
        if placed is None:
            raise RuntimeError(
                f"{side}() places orders only inside event(), while events() handles a "
                "quote; outside it the order would never reach the bus"
            )
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise PortfolioError(f"{side} qty must be an int >= 0, got {qty!r}")
        if limit_price is not None and (
            isinstance(limit_price, bool)
            or not isinstance(limit_price, int | float)
            or not math.isfinite(limit_price)
            or limit_price <= 0
        ):
            raise PortfolioError(f"limit_price must be a finite number > 0, got {limit_price!r}")
        if qty == 0:
            return None
        checked = checked_quote(quote, f"{side}() quote")
        sid = checked["sid"]
        market = checked["ask"] if checked.get("ask") is not None else checked["price"]
        reference = limit_price if limit_price is not None else market
        order: Order = {
            "id": uuid.uuid4().hex,
            "sid": sid,
            "side": side,
            "qty": qty,
            "type": "market" if limit_price is None else "limit",
            "ts": checked["ts"],
        }
        if limit_price is not None:
            order["limit_price"] = float(limit_price)
        try:
            self.portfolio.reserve(order["id"], sid=sid, side=side, qty=qty, price=reference)
        except PortfolioError:  # the arguments are valid here: cash or shares fall short
            return None
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
                    "buy()/sell() placed for this quote (or it was changed since); make "
                    "orders with self.buy()/self.sell() and return them unchanged"
                )

    def _require_initialized(self, what: str) -> None:
        if self._portfolio is None:
            raise self._not_initialized(what)

    def _not_initialized(self, what: str) -> NotInitialized:
        return NotInitialized(
            f"{type(self).__name__} is not initialized: call initialize(params) before {what}"
        )
