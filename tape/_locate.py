"""Finding the file and row a quote came from, for error messages."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tape._catalog import data_files, partition_day, scan_file
from tape._schema import DAY_NS, ns_from_seconds


def locate(directory: Path | str, sid: str, ts: float) -> tuple[Path, int] | None:
    """The first data file (in path order) and row (0-based, in that file) of the quote `sid`, `ts`.

    Meant for error paths (a row that breaks the quote contract): it reads
    the ``ts`` and ``sid`` columns of every file whose range holds `ts`.
    None when no row matches.

    Raises:
        TapeError: `directory` is not a dataset, or a file cannot be read.
    """
    ns = ns_from_seconds(ts)
    files, _ = data_files(Path(directory))
    for path in files:
        day = partition_day(path)
        if day is not None and not day <= ns < day + DAY_NS:
            continue
        facts = scan_file(path)
        if (
            facts.first_ns is None
            or facts.last_ns is None
            or not facts.first_ns <= ns <= facts.last_ns
        ):
            continue
        table = pq.read_table(path, columns=["ts", "sid"])
        same = pc.and_(
            pc.equal(table.column("ts").cast(pa.int64()), ns),
            pc.equal(table.column("sid"), sid),
        )
        rows = pc.indices_nonzero(same.combine_chunks()).to_pylist()
        if rows:
            return path, rows[0]
    return None
