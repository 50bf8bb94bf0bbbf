"""The ring's file layout: header, symbol table and tick slots, and the checks on them.

File (all little-endian, every region page-aligned)::

    offset 0                      header (one page)
    HEADER_BYTES                  symbol table: symbol_capacity x 32-byte ASCII names
    HEADER_BYTES + symbols bytes  slots: capacity x 64-byte tick records

A slot is one `TICK_DTYPE` record whose first field, ``seq``, is the seqlock:
``2*n + 1`` while tick number ``n`` is being written into it, ``2*n + 2`` once
it is complete (0: never written). Tick ``n`` lives in slot ``n % capacity``.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from tickbus.errors import RingError

MAGIC = 0x474E495253554254  # b"TBUSRING" read as a little-endian uint64
LAYOUT_VERSION = 1
PAGE = 4096
HEADER_BYTES = PAGE
SYMBOL_BYTES = 32

TICK_DTYPE = np.dtype(
    [
        ("seq", "<u8"),  # seqlock; see the module docstring
        ("recv_ns", "<i8"),  # when the writer received the tick (time.time_ns)
        ("src_ns", "<i8"),  # the quote's own ts, in ns
        ("price", "<f8"),
        ("bid", "<f8"),  # NaN when the quote had none
        ("ask", "<f8"),  # NaN when the quote had none
        ("size", "<f8"),  # NaN when the quote had none
        ("sid", "<u4"),  # index into the symbol table
        ("pad", "<u4"),
    ],
    align=True,
)
assert TICK_DTYPE.itemsize == 64, "one tick per cache line"

# The fixed fields are packed once; the hot ones sit on their own cache line
# (offset 64) so readers polling them do not share a line with anything static.
_FIXED = struct.Struct("<QIIQQQ")  # magic, version, record size, capacity, symbol cap, created
WRITE_INDEX_OFFSET = 64  # u8: number of ticks written so far (next n)
SYMBOL_COUNT_OFFSET = 72  # u8: symbols in the table
EPOCH_OFFSET = 128  # u8: incremented by every writer that opens the ring
WRITER_PID_OFFSET = 136  # u8: pid of the current (or last) writer
U64 = struct.Struct("<Q")
BODY = struct.Struct("<qqddddII")
"""A slot after its ``seq``: recv_ns, src_ns, price, bid, ask, size, sid, pad."""
assert U64.size + BODY.size == TICK_DTYPE.itemsize


class Layout:
    """Sizes and offsets of one ring file."""

    def __init__(self, *, capacity: int, symbol_capacity: int) -> None:
        self.capacity = capacity
        self.symbol_capacity = symbol_capacity
        self.symbols_offset = HEADER_BYTES
        self.slots_offset = HEADER_BYTES + _round_up(symbol_capacity * SYMBOL_BYTES)
        self.file_size = self.slots_offset + capacity * TICK_DTYPE.itemsize

    def pack_fixed(self, created_ns: int) -> bytes:
        """The header's fixed part, as the creator writes it."""
        return _FIXED.pack(
            MAGIC,
            LAYOUT_VERSION,
            TICK_DTYPE.itemsize,
            self.capacity,
            self.symbol_capacity,
            created_ns,
        )


def read_layout(header: bytes, *, path: str) -> Layout:
    """The layout a ring file's header describes.

    Raises:
        RingError: Not a tick ring, or a layout this code does not read
            (another version or record size).
    """
    if len(header) < _FIXED.size:
        raise RingError(f"{path} is not a tick ring: it is only {len(header)} bytes long")
    magic, version, record_size, capacity, symbol_capacity, _created = _FIXED.unpack_from(header)
    if magic != MAGIC:
        raise RingError(f"{path} is not a tick ring (magic {magic:#x})")
    if version != LAYOUT_VERSION or record_size != TICK_DTYPE.itemsize:
        raise RingError(
            f"{path} has ring layout version {version} with {record_size}-byte records; "
            f"this tickbus reads version {LAYOUT_VERSION} with {TICK_DTYPE.itemsize}-byte records"
        )
    return Layout(capacity=capacity, symbol_capacity=symbol_capacity)


def _round_up(size: int) -> int:
    return max(PAGE, math.ceil(size / PAGE) * PAGE)
