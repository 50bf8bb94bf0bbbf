"""A dataset's files and what their footers say, for every reader of the tape.

A dataset's data files are the ``*.parquet`` files under its root whose path
has no part starting with ``_`` or ``.`` (journals, temporary files): the
files pyarrow, pandas, polars and DuckDB read. A data file is a tape file when
its ``ts``, ``sid`` and ``price`` columns have the types of `SCHEMA`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tape._schema import DATA_SUFFIX, DAY_NS, PARTITION, SCHEMA
from tickbus.errors import TapeError

REQUIRED_COLUMNS = ("ts", "sid", "price")
OPTIONAL_COLUMNS = ("bid", "ask", "size")

_SID_BATCH_ROWS = 65_536


def data_files(directory: Path) -> tuple[list[Path], list[Path]]:
    """The data files under `directory` in path order, and the other visible files.

    Raises:
        TapeError: `directory` does not exist or is not a directory, or it
            holds no data files; the message names it.
    """
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise TapeError(directory, f"{directory} {what}")
    data: list[Path] = []
    other: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        for name in names:
            if not name.startswith(("_", ".")):
                path = Path(root) / name
                (data if name.endswith(DATA_SUFFIX) else other).append(path)
    if not data:
        raise TapeError(
            directory,
            f"{directory} holds no data files (*{DATA_SUFFIX}, outside names starting "
            "with _ or .): it is not a dataset",
        )
    return sorted(data), sorted(other)


def partition_day(path: Path) -> int | None:
    """The first ns of the ``date=`` partition `path` is in, or None outside one."""
    key, _, value = path.parent.name.partition("=")
    if key != PARTITION:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return (day - date(1970, 1, 1)).days * DAY_NS


def unreadable(path: Path, exc: Exception) -> TapeError:
    """The error for a data file that pyarrow cannot read; it names the file."""
    return TapeError(path, f"cannot read {path} as a tape file: {exc}")


def check_schema(path: Path, schema: pa.Schema) -> tuple[str, ...]:
    """The quote columns a tape file holds, in `SCHEMA` order.

    Raises:
        TapeError: A required column is missing or of another type; names `path`.
    """
    for name in REQUIRED_COLUMNS:
        index = schema.get_field_index(name)
        if index < 0 or not schema.field(index).type.equals(SCHEMA.field(name).type):
            wanted = SCHEMA.field(name)
            raise TapeError(path, f"{path} is not a tape file: it needs column {wanted}")
    return (*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in schema.names))


def group_ts_range(parquet: pq.ParquetFile, index: int) -> tuple[int, int] | None:
    """A row group's first and last ``ts`` in ns: its statistics, or a scan without them.

    None for a row group without rows.
    """
    group = parquet.metadata.row_group(index)
    if group.num_rows == 0:
        return None
    stats = group.column(parquet.schema_arrow.get_field_index("ts")).statistics
    if stats is not None and stats.has_min_max:
        return int(stats.min_raw), int(stats.max_raw)
    ts = parquet.read_row_group(index, columns=["ts"]).column("ts").cast(pa.int64())
    bounds = pc.min_max(ts)
    return int(bounds["min"].as_py()), int(bounds["max"].as_py())


@dataclass(frozen=True)
class FileFacts:
    """What one data file holds: its quote columns, rows, ``ts`` ranges and rows per symbol.

    Attributes:
        columns: Its quote columns (`check_schema`).
        rows: Its rows.
        groups: ``(row group index, first ns, last ns)`` of each row group with rows.
        symbols: Rows per symbol; empty unless asked for (a scan of ``sid``).
    """

    columns: tuple[str, ...]
    rows: int
    groups: tuple[tuple[int, int, int], ...]
    symbols: Counter[str]

    @property
    def first_ns(self) -> int | None:
        """The earliest ``ts``, None without rows."""
        return min((g[1] for g in self.groups), default=None)

    @property
    def last_ns(self) -> int | None:
        """The latest ``ts``, None without rows."""
        return max((g[2] for g in self.groups), default=None)


def scan_file(path: Path, *, count_symbols: bool = False) -> FileFacts:
    """Read `path`'s footer (and its ``sid`` column when `count_symbols`).

    Raises:
        TapeError: It is not a Parquet file, or not a tape file; names `path`.
    """
    try:
        with pq.ParquetFile(path) as parquet:
            columns = check_schema(path, parquet.schema_arrow)
            ranges = [group_ts_range(parquet, i) for i in range(parquet.num_row_groups)]
            symbols: Counter[str] = Counter()
            if count_symbols:
                for batch in parquet.iter_batches(batch_size=_SID_BATCH_ROWS, columns=["sid"]):
                    counts = pc.value_counts(batch.column(0))
                    names = counts.field("values").to_pylist()
                    rows_of = counts.field("counts").to_pylist()
                    symbols.update(dict(zip(names, rows_of, strict=True)))
            rows = parquet.metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(path, exc) from exc
    groups = tuple((i, *r) for i, r in enumerate(ranges) if r is not None)
    return FileFacts(columns=columns, rows=rows, groups=groups, symbols=symbols)
