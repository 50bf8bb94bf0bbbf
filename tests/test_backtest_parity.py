"""Live parity: what `tickbus backtest` says on a recording is what the live stack did.

The live stack (a CSV feed at a pace where each order fills before the next
quote, two bridges with risk limits, paper execution with slippage and fees,
`tickbus record`) trades `MovingAverageCross` and a seeded `RandomAlgo`; then
`tickbus backtest` runs the same classes and params on the recording. The
orders, the fills and the final portfolios must be identical.
"""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tests.support import (
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    start_execution,
    unique,
    wait_online,
    wait_until,
)

DAY1 = 1_796_083_200.0  # 2026-12-01T00:00:00Z
QUOTES = 240
PACE_S = 0.04  # between quotes, live: an order's fill is back long before the next quote
PRICING = ("--slippage-bps", "2", "--fee-bps", "1")
LIMITS = ("--max-position", "120", "--max-order-qty", "45")

ALGORITHMS = {
    "sma": ("algos.examples:MovingAverageCross", ("fast=3", "slow=8", "starting_cash=20000")),
    "rnd": ("algos.examples:RandomAlgo", ("threshold=0.8", "seed=11", "starting_cash=20000")),
}


def write_csv(path: Path, symbols: tuple[str, str]) -> None:
    """A random walk of two symbols with bid and ask, one quote every `PACE_S` of data time."""
    draw = random.Random(5)
    prices = {symbols[0]: 40.0, symbols[1]: 75.0}
    lines = ["ts,sid,price,bid,ask,size"]
    for i in range(QUOTES):
        sid = symbols[i % 2]
        prices[sid] = round(prices[sid] * (1 + draw.gauss(0, 0.004)), 2)
        price = prices[sid]
        lines.append(
            f"{DAY1 + 50_000 + i * PACE_S!r},{sid},{price!r},{price - 0.01:.2f},"
            f"{price + 0.01:.2f},{draw.randint(1, 9) * 100}"
        )
    path.write_text("\n".join(lines) + "\n")


def live_orders(rec: Any, bridge: str) -> list[tuple[Any, ...]]:
    return [
        (o["sid"], o["side"], o["qty"], o["type"], o.get("limit_price"))
        for o in rec.json_on(f"orders/{bridge}")
    ]


def live_refusals(rec: Any, bridge: str) -> list[tuple[Any, ...]]:
    return [
        (n["order"]["sid"], n["order"]["side"], n["order"]["qty"], n["reason"])
        for n in rec.json_on(f"orders/{bridge}/rejected")
    ]


def live_fills(rec: Any, bridge: str) -> list[tuple[Any, ...]]:
    return [
        (f["sid"], f["side"], f["qty"], f["price"], f["fee"])
        for f in rec.json_on(f"fills/{bridge}")
    ]


def test_backtest_orders_fills_and_portfolio_equal_the_live_run(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state
) -> None:  # type: ignore[no-untyped-def]
    symbols = (unique("PA").upper(), unique("PB").upper())
    channels = f'channels=["quotes/{symbols[0]}", "quotes/{symbols[1]}"]'
    csv, tape_dir = tmp_path / "session.csv", tmp_path / "tape"
    write_csv(csv, symbols)
    bridges = {key: unique(f"par{key}") for key in ALGORITHMS}
    rec_name = unique("parrec")
    filters = [f"status/recorder/{rec_name}"]
    for bridge in bridges.values():
        filters += [f"status/bridge/{bridge}", f"orders/{bridge}", f"orders/{bridge}/rejected"]
        filters += [f"fills/{bridge}"]
    with recorder(mosquitto_port, *filters) as rec:
        recording = procs.tickbus(
            "record", "--mqtt", mqtt_url, "--out", str(tape_dir), "--name", rec_name,
            "--topics", f"quotes/{symbols[0]},quotes/{symbols[1]}", name="parrec",
        )  # fmt: skip
        wait_until(lambda: rec.json_on(f"status/recorder/{rec_name}"), timeout=20, what="recorder")
        start_execution(procs, mqtt_url, *PRICING)
        servers = {}
        for key, (spec, params) in ALGORITHMS.items():
            servers[key] = serve_algorithm(procs, spec)
            start_bridge(
                procs, mqtt_url, servers[key], bridges[key], *params, channels, flags=LIMITS
            )
            wait_online(rec, bridges[key])
        feed = procs.tickbus("feed", "csv", str(csv), "--mqtt", mqtt_url, name="parfeed")
        assert feed.wait(timeout=60) == 0, feed.log()
        wait_until(
            lambda: rec.json_on(f"status/recorder/{rec_name}")[-1]["quotes"] == QUOTES,
            timeout=20,
            what=f"{QUOTES} quotes recorded",
        )
        for key, bridge in bridges.items():
            wait_until(
                lambda b=bridge, k=key: (
                    algo_state(servers[k])["quotes"] == QUOTES
                    and len(rec.json_on(f"fills/{b}")) == len(rec.json_on(f"orders/{b}"))
                ),
                timeout=20,
                what=f"{bridge}: every quote handled and every order filled",
            )
        recording.signal(signal.SIGTERM)
        assert recording.wait(timeout=10) == 0
        live = {
            key: {
                "orders": live_orders(rec, bridge),
                "refusals": live_refusals(rec, bridge),
                "fills": live_fills(rec, bridge),
                "portfolio": algo_state(servers[key])["portfolio"],
            }
            for key, bridge in bridges.items()
        }
    assert all(live[key]["fills"] for key in live), "both algorithms traded live"
    assert live["rnd"]["refusals"], "the risk limits refused some orders live"

    for key, (spec, params) in ALGORITHMS.items():
        out = tmp_path / f"bt-{key}"
        args = ["backtest", spec, "--data", str(tape_dir), "--out", str(out), *PRICING, *LIMITS]
        for param in (*params, channels):
            args += ["--param", param]
        run = procs.tickbus(*args, name=f"bt-{key}")
        assert run.wait(timeout=60) == 0, run.log()
        orders = pq.read_table(out / "orders.parquet").to_pylist()
        passed = [o for o in orders if o["refused"] is None]
        refused = [o for o in orders if o["refused"] is not None]
        fills = pq.read_table(out / "fills.parquet").to_pylist()
        summary = json.loads((out / "summary.json").read_text())
        assert [
            (o["sid"], o["side"], o["qty"], o["type"], o["limit_price"]) for o in passed
        ] == live[key]["orders"], key
        assert [(o["sid"], o["side"], o["qty"], o["refused"]) for o in refused] == live[key][
            "refusals"
        ], key
        assert [(f["sid"], f["side"], f["qty"], f["price"], f["fee"]) for f in fills] == live[key][
            "fills"
        ], key
        assert summary["portfolio"] == live[key]["portfolio"], key
        assert summary["quotes"] == QUOTES and summary["complete"], key
