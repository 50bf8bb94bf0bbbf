"""Portfolio: sizing, open orders and their holds, fills, average-cost PnL, marking,
snapshot/restore, invariants."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pytest

from portfolio import (
    DEFAULT_BUFFER_BPS,
    FractionOfCash,
    OpenOrder,
    Portfolio,
    Position,
    SizingPolicy,
)
from tickbus.errors import ConfigError, PortfolioError, QuoteRejected


def quote(sid: str = "GOOG", price: Any = 100.0, **extra: Any) -> dict[str, Any]:
    return {"sid": sid, "price": price, "ts": 1_732_300_000.0, **extra}


class Greedy:
    """A sizing policy that always asks for far more than any cash affords."""

    def quantity(self, *, cash: float, price: float) -> int:
        return 10**12


class Fixed:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def quantity(self, *, cash: float, price: float) -> Any:
        return self.answer


def observables(p: Portfolio) -> dict[str, Any]:
    return {
        "cash": p.cash,
        "available_cash": p.available_cash,
        "open_orders": dict(p.open_orders),
        "positions": dict(p.positions),
        "equity": p.equity,
        "realised": p.realised_pnl,
        "unrealised": p.unrealised_pnl,
        "summary": p.summary(),
        "snapshot": p.snapshot(),
    }


def assert_invariants(p: Portfolio, last: dict[str, float], start_cash: float) -> None:
    assert p.cash >= 0
    marked = sum(pos.qty * last[sid] for sid, pos in p.positions.items())
    assert p.equity == pytest.approx(p.cash + marked, rel=1e-12, abs=1e-9)
    assert p.equity - start_cash == pytest.approx(
        p.realised_pnl + p.unrealised_pnl, rel=1e-9, abs=1e-6
    )
    assert all(pos.qty > 0 for pos in p.positions.values())
    orders = p.open_orders.values()
    assert p.available_cash == p.cash - math.fsum(o.reserved_cash for o in orders)
    for sid in {o.sid for o in orders}:
        selling = sum(o.qty for o in orders if o.sid == sid and o.side == "sell")
        held = p.positions[sid].qty if sid in p.positions else 0
        assert selling <= held, f"open sells of {sid} hold {selling} shares of {held}"
        assert p.available_shares(sid) == held - selling


# --- construction and sizing ---------------------------------------------------------------


@pytest.mark.parametrize("cash", [-0.01, math.nan, math.inf, -math.inf, True, "100", None])
def test_rejects_unusable_starting_cash(cash: Any) -> None:
    with pytest.raises(PortfolioError, match="cash must be a finite number >= 0") as info:
        Portfolio(cash=cash)
    assert repr(cash) in info.value.reason


def test_zero_cash_is_allowed_and_never_bets() -> None:
    p = Portfolio(cash=0)
    assert p.cash == 0.0
    assert p.optimize(quote()) == 0


def test_constructor_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Portfolio(100.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        FractionOfCash(0.5)  # type: ignore[call-arg]


def test_default_sizing_is_a_tenth_of_cash() -> None:
    assert Portfolio(cash=1_000).optimize(quote(price=10.0)) == 10
    assert Portfolio(cash=1_000).optimize(quote(price=33.0)) == 3  # floor(100 / 33)


def test_default_buffer_is_fifty_basis_points() -> None:
    assert DEFAULT_BUFFER_BPS == 50.0
    assert Portfolio(cash=1).buffer_bps == 50.0
    assert Portfolio(cash=1, buffer_bps=0).buffer_bps == 0.0


@pytest.mark.parametrize("buffer_bps", [-0.01, math.nan, math.inf, True, "50", None])
def test_rejects_unusable_buffer(buffer_bps: Any) -> None:
    with pytest.raises(ConfigError, match="buffer_bps must be a finite number >= 0") as info:
        Portfolio(cash=1_000, buffer_bps=buffer_bps)
    assert repr(buffer_bps) in info.value.reason


def test_sizing_without_quantity_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="quantity"):
        Portfolio(cash=1.0, sizing=object())  # type: ignore[arg-type]


@pytest.mark.parametrize("fraction", [0, -0.1, 1.0001, math.nan, math.inf, True, "0.5"])
def test_fraction_of_cash_rejects_fraction_outside_zero_one(fraction: Any) -> None:
    with pytest.raises(ConfigError, match=r"fraction must be a number in \(0, 1\]"):
        FractionOfCash(fraction=fraction)


def test_fraction_of_cash_floors_to_whole_shares() -> None:
    sizing: SizingPolicy = FractionOfCash(fraction=0.25)
    assert sizing.quantity(cash=1_000.0, price=30.0) == 8  # 250 / 30 = 8.33
    assert sizing.quantity(cash=1_000.0, price=29.0) == 8  # 250 / 29 = 8.62
    assert FractionOfCash(fraction=1).quantity(cash=1_000.0, price=10.0) == 100
    assert FractionOfCash(fraction=0.1).quantity(cash=5.0, price=10.0) == 0


@pytest.mark.parametrize(
    ("cash", "price", "reason"),
    [
        (100.0, 0.0, "price"),
        (100.0, -1.0, "price"),
        (100.0, math.nan, "price"),
        (-1.0, 1.0, "cash"),
    ],
)
def test_fraction_of_cash_rejects_bad_inputs(cash: float, price: float, reason: str) -> None:
    with pytest.raises(PortfolioError, match=reason):
        FractionOfCash(fraction=0.5).quantity(cash=cash, price=price)


# --- optimize ------------------------------------------------------------------------------


def test_optimize_sizes_at_the_ask_when_the_quote_has_one() -> None:
    p = Portfolio(cash=1_000, sizing=FractionOfCash(fraction=1), buffer_bps=0)
    assert p.optimize(quote(price=10.0)) == 100
    assert p.optimize(quote(price=10.0, ask=20.0, bid=9.0)) == 50
    assert p.optimize(quote(price=10.0, ask=None)) == 100


def test_optimize_leaves_room_for_the_buffer() -> None:
    # 100 shares at 10.0 cost the whole 1,000, but a buy holds back 10% more here.
    p = Portfolio(cash=1_000, sizing=Greedy(), buffer_bps=1_000)
    assert p.optimize(quote(price=10.0)) == 90  # floor(1000 / 11)
    assert Portfolio(cash=1_000, sizing=Greedy()).optimize(quote(price=10.0)) == 99  # 0.5%


def test_optimize_sizes_from_the_cash_open_buys_do_not_hold() -> None:
    p = Portfolio(cash=1_000, sizing=FractionOfCash(fraction=0.5), buffer_bps=0)
    p.reserve("b1", sid="GOOG", side="buy", qty=60, price=10.0)
    assert p.cash == 1_000
    assert p.optimize(quote(price=10.0)) == 20  # half of the 400 not held
    p.release("b1")
    assert p.optimize(quote(price=10.0)) == 50


def test_optimize_caps_a_greedy_policy_at_exactly_what_reserve_accepts() -> None:
    p = Portfolio(cash=1_000, sizing=Greedy())
    qty = p.optimize(quote(price=7.0))
    assert qty == 142  # floor(1000 / (7 * 1.005)) = floor(142.15)
    with pytest.raises(PortfolioError, match="holds back"):
        p.reserve("one-more", sid="GOOG", side="buy", qty=qty + 1, price=7.0)
    p.reserve("b1", sid="GOOG", side="buy", qty=qty, price=7.0)
    assert 0 <= p.available_cash < 7.0 * 1.005
    assert p.optimize(quote(price=7.0)) == 0


@pytest.mark.parametrize(
    ("cash", "price", "buffer_bps", "qty"),
    [(58.1, 4.15, 0.0, 13), (661.29, 0.28, DEFAULT_BUFFER_BPS, 2349)],
)
def test_optimize_cap_agrees_with_reserve_where_division_rounds_up(
    cash: float, price: float, buffer_bps: float, qty: int
) -> None:
    # The division says one share more fits, but that hold, computed as reserve
    # computes it, exceeds the cash by a rounding error.
    assert math.floor(cash / (price * (1 + buffer_bps / 10_000))) == qty + 1
    p = Portfolio(cash=cash, sizing=Greedy(), buffer_bps=buffer_bps)
    assert p.optimize(quote(price=price)) == qty
    with pytest.raises(PortfolioError, match="holds back"):
        p.reserve("over", sid="X", side="buy", qty=qty + 1, price=price)
    p.reserve("b1", sid="X", side="buy", qty=qty, price=price)
    assert p.available_cash >= 0


def test_greedy_sizing_never_overcommits_cash_on_random_prices() -> None:
    rng = random.Random(3)
    for _ in range(2_000):
        cash = round(rng.uniform(0, 1_000), 2)
        price = round(rng.uniform(0.01, 50), 2)
        p = Portfolio(cash=cash, sizing=Greedy())
        qty = p.optimize(quote(price=price))
        if qty:
            p.reserve("b1", sid="X", side="buy", qty=qty, price=price)
        assert p.available_cash >= 0
        assert p.optimize(quote(price=price)) == 0  # nothing more is affordable
        if qty:  # filled at the price it was sized at: the buffer is left over
            p.apply_fill(sid="X", side="buy", qty=qty, price=price, order_id="b1")
            assert p.cash >= 0


@pytest.mark.parametrize("answer", [-1, 2.5, "3", True, None])
def test_optimize_rejects_a_policy_answer_that_is_not_a_whole_count(answer: Any) -> None:
    p = Portfolio(cash=1_000, sizing=Fixed(answer))
    with pytest.raises(ConfigError, match="must return an int >= 0"):
        p.optimize(quote())


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"price": 1.0, "ts": 0.0}, "sid"),
        ({"sid": "", "price": 1.0}, "sid"),
        (quote(price=0.0), "price"),
        (quote(price=-3.0), "price"),
        (quote(price=math.nan), "price"),
        (quote(price="1"), "price"),
        (quote(ask=0.0), "ask"),
        (["GOOG", 1.0], "mapping"),
    ],
)
def test_optimize_and_mark_reject_bad_quotes(bad: Any, reason: str) -> None:
    p = Portfolio(cash=1_000)
    with pytest.raises(QuoteRejected, match=reason):
        p.optimize(bad)
    if reason != "ask":  # mark only reads sid and price
        with pytest.raises(QuoteRejected, match=reason):
            p.mark(bad)


# --- open orders: reserve and release ------------------------------------------------------


def test_reserving_a_buy_holds_back_its_cost_plus_the_buffer_and_moves_nothing_else() -> None:
    p = Portfolio(cash=10_000)
    order = p.reserve("b1", sid="goog", side="buy", qty=10, price=100.0)
    assert (order.sid, order.side, order.qty) == ("GOOG", "buy", 10)
    assert order.reserved_cash == pytest.approx(10 * 100.0 * 1.005)
    assert p.open_orders == {"b1": order}
    assert p.available_cash == pytest.approx(10_000 - 1_005.0)
    assert p.cash == 10_000
    assert p.positions == {}
    assert p.equity == 10_000
    assert p.realised_pnl == 0


@pytest.mark.parametrize(("buffer_bps", "hold"), [(0.0, 30.0), (250.0, 30.75), (50.0, 30.15)])
def test_a_buy_hold_follows_the_buffer(buffer_bps: float, hold: float) -> None:
    p = Portfolio(cash=1_000, buffer_bps=buffer_bps)
    order = p.reserve("b1", sid="GOOG", side="buy", qty=3, price=10.0)
    assert order.reserved_cash == pytest.approx(hold)


def test_reserving_a_sell_holds_back_shares_not_cash() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=10.0)
    order = p.reserve("s1", sid="GOOG", side="sell", qty=4, price=10.0)
    assert order == OpenOrder(sid="GOOG", side="sell", qty=4, reserved_cash=0.0)
    assert p.available_shares("GOOG") == 6
    assert p.available_shares("goog") == 6
    assert p.positions["GOOG"].qty == 10
    assert p.available_cash == p.cash == 900.0


def test_available_shares_of_a_symbol_not_held_is_zero() -> None:
    assert Portfolio(cash=1_000).available_shares("NOPE") == 0


def test_a_hold_of_exactly_the_available_cash_is_accepted() -> None:
    p = Portfolio(cash=1_000, buffer_bps=0)
    p.reserve("b1", sid="GOOG", side="buy", qty=100, price=10.0)
    assert p.available_cash == 0.0
    with pytest.raises(PortfolioError, match=r"only 0\.00 of cash is available"):
        p.reserve("b2", sid="GOOG", side="buy", qty=1, price=0.01)


def test_release_frees_the_hold() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=10.0)
    p.reserve("b1", sid="GOOG", side="buy", qty=10, price=10.0)
    p.reserve("s1", sid="GOOG", side="sell", qty=10, price=10.0)
    assert p.release("b1").side == "buy"
    assert p.available_cash == 900.0
    assert p.release("s1").side == "sell"
    assert p.available_shares("GOOG") == 10
    assert p.open_orders == {}
    assert (p.cash, p.positions["GOOG"].qty) == (900.0, 10)


def test_releasing_an_order_that_is_not_open_is_refused_and_changes_nothing() -> None:
    p = Portfolio(cash=1_000)
    p.reserve("b1", sid="GOOG", side="buy", qty=1, price=10.0)
    p.release("b1")
    before, changes = observables(p), p.changes
    for order_id in ("b1", "never-placed"):
        with pytest.raises(PortfolioError, match=f"no open order '{order_id}'"):
            p.release(order_id)
    assert observables(p) == before
    assert p.changes == changes


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"order_id": "b1"}, "order 'b1' is already open"),
        ({"order_id": "s1", "side": "sell"}, "order 's1' is already open"),
        ({"qty": 41}, "holds back 410.00, but only 400.00 of cash is available"),
        ({"side": "sell", "qty": 7}, "cannot sell 7 GOOG: 6 shares are available"),
        ({"sid": "MSFT", "side": "sell"}, "cannot sell 1 MSFT: 0 shares are available"),
        ({"qty": 0}, "qty must be an int > 0, got 0"),
        ({"qty": 2.0}, "qty must be an int > 0, got 2.0"),
        ({"qty": True}, "qty must be an int > 0, got True"),
        ({"price": 0.0}, "price must be a finite number > 0, got 0.0"),
        ({"price": math.nan}, "price must be a finite number > 0"),
        ({"side": "short"}, "side must be 'buy' or 'sell', got 'short'"),
        ({"sid": ""}, "sid must be a non-empty string"),
    ],
)
def test_reserve_refuses_what_is_not_available_and_changes_nothing(
    change: dict[str, Any], reason: str
) -> None:
    p = Portfolio(cash=1_000, buffer_bps=0)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=10.0)  # 900 cash
    p.reserve("b1", sid="GOOG", side="buy", qty=50, price=10.0)  # 400 of it not held
    p.reserve("s1", sid="GOOG", side="sell", qty=4, price=10.0)  # 6 shares not held
    before, changes = observables(p), p.changes
    args: dict[str, Any] = {
        "order_id": "new",
        "sid": "GOOG",
        "side": "buy",
        "qty": 1,
        "price": 10.0,
        **change,
    }
    with pytest.raises(PortfolioError) as info:
        p.reserve(args.pop("order_id"), **args)
    assert reason in info.value.reason
    assert observables(p) == before
    assert p.changes == changes


class RandomSizing:
    """Asks for 1 to 50 shares at random; `optimize` caps it at what is affordable."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def quantity(self, *, cash: float, price: float) -> int:
        return self.rng.randint(1, 50)


def test_open_buys_never_commit_more_cash_than_there_is() -> None:
    rng = random.Random(5)
    p = Portfolio(cash=10_000, sizing=RandomSizing(seed=6))
    placed = refused = 0
    for n in range(300):
        q = quote(sid=rng.choice(["GOOG", "MSFT"]), price=round(rng.uniform(1, 200), 2))
        qty = p.optimize(q)
        if qty:
            p.reserve(f"b{n}", sid=q["sid"], side="buy", qty=qty, price=q["price"])
            placed += 1
        else:  # nothing affordable at this price: reserve agrees
            with pytest.raises(PortfolioError, match="holds back"):
                p.reserve(f"b{n}", sid=q["sid"], side="buy", qty=1, price=q["price"])
            refused += 1
        assert math.fsum(o.reserved_cash for o in p.open_orders.values()) <= p.cash
        assert p.available_cash >= 0
    assert placed > 5
    assert refused > 100  # the cash ran out
    assert len(p.open_orders) == placed
    assert p.cash == 10_000


def test_open_sells_never_commit_more_shares_than_are_held() -> None:
    rng = random.Random(8)
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=10.0)
    placed = 0
    while p.available_shares("GOOG") > 0:
        qty = rng.randint(1, p.available_shares("GOOG"))
        p.reserve(f"s{placed}", sid="GOOG", side="sell", qty=qty, price=10.0)
        placed += 1
    with pytest.raises(PortfolioError, match="cannot sell 1 GOOG: 0 shares are available"):
        p.reserve("one-more", sid="GOOG", side="sell", qty=1, price=10.0)
    assert sum(o.qty for o in p.open_orders.values()) == 10
    assert p.positions["GOOG"].qty == 10


def test_open_orders_are_a_read_only_copy_of_frozen_orders() -> None:
    p = Portfolio(cash=1_000)
    p.reserve("b1", sid="GOOG", side="buy", qty=1, price=10.0)
    view = p.open_orders
    with pytest.raises(TypeError):
        view["b2"] = view["b1"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        view["b1"].qty = 100  # type: ignore[misc]
    p.release("b1")
    assert "b1" in view  # taken before the release
    assert p.open_orders == {}


def test_changes_counts_fills_reserves_and_releases_but_not_marks_or_refusals() -> None:
    p = Portfolio(cash=1_000)
    assert p.changes == 0
    p.reserve("b1", sid="GOOG", side="buy", qty=1, price=10.0)
    p.mark(quote(price=11.0))
    assert p.changes == 1
    p.apply_fill(sid="GOOG", side="buy", qty=1, price=10.0, order_id="b1")
    p.reserve("s1", sid="GOOG", side="sell", qty=1, price=10.0)
    p.release("s1")
    p.apply_fill(sid="MSFT", side="buy", qty=1, price=10.0)
    assert p.changes == 5
    with pytest.raises(PortfolioError):
        p.release("s1")
    with pytest.raises(PortfolioError):
        p.reserve("b2", sid="GOOG", side="buy", qty=10**6, price=10.0)
    with pytest.raises(PortfolioError):
        p.apply_fill(sid="GOOG", side="buy", qty=1, price=10.0, order_id="b1")
    assert p.changes == 5
    assert Portfolio.restore(p.snapshot()).changes == 0  # not carried by the snapshot


# --- fills ---------------------------------------------------------------------------------


def test_buy_lowers_cash_by_cost_plus_fee_and_marks_at_the_fill_price() -> None:
    p = Portfolio(cash=10_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=100.0, fee=1.5)
    assert p.cash == 10_000 - 1_000 - 1.5
    assert p.positions == {"GOOG": Position(qty=10, avg_cost=100.0)}
    assert p.realised_pnl == -1.5  # the buying fee is a realised cost
    assert p.equity == p.cash + 10 * 100.0
    assert p.unrealised_pnl == 0.0


def test_buys_average_their_cost() -> None:
    p = Portfolio(cash=10_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=100.0)
    p.apply_fill(sid="GOOG", side="buy", qty=30, price=120.0)
    assert p.positions["GOOG"] == Position(qty=40, avg_cost=115.0)
    assert p.unrealised_pnl == pytest.approx(40 * (120.0 - 115.0))


def test_buy_costing_more_than_cash_is_refused_with_figures_and_changes_nothing() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=100.0)
    before = observables(p)
    with pytest.raises(PortfolioError) as info:
        p.apply_fill(sid="GOOG", side="buy", qty=5, price=100.0, fee=0.01)
    assert "costs 500.01" in info.value.reason
    assert "cash is only 500.0" in info.value.reason
    assert observables(p) == before


def test_buy_spending_exactly_all_cash_leaves_zero() -> None:
    p = Portfolio(cash=1_001)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=100.0, fee=1.0)
    assert p.cash == 0.0


def test_sell_realises_against_average_cost_minus_fee() -> None:
    p = Portfolio(cash=10_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=100.0, fee=1.0)
    p.apply_fill(sid="GOOG", side="sell", qty=4, price=110.0, fee=2.0)
    assert p.realised_pnl == pytest.approx(-1.0 + (110.0 - 100.0) * 4 - 2.0)
    assert p.positions["GOOG"] == Position(qty=6, avg_cost=100.0)
    assert p.cash == pytest.approx(10_000 - 1_001 + 440 - 2)
    assert p.unrealised_pnl == pytest.approx(6 * (110.0 - 100.0))  # marked at the sell price


def test_round_trip_at_one_price_loses_exactly_the_fees_and_removes_the_position() -> None:
    p = Portfolio(cash=10_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=100.0, fee=1.25)
    p.apply_fill(sid="GOOG", side="sell", qty=10, price=100.0, fee=0.75)
    assert p.realised_pnl == -2.0
    assert p.cash == 10_000 - 2.0
    assert p.equity == 10_000 - 2.0
    assert "GOOG" not in p.positions
    assert p.positions == {}


@pytest.mark.parametrize(("held", "sell"), [(0, 1), (5, 6)])
def test_selling_more_than_held_is_refused_no_short_selling(held: int, sell: int) -> None:
    p = Portfolio(cash=1_000)
    if held:
        p.apply_fill(sid="GOOG", side="buy", qty=held, price=10.0)
    before = observables(p)
    with pytest.raises(PortfolioError, match="short selling") as info:
        p.apply_fill(sid="GOOG", side="sell", qty=sell, price=10.0)
    assert f"cannot sell {sell} GOOG: the position is {held}" in info.value.reason
    assert observables(p) == before


def test_sell_whose_fee_exceeds_cash_and_proceeds_is_refused() -> None:
    p = Portfolio(cash=10)
    p.apply_fill(sid="GOOG", side="buy", qty=1, price=10.0)
    before = observables(p)
    with pytest.raises(PortfolioError, match=r"would leave cash at -5\.0"):
        p.apply_fill(sid="GOOG", side="sell", qty=1, price=10.0, fee=15.0)
    assert observables(p) == before


@pytest.mark.parametrize(
    ("fill", "reason"),
    [
        ({"side": "hold"}, "side must be 'buy' or 'sell', got 'hold'"),
        ({"qty": 0}, "qty must be an int > 0, got 0"),
        ({"qty": -3}, "qty must be an int > 0"),
        ({"qty": 1.5}, "qty must be an int > 0"),
        ({"qty": True}, "qty must be an int > 0"),
        ({"price": 0.0}, "price must be a finite number > 0"),
        ({"price": math.inf}, "price must be a finite number > 0"),
        ({"fee": -0.5}, "fee must be a finite number >= 0"),
        ({"fee": math.nan}, "fee must be a finite number >= 0"),
        ({"sid": ""}, "sid must be a non-empty string"),
        ({"sid": 7}, "sid must be a non-empty string"),
    ],
)
def test_apply_fill_rejects_invalid_arguments(fill: dict[str, Any], reason: str) -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=1, price=10.0)
    before = observables(p)
    args: dict[str, Any] = {"sid": "GOOG", "side": "sell", "qty": 1, "price": 10.0, **fill}
    with pytest.raises(PortfolioError) as info:
        p.apply_fill(**args)
    assert reason in info.value.reason
    assert observables(p) == before


def test_symbols_are_upper_cased() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="goog", side="buy", qty=2, price=10.0)
    p.mark(quote(sid="goog", price=12.0))
    assert set(p.positions) == {"GOOG"}
    assert p.summary()["positions"]["GOOG"]["last_price"] == 12.0


def test_positions_are_a_read_only_copy_of_frozen_positions() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=2, price=10.0)
    view = p.positions
    with pytest.raises(TypeError):
        view["MSFT"] = Position(qty=1, avg_cost=1.0)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        view["GOOG"].qty = 100  # type: ignore[misc]
    p.apply_fill(sid="GOOG", side="sell", qty=2, price=10.0)
    assert view["GOOG"].qty == 2  # taken before the sale
    assert p.positions == {}


# --- fills of open orders ------------------------------------------------------------------


def test_a_fill_by_order_id_books_at_the_fill_price_and_frees_the_hold() -> None:
    p = Portfolio(cash=10_000)
    p.reserve("b1", sid="GOOG", side="buy", qty=10, price=100.0)
    p.apply_fill(sid="goog", side="buy", qty=10, price=100.4, fee=1.0, order_id="b1")
    assert p.open_orders == {}
    assert p.cash == pytest.approx(10_000 - 1_004.0 - 1.0)
    assert p.available_cash == p.cash
    assert p.positions == {"GOOG": Position(qty=10, avg_cost=100.4)}
    assert p.realised_pnl == -1.0
    assert p.summary()["positions"]["GOOG"]["last_price"] == 100.4


def test_a_sell_fill_by_order_id_frees_the_shares_and_realises() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=10.0)
    p.reserve("s1", sid="GOOG", side="sell", qty=4, price=10.0)
    p.apply_fill(sid="GOOG", side="sell", qty=4, price=12.0, fee=0.5, order_id="s1")
    assert p.open_orders == {}
    assert p.positions["GOOG"] == Position(qty=6, avg_cost=10.0)
    assert p.available_shares("GOOG") == 6
    assert p.realised_pnl == pytest.approx(4 * 2.0 - 0.5)
    assert p.cash == pytest.approx(900.0 + 48.0 - 0.5)


def test_a_fill_may_cost_more_than_its_hold_when_the_cash_covers_it() -> None:
    p = Portfolio(cash=1_000)
    p.reserve("b1", sid="GOOG", side="buy", qty=5, price=100.0)  # holds 502.5
    p.reserve("b2", sid="GOOG", side="buy", qty=4, price=100.0)  # holds 402.0
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=110.0, order_id="b1")  # slipped: 550
    assert p.cash == 450.0
    assert p.positions["GOOG"] == Position(qty=5, avg_cost=110.0)
    assert p.available_cash == pytest.approx(450.0 - 402.0)


def test_a_refused_fill_of_an_open_order_leaves_it_open() -> None:
    p = Portfolio(cash=1_000)
    p.reserve("b1", sid="GOOG", side="buy", qty=9, price=100.0)  # holds 904.5
    before = observables(p)
    with pytest.raises(PortfolioError, match=r"cash is only 1000\.0"):
        p.apply_fill(sid="GOOG", side="buy", qty=9, price=120.0, order_id="b1")
    assert observables(p) == before
    assert "b1" in p.open_orders


def test_a_second_fill_of_the_same_order_is_refused_and_changes_nothing() -> None:
    p = Portfolio(cash=10_000)
    p.reserve("b1", sid="GOOG", side="buy", qty=10, price=100.0)
    fill: dict[str, Any] = {
        "sid": "GOOG",
        "side": "buy",
        "qty": 10,
        "price": 100.0,
        "fee": 1.0,
        "order_id": "b1",
    }
    p.apply_fill(**fill)
    before, changes = observables(p), p.changes
    with pytest.raises(PortfolioError, match="fill for order 'b1', which is not open here"):
        p.apply_fill(**fill)
    assert observables(p) == before
    assert p.changes == changes
    assert p.positions["GOOG"].qty == 10


@pytest.mark.parametrize("order_id", ["released", "never-placed"])
def test_a_fill_for_an_order_that_is_not_open_is_refused(order_id: str) -> None:
    p = Portfolio(cash=1_000)
    p.reserve("released", sid="GOOG", side="buy", qty=1, price=10.0)
    p.release("released")
    before = observables(p)
    with pytest.raises(PortfolioError, match=f"fill for order '{order_id}', which is not open"):
        p.apply_fill(sid="GOOG", side="buy", qty=1, price=10.0, order_id=order_id)
    assert observables(p) == before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sid": "MSFT"}, "fill buy 10 MSFT does not match open order 'b1' (buy 10 GOOG)"),
        ({"side": "sell"}, "fill sell 10 GOOG does not match open order 'b1' (buy 10 GOOG)"),
        ({"qty": 9}, "fill buy 9 GOOG does not match open order 'b1'"),  # no partial fills
        ({"qty": 11}, "fill buy 11 GOOG does not match open order 'b1'"),
    ],
)
def test_a_fill_not_matching_its_open_order_is_refused_and_changes_nothing(
    change: dict[str, Any], reason: str
) -> None:
    p = Portfolio(cash=10_000)
    p.apply_fill(sid="GOOG", side="buy", qty=20, price=100.0)  # a sell would be possible
    p.reserve("b1", sid="GOOG", side="buy", qty=10, price=100.0)
    before, changes = observables(p), p.changes
    fill: dict[str, Any] = {"sid": "GOOG", "side": "buy", "qty": 10, "price": 100.0, **change}
    with pytest.raises(PortfolioError) as info:
        p.apply_fill(**fill, order_id="b1")
    assert reason in info.value.reason
    assert observables(p) == before
    assert p.changes == changes
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=100.0, order_id="b1")  # the real one
    assert p.open_orders == {}


def test_a_fill_without_order_id_is_an_external_trade_and_leaves_open_orders_alone() -> None:
    p = Portfolio(cash=1_000, buffer_bps=0)
    order = p.reserve("b1", sid="GOOG", side="buy", qty=10, price=10.0)
    p.apply_fill(sid="MSFT", side="buy", qty=2, price=10.0)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=10.0)  # same figures, but not b1
    assert p.open_orders == {"b1": order}
    assert p.positions["GOOG"].qty == 10
    assert p.available_cash == 1_000 - 20.0 - 100.0 - 100.0


def test_an_external_sell_cannot_take_the_shares_an_open_sell_holds() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=10.0)
    p.reserve("s1", sid="GOOG", side="sell", qty=5, price=10.0)
    with pytest.raises(PortfolioError, match="needs shares open sells hold: only 0"):
        p.apply_fill(sid="GOOG", side="sell", qty=5, price=10.0)
    assert p.available_shares("GOOG") == 0
    p.apply_fill(sid="GOOG", side="sell", qty=5, price=10.0, order_id="s1")
    assert p.positions == {}


def test_an_external_buy_cannot_spend_the_cash_open_buys_hold() -> None:
    p = Portfolio(cash=1_000, buffer_bps=0)
    p.reserve("b1", sid="GOOG", side="buy", qty=90, price=10.0)
    with pytest.raises(PortfolioError, match=r"only 100\.00 of cash is not held"):
        p.apply_fill(sid="AAPL", side="buy", qty=11, price=10.0)
    p.apply_fill(sid="AAPL", side="buy", qty=10, price=10.0)
    assert p.available_cash == 0


@pytest.mark.parametrize("order_id", ["", 7, None])
def test_an_order_id_must_be_a_non_empty_string(order_id: object) -> None:
    p = Portfolio(cash=1_000)
    with pytest.raises(PortfolioError, match="order_id must be a non-empty string"):
        p.reserve(order_id, sid="GOOG", side="buy", qty=1, price=10.0)  # type: ignore[arg-type]
    assert p.open_orders == {}


def test_a_snapshot_selling_more_than_it_holds_is_refused() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=10.0)
    p.reserve("s1", sid="GOOG", side="sell", qty=5, price=10.0)
    snapshot = p.snapshot()
    snapshot["open_orders"]["s1"]["qty"] = 6
    with pytest.raises(PortfolioError, match="sell 6 GOOG, but the position is only 5"):
        Portfolio.restore(snapshot)
    snapshot["open_orders"]["s1"].update(qty=5, reserved_cash=1.0)
    with pytest.raises(PortfolioError, match="a sell, which holds no cash"):
        Portfolio.restore(snapshot)


# --- marking, equity, summary ------------------------------------------------------------


def test_mark_moves_equity_and_unrealised_pnl() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=100.0)
    p.mark(quote(sid="GOOG", price=110.0))
    assert p.equity == 500.0 + 5 * 110.0
    assert p.unrealised_pnl == 50.0
    p.mark(quote(sid="MSFT", price=1.0))  # no position: equity unchanged
    assert p.equity == 1_050.0


def test_held_shares_is_the_positions_qty_open_sells_included() -> None:
    p = Portfolio(cash=1_000)
    assert p.held_shares("GOOG") == 0
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=100.0)
    p.reserve("s1", sid="GOOG", side="sell", qty=2, price=100.0)
    assert (p.held_shares("GOOG"), p.available_shares("GOOG")) == (5, 3)
    assert p.held_shares("GOOG") == p.positions["GOOG"].qty
    p.apply_fill(sid="GOOG", side="sell", qty=2, price=100.0, order_id="s1")
    p.apply_fill(sid="GOOG", side="sell", qty=3, price=100.0)
    assert p.held_shares("GOOG") == 0 and "GOOG" not in p.positions


def test_mark_checked_of_a_checked_quote_leaves_the_portfolio_as_mark_does() -> None:
    marked, fast = Portfolio(cash=1_000), Portfolio(cash=1_000)
    for p in (marked, fast):
        p.apply_fill(sid="GOOG", side="buy", qty=5, price=100.0)
    for price in (110.0, 93.25, 100.5):
        marked.mark(quote(sid="GOOG", price=price))
        fast.mark_checked("GOOG", price)
        assert fast.snapshot() == marked.snapshot()
        assert (fast.equity, fast.unrealised_pnl) == (marked.equity, marked.unrealised_pnl)


def test_open_orders_do_not_move_equity_or_pnl() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=100.0)
    before = (p.equity, p.realised_pnl, p.unrealised_pnl)
    p.reserve("b1", sid="GOOG", side="buy", qty=2, price=100.0)
    p.reserve("s1", sid="GOOG", side="sell", qty=5, price=100.0)
    assert (p.equity, p.realised_pnl, p.unrealised_pnl) == before


def test_summary_is_json_safe_and_complete() -> None:
    p = Portfolio(cash=1_000, buffer_bps=0)
    p.apply_fill(sid="MSFT", side="buy", qty=2, price=50.0, fee=1.0)
    p.apply_fill(sid="GOOG", side="buy", qty=3, price=100.0)
    p.mark(quote(sid="GOOG", price=90.0))
    p.reserve("b1", sid="GOOG", side="buy", qty=1, price=90.0)
    p.reserve("s1", sid="MSFT", side="sell", qty=1, price=50.0)
    summary = p.summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary == {
        "cash": 1_000 - 101.0 - 300.0,
        "available_cash": 599.0 - 90.0,
        "open_orders": 2,
        "equity": 599.0 + 100.0 + 270.0,
        "realised_pnl": -1.0,
        "unrealised_pnl": -30.0,
        "positions": {
            "GOOG": {"qty": 3, "avg_cost": 100.0, "last_price": 90.0},
            "MSFT": {"qty": 2, "avg_cost": 50.0, "last_price": 50.0},
        },
    }


# --- snapshot / restore ------------------------------------------------------------------


def busy_portfolio() -> Portfolio:
    p = Portfolio(cash=25_000.5)
    p.apply_fill(sid="GOOG", side="buy", qty=10, price=101.3, fee=0.7)
    p.apply_fill(sid="GOOG", side="buy", qty=7, price=99.1)
    p.apply_fill(sid="MSFT", side="buy", qty=4, price=410.25, fee=1.0)
    p.apply_fill(sid="GOOG", side="sell", qty=5, price=104.9, fee=0.3)
    p.apply_fill(sid="AAPL", side="buy", qty=1, price=190.0)
    p.apply_fill(sid="AAPL", side="sell", qty=1, price=195.0)
    p.mark(quote(sid="MSFT", price=399.0))
    p.mark(quote(sid="TSLA", price=250.0))
    p.reserve("buy-tsla", sid="TSLA", side="buy", qty=2, price=250.0)
    p.reserve("sell-goog", sid="GOOG", side="sell", qty=5, price=104.9)
    return p


def test_snapshot_is_json_safe_and_versioned() -> None:
    snap = busy_portfolio().snapshot()
    assert snap["version"] == 2
    assert json.loads(json.dumps(snap, allow_nan=False)) == snap
    assert snap["last_prices"]["TSLA"] == 250.0  # marks without a position are kept
    assert snap["open_orders"] == {
        "buy-tsla": {
            "sid": "TSLA",
            "side": "buy",
            "qty": 2,
            "reserved_cash": pytest.approx(2 * 250.0 * 1.005),
        },
        "sell-goog": {"sid": "GOOG", "side": "sell", "qty": 5, "reserved_cash": 0.0},
    }


def test_restore_of_a_json_round_tripped_snapshot_equals_the_original() -> None:
    original = busy_portfolio()
    restored = Portfolio.restore(json.loads(json.dumps(original.snapshot())))
    assert observables(restored) == observables(original)
    assert restored.available_shares("GOOG") == original.available_shares("GOOG") == 7
    # And it keeps behaving the same: the open orders fill, or are refused, alike.
    for p in (original, restored):
        p.mark(quote(sid="TSLA", price=240.0))
        p.apply_fill(sid="TSLA", side="buy", qty=2, price=240.0, fee=0.5, order_id="buy-tsla")
        with pytest.raises(PortfolioError, match="not open"):
            p.apply_fill(sid="TSLA", side="buy", qty=2, price=240.0, order_id="buy-tsla")
        with pytest.raises(PortfolioError, match="already open"):
            p.reserve("sell-goog", sid="GOOG", side="sell", qty=1, price=98.0)
        p.apply_fill(sid="GOOG", side="sell", qty=5, price=98.0, order_id="sell-goog")
        p.apply_fill(sid="GOOG", side="sell", qty=7, price=98.0)
    assert observables(restored) == observables(original)
    assert restored.open_orders == {}
    assert restored.optimize(quote(price=10.0)) == original.optimize(quote(price=10.0))


def test_restore_uses_the_sizing_and_buffer_it_is_given() -> None:
    snap = Portfolio(cash=1_000).snapshot()
    assert Portfolio.restore(snap).optimize(quote(price=10.0)) == 10
    assert Portfolio.restore(snap).buffer_bps == DEFAULT_BUFFER_BPS
    assert Portfolio.restore(snap, sizing=Greedy()).optimize(quote(price=10.0)) == 99
    no_buffer = Portfolio.restore(snap, sizing=Greedy(), buffer_bps=0)
    assert no_buffer.buffer_bps == 0.0
    assert no_buffer.optimize(quote(price=10.0)) == 100


def test_restore_keeps_the_holds_open_orders_had_whatever_the_new_buffer() -> None:
    snap = busy_portfolio().snapshot()
    restored = Portfolio.restore(snap, buffer_bps=0)
    assert restored.open_orders["buy-tsla"].reserved_cash == pytest.approx(500.0 * 1.005)


def version_1_snapshot() -> dict[str, Any]:
    return {
        "version": 1,
        "cash": 900.0,
        "realised_pnl": -1.0,
        "positions": {"GOOG": {"qty": 10, "avg_cost": 10.0}},
        "last_prices": {"GOOG": 10.5},
    }


def test_a_version_1_snapshot_restores_with_no_open_orders() -> None:
    p = Portfolio.restore(json.loads(json.dumps(version_1_snapshot())))
    assert p.open_orders == {}
    assert p.cash == p.available_cash == 900.0
    assert p.positions == {"GOOG": Position(qty=10, avg_cost=10.0)}
    assert p.available_shares("GOOG") == 10
    assert p.equity == 900.0 + 105.0
    assert p.realised_pnl == -1.0
    assert p.snapshot() == {**version_1_snapshot(), "version": 2, "open_orders": {}}


def test_a_version_1_snapshot_with_open_orders_is_refused() -> None:
    with pytest.raises(PortfolioError, match=r"unknown \['open_orders'\]"):
        Portfolio.restore({**version_1_snapshot(), "open_orders": {}})


def corrupt(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    snap = busy_portfolio().snapshot()
    target = snap
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return snap


VALID_OPEN_ORDER = {"sid": "GOOG", "side": "sell", "qty": 1, "reserved_cash": 0.0}


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("cash",), KeyError, "missing ['cash']"),
        (("extra",), 1, "unknown ['extra']"),
        (("version",), 3, "version must be 1 or 2, got 3"),
        (("version",), True, "version must be 1 or 2, got True"),
        (("version",), "2", "version must be 1 or 2, got '2'"),
        (("cash",), -1.0, "cash must be a finite number >= 0, got -1.0"),
        (("cash",), "10", "cash must be a finite number >= 0"),
        (("realised_pnl",), math.nan, "realised_pnl must be a finite number"),
        (("positions",), [], "positions must be a mapping"),
        (("positions", "GOOG", "qty"), 0, "positions['GOOG'] needs qty an int > 0"),
        (("positions", "GOOG", "qty"), 1.5, "positions['GOOG'] needs qty an int > 0"),
        (("positions", "GOOG", "avg_cost"), 0.0, "avg_cost a finite number > 0"),
        (("positions", "GOOG", "note"), "x", "positions['GOOG'] must be"),
        (("positions", "goog"), {"qty": 1, "avg_cost": 1.0}, "upper-case symbols, got 'goog'"),
        (("last_prices",), None, "last_prices must be a mapping"),
        (("last_prices", "GOOG"), 0, "last_prices['GOOG'] must be a finite number > 0"),
        (("last_prices", "MSFT"), KeyError, "positions ['MSFT'] have no entry in last_prices"),
        (("open_orders",), KeyError, "missing ['open_orders']"),
        (("open_orders",), [], "open_orders must be a mapping, got list"),
        (("open_orders", ""), VALID_OPEN_ORDER, "open_orders keys must be order ids, got ''"),
        (("open_orders", "sell-goog"), "GOOG", "open_orders['sell-goog'] must have exactly"),
        (("open_orders", "sell-goog", "note"), "x", "open_orders['sell-goog'] must have exactly"),
        (("open_orders", "sell-goog", "qty"), KeyError, "open_orders['sell-goog'] must have"),
        (("open_orders", "sell-goog", "sid"), "goog", "upper-case symbols, got 'goog'"),
        (("open_orders", "sell-goog", "sid"), "", "upper-case symbols, got ''"),
        (("open_orders", "sell-goog", "side"), "short", "needs side buy or sell"),
        (("open_orders", "sell-goog", "qty"), 0, "open_orders['sell-goog'] needs side buy"),
        (("open_orders", "sell-goog", "qty"), 2.5, "qty an int > 0"),
        (("open_orders", "sell-goog", "qty"), True, "qty an int > 0"),
        (("open_orders", "buy-tsla", "reserved_cash"), -1.0, "reserved_cash a finite number"),
        (("open_orders", "buy-tsla", "reserved_cash"), math.inf, "reserved_cash a finite"),
        (("open_orders", "buy-tsla", "reserved_cash"), "500", "reserved_cash a finite"),
    ],
)
def test_restore_rejects_malformed_snapshots(
    path: tuple[str, ...], value: Any, reason: str
) -> None:
    with pytest.raises(PortfolioError) as info:
        Portfolio.restore(corrupt(path, value))
    assert reason in info.value.reason


def test_restore_rejects_a_snapshot_that_is_not_a_mapping() -> None:
    with pytest.raises(PortfolioError, match="snapshot must be a mapping, got list"):
        Portfolio.restore([])  # type: ignore[arg-type]


# --- invariants over a random session ----------------------------------------------------


def test_cash_never_negative_and_equity_matches_marks_at_every_step() -> None:
    rng = random.Random(11)
    start = 50_000.0
    p = Portfolio(cash=start, sizing=FractionOfCash(fraction=0.6))
    last: dict[str, float] = {}
    prices = {"GOOG": 100.0, "MSFT": 40.0, "AAPL": 7.5}
    refused = filled = 0
    for step in range(3_000):
        sid = rng.choice(sorted(prices))
        prices[sid] = round(max(0.01, prices[sid] * rng.uniform(0.95, 1.05)), 2)
        q = quote(sid=sid, price=prices[sid])
        p.mark(q)
        last[sid] = prices[sid]
        open_ids = sorted(p.open_orders)
        action = rng.random()
        try:
            if action < 0.3:
                qty = p.optimize(q)
                if qty:
                    p.reserve(f"o{step}", sid=sid, side="buy", qty=qty, price=prices[sid])
            elif action < 0.4:  # deliberately overcommit: must be refused
                p.reserve(f"o{step}", sid=sid, side="buy", qty=10**7, price=prices[sid])
            elif action < 0.6:
                held = p.positions.get(sid)
                qty = rng.randint(1, (held.qty if held else 0) + 2)
                p.reserve(f"o{step}", sid=sid, side="sell", qty=qty, price=prices[sid])
            elif action < 0.9 and open_ids:  # executed, with slippage beyond the buffer
                order_id = rng.choice(open_ids)
                o = p.open_orders[order_id]
                price = round(last[o.sid] * rng.uniform(0.99, 1.01), 2)
                p.apply_fill(
                    sid=o.sid, side=o.side, qty=o.qty, price=price, fee=0.5, order_id=order_id
                )
                last[o.sid] = price  # a fill marks its symbol
                filled += 1
            elif open_ids:  # rejected by execution
                p.release(rng.choice(open_ids))
        except PortfolioError:
            refused += 1
        assert_invariants(p, last, start)
    assert refused > 0  # the error paths were exercised
    assert filled > 100
    assert p.realised_pnl != 0
