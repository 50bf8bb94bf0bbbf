"""Where rings live, which processors they run on, and mapping their files."""

from __future__ import annotations

import fcntl
import mmap
import os
import platform
from pathlib import Path

from tickbus.errors import RingError

SHM_DIR = Path("/dev/shm")

# The seqlock in this package has no memory fences: Python cannot issue them.
# It relies on the processor keeping stores in program order (and loads in
# program order), which x86-64's total store order guarantees. ARM and POWER
# may reorder them, so a reader there could accept a torn tick.
ORDERED_MACHINES = frozenset({"x86_64", "amd64", "AMD64", "i686", "i386"})


def ring_path(name: str) -> Path:
    """The file of ring `name`: ``/dev/shm/tickbus-ring-<name>``, or `name` itself if it is a path.

    Raises:
        RingError: An empty name.
    """
    if not name:
        raise RingError("a ring needs a name (or a path)")
    if "/" in name:
        return Path(name)
    return SHM_DIR / f"tickbus-ring-{name}"


def check_processor(machine: str | None = None) -> None:
    """Refuse to run on a processor for which the lock-free ordering argument does not hold.

    Raises:
        RingError: The processor may reorder stores (e.g. arm64): there is no
            fenced path yet, so a reader could return a torn tick.
    """
    machine = machine or platform.machine()
    if machine not in ORDERED_MACHINES:
        raise RingError(
            f"the tick ring needs a processor with total store order (x86-64); this is "
            f"{machine}, where its unfenced seqlock could return torn ticks"
        )


def map_file(fd: int, size: int, *, writable: bool) -> mmap.mmap:
    """Map `size` bytes of the open file `fd`, shared with every other process."""
    access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
    return mmap.mmap(fd, size, access=access)


def file_size(fd: int) -> int:
    """The size of the open file `fd`, in bytes."""
    return os.fstat(fd).st_size


def writer_alive(path: Path) -> bool:
    """Whether a live process holds the writer lock of the ring at `path`.

    Probes with a shared, non-blocking `flock`, released at once; a writer
    starting in that instant is refused and may simply retry.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
