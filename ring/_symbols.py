"""The ring's symbol table: tick records carry a small id; the table turns it back into a name."""

from __future__ import annotations

import mmap

from ring._layout import SYMBOL_BYTES, SYMBOL_COUNT_OFFSET, Layout
from tickbus.errors import RingError


class SymbolTable:
    """Read and (for the writer) append the names in a ring's table.

    The writer writes a new name into its entry first and only then raises the
    count, so a reader that sees the count also sees every name below it.
    Names are never changed or removed.
    """

    def __init__(self, buf: mmap.mmap, words: memoryview, layout: Layout, *, path: str) -> None:
        self._buf = buf
        self._words = words  # the ring as aligned 8-byte words
        self._offset = layout.symbols_offset
        self._capacity = layout.symbol_capacity
        self._path = path

    def count(self) -> int:
        """How many names the table holds."""
        return int(self._words[SYMBOL_COUNT_OFFSET // 8])

    def names(self) -> list[str]:
        """Every name, by id."""
        names = []
        for index in range(self.count()):
            start = self._offset + index * SYMBOL_BYTES
            names.append(self._buf[start : start + SYMBOL_BYTES].rstrip(b"\0").decode("ascii"))
        return names

    def append(self, name: str) -> int:
        """Add `name` (ASCII, at most 32 bytes); returns its id. Writer only.

        Raises:
            RingError: The table is full, or the name does not fit.
        """
        encoded = name.encode("ascii")
        if len(encoded) > SYMBOL_BYTES:
            raise RingError(f"symbol {name!r} is longer than {SYMBOL_BYTES} bytes")
        index = self.count()
        if index >= self._capacity:
            raise RingError(
                f"the symbol table of ring {self._path} is full ({self._capacity} symbols); "
                "create the ring with a larger symbol capacity"
            )
        start = self._offset + index * SYMBOL_BYTES
        self._buf[start : start + SYMBOL_BYTES] = encoded.ljust(SYMBOL_BYTES, b"\0")
        self._words[SYMBOL_COUNT_OFFSET // 8] = index + 1
        return index
