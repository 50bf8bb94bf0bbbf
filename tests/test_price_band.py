"""Bad ticks: a quote far from its symbol's recent price is suspect, in the bridge and execution."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from broker import PriceBand
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
from tickbus.errors import ConfigError


def test_the_first_quote_of_a_symbol_passes_and_becomes_the_reference() -> None:
    band = PriceBand(10)
    assert band.check("GOOG", 3.45) is None
    assert band.check("GOOG", 3.6) is None
    assert band.check("AAPL", 190.0) is None  # each symbol has its own reference


def test_a_jump_beyond_the_band_is_suspect_with_the_reason() -> None:
    band = PriceBand(10)
    band.check("GOOG", 130.0)
    reason = band.check("GOOG", 3.45)
    assert reason is not None
    assert "suspect price: GOOG at 3.45 is 97.3% away from its recent price 130" in reason
    assert "10% band" in reason and "--max-price-jump-pct" in reason
    assert band.check("GOOG", 142.0) is None  # within 10%; the reference stayed at 130
    assert band.check("GOOG", 156.0) is None  # within 10% of 142


def test_a_stray_tick_amid_normal_quotes_never_moves_the_reference() -> None:
    band = PriceBand(10)
    band.check("GOOG", 130.0)
    for _ in range(6):  # six mosquitto_pub amid a running feed
        assert band.check("GOOG", 3.45) is not None
        assert band.check("GOOG", 130.1) is None


def test_a_real_gap_is_accepted_after_three_quotes_that_agree() -> None:
    band = PriceBand(10)
    band.check("GOOG", 100.0)
    assert band.check("GOOG", 150.0) is not None
    assert band.check("GOOG", 151.0) is not None
    assert band.check("GOOG", 150.5) is None  # the third in a row: the market moved
    assert band.check("GOOG", 152.0) is None
    assert band.check("GOOG", 100.0) is not None


def test_out_of_band_quotes_that_disagree_do_not_confirm_each_other() -> None:
    band = PriceBand(10)
    band.check("GOOG", 100.0)
    for price in (150.0, 40.0, 150.0, 40.0, 150.0):
        assert band.check("GOOG", price) is not None


@pytest.mark.parametrize("off", [None, 0])
def test_none_or_zero_turns_the_filter_off(off: float | None) -> None:
    band = PriceBand(off)
    band.check("GOOG", 130.0)
    assert band.check("GOOG", 3.45) is None


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_band_is_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="max_jump_pct must be a number >= 0"):
        PriceBand(bad)


# --- through the real bridge and paper execution ----------------------------------------------


def publish(port: int, topic: str, message: dict[str, Any]) -> None:
    """Publish as a person does, with mosquitto_pub."""
    subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-m", json.dumps(message)],
        check=True,
        timeout=10,
    )


def test_an_outlier_amid_a_running_market_is_dead_lettered_and_nothing_fills_at_it(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: Any
) -> None:
    name, sid = unique("band"), unique("G").upper()
    paper = start_execution(procs, mqtt_url)
    rpc = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0", "seed=1")
    filters = ["deadletter/#", f"orders/{name}", f"fills/{name}", f"status/bridge/{name}"]
    with recorder(mosquitto_port, *filters) as rec:
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        for n, price in enumerate([130.0, 130.4, 129.9], start=1):
            publish(mosquitto_port, f"quotes/{sid}", {"sid": sid, "price": price, "ts": n})
        wait_until(lambda: len(rec.on(f"fills/{name}")) == 3, timeout=15, what="3 fills")
        publish(mosquitto_port, f"quotes/{sid}", {sid: 3.45})  # the README's example
        publish(mosquitto_port, "quotes", {sid: 3.45})  # execution reads it; the bridge does not
        publish(mosquitto_port, f"quotes/{sid}", {"sid": sid, "price": 130.2, "ts": 5})
        wait_until(lambda: len(rec.on(f"fills/{name}")) == 4, timeout=15, what="the 4th fill")
        # An order published by hand after the outliers fills at the market, not at 3.45.
        order = {"id": uuid.uuid4().hex, "algo": name, "sid": sid, "side": "buy", "qty": 1,
                 "type": "market", "ts": 6.0}  # fmt: skip
        rec.publish(f"orders/{name}", json.dumps(order))
        wait_until(lambda: len(rec.on(f"fills/{name}")) == 5, timeout=15, what="the 5th fill")
        letters = wait_until(
            lambda: (
                len(suspects := [d for d in rec.json_on("deadletter/#") if sid in d["reason"]]) >= 3
                and suspects
            ),
            timeout=10,
            what="the suspect quotes dead-lettered",
        )
        state = algo_state(rpc)
    assert sorted(d["by"] for d in letters) == sorted([name, paper, paper])  # execution saw both
    assert all(f"{sid} at 3.45 is 97" in d["reason"] for d in letters)
    assert all(f["price"] > 100 for f in rec.json_on(f"fills/{name}"))
    assert state["quotes"] == 4  # the algorithm never saw 3.45


def test_on_an_empty_stack_the_readme_quote_trades(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, sid = unique("fresh"), unique("E").upper()
    start_execution(procs, mqtt_url)
    rpc = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0")
    with recorder(mosquitto_port, f"fills/{name}", f"status/bridge/{name}") as rec:
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        publish(mosquitto_port, f"quotes/{sid}", {sid.lower(): 3.45})
        [fill] = wait_until(lambda: rec.json_on(f"fills/{name}"), timeout=15, what="a fill")
    assert fill["sid"] == sid and fill["price"] == pytest.approx(3.45)
