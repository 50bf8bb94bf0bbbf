"""The closed loop with real processes: quotes -> algorithm -> order -> risk gate -> paper
execution -> fill -> portfolio; each risk limit, the kill switch, and fills kept for a
server that is down.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker import decode_order
from tests.support import (
    REPO_ROOT,
    MqttRecorder,
    Processes,
    free_port,
    recorder,
    serve_algorithm,
    start_bridge,
    start_execution,
    unique,
    wait_online,
    wait_until,
)

AlgoState = Callable[[str], dict[str, Any]]


def publish_quote(rec: MqttRecorder, sid: str, price: float, ts: float, spread: float = 0) -> None:
    quote: dict[str, Any] = {"sid": sid, "price": price, "ts": ts}
    if spread:
        quote.update(bid=price - spread / 2, ask=price + spread / 2)
    rec.publish(f"quotes/{sid}", json.dumps(quote))


def risk(mqtt_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `tickbus risk ...` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "tickbus", "risk", *args, "--mqtt", mqtt_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


def settled(algo_state: AlgoState, rpc: str, quotes: int) -> dict[str, Any]:
    """The algorithm's state once it handled `quotes` quotes and no order is open."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: (
            (s := algo_state(rpc)).get("quotes") == quotes
            and s["portfolio"]["open_orders"] == 0
            and s
        ),
        timeout=20,
        what=f"{quotes} quotes handled and every order filled or rejected",
    )


def test_quotes_become_orders_then_fills_that_move_the_portfolio(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState
) -> None:
    name, sid = unique("loop"), unique("L").upper()
    start_execution(procs, mqtt_url, "--slippage-bps", "10", "--fee-bps", "5")
    rpc = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0", "seed=3")
    with recorder(
        mosquitto_port, f"status/bridge/{name}", f"orders/{name}/#", f"fills/{name}"
    ) as rec:
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}", "starting_cash=10000")
        wait_online(rec, name)
        prices = [100.0, 101.0, 99.0, 102.0, 98.5, 100.5]
        for n, price in enumerate(prices, start=1):
            publish_quote(rec, sid, price, ts=n, spread=0.2)
        state = settled(algo_state, rpc, len(prices))
        orders = [decode_order(p) for p in rec.on(f"orders/{name}")]
        fills = rec.json_on(f"fills/{name}")
    assert rec.on(f"orders/{name}/rejected") == []
    assert len(orders) >= 3, "RandomAlgo with threshold 0 bought on most quotes"
    assert all(o["algo"] == name and o["type"] == "market" for o in orders)
    assert sorted(f["order_id"] for f in fills) == sorted(o["id"] for o in orders)
    for fill in fills:
        order = next(o for o in orders if o["id"] == fill["order_id"])
        assert (fill["sid"], fill["side"], fill["qty"]) == (sid, "buy", order["qty"])
    # The portfolio moved by what was filled (ask plus slippage, and the fee), not by the quotes.
    spent = math.fsum(f["qty"] * f["price"] + f["fee"] for f in fills)
    portfolio = state["portfolio"]
    assert portfolio["cash"] == pytest.approx(10_000 - spent, abs=1e-6)
    assert portfolio["positions"][sid]["qty"] == sum(f["qty"] for f in fills)
    assert portfolio["realised_pnl"] == pytest.approx(-math.fsum(f["fee"] for f in fills))
    assert state["fills"] == len(fills) == state["orders"]
    assert state["portfolio_snapshot"]["open_orders"] == {}


@pytest.mark.parametrize(
    ("flags", "qty", "expect_orders", "reason"),
    [
        (["--max-order-qty", "5"], 10, 0, "qty 10 is above max_order_qty 5"),
        (
            ["--max-order-notional", "500"],
            10,
            0,
            "notional 1000.00 is above max_order_notional 500",
        ),
        (["--max-position", "25"], 10, 2, "would be 30, beyond max_position 25"),
        (["--max-orders-per-s", "2"], 1, 2, "more than max_orders_per_s 2 orders in 1 s"),
    ],
    ids=["qty", "notional", "position", "rate"],
)
def test_each_risk_limit_refuses_with_its_reason(
    procs: Processes,
    mqtt_url: str,
    mosquitto_port: int,
    algo_state: AlgoState,
    flags: list[str],
    qty: int,
    expect_orders: int,
    reason: str,
) -> None:
    name, sid = unique("risk"), unique("R").upper()
    rpc = serve_algorithm(procs, "tests.algos_for_tests:OrderEveryQuote", f"qty={qty}")
    with recorder(mosquitto_port, f"status/bridge/{name}", f"orders/{name}/#") as rec:
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}", flags=flags)
        wait_online(rec, name)
        for n in range(1, 5):  # a burst well inside one second
            publish_quote(rec, sid, 100.0, ts=n)
        wait_until(
            lambda: len(rec.on(f"orders/{name}")) + len(rec.on(f"orders/{name}/rejected")) == 4,
            timeout=15,
            what="every order published or refused",
        )
        state = wait_until(
            lambda: (s := algo_state(rpc))["rejected"] == 4 - expect_orders and s,
            timeout=15,
            what="the algorithm told of each refusal",
        )
        wait_until(
            lambda: any(
                s.get("orders_rejected") == 4 - expect_orders
                for s in rec.json_on(f"status/bridge/{name}")
            ),
            timeout=5,
            what="the refusals counted on the bridge's status",
        )
    refusals = rec.json_on(f"orders/{name}/rejected")
    assert len(rec.on(f"orders/{name}")) == expect_orders
    assert len(refusals) == 4 - expect_orders
    assert all(r["by"] == "bridge" and reason in r["reason"] for r in refusals), refusals
    assert all(r["order"]["algo"] == name and r["order"]["sid"] == sid for r in refusals)
    # Every refused order's hold is freed; the passed ones stay open (no execution here).
    assert state["portfolio"]["open_orders"] == expect_orders


def test_kill_switch_stops_the_next_order_holds_across_a_restart_and_lifts(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState
) -> None:
    name, sid = unique("kill"), unique("K").upper()
    rpc = serve_algorithm(procs, "tests.algos_for_tests:OrderEveryQuote")
    bridge_args = (procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
    with recorder(mosquitto_port, f"status/bridge/{name}", f"orders/{name}/#") as rec:

        def quote_then_outcome(n: int) -> str:
            """Publish quote `n`; 'order' or the refusal reason it led to."""
            before = len(rec.on(f"orders/{name}/#"))
            publish_quote(rec, sid, 50.0, ts=n)
            wait_until(lambda: len(rec.on(f"orders/{name}/#")) > before, timeout=10, what="outcome")
            topic, payload = [(t, p) for t, p in rec.messages if t.startswith(f"orders/{name}")][-1]
            return "order" if topic == f"orders/{name}" else str(json.loads(payload)["reason"])

        bridge = start_bridge(*bridge_args)
        wait_online(rec, name)
        assert quote_then_outcome(1) == "order"
        killed = risk(mqtt_url, "kill", "--bridge", name, "--reason", "runaway test")
        assert killed.returncode == 0, killed.stderr
        assert quote_then_outcome(2) == "kill switch on: runaway test", "the very next quote"
        # The switch is retained: a restarted bridge is still killed.
        bridge.signal(signal.SIGTERM)
        assert bridge.wait(timeout=10) == 0
        rec.messages.clear()
        start_bridge(*bridge_args)
        wait_online(rec, name)
        assert quote_then_outcome(3) == "kill switch on: runaway test"
        lifted = risk(mqtt_url, "lift", "--bridge", name)
        assert lifted.returncode == 0, lifted.stderr
        assert quote_then_outcome(4) == "order"
    assert "kill switch on (runaway test)" in killed.stdout
    state = algo_state(rpc)  # counted since the restarted bridge initialised it again
    assert (state["rejected"], state["portfolio"]["open_orders"]) == (1, 1)


def test_fills_for_a_server_that_is_down_are_kept_and_booked_when_it_is_back(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState, tmp_path: Path
) -> None:
    name, sid = unique("down"), unique("D").upper()
    addr = f"tcp://127.0.0.1:{free_port()}"
    serve = ["algo", "serve", "tests.algos_for_tests:OrderEveryQuote", "--addr", addr]
    serve += ["--state-dir", str(tmp_path / "book"), "--param", "qty=3"]
    with recorder(mosquitto_port, f"status/bridge/{name}", f"orders/{name}") as rec:
        server = procs.tickbus(*serve, name="algo1")
        wait_until(lambda: "serving" in server.log(), timeout=15, what="server")
        start_bridge(procs, mqtt_url, addr, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        publish_quote(rec, sid, 20.0, ts=1)
        [order] = wait_until(lambda: rec.on(f"orders/{name}"), timeout=10, what="the order")
        order_id = json.loads(order)["id"]
        server.signal(signal.SIGKILL)
        server.wait(timeout=5)
        fill = {"id": "f1", "order_id": order_id, "algo": name, "sid": sid, "side": "buy",
                "qty": 3, "price": 20.5, "fee": 0.25, "ts": 2.0}  # fmt: skip
        rec.publish(f"fills/{name}", json.dumps(fill))
        wait_until(
            lambda: any(
                s.get("reports_pending") == 1 for s in rec.json_on(f"status/bridge/{name}")
            ),
            timeout=10,
            what="the bridge keeping the fill",
        )
        restarted = procs.tickbus(*serve, name="algo2")
        wait_until(lambda: "serving" in restarted.log(), timeout=15, what="restarted server")
        state = wait_until(
            lambda: (s := _state_or_none(algo_state, addr)) and s.get("fills") == 1 and s,
            timeout=20,
            what="the kept fill booked",
        )
    portfolio = state["portfolio"]
    assert portfolio["positions"][sid] == {"qty": 3, "avg_cost": 20.5, "last_price": 20.5}
    assert portfolio["cash"] == pytest.approx(100_000 - 3 * 20.5 - 0.25)
    assert portfolio["open_orders"] == 0


def _state_or_none(algo_state: AlgoState, addr: str) -> dict[str, Any] | None:
    try:
        return algo_state(addr)
    except Exception:  # not serving yet
        return None


def test_orders_sent_while_execution_restarts_are_filled_when_it_is_back(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    algo, sid, name = unique("late"), unique("T").upper(), unique("paper")
    args = ("execution", "paper", "--mqtt", mqtt_url, "--name", name)
    with recorder(mosquitto_port, f"status/execution/{name}", f"fills/{algo}") as rec:

        def start() -> Any:
            proc = procs.tickbus(*args, name=name)
            wait_until(
                lambda: any(
                    "waiting" in s and s["pid"] == proc.popen.pid
                    for s in rec.json_on(f"status/execution/{name}")
                ),
                timeout=15,
                what="execution online",
            )
            return proc

        first = start()
        first.signal(signal.SIGTERM)
        assert first.wait(timeout=10) == 0
        order = {"id": "o1", "algo": algo, "sid": sid, "side": "buy", "qty": 2,
                 "type": "market", "ts": 1.0}  # fmt: skip
        rec.publish(f"orders/{algo}", json.dumps(order))  # nobody is reading orders now
        start()
        publish_quote(rec, sid, 10.0, ts=2.0, spread=0.2)
        [fill] = wait_until(lambda: rec.json_on(f"fills/{algo}"), timeout=15, what="the fill")
    assert (fill["order_id"], fill["qty"], fill["price"]) == ("o1", 2, pytest.approx(10.1))
