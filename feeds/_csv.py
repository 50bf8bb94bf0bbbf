"""Reading recorded quotes from CSV, row by row, with line numbers for every error."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from broker import Quote, parse_quote
from tickbus.errors import ConfigError, QuoteRejected

REQUIRED_COLUMNS = ("ts", "sid", "price")
OPTIONAL_COLUMNS = ("bid", "ask", "size")


@dataclass(frozen=True)
class CsvRow:
    """One data row: its quote, or why it was rejected (exactly one is set)."""

    line: int
    text: str
    quote: Quote | None = None
    reason: str | None = None


def read_csv_quotes(path: Path) -> Iterator[CsvRow]:
    """Check the header of `path` now, then yield every data row as a quote or a rejection.

    A bad row never stops the replay: it comes back with ``reason`` set
    (e.g. ``"line 7: price must be > 0"``). Empty optional cells are treated
    as absent; blank lines are skipped.

    Raises:
        ConfigError: At once, when the file cannot be read, or its header lacks
            a required column or has an unknown one.
    """
    try:
        handle = path.open(newline="", encoding="utf-8")
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        _check_header(path, header)
    except ConfigError:
        handle.close()
        raise
    return _rows(handle, reader, header)


def _rows(handle: TextIO, reader: Any, header: list[str]) -> Iterator[CsvRow]:
    with handle:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield CsvRow(reader.line_num, "", reason=f"line {reader.line_num}: {exc}")
                continue
            if any(cell.strip() for cell in row):
                yield _parse_row(reader.line_num, header, row)


def _check_header(path: Path, header: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        raise ConfigError(
            f"{path}: the header must have columns {','.join(REQUIRED_COLUMNS)} "
            f"(optional {','.join(OPTIONAL_COLUMNS)}); "
            f"missing: {missing or 'none'}, unknown: {unknown or 'none'}"
        )


def _parse_row(line: int, header: list[str], row: list[str]) -> CsvRow:
    text = ",".join(row)
    if len(row) != len(header):
        return CsvRow(line, text, reason=f"line {line}: {len(row)} cells, header has {len(header)}")
    fields: dict[str, object] = {}
    for column, cell in zip(header, row, strict=True):
        cell = cell.strip()
        if column == "sid":
            fields[column] = cell
        elif cell:
            try:
                fields[column] = float(cell)
            except ValueError:
                return CsvRow(line, text, reason=f"line {line}: {column} {cell!r} is not a number")
    try:
        return CsvRow(line, text, quote=parse_quote(fields))
    except QuoteRejected as exc:
        return CsvRow(line, text, reason=f"line {line}: {exc.reason}")
