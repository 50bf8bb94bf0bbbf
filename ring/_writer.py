"""The one writer of a ring: never blocked, never aware of its readers."""

from __future__ import annotations

import fcntl
import math
import os
import struct
import time
from collections.abc import Mapping
from time import time_ns
from types import TracebackType
from typing import Any

import numpy as np

from ring._file import check_processor, file_size, map_file, ring_path
from ring._layout import (
    BODY,
    EPOCH_OFFSET,
    HEADER_BYTES,
    TICK_DTYPE,
    U64,
    WRITE_INDEX_OFFSET,
    WRITER_PID_OFFSET,
    Layout,
    read_layout,
)
from ring._symbols import SymbolTable
from tickbus.errors import ConfigError, RingError

DEFAULT_CAPACITY = 1 << 20
DEFAULT_SYMBOL_CAPACITY = 4096
MAX_CHUNK = 4096
"""Ticks per step of `write_batch`. Keeps each copy far below the size where
memcpy switches to non-temporal stores, which x86 does not keep in order."""

_NAN = math.nan
_RAW = np.dtype("V64")
_pack_body = BODY.pack_into
_INDEX_WORD = WRITE_INDEX_OFFSET // 8
MAX_TS = 9.2e9
"""Latest ts (seconds) a record holds: int64 nanoseconds end in 2262."""


class RingWriter:
    """Writes ticks into a ring, creating it when its file does not exist.

    Ordering (the seqlock, see `ring._layout`): for tick ``n`` the writer
    stores ``seq = 2n+1``, then the record, then ``seq = 2n+2``, then the
    ring's write index ``n+1``: four separate stores, in program order, which
    x86-64 makes visible to other processors in that same order. A reader that
    finds ``seq == 2n+2`` before and after copying a record has an untorn tick.

    Exclusivity: the writer holds an exclusive `flock` on the ring file. A
    second writer is refused with `RingError`; the kernel drops the lock when
    a writer dies, even by SIGKILL, so a crash never leaves the ring stuck. A
    new writer continues the tick numbering where the last one published, and
    raises the ring's epoch, so readers can tell a writer restarted.

    Use as a context manager; the mapping and the lock are released on exit.

    Args:
        name: Ring name (file ``/dev/shm/tickbus-ring-<name>``) or a path.
        capacity: Ticks the ring holds; a power of two >= 2. Used only when the
            ring is created; an existing ring keeps its own capacity.
        symbol_capacity: Distinct symbols the ring can name (creation only).

    Raises:
        RingError: Another writer holds the ring, the file is not a ring of
            this layout, or this processor is not supported.
        ConfigError: A capacity is not usable.
    """

    def __init__(
        self,
        name: str,
        *,
        capacity: int = DEFAULT_CAPACITY,
        symbol_capacity: int = DEFAULT_SYMBOL_CAPACITY,
    ) -> None:
        check_processor()
        if capacity < 2 or capacity & (capacity - 1):
            raise ConfigError(f"ring capacity must be a power of two >= 2, got {capacity}")
        if symbol_capacity < 1:
            raise ConfigError(f"symbol capacity must be >= 1, got {symbol_capacity}")
        self.path = ring_path(name)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock()
            self.layout = self._open_layout(capacity, symbol_capacity)
        except BaseException:
            os.close(self._fd)
            raise
        self._buf = map_file(self._fd, self.layout.file_size, writable=True)
        self._mask = self.layout.capacity - 1
        self._slots_offset = self.layout.slots_offset
        self._slots = np.frombuffer(
            self._buf, TICK_DTYPE, self.layout.capacity, self.layout.slots_offset
        )
        # numpy copies structured records field by field, ~14x slower than the
        # same bytes as V64: every record copy goes through this raw view.
        self._raw = self._slots.view(_RAW)
        # One aligned 8-byte store per item, where struct.pack_into zeroes the
        # field first and then writes it byte by byte.
        self._words = memoryview(self._buf).cast("Q")
        self._first_word = self.layout.slots_offset // 8
        self._table = SymbolTable(self._buf, self._words, self.layout, path=str(self.path))
        self._ids = {sid: index for index, sid in enumerate(self._table.names())}
        words = self._words
        self._n = int(words[_INDEX_WORD])
        self.epoch = int(words[EPOCH_OFFSET // 8]) + 1
        words[EPOCH_OFFSET // 8] = self.epoch
        words[WRITER_PID_OFFSET // 8] = os.getpid()

    def _lock(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(self._fd)
            raise RingError(f"ring {self.path} already has a writer (pid {pid})") from None

    def _open_layout(self, capacity: int, symbol_capacity: int) -> Layout:
        size = file_size(self._fd)
        if size == 0:
            layout = Layout(capacity=capacity, symbol_capacity=symbol_capacity)
            os.ftruncate(self._fd, layout.file_size)
            with map_file(self._fd, layout.file_size, writable=True) as buf:
                # The magic goes last: a reader never sees a header half written.
                fixed = layout.pack_fixed(time.time_ns())
                buf[8 : len(fixed)] = fixed[8:]
                buf[0:8] = fixed[0:8]
            return layout
        with map_file(self._fd, size, writable=False) as buf:
            layout = read_layout(buf[:HEADER_BYTES], path=str(self.path))
        if size < layout.file_size:
            raise RingError(f"{self.path} is truncated: {size} of {layout.file_size} bytes")
        return layout

    def __enter__(self) -> RingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unmap the ring and release the writer lock; the ring stays readable. Idempotent."""
        if not self._buf.closed:
            del self._slots, self._raw
            self._words.release()
            self._buf.close()
            os.close(self._fd)

    @property
    def written(self) -> int:
        """Ticks written into this ring so far, by every writer it has had."""
        return self._n

    def symbol_id(self, sid: str) -> int:
        """The id of `sid` in the ring's table, adding it on first use.

        Raises:
            RingError: The table is full or `sid` is not ASCII of at most 32 bytes.
        """
        index = self._ids.get(sid)
        if index is None:
            try:
                index = self._table.append(sid)
            except UnicodeEncodeError as exc:
                raise RingError(f"symbol {sid!r} is not ASCII") from exc
            self._ids[sid] = index
        return index

    def write(
        self,
        sid: str,
        price: float,
        ts: float,
        bid: float = _NAN,
        ask: float = _NAN,
        size: float = _NAN,
    ) -> int:
        """Write one tick; returns its number ``n``. Absent bid/ask/size are NaN.

        Raises:
            RingError: A new symbol does not fit in the table, or `ts` is not
                in [0, 9.2e9) seconds (int64 nanoseconds); nothing is written.
        """
        sid_id = self._ids.get(sid)
        if sid_id is None:
            sid_id = self.symbol_id(sid)
        if not 0.0 <= ts < MAX_TS:
            raise RingError(f"ts {ts!r} does not fit the ring's int64 nanoseconds")
        n = self._n
        word = self._first_word + (n & self._mask) * 8
        words = self._words
        words[word] = 2 * n + 1
        _pack_body(
            self._buf, word * 8 + 8, time_ns(), round(ts * 1e9), price, bid, ask, size, sid_id, 0
        )
        words[word] = 2 * n + 2
        self._n = n + 1
        words[_INDEX_WORD] = n + 1
        return n

    def write_quote(self, quote: Mapping[str, Any]) -> int:
        """Write a quote as the codec produces it (sid, price, ts, optional bid/ask/size)."""
        return self.write(
            quote["sid"],
            quote["price"],
            quote["ts"],
            quote.get("bid", _NAN),
            quote.get("ask", _NAN),
            quote.get("size", _NAN),
        )

    def write_batch(self, ticks: np.ndarray) -> int:
        """Write a `TICK_DTYPE` array (``sid`` holding ids from `symbol_id`); returns how many.

        ``seq`` is set here; ``recv_ns`` is kept when non-zero, else stamped
        now. Written in steps of `MAX_CHUNK` (or the capacity, if smaller),
        each published as a whole.

        Raises:
            ConfigError: `ticks` is not a `TICK_DTYPE` array.
        """
        if not isinstance(ticks, np.ndarray) or ticks.dtype != TICK_DTYPE:
            raise ConfigError("write_batch takes a numpy array of ring.TICK_DTYPE records")
        step = min(MAX_CHUNK, self.layout.capacity)
        for start in range(0, len(ticks), step):
            self._write_chunk(ticks[start : start + step])
        return len(ticks)

    def _write_chunk(self, chunk: np.ndarray) -> None:
        n0, count = self._n, len(chunk)
        numbers = np.arange(n0, n0 + count, dtype=np.uint64)
        records = chunk.view(_RAW).copy().view(TICK_DTYPE)
        records["seq"] = 2 * numbers + 1
        unstamped = records["recv_ns"] == 0
        if unstamped.any():
            records["recv_ns"][unstamped] = time.time_ns()
        parts = _contiguous_parts(n0 & self._mask, count, self.layout.capacity)
        seq = self._slots["seq"]
        for slot, src, length in parts:
            seq[slot : slot + length] = records["seq"][src : src + length]
        raw = records.view(_RAW)
        for slot, src, length in parts:
            self._raw[slot : slot + length] = raw[src : src + length]
        for slot, src, length in parts:
            seq[slot : slot + length] = 2 * numbers[src : src + length] + 2
        self._n = n0 + count
        self._words[_INDEX_WORD] = self._n


def _contiguous_parts(first_slot: int, count: int, capacity: int) -> list[tuple[int, int, int]]:
    """(slot, source index, length) runs of `count` ticks from `first_slot`, split at the wrap."""
    head = min(count, capacity - first_slot)
    parts = [(first_slot, 0, head)]
    if count > head:
        parts.append((0, head, count - head))
    return parts


def _read_pid(fd: int) -> int | None:
    try:
        return int(U64.unpack(os.pread(fd, 8, WRITER_PID_OFFSET))[0])
    except (OSError, struct.error):
        return None
