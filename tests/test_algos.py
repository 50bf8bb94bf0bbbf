"""Algorithm base class, the example algorithms, loading and CLI params; no broker.

Orders are placed by `buy`/`sell` and only move cash and positions when a fill
is reported through `Algorithm.fill`; `fill_of` and `rejection_of` build the
reports execution would send.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from algos import (
    DEFAULT_CHANNELS,
    REJECTED_KEY,
    Algorithm,
    Order,
    load_algorithm,
    parse_params,
)
from algos.examples import MovingAverageCross, RandomAlgo
from portfolio import FractionOfCash, Portfolio, Position
from tests.support import REPO_ROOT
from tickbus.errors import ConfigError, NotInitialized, PortfolioError, QuoteRejected


def quote(
    sid: str = "GOOG", price: Any = 100.0, ts: float = 1_000.0, **extra: Any
) -> dict[str, Any]:
    return {"sid": sid, "price": price, "ts": ts, **extra}


def series(prices: Sequence[float], sid: str = "GOOG") -> list[dict[str, Any]]:
    return [quote(sid=sid, price=p, ts=1_000.0 + i) for i, p in enumerate(prices)]


def fill_of(order: Order, price: float, fee: float = 0.0, **extra: Any) -> dict[str, Any]:
    """The fill execution reports for `order`, executed whole at `price`."""
    return {
        "order_id": order["id"],
        "sid": order["sid"],
        "side": order["side"],
        "qty": order["qty"],
        "price": price,
        "fee": fee,
        **extra,
    }


def rejection_of(order: Order, reason: str = "no liquidity") -> dict[str, Any]:
    return {"order_id": order["id"], REJECTED_KEY: reason}


def execute(algo: Algorithm, orders: Sequence[Order], price: float) -> None:
    """Fill every order at `price`, as execution would."""
    for order in orders:
        algo.fill(fill_of(order, price))


def fresh_state(cash: float) -> dict[str, Any]:
    """`state_of` an algorithm just started with `cash`."""
    return {
        "initialized": True,
        "portfolio": Portfolio(cash=cash).summary(),
        "portfolio_snapshot": Portfolio(cash=cash).snapshot(),
        "quotes": 0,
        "orders": 0,
        "fills": 0,
        "rejected": 0,
        "last_rejection": None,
        "errors": 0,
        "last_error": None,
    }


def state_of(algo: Algorithm) -> dict[str, Any]:
    """`algo.state()` without the ``algorithm`` name."""
    state = algo.state()
    assert state.pop("algorithm") == f"tests.test_algos:{type(algo).__qualname__}"
    return state


A = TypeVar("A", bound=Algorithm)


# --- algorithms used by the tests --------------------------------------------------------


class Buyer(Algorithm):
    """Buys params["qty"] shares on every quote; records what it saw."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        channels = super().initialize(params)
        self.qty = int(params.get("qty", 1))
        self.seen: list[dict[str, Any]] = []
        self.equity_seen: list[float] = []
        return channels

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        self.seen.append(dict(quote))
        self.equity_seen.append(self.portfolio.equity)
        order = self.buy(quote, self.qty)
        return [order] if order else []


class Seller(Algorithm):
    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        order = self.sell(quote, int(self.params.get("qty", 1)))
        return [order] if order else []


class LimitTrader(Algorithm):
    """Places a limit order on every quote: params side, qty and limit_price."""

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        place = self.buy if self.params.get("side", "buy") == "buy" else self.sell
        order = place(quote, int(self.params.get("qty", 1)), limit_price=self.params["limit_price"])
        return [order] if order else []


class Forger(Algorithm):
    """Returns an order it made itself, never placed."""

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        forged: Order = {
            "id": "f" * 32,
            "sid": quote["sid"],
            "side": "buy",
            "qty": 1_000_000,
            "type": "market",
            "ts": quote["ts"],
        }
        return [forged]


class Inflater(Algorithm):
    """Buys 1 share, then edits the order to claim 100."""

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        order = self.buy(quote, 1)
        assert order is not None
        order["qty"] = 100
        return [order]


class Forgetful(Algorithm):
    """Buys but returns nothing, and once returns None entries."""

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        self.buy(quote, 2)
        return [None]  # type: ignore[list-item]


class Duplicator(Algorithm):
    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        order = self.buy(quote, 1)
        assert order is not None
        return [order, order]


class NotAList(Algorithm):
    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        return 42  # type: ignore[return-value]


class BuysOnFinalize(Algorithm):
    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        return []

    def finalize(self) -> dict[str, Any]:
        self.buy(quote(), 1)
        return super().finalize()


class Quiet(Algorithm):
    channels = ("quotes/GOOG",)

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        return []


class StillAbstract(Algorithm):
    pass


def started(cls: type[A], **params: Any) -> A:
    algo = cls()
    algo.start(params)
    return algo


# --- initialize ----------------------------------------------------------------------------


def test_algorithm_is_abstract() -> None:
    with pytest.raises(TypeError):
        Algorithm()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        StillAbstract()  # type: ignore[abstract]


def test_initialize_defaults() -> None:
    algo = Quiet()
    assert DEFAULT_CHANNELS == ("quotes", "quotes/#")
    assert Buyer().start({}) == ["quotes", "quotes/#"]
    assert algo.start({"note": "kept"}) == ["quotes/GOOG"]  # the class attribute
    assert algo.params == {"note": "kept"}
    assert algo.portfolio.cash == 100_000.0
    assert algo.portfolio.buffer_bps == 50.0
    assert state_of(algo) == fresh_state(100_000)


def test_initialize_keeps_a_copy_of_params() -> None:
    params: dict[str, Any] = {"starting_cash": 5}
    algo = Quiet()
    algo.start(params)
    params["starting_cash"] = 7
    assert algo.params == {"starting_cash": 5}
    assert algo.portfolio.cash == 5.0


@pytest.mark.parametrize(("buffer_bps", "expected"), [(0, 0.0), (12.5, 12.5), (1_000, 1_000.0)])
def test_initialize_reads_the_buffer(buffer_bps: float, expected: float) -> None:
    assert started(Quiet, buffer_bps=buffer_bps).portfolio.buffer_bps == expected


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (["quotes/GOOG"], ["quotes/GOOG"]),
        (("quotes/+", "quotes"), ["quotes/+", "quotes"]),
        ("quotes/GOOG, quotes/MSFT", ["quotes/GOOG", "quotes/MSFT"]),
        ("#", ["#"]),
        (None, ["quotes/GOOG"]),
    ],
)
def test_initialize_returns_the_channels_asked_for(channels: Any, expected: list[str]) -> None:
    assert Quiet().start({"channels": channels}) == expected


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"channels": []}, "at least one MQTT topic filter"),
        ({"channels": ""}, "non-empty string"),
        ({"channels": "quotes,,x"}, "non-empty string"),
        ({"channels": 5}, "channels must be a list of MQTT topic filters"),
        ({"channels": {"quotes": 1}}, "channels must be a list"),
        ({"channels": ["quotes", 3]}, "each channel must be a non-empty string, got 3"),
        ({"channels": ["quotes/#/GOOG"]}, "'quotes/#/GOOG' is not a valid MQTT topic filter"),
        ({"channels": ["quotes/GO+"]}, "not a valid MQTT topic filter"),
        ({"channels": ["quotes#"]}, "not a valid MQTT topic filter"),
        ({"starting_cash": -1}, "starting_cash must be a number >= 0, got -1"),
        ({"starting_cash": "1000"}, "starting_cash must be a number >= 0, got '1000'"),
        ({"starting_cash": float("nan")}, "starting_cash"),
        ({"starting_cash": True}, "starting_cash"),
        ({"buffer_bps": -1}, "buffer_bps must be a number >= 0, got -1"),
        ({"buffer_bps": "50"}, "buffer_bps must be a number >= 0, got '50'"),
        ({"buffer_bps": float("inf")}, "buffer_bps"),
        ({"buffer_bps": None}, "buffer_bps must be a number >= 0, got None"),
    ],
)
def test_initialize_rejects_bad_params_and_changes_nothing(
    params: dict[str, Any], reason: str
) -> None:
    algo = started(Buyer, starting_cash=1_000, qty=1)
    algo.events(series([10.0, 10.0]))
    before = algo.state()
    assert before["portfolio"]["open_orders"] == 2
    with pytest.raises(ConfigError) as info:
        algo.start(params)
    assert reason in info.value.reason
    assert algo.state() == before
    assert algo.params == {"starting_cash": 1_000, "qty": 1}


@pytest.mark.parametrize("params", [None, ["starting_cash", 1], "starting_cash=1"])
def test_initialize_requires_a_mapping(params: Any) -> None:
    with pytest.raises(ConfigError, match="params must be a mapping"):
        Quiet().start(params)


def test_initialize_again_starts_over() -> None:
    algo = started(Buyer, starting_cash=1_000, qty=1)
    first, second = algo.events(series([10.0, 11.0]))
    algo.fill(fill_of(first, price=10.0))
    algo.fill(rejection_of(second))
    algo.start({"starting_cash": 500})
    assert state_of(algo) == fresh_state(500)
    with pytest.raises(PortfolioError, match="not open"):  # the old book is gone
        algo.fill(fill_of(second, price=11.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.events([quote()]),
        lambda a: a.fill({"sid": "GOOG", "side": "buy", "qty": 1, "price": 1.0}),
        lambda a: a.fill({"order_id": "x", "rejected": "no"}),
        lambda a: a.portfolio,
    ],
)
def test_calls_before_start_say_to_initialize(call: Any) -> None:
    with pytest.raises(NotInitialized, match=r"Quiet is not initialized: .*Algorithm.start"):
        call(Quiet())


def test_state_and_finalize_before_start_say_so() -> None:
    algo = Quiet()
    expected = {"initialized": False, "algorithm": "tests.test_algos:Quiet"}
    assert algo.state() == expected
    assert algo.finalize() == expected
    assert not algo.started


def test_a_subclass_may_replace_the_portfolio_but_only_with_a_portfolio() -> None:
    algo = started(Buyer, starting_cash=1_000)
    algo.portfolio = Portfolio(cash=1_000, sizing=FractionOfCash(fraction=1), buffer_bps=0)
    assert algo.portfolio.optimize(quote(price=10.0)) == 100
    with pytest.raises(ConfigError, match="portfolio must be a Portfolio, got dict"):
        algo.portfolio = {}  # type: ignore[assignment]


# --- events and the order helpers --------------------------------------------------------


def test_events_marks_the_portfolio_before_each_event_and_counts() -> None:
    algo = started(Buyer, starting_cash=1_000, qty=1)
    execute(algo, algo.events([quote(price=10.0)]), price=10.0)
    orders = algo.events([quote(price=20.0, ts=1_001.0), quote(price=30.0, ts=1_002.0)])
    # Equity seen by event(): cash plus the shares held at *this* quote's price.
    # The order placed on the 20.0 quote is not filled, so it holds nothing yet.
    assert algo.equity_seen == [1_000.0, 990.0 + 20.0, 990.0 + 30.0]
    assert [o["ts"] for o in orders] == [1_001.0, 1_002.0]
    assert algo.state()["quotes"] == 3
    assert algo.state()["orders"] == 3
    assert algo.events([]) == []


def test_events_concatenates_orders_across_calls_and_counts_them() -> None:
    algo = started(Buyer, starting_cash=1_000, qty=2)
    first = algo.events(series([10.0, 10.0]))
    second = algo.events(series([10.0]))
    assert [o["qty"] for o in first + second] == [2, 2, 2]
    assert algo.state()["orders"] == 3
    assert set(algo.portfolio.open_orders) == {o["id"] for o in first + second}
    assert algo.portfolio.positions == {}
    execute(algo, first + second, price=10.0)
    assert algo.portfolio.positions["GOOG"].qty == 6


def test_orders_are_placed_with_the_quote_ts_and_no_price() -> None:
    algo = started(Buyer, starting_cash=10_000, qty=3)
    [order] = algo.events([quote(sid="goog", price=100.0, ts=1_732_300_000.5, ask=101.0)])
    assert set(order) == {"id", "sid", "side", "qty", "type", "ts"}
    assert len(order["id"]) == 32
    int(order["id"], 16)
    assert {k: v for k, v in order.items() if k != "id"} == {
        "sid": "GOOG",
        "side": "buy",
        "qty": 3,
        "type": "market",
        "ts": 1_732_300_000.5,
    }
    assert json.loads(json.dumps(order)) == order


def test_placing_a_buy_holds_cash_at_the_ask_plus_the_buffer_and_buys_nothing() -> None:
    algo = started(Buyer, starting_cash=10_000, qty=3)
    [order] = algo.events([quote(price=100.0, ask=101.0)])
    portfolio = algo.portfolio
    assert (portfolio.cash, portfolio.positions) == (10_000, {})
    held = portfolio.open_orders[order["id"]]
    assert (held.sid, held.side, held.qty) == ("GOOG", "buy", 3)
    assert held.reserved_cash == pytest.approx(3 * 101.0 * 1.005)
    assert portfolio.available_cash == pytest.approx(10_000 - 3 * 101.0 * 1.005)


def test_filling_an_order_moves_cash_and_position_by_the_fill_price_and_fee() -> None:
    algo = started(Buyer, starting_cash=10_000, qty=3)
    [order] = algo.events([quote(price=100.0, ask=101.0)])
    # Extra keys a fill carries on the bus are ignored.
    algo.fill(fill_of(order, price=100.5, fee=1.0, id="fill-1", algo="buyer", ts=1_001.0))
    portfolio = algo.portfolio
    assert portfolio.cash == 10_000 - 3 * 100.5 - 1.0
    assert portfolio.available_cash == portfolio.cash  # the hold is freed
    assert portfolio.positions == {"GOOG": Position(qty=3, avg_cost=100.5)}
    assert portfolio.realised_pnl == -1.0
    assert portfolio.open_orders == {}
    assert algo.state()["fills"] == 1


def test_order_ids_are_unique() -> None:
    algo = started(Buyer, starting_cash=1_000_000, qty=1)
    orders = algo.events(series([1.0] * 200))
    assert len({o["id"] for o in orders}) == 200


def test_event_sees_a_normalised_copy_of_the_quote() -> None:
    algo = started(Buyer, qty=1)
    original = {"sid": "msft", "price": 10, "ts": 5, "venue": "X"}
    algo.events([original])
    assert algo.seen == [{"sid": "MSFT", "price": 10.0, "ts": 5.0, "venue": "X"}]
    assert isinstance(algo.seen[0]["price"], float)
    assert original == {"sid": "msft", "price": 10, "ts": 5, "venue": "X"}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"price": 1.0, "ts": 1.0}, "quote #1 needs a non-empty string 'sid', got None"),
        (quote(price=0.0), "quote #1 'price' must be a finite number > 0, got 0.0"),
        (quote(price=float("inf")), "quote #1 'price' must be a finite number > 0"),
        (quote(price="12"), "quote #1 'price' must be a finite number > 0, got '12'"),
        (quote(ts="now"), "quote #1 'ts' must be a finite number"),
        (quote(ask=-1.0), "quote #1 'ask' must be a finite number > 0"),
        (quote(size=-1), "quote #1 'size' must be a finite number >= 0"),
        ("GOOG 1.0", "quote #1 must be a mapping, got str"),
    ],
)
def test_a_bad_quote_rejects_the_whole_batch_before_anything_happens(bad: Any, reason: str) -> None:
    algo = started(Buyer, starting_cash=1_000, qty=1)
    with pytest.raises(QuoteRejected) as info:
        algo.events([quote(price=10.0), bad, quote(price=10.0)])
    assert reason in info.value.reason
    assert state_of(algo) == fresh_state(1_000)


@pytest.mark.parametrize("batch", [quote(), "quotes", b"x", 7, None])
def test_events_takes_a_list(batch: Any) -> None:
    with pytest.raises(QuoteRejected, match=r"events\(\) takes a list of quotes"):
        started(Buyer).events(batch)


def test_a_buy_whose_hold_the_available_cash_cannot_cover_is_not_emitted() -> None:
    algo = started(Buyer, starting_cash=25, qty=1)
    orders = algo.events(series([10.0, 10.0, 10.0, 4.0]))
    # Each buy holds its price plus 0.5%: two at 10.0 leave 4.90, too little for
    # a third at 10.0 (10.05) but enough for one at 4.0 (4.02).
    assert [o["ts"] for o in orders] == [1_000.0, 1_001.0, 1_003.0]
    assert algo.portfolio.available_cash == pytest.approx(25 - 2 * 10.05 - 4.02)
    assert algo.portfolio.cash == 25.0
    assert algo.state()["orders"] == 3
    assert algo.state()["quotes"] == 4


def test_a_rejected_buy_frees_its_cash_for_the_next() -> None:
    algo = started(Buyer, starting_cash=25, qty=2)
    [order] = algo.events([quote(price=10.0)])  # holds 20.10 of the 25
    assert algo.events([quote(price=10.0)]) == []
    algo.fill(rejection_of(order))
    assert len(algo.events([quote(price=10.0)])) == 1


def test_a_sale_beyond_the_available_shares_is_not_emitted() -> None:
    algo = started(Seller, qty=1)
    assert algo.events([quote()]) == []  # nothing held
    algo.fill({"sid": "GOOG", "side": "buy", "qty": 1, "price": 50.0})  # an outside trade
    [order] = algo.events([quote(price=60.0)])
    assert (order["side"], order["qty"], order["type"]) == ("sell", 1, "market")
    assert algo.events([quote(price=61.0)]) == []  # the share is held by the open sell
    assert algo.portfolio.positions["GOOG"].qty == 1  # until the sell is filled
    algo.fill(fill_of(order, price=60.0))
    assert algo.portfolio.positions == {}
    assert algo.portfolio.realised_pnl == 10.0
    assert algo.events([quote()]) == []


def test_zero_qty_places_nothing_and_negative_qty_is_an_error() -> None:
    assert started(Buyer, qty=0).events([quote()]) == []
    algo = started(Buyer, qty=-1)
    assert algo.events([quote()]) == []
    assert algo.state()["errors"] == 1
    assert "buy qty must be an int >= 0, got -1" in algo.state()["last_error"]
    assert algo.portfolio.open_orders == {}


def test_a_forged_order_is_refused() -> None:
    algo = started(Forger)
    assert algo.events([quote()]) == []
    assert algo.portfolio.open_orders == {}
    assert algo.state()["orders"] == 0
    assert algo.state()["errors"] == 1
    assert "which is not an order: return what buy()/sell() placed" in algo.state()["last_error"]


def test_an_order_edited_after_placing_is_refused_but_the_placed_one_is_emitted() -> None:
    algo = started(Inflater)
    [order] = algo.events([quote()])
    assert order["qty"] == 1  # what was placed, not the edited 100
    assert [o.qty for o in algo.portfolio.open_orders.values()] == [1]
    assert "(unchanged)" in algo.state()["last_error"]


class BuysThenRaises(Algorithm):
    """Buys one share on every quote, then raises on quotes above 100."""

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        order = self.buy(quote, 1)
        if quote["price"] > 100:
            raise ValueError("too dear")
        return [order] if order else []


def test_a_failing_quote_does_not_cost_the_batch_its_orders() -> None:
    algo = started(BuysThenRaises)
    orders = algo.events(series([50.0, 150.0, 60.0]))
    assert [o["ts"] for o in orders] == [1_000.0, 1_001.0, 1_002.0]  # 150.0 was placed
    assert {o["id"] for o in orders} == set(algo.portfolio.open_orders)
    assert algo.state()["errors"] == 1
    assert algo.state()["last_error"] == "ValueError on GOOG: too dear"


def test_placed_orders_are_emitted_even_if_event_leaves_them_out() -> None:
    algo = started(Forgetful, starting_cash=1_000)
    [order] = algo.events([quote(price=10.0)])
    assert order["qty"] == 2
    assert set(algo.portfolio.open_orders) == {order["id"]}


def test_an_order_returned_twice_is_emitted_once() -> None:
    assert len(started(Duplicator).events([quote()])) == 1


def test_event_must_return_a_list() -> None:
    algo = started(NotAList)
    algo.events([quote()])
    assert "NotAList.event() must return a list of orders" in algo.state()["last_error"]


def test_helpers_refuse_to_trade_outside_event() -> None:
    algo = started(BuysOnFinalize)
    with pytest.raises(RuntimeError, match=r"buy\(\) places orders only inside event\(\)"):
        algo.finalize()
    with pytest.raises(RuntimeError, match=r"sell\(\) places orders only inside event\(\)"):
        algo.sell(quote(), 1)
    assert algo.portfolio.open_orders == {}


def test_the_buffer_bps_param_sets_what_a_buy_holds_back() -> None:
    exact = started(Buyer, starting_cash=1_000, qty=10, buffer_bps=0)
    assert len(exact.events([quote(price=100.0)])) == 1  # 1,000 held: all of it
    assert exact.portfolio.available_cash == 0.0
    wide = started(Buyer, starting_cash=1_000, qty=1, buffer_bps=1_000)
    [order] = wide.events([quote(price=100.0)])
    assert wide.portfolio.open_orders[order["id"]].reserved_cash == pytest.approx(110.0)


# --- limit orders --------------------------------------------------------------------------


def test_a_limit_buy_carries_its_limit_price_and_holds_cash_at_it() -> None:
    algo = started(LimitTrader, starting_cash=1_000, side="buy", qty=2, limit_price=95)
    [order] = algo.events([quote(price=100.0, ask=101.0)])
    assert {k: v for k, v in order.items() if k != "id"} == {
        "sid": "GOOG",
        "side": "buy",
        "qty": 2,
        "type": "limit",
        "limit_price": 95.0,
        "ts": 1_000.0,
    }
    assert isinstance(order["limit_price"], float)
    assert json.loads(json.dumps(order)) == order
    held = algo.portfolio.open_orders[order["id"]]
    assert held.reserved_cash == pytest.approx(2 * 95.0 * 1.005)  # not at the ask
    algo.fill(fill_of(order, price=94.5))
    assert algo.portfolio.positions["GOOG"] == Position(qty=2, avg_cost=94.5)
    assert algo.portfolio.available_cash == algo.portfolio.cash == 1_000 - 189.0


def test_a_limit_buy_above_the_market_needs_cash_for_its_limit() -> None:
    # At the market (100.0) 5 shares hold 502.50, at the 200.0 limit 1,005: too much.
    algo = started(LimitTrader, starting_cash=1_000, side="buy", qty=5, limit_price=200.0)
    assert algo.events([quote(price=100.0)]) == []
    assert algo.portfolio.open_orders == {}


def test_a_limit_sell_carries_its_limit_price_and_holds_the_shares() -> None:
    algo = started(LimitTrader, side="sell", qty=3, limit_price=120.0)
    algo.fill({"sid": "GOOG", "side": "buy", "qty": 5, "price": 100.0})
    [order] = algo.events([quote(price=110.0)])
    assert (order["side"], order["type"], order["limit_price"]) == ("sell", "limit", 120.0)
    assert algo.portfolio.available_shares("GOOG") == 2
    assert algo.portfolio.available_cash == algo.portfolio.cash  # a sell holds no cash
    assert algo.events([quote(price=110.0)]) == []  # 3 more than the 2 available


@pytest.mark.parametrize("limit_price", [0, -1.0, float("nan"), float("inf"), True, "95"])
def test_an_unusable_limit_price_is_an_error_of_that_quote(limit_price: Any) -> None:
    algo = started(LimitTrader, side="buy", limit_price=limit_price)
    assert algo.events([quote()]) == []
    assert algo.state()["errors"] == 1
    assert "limit_price must be a finite number > 0" in algo.state()["last_error"]
    assert algo.portfolio.open_orders == {}


# --- fill, rejection, state, finalize ------------------------------------------------------


def test_a_fill_without_order_id_books_an_outside_trade() -> None:
    algo = started(Quiet, starting_cash=1_000)
    algo.fill({"sid": "goog", "side": "buy", "qty": 4, "price": 10.0, "fee": 1.0, "order": "x"})
    algo.fill({"sid": "GOOG", "side": "sell", "qty": 1, "price": 12.0, "fee": None})
    assert algo.portfolio.positions["GOOG"].qty == 3
    assert algo.portfolio.cash == 1_000 - 41.0 + 12.0
    assert algo.portfolio.realised_pnl == -1.0 + 2.0
    assert algo.state()["fills"] == 2


def test_a_second_fill_of_the_same_order_is_refused_and_changes_nothing() -> None:
    algo = started(Buyer, starting_cash=1_000, qty=2)
    [order] = algo.events([quote(price=10.0)])
    report = fill_of(order, price=10.0, fee=0.5)
    algo.fill(report)
    before = algo.state()
    with pytest.raises(PortfolioError, match="which is not open here"):
        algo.fill(report)
    assert algo.state() == before
    assert before["fills"] == 1
    assert algo.portfolio.positions["GOOG"].qty == 2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"qty": 1}, "fill buy 1 GOOG does not match open order"),
        ({"side": "sell"}, "fill sell 2 GOOG does not match open order"),
        ({"sid": "MSFT"}, "fill buy 2 MSFT does not match open order"),
    ],
)
def test_a_fill_not_matching_its_order_is_refused_and_changes_nothing(
    change: dict[str, Any], reason: str
) -> None:
    algo = started(Buyer, starting_cash=1_000, qty=2)
    algo.fill({"sid": "GOOG", "side": "buy", "qty": 5, "price": 10.0})  # a sell could fill
    [order] = algo.events([quote(price=10.0)])
    before = algo.state()
    with pytest.raises(PortfolioError) as info:
        algo.fill({**fill_of(order, price=10.0), **change})
    assert reason in info.value.reason
    assert algo.state() == before
    algo.fill(fill_of(order, price=10.0))  # the order is still open for its real fill
    assert algo.portfolio.positions["GOOG"].qty == 7


def test_a_rejection_frees_the_hold_and_is_counted() -> None:
    assert REJECTED_KEY == "rejected"  # the report's wire format
    algo = started(Buyer, starting_cash=1_000, qty=5)
    [order] = algo.events([quote(price=100.0)])
    assert algo.portfolio.available_cash == pytest.approx(1_000 - 502.5)
    algo.fill(rejection_of(order, "outside the price band"))
    assert algo.portfolio.open_orders == {}
    assert algo.portfolio.available_cash == algo.portfolio.cash == 1_000
    assert algo.portfolio.positions == {}
    state = algo.state()
    assert (state["rejected"], state["fills"]) == (1, 0)
    assert state["last_rejection"] == f"{order['id']}: outside the price band"


def test_a_rejected_sell_gives_back_its_shares() -> None:
    algo = started(Seller, qty=3)
    algo.fill({"sid": "GOOG", "side": "buy", "qty": 3, "price": 10.0})
    [order] = algo.events([quote(price=10.0)])
    assert algo.portfolio.available_shares("GOOG") == 0
    algo.fill(rejection_of(order))
    assert algo.portfolio.available_shares("GOOG") == 3
    assert len(algo.events([quote(price=10.0)])) == 1  # it can be sold again


@pytest.mark.parametrize("then", ["filled", "rejected"])
def test_a_rejection_of_an_order_no_longer_open_is_refused(then: str) -> None:
    algo = started(Buyer, starting_cash=1_000, qty=1)
    [order] = algo.events([quote(price=10.0)])
    algo.fill(fill_of(order, price=10.0) if then == "filled" else rejection_of(order))
    before = algo.state()
    with pytest.raises(PortfolioError, match=f"no open order '{order['id']}'"):
        algo.fill(rejection_of(order))
    assert algo.state() == before


@pytest.mark.parametrize(
    ("fill", "reason"),
    [
        ({"side": "buy", "qty": 1}, "fill is missing ['sid', 'price']"),
        ({"sid": "GOOG", "side": "buy", "qty": 0, "price": 1.0}, "qty must be an int > 0"),
        ({"sid": "GOOG", "side": "short", "qty": 1, "price": 1.0}, "side must be 'buy' or"),
        ({"sid": "GOOG", "side": "buy", "qty": 1, "price": 1.0, "fee": "1"}, "fee must be"),
        ({"sid": "GOOG", "side": "buy", "qty": 1000, "price": 1.0}, "cash is only 100.0"),
        ({"sid": "GOOG", "side": "sell", "qty": 1, "price": 1.0}, "the position is 0"),
        (
            {"order_id": 7, "sid": "GOOG", "side": "buy", "qty": 1, "price": 1.0},
            "order_id must be a string, got 7",
        ),
        (
            {"order_id": "nope", "sid": "GOOG", "side": "buy", "qty": 1, "price": 1.0},
            "fill for order 'nope', which is not open here",
        ),
        ({"rejected": "no"}, "a rejection needs the order_id"),
        ({"order_id": "nope", "rejected": "no"}, "no open order 'nope'"),
    ],
)
def test_fill_rejects_bad_reports_and_changes_nothing(fill: dict[str, Any], reason: str) -> None:
    algo = started(Quiet, starting_cash=100)
    with pytest.raises(PortfolioError) as info:
        algo.fill(fill)
    assert reason in info.value.reason
    assert state_of(algo) == fresh_state(100)


def test_fill_requires_a_mapping() -> None:
    with pytest.raises(PortfolioError, match="a fill must be a mapping, got list"):
        started(Quiet).fill(["GOOG", "buy"])  # type: ignore[arg-type]


def test_state_and_finalize_are_json_safe_and_agree() -> None:
    algo = started(Buyer, starting_cash=1_000, qty=2)
    first, second, third, fourth = algo.events(series([10.0, 12.0, 11.0, 11.5]))
    algo.fill(fill_of(first, price=10.0))
    algo.fill(fill_of(second, price=12.0))
    algo.fill(rejection_of(third, "halted"))
    state = algo.state()
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert state == {
        "initialized": True,
        "algorithm": "tests.test_algos:Buyer",
        "portfolio": algo.portfolio.summary(),
        "portfolio_snapshot": algo.portfolio.snapshot(),
        "quotes": 4,
        "orders": 4,
        "fills": 2,
        "rejected": 1,
        "last_rejection": f"{third['id']}: halted",
        "errors": 0,
        "last_error": None,
    }
    assert state["portfolio"]["positions"]["GOOG"] == {
        "qty": 4,
        "avg_cost": 11.0,
        "last_price": 12.0,  # the last fill marked it
    }
    assert state["portfolio"]["open_orders"] == 1
    assert list(state["portfolio_snapshot"]["open_orders"]) == [fourth["id"]]
    assert algo.finalize() == state


# --- RandomAlgo --------------------------------------------------------------------------


def expected_fraction_buys(cash: float, prices: Sequence[float]) -> list[int]:
    """Quantities a FractionOfCash(0.1) buyer places on every quote while nothing fills."""
    p = Portfolio(cash=cash)
    quantities = []
    for n, price in enumerate(prices):
        qty = p.optimize(quote(price=price))
        if qty:
            p.reserve(f"o{n}", sid="GOOG", side="buy", qty=qty, price=price)
            quantities.append(qty)
    return quantities


def test_random_algo_with_threshold_zero_buys_on_every_quote_it_can_afford() -> None:
    prices = [10.0, 11.0, 9.0, 10.0, 500.0, 10.0, 10.0, 10.0]
    algo = started(RandomAlgo, threshold=0, seed=1, starting_cash=1_000)
    assert algo.start({"threshold": 0, "seed": 1, "starting_cash": 1_000}) == [
        "quotes",
        "quotes/#",
    ]
    orders = algo.events(series(prices))
    expected = expected_fraction_buys(1_000, prices)
    assert [o["qty"] for o in orders] == expected
    assert expected[:2] == [10, 8]  # a tenth of what the earlier orders do not hold
    assert len(expected) == 7  # at 500.0 a tenth of the cash buys nothing
    assert {o["side"] for o in orders} == {"buy"}
    assert algo.portfolio.available_cash >= 0
    assert algo.portfolio.cash == 1_000


def test_random_algo_buys_exactly_when_the_seeded_draw_beats_the_threshold() -> None:
    draws = random.Random(7)
    expected = [i for i in range(60) if draws.random() > 0.5]
    algo = started(RandomAlgo, threshold=0.5, seed=7, starting_cash=1_000_000)
    orders = algo.events(series([1.0] * 60))
    assert [o["ts"] - 1_000.0 for o in orders] == expected
    assert 10 < len(expected) < 50  # the threshold really filters


def test_random_algo_is_reproducible_with_a_seed() -> None:
    def run() -> list[tuple[str, int, float]]:
        algo = started(RandomAlgo, threshold=0.3, seed=42)
        prices = [100.0 + (i % 7) for i in range(40)]
        return [(o["side"], o["qty"], o["ts"]) for o in algo.events(series(prices))]

    assert run() == run()
    assert run()


def test_random_algo_with_threshold_one_never_buys() -> None:
    assert started(RandomAlgo, threshold=1, seed=3).events(series([1.0] * 100)) == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"threshold": -0.1}, "threshold must be a number in [0, 1], got -0.1"),
        ({"threshold": 1.5}, "threshold must be a number in [0, 1], got 1.5"),
        ({"threshold": "high"}, "threshold must be a number in [0, 1], got 'high'"),
        ({"threshold": None}, "threshold must be a number in [0, 1], got None"),
        ({"seed": 1.5}, "seed must be an integer, got 1.5"),
        ({"seed": "abc"}, "seed must be an integer, got 'abc'"),
        ({"seed": True}, "seed must be an integer, got True"),
        ({"starting_cash": -5}, "starting_cash must be a number >= 0, got -5"),
    ],
)
def test_random_algo_rejects_bad_params(params: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        RandomAlgo().start(params)
    assert info.value.reason == reason


# --- MovingAverageCross ------------------------------------------------------------------


def test_moving_average_cross_buys_on_the_upward_cross_and_sells_all_on_the_downward() -> None:
    algo = started(MovingAverageCross, fast=2, slow=4, starting_cash=10_000)
    quotes = series([10.0, 10.0, 10.0, 10.0, 12.0, 8.0])
    # Full window at #3 (fast 10 == slow 10: not above). #4: fast 11 > slow 10.5 -> buy.
    [buy] = algo.events(quotes[:5])
    assert (buy["side"], buy["ts"]) == ("buy", 1_004.0)
    assert buy["qty"] == Portfolio(cash=10_000).optimize(quote(price=12.0)) == 83
    algo.fill(fill_of(buy, price=12.0))
    # #5: window 10,10,12,8 -> fast 10 == slow 10 -> downward cross -> sell everything.
    [sell] = algo.events(quotes[5:])
    assert (sell["side"], sell["qty"], sell["ts"]) == ("sell", 83, 1_005.0)
    algo.fill(fill_of(sell, price=8.0))
    assert algo.portfolio.positions == {}
    assert algo.portfolio.cash == 10_000 - 83 * 12.0 + 83 * 8.0


def test_moving_average_cross_sells_only_the_shares_it_is_not_already_selling() -> None:
    algo = started(MovingAverageCross, fast=2, slow=4, starting_cash=10_000)
    quotes = series([10.0, 10.0, 10.0, 10.0, 12.0, 8.0, 20.0, 1.0, 1.0])
    [first_buy] = algo.events(quotes[:5])
    algo.fill(fill_of(first_buy, price=12.0))
    [first_sell] = algo.events(quotes[5:6])  # left open: its 83 shares stay held back
    [second_buy] = algo.events(quotes[6:7])  # window 10,12,8,20: fast 14 > slow 12.5
    algo.fill(fill_of(second_buy, price=20.0))
    # Window 8,20,1,1: fast 1 < slow 7.5, a downward cross; only the new shares are free.
    [second_sell] = algo.events(quotes[7:])
    assert second_sell["qty"] == second_buy["qty"]
    assert algo.portfolio.positions["GOOG"].qty == first_sell["qty"] + second_sell["qty"]
    assert algo.portfolio.available_shares("GOOG") == 0


def test_moving_average_cross_needs_slow_prices_and_a_change_of_side() -> None:
    algo = started(MovingAverageCross, fast=2, slow=4)
    # Rising from the start: the fast MA is above as soon as the window is full,
    # which is not a cross, so nothing trades.
    assert algo.events(series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])) == []
    # Three prices then a jump: still fewer than `slow` prices, no signal.
    assert algo.events(series([10.0, 10.0, 30.0], sid="MSFT")) == []


def test_moving_average_cross_flat_series_never_trades() -> None:
    for price in (0.1, 0.7, 1.1, 3.3, 1234.5678):
        algo = started(MovingAverageCross, fast=3, slow=7)
        assert algo.events(series([price] * 60)) == []


@pytest.mark.parametrize(("level", "fast", "slow"), [(967.8, 5, 12), (63.9, 4, 21)])
def test_moving_average_cross_ignores_float_noise_when_prices_settle(
    level: float, fast: int, slow: int
) -> None:
    # At these levels the float fast MA of a flat window comes out above the slow MA.
    assert sum([level] * fast) / fast != sum([level] * slow) / slow
    algo = started(MovingAverageCross, fast=fast, slow=slow)
    # A step down, then flat: the MAs meet, which is no upward cross.
    assert algo.events(series([level * 1.1] * slow + [level] * (2 * slow))) == []


def test_moving_average_cross_downward_cross_without_shares_sells_nothing() -> None:
    algo = started(MovingAverageCross, fast=2, slow=4)
    # The first full window (#3) starts above; #4 crosses down with nothing held.
    assert algo.events(series([10.0, 10.0, 10.0, 12.0, 8.0])) == []
    # An upward cross the cash cannot pay for places nothing, so the next
    # downward cross has nothing to sell either.
    broke = started(MovingAverageCross, fast=2, slow=4, starting_cash=0)
    assert broke.events(series([10.0, 10.0, 10.0, 10.0, 12.0, 8.0])) == []
    # A buy placed but not yet filled holds no shares: nothing to sell on the way down.
    waiting = started(MovingAverageCross, fast=2, slow=4)
    [buy] = waiting.events(series([10.0, 10.0, 10.0, 10.0, 12.0, 8.0]))
    assert buy["side"] == "buy"


def test_moving_average_cross_keeps_each_symbol_apart() -> None:
    algo = started(MovingAverageCross, fast=2, slow=4)
    goog = series([10.0, 10.0, 10.0, 10.0, 12.0])
    msft = series([5.0, 5.0, 5.0, 5.0, 5.0], sid="MSFT")
    interleaved = [q for pair in zip(goog, msft, strict=True) for q in pair]
    orders = algo.events(interleaved)
    assert [(o["sid"], o["side"]) for o in orders] == [("GOOG", "buy")]


def test_moving_average_cross_defaults_are_five_and_twenty() -> None:
    algo = started(MovingAverageCross)
    # With slow=20 the first full window is the 20th price; a rise on the 21st crosses.
    assert algo.events(series([10.0] * 20)) == []
    [order] = algo.events([quote(price=15.0)])
    assert order["side"] == "buy"
    shorter = started(MovingAverageCross)
    assert shorter.events(series([10.0] * 19 + [15.0])) == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"fast": 20, "slow": 20}, "fast must be less than slow, got fast=20 and slow=20"),
        ({"fast": 30}, "fast must be less than slow, got fast=30 and slow=20"),
        ({"fast": 0}, "fast must be an integer >= 1, got 0"),
        ({"fast": "3"}, "fast must be an integer >= 1, got '3'"),
        ({"slow": 1.5}, "slow must be an integer >= 2, got 1.5"),
        ({"slow": True}, "slow must be an integer >= 2, got True"),
    ],
)
def test_moving_average_cross_rejects_bad_params(params: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        MovingAverageCross().start(params)
    assert info.value.reason == reason


# --- load_algorithm ----------------------------------------------------------------------


def test_load_algorithm_finds_classes() -> None:
    assert load_algorithm("algos.examples:RandomAlgo") is RandomAlgo
    assert load_algorithm("algos.examples:MovingAverageCross") is MovingAverageCross
    assert load_algorithm("tests.test_algos:Buyer") is Buyer


@pytest.mark.parametrize(
    "spec", ["algos.examples", "algos.examples:", ":RandomAlgo", "a:b:c", "algos..x:Y", "a b:C"]
)
def test_load_algorithm_rejects_malformed_specs(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_algorithm(spec)
    assert info.value.reason == (
        f"algorithm spec must look like 'package.module:ClassName', got {spec!r}"
    )


def test_load_algorithm_reports_the_import_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_algorithm("no_such_module_x7:Algo")
    assert info.value.reason == (
        "cannot import module 'no_such_module_x7' for 'no_such_module_x7:Algo': "
        "ModuleNotFoundError: No module named 'no_such_module_x7'"
    )


def test_load_algorithm_reports_errors_raised_while_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_algo_x7.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "syntax_algo_x7.py").write_text("def (:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="RuntimeError: boom at import"):
        load_algorithm("broken_algo_x7:Algo")
    with pytest.raises(ConfigError, match="SyntaxError"):
        load_algorithm("syntax_algo_x7:Algo")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("algos.examples:Nope", "module 'algos.examples' has no attribute 'Nope'"),
        (
            "json:JSONDecoder",
            "'json:JSONDecoder' is neither a subclass of algos.Algorithm nor a class with "
            "initialize(params) and event(quote) methods: it has no initialize and no event",
        ),
        ("json:dumps", "'json:dumps' is <function dumps"),
        ("json:dumps", "not a class"),
        ("algos:DEFAULT_CHANNELS", "not a class"),
        ("algos:Algorithm", "'algos:Algorithm' is abstract: it does not implement event"),
        ("tests.test_algos:StillAbstract", "is abstract: it does not implement event"),
    ],
)
def test_load_algorithm_rejects_what_is_not_a_concrete_algorithm(spec: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_algorithm(spec)
    assert reason in info.value.reason


# --- parse_params ------------------------------------------------------------------------


def test_parse_params_reads_json_values_and_keeps_other_strings() -> None:
    assert parse_params(
        [
            "threshold=0",
            "seed=7",
            "x=true",
            "ratio=0.25",
            "nothing=null",
            "list=[1, 2]",
            'quoted="7"',
            "channels=quotes/GOOG,quotes/MSFT",
            "name=random",
            "empty=",
            "eq=a=b",
            " spaced =1",
            "zero_padded=007",
        ]
    ) == {
        "threshold": 0,
        "seed": 7,
        "x": True,
        "ratio": 0.25,
        "nothing": None,
        "list": [1, 2],
        "quoted": "7",
        "channels": "quotes/GOOG,quotes/MSFT",
        "name": "random",
        "empty": "",
        "eq": "a=b",
        "spaced": 1,
        "zero_padded": "007",
    }
    assert parse_params([]) == {}


def test_parse_params_keeps_non_finite_numbers_as_strings() -> None:
    assert parse_params(["a=NaN", "b=Infinity", "c=-Infinity", "d=1e999"]) == {
        "a": "NaN",
        "b": "Infinity",
        "c": "-Infinity",
        "d": "1e999",
    }


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        (["threshold"], "param 'threshold' must look like key=value"),
        (["=5"], "param '=5' has an empty key"),
        (["  =5"], "param '  =5' has an empty key"),
        (["a=1", "a=2"], "param 'a' is given more than once"),
    ],
)
def test_parse_params_rejects_bad_items(items: list[str], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params(items)
    assert info.value.reason == reason


def test_parsed_params_drive_initialize() -> None:
    algo = RandomAlgo()
    params = parse_params(["threshold=0", "seed=7", "starting_cash=500", "channels=quotes/GOOG"])
    assert algo.start(params) == ["quotes/GOOG"]
    assert len(algo.events(series([10.0]))) == 1


# --- plain Python ------------------------------------------------------------------------


def test_algos_and_portfolio_do_not_import_the_transport() -> None:
    code = textwrap.dedent(
        """
        import sys
        import algos, algos.examples, portfolio
        banned = ("broker", "bridge", "ring", "zerorpc", "paho", "gevent", "zmq")
        print([m for m in sys.modules if m.split(".")[0] in banned])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
