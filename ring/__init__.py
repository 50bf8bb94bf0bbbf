"""The host-local tick ring: one writer, any number of readers, over a memory-mapped file.

A ring is a file (by default ``/dev/shm/tickbus-ring-<name>``) holding a
header, a symbol table and a power-of-two number of 64-byte tick slots
(`TICK_DTYPE`). `RingWriter` appends ticks and is never blocked by readers;
each `RingReader` keeps its own cursor, never returns a torn tick, and counts
exactly the ticks it lost when the writer lapped it. The ordering argument
holds on x86-64 only; other processors are refused (see `check_processor`).
"""

from ring._cli import ring_group
from ring._file import check_processor, ring_path, writer_alive
from ring._layout import TICK_DTYPE
from ring._reader import RingReader, Tick
from ring._writer import DEFAULT_CAPACITY, RingWriter

__all__ = [
    "DEFAULT_CAPACITY",
    "TICK_DTYPE",
    "RingReader",
    "RingWriter",
    "Tick",
    "check_processor",
    "ring_group",
    "ring_path",
    "writer_alive",
]
