"""A CSV of quotes (what ``tickbus feed csv`` replays) into a dataset, through `write_rows`.

The CSV is read with `feeds.read_csv_quotes`, so a row is good or bad by the
same rules as in a replay; an import also needs each row's ``ts`` (a replay
would stamp a missing one on arrival, a recording cannot) and a ``ts`` that
nanoseconds since the epoch can hold (before 2262). Each quote becomes one row
with ``arrival`` = its ``ts`` and ``topic`` = ``quotes/<SID>``.

Memory stays bounded: quotes become Arrow tables `BATCH_ROWS` at a time, and
at most `CHUNK_ROWS` rows are held before they are written.

Bad rows, without ``skip_bad``: nothing is written, ever. A file of up to
`CHUNK_ROWS` good rows is read once, held and written only when all of it is
known to be good; a longer one is validated in a first pass (only counting)
and written in a second. With ``skip_bad`` the file is read once, written
chunk by chunk, and the bad rows are counted and reported.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from broker import Quote, quote_topic
from tape._files import write_rows
from tape._schema import ns_from_seconds, table_from_quotes
from tickbus.errors import ConfigError, TapeError

if TYPE_CHECKING:
    from feeds import CsvRow

CHUNK_ROWS = 1_000_000
"""Rows written per `write_rows` call (one file per date partition in it), and held at most."""

BATCH_ROWS = 65_536
"""Quotes turned into one Arrow table at a time."""

SHOWN_BAD = 5
"""Bad rows whose reasons an `ImportReport` or an error keeps."""

_WRITER = re.compile(r"[A-Za-z0-9_-]{1,64}")

_MAX_TS = (2**63 - 1) // 1_000_000_000
"""The last epoch second that int64 nanoseconds hold (2262-04-11)."""


@dataclass(frozen=True, kw_only=True)
class ImportConfig:
    """What `import_csv` imports, and where.

    Attributes:
        csv_path: The CSV: a header with ``ts,sid,price`` and optionally
            ``bid,ask,size``; ``ts`` in epoch seconds.
        directory: The dataset to add the quotes to; created if missing.
            Files already there stay: importing twice adds the rows twice.
        skip_bad: Import the good rows and count the bad ones, instead of
            refusing the whole file (default False).
        writer: The writer's word in the new file names: letters, digits,
            ``_`` and ``-`` (default ``import``).
        chunk_rows: Rows held and written at a time (default `CHUNK_ROWS`).
    """

    csv_path: Path
    directory: Path
    skip_bad: bool = False
    writer: str = "import"
    chunk_rows: int = CHUNK_ROWS

    def __post_init__(self) -> None:
        if not _WRITER.fullmatch(self.writer):
            raise ConfigError(
                f"writer name {self.writer!r} must be letters, digits, _ and - (it goes in "
                "the file names)"
            )
        if self.chunk_rows < 1:
            raise ConfigError(f"chunk_rows must be at least 1, got {self.chunk_rows}")


@dataclass(frozen=True, kw_only=True)
class ImportReport:
    """What `import_csv` wrote.

    Attributes:
        csv_path: The CSV imported.
        directory: The dataset.
        rows: Quotes written.
        files: The new files, sorted.
        symbols: The symbols imported, sorted.
        first_ns: The earliest ``ts`` imported (ns since the epoch, UTC);
            None when no row was.
        last_ns: The latest ``ts`` imported, or None.
        bad_rows: Rows skipped (only with ``skip_bad``).
        bad_reasons: The first `SHOWN_BAD` of them, as ``"line N: why"``.
    """

    csv_path: Path
    directory: Path
    rows: int
    files: tuple[Path, ...]
    symbols: tuple[str, ...]
    first_ns: int | None
    last_ns: int | None
    bad_rows: int = 0
    bad_reasons: tuple[str, ...] = ()


@dataclass
class _Tally:
    """Running totals of the rows seen: counts, symbols, ts range, bad rows."""

    rows: int = 0
    symbols: set[str] = field(default_factory=set)
    first_ns: int | None = None
    last_ns: int | None = None
    bad: int = 0
    reasons: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def add_table(self, table: pa.Table) -> None:
        bounds = pc.min_max(table.column("ts").cast(pa.int64()))
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
        self.last_ns = high if self.last_ns is None else max(self.last_ns, high)
        self.symbols.update(pc.unique(table.column("sid")).to_pylist())
        self.rows += table.num_rows

    def add_bad(self, reason: str) -> None:
        self.bad += 1
        if len(self.reasons) < SHOWN_BAD:
            self.reasons.append(reason)


def import_csv(config: ImportConfig) -> ImportReport:
    """Import the quotes of `config.csv_path` into the dataset at `config.directory`.

    Raises:
        ConfigError: The CSV cannot be read, or its header is wrong (before
            anything is written).
        TapeError: A row is bad and ``skip_bad`` is off: the reason names the
            CSV, the count and the lines of the first bad rows, and says that
            nothing was written. Or a file could not be written: the reason
            says which files already were.
    """
    ts_column = _ts_column(config.csv_path)
    if config.skip_bad:
        tally = _Tally()
        _write_all(_tables(_good(config, ts_column, tally), _batch(config)), config, tally)
        return _report(config, tally)
    held, complete = _validate(config, ts_column)
    tally = _Tally()
    tables: Iterable[pa.Table] = (
        held if complete else _tables(_good(config, ts_column, tally), _batch(config))
    )
    _write_all(tables, config, tally)
    if tally.bad:  # only when the file changed between the two passes
        raise _bad_error(config, tally, written=tally.files)
    return _report(config, tally)


def _ts_column(path: Path) -> int:
    """The position of ``ts`` in the header; -1 when there is none (`read_csv_quotes` says why)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = [column.strip() for column in next(csv.reader(handle), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return -1
    return header.index("ts") if "ts" in header else -1


def _validate(config: ImportConfig, ts_column: int) -> tuple[list[pa.Table], bool]:
    """Read the whole file: its tables when it fits in one chunk (and is complete), else none.

    Raises:
        TapeError: Any row is bad; nothing has been written.
    """
    tally = _Tally()
    held: list[pa.Table] = []
    holding = True
    for table in _tables(_good(config, ts_column, tally), _batch(config)):
        if holding and tally.bad == 0 and tally.rows + table.num_rows <= config.chunk_rows:
            held.append(table)
        else:
            holding, held = False, []
        tally.rows += table.num_rows
    if tally.bad:
        raise _bad_error(config, tally, written=[])
    return held, holding


def _good(config: ImportConfig, ts_column: int, tally: _Tally) -> Iterator[Quote]:
    """The good rows' quotes; the bad ones go to `tally`."""
    # Imported here, not at the top: feeds brings the publishers (MQTT, ring,
    # metrics), which `import tape` should not load, and a feed that replays a
    # dataset will import tape.
    from feeds import read_csv_quotes

    for row in read_csv_quotes(config.csv_path):
        reason = _why_bad(row, ts_column)
        if reason is None and row.quote is not None:
            yield row.quote
        else:
            tally.add_bad(reason or f"line {row.line}: not a quote")


def _why_bad(row: CsvRow, ts_column: int) -> str | None:
    if row.reason is not None:
        return row.reason
    # A valid row's cells hold no commas (numbers, and a symbol that cannot have one).
    if not row.text.split(",")[ts_column].strip():
        return f"line {row.line}: ts is missing (an import needs each quote's time)"
    if row.quote is not None and row.quote["ts"] > _MAX_TS:
        return f"line {row.line}: ts {row.quote['ts']!r} is after 2262, too late for ns times"
    return None


def _tables(quotes: Iterator[Quote], size: int) -> Iterator[pa.Table]:
    """Rows of `SCHEMA`, `size` quotes at a time."""
    batch: list[Quote] = []
    for quote in quotes:
        batch.append(quote)
        if len(batch) == size:
            yield _table(batch)
            batch = []
    if batch:
        yield _table(batch)


def _batch(config: ImportConfig) -> int:
    return min(BATCH_ROWS, config.chunk_rows)


def _table(quotes: list[Quote]) -> pa.Table:
    return table_from_quotes(
        quotes,
        arrival_ns=[ns_from_seconds(q["ts"]) for q in quotes],
        topics=[quote_topic(q["sid"]) for q in quotes],
    )


def _write_all(tables: Iterable[pa.Table], config: ImportConfig, tally: _Tally) -> None:
    """Write `tables` in chunks of up to ``chunk_rows`` rows, counting into `tally`."""
    chunk: list[pa.Table] = []
    held = 0
    for table in tables:
        chunk.append(table)
        held += table.num_rows
        if held >= config.chunk_rows:
            _write_chunk(chunk, config, tally)
            chunk, held = [], 0
    if chunk:
        _write_chunk(chunk, config, tally)


def _write_chunk(chunk: list[pa.Table], config: ImportConfig, tally: _Tally) -> None:
    table = pa.concat_tables(chunk)
    try:
        tally.files.extend(write_rows(table, config.directory, writer=config.writer))
    except OSError as exc:
        raise TapeError(
            config.directory,
            f"cannot write into {config.directory}: {exc}; "
            f"{_written(tally.files, tally.rows)} before that",
        ) from exc
    tally.add_table(table)


def _written(files: list[Path], rows: int) -> str:
    if not files:
        return "nothing was written"
    names = ", ".join(str(path) for path in sorted(files))
    return f"{rows} rows were written in {len(files)} files ({names})"


def _bad_error(config: ImportConfig, tally: _Tally, *, written: list[Path]) -> TapeError:
    rows = "1 bad row" if tally.bad == 1 else f"{tally.bad} bad rows"
    more = ", ..." if tally.bad > len(tally.reasons) else ""
    return TapeError(
        config.csv_path,
        f"{config.csv_path}: {rows}: {'; '.join(tally.reasons)}{more}; "
        f"{_written(written, tally.rows)} (fix the rows, or --skip-bad imports the others)",
    )


def _report(config: ImportConfig, tally: _Tally) -> ImportReport:
    return ImportReport(
        csv_path=config.csv_path,
        directory=config.directory,
        rows=tally.rows,
        files=tuple(sorted(tally.files)),
        symbols=tuple(sorted(tally.symbols)),
        first_ns=tally.first_ns,
        last_ns=tally.last_ns,
        bad_rows=tally.bad,
        bad_reasons=tuple(tally.reasons),
    )
