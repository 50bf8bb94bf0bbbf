"""Reading a dataset back: every quote in ``ts`` order, across symbols and files, streaming.

The plan, from cheap to dear:

1. List the data files (`tape._catalog.data_files`) in path order; that
   order breaks ties between quotes of the same ``ts``, and row order within
   a file.
2. Skip a ``date=YYYY-MM-DD`` partition outside the time range without
   opening its files.
3. Read each remaining file's footer: the min/max ``ts`` of every row group
   (`write_rows` writes statistics and sorts every file by ``ts``). Skip a
   file outside the time range.
4. k-way merge (heapq) the rest. A file is opened only when the merge
   reaches its first ``ts``; it then holds the row group being handed out
   (filtered by symbol and time with pyarrow.compute), one chunk of it as
   Python objects, and the next row group, which a background thread reads
   and filters while this one is turned into quotes (decoding Parquet
   releases the GIL, so it runs on another core). It is closed when its last
   row is out. Memory is bounded by that per open file — the files whose
   time ranges overlap — not by the dataset.

Runs of quotes that no other file interleaves go out as slices of a chunk,
so files that follow each other in time cost no per-quote heap work.

Each chunk is also tested against the quote contract as columns
(`algos.columns_pass`); `read_quote_batches` says which batches passed, so
the backtester can hand their quotes on without checking them one by one.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algos import columns_pass
from broker import Quote
from tape._catalog import (
    OPTIONAL_COLUMNS,
    data_files,
    partition_day,
    scan_file,
    unreadable,
)
from tape._schema import DAY_NS, seconds_array
from tape._time import TimeLike, iso_from_ns, ns_from_time
from tickbus.errors import ConfigError, TapeError

CHUNK_ROWS = 8_192
"""Rows of a row group turned into Python quotes at once."""

_SHOWN_SYMBOLS = 12
_SHORT_RUN = 16  # below this many quotes, a heap step costs more than a numpy window


@dataclass(frozen=True)
class _Selection:
    """What the caller asked for: symbols (None: all) and ``[start_ns, end_ns)``."""

    symbols: tuple[str, ...] | None
    start_ns: int | None
    end_ns: int | None

    def outside(self, first_ns: int, last_ns: int) -> bool:
        """Whether no time in ``[first_ns, last_ns]`` is selected."""
        return (self.start_ns is not None and last_ns < self.start_ns) or (
            self.end_ns is not None and first_ns >= self.end_ns
        )


class QuoteBatch(NamedTuple):
    """Quotes in ``ts`` order, and whether they are known to pass the quote contract.

    Attributes:
        quotes: 1 to `CHUNK_ROWS` quotes.
        checked: True when every quote is what `algos.checked_quote` returns
            for it (`algos.columns_pass` held for its rows); False when some
            may break the contract: check them one by one.
    """

    quotes: list[Quote]
    checked: bool


class _Chunk(NamedTuple):
    """Rows of one file as Python quotes: their ``ts`` in ns, and whether all pass the contract."""

    keys: np.ndarray[Any, np.dtype[np.int64]]
    quotes: list[Quote]
    checked: bool


@dataclass(frozen=True)
class _Span:
    """A data file and the ``ts`` range of the whole and of each row group, from its footer."""

    path: Path
    order: int
    first_ns: int
    last_ns: int
    groups: tuple[tuple[int, int, int], ...]  # (row group index, first ns, last ns)
    columns: tuple[str, ...]


def read_quotes(
    directory: Path | str,
    *,
    symbols: str | Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> Iterator[Quote]:
    """Every selected quote of the dataset at `directory`, in ``ts`` order.

    Quotes come as the bridge hands them to an algorithm (`quote_from_row`):
    ``ts`` float seconds equal to what was recorded, ``bid``/``ask``/``size``
    only when not null. Quotes with the same ``ts`` come in file path order,
    then row order: the same order on every read.

    The selection is checked before this returns: an empty one raises here,
    not as an empty stream. Files are read lazily as the iterator advances.

    Args:
        directory: The dataset's root (as `write_rows` writes it).
        symbols: Keep only these symbols (case-insensitive); one symbol may be
            given as a plain string. None keeps all.
        start: Keep quotes with ``ts >= start`` (epoch seconds, a `datetime`,
            naive meaning UTC, or ISO 8601 / epoch-seconds text).
        end: Keep quotes with ``ts < end``; same forms.

    Raises:
        TapeError: Nothing is selected (no dataset files there, no file in the
            time range, no row for the symbols); the message says what was
            asked and what the dataset holds. Or a file cannot be read: the
            message names it (also when met later, while iterating).
        ConfigError: `start`/`end` is not a time, `start >= end`, or
            `symbols` is empty.
    """
    return itertools.chain.from_iterable(
        read_batches(directory, symbols=symbols, start=start, end=end)
    )


def read_batches(
    directory: Path | str,
    *,
    symbols: str | Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> Iterator[list[Quote]]:
    """`read_quotes` in lists: the same quotes in the same order, cut where files interleave.

    Each list holds 1 to `CHUNK_ROWS` quotes; concatenated, the lists are
    exactly what `read_quotes` yields. Arguments and errors as `read_quotes`.
    """
    return (
        batch.quotes
        for batch in read_quote_batches(directory, symbols=symbols, start=start, end=end)
    )


def read_quote_batches(
    directory: Path | str,
    *,
    symbols: str | Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> Iterator[QuoteBatch]:
    """`read_batches` with, per list, whether its quotes pass the quote contract.

    The lists are those of `read_batches`. Arguments and errors as `read_quotes`.
    """
    root = Path(directory)
    selection = _selection(symbols, start, end)
    files, _ = data_files(root)
    spans = _plan(files, selection)
    if not spans:
        raise _empty(root, files, selection)
    batches = _merge(spans, selection)
    first = next(batches, None)
    if first is None:
        raise _empty(root, files, selection)
    return itertools.chain((first,), batches)


def _selection(
    symbols: str | Iterable[str] | None, start: TimeLike | None, end: TimeLike | None
) -> _Selection:
    wanted = None
    if symbols is not None:
        given = [symbols] if isinstance(symbols, str) else symbols
        wanted = tuple(sorted({s.strip().upper() for s in given}))
        if not wanted:
            raise ConfigError("symbols is empty: give None to read every symbol")
    start_ns = None if start is None else ns_from_time(start)
    end_ns = None if end is None else ns_from_time(end)
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise ConfigError(
            f"the start ({iso_from_ns(start_ns)}) must be before the end ({iso_from_ns(end_ns)})"
        )
    return _Selection(wanted, start_ns, end_ns)


def _plan(files: list[Path], selection: _Selection) -> list[_Span]:
    spans = []
    for order, path in enumerate(files):
        day = partition_day(path)
        if day is not None and selection.outside(day, day + DAY_NS - 1):
            continue
        facts = scan_file(path)
        if facts.first_ns is None or facts.last_ns is None:
            continue
        span = _Span(path, order, facts.first_ns, facts.last_ns, facts.groups, facts.columns)
        if not selection.outside(span.first_ns, span.last_ns):
            spans.append(span)
    return spans


class _Cursor:
    """An open file's selected rows, one chunk of Python values at a time.

    Its row groups are read one ahead in `pool` (`_read_ahead`).
    """

    def __init__(self, span: _Span, selection: _Selection, pool: ThreadPoolExecutor) -> None:
        self.span = span
        self.keys: np.ndarray[Any, np.dtype[np.int64]] = np.empty(0, np.int64)
        self.quotes: list[Quote] = []
        self.checked = False
        self.pos = 0
        try:
            self._parquet = pq.ParquetFile(span.path, read_dictionary=["sid"])
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(span.path, exc) from exc
        self._groups = _read_ahead(self._reads(selection), pool)
        self._chunks = self._convert()

    def advance(self) -> bool:
        """Load the next chunk; False (and the file closed) when there is none."""
        try:
            self.keys, self.quotes, self.checked = next(self._chunks)
        except StopIteration:
            self.close()
            return False
        except (OSError, pa.ArrowException) as exc:
            self.close()
            raise unreadable(self.span.path, exc) from exc
        self.pos = 0
        return True

    def key(self, row: int) -> int:
        """The ``ts`` in ns of `row` of the chunk (negative: from its end)."""
        return int(self.keys[row])

    def search(self, ns: int, *, after_ties: bool) -> int:
        """Where `ns` would go among the chunk's rows from `pos` on: after equal keys or before."""
        side: Literal["left", "right"] = "right" if after_ties else "left"
        return self.pos + int(np.searchsorted(self.keys[self.pos :], ns, side=side))

    def close(self) -> None:
        """Close the file, once a read running ahead has finished."""
        self._groups.close()
        self._parquet.close()

    def _reads(self, selection: _Selection) -> Iterator[Callable[[], pa.Table]]:
        """How to read each selected row group, filtered, in file order."""
        columns = list(self.span.columns)
        for index, first, last in self.span.groups:
            if selection.end_ns is not None and first >= selection.end_ns:
                return  # the file is sorted by ts: no later group is selected either
            if selection.start_ns is not None and last < selection.start_ns:
                continue
            yield functools.partial(self._read_group, index, columns, selection)

    def _read_group(self, index: int, columns: list[str], selection: _Selection) -> pa.Table:
        return _select(self._parquet.read_row_group(index, columns=columns), selection)

    def _convert(self) -> Iterator[_Chunk]:
        for group in self._groups:
            for offset in range(0, group.num_rows, CHUNK_ROWS):
                yield _to_python(group.slice(offset, CHUNK_ROWS))


def _read_ahead(
    reads: Iterator[Callable[[], pa.Table]], pool: ThreadPoolExecutor
) -> Generator[pa.Table, None, None]:
    """What each of `reads` returns, in order; the next one runs in `pool` meanwhile.

    An exception of a read is raised here, when its turn comes. However the
    generator ends (exhausted, closed or raising), it first waits for the
    read running ahead, so the file may be closed after it.
    """
    ahead: deque[Future[pa.Table]] = deque()
    try:
        for read in reads:
            ahead.append(pool.submit(read))
            if len(ahead) > 1:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        for future in ahead:
            future.cancel()
        futures.wait(ahead)


def _select(table: pa.Table, selection: _Selection) -> pa.Table:
    """The rows of `table` that `selection` keeps, vectorised."""
    masks = []
    if selection.start_ns is not None or selection.end_ns is not None:
        ns = table.column("ts").cast(pa.int64())
        if selection.start_ns is not None:
            masks.append(pc.greater_equal(ns, selection.start_ns))
        if selection.end_ns is not None:
            masks.append(pc.less(ns, selection.end_ns))
    if selection.symbols is not None:
        masks.append(pc.is_in(table.column("sid"), value_set=pa.array(selection.symbols)))
    if not masks:
        return table
    mask = masks[0]
    for more in masks[1:]:
        mask = pc.and_(mask, more)
    return table.filter(mask)


def _to_python(table: pa.Table) -> _Chunk:
    """The ns and quotes of `table`'s rows, column by column, not through pyarrow scalars.

    Quotes are built in one comprehension when every row has the same keys
    (all of bid/ask/size, or none): a dict built whole costs about half of
    one grown key by key, and this is the reader's hot loop.
    """
    ns = _numbers(table.column("ts"), pa.int64())
    names, sids = _symbols(table.column("sid"))
    seconds = seconds_array(ns)
    stamps = seconds.tolist()
    floats = {
        key: column
        for key in ("price", *OPTIONAL_COLUMNS)
        if key in table.column_names and (column := table.column(key)).null_count < table.num_rows
    }
    present = {  # each column's non-null values
        key: _numbers(column.drop_null() if column.null_count else column, pa.float64())
        for key, column in floats.items()
    }
    checked = (
        "price" in floats
        and not floats["price"].null_count
        and not table.column("sid").null_count
        and columns_pass(names, present | {"ts": seconds})
    )
    values = {
        key: column.to_pylist() if column.null_count else present[key].tolist()
        for key, column in floats.items()
    }
    prices = values.pop("price", [None] * table.num_rows)
    if not values:
        return _Chunk(
            ns,
            [
                {"sid": sid, "price": price, "ts": ts}
                for sid, price, ts in zip(sids, prices, stamps, strict=True)
            ],
            checked,
        )
    if len(values) == len(OPTIONAL_COLUMNS) and not any(floats[key].null_count for key in values):
        bids, asks, sizes = (values[key] for key in OPTIONAL_COLUMNS)
        return _Chunk(
            ns,
            [
                {"sid": sid, "price": price, "ts": ts, "bid": bid, "ask": ask, "size": size}
                for sid, price, ts, bid, ask, size in zip(
                    sids, prices, stamps, bids, asks, sizes, strict=True
                )
            ],
            checked,
        )
    quotes: list[Quote] = [
        {"sid": sid, "price": price, "ts": ts}
        for sid, price, ts in zip(sids, prices, stamps, strict=True)
    ]
    for key, column_values in values.items():
        for quote, value in zip(quotes, column_values, strict=True):
            if value is not None:
                quote[key] = value  # type: ignore[literal-required]
    return _Chunk(ns, quotes, checked)


_NUMPY_TYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.float64(): np.float64,
}


def _numbers(values: pa.Array | pa.ChunkedArray, kind: pa.DataType) -> np.ndarray[Any, Any]:
    """Values without nulls as a numpy array of `kind` (a key of `_NUMPY_TYPES`), on Arrow's buffer.

    Not pyarrow's ``to_numpy``: its first call in a process imports pandas
    (about 0.2 s and 40 MB) for conversions this reader never needs.

    Raises:
        pyarrow.ArrowInvalid: A value is null (a file not written by the tape).
    """
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if array.null_count:
        raise pa.ArrowInvalid(f"{array.null_count} null {kind} values where none may be")
    if not array.type.equals(kind):
        array = array.cast(kind)
    dtype = np.dtype(_NUMPY_TYPES[kind])
    if len(array) == 0:
        return np.empty(0, dtype)
    data = array.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _symbols(column: pa.ChunkedArray) -> tuple[list[str], list[Any]]:
    """The distinct values of the ``sid`` column, and the column as Python strings.

    One Python object per distinct symbol, shared by its rows; None for a
    null (as `quote_from_row`). The column comes dictionary-encoded from
    Parquet (``read_dictionary``), as tape files store it.
    """
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    encoded = column.combine_chunks()
    names: list[str] = encoded.dictionary.to_pylist()
    indices = encoded.indices
    if indices.null_count:  # a null takes the None after the names
        indices = pc.fill_null(indices, len(names))
    rows = _numbers(indices, indices.type)
    return names, np.array([*names, None], dtype=object)[rows].tolist()


def _merge(spans: list[_Span], selection: _Selection) -> Iterator[QuoteBatch]:
    """The selected quotes of `spans` in (ts, file order, row) order, as runs.

    The heap holds (next ts, file order) per file: for an unopened file its
    first ts from the footer (a lower bound), for an open one its next row.
    The top file emits every row before the runner-up's key at once; when
    that run is short (files interleave row by row), the open files' chunks
    are merged with numpy up to the earliest point any of them could pass
    (`_window`) instead of quote by quote through the heap.
    """
    by_order = {span.order: span for span in spans}
    heap = [(span.first_ns, span.order) for span in spans]
    heapq.heapify(heap)
    cursors: dict[int, _Cursor] = {}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tape-read-ahead")
    try:
        while heap:
            _, order = heap[0]
            cursor = cursors.get(order)
            if cursor is None:
                cursor = _Cursor(by_order[order], selection, pool)
                if cursor.advance():
                    cursors[order] = cursor
                    heapq.heapreplace(heap, (cursor.key(0), order))
                else:
                    heapq.heappop(heap)
                continue
            limit = _run_end(cursor, heap)
            if limit - cursor.pos < _SHORT_RUN and len(cursors) > 1:
                window = _window(cursors, heap)
                if window.quotes:
                    yield window
                    heap = _rekey(cursors, heap)
                    continue
            yield QuoteBatch(cursor.quotes[cursor.pos : limit], cursor.checked)
            cursor.pos = limit
            if limit < len(cursor.keys) or cursor.advance():
                heapq.heapreplace(heap, (cursor.key(cursor.pos), order))
            else:
                heapq.heappop(heap)
                del cursors[order]
    finally:
        for cursor in cursors.values():
            cursor.close()
        pool.shutdown()


def _run_end(cursor: _Cursor, heap: list[tuple[int, int]]) -> int:
    """How far the top file's chunk runs before the runner-up file's next row."""
    if len(heap) == 1:
        return len(cursor.keys)
    runner_up = min(heap[1:3])
    return cursor.search(runner_up[0], after_ties=cursor.span.order < runner_up[1])


def _window(cursors: dict[int, _Cursor], heap: list[tuple[int, int]]) -> QuoteBatch:
    """The open files' rows before any row still unseen, in order; advances their positions.

    The bound is the earliest last ts of an open chunk or first ts of an
    unopened file: every row after a chunk, or in an unopened file, is at or
    after it, so the rows strictly before it can go out now. Concatenated in
    file order, a stable sort by ts keeps ties in file, then row order.
    """
    bound = min(cursor.key(-1) for cursor in cursors.values())
    bound = min([bound, *(ns for ns, order in heap if order not in cursors)])
    keys, pool, checked = [], [], True
    for order in sorted(cursors):
        cursor = cursors[order]
        end = cursor.search(bound, after_ties=False)
        if end > cursor.pos:
            keys.append(cursor.keys[cursor.pos : end])
            pool += cursor.quotes[cursor.pos : end]
            checked = checked and cursor.checked
            cursor.pos = end
    if not pool:
        return QuoteBatch([], checked)
    ranking = np.argsort(np.concatenate(keys), kind="stable")
    return QuoteBatch([pool[i] for i in ranking.tolist()], checked)


def _rekey(cursors: dict[int, _Cursor], heap: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A new heap after `_window`: open files keyed by their next row, spent ones closed."""
    entries = [(ns, order) for ns, order in heap if order not in cursors]
    for order, cursor in list(cursors.items()):
        if cursor.pos < len(cursor.keys) or cursor.advance():
            entries.append((cursor.key(cursor.pos), order))
        else:
            del cursors[order]
    heapq.heapify(entries)
    return entries


def _empty(root: Path, files: list[Path], selection: _Selection) -> TapeError:
    return TapeError(
        root,
        f"no quotes for {_describe_selection(selection)} in {root}; "
        f"the dataset holds {_describe_dataset(files)}",
    )


def _describe_selection(selection: _Selection) -> str:
    words = [f"symbols {', '.join(selection.symbols)}" if selection.symbols else "any symbol"]
    if selection.start_ns is not None:
        words.append(f"from {iso_from_ns(selection.start_ns)}")
    if selection.end_ns is not None:
        words.append(f"before {iso_from_ns(selection.end_ns)}")
    return " ".join(words)


def _describe_dataset(files: list[Path]) -> str:
    """Symbols, time range and file count of the whole dataset (read only on the error path)."""
    facts = [scan_file(path, count_symbols=True) for path in files]
    firsts = [f.first_ns for f in facts if f.first_ns is not None]
    lasts = [f.last_ns for f in facts if f.last_ns is not None]
    if not firsts or not lasts:
        return f"no rows in {len(files)} files"
    names = sorted({symbol for f in facts for symbol in f.symbols})
    shown = ", ".join(names[:_SHOWN_SYMBOLS]) + (", ..." if len(names) > _SHOWN_SYMBOLS else "")
    return (
        f"{len(names)} symbols ({shown}) from {iso_from_ns(min(firsts))} "
        f"to {iso_from_ns(max(lasts))} in {len(files)} files"
    )
