"""The tape's on-disk contract: the Arrow schema of a quote row, the layout of a dataset.

A dataset is a directory of Parquet files (zstd), hive-partitioned by the
UTC date of each quote's source time::

    DIR/date=2026-12-03/part-<writer>-<first ts ns>-<seq>.parquet

so ``pyarrow.dataset.dataset(DIR, partitioning="hive")``, pandas, polars
(``scan_parquet(DIR/**/*.parquet, hive_partitioning=True)``) and DuckDB
(``read_parquet('DIR/**/*.parquet', hive_partitioning = true)``) read it as
is. Names starting with ``_`` or ``.`` (journals, temporary files) are not
part of the dataset: pyarrow skips them, and they do not end in ``.parquet``.

Times are int64 nanoseconds since the epoch, UTC. A quote's ``ts`` (float
seconds on the bus) survives the trip to nanoseconds and back exactly
(`ns_from_seconds`, `seconds_from_ns`), as long as it is a realistic epoch time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from broker import Quote

NS_PER_S = 1_000_000_000

DAY_NS = 86_400 * NS_PER_S
"""Nanoseconds in a day: the span of one ``date=`` partition."""

TIME = pa.timestamp("ns", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("ts", TIME, nullable=False),
        pa.field("arrival", TIME, nullable=False),
        pa.field("sid", pa.string(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("bid", pa.float64()),
        pa.field("ask", pa.float64()),
        pa.field("size", pa.float64()),
        pa.field("topic", pa.string(), nullable=False),
    ]
)
"""One row per quote.

Fields:
    ts: The quote's source time (its ``ts``), ns since the epoch, UTC.
    arrival: When the recorder received it, ns since the epoch, UTC.
    sid: Symbol, upper-case.
    price: Last price.
    bid, ask, size: Optional; null when the quote had none.
    topic: The MQTT topic it arrived on (``quotes/<SID>`` for a ring).
"""

PARTITION = "date"
"""The hive partition key: ``date=YYYY-MM-DD``, the UTC date of ``ts``."""

COMPRESSION = "zstd"
DATA_SUFFIX = ".parquet"

_OPTIONAL = ("bid", "ask", "size")


def ns_from_seconds(seconds: float) -> int:
    """Epoch seconds (a float) as int nanoseconds, rounded to the nearest ns.

    The whole seconds and the fraction are converted apart, so no precision
    is lost to a float product near 1e18.
    """
    whole = math.floor(seconds)
    return int(whole) * NS_PER_S + round((seconds - whole) * NS_PER_S)


def seconds_from_ns(ns: int) -> float:
    """Int nanoseconds as epoch seconds: the float `ns_from_seconds` came from."""
    whole, rest = divmod(ns, NS_PER_S)
    return whole + rest / NS_PER_S


def seconds_array(ns: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """`seconds_from_ns` over an array, vectorised."""
    whole, rest = np.divmod(ns, NS_PER_S)
    return whole.astype(np.float64) + rest / NS_PER_S


def partition_of(ns: int) -> str:
    """The partition directory name of a quote whose ``ts`` is `ns`: ``date=YYYY-MM-DD``."""
    day = datetime.fromtimestamp(ns // NS_PER_S, tz=UTC).date()
    return f"{PARTITION}={day.isoformat()}"


def table_from_quotes(
    quotes: Iterable[Quote], *, arrival_ns: Iterable[int], topics: Iterable[str]
) -> pa.Table:
    """An Arrow table of `SCHEMA` from quotes and, for each, its arrival time and topic."""
    rows = list(quotes)
    columns: dict[str, list[Any]] = {
        "ts": [ns_from_seconds(q["ts"]) for q in rows],
        "arrival": list(arrival_ns),
        "sid": [q["sid"] for q in rows],
        "price": [q["price"] for q in rows],
    }
    for key in _OPTIONAL:
        columns[key] = [q.get(key) for q in rows]
    columns["topic"] = list(topics)
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def quote_from_row(row: Mapping[str, Any]) -> Quote:
    """The quote a row of `SCHEMA` holds, as the bus carries it (``ts`` in float seconds).

    `row` has ``ts`` as int nanoseconds (or a `datetime`, which loses the
    nanoseconds: use `pyarrow`'s ``to_pylist`` on the int64 view of the column).
    Optional fields that are null are left out, as a decoded quote has them.
    """
    ts = row["ts"]
    seconds = ts.timestamp() if isinstance(ts, datetime) else seconds_from_ns(int(ts))
    quote: Quote = {"sid": row["sid"], "price": row["price"], "ts": seconds}
    for key in _OPTIONAL:
        value = row.get(key)
        if value is not None:
            quote[key] = value  # type: ignore[literal-required]
    return quote
