"""Paper execution: the matching rules as plain Python, and `tickbus execution paper` live."""

from __future__ import annotations

import itertools
import json
import signal
import time
import uuid
from typing import Any

import pytest

from broker import Order, Quote, parse_order
from execution import PaperBook, Rejection
from tests.support import MqttRecorder, Proc, Processes, recorder, unique, wait_until

# --- the book, without a broker ----------------------------------------------------------


class FakeClock:
    def __init__(self, value: float = 1000.0) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


def make_order(sid: str = "GOOG", side: str = "buy", **fields: Any) -> Order:
    base: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "algo": "algo1",
        "sid": sid,
        "side": side,
        "qty": 10,
        "type": "market",
        "ts": 1.0,
    }
    return parse_order({**base, **fields})


def limit(sid: str, side: str, price: float, **fields: Any) -> Order:
    return make_order(sid, side, type="limit", limit_price=price, **fields)


def quote(sid: str = "GOOG", price: float = 100.0, **fields: float) -> Quote:
    return {"sid": sid, "price": price, "ts": 1.0, **fields}  # type: ignore[typeddict-item]


def book(**options: Any) -> PaperBook:
    ids = (f"fill{n}" for n in itertools.count())
    return PaperBook(clock=lambda: 5.0, new_id=lambda: next(ids), **options)


def test_market_orders_fill_at_ask_plus_slippage_and_bid_minus_slippage_with_a_fee() -> None:
    paper = book(slippage_bps=10, fee_bps=5)
    assert paper.on_quote(quote(price=100, bid=99.5, ask=100.5)) == []
    buy = make_order(qty=10)
    assert paper.submit(buy) == {
        "id": "fill0",
        "order_id": buy["id"],
        "algo": "algo1",
        "sid": "GOOG",
        "side": "buy",
        "qty": 10,
        "price": pytest.approx(100.5 * 1.001),
        "fee": pytest.approx(10 * 100.5 * 1.001 * 0.0005),
        "ts": 5.0,
    }
    sell = paper.submit(make_order(side="sell", qty=3))
    assert isinstance(sell, dict)
    assert sell["price"] == pytest.approx(99.5 * 0.999)
    assert sell["fee"] == pytest.approx(3 * 99.5 * 0.999 * 0.0005)


def test_market_orders_fall_back_to_the_price_without_bid_and_ask() -> None:
    paper = book(slippage_bps=20)
    paper.on_quote(quote(price=50))
    buy, sell = paper.submit(make_order()), paper.submit(make_order(side="sell"))
    assert isinstance(buy, dict) and isinstance(sell, dict)
    assert buy["price"] == pytest.approx(50 * 1.002)
    assert sell["price"] == pytest.approx(50 * 0.998)
    assert buy["fee"] == 0.0


def test_the_latest_quote_is_the_one_that_counts() -> None:
    paper = book()
    paper.on_quote(quote(price=50))
    paper.on_quote(quote(price=60))
    paper.on_quote(quote("OTHER", price=1))
    fill = paper.submit(make_order())
    assert isinstance(fill, dict) and fill["price"] == 60


def test_a_limit_buy_waits_until_the_ask_reaches_it_then_fills_no_worse_than_its_limit() -> None:
    paper = book(slippage_bps=100)
    paper.on_quote(quote(price=101, bid=100.9, ask=101.1))
    order = limit("GOOG", "buy", 100.0)
    assert paper.submit(order) is None
    assert paper.waiting == 1
    assert paper.on_quote(quote(price=100.2, ask=100.01)) == [], "100.01 > 100: still waiting"
    [fill] = paper.on_quote(quote(price=99.9, ask=99.95))
    assert fill["order_id"] == order["id"]
    assert fill["price"] == 100.0, "99.95 * 1.01 is above the limit: the limit caps it"
    assert paper.waiting == 0
    assert paper.on_quote(quote(price=50)) == [], "nothing waits any more"


def test_a_limit_buy_below_its_limit_gets_the_market_price_with_slippage() -> None:
    paper = book(slippage_bps=10)
    paper.on_quote(quote(price=90))
    fill = paper.submit(limit("GOOG", "buy", 100.0))
    assert isinstance(fill, dict) and fill["price"] == pytest.approx(90 * 1.001)


def test_a_limit_sell_waits_for_the_bid_and_fills_no_lower_than_its_limit() -> None:
    paper = book(slippage_bps=100)
    paper.on_quote(quote(price=99, bid=98.9, ask=99.1))
    assert paper.submit(limit("GOOG", "sell", 100.0)) is None
    assert paper.on_quote(quote(price=100.5, bid=99.99, ask=101)) == []
    [fill] = paper.on_quote(quote(price=100.5, bid=100.5, ask=100.6))
    assert fill["price"] == 100.0, "100.5 * 0.99 is below the limit: the limit floors it"
    high = book(slippage_bps=10)
    high.on_quote(quote(price=120))
    fill2 = high.submit(limit("GOOG", "sell", 100.0))
    assert isinstance(fill2, dict) and fill2["price"] == pytest.approx(120 * 0.999)


def test_orders_without_a_quote_wait_and_fill_on_the_first_one_in_arrival_order() -> None:
    paper = book()
    first, second = make_order("NEW"), limit("NEW", "sell", 10.0)
    third = make_order("NEW", side="sell")
    assert [paper.submit(o) for o in (first, second, third)] == [None, None, None]
    assert paper.on_quote(quote("OTHER")) == []
    fills = paper.on_quote(quote("NEW", price=20))
    assert [f["order_id"] for f in fills] == [first["id"], second["id"], third["id"]]
    assert paper.waiting == 0


def test_a_market_order_without_a_quote_expires_after_the_timeout_limits_do_not() -> None:
    now = FakeClock()
    paper = book(quote_timeout=5.0, monotonic=now)
    market, resting = make_order("NOQ"), limit("NOQ", "buy", 1.0)
    paper.submit(market)
    paper.submit(resting)
    now.value += 4.9
    assert paper.expire() == []
    now.value += 0.2
    assert paper.expire() == [Rejection(market, "no quote for NOQ within 5 s")]
    now.value += 100
    assert paper.expire() == []
    assert paper.waiting == 1
    assert paper.cancel_all("stopped") == [Rejection(resting, "stopped")]
    assert paper.waiting == 0


def test_a_market_order_filled_before_its_deadline_does_not_expire() -> None:
    now = FakeClock()
    paper = book(quote_timeout=1.0, monotonic=now)
    paper.submit(make_order("LATE"))
    assert len(paper.on_quote(quote("LATE"))) == 1
    now.value += 2
    assert paper.expire() == []


def test_the_same_order_id_of_one_algo_fills_once() -> None:
    paper = book()
    paper.on_quote(quote())
    order = make_order()
    assert isinstance(paper.submit(order), dict)
    assert paper.submit(order) is None
    assert paper.submit(dict(order, qty=99)) is None  # type: ignore[arg-type]
    assert paper.duplicates == 2
    other_algo = paper.submit({**order, "algo": "algo2"})
    assert isinstance(other_algo, dict), "ids are unique per algorithm"


def test_a_waiting_duplicate_is_not_queued_twice() -> None:
    paper = book()
    order = limit("GOOG", "buy", 1.0)
    paper.submit(order)
    paper.submit(order)
    assert paper.waiting == 1 and paper.duplicates == 1


def test_seen_ids_are_bounded_oldest_forgotten_first() -> None:
    paper = book(max_seen=2)
    paper.on_quote(quote())
    a, b, c = make_order(), make_order(), make_order()
    for order in (a, b, c):
        assert isinstance(paper.submit(order), dict)
    assert paper.submit(c) is None and paper.submit(b) is None
    assert isinstance(paper.submit(a), dict), "a was forgotten when c arrived"


def test_too_many_waiting_orders_are_rejected() -> None:
    paper = book(max_waiting=2)
    paper.submit(make_order("W"))
    paper.submit(make_order("W"))
    third = make_order("W")
    assert paper.submit(third) == Rejection(third, "too many waiting orders (the limit is 2)")
    assert paper.waiting == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"slippage_bps": 10_000}, "slippage_bps must be in"),
        ({"slippage_bps": -1}, "slippage_bps must be in"),
        ({"fee_bps": -0.1}, "fee_bps must be >= 0"),
    ],
)
def test_the_book_refuses_impossible_costs(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PaperBook(**options)


# --- the service, with a real broker and the real CLI ------------------------------------


def order_json(algo: str, sid: str, side: str = "buy", **fields: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "algo": algo,
        "sid": sid,
        "side": side,
        "qty": 10,
        "type": "market",
        "ts": time.time(),
        **fields,
    }


def send(rec: MqttRecorder, topic: str, payload: Any) -> None:
    rec.publish(topic, payload if isinstance(payload, bytes) else json.dumps(payload))


def start_paper(procs: Processes, mqtt_url: str, rec: MqttRecorder, name: str, *flags: str) -> Proc:
    """Run the service and wait for its first counters: it has subscribed by then."""
    args = ["execution", "paper", "--mqtt", mqtt_url, "--name", name, *flags]
    proc = procs.tickbus(*args, name=f"paper-{name}")
    wait_until(lambda: stats(rec, name), timeout=20, what=f"execution {name} running")
    return proc


def stats(rec: MqttRecorder, name: str) -> dict[str, Any] | None:
    """The last status of execution `name` that carries counters."""
    found = [s for s in rec.json_on(f"status/execution/{name}") if "orders_in" in s]
    return found[-1] if found else None


def wait_stats(rec: MqttRecorder, name: str, what: str, **expected: int) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        last = stats(rec, name)
        ok = last is not None and all(last.get(k) == v for k, v in expected.items())
        return last if ok else None

    return wait_until(matches, timeout=10, what=what)  # type: ignore[no-any-return]


def test_market_orders_fill_with_slippage_and_fee_on_fills_topic(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, algo = unique("paper"), unique("algo")
    sid, flat = unique("X").upper(), unique("P").upper()
    with recorder(mosquitto_port, f"fills/{algo}", f"status/execution/{name}") as rec:
        start_paper(procs, mqtt_url, rec, name, "--slippage-bps", "10", "--fee-bps", "5")
        send(rec, f"quotes/{sid}", {"sid": sid, "price": 100, "bid": 99.5, "ask": 100.5})
        send(rec, "quotes", {flat: 50})  # the bare channel, short form: no bid, no ask
        buy = order_json(algo, sid.lower(), qty=10)
        sell = order_json(algo, sid, "sell", qty=4)
        flat_buy = order_json(algo, flat, qty=1)
        for order in (buy, sell, flat_buy):
            send(rec, f"orders/{algo}", order)
        wait_until(lambda: len(rec.on(f"fills/{algo}")) == 3, timeout=10, what="3 fills")
        fills = {f["order_id"]: f for f in rec.json_on(f"fills/{algo}")}
        payload = rec.on(f"fills/{algo}")[0]
    assert b" " not in payload, "compact JSON"
    first = fills[buy["id"]]
    assert set(first) == {"id", "order_id", "algo", "sid", "side", "qty", "price", "fee", "ts"}
    assert len(first["id"]) == 32 and first["id"] != buy["id"]
    assert (first["algo"], first["sid"], first["side"], first["qty"]) == (algo, sid, "buy", 10)
    assert first["price"] == pytest.approx(100.5 * 1.001)
    assert first["fee"] == pytest.approx(10 * 100.5 * 1.001 * 0.0005)
    assert abs(first["ts"] - time.time()) < 30
    assert fills[sell["id"]]["price"] == pytest.approx(99.5 * 0.999)
    assert fills[sell["id"]]["fee"] == pytest.approx(4 * 99.5 * 0.999 * 0.0005)
    assert fills[flat_buy["id"]]["price"] == pytest.approx(50 * 1.001)


def test_a_limit_order_waits_then_fills_when_the_market_crosses_it(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, algo, sid = unique("paper"), unique("algo"), unique("L").upper()
    with recorder(mosquitto_port, f"fills/{algo}", f"status/execution/{name}") as rec:
        start_paper(procs, mqtt_url, rec, name, "--slippage-bps", "50")
        send(rec, f"quotes/{sid}", {"sid": sid, "price": 101, "ask": 101.2})
        order = order_json(algo, sid, type="limit", limit_price=100.0)
        send(rec, f"orders/{algo}", order)
        send(rec, f"quotes/{sid}", {"sid": sid, "price": 100.1, "ask": 100.05})
        wait_stats(rec, name, "the limit order waiting", waiting=1, quotes_in=2, orders_in=1)
        assert rec.on(f"fills/{algo}") == []
        send(rec, f"quotes/{sid}", {"sid": sid, "price": 99.9, "ask": 99.8})
        [fill] = wait_until(lambda: rec.json_on(f"fills/{algo}"), timeout=10, what="the fill")
        wait_stats(rec, name, "nothing waiting", waiting=0, fills=1)
    assert fill["order_id"] == order["id"]
    assert fill["price"] == 100.0, "99.8 * 1.005 is above the limit, so the limit price"


def test_the_same_order_published_twice_fills_once(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, algo, sid = unique("paper"), unique("algo"), unique("D").upper()
    with recorder(mosquitto_port, f"fills/{algo}", f"status/execution/{name}") as rec:
        start_paper(procs, mqtt_url, rec, name)
        send(rec, f"quotes/{sid}", {sid: 10})
        order = order_json(algo, sid)
        send(rec, f"orders/{algo}", order)
        send(rec, f"orders/{algo}", order)
        wait_stats(rec, name, "one duplicate", duplicates=1, fills=1, orders_in=2)
        fills = rec.json_on(f"fills/{algo}")
    assert [f["order_id"] for f in fills] == [order["id"]]


def test_an_order_without_a_quote_waits_for_the_first_one(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, algo, sid = unique("paper"), unique("algo"), unique("N").upper()
    with recorder(mosquitto_port, f"fills/{algo}", f"status/execution/{name}") as rec:
        start_paper(procs, mqtt_url, rec, name)
        order = order_json(algo, sid, "sell")
        send(rec, f"orders/{algo}", order)
        wait_stats(rec, name, "the order waiting", waiting=1, orders_in=1)
        assert rec.on(f"fills/{algo}") == []
        send(rec, f"quotes/{sid}", {"sid": sid, "price": 7, "bid": 6.9, "ask": 7.1})
        [fill] = wait_until(lambda: rec.json_on(f"fills/{algo}"), timeout=10, what="the fill")
    assert (fill["order_id"], fill["price"]) == (order["id"], 6.9)


def test_a_market_order_without_a_quote_in_time_is_rejected_limits_keep_waiting(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, algo, sid = unique("paper"), unique("algo"), unique("T").upper()
    topics = (f"fills/{algo}", f"orders/{algo}/rejected", f"status/execution/{name}")
    with recorder(mosquitto_port, *topics) as rec:
        start_paper(procs, mqtt_url, rec, name, "--quote-timeout", "0.5")
        market = order_json(algo, sid)
        resting = order_json(algo, sid, type="limit", limit_price=1.0)
        sent = time.monotonic()
        send(rec, f"orders/{algo}", market)
        send(rec, f"orders/{algo}", resting)
        [rejection] = wait_until(
            lambda: rec.json_on(f"orders/{algo}/rejected"), timeout=10, what="the rejection"
        )
        waited = time.monotonic() - sent
        status = wait_stats(rec, name, "one rejected", rejected=1, waiting=1)
    assert rejection == {
        "reason": f"no quote for {sid} within 0.5 s",
        "by": "execution",
        "order": {**market, "ts": pytest.approx(market["ts"])},
    }
    assert waited >= 0.5
    assert rec.on(f"fills/{algo}") == []
    assert status["fills"] == 0


def test_invalid_orders_are_rejected_with_their_reason_and_the_service_goes_on(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, algo, sid = unique("paper"), unique("algo"), unique("V").upper()
    topics = (
        f"fills/{algo}",
        f"orders/{algo}/#",
        f"status/execution/{name}",
        "deadletter/execution",
    )
    with recorder(mosquitto_port, *topics) as rec:
        start_paper(procs, mqtt_url, rec, name)
        marker = unique("m")
        send(rec, f"orders/{algo}", b"not json " + marker.encode())
        send(rec, f"orders/{algo}", order_json(algo, sid, qty=0))
        send(rec, f"orders/{algo}", order_json("someone-else", sid))
        send(rec, "orders/", b'{"lost": "' + marker.encode() + b'"}')
        send(rec, f"quotes/{sid}", b'{"' + sid.encode() + b'": -1}')
        good = order_json(algo, sid)
        send(rec, f"orders/{algo}", good)
        send(rec, f"quotes/{sid}", {sid: 12.5})
        [fill] = wait_until(lambda: rec.json_on(f"fills/{algo}"), timeout=10, what="the good fill")
        status = wait_stats(rec, name, "all counted", orders_in=5, rejected=4, fills=1)
        rejections = rec.json_on(f"orders/{algo}/rejected")
        letters = rec.json_on("deadletter/execution")
    assert fill["order_id"] == good["id"] and fill["price"] == 12.5
    assert [r["reason"] for r in rejections] == [
        "invalid JSON: Expecting value: line 1 column 1 (char 0)",
        "qty must be > 0, got 0",
        f"algo 'someone-else' does not match the topic 'orders/{algo}'",
    ]
    assert rejections[0]["order"] == f"not json {marker}"
    assert json.loads(rejections[1]["order"])["qty"] == 0
    lost = [x for x in letters if marker in x.get("payload", "")]
    assert [x["topic"] for x in lost] == ["orders/"]
    assert lost[0]["reason"].startswith("unknown field 'lost' (allowed: id, algo,")
    bad_quote = [x for x in letters if x.get("topic") == f"quotes/{sid}"]
    assert [x["reason"] for x in bad_quote] == [f"{sid}: price must be > 0, got -1"]
    assert status["bad_quotes"] == 1 and status["quotes_in"] == 1
    assert len(rec.on(f"orders/{algo}")) == 4, "rejections are not read back as orders"


def test_sigterm_rejects_what_waits_publishes_offline_and_exits_0(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, algo, sid = unique("paper"), unique("algo"), unique("S").upper()
    topics = (f"orders/{algo}/rejected", f"status/execution/{name}")
    with recorder(mosquitto_port, *topics) as rec:
        proc = start_paper(procs, mqtt_url, rec, name)
        resting = order_json(algo, sid, type="limit", limit_price=5.0)
        send(rec, f"orders/{algo}", resting)
        wait_stats(rec, name, "the limit order waiting", waiting=1)
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        last = wait_until(
            lambda: (
                rec.json_on(f"status/execution/{name}")[-1]["state"] == "offline"
                and rec.json_on(f"status/execution/{name}")[-1]
            ),
            timeout=5,
            what="offline status",
        )
        [rejection] = rec.json_on(f"orders/{algo}/rejected")
    assert rejection["reason"] == "the execution service stopped before the order filled"
    assert rejection["order"]["id"] == resting["id"]
    assert (last["orders_in"], last["rejected"], last["waiting"]) == (1, 1, 0)
    assert "Traceback" not in proc.log()
