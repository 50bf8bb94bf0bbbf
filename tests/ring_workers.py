"""Ring writers and readers that tests/test_ring.py runs as real processes.

Run as ``python -m tests.ring_workers ROLE JSON_KWARGS``. A role reads
commands from stdin and writes events to stdout, one JSON object per line
(``{"cmd": ...}`` in, ``{"event": ...}`` out); it exits when stdin closes. An
exception is reported as an ``error`` event carrying the traceback.

Every tick a worker writes carries its own number ``n`` in every field (see
`tick_array`), so a reader can check each record it gets on its own: a torn
record, or one from another lap, breaks the relation.
"""

from __future__ import annotations

import json
import os
import random
import select
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ring import TICK_DTYPE, RingReader, RingWriter, Tick
from tickbus.errors import RingError

SYMBOLS = ("S0", "S1", "S2")
"""Tick ``n`` is for symbol ``SYMBOLS[n % 3]``."""
GIVE_UP_S = 100.0
"""A reader that has not reached its target by then reports an error (the test timeout is 120 s)."""


# --- the tick contents ---------------------------------------------------------------------------


def tick_array(n0: int, count: int, sid_ids: np.ndarray) -> np.ndarray:
    """Ticks ``n0 .. n0+count-1`` as `TICK_DTYPE` records whose fields all derive from ``n``."""
    n = np.arange(n0, n0 + count, dtype=np.int64)
    ticks = np.zeros(count, TICK_DTYPE)
    ticks["recv_ns"] = 5 * n + 1
    ticks["src_ns"] = 3 * n
    ticks["price"] = n
    ticks["bid"] = n + 0.5
    ticks["ask"] = n + 1
    ticks["size"] = 2 * n
    ticks["sid"] = sid_ids[n % len(SYMBOLS)]
    return ticks


def write_single(writer: RingWriter, sid: str | None = None) -> None:
    """Write the next tick with `RingWriter.write` (the same fields as `tick_array`)."""
    n = writer.written
    symbol = SYMBOLS[n % len(SYMBOLS)] if sid is None else sid
    writer.write(symbol, float(n), 3 * n / 1e9, bid=n + 0.5, ask=n + 1.0, size=2.0 * n)


def batch_mismatches(ticks: np.ndarray, names: list[str]) -> int:
    """How many records of a `read_batch` result break the relations of `tick_array`.

    ``n`` comes from each record's own ``seq`` (``2n + 2``); an odd ``seq`` is a mismatch.
    """
    seq = ticks["seq"].astype(np.int64)
    n = (seq - 2) // 2
    expected_sid = np.array([names.index(s) for s in SYMBOLS], dtype=np.uint32)[n % 3]
    bad = (
        (seq % 2 != 0)
        | (seq < 2)
        | (ticks["price"] != n)
        | (ticks["bid"] != n + 0.5)
        | (ticks["ask"] != n + 1)
        | (ticks["size"] != 2 * n)
        | (ticks["src_ns"] != 3 * n)
        | (ticks["sid"] != expected_sid)
        | (ticks["pad"] != 0)
    )
    return int(bad.sum())


def tick_matches(tick: Tick) -> bool:
    """Whether a `RingReader.read` result has the fields `write_single` gives tick ``tick.n``."""
    n = tick.n
    return (
        tick.sid == SYMBOLS[n % 3]
        and tick.price == n
        and tick.bid == n + 0.5
        and tick.ask == n + 1
        and tick.size == 2 * n
        and round(tick.ts * 1e9) == 3 * n
    )


class Tally:
    """What one reader got: counts, order, content, and each time it was lapped."""

    MAX_EVENTS = 50

    def __init__(self, start: int) -> None:
        self.start = start
        self.returned = 0
        self.first: int | None = None
        self.last: int | None = None
        self.gaps = 0  # ticks missing between what it returned (and before the first)
        self.disorder = 0  # times a number was not above the previous one
        self.mismatches = 0
        self.lapped = 0
        self.events: list[dict[str, int]] = []  # the first lappings, with where the reader resumed
        self._pending: dict[str, int] | None = None

    def add_batch(self, ticks: np.ndarray, before: int, after: int, names: list[str]) -> None:
        """Check one `read_batch` result; the reader's cursor went from `before` to `after`."""
        if not len(ticks):
            return
        numbers = (ticks["seq"].astype(np.int64) - 2) // 2
        self.mismatches += batch_mismatches(ticks, names)
        # Numbers outside what the cursor passed over are not the ticks the reader meant.
        self.mismatches += int(((numbers < before) | (numbers >= after)).sum())
        self.disorder += int((np.diff(numbers) <= 0).sum())
        self._count(int(numbers[0]), int(numbers[-1]), len(ticks))

    def add_tick(self, tick: Tick) -> None:
        """Check one `read` result."""
        self.mismatches += not tick_matches(tick)
        self._count(tick.n, tick.n, 1)

    def lapped_at(self, cursor_before: int, lost: int) -> None:
        """The reader's `lost` grew by `lost` in a read that started at `cursor_before`."""
        self.lapped += 1
        if len(self.events) < self.MAX_EVENTS:
            self._pending = {"cursor_before": cursor_before, "lost": lost, "next": -1}
            self.events.append(self._pending)

    def _count(self, first: int, last: int, count: int) -> None:
        expected = self.start if self.last is None else self.last + 1
        if self.last is not None and first <= self.last:
            self.disorder += 1
        # Before this batch, and inside it: read_batch leaves out overwritten ticks.
        self.gaps += (first - expected) + (last - first + 1 - count)
        if self.first is None:
            self.first = first
        self.last = last
        self.returned += count
        if self._pending is not None:
            self._pending["next"] = first
            self._pending = None

    def report(self) -> dict[str, Any]:
        fields = dict(vars(self))
        del fields["_pending"]
        return fields


# --- the line protocol ---------------------------------------------------------------------------


class Channel:
    """Commands from stdin, events to stdout; the role exits when stdin closes."""

    def __init__(self) -> None:
        self._buffer = b""
        self._commands: list[dict[str, Any]] = []

    def emit(self, event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()

    def poll(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """The commands that arrived, waiting up to `timeout` s for the first one."""
        if not self._commands and select.select([0], [], [], timeout)[0]:
            data = os.read(0, 65536)
            if not data:
                raise SystemExit(0)  # the test closed our stdin: it is done with us
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            self._commands += [json.loads(line) for line in lines if line]
        commands, self._commands = self._commands, []
        return commands

    def next(self, timeout: float = GIVE_UP_S) -> dict[str, Any]:
        """The next command; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while not self._commands:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no command within {timeout} s")
            self._commands = self.poll(remaining)
        return self._commands.pop(0)


# --- writers -------------------------------------------------------------------------------------


def _open_writer(ch: Channel, path: str, capacity: int, symbol_capacity: int) -> RingWriter | None:
    try:
        writer = RingWriter(path, capacity=capacity, symbol_capacity=symbol_capacity)
    except RingError as exc:
        ch.emit("refused", error=str(exc))
        return None
    for sid in SYMBOLS:
        writer.symbol_id(sid)
    ch.emit("ready", pid=os.getpid(), written=writer.written, epoch=writer.epoch)
    return writer


def _sid_ids(writer: RingWriter) -> np.ndarray:
    return np.array([writer.symbol_id(s) for s in SYMBOLS], dtype=np.uint32)


def commanded_writer(
    ch: Channel, *, path: str, capacity: int = 1024, symbol_capacity: int = 64
) -> None:
    """Writes what it is told: ``{"cmd": "write", "count": k, "mode": "batch"|"single"}``.

    ``sid`` in a write command names the symbol of every tick (single mode
    only). ``{"cmd": "exit"}`` closes the writer. Each command is answered.
    """
    writer = _open_writer(ch, path, capacity, symbol_capacity)
    if writer is None:
        return
    with writer:
        while (command := ch.next())["cmd"] != "exit":
            count, sid = command["count"], command.get("sid")
            if command["mode"] == "batch":
                writer.write_batch(tick_array(writer.written, count, _sid_ids(writer)))
            else:
                for _ in range(count):
                    write_single(writer, sid)
            ch.emit("wrote", written=writer.written)
    ch.emit("closed")


def paced_writer(
    ch: Channel, *, path: str, capacity: int, total: int, rate: float, batch: int
) -> None:
    """On ``go``, writes `total` ticks with `write_batch`, `batch` at a time, at about `rate`/s."""
    writer = _open_writer(ch, path, capacity, 64)
    if writer is None:
        return
    with writer:
        ch.next()  # go
        ids, t0 = _sid_ids(writer), time.monotonic()
        while writer.written < total:
            ahead = t0 + writer.written / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # pacing the load, not waiting for anything
            count = min(batch, total - writer.written)
            writer.write_batch(tick_array(writer.written, count, ids))
        ch.emit("done", written=writer.written, seconds=time.monotonic() - t0)


def hammer_writer(
    ch: Channel, *, path: str, capacity: int, seconds: float, at_least: int, seed: int
) -> None:
    """On ``go``, writes flat out: random-sized batches and bursts of single writes.

    Goes on for `seconds`, and longer if it has not yet written `at_least` ticks.

    Batch sizes go up to three times the capacity, so a batch often covers the
    whole ring; readers are overwritten while they copy.
    """
    writer = _open_writer(ch, path, capacity, 64)
    if writer is None:
        return
    rng = random.Random(seed)
    with writer:
        ch.next()  # go
        ids, end = _sid_ids(writer), time.monotonic() + seconds
        singles = batches = 0
        while time.monotonic() < end or writer.written < at_least:
            if rng.random() < 0.5:
                writer.write_batch(tick_array(writer.written, rng.randint(1, 3 * capacity), ids))
                batches += 1
            else:
                for _ in range(rng.randint(1, 2 * capacity)):
                    write_single(writer)
                singles += 1
        ch.emit("done", written=writer.written, batches=batches, single_bursts=singles)


def endless_writer(ch: Channel, *, path: str, capacity: int, seed: int) -> None:
    """On ``go``, writes until killed, never more than the credit the test grants.

    ``{"cmd": "credit", "upto": N}`` allows ticks up to number ``N``; the test
    grants credit as its reader advances, so the writer never laps it. Batches
    and single writes alternate, so a kill may land inside either.
    """
    writer = _open_writer(ch, path, capacity, 64)
    if writer is None:
        return
    rng = random.Random(seed)
    upto = ch.next()["upto"]
    ids = _sid_ids(writer)
    while True:
        for command in ch.poll(0.0 if writer.written < upto else 0.05):
            upto = max(upto, command["upto"])
        room = upto - writer.written
        if room <= 0:
            continue
        if rng.random() < 0.5:
            writer.write_batch(tick_array(writer.written, rng.randint(1, min(room, 500)), ids))
        else:
            for _ in range(rng.randint(1, min(room, 50))):
                write_single(writer)


# --- readers -------------------------------------------------------------------------------------


def checking_reader(
    ch: Channel,
    *,
    path: str,
    start: Literal["latest", "oldest"] = "latest",
    max_n: int = 4096,
    single: bool = False,
    total: int | None = None,
    progress: bool = False,
) -> None:
    """Reads and checks every tick until its cursor reaches `total`, then reports a `Tally`.

    `total` may instead come later as ``{"cmd": "total", "total": N}``. With
    `progress`, emits ``caught_up`` with the cursor whenever it has read all
    there is (and the cursor moved since the last one). Reads with
    `RingReader.read` when `single`, else with `read_batch` (`max_n`).
    """
    with RingReader(path, start=start) as reader:
        ch.emit("attached", cursor=reader.cursor, epoch=reader.epoch())
        tally, reported = Tally(reader.cursor), reader.cursor
        give_up = time.monotonic() + GIVE_UP_S
        while total is None or reader.cursor < total:
            lost, cursor = reader.lost, reader.cursor
            got = reader.read() if single else reader.read_batch(max_n)
            if reader.lost != lost:
                tally.lapped_at(cursor, reader.lost - lost)
            if isinstance(got, Tick):
                tally.add_tick(got)
                continue
            if got is not None and len(got):
                tally.add_batch(got, cursor, reader.cursor, reader.symbols())
                continue
            if progress and reader.cursor != reported:
                reported = reader.cursor
                ch.emit("caught_up", cursor=reported, lost=reader.lost)
            for command in ch.poll():
                total = command["total"]
            if time.monotonic() > give_up:
                raise TimeoutError(f"cursor {reader.cursor} still short of {total}")
            reader.wait(timeout=0.01)
        ch.emit(
            "result",
            lost=reader.lost,
            cursor=reader.cursor,
            writer_restarts=reader.writer_restarts,
            **tally.report(),
        )


ROLES: dict[str, Callable[..., None]] = {
    "commanded_writer": commanded_writer,
    "paced_writer": paced_writer,
    "hammer_writer": hammer_writer,
    "endless_writer": endless_writer,
    "checking_reader": checking_reader,
}


def main() -> None:
    role, kwargs = sys.argv[1], json.loads(sys.argv[2])
    ch = Channel()
    try:
        ROLES[role](ch, **kwargs)
    except SystemExit:
        raise
    except BaseException:
        ch.emit("error", traceback=traceback.format_exc())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
