"""Portfolio state that lasts: --state-dir across a kill -9, and swap --carry-portfolio."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from typing import Any

import pytest

from portfolio import Portfolio, SnapshotFile
from tests.support import (
    Processes,
    free_port,
    recorder,
    serve_algorithm,
    start_bridge,
    start_execution,
    swap,
    unique,
    wait_online,
    wait_until,
)
from tickbus.errors import ConfigError

# -- the snapshot file ---------------------------------------------------------------


def test_snapshot_file_round_trips_and_starts_empty(tmp_path: Path) -> None:
    store = SnapshotFile(tmp_path / "new" / "dir")
    assert store.load() is None
    portfolio = Portfolio(cash=1_000)
    portfolio.apply_fill(sid="GOOG", side="buy", qty=3, price=10.0, fee=0.5)
    store.save(portfolio.snapshot())
    assert Portfolio.restore(store.load() or {}).snapshot() == portfolio.snapshot()
    assert [p.name for p in store.path.parent.iterdir()] == ["portfolio.json"], "no temp left"


def test_a_damaged_snapshot_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    store = SnapshotFile(tmp_path)
    store.path.write_text('{"cash": 1')
    with pytest.raises(ConfigError, match=r"portfolio.json is not JSON"):
        store.load()
    assert store.path.read_text() == '{"cash": 1'


# -- real processes ------------------------------------------------------------------


def publish_quotes(rec: Any, sid: str, prices: list[float]) -> None:
    for n, price in enumerate(prices, start=1):
        rec.publish(f"quotes/{sid}", json.dumps({"sid": sid, "price": price, "ts": n}))


def snapshot_when_done(algo_state: Any, rpc: str, quotes: int) -> dict[str, Any]:
    """The portfolio snapshot once `quotes` quotes are handled and every order is filled."""
    state = wait_until(
        lambda: (s := algo_state(rpc))["quotes"] == quotes and s["fills"] == s["orders"] and s,
        timeout=15,
        what=f"{quotes} quotes handled and their orders filled",
    )
    return dict(state["portfolio_snapshot"])


def test_a_server_killed_with_sigkill_restarts_with_the_same_book(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("state"), unique("S").upper()
    addr = f"tcp://127.0.0.1:{free_port()}"
    state_dir = str(tmp_path / "book")
    serve = ["algo", "serve", "algos.examples:RandomAlgo", "--addr", addr]
    serve += ["--state-dir", state_dir, "--param", "threshold=0", "--param", "seed=1"]
    start_execution(procs, mqtt_url, "--fee-bps", "5")
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        server = procs.tickbus(*serve, name="algo1")
        wait_until(lambda: "serving" in server.log(), timeout=15, what="server")
        start_bridge(procs, mqtt_url, addr, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        publish_quotes(rec, sid, [10.0, 10.5, 9.8, 10.2, 10.4])
        before = snapshot_when_done(algo_state, addr, 5)
        assert before["positions"], "RandomAlgo with threshold 0 bought"
        server.signal(signal.SIGKILL)
        server.wait(timeout=5)
        restarted = procs.tickbus(*serve, name="algo2")
        wait_until(lambda: "serving" in restarted.log(), timeout=15, what="restarted server")

        def restored() -> dict[str, Any] | None:
            try:
                return dict(algo_state(addr)["portfolio_snapshot"])
            except Exception:  # not initialised again by the bridge yet
                return None

        after = wait_until(restored, timeout=20, what="the bridge re-initialised the server")
    assert after == before
    assert json.loads((tmp_path / "book" / "portfolio.json").read_text()) == before


def test_swap_with_carry_portfolio_keeps_cash_and_positions_while_a_feed_runs(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("carry"), unique("Y").upper()
    start_execution(procs, mqtt_url)
    with recorder(mosquitto_port, f"status/bridge/{name}", f"fills/{name}") as rec:
        old = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0", "seed=2")
        new = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, old, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        feed = procs.tickbus(
            "feed", "synthetic", "--mqtt", mqtt_url, "--symbols", sid, "--rate", "100",
            "--count", "300", "--name", unique("carryfeed"), name="feed",
        )  # fmt: skip
        wait_until(lambda: algo_state(old)["fills"] >= 3, timeout=15, what="old algo trading")
        swapped = swap(mqtt_url, name, new, "--carry-portfolio")
        assert swapped.returncode == 0, swapped.stderr
        handed_over = json.loads(swapped.stdout[swapped.stdout.index("{") :])["finalize"]
        assert feed.alive(), "the swap happened while quotes were flowing"
        # The new algorithm never trades, but the orders it carried may still fill.
        book = handed_over["portfolio_snapshot"]
        state = wait_until(
            lambda: (s := algo_state(new))["fills"] == len(book["open_orders"]) and s,
            timeout=15,
            what="the carried open orders filled on the new algorithm",
        )
        late = [f for f in rec.json_on(f"fills/{name}") if f["order_id"] in book["open_orders"]]
    carried = state["portfolio_snapshot"]
    assert book["positions"], "the old algorithm held positions"
    assert carried["open_orders"] == {}
    assert carried["cash"] == pytest.approx(
        book["cash"] - math.fsum(f["qty"] * f["price"] + f["fee"] for f in late), abs=1e-9
    )
    assert carried["realised_pnl"] == book["realised_pnl"]
    assert carried["positions"][sid]["qty"] == book["positions"][sid]["qty"] + sum(
        f["qty"] for f in late
    )
