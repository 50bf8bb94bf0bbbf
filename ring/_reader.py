"""A reader of a ring: its own cursor, untorn ticks, and an exact count of what it lost."""

from __future__ import annotations

import math
import os
import time
from types import TracebackType
from typing import Literal, NamedTuple

import numpy as np

from broker import Quote
from ring._file import check_processor, file_size, map_file, ring_path
from ring._layout import (
    BODY,
    EPOCH_OFFSET,
    HEADER_BYTES,
    TICK_DTYPE,
    WRITE_INDEX_OFFSET,
    WRITER_PID_OFFSET,
    read_layout,
)
from ring._symbols import SymbolTable
from tickbus.errors import RingError

Start = Literal["latest", "oldest"]


class Tick(NamedTuple):
    """One tick as `RingReader.read` returns it (absent bid/ask/size are NaN)."""

    n: int
    sid: str
    price: float
    ts: float
    bid: float
    ask: float
    size: float
    recv_ns: int


class RingReader:
    """Reads a ring from its own cursor; any number may read one ring at once.

    A reader never returns a torn tick: it accepts tick ``n`` only when the
    slot's ``seq`` is ``2n+2`` both before and after copying it. When the
    writer has lapped it (overwritten ticks it had not read yet), the reader
    skips to the oldest tick still intact, adds the number skipped to `lost`,
    and goes on; ``returned + lost`` always equals the ticks written between
    its start and its cursor. The writer knows nothing of readers, so a slow
    or stopped reader costs the writer nothing.

    `writer_restarts` counts how often another writer took the ring over while
    this reader was attached (tick numbering continues without a gap).

    Args:
        name: Ring name or path, as for `RingWriter`.
        start: ``"latest"`` reads only ticks written from now on;
            ``"oldest"`` starts at the oldest tick still in the ring.

    Raises:
        RingError: No such ring, not a ring of this layout, or an unsupported processor.
    """

    def __init__(self, name: str, *, start: Start = "latest") -> None:
        check_processor()
        self.path = ring_path(name)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise RingError(f"no ring at {self.path}; start its writer first") from None
        try:
            size = file_size(fd)
            if size < HEADER_BYTES:
                raise RingError(
                    f"{self.path} is not a tick ring (yet): {size} bytes; if its writer is "
                    "starting, try again in a moment"
                )
            with map_file(fd, HEADER_BYTES, writable=False) as header:
                self.layout = read_layout(header[:], path=str(self.path))
            if size < self.layout.file_size:
                raise RingError(
                    f"{self.path} is truncated: {size} of {self.layout.file_size} bytes"
                )
            self._buf = map_file(fd, self.layout.file_size, writable=False)
        finally:
            os.close(fd)
        self.capacity = self.layout.capacity
        self._slots = np.frombuffer(self._buf, TICK_DTYPE, self.capacity, self.layout.slots_offset)
        self._seq = self._slots["seq"]
        self._raw = self._slots.view("V64")  # raw record copies, see RingWriter
        # 8-byte words (seq, header counters) are read as one aligned load each.
        self._words = memoryview(self._buf).cast("Q")
        self._first_word = self.layout.slots_offset // 8
        self._slots_offset = self.layout.slots_offset
        self._table = SymbolTable(self._buf, self._words, self.layout, path=str(self.path))
        self._names: list[str] = []
        written = self.written()
        self._cursor = written if start == "latest" else max(0, written - self.capacity + 1)
        self.lost = 0
        self._epoch = self.epoch()
        self.writer_restarts = 0

    def __enter__(self) -> RingReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unmap the ring (again: no effect)."""
        if not self._buf.closed:
            del self._slots, self._seq, self._raw
            self._words.release()
            self._buf.close()

    @property
    def cursor(self) -> int:
        """The number of the next tick this reader will return."""
        return self._cursor

    def written(self) -> int:
        """Ticks the writer has published so far."""
        return self._header(WRITE_INDEX_OFFSET)

    def writer_pid(self) -> int:
        """The pid of the ring's current (or last) writer."""
        return self._header(WRITER_PID_OFFSET)

    def epoch(self) -> int:
        """How many writers have opened the ring so far."""
        return self._header(EPOCH_OFFSET)

    def symbols(self) -> list[str]:
        """Every symbol name in the ring's table, by id."""
        return self._table.names()

    def read_batch(self, max_n: int = 4096) -> np.ndarray:
        """The next `max_n` ticks that are intact, oldest first, as a `TICK_DTYPE` array.

        Ticks among them that were overwritten before or during the copy are
        left out and counted in `lost`; the result may be empty.
        """
        written = self._available()
        count = min(max_n, written - self._cursor)
        if count <= 0:
            return self._slots[:0].copy()
        first = self._cursor
        numbers = np.arange(first, first + count, dtype=np.uint64)
        slots = numbers & np.uint64(self.capacity - 1)
        # Three separate copies, in this order: seq, records, seq again.
        before = self._seq[slots]
        ticks: np.ndarray = self._raw[slots].view(TICK_DTYPE)
        after = self._seq[slots]
        expected = 2 * numbers + 2
        intact = (before == expected) & (after == expected)
        self._cursor = first + count
        if intact.all():
            return ticks
        # The writer overwrote these slots (lapped us, or died half-way through
        # a batch): those ticks are gone. Every intact one is still good.
        self.lost += count - int(intact.sum())
        survivors: np.ndarray = ticks[intact]
        return survivors

    def read(self) -> Tick | None:
        """The next untorn tick, or None when there is none yet."""
        buf, words, mask = self._buf, self._words, self.capacity - 1
        while True:
            written = self._available()
            n = self._cursor
            if n >= written:
                return None
            word = self._first_word + (n & mask) * 8
            expected = 2 * n + 2
            if words[word] == expected:
                recv_ns, src_ns, price, bid, ask, size, sid_id, _ = BODY.unpack_from(
                    buf, word * 8 + 8
                )
                if words[word] == expected:
                    self._cursor = n + 1
                    return Tick(
                        n, self.symbol(sid_id), price, _seconds(src_ns), bid, ask, size, recv_ns
                    )
            self._skip_overwritten()

    def wait(self, timeout: float | None = None, *, spin: float = 0.0) -> bool:
        """Wait until a tick is there to read; False if `timeout` seconds passed first.

        Busy-polls for `spin` seconds (lowest latency, one core busy), then
        sleeps between polls, from 50 µs doubling up to 1 ms.
        """
        start = time.perf_counter()
        deadline = math.inf if timeout is None else start + timeout
        spin_until = start + spin
        pause = 50e-6
        while self.written() <= self._cursor:
            now = time.perf_counter()
            if now >= deadline:
                return False
            if now >= spin_until:
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, 1e-3)
        return True

    def symbol(self, sid_id: int) -> str:
        """The name of symbol id `sid_id`."""
        if sid_id >= len(self._names):
            self._names = self._table.names()
        return self._names[sid_id]

    def to_quotes(self, ticks: np.ndarray) -> list[Quote]:
        """Quotes (as the codec makes them) for a `read_batch` result; NaN fields are left out."""
        if len(ticks) and int(ticks["sid"].max()) >= len(self._names):
            self._names = self._table.names()
        names = self._names
        quotes: list[Quote] = []
        columns = zip(
            ticks["sid"].tolist(),
            ticks["price"].tolist(),
            map(_seconds, ticks["src_ns"].tolist()),
            ticks["bid"].tolist(),
            ticks["ask"].tolist(),
            ticks["size"].tolist(),
            strict=True,
        )
        for sid_id, price, ts, bid, ask, size in columns:
            quote = Quote(sid=names[sid_id], price=price, ts=ts)
            if bid == bid:  # not NaN
                quote["bid"] = bid
            if ask == ask:
                quote["ask"] = ask
            if size == size:
                quote["size"] = size
            quotes.append(quote)
        return quotes

    def _available(self) -> int:
        """Ticks published; first moves the cursor past any the writer has lapped."""
        written = self.written()
        epoch = self.epoch()
        if epoch != self._epoch:
            self.writer_restarts += epoch - self._epoch
            self._epoch = epoch
        oldest = written - self.capacity + 1
        if self._cursor < oldest:
            self.lost += oldest - self._cursor
            self._cursor = oldest
        return written

    def _skip_overwritten(self) -> None:
        """After a tick failed its check: the writer lapped us; resume at the oldest intact."""
        oldest = max(self._cursor + 1, self.written() - self.capacity + 1)
        self.lost += oldest - self._cursor
        self._cursor = oldest

    def _header(self, offset: int) -> int:
        return int(self._words[offset // 8])


def _seconds(ns: int) -> float:
    """Nanoseconds since the epoch as float seconds, as close as a float gets."""
    whole, part = divmod(ns, 1_000_000_000)
    return whole + part / 1e9
