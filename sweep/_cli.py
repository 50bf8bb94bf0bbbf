"""`tickbus sweep`: a grid of backtests on Ray, resumable, with a table, a heatmap and a report."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from backtest import BacktestConfig, backtest_options, config_from_options
from sweep._grid import check_params, load_grid_file, merge_grids, param_sets, parse_grid_option
from sweep._jobs import FAILED, LOST, Job, data_identity, plan_jobs
from sweep._ranking import RANKABLE
from tape import dataset_symbols
from tickbus.errors import ConfigError, TapeError

SWEEP_FILE = "sweep.json"
"""What the sweep in a directory is: its algorithm, grid, jobs; checked on resume."""

INTERRUPTED_EXIT = 130


@click.command(name="sweep")
@click.argument("spec", metavar="MODULE:CLASS")
@backtest_options("sweep over")
@click.option(
    "--grid",
    "grids",
    multiple=True,
    metavar="NAME=VALUES",
    help="A param to sweep, repeatable: a list (fast=5,10,20) or a range START:STOP:STEP "
    "with STOP included (fast=5:50:5). Every combination is one job.",
)
@click.option(
    "--grid-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="More params to sweep from a .json or .toml file: each name maps to a list of "
    "values or to a string as --grid takes.",
)
@click.option(
    "--per-symbol",
    is_flag=True,
    help="One job per symbol (of --symbols, or of the whole dataset) for each param set, "
    "instead of one job over all the symbols.",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="An existing Ray cluster: auto (the one started on this machine by ray start), "
    "HOST:PORT or ray://HOST:PORT. The algorithm's module is shipped to its workers; "
    "tickbus must be installed there. [default: start Ray here for this sweep, on every core]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="CPUs of the Ray started here (without --address) [default: every core].",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Times a job whose worker (process or node) died is run again.",
)
@click.option(
    "--data-resource",
    default=None,
    metavar="NAME",
    help="Run each job on a node advertising this Ray custom resource (ray start "
    "--resources '{\"NAME\": 1}'), where its data lives; {symbol} in NAME is each "
    "job's symbol, with --per-symbol (tickdata:{symbol}).",
)
@click.option(
    "--rank-by",
    type=click.Choice(RANKABLE),
    default="sharpe",
    show_default=True,
    help="The metric the table of best jobs, the heatmap and the report are ordered by.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the best jobs to print.",
)
@click.option(
    "--heatmap",
    default=None,
    metavar="X,Y",
    help="The two swept params of the heatmap [default: the first two swept params "
    "with more than one value].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where results go; run the same command again to resume an interrupted sweep "
    "[default: sweeps/CLASS-ID, the same for the same command and data].",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the grid and list the jobs (id, params, symbols) without running any.",
)
def sweep_command(
    spec: str,
    grids: tuple[str, ...],
    grid_file: Path | None,
    per_symbol: bool,
    address: str | None,
    workers: int | None,
    max_retries: int,
    data_resource: str | None,
    rank_by: str,
    top: int,
    heatmap: str | None,
    out: Path | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Backtest MODULE:CLASS over a grid of params (and symbols) on Ray, one job per backtest.

    Each job is exactly one `tickbus backtest` run (the same options: --data,
    the selection, the rules), run in a Ray worker; its results are those of
    that backtest alone. Without --address, Ray starts on this machine and
    stops at the end. Every param set is first checked by the algorithm's
    initialize here, so a typo fails at once, not in the morning.

    A job whose worker dies is run again (--max-retries); a job whose
    algorithm raises is recorded as failed and the sweep goes on. Each job's
    result is written the moment it finishes: after Ctrl-C or a crash, the
    same command runs only the jobs that are missing.

    Writes to --out: jobs/<id>/ (each job's backtest and report), results.parquet
    and results.csv (one row per job: params, symbols, every tearsheet metric,
    run time, attempts, status), heatmap.png and report.html. Exits 1 when a
    job was lost (run the command again), 130 when interrupted.

    For example: tickbus sweep algos.examples:MovingAverageCross --data data/sample
    --grid fast=5,10,20 --grid slow=30,60,120 --per-symbol
    """
    base = config_from_options(spec, options)
    base = dataclasses.replace(base, data=base.data.resolve())  # workers have other cwds
    try:
        grid = merge_grids(parse_grid_option(grids), load_grid_file(grid_file) if grid_file else {})
        sets = param_sets(grid, base.params)
        swept = sorted(grid)
        axes = _heatmap_axes(heatmap, grid)
        check_params(spec, sets, swept)
        groups = _symbol_groups(base, per_symbol=per_symbol)
        jobs = plan_jobs(
            base, sets, groups, data_id=data_identity(base.data), resource=data_resource
        )
    except (ConfigError, TapeError) as exc:
        raise click.UsageError(exc.reason) from exc
    out = out if out is not None else Path("sweeps") / f"{spec.rpartition(':')[2]}-{_key(jobs)}"
    if dry_run:
        _list_jobs(jobs, swept, out)
        return
    from sweep import _report, _results  # pandas and matplotlib: only when a sweep runs

    _claim(out, spec, grid, jobs)
    results = _results.load_results(out / _results.JOBS_DIR, jobs)
    todo = [job for job in jobs if job.id not in results]
    click.echo(
        f"{len(jobs):,} jobs ({len(sets):,} param sets x {len(groups):,} symbol groups): "
        f"{len(results):,} already finished, {len(todo):,} to run; results in {out}",
        err=True,
    )
    interrupted = False
    if todo:
        interrupted = _run(todo, out, results, address, workers, max_retries)
    table = _results.results_table(jobs, results, swept)
    _results.write_tables(out, table)
    png = _report.heatmap_png(table, rank_by, *axes) if axes else None
    if png is not None:
        (out / _report.HEATMAP_FILE).write_bytes(png)
    statuses = table.column("status").to_pylist()
    note = _note(statuses, len(jobs), interrupted)
    _report.write_report(
        out, table, title=f"Sweep of {spec} on {base.data.name}", metric=rank_by,
        params=swept, heatmap=png, note=note,
    )  # fmt: skip
    click.echo(_report.format_ranking(table, rank_by, swept, top=top))
    click.echo(f"\nresults: {out / _results.TABLE_PARQUET}  (report: {out / _report.REPORT_FILE})")
    if note:
        click.echo(note, err=True)
    if interrupted:
        sys.exit(INTERRUPTED_EXIT)
    if LOST in statuses:
        sys.exit(1)


def _run(
    todo: Sequence[Job],
    out: Path,
    results: dict[str, dict[str, Any]],
    address: str | None,
    workers: int | None,
    max_retries: int,
) -> bool:
    """Run `todo` on Ray with a progress bar, adding each result; True when interrupted."""
    from tqdm import tqdm

    from sweep._ray import Finished, JobRunner, check_resources, connect
    from sweep._results import JOBS_DIR, write_result

    jobs_dir = (out / JOBS_DIR).resolve()
    counts = {FAILED: 0, LOST: 0, "retried": 0, "quotes": 0}
    stop = threading.Event()
    began = time.monotonic()
    try:
        with connect(address, todo[0].config.spec, num_cpus=workers) as cpus:
            check_resources(todo)
            runner = JobRunner(jobs_dir, max_retries=max_retries, in_flight=2 * cpus)
            with (
                _stop_on_signals(stop),  # after ray.init, which sets a SIGTERM handler of its own
                tqdm(total=len(todo), unit=" jobs", disable=not sys.stderr.isatty()) as bar,
            ):
                for event in runner.run(todo, stop=stop):
                    if not isinstance(event, Finished):
                        counts["retried"] += 1
                    else:
                        result = event.result
                        if result["status"] != LOST:
                            write_result(jobs_dir, event.job, result)
                        results[event.job.id] = result
                        counts[result["status"]] = counts.get(result["status"], 0) + 1
                        counts["quotes"] += int(result.get("quotes") or 0)
                        bar.update(1)
                    rate = counts["quotes"] / max(time.monotonic() - began, 1e-9)
                    bar.set_postfix_str(
                        f"failed {counts[FAILED]}, retried {counts['retried']}, "
                        f"lost {counts[LOST]}, {rate:,.0f} quotes/s"
                    )
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    return stop.is_set()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` (the runner ends between two waits), then as before.

    A flag, not an exception: a KeyboardInterrupt raised inside Ray's calls
    can leave its core worker inconsistent.
    """
    previous = {
        signum: signal.signal(signum, lambda _signum, _frame: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _note(statuses: list[str], total: int, interrupted: bool) -> str | None:
    """What a person must know about the sweep's end, or None when every job finished."""
    lost, failed = statuses.count(LOST), statuses.count(FAILED)
    missing = total - len(statuses) + lost
    parts = []
    if interrupted:
        parts.append(f"interrupted: {total - missing:,} of {total:,} jobs finished")
    elif lost:
        parts.append(f"{lost:,} jobs lost their workers more often than --max-retries")
    if failed:
        parts.append(f"{failed:,} jobs failed (their error is in the table)")
    if missing:
        parts.append("run the same command again to run the missing jobs")
    return "; ".join(parts) or None


def _list_jobs(jobs: Sequence[Job], swept: Sequence[str], out: Path) -> None:
    """``--dry-run``: one line per job (id, swept params, symbols), then where results would go."""
    for job in jobs:
        params = " ".join(f"{name}={job.params[name]}" for name in swept)
        symbols = "all symbols" if job.symbols is None else ",".join(job.symbols)
        click.echo(f"{job.id}  {params}  {symbols}")
    click.echo(f"{len(jobs):,} jobs; results would go to {out}", err=True)


def _symbol_groups(base: BacktestConfig, *, per_symbol: bool) -> list[tuple[str, ...] | None]:
    """The symbols of each job: one group, or one symbol each (`per_symbol`)."""
    if not per_symbol:
        return [base.symbols]
    held = dataset_symbols(base.data)
    if base.symbols is None:
        return [(symbol,) for symbol in held]
    absent = [s for s in base.symbols if s not in held]
    if absent:
        raise ConfigError(f"{base.data} holds no quotes of {', '.join(absent)}")
    return [(symbol,) for symbol in base.symbols]


def _heatmap_axes(text: str | None, grid: dict[str, list[Any]]) -> tuple[str, str] | None:
    """The heatmap's two params (see ``--heatmap``), or None when fewer than two vary."""
    if text is None:
        varying = [name for name in sorted(grid) if len(grid[name]) > 1]
        return (varying[0], varying[1]) if len(varying) >= 2 else None
    names = [part.strip() for part in text.split(",")]
    if len(names) != 2 or any(name not in grid for name in names) or names[0] == names[1]:
        raise ConfigError(f"--heatmap {text}: give two different swept params, e.g. X,Y")
    return names[0], names[1]


def _key(jobs: Sequence[Job]) -> str:
    """A short key of the sweep: the same jobs, the same key."""
    return hashlib.sha256("".join(job.id for job in jobs).encode()).hexdigest()[:8]


def _claim(out: Path, spec: str, grid: dict[str, list[Any]], jobs: Sequence[Job]) -> None:
    """Write ``sweep.json`` in `out`, or check that the one there is this sweep's.

    Raises:
        click.BadParameter: `out` holds another sweep's results, or other files.
    """
    described = {"algorithm": spec, "grid": grid, "jobs": len(jobs), "key": _key(jobs)}
    path = out / SWEEP_FILE
    if path.exists():
        try:
            key = json.loads(path.read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            key = None
        if key != described["key"]:
            raise click.BadParameter(
                f"{out} holds another sweep (other params, symbols, rules or data): "
                "give another --out",
                param_hint="--out",
            )
        return
    if out.exists() and any(out.iterdir()):
        raise click.BadParameter(f"{out} is not empty and holds no sweep", param_hint="--out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(described, indent=2, default=str) + "\n")
