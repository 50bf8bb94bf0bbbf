"""`Algorithm`: the base class of every tickbus algorithm."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from algos._params import param_float, parse_channels, require_mapping
from algos._quote import checked_quote
from algos._requests import is_order_request, parse_order_request
from algos._run import Order, Run
from portfolio import DEFAULT_BUFFER_BPS, Portfolio
from tickbus.errors import ConfigError, NotInitialized, PortfolioError, QuoteRejected

DEFAULT_CHANNELS: tuple[str, ...] = ("quotes", "quotes/#")
"""The MQTT topic filters an algorithm subscribes to unless told otherwise."""

_FILL_KEYS = ("sid", "side", "qty", "price")

REJECTED_KEY = "rejected"
"""The key that makes a `fill` report a rejection: ``{"order_id": ..., "rejected": reason}``."""


class Algorithm(abc.ABC):
    """A trading algorithm: quotes in, orders out, a `Portfolio` alongside.

    A user writes two methods: `initialize` (read params, return the channels)
    and `event` (react to one quote, return orders). Nothing else is
    required: no ``super()`` call in either, and no ``__init__``.

    The framework drives it through `start` (what the server's RPC
    ``initialize`` and the backtester call: it prepares a fresh portfolio and
    counters, then calls the user's `initialize`), `events`, `fill`, `state`
    and `finalize`; those are the RPC contract an algorithm server exposes.

    Every quote takes one path, `events`: the batch is checked against the
    quote contract first (a bad quote rejects the whole batch before anything
    happens), then each quote marks the portfolio and goes to `event`.

    Orders are placed by `buy` and `sell`, or returned from `event` as order
    requests (``{"sid", "side", "qty"[, "limit_price"]}``), which are placed
    the same way: the portfolio records each as open and holds back its cash
    (a buy) or shares (a sell), so open orders never commit more than there
    is. An order the available cash or shares cannot cover is refused and
    nothing is emitted. `events` emits exactly the orders placed. Cash and
    positions move only when execution reports a fill (`fill`); a rejection
    reported the same way frees the hold.

    Not thread-safe: the server calls it from one thread.

    Attributes:
        channels: Class default for the MQTT topic filters (`DEFAULT_CHANNELS`).
        params: The params of the last successful `start`.
    """

    channels: ClassVar[tuple[str, ...]] = DEFAULT_CHANNELS
    params: dict[str, Any]
    _tickbus_run: Run | None = None  # a class default: no __init__ needed to have it

    # -- what a user writes ----------------------------------------------------------

    def initialize(self, params: Mapping[str, Any]) -> list[str] | None:
        """Read your params and return the MQTT topic filters to receive quotes on.

        Called by `start`, after the portfolio is ready: ``self.portfolio``
        can be used here. Check your params before you change anything, so
        a refused call leaves the algorithm as it was. Calling
        ``super().initialize(params)`` is not needed (it returns the class's
        `channels`).

        Args:
            params: Everything the server or the bridge was given with
                ``--param``, including the framework's own (``starting_cash``,
                ``buffer_bps``, ``channels``).

        Returns:
            Topic filters such as ``["quotes/#"]``, or None for the class's
            `channels`. A ``channels`` param, when given, wins over both.
        """
        return list(self.channels)

    @abc.abstractmethod
    def event(self, quote: Mapping[str, Any]) -> Sequence[Any] | None:
        """React to one quote; called by `events` only, after the portfolio is marked.

        Args:
            quote: A checked copy: ``sid`` upper-case, ``price``/``ts`` floats.

        Returns:
            None for no order, or a list of orders: those placed for this quote
            with `buy`/`sell` (None entries, from refused orders, are skipped)
            and order requests (``{"sid", "side", "qty"[, "limit_price"]}``),
            which are placed here as `buy`/`sell` would place them. An order
            placed but left out is still emitted, because the portfolio already
            holds it open. Anything else counts as an error of this quote (see
            `events`).
        """

    # -- what the framework calls -------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether `start` has succeeded: the algorithm can take quotes."""
        return self._tickbus_run is not None

    def start(
        self,
        params: Mapping[str, Any],
        *,
        snapshot: Mapping[str, Any] | None = None,
        order_ids: Callable[[], str] | None = None,
    ) -> list[str]:
        """Prepare the portfolio and counters, then call the user's `initialize`.

        The framework's entry point: the server's RPC ``initialize``, the
        backtester and a sweep all call it, so nothing depends on the user
        remembering a ``super()`` call. Recognised params: ``starting_cash``
        (number >= 0, default 100000), ``buffer_bps`` (cash a buy holds back
        above its price for slippage and fees, number >= 0, default 50) and
        ``channels`` (a list of MQTT topic filters or a comma-separated
        string; it wins over what `initialize` returns). All params are kept
        in `params`.

        Args:
            params: The params.
            snapshot: A `Portfolio.snapshot` to start from instead of fresh
                cash (a restart with a state directory, or a swap that carries
                the portfolio). It is in place before `initialize` runs; if
                `initialize` replaces the portfolio (e.g. other sizing), the
                snapshot is restored into the replacement's sizing and buffer.
            order_ids: Makes each order's id; None for a uuid4 hex (ids
                unique across processes, as the bus needs).

        Returns:
            The MQTT topic filters to subscribe to.

        Raises:
            ConfigError: `params` is not a mapping, a framework param is
                unusable, `initialize` raised it, or `initialize` returned
                something that is not a list of topic filters. The framework's
                state is then as before the call (the user's own attributes are
                as `initialize` left them).
            PortfolioError: `snapshot` is malformed.
        """
        params = require_mapping(params)
        cash = param_float(params, "starting_cash", 100_000.0, low=0.0)
        buffer_bps = param_float(params, "buffer_bps", DEFAULT_BUFFER_BPS, low=0.0)
        forced = params.get("channels")
        forced_channels = None if forced is None else parse_channels(forced)
        if snapshot is None:
            portfolio = Portfolio(cash=cash, buffer_bps=buffer_bps)
        else:
            portfolio = Portfolio.restore(snapshot, buffer_bps=buffer_bps)
        before = self._tickbus_run, self.__dict__.get("params")
        run = Run(portfolio) if order_ids is None else Run(portfolio, new_order_id=order_ids)
        self._tickbus_run, self.params = run, dict(params)
        try:
            returned = self._channels_from(self.initialize(params))
            channels = returned if forced_channels is None else forced_channels
            if snapshot is not None and self.portfolio is not portfolio:
                mine = self.portfolio
                self.portfolio = Portfolio.restore(
                    snapshot, sizing=mine.sizing, buffer_bps=mine.buffer_bps
                )
        except BaseException:
            self._tickbus_run = before[0]
            if before[1] is None:
                self.__dict__.pop("params", None)
            else:
                self.params = before[1]
            raise
        return channels

    @property
    def portfolio(self) -> Portfolio:
        """The portfolio `start` created; `initialize` may replace it (e.g. other sizing).

        Raises:
            NotInitialized: `start` has not been called yet.
        """
        return self._run("portfolio").portfolio

    @portfolio.setter
    def portfolio(self, portfolio: Portfolio) -> None:
        if not isinstance(portfolio, Portfolio):
            raise ConfigError(f"portfolio must be a Portfolio, got {type(portfolio).__name__}")
        self._run("portfolio").portfolio = portfolio

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        """Handle a batch of quotes in order; the one path every quote takes.

        An exception from `event` (or something it returned that is not an
        order) fails that one quote only: it is counted in `state()`
        (``errors``, ``last_error``) and logged (the first with its
        traceback, then one summary line at most every 10 s), the orders
        already placed for that quote are still emitted (the portfolio holds
        them open), and the batch goes on. So the orders on the bus always
        match the portfolio's open orders, and one bad quote never costs the
        others their orders.

        Returns:
            Every order placed while handling the batch, in the order placed.

        Raises:
            NotInitialized: `start` has not been called yet.
            QuoteRejected: `quotes` is not a list, or one quote breaks the
                quote contract; nothing in the batch is handled.
        """
        self._run("events")  # NotInitialized before anything else
        if type(quotes) is not list and (
            isinstance(quotes, str | bytes) or not isinstance(quotes, Sequence)
        ):
            raise QuoteRejected(f"events() takes a list of quotes, got {type(quotes).__name__}")
        checked = [checked_quote(quote, i) for i, quote in enumerate(quotes)]
        orders: list[Order] = []
        for quote in checked:
            orders.extend(self.handle_checked(quote))
        return orders

    def handle_checked(self, quote: dict[str, Any]) -> list[Order]:
        """Handle one quote that already passed the quote contract; what `events` does per quote.

        Marks the portfolio, counts the quote, then calls `event` as `events`
        describes (an exception fails this quote only). For a caller that
        knows `quote` is what `checked_quote` returns for it (the backtester,
        on rows the tape proved clean with `columns_pass`) and owns it: the
        algorithm gets this very dict. Anyone else calls `events`.

        Returns:
            The orders placed for this quote, in the order placed.

        Raises:
            NotInitialized: `start` has not been called yet.
        """
        run = self._tickbus_run
        if run is None:  # not through `_run`: this is the per-quote hot path
            raise self._not_initialized("handle_checked")
        sid = quote["sid"]
        run.portfolio.mark_checked(sid, quote["price"])
        run.quotes += 1
        run.last_quotes[sid] = quote
        placed: list[Order] = []
        run.placed = placed
        try:
            returned = self.event(quote)
            if returned is not None and (type(returned) is not list or returned):
                self._take_returned(run, returned, placed)
        except Exception as exc:
            run.errors += 1
            run.last_error = f"{type(exc).__name__} on {sid}: {exc}"
            run.error_log.log(
                "%s.event() failed (%d so far): %s",
                type(self).__name__,
                run.errors,
                run.last_error,
                exc_info=exc if run.errors == 1 else None,
            )
        finally:
            run.placed = None
        if not placed:
            return placed
        run.orders += len(placed)
        return [order.copy() for order in placed]

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
            NotInitialized: `start` has not been called yet.
            PortfolioError: A key is missing, a value is invalid, the order is
                not open, or the fill would break a portfolio invariant; the
                portfolio is unchanged.
        """
        run = self._run("fill")
        if type(report) is not dict and not isinstance(report, Mapping):
            raise PortfolioError(f"a fill must be a mapping, got {type(report).__name__}")
        order_id = report.get("order_id")
        if order_id is not None and not isinstance(order_id, str):
            raise PortfolioError(f"order_id must be a string, got {order_id!r}")
        if REJECTED_KEY in report:
            if order_id is None:
                raise PortfolioError(f"a rejection needs the order_id: {dict(report)!r}")
            run.portfolio.release(order_id)
            run.rejections += 1
            run.last_rejection = f"{order_id}: {report[REJECTED_KEY]}"
            return
        missing = [key for key in _FILL_KEYS if key not in report]
        if missing:
            raise PortfolioError(f"fill is missing {missing}: {dict(report)!r}")
        fee = report.get("fee")
        run.portfolio.apply_fill(
            sid=report["sid"],
            side=report["side"],
            qty=report["qty"],
            price=report["price"],
            fee=0.0 if fee is None else fee,
            order_id=order_id,
        )
        run.fills += 1

    def state(self) -> dict[str, Any]:
        """JSON-safe state: the portfolio's summary and snapshot, and counters.

        Keys: ``initialized`` (False before `start`, and then the only other
        key is ``algorithm``), ``algorithm`` (``"module:Class"``),
        ``portfolio`` (`Portfolio.summary`), ``portfolio_snapshot``
        (`Portfolio.snapshot`: what ``tickbus swap --carry-portfolio`` hands to
        the next algorithm), ``quotes``, ``orders`` (placed), ``fills``,
        ``rejected`` and ``last_rejection`` (reported by `fill`), ``errors``
        and ``last_error``.

        A bridge calls it every second for its status, on the same worker
        thread as `events`: an override must stay cheap (no sorting of long
        histories), or quotes wait behind it. The server calls this base
        version, not an override, before `start`.
        """
        run = self._tickbus_run
        if run is None:
            return {"initialized": False, "algorithm": self.describe()}
        return {
            "initialized": True,
            "algorithm": self.describe(),
            "portfolio": run.portfolio.summary(),
            "portfolio_snapshot": run.portfolio.snapshot(),
            "quotes": run.quotes,
            "orders": run.orders,
            "fills": run.fills,
            "rejected": run.rejections,
            "last_rejection": run.last_rejection,
            "errors": run.errors,
            "last_error": run.last_error,
        }

    def finalize(self) -> dict[str, Any]:
        """Wrap up and return the final `state`; subclasses may add to the dict."""
        return self.state()

    def describe(self) -> str:
        """Which algorithm this is, as ``"module:Class"`` (what ``algo serve`` takes)."""
        cls = type(self)
        return f"{cls.__module__}:{cls.__qualname__}"

    # -- helpers for `event` --------------------------------------------------------------

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

    # -- inside ---------------------------------------------------------------------------

    def _place(
        self,
        quote: Mapping[str, Any],
        side: Literal["buy", "sell"],
        qty: int,
        limit_price: float | None,
    ) -> Order | None:
        run = self._tickbus_run
        if run is None or run.placed is None:
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
            "id": run.new_order_id(),
            "sid": sid,
            "side": side,
            "qty": qty,
            "type": "market" if limit_price is None else "limit",
            "ts": checked["ts"],
        }
        if limit_price is not None:
            order["limit_price"] = float(limit_price)
        try:
            run.portfolio.reserve(order["id"], sid=sid, side=side, qty=qty, price=reference)
        except PortfolioError:  # the arguments are valid here: cash or shares fall short
            return None
        run.placed.append(order)
        return order.copy()

    def _take_returned(self, run: Run, returned: object, placed: list[Order]) -> None:
        """Place the order requests `event` returned; refuse anything that is not an order."""
        if type(returned) is not list and (
            isinstance(returned, Mapping | str | bytes) or not isinstance(returned, Sequence)
        ):
            raise TypeError(
                f"{type(self).__name__}.event() must return a list of orders or None, "
                f"got {type(returned).__name__}"
            )
        for item in list(returned):
            if item is None or item in placed:
                continue
            if not is_order_request(item):
                raise PortfolioError(
                    f"{type(self).__name__}.event() returned {item!r}, which is not an order: "
                    "return what buy()/sell() placed for this quote (unchanged), or order "
                    'requests such as {"sid": "GOOG", "side": "buy", "qty": 10}'
                )
            request = parse_order_request(item)
            quote = run.last_quotes.get(request.sid)
            if quote is None:
                raise PortfolioError(
                    f"no quote of {request.sid} has arrived yet: an order needs its last price"
                )
            self._place(quote, request.side, request.qty, request.limit_price)

    def _channels_from(self, returned: object) -> list[str]:
        if returned is None:
            return list(self.channels)
        try:
            return parse_channels(returned)
        except ConfigError as exc:
            raise ConfigError(
                f"{type(self).__name__}.initialize() must return a list of MQTT topic "
                f"filters such as ['quotes/#'] (or None for {list(self.channels)}): "
                f"{exc.reason}"
            ) from exc

    def _run(self, what: str) -> Run:
        run = self._tickbus_run
        if run is None:
            raise self._not_initialized(what)
        return run

    def _not_initialized(self, what: str) -> NotInitialized:
        return NotInitialized(
            f"{type(self).__name__} is not initialized: the framework's initialize "
            f"(Algorithm.start(params) in Python) must come before {what}"
        )
