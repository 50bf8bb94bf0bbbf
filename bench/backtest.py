"""The backtester against backtrader and NautilusTrader, the same workload side by side.

Run ``.venv/bin/python bench/backtest.py --json`` after ``pip install -e
'.[bench]'`` (backtrader and NautilusTrader from PyPI); ``--quick`` for a
smaller run. It prints one JSON object on stdout; progress goes to stderr.

The workload (`bench._ma_cross`): a moving-average cross on the cent mid,
fast 10 and slow 30, kept incrementally in plain Python; buy 10 shares on an
upward cross when flat, sell the position on a downward cross. The data: a
random walk in cents per symbol, quotes round robin across symbols, written
as a tickbus dataset (not timed). Every engine runs in a child process of its
own (``_backtest_harness.py``), so its peak RSS is its own, and is timed as
its users time it:

* ``tickbus``: the real ``tickbus backtest`` CLI (the loop's own time from
  ``run.json``: reading the Parquet dataset included; no price band);
* ``backtrader`` 1.9: ``bt.feeds.PandasData`` per symbol (the mids as bars),
  ``Cerebro(stdstats=False)``, ``cerebro.run()`` timed;
* ``nautilus``: NautilusTrader with ``QuoteTick`` s built by
  ``QuoteTickDataWrangler`` (not timed), ``TestInstrumentProvider.equity``
  instruments (cent prices), a Python ``Strategy``,
  ``LoggingConfig(bypass_logging=True)``, ``engine.run()`` timed and
  ``run_analysis=False``;
* ``bare``: the same rule as a bare Python loop over lists, the floor.

Runs: one symbol x `Settings.quotes_1sym`, 100 symbols x
`Settings.per_symbol_100` (backtrader on `Settings.backtrader_100sym_per_symbol`
of them: it walks every feed at every step), and tickbus alone on
`Settings.quotes_10m` quotes. `Settings.rounds` rounds; medians.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._backtest_harness import build_dataset  # noqa: E402
from bench._main import package_versions, run_bench  # noqa: E402

HARNESS = HERE / "_backtest_harness.py"
ENGINES = ("tickbus", "backtrader", "nautilus", "bare")


@dataclass(frozen=True)
class Settings:
    """What to run."""

    quotes_1sym: int = 200_000
    per_symbol_100: int = 20_000
    backtrader_100sym_per_symbol: int = 500
    quotes_10m: int = 10_000_000
    rounds: int = 3


QUICK = Settings(
    quotes_1sym=50_000,
    per_symbol_100=2_000,
    backtrader_100sym_per_symbol=200,
    quotes_10m=1_000_000,
    rounds=1,
)


def log(message: str) -> None:
    print(f"bench/backtest.py: {message}", file=sys.stderr, flush=True)


def run_engine(engine: str, data: Path, work: Path) -> dict[str, Any]:
    """One run of `engine` on `data` in a child process; its figures."""
    out = work / f"out-{engine}-{time.monotonic_ns()}"
    done = subprocess.run(
        [sys.executable, str(HARNESS), engine, "--data", str(data), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"  {engine}: {figures}")
    return figures


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median quotes/s, and that median."""
    ranked = sorted(runs, key=lambda run: run["quotes_per_s"])
    middle = dict(ranked[len(ranked) // 2])
    middle["quotes_per_s_runs"] = [run["quotes_per_s"] for run in runs]
    middle["quotes_per_s"] = statistics.median(run["quotes_per_s"] for run in runs)
    return middle


def measure(settings: Settings, work: Path) -> dict[str, Any]:
    datasets = {
        "1sym": (work / "one", 1, settings.quotes_1sym),
        "100sym": (work / "hundred", 100, settings.per_symbol_100),
        "100sym_backtrader": (work / "hundred-bt", 100, settings.backtrader_100sym_per_symbol),
        "10m": (work / "ten-million", 10, settings.quotes_10m // 10),
    }
    for name, (path, symbols, per_symbol) in datasets.items():
        log(f"building {name}: {symbols} x {per_symbol:,} quotes (not timed)")
        build_dataset(path, symbols, per_symbol)
    plan = (
        [("1sym", engine, datasets["1sym"][0]) for engine in ENGINES]
        + [("100sym", engine, datasets["100sym"][0]) for engine in ("tickbus", "nautilus", "bare")]
        + [("100sym", "backtrader", datasets["100sym_backtrader"][0])]
    )
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_index in range(settings.rounds):
        for workload, engine, path in plan:
            log(f"round {round_index + 1}/{settings.rounds}: {engine} on {workload}")
            runs.setdefault((workload, engine), []).append(run_engine(engine, path, work))
    log("tickbus on the 10,000,000-quote dataset")
    runs[("10m", "tickbus")] = [run_engine("tickbus", datasets["10m"][0], work)]
    return {f"{engine}_{workload}": median_run(r) for (workload, engine), r in runs.items()}


def report(results: dict[str, Any], settings: Settings) -> dict[str, Any]:
    def rate(key: str) -> float:
        return float(results[key]["quotes_per_s"])

    out: dict[str, Any] = {
        "tickbus_quotes_per_s": rate("tickbus_1sym"),
        "backtrader_bars_per_s": rate("backtrader_1sym"),
        "nautilus_quotes_per_s": rate("nautilus_1sym"),
        "bare_loop_quotes_per_s": rate("bare_1sym"),
        "tickbus_quotes_per_s_100sym": rate("tickbus_100sym"),
        "backtrader_bars_per_s_100sym": rate("backtrader_100sym"),
        "nautilus_quotes_per_s_100sym": rate("nautilus_100sym"),
        "bare_loop_quotes_per_s_100sym": rate("bare_100sym"),
        "tickbus_10m_quotes_per_s": rate("tickbus_10m"),
        "tickbus_10m_peak_rss_mb": results["tickbus_10m"]["peak_rss_mb"],
    }
    for suffix in ("", "_100sym"):
        workload = "100sym" if suffix else "1sym"
        tick = rate(f"tickbus_{workload}")
        out[f"tickbus_vs_backtrader{suffix}"] = round(tick / rate(f"backtrader_{workload}"), 2)
        out[f"tickbus_vs_nautilus{suffix}"] = round(tick / rate(f"nautilus_{workload}"), 2)
        out[f"tickbus_vs_bare_loop{suffix}"] = round(tick / rate(f"bare_{workload}"), 4)
    for key, run in results.items():
        engine, _, workload = key.partition("_")
        for field in ("orders", "fills", "peak_rss_mb"):
            out[f"{field}_{engine}_{workload}"] = run[field]
    out["targets"] = {
        "tickbus_vs_backtrader >= 30": out["tickbus_vs_backtrader"] >= 30,
        "tickbus_vs_nautilus >= 10": out["tickbus_vs_nautilus"] >= 10,
        "tickbus_10m_peak_rss_mb <= 500": out["tickbus_10m_peak_rss_mb"] <= 500,
    }
    out["settings"] = {
        "workload": "MA cross on the cent mid, fast 10, slow 30, incremental; buy 10 on an "
        "upward cross when flat, sell the position on a downward cross",
        "tickbus": "tickbus backtest CLI; loop time from run.json (reading Parquet included); "
        "--max-price-jump-pct 0; no fees or slippage",
        "backtrader": "bt.feeds.PandasData per symbol (open=high=low=close=mid), "
        "Cerebro(stdstats=False), cerebro.run() timed; market orders fill at the next bar",
        "nautilus": "QuoteTickDataWrangler (not timed), TestInstrumentProvider.equity, Python "
        "Strategy, LoggingConfig(bypass_logging=True), engine.run(run_analysis=False) timed",
        "backtrader_100sym_note": f"backtrader walks all 100 feeds at every step, so its "
        f"100-symbol run uses {settings.backtrader_100sym_per_symbol:,} quotes per symbol, "
        f"not {settings.per_symbol_100:,}",
        **asdict(settings),
    }
    out["runs"] = results
    out["machine"] = {
        "python": sys.version.split()[0],
        "versions": package_versions(
            "tickbus", "backtrader", "nautilus_trader", "pyarrow", "pandas", "numpy"
        ),
    }
    return out


def main() -> None:
    def run(quick: bool, work: Path) -> dict[str, Any]:
        settings = QUICK if quick else Settings()
        return report(measure(settings, work), settings)

    run_bench("backtest", __doc__, run)


if __name__ == "__main__":
    main()
