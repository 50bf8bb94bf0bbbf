"""The text `tickbus new algo NAME` writes: an algorithm module and its test.

Both are `string.Template`s with two placeholders: ``$name`` (the module
name, e.g. ``my_algo``) and ``$cls`` (the class name, e.g. ``MyAlgo``). The
generated code uses only the public API (``from algos import Algorithm,
Order``), follows the algorithm contract (the user writes `initialize` and
`event`; the framework prepares ``self.portfolio`` first, see
`Algorithm.start`) and keeps within 88 columns, so it is clean under ruff's
defaults as well as under this project's settings.
"""

from __future__ import annotations

from string import Template

ALGORITHM = Template('''\
"""$cls: buys a drop, sells when the price is back. Yours to change.

Made by `tickbus new algo $name`. Run its test, then serve it:

    python -m pytest test_$name.py
    tickbus algo serve $name:$cls --app-dir . --param drop_pct=1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from algos import Algorithm, Order


class $cls(Algorithm):
    """Buys a symbol after a drop and sells it once the price is back.

    For each symbol it remembers the last price it saw. A quote at least
    ``drop_pct`` % under that price buys ``self.portfolio.optimize(quote)``
    shares (the portfolio's sizing: 10 % of the cash not held by open orders)
    and makes the price before the drop the symbol's target. A later quote at
    or above the target sells every share of the symbol that is held and not
    already being sold, and forgets the target. The first quote of a symbol
    only sets its last price. Bought shares count as held once execution
    reports the fill, so nothing is sold before that.

    Params, given to ``tickbus algo serve`` or ``tickbus bridge`` as
    ``--param key=value``:
        drop_pct: How far the price must fall to buy, in percent; a number
            > 0 and < 100, default 1.
        starting_cash, buffer_bps: Read by the framework, which builds
            ``self.portfolio`` from them before `initialize` runs.
        channels: Read by the framework: the MQTT topic filters to subscribe
            to, a list or a comma-separated string; it wins over what
            `initialize` returns.
    """

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        """Read the params and start with no price seen.

        ``self.portfolio`` is ready when this runs.

        Returns:
            The MQTT topic filters to subscribe to.

        Raises:
            ValueError: ``drop_pct`` is not a number > 0 and < 100.
        """
        drop_pct = params.get("drop_pct", 1)
        if not isinstance(drop_pct, int | float) or not 0 < drop_pct < 100:
            raise ValueError(f"drop_pct must be > 0 and < 100, got {drop_pct!r}")
        self.drop_fraction = drop_pct / 100
        self.last_prices: dict[str, float] = {}
        self.targets: dict[str, float] = {}
        return ["quotes", "quotes/#"]

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        """Buy after a drop, sell at the target; returns the orders placed."""
        sid, price = quote["sid"], quote["price"]
        previous, self.last_prices[sid] = self.last_prices.get(sid), price
        if previous is not None and price <= previous * (1 - self.drop_fraction):
            order = self.buy(quote, self.portfolio.optimize(quote))
            if order is not None:
                self.targets[sid] = previous
            return [order] if order is not None else []
        if sid in self.targets and price >= self.targets[sid]:
            # For a limit order: self.sell(quote, qty, limit_price=price)
            order = self.sell(quote, self.portfolio.available_shares(sid))
            if order is not None:
                del self.targets[sid]
            return [order] if order is not None else []
        return []
''')

TEST = Template('''\
"""Tests of $cls: plain Python, no broker. Run: python -m pytest test_$name.py"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from $name import $cls


def quote(price: float, ts: float, sid: str = "GOOG") -> dict[str, Any]:
    """A quote as the bridge delivers it."""
    return {"sid": sid, "price": price, "ts": ts}


def started(**params: Any) -> $cls:
    """A $cls started as its server starts it, with 10,000 in cash."""
    algo = $cls()
    algo.start({"starting_cash": 10_000, **params})
    return algo


def filled(order: Mapping[str, Any], price: float) -> dict[str, Any]:
    """The fill of all of `order` at `price`, as execution reports it."""
    keys = ("sid", "side", "qty")
    return {"order_id": order["id"], **{k: order[k] for k in keys}, "price": price}


def test_it_buys_only_after_a_drop_of_drop_pct() -> None:
    algo = started(drop_pct=2)
    assert algo.events([quote(100.0, 1)]) == []  # the first price only sets the last
    assert algo.events([quote(99.0, 2)]) == []  # 1 % under 100: not enough
    [order] = algo.events([quote(96.0, 3)])  # 3 % under 99
    assert (order["sid"], order["side"], order["type"]) == ("GOOG", "buy", "market")
    assert order["qty"] > 0
    state = algo.state()
    assert (state["quotes"], state["orders"]) == (3, 1)
    assert state["portfolio"]["open_orders"] == 1


def test_each_symbol_has_its_own_last_price() -> None:
    algo = started(drop_pct=2)
    quotes = [quote(100.0, 1, "GOOG"), quote(50.0, 2, "MSFT"), quote(99.0, 3, "GOOG")]
    assert algo.events(quotes) == []


def test_it_sells_what_it_holds_once_the_price_is_back() -> None:
    algo = started(drop_pct=2)
    [buy] = algo.events([quote(100.0, 1), quote(97.0, 2)])
    assert algo.events([quote(99.0, 3)]) == []  # under the target, 100: it holds
    assert algo.events([quote(100.5, 4)]) == []  # the buy is not filled: no shares
    algo.fill(filled(buy, price=97.0))
    [sell] = algo.events([quote(100.2, 5)])
    assert (sell["sid"], sell["side"], sell["qty"]) == ("GOOG", "sell", buy["qty"])
    assert algo.events([quote(100.4, 6)]) == []  # sold: no target left


def test_it_subscribes_to_the_channels_param() -> None:
    assert $cls().start({}) == ["quotes", "quotes/#"]
    channels = $cls().start({"channels": "quotes/GOOG,quotes/MSFT"})
    assert channels == ["quotes/GOOG", "quotes/MSFT"]


@pytest.mark.parametrize("drop_pct", [0, 100, -1, "2", None])
def test_it_refuses_a_drop_pct_that_is_not_a_percentage(drop_pct: Any) -> None:
    with pytest.raises(ValueError, match="drop_pct"):
        $cls().start({"drop_pct": drop_pct})
''')
