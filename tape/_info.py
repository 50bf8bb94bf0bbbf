"""What a dataset holds: symbols, rows, time range, partitions, files, bytes; its size as JSON.

`dataset_info` reads the Parquet footers (row counts, the ``ts`` statistics)
and only the columns it needs: ``sid`` for the rows per symbol, and the quote
columns for the size of the same quotes as JSON (`broker.encode_quote_json`),
exactly up to `EXACT_JSON_ROWS` rows and from an evenly spaced sample beyond.

Its data files are those of `tape._catalog.data_files`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from broker import encode_quote_json
from tape._catalog import check_schema, data_files, scan_file, unreadable
from tape._schema import PARTITION, quote_from_row
from tape._time import iso_from_ns
from tickbus.errors import TapeError

EXACT_JSON_ROWS = 1_000_000
"""Up to this many rows, the JSON size is computed over every quote."""

JSON_SAMPLE_ROWS = 100_000
"""Beyond `EXACT_JSON_ROWS`, about this many evenly spaced quotes are encoded."""

_BATCH_ROWS = 65_536


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What a dataset holds, and what it costs on disk.

    Attributes:
        directory: The dataset's root.
        files: Data files (``*.parquet``, hidden ones left out).
        bytes: Their total size on disk.
        rows: Quotes in them.
        symbols: ``(symbol, rows)`` pairs, sorted by symbol.
        partitions: The ``date=`` partitions holding data files (``YYYY-MM-DD``), sorted.
        first_ns: The earliest ``ts`` (ns since the epoch, UTC).
        last_ns: The latest ``ts``.
        json_bytes: The size of the same quotes as compact JSON
            (`encode_quote_json`, one object per quote); estimated when
            `json_exact` is false.
        json_exact: True when every quote was encoded; false when `json_bytes`
            is `json_sampled` quotes' mean size times `rows`.
        json_sampled: How many quotes were encoded.
        ignored: Other visible files under the root (not ``*.parquet``):
            not data, but pyarrow's dataset reader would trip on them.
    """

    directory: Path
    files: int
    bytes: int
    rows: int
    symbols: tuple[tuple[str, int], ...]
    partitions: tuple[str, ...]
    first_ns: int
    last_ns: int
    json_bytes: int
    json_exact: bool
    json_sampled: int
    ignored: tuple[Path, ...] = ()

    @property
    def bytes_per_quote(self) -> float:
        """Bytes on disk per quote."""
        return self.bytes / self.rows

    @property
    def json_ratio(self) -> float:
        """Bytes on disk over the bytes of the same quotes as JSON (0.1: ten times smaller)."""
        return self.bytes / self.json_bytes

    @property
    def first(self) -> str:
        """`first_ns` as ISO 8601 UTC."""
        return iso_from_ns(self.first_ns)

    @property
    def last(self) -> str:
        """`last_ns` as ISO 8601 UTC."""
        return iso_from_ns(self.last_ns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: every field (times as ISO text and ns) and the derived figures."""
        return {
            "directory": str(self.directory),
            "rows": self.rows,
            "symbols": dict(self.symbols),
            "first": self.first,
            "last": self.last,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "partitions": list(self.partitions),
            "files": self.files,
            "bytes": self.bytes,
            "bytes_per_quote": round(self.bytes_per_quote, 3),
            "json_bytes": self.json_bytes,
            "json_ratio": round(self.json_ratio, 4),
            "json_exact": self.json_exact,
            "json_sampled": self.json_sampled,
            "ignored": [str(p) for p in self.ignored],
        }


def dataset_info(
    directory: Path,
    *,
    exact_rows: int = EXACT_JSON_ROWS,
    sample_rows: int = JSON_SAMPLE_ROWS,
) -> DatasetInfo:
    """Describe the dataset at `directory`, reading footers and the columns needed.

    Args:
        directory: The dataset's root.
        exact_rows: Encode every quote as JSON up to this many rows.
        sample_rows: Beyond `exact_rows`, encode every k-th quote (files in
            path order, rows in file order), k chosen so about this many are
            encoded: the same dataset always gives the same estimate.

    Raises:
        TapeError: `directory` does not exist, holds no data files or no
            rows, or a file cannot be read as a tape file (its ``path`` is
            that file, and the reason names it).
    """
    files, ignored = data_files(directory)
    facts = [scan_file(path, count_symbols=True) for path in files]
    rows = sum(f.rows for f in facts)
    firsts = [f.first_ns for f in facts if f.first_ns is not None]
    lasts = [f.last_ns for f in facts if f.last_ns is not None]
    if rows == 0 or not firsts or not lasts:
        raise TapeError(directory, f"{directory}: its {len(files)} data files hold no quotes")
    symbols: Counter[str] = Counter()
    for fact in facts:
        symbols.update(fact.symbols)
    step = 1 if rows <= exact_rows else math.ceil(rows / sample_rows)
    json_total, sampled = _json_bytes(files, step)
    return DatasetInfo(
        directory=directory,
        files=len(files),
        bytes=sum(path.stat().st_size for path in files),
        rows=rows,
        symbols=tuple(sorted(symbols.items())),
        partitions=_partitions(directory, files),
        first_ns=min(firsts),
        last_ns=max(lasts),
        json_bytes=json_total if step == 1 else round(json_total / sampled * rows),
        json_exact=step == 1,
        json_sampled=sampled,
        ignored=tuple(ignored),
    )


def dataset_symbols(directory: Path) -> dict[str, int]:
    """The symbols of the dataset at `directory` and their rows, sorted by symbol.

    Raises:
        TapeError: As `dataset_info`, but for an empty dataset: that gives ``{}``.
    """
    files, _ = data_files(directory)
    symbols: Counter[str] = Counter()
    for path in files:
        symbols.update(scan_file(path, count_symbols=True).symbols)
    return dict(sorted(symbols.items()))


def _partitions(directory: Path, files: list[Path]) -> tuple[str, ...]:
    dates = set()
    for path in files:
        for part in path.relative_to(directory).parent.parts:
            key, equals, value = part.partition("=")
            if equals and key == PARTITION:
                dates.add(value)
    return tuple(sorted(dates))


def _json_bytes(files: list[Path], step: int) -> tuple[int, int]:
    """The JSON size of every `step`-th quote (counted over all files), and how many."""
    total = 0
    encoded = 0
    offset = 0
    for path in files:
        for batch in _quote_batches(path):
            picks = np.arange((-offset) % step, batch.num_rows, step)
            offset += batch.num_rows
            if picks.size == 0:
                continue
            for row in _rows(batch.take(pa.array(picks))):
                total += len(encode_quote_json(quote_from_row(row)))
            encoded += int(picks.size)
    return total, encoded


def _quote_batches(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        with pq.ParquetFile(path) as parquet:
            columns = check_schema(path, parquet.schema_arrow)
            yield from parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(path, exc) from exc


def _rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The batch's rows as dicts, ``ts`` as int ns (what `quote_from_row` reads exactly)."""
    table = pa.Table.from_batches([batch])
    index = table.schema.get_field_index("ts")
    table = table.set_column(index, "ts", table.column(index).cast(pa.int64()))
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows
