"""The tape: recorded market data as a Parquet dataset, written crash-safe and read in time order.

* `SCHEMA`, `PARTITION` and the layout of a dataset (see `tape._schema`):
  Parquet (zstd), hive-partitioned by the UTC date of each quote's ``ts``, so
  pyarrow, pandas, polars and DuckDB read a recording as is.
* `ns_from_seconds` / `seconds_from_ns`: a quote's ``ts`` to nanoseconds and back, exactly.
* `table_from_quotes` / `quote_from_row`: quotes to rows of `SCHEMA` and back.
* `write_rows`: rows into a dataset as finished Parquet files, each sorted by
  ``ts``, written atomically (hidden temporary file, fsync, rename).
* `read_quotes` / `read_batches`: a dataset back as quotes in ``ts`` order,
  filtered by symbols and a time range, streaming row group by row group
  (`read_quote_batches`: also whether each batch passes the quote contract);
  `parse_time` / `ns_from_time` for the bounds (epoch seconds, datetimes, ISO 8601),
  `iso_from_ns` back to text; `selection_options`, the ``--symbols``,
  ``--start`` and ``--end`` flags of every command that reads a dataset;
  `locate`, the file and row a quote came from (for error messages).
* `data_files` (a dataset's files), `dataset_symbols` (its symbols and their
  rows), `dataset_info` (what a dataset holds, its size against JSON), `import_csv`
  (a CSV of quotes into a dataset), `write_sample` (a generated dataset), and
  `data_group`, the ``tickbus data`` commands around them.
* The recorder: `run_recorder` (`RecorderConfig`) and `record_command`
  (``tickbus record``) write quotes from the bus or a ring into a dataset
  through an fsync'd Arrow IPC journal (`Journal`, `read_journal`,
  `finish_journal`, `journal_path`), so a crash loses at most one flush
  interval; it is the one part that connects to the bus or a ring.

Plain Python and pyarrow, but for the recorder: nothing else imports the transport's
connections.
"""

from tape._catalog import data_files
from tape._config import RecorderConfig
from tape._data_cli import data_group
from tape._files import ROW_GROUP_ROWS, write_rows
from tape._import import ImportConfig, ImportReport, import_csv
from tape._info import DatasetInfo, dataset_info, dataset_symbols
from tape._journal import (
    FinishedJournal,
    Journal,
    JournalContents,
    finish_journal,
    journal_path,
    read_journal,
)
from tape._locate import locate
from tape._options import selection_options
from tape._reader import CHUNK_ROWS, QuoteBatch, read_batches, read_quote_batches, read_quotes
from tape._record_cli import record_command
from tape._recorder import run_recorder
from tape._sample import SampleConfig, SampleReport, write_sample
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
from tape._time import TimeLike, iso_from_ns, ns_from_time, parse_time

__all__ = [
    "CHUNK_ROWS",
    "COMPRESSION",
    "DATA_SUFFIX",
    "NS_PER_S",
    "PARTITION",
    "ROW_GROUP_ROWS",
    "SCHEMA",
    "DatasetInfo",
    "FinishedJournal",
    "ImportConfig",
    "ImportReport",
    "Journal",
    "JournalContents",
    "QuoteBatch",
    "RecorderConfig",
    "SampleConfig",
    "SampleReport",
    "TimeLike",
    "data_files",
    "data_group",
    "dataset_info",
    "dataset_symbols",
    "finish_journal",
    "import_csv",
    "iso_from_ns",
    "journal_path",
    "locate",
    "ns_from_seconds",
    "ns_from_time",
    "parse_time",
    "partition_of",
    "quote_from_row",
    "read_batches",
    "read_journal",
    "read_quote_batches",
    "read_quotes",
    "record_command",
    "run_recorder",
    "seconds_array",
    "seconds_from_ns",
    "selection_options",
    "table_from_quotes",
    "write_rows",
    "write_sample",
]
