"""Roles for ``bench/backtest.py``: one engine's run each, in a child process of its own.

Usage: ``python bench/_backtest_harness.py ROLE --data DIR [--out DIR]``, one of
`ROLES`. A role loads what its engine needs (not timed), runs the engine
(timed as its users time it) and prints one JSON line: ``quotes``,
``elapsed_s``, ``quotes_per_s``, ``orders``, ``fills`` and ``peak_rss_mb``
(the process's VmHWM; for ``tickbus``, the CLI child's peak RSS).

Also `build_dataset`: the benchmark's data, written as a tickbus dataset.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._ma_cross import Crossing  # noqa: E402

FAST, SLOW, LOT = 10, 30, 10
START_S = 1_767_623_400  # 2026-01-05T14:30:00Z, a Monday's open
STEP_NS = 10_000_000  # 10 ms between quotes
CHUNK = 1_000_000


def build_dataset(directory: Path, symbols: int, per_symbol: int, seed: int = 1) -> int:
    """Write ``symbols x per_symbol`` quotes, round robin, as a tape; returns the count.

    Each symbol's mid is a random walk in whole cents; bid and ask are a cent
    either side, so every engine sees the same cent mids.
    """
    import tape

    draw = np.random.default_rng(seed)
    total = symbols * per_symbol
    names = np.array([f"S{i:03d}" for i in range(symbols)], dtype=object)
    cents = (10_000 + 100 * np.arange(symbols)).astype(np.int64)
    for first in range(0, total, CHUNK):
        count = min(CHUNK, total - first)
        index = np.arange(first, first + count)
        which = index % symbols
        steps = draw.integers(-1, 2, size=count)
        mids = np.empty(count, dtype=np.float64)
        for sid in range(symbols):  # the walk of each symbol continues across chunks
            mine = which == sid
            walk = cents[sid] + np.cumsum(steps[mine])
            cents[sid] = walk[-1] if len(walk) else cents[sid]
            mids[mine] = np.maximum(walk, 100) / 100
        ts = START_S * 1_000_000_000 + index * STEP_NS
        table = pa.table(
            {
                "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                "arrival": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                "sid": pa.array(names[which], pa.string()),
                "price": np.round(mids, 2),
                "bid": np.round(mids - 0.01, 2),
                "ask": np.round(mids + 0.01, 2),
                "size": np.full(count, 100.0),
                "topic": pa.array(["quotes/" + n for n in names[which]], pa.string()),
            },
            schema=tape.SCHEMA,
        )
        tape.write_rows(table, directory, writer=f"bench{first // CHUNK:04d}")
    return total


def _mids(directory: Path) -> tuple[list[str], list[float], list[int]]:
    """Symbols, cent mids and ts (ns) of every quote, in time order (not timed)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(directory, format="parquet", partitioning="hive").to_table(
        columns=["ts", "sid", "bid", "ask"]
    )
    table = table.take(pc.sort_indices(table, [("ts", "ascending")]))
    mids = np.round((table["bid"].to_numpy() + table["ask"].to_numpy()) / 2, 2)
    ts = table["ts"].cast(pa.int64()).to_numpy()
    return table["sid"].to_pylist(), mids.tolist(), ts.tolist()


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_bare(directory: Path, _out: Path) -> dict[str, Any]:
    """The rule as a bare Python loop over lists: the floor of any Python engine."""
    sids, mids, _ts = _mids(directory)
    crossings: dict[str, Crossing] = {}
    held: dict[str, int] = {}
    orders = 0
    began = time.perf_counter()
    for sid, mid in zip(sids, mids, strict=True):
        crossing = crossings.get(sid)
        if crossing is None:
            crossing = crossings[sid] = Crossing(FAST, SLOW)
        signal = crossing.update(mid)
        if signal == "up" and not held.get(sid):
            held[sid] = LOT
            orders += 1
        elif signal == "down" and held.get(sid):
            held[sid] = 0
            orders += 1
    elapsed = time.perf_counter() - began
    return _figures(len(sids), elapsed, orders, orders)


def run_tickbus(directory: Path, out: Path) -> dict[str, Any]:
    """``tickbus backtest`` as a user runs it; the time is its own loop (run.json)."""
    command = [
        sys.executable, "-m", "tickbus", "backtest", "bench._ma_cross:BenchMovingAverageCross",
        "--data", str(directory), "--out", str(out),
        "--param", f"fast={FAST}", "--param", f"slow={SLOW}", "--param", "starting_cash=1e9",
        "--max-price-jump-pct", "0",
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"tickbus backtest failed: {done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    run = json.loads((out / "run.json").read_text())
    figures = _figures(summary["quotes"], run["elapsed_s"], summary["orders"], summary["fills"])
    figures["wall_s"] = round(wall, 3)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return figures


def run_backtrader(directory: Path, _out: Path) -> dict[str, Any]:
    """backtrader 1.9 as its users run it: PandasData feeds, Cerebro(stdstats=False)."""
    import backtrader as bt
    import pandas as pd

    sids, mids, ts = _mids(directory)
    frame = pd.DataFrame({"sid": sids, "mid": mids, "ts": pd.to_datetime(ts)})
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(1e9)
    for sid, rows in frame.groupby("sid", sort=True):
        bars = pd.DataFrame(
            {"open": rows["mid"].to_numpy(), "high": rows["mid"].to_numpy(),
             "low": rows["mid"].to_numpy(), "close": rows["mid"].to_numpy(),
             "volume": 100.0, "openinterest": 0.0},
            index=pd.DatetimeIndex(rows["ts"].to_numpy()),
        )  # fmt: skip
        cerebro.adddata(bt.feeds.PandasData(dataname=bars), name=str(sid))
    counts = {"orders": 0, "fills": 0}

    class Cross(bt.Strategy):
        def __init__(self) -> None:
            self.crossings = {data._name: Crossing(FAST, SLOW) for data in self.datas}

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                counts["fills"] += 1

        def next(self) -> None:
            for data in self.datas:
                if len(data) == 0 or data.datetime[0] != self.datetime[0]:
                    continue  # no new bar of this symbol at this step
                signal = self.crossings[data._name].update(data.close[0])
                position = self.getposition(data).size
                if signal == "up" and position == 0:
                    self.buy(data=data, size=LOT)
                    counts["orders"] += 1
                elif signal == "down" and position > 0:
                    self.close(data=data)
                    counts["orders"] += 1

    cerebro.addstrategy(Cross)
    began = time.perf_counter()
    cerebro.run()
    elapsed = time.perf_counter() - began
    return _figures(len(sids), elapsed, counts["orders"], counts["fills"])


def run_nautilus(directory: Path, _out: Path) -> dict[str, Any]:
    """NautilusTrader as its users run it: QuoteTicks, a Python Strategy, run_analysis=False."""
    from bench._nautilus import run

    sids, mids, ts = _mids(directory)
    elapsed, orders, fills = run(sids, mids, ts, fast=FAST, slow=SLOW, lot=LOT)
    return _figures(len(sids), elapsed, orders, fills)


def _figures(quotes: int, elapsed: float, orders: int, fills: int) -> dict[str, Any]:
    return {
        "quotes": quotes,
        "elapsed_s": round(elapsed, 3),
        "quotes_per_s": round(quotes / elapsed) if elapsed else None,
        "orders": orders,
        "fills": fills,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


ROLES: dict[str, Callable[[Path, Path], dict[str, Any]]] = {
    "bare": run_bare,
    "tickbus": run_tickbus,
    "backtrader": run_backtrader,
    "nautilus": run_nautilus,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=list(ROLES))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/tickbus-bench-out"))
    args = parser.parse_args()
    print(json.dumps(ROLES[args.role](args.data, args.out)), flush=True)


if __name__ == "__main__":
    main()
