"""Accounting properties of `Portfolio`, over random sequences of fills and marks (hypothesis).

A second, deliberately plain model (cash, shares and last price per symbol)
follows the same operations, so the checks do not rest on the portfolio's own
arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio import Portfolio
from tickbus.errors import PortfolioError

SYMBOLS = ("AAA", "BBB", "CCC")
START_CASH = 100_000.0

prices = st.floats(min_value=0.01, max_value=5_000, allow_nan=False, allow_infinity=False)
fees = st.floats(min_value=0.0, max_value=50, allow_nan=False, allow_infinity=False)
fills = st.fixed_dictionaries(
    {
        "op": st.just("fill"),
        "sid": st.sampled_from(SYMBOLS),
        "side": st.sampled_from(("buy", "sell")),
        "qty": st.integers(min_value=1, max_value=500),
        "price": prices,
        "fee": fees,
    }
)
marks = st.fixed_dictionaries(
    {"op": st.just("mark"), "sid": st.sampled_from(SYMBOLS), "price": prices}
)
operations = st.lists(st.one_of(fills, marks), max_size=60)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@dataclass
class Model:
    """What the portfolio should hold, computed the simplest way."""

    cash: float = START_CASH
    shares: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    fees_paid: float = 0.0

    def apply(self, op: dict[str, Any]) -> None:
        sid, price = op["sid"], op["price"]
        if op["op"] == "fill":
            sign = 1 if op["side"] == "buy" else -1
            self.cash -= sign * op["qty"] * price + op["fee"]
            self.shares[sid] = self.shares.get(sid, 0) + sign * op["qty"]
            self.fees_paid += op["fee"]
        self.last[sid] = price

    def marked(self) -> float:
        return sum(qty * self.last[sid] for sid, qty in self.shares.items())


def apply(portfolio: Portfolio, op: dict[str, Any]) -> bool:
    """Apply `op`; False when the portfolio refused it (and must then be unchanged)."""
    if op["op"] == "mark":
        portfolio.mark({"sid": op["sid"], "price": op["price"]})
        return True
    before = portfolio.snapshot()
    try:
        portfolio.apply_fill(**{k: v for k, v in op.items() if k != "op"})
    except PortfolioError:
        assert portfolio.snapshot() == before, "a refused fill changed the portfolio"
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(operations)
def test_cash_plus_marked_positions_is_equity_at_every_step(ops: list[dict[str, Any]]) -> None:
    portfolio, model = Portfolio(cash=START_CASH), Model()
    for op in ops:
        if apply(portfolio, op):
            model.apply(op)
        assert portfolio.cash >= 0, "cash went negative"
        assert close(portfolio.cash, model.cash)
        assert {s: p.qty for s, p in portfolio.positions.items()} == {
            s: q for s, q in model.shares.items() if q
        }
        assert close(portfolio.equity, model.cash + model.marked())
        assert close(
            portfolio.equity, START_CASH + portfolio.realised_pnl + portfolio.unrealised_pnl
        )


@settings(max_examples=300, deadline=None)
@given(
    sid=st.sampled_from(SYMBOLS),
    qty=st.integers(min_value=1, max_value=1_000),
    price=st.floats(min_value=0.01, max_value=90, allow_nan=False),
    buy_fee=fees,
    sell_fee=fees,
)
def test_a_round_trip_at_one_price_loses_exactly_the_fees(
    sid: str, qty: int, price: float, buy_fee: float, sell_fee: float
) -> None:
    portfolio = Portfolio(cash=START_CASH)
    portfolio.apply_fill(sid=sid, side="buy", qty=qty, price=price, fee=buy_fee)
    portfolio.apply_fill(sid=sid, side="sell", qty=qty, price=price, fee=sell_fee)
    assert portfolio.positions == {}
    assert close(portfolio.cash, START_CASH - buy_fee - sell_fee)
    assert close(portfolio.realised_pnl, -(buy_fee + sell_fee))
    assert close(portfolio.equity, START_CASH - buy_fee - sell_fee)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_a_snapshot_restores_the_same_book(ops: list[dict[str, Any]]) -> None:
    portfolio = Portfolio(cash=START_CASH)
    for op in ops:
        apply(portfolio, op)
    restored = Portfolio.restore(portfolio.snapshot())
    assert restored.snapshot() == portfolio.snapshot()
    assert restored.equity == portfolio.equity
