"""The recorder's journal: rows of `SCHEMA` appended to an Arrow IPC stream, fsync'd per append.

A journal is one file, ``DIR/_journal/<name>.arrows``, in the Arrow IPC
*stream* format: the schema, then one record batch per `Journal.append`.
Every append is written and flushed to disk (fsync) before it returns, so a
process killed at any moment leaves the journal holding every append that
returned, plus perhaps the beginning of the one that was under way.

`read_journal` reads what is whole: the batches before the first torn or
invalid one, and says whether anything was dropped. `finish_journal` turns a
journal into finished Parquet files (`write_rows`) and only then removes it.
Both are what a recorder does at a roll, at a clean stop and, with a journal
left by a crash, at its next start.

Each journal carries a random id in its schema's metadata, and `write_rows`
keeps that metadata in the Parquet files it writes from it. A crash between
writing those files and removing the journal leaves both; `finish_journal`
then skips the partitions that already hold a file with the journal's id, so
the rows are never written twice and no finished file is touched.

The directory ``_journal`` starts with ``_``: readers of the dataset skip it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tape._files import fsync_path, write_rows
from tape._schema import DATA_SUFFIX, DAY_NS, SCHEMA, partition_of
from tickbus.errors import ConfigError

log = logging.getLogger(__name__)

JOURNAL_DIR = "_journal"
JOURNAL_SUFFIX = ".arrows"
JOURNAL_ID_KEY = b"tickbus.journal"
"""The schema metadata key of a journal's id, kept in the Parquet files made from it."""


def journal_path(directory: Path, name: str) -> Path:
    """Where the recorder `name` keeps its journal in the dataset `directory`."""
    return directory / JOURNAL_DIR / f"{name}{JOURNAL_SUFFIX}"


class JournalLock:
    """Holds ``DIR/_journal/<name>.lock`` (an exclusive ``flock``) while one recorder runs.

    A context manager. The kernel drops the lock when the process dies, even by
    ``kill -9``, so a crashed recorder never blocks its restart.

    Raises:
        ConfigError: On entering, another process holds the lock: a recorder of
            this name already writes to this dataset.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / JOURNAL_DIR / f"{name}.lock"
        self._fd: int | None = None

    def __enter__(self) -> JournalLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another recorder holds {self.path}: one recorder per name and dataset"
            ) from None
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


class Journal:
    """An open journal that rows are appended to; a context manager that closes it.

    Opening creates the file (and its directory); it must not exist yet: a
    leftover journal is finished first (`finish_journal`). Not thread-safe:
    one thread appends.

    Args:
        path: The journal file (`journal_path`).

    Raises:
        FileExistsError: `path` exists.
        OSError: It cannot be created.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.id = uuid.uuid4().hex
        self.rows = 0
        self._schema = SCHEMA.with_metadata({JOURNAL_ID_KEY: self.id.encode()})
        self._file: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed in close()
        try:
            self._writer = pa.ipc.new_stream(self._file, self._schema)
            self._sync()
            fsync_path(path.parent)  # the new name itself survives a crash
        except BaseException:
            self._file.close()
            raise

    @property
    def bytes(self) -> int:
        """The journal's size on disk."""
        return self._file.tell()

    def append(self, table: pa.Table) -> None:
        """Append `table` (rows of `SCHEMA`) and fsync; an empty table writes nothing.

        Raises:
            ValueError: `table` does not have the schema `SCHEMA`.
            OSError: The write or the fsync failed; the journal should then be
                closed and finished, as after a crash.
        """
        if not table.schema.equals(SCHEMA):
            raise ValueError(f"rows must have the tape's schema, got {table.schema}")
        if table.num_rows == 0:
            return
        self._writer.write_table(table.replace_schema_metadata(self._schema.metadata))
        self._sync()
        self.rows += table.num_rows

    def close(self) -> None:
        """End the stream and close the file (the journal stays on disk)."""
        if self._file.closed:
            return
        try:
            self._writer.close()
            self._sync()
        finally:
            self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())


@dataclass(frozen=True)
class JournalContents:
    """What `read_journal` found.

    Attributes:
        table: The whole batches' rows, schema `SCHEMA` with the journal's id
            as metadata (empty when nothing was whole).
        journal_id: The id in the journal's schema; None when even the schema was torn.
        torn: Whether something after the last whole batch was dropped: a
            torn or invalid record, or a torn schema.
    """

    table: pa.Table
    journal_id: str | None
    torn: bool


def read_journal(path: Path) -> JournalContents:
    """The rows of every whole batch of the journal at `path`, up to the first broken one.

    A journal cut anywhere (inside its schema, a batch's header or its body)
    reads as its batches before the cut, with `JournalContents.torn` set.

    Raises:
        OSError: The file cannot be opened.
        ValueError: It holds an Arrow stream of another schema: not a journal.
    """
    data = pa.memory_map(str(path)) if path.stat().st_size else pa.BufferReader(b"")
    try:
        try:
            reader = pa.ipc.open_stream(data)
        except (pa.ArrowInvalid, OSError):
            return JournalContents(SCHEMA.empty_table(), None, torn=path.stat().st_size > 0)
        if not reader.schema.equals(SCHEMA):
            raise ValueError(f"{path} is not a journal of the tape: schema {reader.schema}")
        metadata = reader.schema.metadata or {}
        raw_id = metadata.get(JOURNAL_ID_KEY)
        batches, torn = _whole_batches(reader)
        table = pa.Table.from_batches(batches, schema=SCHEMA).combine_chunks()
        table = table.replace_schema_metadata(metadata)
        return JournalContents(table, None if raw_id is None else raw_id.decode(), torn)
    finally:
        data.close()


def _whole_batches(reader: pa.ipc.RecordBatchStreamReader) -> tuple[list[pa.RecordBatch], bool]:
    batches: list[pa.RecordBatch] = []
    while True:
        try:
            batch = reader.read_next_batch()
            batch.validate(full=True)
        except StopIteration:
            return batches, False
        except (pa.ArrowInvalid, OSError):
            return batches, True
        batches.append(batch)


@dataclass(frozen=True)
class FinishedJournal:
    """What `finish_journal` did.

    Attributes:
        files: The finished Parquet files it wrote.
        rows: Rows written into them.
        bytes: Their size on disk.
        skipped_rows: Rows already in finished files from an earlier attempt.
        torn: Whether the journal ended in a torn record, which was dropped.
    """

    files: list[Path]
    rows: int
    bytes: int
    skipped_rows: int
    torn: bool


def finish_journal(path: Path, directory: Path, *, writer: str) -> FinishedJournal:
    """Turn the journal at `path` into finished Parquet files in `directory`, then remove it.

    The files are written by `write_rows` (atomic: hidden temporary file,
    fsync, rename) under the name `writer`; the journal is removed (and the
    removal fsync'd) only after all of them are in place. Rows of a partition
    that already holds a file made from this journal (a crash came between
    the files and the removal) are skipped. A journal with no whole batch is
    just removed.

    Raises:
        OSError: Reading the journal or writing the files failed; the journal
            is then kept, to be finished later.
        ValueError: `path` is not a journal of the tape.
    """
    contents = read_journal(path)
    table = contents.table
    skipped = 0
    if contents.journal_id is not None and table.num_rows:
        done = _partitions_with(directory, writer=writer, journal_id=contents.journal_id)
        if done:
            table, skipped = _without_partitions(table, done)
    files = write_rows(table, directory, writer=writer)
    os.unlink(path)
    fsync_path(path.parent)
    if contents.torn:
        log.warning("%s ended in a torn record: dropped it", path)
    return FinishedJournal(
        files=files,
        rows=table.num_rows,
        bytes=sum(f.stat().st_size for f in files),
        skipped_rows=skipped,
        torn=contents.torn,
    )


def _partitions_with(directory: Path, *, writer: str, journal_id: str) -> set[str]:
    """Partition names holding a finished file of `writer` made from journal `journal_id`."""
    found = set()
    for file in directory.glob(f"*/part-{writer}-*{DATA_SUFFIX}"):
        metadata = pq.read_schema(file).metadata or {}
        if metadata.get(JOURNAL_ID_KEY) == journal_id.encode():
            found.add(file.parent.name)
    return found


def _without_partitions(table: pa.Table, partitions: set[str]) -> tuple[pa.Table, int]:
    days = pc.divide(table.column("ts").cast(pa.int64()), DAY_NS)
    keep = [
        day for day in pc.unique(days).to_pylist() if partition_of(day * DAY_NS) not in partitions
    ]
    kept = table.filter(pc.is_in(days, value_set=pa.array(keep, pa.int64())))
    return kept, table.num_rows - kept.num_rows
