"""Accounting properties of `Portfolio`, over random sequences of operations (hypothesis).

The operations are the ones a trading session makes: marks, orders placed
(`reserve`, also sized by `optimize`), filled by order id (sometimes with a
fill that does not match the order, or for an order that is not open),
released (rejected), and fills of trades made outside the portfolio's orders.

A second, deliberately plain model (cash, shares, last price per symbol and
the open orders with their holds) follows the same operations, so the checks
do not rest on the portfolio's own arithmetic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from portfolio import Portfolio
from tickbus.errors import PortfolioError

SYMBOLS = ("AAA", "BBB", "CCC")
ORDER_IDS = ("o1", "o2", "o3", "o4")  # few ids, so duplicates and stale ids come up often
START_CASH = 1_000_000.0
BUFFER_BPS = 50.0
MARGIN = 1e-6  # near a limit, float rounding decides: the model does not predict there

symbols = st.sampled_from(SYMBOLS)
sides = st.sampled_from(("buy", "sell"))
order_ids = st.sampled_from(ORDER_IDS)
# Which order a fill or a release names: an open one while `which` < their number,
# else ORDER_IDS[which % 4], which may be open or not (filled, released, never placed).
which = st.integers(min_value=0, max_value=5)
quantities = st.integers(min_value=1, max_value=100)
prices = st.floats(min_value=0.01, max_value=2_000, allow_nan=False, allow_infinity=False)
fees = st.floats(min_value=0.0, max_value=50, allow_nan=False, allow_infinity=False)

marks = st.fixed_dictionaries({"op": st.just("mark"), "sid": symbols, "price": prices})
outside_fills = st.fixed_dictionaries(
    {
        "op": st.just("outside_fill"),
        "sid": symbols,
        "side": sides,
        "qty": quantities,
        "price": prices,
        "fee": fees,
    }
)
reserves = st.fixed_dictionaries(
    {
        "op": st.just("reserve"),
        "id": order_ids,
        "sid": symbols,
        "side": sides,
        "qty": quantities,
        "price": prices,
    }
)
sized_buys = st.fixed_dictionaries(
    {"op": st.just("sized_buy"), "id": order_ids, "sid": symbols, "price": prices}
)
sized_sells = st.fixed_dictionaries(
    {
        "op": st.just("sized_sell"),
        "id": order_ids,
        "sid": symbols,
        "price": prices,
        "part": st.floats(min_value=0, max_value=1),
    }
)
releases = st.fixed_dictionaries({"op": st.just("release"), "which": which})
order_fills = st.fixed_dictionaries(
    {
        "op": st.just("order_fill"),
        "which": which,
        # The fill price, relative to the order's: slippage beyond the buffer included.
        "slip": st.floats(min_value=0.9, max_value=1.1),
        "fee": fees,
        # A fill that differs from its order in one field must be refused.
        "tamper": st.sampled_from(("", "", "", "sid", "side", "qty")),
    }
)
operations = st.lists(
    st.one_of(marks, outside_fills, reserves, sized_buys, sized_sells, releases, order_fills),
    min_size=10,  # a session long enough to place, fill and release orders
    max_size=80,
)
placing_only = st.lists(
    st.one_of(marks, reserves, sized_buys, sized_sells, releases), min_size=10, max_size=80
)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@dataclass(frozen=True)
class ModelOrder:
    sid: str
    side: str
    qty: int
    price: float
    hold: float


@dataclass
class Model:
    """What the portfolio should hold, computed the simplest way."""

    cash: float = START_CASH
    shares: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    orders: dict[str, ModelOrder] = field(default_factory=dict)

    def book(self, sid: str, side: str, qty: int, price: float, fee: float) -> None:
        sign = 1 if side == "buy" else -1
        self.cash -= sign * qty * price + fee
        self.shares[sid] = self.shares.get(sid, 0) + sign * qty
        self.last[sid] = price

    def available_cash(self) -> float:
        return self.cash - sum(o.hold for o in self.orders.values())

    def selling(self, sid: str) -> int:
        return sum(o.qty for o in self.orders.values() if o.sid == sid and o.side == "sell")

    def available_shares(self, sid: str) -> int:
        return self.shares.get(sid, 0) - self.selling(sid)

    def marked(self) -> float:
        return sum(qty * self.last[sid] for sid, qty in self.shares.items())


def named(model: Model, op: dict[str, Any]) -> str:
    """The order id a fill or release op names (see `which`)."""
    open_ids = sorted(model.orders)
    n: int = op["which"]
    return open_ids[n] if n < len(open_ids) else ORDER_IDS[n % len(ORDER_IDS)]


class Refused(Exception):
    """The portfolio refused the operation (and was checked to be unchanged)."""


def attempt(portfolio: Portfolio, call: Any, **kwargs: Any) -> Any:
    """`call(**kwargs)`; on PortfolioError check nothing changed and raise `Refused`."""
    before, changes = portfolio.snapshot(), portfolio.changes
    try:
        return call(**kwargs)
    except PortfolioError:
        assert portfolio.snapshot() == before, "a refused operation changed the portfolio"
        assert portfolio.changes == changes, "a refused operation counted as a change"
        event(f"{call.__name__} refused")
        raise Refused from None


def step(portfolio: Portfolio, model: Model, op: dict[str, Any]) -> None:
    """Apply `op` to both; check the portfolio accepts or refuses as the model says."""
    kind = op["op"]
    if kind == "mark":
        portfolio.mark({"sid": op["sid"], "price": op["price"]})
        model.last[op["sid"]] = op["price"]
    elif kind == "outside_fill":
        outside_fill(portfolio, model, op)
    elif kind == "reserve":
        reserve(portfolio, model, op["id"], op["sid"], op["side"], op["qty"], op["price"])
    elif kind == "sized_buy":
        qty = portfolio.optimize({"sid": op["sid"], "price": op["price"]})
        if qty:
            accepted = reserve(portfolio, model, op["id"], op["sid"], "buy", qty, op["price"])
            assert accepted or op["id"] in model.orders, "reserve refused what optimize sized"
    elif kind == "sized_sell":  # part of the shares not already being sold
        qty = math.ceil(op["part"] * portfolio.available_shares(op["sid"]))
        if qty:
            accepted = reserve(portfolio, model, op["id"], op["sid"], "sell", qty, op["price"])
            assert accepted or op["id"] in model.orders, "reserve refused available shares"
    elif kind == "release":
        order_id = named(model, op)
        try:
            attempt(portfolio, portfolio.release, order_id=order_id)
        except Refused:
            assert order_id not in model.orders, "release of an open order refused"
        else:
            assert model.orders.pop(order_id, None) is not None, "released an order not open"
            event("open order released")
    else:
        order_fill(portfolio, model, op)


def outside_fill(portfolio: Portfolio, model: Model, op: dict[str, Any]) -> None:
    sid, side, qty = op["sid"], op["side"], op["qty"]
    args = {k: op[k] for k in ("sid", "side", "qty", "price", "fee")}
    try:
        attempt(portfolio, portfolio.apply_fill, **args)
    except Refused:
        return
    # An outside trade may use only what open orders do not hold.
    cost = qty * op["price"] + op["fee"]
    assert side == "buy" or qty <= model.available_shares(sid)
    assert side == "sell" or not model.orders or cost <= model.available_cash() + MARGIN
    model.book(sid, side, qty, op["price"], op["fee"])


def reserve(
    portfolio: Portfolio, model: Model, order_id: str, sid: str, side: str, qty: int, price: float
) -> bool:
    """Place an order in both; True when the portfolio accepted it."""
    hold = qty * price * (1 + BUFFER_BPS / 10_000) if side == "buy" else 0.0
    if order_id in model.orders:
        must: bool | None = False
    elif side == "sell":
        must = qty <= model.available_shares(sid)
    elif hold > model.available_cash() + MARGIN:
        must = False
    elif hold < model.available_cash() - MARGIN:
        must = True
    else:
        must = None
    try:
        attempt(
            portfolio,
            portfolio.reserve,
            order_id=order_id,
            sid=sid,
            side=side,
            qty=qty,
            price=price,
        )
    except Refused:
        assert must is not True, f"reserve {side} {qty} {sid} as {order_id} refused"
        return False
    assert must is not False, f"reserve {side} {qty} {sid} as {order_id} accepted"
    model.orders[order_id] = ModelOrder(sid=sid, side=side, qty=qty, price=price, hold=hold)
    event(f"{side} placed")
    return True


def order_fill(portfolio: Portfolio, model: Model, op: dict[str, Any]) -> None:
    order_id = named(model, op)
    order = model.orders.get(order_id)
    fee = op["fee"]
    if order is None:  # filled already, released, or never placed
        sid, side, qty, price = SYMBOLS[0], "buy", 1, 1.0
    else:
        sid, side, qty, price = order.sid, order.side, order.qty, order.price * op["slip"]
        if op["tamper"] == "sid":
            sid = SYMBOLS[(SYMBOLS.index(sid) + 1) % len(SYMBOLS)]
        elif op["tamper"] == "side":
            side = "sell" if side == "buy" else "buy"
        elif op["tamper"] == "qty":
            qty += 1
    try:
        attempt(
            portfolio,
            portfolio.apply_fill,
            sid=sid,
            side=side,
            qty=qty,
            price=price,
            fee=fee,
            order_id=order_id,
        )
    except Refused:
        if order is not None and op["tamper"]:
            event("mismatched fill refused")
        if order is not None and not op["tamper"]:  # only the cash may stop a true fill
            change = -qty * price - fee if side == "buy" else qty * price - fee
            assert model.cash + change < MARGIN, f"fill of open order {order_id} refused"
        return
    assert order is not None, f"fill accepted for {order_id}, which is not open"
    assert not op["tamper"], f"fill accepted with a different {op['tamper']}"
    del model.orders[order_id]
    model.book(sid, side, qty, price, fee)
    event(f"open {side} filled")


def check(portfolio: Portfolio, model: Model) -> None:
    """The invariants that hold after every operation."""
    assert portfolio.cash >= 0, "cash went negative"
    assert close(portfolio.cash, model.cash)
    assert {s: p.qty for s, p in portfolio.positions.items()} == {
        s: q for s, q in model.shares.items() if q
    }
    assert close(portfolio.equity, model.cash + model.marked())
    assert close(portfolio.equity, START_CASH + portfolio.realised_pnl + portfolio.unrealised_pnl)
    orders = portfolio.open_orders
    assert {i: (o.sid, o.side, o.qty) for i, o in orders.items()} == {
        i: (o.sid, o.side, o.qty) for i, o in model.orders.items()
    }
    assert all(close(o.reserved_cash, model.orders[i].hold) for i, o in orders.items())
    held_back = math.fsum(o.reserved_cash for o in orders.values())
    assert portfolio.available_cash == portfolio.cash - held_back
    assert close(portfolio.available_cash, model.available_cash())
    for sid in SYMBOLS:
        selling = sum(o.qty for o in orders.values() if o.sid == sid and o.side == "sell")
        held = portfolio.positions[sid].qty if sid in portfolio.positions else 0
        assert selling <= held, f"open sells of {sid} hold {selling} shares, {held} held"
        assert portfolio.available_shares(sid) == held - selling


@settings(max_examples=300, deadline=None)
@given(operations)
def test_every_invariant_holds_at_every_step(ops: list[dict[str, Any]]) -> None:
    portfolio, model = Portfolio(cash=START_CASH, buffer_bps=BUFFER_BPS), Model()
    for op in ops:
        step(portfolio, model, op)
        check(portfolio, model)


@settings(max_examples=200, deadline=None)
@given(placing_only)
def test_open_orders_alone_never_commit_more_cash_or_shares_than_there_are(
    ops: list[dict[str, Any]],
) -> None:
    portfolio, model = Portfolio(cash=START_CASH, buffer_bps=BUFFER_BPS), Model()
    portfolio.apply_fill(sid="AAA", side="buy", qty=300, price=10.0)
    model.book("AAA", "buy", 300, 10.0, 0.0)
    for op in ops:
        step(portfolio, model, op)
        check(portfolio, model)
        held_back = math.fsum(o.reserved_cash for o in portfolio.open_orders.values())
        assert held_back <= portfolio.cash
        assert portfolio.available_cash >= 0
        assert all(portfolio.available_shares(sid) >= 0 for sid in SYMBOLS)


@settings(max_examples=300, deadline=None)
@given(
    sid=symbols,
    qty=st.integers(min_value=1, max_value=1_000),
    price=st.floats(min_value=0.01, max_value=90, allow_nan=False),
    buy_fee=fees,
    sell_fee=fees,
)
def test_a_round_trip_at_one_price_loses_exactly_the_fees(
    sid: str, qty: int, price: float, buy_fee: float, sell_fee: float
) -> None:
    portfolio = Portfolio(cash=START_CASH)
    portfolio.reserve("buy", sid=sid, side="buy", qty=qty, price=price)
    portfolio.apply_fill(sid=sid, side="buy", qty=qty, price=price, fee=buy_fee, order_id="buy")
    portfolio.reserve("sell", sid=sid, side="sell", qty=qty, price=price)
    portfolio.apply_fill(sid=sid, side="sell", qty=qty, price=price, fee=sell_fee, order_id="sell")
    assert portfolio.positions == {}
    assert portfolio.open_orders == {}
    assert close(portfolio.cash, START_CASH - buy_fee - sell_fee)
    assert portfolio.available_cash == portfolio.cash
    assert close(portfolio.realised_pnl, -(buy_fee + sell_fee))
    assert close(portfolio.equity, START_CASH - buy_fee - sell_fee)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_a_snapshot_through_json_restores_the_same_book(ops: list[dict[str, Any]]) -> None:
    portfolio, model = Portfolio(cash=START_CASH, buffer_bps=BUFFER_BPS), Model()
    for op in ops:
        step(portfolio, model, op)
    restored = Portfolio.restore(json.loads(json.dumps(portfolio.snapshot())))
    assert restored.snapshot() == portfolio.snapshot()
    assert restored.open_orders == portfolio.open_orders
    assert restored.available_cash == portfolio.available_cash
    assert restored.equity == portfolio.equity
    # And the restored book goes on the same way: every open order fills or is released.
    for order_id, order in sorted(portfolio.open_orders.items()):
        for p in (portfolio, restored):
            if order.side == "buy":
                p.release(order_id)
            else:
                p.apply_fill(
                    sid=order.sid, side=order.side, qty=order.qty, price=1.0, order_id=order_id
                )
    assert restored.snapshot() == portfolio.snapshot()
