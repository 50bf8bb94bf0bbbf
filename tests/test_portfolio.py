"""Portfolio: sizing, fills, average-cost PnL, marking, snapshot/restore, invariants."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pytest

from portfolio import FractionOfCash, Portfolio, Position, SizingPolicy
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
    p = Portfolio(cash=1_000, sizing=FractionOfCash(fraction=1))
    assert p.optimize(quote(price=10.0)) == 100
    assert p.optimize(quote(price=10.0, ask=20.0, bid=9.0)) == 50
    assert p.optimize(quote(price=10.0, ask=None)) == 100


def test_optimize_caps_a_greedy_policy_at_what_cash_affords() -> None:
    p = Portfolio(cash=1_000, sizing=Greedy())
    qty = p.optimize(quote(price=7.0))
    assert qty == 142  # floor(1000 / 7)
    p.apply_fill(sid="GOOG", side="buy", qty=qty, price=7.0)
    assert p.cash == pytest.approx(6.0)
    assert p.cash >= 0


def test_optimize_cap_agrees_with_apply_fill_where_division_rounds_up() -> None:
    # 58.1 / 4.15 rounds to 14.0, but 14 * 4.15 > 58.1 in floats: only 13 are payable.
    p = Portfolio(cash=58.1, sizing=Greedy())
    assert math.floor(58.1 / 4.15) == 14
    assert p.optimize(quote(price=4.15)) == 13
    with pytest.raises(PortfolioError):
        p.apply_fill(sid="X", side="buy", qty=14, price=4.15)
    p.apply_fill(sid="X", side="buy", qty=13, price=4.15)
    assert p.cash >= 0


def test_greedy_sizing_never_makes_cash_negative_on_random_prices() -> None:
    rng = random.Random(3)
    for _ in range(2_000):
        cash = round(rng.uniform(0, 1_000), 2)
        price = round(rng.uniform(0.01, 50), 2)
        p = Portfolio(cash=cash, sizing=Greedy())
        qty = p.optimize(quote(price=price))
        if qty:
            p.apply_fill(sid="X", side="buy", qty=qty, price=price)
        assert p.cash >= 0
        assert p.optimize(quote(price=price)) == 0  # nothing more is affordable


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


# --- marking, equity, summary ------------------------------------------------------------


def test_mark_moves_equity_and_unrealised_pnl() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="GOOG", side="buy", qty=5, price=100.0)
    p.mark(quote(sid="GOOG", price=110.0))
    assert p.equity == 500.0 + 5 * 110.0
    assert p.unrealised_pnl == 50.0
    p.mark(quote(sid="MSFT", price=1.0))  # no position: equity unchanged
    assert p.equity == 1_050.0


def test_summary_is_json_safe_and_complete() -> None:
    p = Portfolio(cash=1_000)
    p.apply_fill(sid="MSFT", side="buy", qty=2, price=50.0, fee=1.0)
    p.apply_fill(sid="GOOG", side="buy", qty=3, price=100.0)
    p.mark(quote(sid="GOOG", price=90.0))
    summary = p.summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary == {
        "cash": 1_000 - 101.0 - 300.0,
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
    return p


def test_snapshot_is_json_safe_and_versioned() -> None:
    snap = busy_portfolio().snapshot()
    assert snap["version"] == 1
    assert json.loads(json.dumps(snap, allow_nan=False)) == snap
    assert snap["last_prices"]["TSLA"] == 250.0  # marks without a position are kept


def test_restore_of_a_json_round_tripped_snapshot_equals_the_original() -> None:
    original = busy_portfolio()
    restored = Portfolio.restore(json.loads(json.dumps(original.snapshot())))
    assert observables(restored) == observables(original)
    # And it keeps behaving the same: same fills, same results.
    for p in (original, restored):
        p.mark(quote(sid="TSLA", price=240.0))
        p.apply_fill(sid="TSLA", side="buy", qty=3, price=240.0, fee=0.5)
        p.apply_fill(sid="GOOG", side="sell", qty=12, price=98.0)
    assert observables(restored) == observables(original)
    assert restored.optimize(quote(price=10.0)) == original.optimize(quote(price=10.0))


def test_restore_uses_the_sizing_it_is_given() -> None:
    snap = Portfolio(cash=1_000).snapshot()
    assert Portfolio.restore(snap).optimize(quote(price=10.0)) == 10
    assert Portfolio.restore(snap, sizing=Greedy()).optimize(quote(price=10.0)) == 100


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


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("cash",), KeyError, "missing ['cash']"),
        (("extra",), 1, "unknown ['extra']"),
        (("version",), 2, "version must be 1, got 2"),
        (("version",), True, "version must be 1, got True"),
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
    refused = 0
    for _ in range(3_000):
        sid = rng.choice(sorted(prices))
        prices[sid] = round(max(0.01, prices[sid] * rng.uniform(0.95, 1.05)), 2)
        q = quote(sid=sid, price=prices[sid])
        p.mark(q)
        last[sid] = prices[sid]
        action = rng.random()
        try:
            if action < 0.4:
                qty = p.optimize(q)
                if qty:
                    p.apply_fill(sid=sid, side="buy", qty=qty, price=prices[sid], fee=0.0)
            elif action < 0.5:  # deliberately overspend: must be refused
                p.apply_fill(sid=sid, side="buy", qty=10**7, price=prices[sid])
            elif action < 0.9:
                held = p.positions.get(sid)
                qty = rng.randint(1, (held.qty if held else 0) + 2)
                p.apply_fill(sid=sid, side="sell", qty=qty, price=prices[sid], fee=0.5)
        except PortfolioError:
            refused += 1
        assert_invariants(p, last, start)
    assert refused > 0  # the error paths were exercised
    assert p.realised_pnl != 0
