"""``summary.json``, ``run.json``, the report and the plot: a backtest's files besides its tables.

A public module of its own, not imported by `backtest`: it brings pandas,
empyrical and matplotlib, which every ``tickbus`` command would otherwise pay
for at start. Here too: `run_backtest` (a whole backtest into a directory, as
``tickbus backtest`` and each job of a sweep run it), `tearsheet` and
`format_summary` (the metrics), `plot_png`, `write_report`, and the report's
`REPORT_STYLE` and `png_bytes` for other reports.

``summary.json`` is a function of the inputs alone (algorithm, params, data,
rules): two runs of the same backtest write the same bytes. What depends on
the machine (wall time, quotes per second, when it ran) goes to ``run.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from backtest._engine import Backtest, BacktestConfig, Outcome
from backtest._metric_keys import METRIC_KEYS
from backtest._metrics import format_summary, tearsheet
from backtest._report import REPORT_FILE, REPORT_STYLE, plot_png, png_bytes, write_report
from backtest._results import EQUITY_FILE, FILLS_FILE, ResultWriter
from tape import iso_from_ns, ns_from_time

SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
PLOT_FILE = "equity.png"


@dataclass(frozen=True)
class Finished:
    """A backtest written to its directory.

    Attributes:
        outcome: What the run did (`Outcome`).
        summary: ``summary.json``'s contents.
        run: ``run.json``'s contents.
    """

    outcome: Outcome
    summary: dict[str, Any]
    run: dict[str, Any]


def run_backtest(
    config: BacktestConfig,
    directory: Path,
    *,
    progress: Callable[[int], object] | None = None,
    argv: Sequence[str] = (),
) -> Finished:
    """Check `config`, run it, and write every result file into `directory`.

    Args:
        config: The backtest.
        directory: Where the results go (created; nothing is written there
            when the checks fail).
        progress: Called with the number of quotes read, batch by batch.
        argv: The command line, kept in ``run.json``.

    Raises:
        ConfigError: The algorithm cannot be loaded or started with its params.
        TapeError: The selection is empty or a file cannot be read (before the run).
    """
    prepared = Backtest(config)
    with ResultWriter(directory) as writer:
        outcome = prepared.run(writer, progress=progress)
    summary = write_summary(directory, config, outcome)
    return Finished(outcome, summary, write_run(directory, outcome, list(argv)))


def write_summary(directory: Path, config: BacktestConfig, outcome: Outcome) -> dict[str, Any]:
    """Write ``summary.json``, ``equity.png`` and ``report.html`` from the finished tables.

    Returns:
        The summary, as written.
    """
    equity = pq.read_table(directory / EQUITY_FILE)
    fills = pq.read_table(directory / FILLS_FILE)
    metrics = tearsheet(equity, fills, starting_cash=outcome.starting_cash)
    state = outcome.state
    summary = {
        "algorithm": config.spec,
        "params": dict(config.params),
        "data": str(config.data.resolve()),
        "symbols": None if config.symbols is None else list(config.symbols),
        "start": _time_text(config.start),
        "end": _time_text(config.end),
        "rules": {
            "slippage_bps": config.slippage_bps,
            "fee_bps": config.fee_bps,
            "quote_timeout_s": config.quote_timeout,
            "max_price_jump_pct": config.max_price_jump_pct,
            "risk_limits": {k: v for k, v in asdict(config.risk).items() if v is not None},
        },
        "complete": outcome.incomplete is None,
        "incomplete": outcome.incomplete,
        "quotes": outcome.quotes,
        "suspect_quotes": outcome.suspect,
        "bad_rows_skipped": outcome.bad_rows if config.skip_bad else 0,
        "first_bad_row": outcome.first_bad_row,
        "orders": outcome.orders,
        "orders_refused": outcome.refused,
        "execution_rejections": outcome.rejected,
        "fills": outcome.fills,
        "fill_errors": outcome.fill_errors,
        "algo_errors": state.get("errors", 0),
        "last_algo_error": state.get("last_error"),
        "portfolio": state.get("portfolio"),
        "metrics": metrics,
    }
    (directory / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    plot = plot_png(equity)  # drawn once: the file and the report's copy
    (directory / PLOT_FILE).write_bytes(plot)
    write_report(
        directory,
        title=f"{config.spec} on {config.data.name}",
        metrics=metrics,
        params=config.params,
        plot=plot,
        fills=fills,
        incomplete=outcome.incomplete,
    )
    return summary


def write_run(directory: Path, outcome: Outcome, argv: list[str]) -> dict[str, Any]:
    """Write ``run.json``: when, how long, how fast, and the command line."""
    run = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(outcome.elapsed_s, 3),
        "quotes_per_s": round(outcome.quotes / outcome.elapsed_s) if outcome.elapsed_s else None,
        "argv": argv,
    }
    (directory / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    return run


def _time_text(value: object) -> str | None:
    return None if value is None else iso_from_ns(ns_from_time(value))  # type: ignore[arg-type]


__all__ = [
    "METRIC_KEYS",
    "PLOT_FILE",
    "REPORT_FILE",
    "REPORT_STYLE",
    "RUN_FILE",
    "SUMMARY_FILE",
    "Finished",
    "format_summary",
    "plot_png",
    "png_bytes",
    "run_backtest",
    "tearsheet",
    "write_report",
    "write_run",
    "write_summary",
]
