"""A backtest's orders, fills and equity curve as Parquet files, written as the run goes.

Files in the output directory (zstd Parquet, timestamps in ns UTC):

* ``orders.parquet``: every order the algorithm placed, in order: ``ts`` (of
  the quote it was placed on), ``id``, ``sid``, ``side``, ``qty``, ``type``,
  ``limit_price`` (null for market orders) and ``refused`` (the screen's
  reason, null for an order let through to execution);
* ``fills.parquet``: every fill booked, in order: ``ts``, ``id``,
  ``order_id``, ``sid``, ``side``, ``qty``, ``price``, ``fee``,
  ``realised_pnl`` (what the fill changed the portfolio's realised PnL by,
  its fee included) and ``closes`` (it reduced a position);
* ``equity.parquet``: ``ts``, ``equity``, ``cash`` and ``exposure`` (the
  market value of the positions), sampled by the engine.

Rows are buffered and written in row groups of `GROUP_ROWS`, so memory does
not grow with the run. The same rows give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from execution import Fill
from tape import COMPRESSION, ns_from_seconds

GROUP_ROWS = 65_536
"""Rows buffered per file before they are written as one row group."""

_TS = pa.timestamp("ns", tz="UTC")

ORDERS_SCHEMA = pa.schema(
    [
        ("ts", _TS),
        ("id", pa.string()),
        ("sid", pa.string()),
        ("side", pa.string()),
        ("qty", pa.int64()),
        ("type", pa.string()),
        ("limit_price", pa.float64()),
        ("refused", pa.string()),
    ]
)
FILLS_SCHEMA = pa.schema(
    [
        ("ts", _TS),
        ("id", pa.string()),
        ("order_id", pa.string()),
        ("sid", pa.string()),
        ("side", pa.string()),
        ("qty", pa.int64()),
        ("price", pa.float64()),
        ("fee", pa.float64()),
        ("realised_pnl", pa.float64()),
        ("closes", pa.bool_()),
    ]
)
EQUITY_SCHEMA = pa.schema(
    [("ts", _TS), ("equity", pa.float64()), ("cash", pa.float64()), ("exposure", pa.float64())]
)

ORDERS_FILE = "orders.parquet"
FILLS_FILE = "fills.parquet"
EQUITY_FILE = "equity.parquet"


class _TableFile:
    """One Parquet file written row by row, a row group at a time."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._schema = schema
        self._rows: list[tuple[Any, ...]] = []
        self._writer = pq.ParquetWriter(path, schema, compression=COMPRESSION)
        self.rows = 0

    def append(self, row: tuple[Any, ...]) -> None:
        """Buffer one row: a value per column of the schema, in its order."""
        self._rows.append(row)
        self.rows += 1
        if len(self._rows) >= GROUP_ROWS:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if self._rows:
            columns = [list(column) for column in zip(*self._rows, strict=True)]
            self._writer.write_table(pa.table(columns, schema=self._schema))
            self._rows = []


class ResultWriter:
    """Writes a backtest's orders, fills and equity into `directory` (see the module docstring).

    Use it as a context manager: the files are complete once it closes, also
    when the run stopped on an error.

    Args:
        directory: Where the files go; created if missing.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._orders = _TableFile(directory / ORDERS_FILE, ORDERS_SCHEMA)
        self._fills = _TableFile(directory / FILLS_FILE, FILLS_SCHEMA)
        self._equity = _TableFile(directory / EQUITY_FILE, EQUITY_SCHEMA)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def order(self, order: Mapping[str, Any], ts: float, *, refused: str | None) -> None:
        """One order the algorithm placed, on the quote at `ts`; `refused`: the screen's reason."""
        self._orders.append(
            (
                ns_from_seconds(ts),
                _text(order.get("id")),
                _text(order.get("sid")),
                _text(order.get("side")),
                order["qty"] if type(order.get("qty")) is int else None,
                _text(order.get("type")),
                order.get("limit_price") if isinstance(order.get("limit_price"), float) else None,
                refused,
            )
        )

    def fill(self, fill: Fill, *, realised_pnl: float, closes: bool) -> None:
        """One fill the algorithm booked."""
        self._fills.append(
            (
                ns_from_seconds(fill["ts"]),
                fill["id"],
                fill["order_id"],
                fill["sid"],
                fill["side"],
                fill["qty"],
                fill["price"],
                fill["fee"],
                realised_pnl,
                closes,
            )
        )

    def equity(self, ts: float, *, equity: float, cash: float, exposure: float) -> None:
        """One sample of the equity curve."""
        self._equity.append((ns_from_seconds(ts), equity, cash, exposure))

    def close(self) -> None:
        """Write what is buffered and close the files."""
        for table in (self._orders, self._fills, self._equity):
            table.close()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
