"""The algorithm contract as users write it: no super(), plain classes, order requests."""

from __future__ import annotations

import functools
import itertools
import logging
import random
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from algos import Algorithm, PlainAlgorithm, load_algorithm
from portfolio import FractionOfCash, Portfolio
from tickbus.errors import ConfigError, NotInitialized


def quote(sid: str = "GOOG", price: float = 100.0, ts: float = 1.0) -> dict[str, Any]:
    return {"sid": sid, "price": price, "ts": ts}


class Counter(Algorithm):
    """The issue's example: initialize never calls super(), event returns []."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self.seen: list[str] = []
        return ["quotes/#"]

    def event(self, quote: Mapping[str, Any]) -> list[Any]:
        self.seen.append(quote["sid"])
        return []


class SeedRandomAlgo(Algorithm):
    """The seed's style: initialize only sets threshold; event buys what optimize says."""

    def __init__(self) -> None:  # no super().__init__()
        self.threshold = 0.5

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self.threshold = params.get("threshold", 0.5)
        return ["quotes"]

    def event(self, quote: Mapping[str, Any]) -> Any:
        if random.random() < self.threshold:
            return None
        return [self.buy(quote, self.portfolio.optimize(quote))]


class Clashing(Algorithm):
    """Keeps attributes whose names the old base class used for itself."""

    def initialize(self, params: Mapping[str, Any]) -> None:
        self._portfolio = "mine"
        self._fills = ["mine"]
        self._errors = "mine"
        self._placed = "mine"
        self._quotes_seen = -1

    def event(self, quote: Mapping[str, Any]) -> list[Any]:
        return [self.buy(quote, 1)]


class SizesInInitialize(Algorithm):
    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self.budget = self.portfolio.cash / 4
        self.portfolio = Portfolio(
            cash=self.portfolio.cash, sizing=FractionOfCash(fraction=1), buffer_bps=0
        )
        return ["quotes/GOOG"]

    def event(self, quote: Mapping[str, Any]) -> None:
        return None


class Requester(Algorithm):
    """Returns order requests (dicts), as a plain class would."""

    def initialize(self, params: Mapping[str, Any]) -> None:
        self.requests: list[Any] = list(params.get("requests", []))

    def event(self, quote: Mapping[str, Any]) -> Any:
        return self.requests.pop(0) if self.requests else None


class PlainRandomAlgo(object):  # noqa: UP004 - the seed writes it so
    """A plain class, as the seed writes RandomAlgo(object)."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self.threshold = params.get("threshold", 0.5)
        return ["quotes"]

    def event(self, quote: Mapping[str, Any]) -> Any:
        if self.threshold >= 1:
            return None
        return [{"sid": quote["sid"], "side": "buy", "qty": 2}]


class PlainOddReturns:
    def initialize(self, params: Mapping[str, Any]) -> None:
        self.answer = params["answer"]

    def event(self, quote: Mapping[str, Any]) -> Any:
        return self.answer


class NoEvent:
    def initialize(self, params: Mapping[str, Any]) -> None:
        return None


def test_an_algorithm_that_never_calls_super_gets_quotes_and_counts() -> None:
    algo = Counter()
    assert algo.start({}) == ["quotes/#"]
    assert algo.events([quote("goog"), quote("aapl"), quote("msft")]) == []
    assert algo.seen == ["GOOG", "AAPL", "MSFT"]
    state = algo.state()
    assert state["quotes"] == 3 and state["errors"] == 0 and state["initialized"] is True
    assert state["algorithm"] == "tests.test_algorithm_contract:Counter"


class SuperRandomAlgo(SeedRandomAlgo):
    """The same algorithm, written the careful way: super() in both methods."""

    def __init__(self) -> None:
        super().__init__()

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        Algorithm.initialize(self, params)
        return super().initialize(params)


def test_a_seed_style_algorithm_trades_exactly_like_one_that_calls_super() -> None:
    runs = []
    for cls in (SeedRandomAlgo, SuperRandomAlgo):
        random.seed(5)
        algo = cls()
        assert algo.start({"threshold": 0.3, "starting_cash": 10_000}) == ["quotes"]
        orders = algo.events([quote(price=100.0 + i) for i in range(20)])
        runs.append(([(o["sid"], o["qty"]) for o in orders], algo.portfolio.available_cash))
        assert algo.state()["orders"] == len(orders) > 5
    assert runs[0] == runs[1]


def test_attributes_of_the_user_never_clash_with_the_framework() -> None:
    algo = Clashing()
    algo.start({"starting_cash": 1_000})
    [order] = algo.events([quote()])
    algo.fill({"order_id": order["id"], "sid": "GOOG", "side": "buy", "qty": 1, "price": 100.0})
    state = algo.state()
    assert (state["quotes"], state["orders"], state["fills"], state["errors"]) == (1, 1, 1, 0)
    assert algo._fills == ["mine"] and algo._portfolio == "mine"


def test_the_portfolio_exists_in_initialize_and_may_be_replaced_there() -> None:
    algo = SizesInInitialize()
    algo.start({"starting_cash": 1_000})
    assert algo.budget == 250
    assert algo.portfolio.optimize(quote(price=10.0)) == 100  # the replacement's sizing


def test_a_snapshot_survives_an_initialize_that_replaces_the_portfolio() -> None:
    carried = Portfolio(cash=777.0).snapshot()
    algo = SizesInInitialize()
    algo.start({"starting_cash": 1_000}, snapshot=carried)
    assert algo.budget == 777.0 / 4  # the carried book was in place during initialize
    assert algo.portfolio.cash == 777.0
    assert algo.portfolio.optimize(quote(price=10.0)) == 77  # and keeps the new sizing


def test_a_refused_start_leaves_the_last_run_in_place() -> None:
    algo = Requester()
    algo.start({"starting_cash": 1_000})
    with pytest.raises(ConfigError, match="starting_cash must be a number >= 0"):
        algo.start({"starting_cash": -1})
    with pytest.raises(ConfigError, match=r"Bad.initialize\(\) must return a list"):

        class Bad(Counter):
            def initialize(self, params: Mapping[str, Any]) -> Any:
                return 42

        Bad().start({})
    assert algo.portfolio.cash == 1_000


def test_a_bad_channel_list_from_initialize_is_a_clear_error() -> None:
    class Bad(Counter):
        def initialize(self, params: Mapping[str, Any]) -> Any:
            return ["quotes/#/GOOG"]

    with pytest.raises(ConfigError, match=r"Bad.initialize\(\) must return a list .*'#'"):
        Bad().start({})
    assert not Bad().started


def test_the_channels_param_wins_over_what_initialize_returns() -> None:
    assert Counter().start({"channels": "quotes/GOOG,quotes/MSFT"}) == [
        "quotes/GOOG",
        "quotes/MSFT",
    ]


def test_events_before_start_names_the_framework_entry_point() -> None:
    with pytest.raises(NotInitialized, match=r"Algorithm.start\(params\)"):
        Counter().events([quote()])
    with pytest.raises(NotInitialized, match=r"must come before handle_checked"):
        Counter().handle_checked(quote())


def next_id(ids: Iterator[int]) -> str:
    return f"o{next(ids)}"


def test_handle_checked_is_what_events_does_after_checking() -> None:
    requests = [[{"sid": "GOOG", "side": "buy", "qty": 1 + i % 3}] for i in range(20)]
    by_events, by_handle = Requester(), Requester()
    for algo in (by_events, by_handle):
        ids = itertools.count(1)
        algo.start({"requests": list(requests)}, order_ids=functools.partial(next_id, ids))
    placed = []
    for i in range(40):
        one = quote(price=100.0 + i, ts=1.8e9 + i)
        orders = by_events.events([one])
        assert orders == by_handle.handle_checked(dict(one))
        placed += orders
    assert len(placed) == 20
    assert by_events.state() == by_handle.state()


def test_a_quote_without_ts_is_stamped() -> None:
    algo = Counter()
    algo.start({})
    algo.events([{"sid": "GOOG", "price": 100}])
    assert algo.state()["quotes"] == 1


def test_order_requests_are_placed_as_buy_and_sell_place_them() -> None:
    algo = Requester()
    requests = [
        [{"sid": "goog", "side": "buy", "qty": 3}],
        [{"sid": "AAPL", "side": "BUY", "qty": 2, "limit_price": 50.0}],
        [{"sid": "GOOG", "side": "buy", "qty": 0}],
    ]
    algo.start({"starting_cash": 10_000, "buffer_bps": 0, "requests": requests})
    [market] = algo.events([quote("GOOG", 100.0)])
    [limit] = algo.events([quote("AAPL", 60.0)])
    assert algo.events([quote("GOOG", 100.0)]) == []  # qty 0 places nothing
    assert (market["sid"], market["side"], market["qty"], market["type"]) == (
        "GOOG",
        "buy",
        3,
        "market",
    )
    assert (limit["type"], limit["limit_price"]) == ("limit", 50.0)
    assert algo.portfolio.available_cash == 10_000 - 300 - 100
    assert algo.state()["orders"] == 2


def test_an_order_request_for_another_symbol_uses_its_last_quote() -> None:
    algo = Requester()
    later = [[], [{"sid": "AAPL", "side": "buy", "qty": 1}]]
    algo.start({"starting_cash": 1_000, "buffer_bps": 0, "requests": later})
    algo.events([quote("AAPL", 42.0)])
    [order] = algo.events([quote("GOOG", 100.0)])
    assert order["sid"] == "AAPL"
    assert algo.portfolio.available_cash == 1_000 - 42.0


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        ([{"sid": "MSFT", "side": "buy", "qty": 1}], "no quote of MSFT has arrived yet"),
        ([{"sid": "GOOG", "side": "buy", "qty": 1, "price": 9}], "use limit_price"),
        ([{"sid": "GOOG", "side": "hold", "qty": 1}], "needs 'side'"),
        ([{"sid": "GOOG", "side": "buy", "qty": 1.5}], "needs 'qty', an int >= 0"),
        ([{"sid": "GOOG", "side": "buy", "qty": 1, "limit_price": -1}], "limit_price must be"),
        (["buy GOOG"], "which is not an order"),
        ({"sid": "GOOG", "side": "buy", "qty": 1}, "must return a list of orders or None"),
        ("buy", "must return a list of orders or None, got str"),
    ],
)
def test_anything_else_returned_is_a_counted_error_of_that_quote(
    request_: Any, reason: str
) -> None:
    algo = Requester()
    algo.start({"requests": [request_, [{"sid": "GOOG", "side": "buy", "qty": 1}]]})
    assert algo.events([quote()]) == []
    assert reason in algo.state()["last_error"]
    assert len(algo.events([quote()])) == 1  # the next quote trades as usual
    assert (algo.state()["errors"], algo.state()["orders"]) == (1, 1)


def test_a_tuple_of_orders_and_a_read_only_fill_are_taken_as_a_list_and_a_dict_are() -> None:
    """The exact-type fast paths (list, dict) must not shut out other sequences and mappings."""
    algo = Requester()
    algo.start({"buffer_bps": 0, "requests": [({"sid": "GOOG", "side": "buy", "qty": 2},)]})
    [order] = algo.events([quote(price=10.0)])
    fill = {"order_id": order["id"], "sid": "GOOG", "side": "buy", "qty": 2, "price": 10.0}
    algo.fill(MappingProxyType(fill))
    assert algo.portfolio.positions["GOOG"].qty == 2
    assert (algo.state()["errors"], algo.state()["fills"]) == (0, 1)


def test_a_plain_class_is_served_with_a_portfolio_alongside() -> None:
    algo = load_algorithm("tests.test_algorithm_contract:PlainRandomAlgo")()
    assert isinstance(algo, PlainAlgorithm)
    assert algo.start({"threshold": 0, "starting_cash": 1_000}) == ["quotes"]
    [order] = algo.events([quote(price=10.0)])
    assert (order["sid"], order["side"], order["qty"]) == ("GOOG", "buy", 2)
    algo.fill({"order_id": order["id"], "sid": "GOOG", "side": "buy", "qty": 2, "price": 10.0})
    state = algo.state()
    assert state["algorithm"] == "tests.test_algorithm_contract:PlainRandomAlgo"
    assert state["portfolio"]["positions"]["GOOG"]["qty"] == 2
    assert (state["quotes"], state["orders"], state["fills"]) == (1, 1, 1)
    assert algo._inner.portfolio is algo.portfolio  # lent, as it had none


def test_a_plain_class_returning_none_orders_nothing() -> None:
    algo = load_algorithm("tests.test_algorithm_contract:PlainRandomAlgo")()
    algo.start({"threshold": 1})
    assert algo.events([quote()]) == []
    assert algo.state()["errors"] == 0


@pytest.mark.parametrize("answer", [7, "buy", {"GOOG": 1}, [{"id": "forged"}]])
def test_a_plain_class_returning_nonsense_is_a_counted_error(answer: Any) -> None:
    algo = load_algorithm("tests.test_algorithm_contract:PlainOddReturns")()
    algo.start({"answer": answer})
    assert algo.events([quote(), quote()]) == []
    assert algo.state()["errors"] == 2


def test_a_class_without_event_is_refused_with_what_it_lacks() -> None:
    with pytest.raises(ConfigError, match="it has no event"):
        load_algorithm("tests.test_algorithm_contract:NoEvent")


class ThirdQuoteFails(Algorithm):
    def initialize(self, params: Mapping[str, Any]) -> None:
        self.n = 0

    def event(self, quote: Mapping[str, Any]) -> None:
        self.n += 1
        if self.n % 3 == 0:
            raise ValueError(f"quote {self.n} is cursed")


def test_failures_of_event_are_counted_and_logged_once_not_per_quote(
    caplog: pytest.LogCaptureFixture,
) -> None:
    algo = ThirdQuoteFails()
    algo.start({})
    with caplog.at_level(logging.WARNING, logger="algos"):
        for _ in range(30):
            algo.events([quote(), quote(), quote()])
    assert algo.state()["errors"] == 30
    assert algo.state()["last_error"] == "ValueError on GOOG: quote 90 is cursed"
    lines = [r for r in caplog.records if r.name == "algos"]
    assert len(lines) == 1  # the first, with its traceback; a summary comes 10 s later
    assert lines[0].exc_info is not None
