"""The tape: recorded market data as a Parquet dataset, written crash-safe and read in time order.

* `SCHEMA`, `PARTITION` and the layout of a dataset (see `tape._schema`):
  Parquet (zstd), hive-partitioned by the UTC date of each quote's ``ts``, so
  pyarrow, pandas, polars and DuckDB read a recording as is.
* `ns_from_seconds` / `seconds_from_ns`: a quote's ``ts`` to nanoseconds and back, exactly.
* `table_from_quotes` / `quote_from_row`: quotes to rows of `SCHEMA` and back.
* `write_rows`: rows into a dataset as finished Parquet files, each sorted by
  ``ts``, written atomically (hidden temporary file, fsync, rename).

Plain Python and pyarrow: it never imports the transport's connections.
"""

from tape._files import ROW_GROUP_ROWS, write_rows
from tape._schema import (
    COMPRESSION,
    DATA_SUFFIX,
    NS_PER_S,
    PARTITION,
    SCHEMA,
    ns_from_seconds,
    partition_of,
    quote_from_row,
    seconds_array,
    seconds_from_ns,
    table_from_quotes,
)

__all__ = [
    "COMPRESSION",
    "DATA_SUFFIX",
    "NS_PER_S",
    "PARTITION",
    "ROW_GROUP_ROWS",
    "SCHEMA",
    "ns_from_seconds",
    "partition_of",
    "quote_from_row",
    "seconds_array",
    "seconds_from_ns",
    "table_from_quotes",
    "write_rows",
]
