"""`tickbus data info`, `tickbus data import` and `tickbus data sample`."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path

import click

from broker import parse_symbols
from tape._import import ImportConfig, ImportReport, import_csv
from tape._info import DatasetInfo, dataset_info
from tape._sample import DEFAULT_START, DEFAULT_SYMBOLS, MAX_RATE, SampleConfig, write_sample
from tape._time import iso_from_ns
from tickbus.errors import ConfigError

_SHOWN_FILES = 3


@click.group(name="data")
def data_group() -> None:
    """Inspect, import and generate tape datasets.

    A dataset is a directory of Parquet files (zstd), one folder per UTC date
    (date=YYYY-MM-DD), one row per quote: what the recorder writes and the
    backtester reads. pandas, polars, DuckDB and pyarrow read it as is.
    """


@data_group.command(name="info")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info_command(directory: Path, as_json: bool) -> None:
    """Show what the dataset in DIRECTORY holds.

    Symbols with their row counts, the time range (UTC), the date partitions,
    the files and their bytes on disk, bytes per quote, and the size against
    the same quotes as JSON on the bus: exact up to 1,000,000 quotes,
    estimated from an evenly spaced sample of about 100,000 beyond (the output
    says which). Reads the Parquet footers and the columns it needs only.
    """
    try:
        info = dataset_info(directory)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        click.echo(_describe(info))


@data_group.command(name="import")
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The dataset to add the quotes to (created if missing; files there stay).",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Import the good rows and report the bad ones, instead of refusing the file.",
)
@click.option(
    "--name",
    "writer",
    default="import",
    show_default=True,
    help="The writer's name in the new files' names (letters, digits, _ and -).",
)
def import_command(csv_path: Path, directory: Path, skip_bad: bool, writer: str) -> None:
    """Import FILE.csv (what `tickbus feed csv` replays) into a dataset.

    The CSV has a header with ts,sid,price and optionally bid,ask,size; ts is
    in epoch seconds, and every row needs one. A row that is not a valid
    quote stops the import with its line number, and nothing is written;
    with --skip-bad the other rows are imported and the bad ones counted.
    Each quote's arrival time is its ts, its topic quotes/<SID>. Importing the
    same file twice adds its rows twice.
    """
    try:
        report = import_csv(
            ImportConfig(csv_path=csv_path, directory=directory, skip_bad=skip_bad, writer=writer)
        )
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    click.echo(_imported(report))


@data_group.command(name="sample")
@click.option(
    "--out",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new directory for the dataset (it must not hold one yet).",
)
@click.option(
    "--symbols",
    default=",".join(DEFAULT_SYMBOLS),
    show_default=True,
    help="Comma-separated symbols. AAPL, AMZN, GOOG, META, MSFT, NVDA and TSLA get "
    "realistic price levels and volatilities; others get figures drawn from their name.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Trading days (Monday to Friday).",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=DEFAULT_START.isoformat(),
    show_default=True,
    help="The first day (YYYY-MM-DD); a weekend starts on the next Monday.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True, max=MAX_RATE),
    default=1.0,
    show_default=True,
    help="Quotes per second per symbol during the session.",
)
def sample_command(
    directory: Path, symbols: str, days: int, start: datetime, seed: int, rate: float
) -> None:
    """Write a generated dataset to backtest with before owning data.

    Quotes only in trading hours, 14:30-21:00 UTC (New York's session in
    winter), Monday to Friday, so there are gaps over nights and weekends. Each
    symbol walks a geometric random walk with its own price level and
    volatility, more volatile at the open and the close; bid and ask in cents
    around it (0 < bid < price < ask), wider at the open; sizes in round lots.
    Overnight moves stay within 5 %, inside the 10 % price band of the bridge
    and paper execution. The same options and seed give byte-identical files.
    The defaults (3 symbols, 5 days, 1 quote per second) give 351,000 quotes.
    """
    began = time.monotonic()
    try:
        config = SampleConfig(
            directory=directory,
            symbols=parse_symbols(symbols),
            days=days,
            start=start.date(),
            seed=seed,
            rate=rate,
        )
        report = write_sample(config)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    seconds = time.monotonic() - began
    click.echo(
        f"wrote {report.rows:,} quotes of {len(report.symbols)} symbols "
        f"({', '.join(report.symbols)}) over {len(report.days)} trading days "
        f"({_days(report.days)}) into {report.directory} in {seconds:.1f} s\n"
        f"time     {iso_from_ns(report.first_ns)} .. {iso_from_ns(report.last_ns)}\n"
        f"files    {_files(report.files, report.directory)}"
    )


def _describe(info: DatasetInfo) -> str:
    symbols = "  ".join(f"{sid} {rows:,}" for sid, rows in info.symbols)
    how = (
        f"exact, all {info.json_sampled:,} quotes"
        if info.json_exact
        else f"estimated from {info.json_sampled:,} evenly spaced quotes"
    )
    lines = [
        f"dataset   {info.directory}",
        f"rows      {info.rows:,}",
        f"symbols   {len(info.symbols)}: {symbols}",
        f"time      {info.first} .. {info.last}",
        f"dates     {len(info.partitions)}: {_day_range(info.partitions)}",
        f"files     {info.files:,}, {info.bytes:,} bytes on disk",
        f"per quote {info.bytes_per_quote:.1f} bytes; as JSON {info.json_bytes / info.rows:.1f} "
        f"bytes ({how})",
        f"vs JSON   {info.json_ratio:.3f} of the JSON size ({1 / info.json_ratio:.1f}x smaller)",
    ]
    if info.ignored:
        ignored = _files(info.ignored, info.directory)
        lines.append(f"ignored   files that are not *.parquet: {ignored}")
    return "\n".join(lines)


def _imported(report: ImportReport) -> str:
    lines = [
        f"imported {report.rows:,} quotes from {report.csv_path} into {report.directory}",
        f"symbols  {len(report.symbols)}: {', '.join(report.symbols)}",
    ]
    if report.first_ns is not None and report.last_ns is not None:
        lines.append(f"time     {iso_from_ns(report.first_ns)} .. {iso_from_ns(report.last_ns)}")
    lines.append(f"files    {_files(report.files, report.directory)}")
    if report.bad_rows:
        more = ", ..." if report.bad_rows > len(report.bad_reasons) else ""
        lines.append(
            f"skipped  {report.bad_rows:,} bad rows: {'; '.join(report.bad_reasons)}{more}"
        )
    return "\n".join(lines)


def _files(files: tuple[Path, ...], directory: Path) -> str:
    """How many files, and the first few, relative to the dataset's root."""
    if not files:
        return "none"
    shown = ", ".join(str(path.relative_to(directory)) for path in files[:_SHOWN_FILES])
    return f"{len(files)} ({shown}{', ...' if len(files) > _SHOWN_FILES else ''})"


def _days(days: tuple[date, ...]) -> str:
    return _day_range(tuple(day.isoformat() for day in days))


def _day_range(days: tuple[str, ...]) -> str:
    if not days:
        return "none"
    return days[0] if len(days) == 1 else f"{days[0]} .. {days[-1]}"
