"""`tickbus backtest`: one algorithm over a recorded dataset, in this process."""

from __future__ import annotations

import functools
import operator
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import pyarrow as pa

from algos.server import params_option
from backtest._engine import BacktestConfig
from broker import price_band_option
from execution import pricing_options
from risk import risk_limit_options
from tape import TimeLike, ns_from_time, selection_options
from tickbus.errors import ConfigError, TapeError

if TYPE_CHECKING:
    from tqdm import tqdm

F = TypeVar("F", bound=Callable[..., Any])


def backtest_options(verb: str) -> Callable[[F], F]:
    """The options that make a `BacktestConfig` (see `config_from_options`), shared with sweeps.

    ``--data``, the selection (``--symbols``, ``--start``, ``--end``),
    ``--param``, execution's pricing, the risk limits, the price band,
    ``--equity-every`` and ``--skip-bad``.

    Args:
        verb: What the command does with the quotes, for the help ("backtest on").
    """
    options: list[Callable[[F], F]] = [
        click.option(
            "--data",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="The dataset: a directory that tickbus record, data import or data sample wrote.",
        ),
        selection_options(verb),
        params_option("Param for the algorithm's initialize, as the bridge gives it live."),
        pricing_options,
        risk_limit_options,
        price_band_option("the backtest, as the bridge and paper execution live,"),
        click.option(
            "--equity-every",
            type=click.FloatRange(min=0, min_open=True),
            default=60.0,
            show_default=True,
            help="Seconds of data time between two samples of the equity curve.",
        ),
        click.option(
            "--skip-bad",
            is_flag=True,
            help="Skip rows that break the quote contract (counted in summary.json) instead "
            "of stopping at the first.",
        ),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def config_from_options(spec: str, options: dict[str, Any]) -> BacktestConfig:
    """`spec` with the values of `backtest_options`, popped from `options`, as a config."""
    return BacktestConfig(
        spec=spec,
        data=options.pop("data"),
        symbols=options.pop("symbols"),
        start=options.pop("start"),
        end=options.pop("end"),
        params=options.pop("params"),
        slippage_bps=options.pop("slippage_bps"),
        fee_bps=options.pop("fee_bps"),
        quote_timeout=options.pop("quote_timeout"),
        risk=options.pop("risk"),
        max_price_jump_pct=options.pop("max_price_jump_pct"),
        equity_every_s=options.pop("equity_every"),
        skip_bad=options.pop("skip_bad"),
    )


@click.command(name="backtest")
@click.argument("spec", metavar="MODULE:CLASS")
@backtest_options("backtest on")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the results go; it must not hold a backtest already "
    "[default: backtests/CLASS-YYYYMMDD-HHMMSS].",
)
def backtest_command(spec: str, out: Path | None, **options: Any) -> None:
    """Backtest an algorithm on a recorded dataset, with the live rules, in one process.

    Quotes stream from --data in time order across symbols; each goes through
    MODULE:CLASS (the class `tickbus algo serve` serves) as a bridge would
    deliver it, every order through the bridge's risk gate (--max-*,
    --risk-limits) and paper execution's matching (--slippage-bps,
    --fee-bps), and every fill or rejection back to the algorithm before the
    next quote. The same inputs give byte-identical orders.parquet,
    fills.parquet and summary.json; algorithms that draw random numbers take
    a seed param.

    Writes to --out: orders.parquet, fills.parquet, equity.parquet,
    summary.json (counts, the final portfolio and the tearsheet metrics),
    run.json (timing), equity.png and report.html (opens offline). Exits 1
    when the run stopped early (the algorithm raised, or a row breaks the
    quote contract): the results so far are written and marked incomplete.

    For example: tickbus backtest algos.examples:MovingAverageCross --data
    data/sample --param fast=10 --param slow=30 --fee-bps 1
    """
    config = config_from_options(spec, options)
    from backtest import summary  # pandas and matplotlib: only when a backtest runs

    directory = _out_directory(out, spec)
    try:
        with _progress_bar(config) as bar:
            finished = summary.run_backtest(config, directory, progress=bar.update, argv=sys.argv)
    except (ConfigError, TapeError) as exc:
        raise click.ClickException(exc.reason) from exc
    outcome, run = finished.outcome, finished.run
    click.echo(summary.format_summary(finished.summary["metrics"]))
    click.echo(
        f"\n{outcome.quotes:,} quotes, {outcome.orders:,} orders, {outcome.fills:,} fills "
        f"in {run['elapsed_s']:.1f} s ({run['quotes_per_s'] or 0:,} quotes/s)"
    )
    click.echo(f"results: {directory}  (report: {directory / summary.REPORT_FILE})")
    if outcome.incomplete is not None:
        click.echo(f"INCOMPLETE: {outcome.incomplete}", err=True)
        sys.exit(1)


def _out_directory(out: Path | None, spec: str) -> Path:
    """`out`, or a fresh directory under ``backtests/``; never one holding results already."""
    if out is None:
        name = spec.rpartition(":")[2] or "backtest"
        out = Path("backtests") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise click.BadParameter(
            f"{out} is not empty: give another --out (a backtest never overwrites results)",
            param_hint="--out",
        )
    return out


def _progress_bar(config: BacktestConfig) -> tqdm[NoReturn]:
    """A progress bar (quotes/s and ETA) on a terminal; a silent one otherwise."""
    from tqdm import tqdm

    shown = sys.stderr.isatty()
    total = _selected_rows(config) if shown else None
    return tqdm(total=total, unit=" quotes", unit_scale=True, disable=not shown)


def _selected_rows(config: BacktestConfig) -> int | None:
    """How many rows the selection holds, for the progress bar's ETA (pyarrow.dataset's count)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds  # half a second to import: only on a terminal

    ts = pc.field("ts")
    terms = []
    if config.symbols is not None:
        terms.append(pc.field("sid").isin(list(config.symbols)))
    if config.start is not None:
        terms.append(ts >= _stamp(config.start))
    if config.end is not None:
        terms.append(ts < _stamp(config.end))
    try:
        dataset = ds.dataset(config.data, format="parquet", partitioning="hive")
        condition = functools.reduce(operator.and_, terms) if terms else None
        return int(dataset.count_rows(filter=condition))
    except (OSError, ValueError, pa.ArrowException):
        return None  # the run itself names what is wrong


def _stamp(bound: TimeLike) -> pa.Scalar:
    return pa.scalar(ns_from_time(bound), type=pa.timestamp("ns", tz="UTC"))
