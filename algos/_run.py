"""What the framework keeps for a started algorithm: its portfolio and its counters."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from portfolio import Portfolio
from tickbus.errors import NotInitialized
from tickbus.logs import LogThrottle

log = logging.getLogger("algos")
"""Where an algorithm's failures are logged."""


class Order(TypedDict):
    """An order an algorithm placed: sent to execution, not yet filled.

    The bridge adds ``algo`` and validates it against the bus's order schema
    before it goes onto ``orders/<algo>``.

    Attributes:
        id: Unique id: a uuid4 hex string live, numbered in a backtest (`Run.new_order_id`).
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


@dataclass
class Run:
    """The framework's side of one started algorithm; `Algorithm.start` makes a new one.

    It lives in one attribute of the algorithm, so a subclass's own attributes
    can never clash with it, and a subclass that never calls ``super()``
    (in ``__init__`` or ``initialize``) still has all of it.

    Attributes:
        portfolio: Cash, positions and open orders.
        quotes: Quotes handled.
        orders: Orders placed.
        fills: Fills booked.
        rejections: Rejections reported by `Algorithm.fill`.
        last_rejection: The latest of those, ``"<order id>: <reason>"``.
        errors: Quotes whose `event` failed.
        last_error: The latest of those failures.
        placed: While `event` runs: the orders placed for the current quote.
        last_quotes: The latest checked quote of each symbol, for order requests.
        error_log: Logs the first failure of `event`, then a summary now and then.
        new_order_id: Makes the id of each order placed (a uuid4 hex by
            default; the backtester numbers them, for byte-identical results).
    """

    portfolio: Portfolio
    quotes: int = 0
    orders: int = 0
    fills: int = 0
    rejections: int = 0
    last_rejection: str | None = None
    errors: int = 0
    last_error: str | None = None
    placed: list[Order] | None = None
    last_quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    error_log: LogThrottle = field(default_factory=lambda: LogThrottle(log))
    new_order_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)


def run_of(algorithm: object) -> Run:
    """The framework's side of a started algorithm: its portfolio and counters.

    For the framework (the backtester reads the error counters after each
    quote); an algorithm's own code has ``self.portfolio``.

    Raises:
        NotInitialized: `algorithm` has not been started.
    """
    run = getattr(algorithm, "_tickbus_run", None)
    if not isinstance(run, Run):
        raise NotInitialized(
            f"{type(algorithm).__name__} is not initialized: Algorithm.start(params) comes first"
        )
    return run
