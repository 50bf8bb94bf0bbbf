"""The tick ring over real shared memory, with real writer and reader processes.

The writers and readers run as ``python -m tests.ring_workers ROLE`` processes
(see that module); every tick they write carries its number ``n`` in every
field, so each reader checks each record it returns on its own.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ring import RingReader, RingWriter, check_processor, writer_alive
from tests.ring_workers import SYMBOLS, batch_mismatches, tick_array, tick_matches, write_single
from tests.support import REPO_ROOT, unique, wait_until
from tickbus.errors import ConfigError, RingError

SHM = Path("/dev/shm")
VERSION_OFFSET, RECORD_SIZE_OFFSET = 8, 12  # u4 fields of the header, after the u8 magic


class Worker:
    """One ``tests.ring_workers`` role in its own process: JSON lines in and out."""

    def __init__(self, role: str, kwargs: dict[str, Any], log_path: Path) -> None:
        self.role = role
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.ring_workers", role, json.dumps(kwargs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO_ROOT,
        )
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self._stdin, self._stdout = self.popen.stdin, self.popen.stdout
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._eof = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, cmd: str, **fields: Any) -> None:
        self._stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        self._stdin.flush()

    def expect(
        self,
        event: str,
        *,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> dict[str, Any]:
        """The next `event` that satisfies `where` (earlier events are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            while self._events:
                message = self._events.pop(0)
                if message["event"] == "error":
                    raise AssertionError(f"{self.role} failed:\n{message['traceback']}")
                if message["event"] == event and where(message):
                    return message
            if self._eof:
                raise AssertionError(
                    f"{self.role} exited ({self.popen.wait(5)}) before {event}:\n{self.log()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event} from {self.role} within {timeout} s")
            self._pump(min(remaining, 0.1))

    def _pump(self, timeout: float) -> None:
        fd = self._stdout.fileno()
        if select.select([fd], [], [], timeout)[0]:
            data = os.read(fd, 65536)
            self._eof = not data
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            self._events += [json.loads(line) for line in lines if line]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> int:
        """SIGKILL, and reap it: the kernel has closed its files when this returns."""
        self.popen.send_signal(signal.SIGKILL)
        return self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._stdin.close()
        self._stdout.close()
        self._log.close()


class Workers:
    """Starts worker processes for one test; all stopped at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self._workers: list[Worker] = []

    def start(self, role: str, **kwargs: Any) -> Worker:
        log_path = self._tmp_path / f"{role}-{len(self._workers)}.log"
        worker = Worker(role, kwargs, log_path)
        self._workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in reversed(self._workers):
            worker.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {w.role} (pid {w.pid})\n{w.log()}" for w in self._workers)


@pytest.fixture
def workers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workers]:
    started = Workers(tmp_path)
    yield started
    started.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(started.logs())


@pytest.fixture
def ring_file(tmp_path: Path) -> Iterator[str]:
    """A path for a ring no other test uses (in /dev/shm, like real rings); removed at teardown."""
    path = (SHM if SHM.is_dir() else tmp_path) / unique("tickbus-test-ring-")
    yield str(path)
    path.unlink(missing_ok=True)


def write(writer: Worker, count: int, mode: str = "batch", **fields: Any) -> int:
    """Have a `commanded_writer` write `count` ticks; returns how many the ring has."""
    writer.send("write", count=count, mode=mode, **fields)
    return int(writer.expect("wrote")["written"])


def read_all(reader: RingReader) -> list[Any]:
    """Every tick `reader.read` has right now."""
    ticks = []
    while (tick := reader.read()) is not None:
        ticks.append(tick)
    return ticks


def assert_accounted(result: dict[str, Any], written: int) -> None:
    """A reader's result: all it got was intact and in order, and it lost exactly the rest."""
    assert result["mismatches"] == 0, result
    assert result["disorder"] == 0, result
    assert result["cursor"] == written
    assert result["last"] == written - 1, "a reader always gets the ticks of its last lap"
    assert result["returned"] + result["lost"] == written - result["start"], result
    assert result["gaps"] == result["lost"], "the ticks it lost are exactly the ones missing"


def process_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


# --- 1. many readers, millions of ticks ----------------------------------------------------------


def test_four_reader_processes_get_every_tick_in_order_or_count_exactly_what_they_lost(
    workers: Workers, ring_file: str
) -> None:
    # 32768 ticks is ~40 ms of this stream: the readers mostly keep up, but one that is
    # descheduled longer (on two cores, often the one reading 128 at a time) is lapped.
    total, capacity = 2_500_000, 1 << 15
    writer = workers.start(
        "paced_writer", path=ring_file, capacity=capacity, total=total, rate=800_000, batch=1000
    )
    writer.expect("ready")
    readers = [
        workers.start("checking_reader", path=ring_file, start=start, max_n=max_n, total=total)
        for start, max_n in (("latest", 4096), ("oldest", 2048), ("latest", 512), ("oldest", 128))
    ]
    for reader in readers:
        reader.expect("attached")
    writer.send("go")
    assert writer.expect("done", timeout=60)["written"] == total
    results = [reader.expect("result", timeout=60) for reader in readers]
    for result in results:
        assert result["start"] == 0
        assert_accounted(result, total)
    print("returned, lost per reader:", [(r["returned"], r["lost"]) for r in results])


# --- 2. a frozen reader is lapped ----------------------------------------------------------------


def test_reader_stopped_by_sigstop_counts_exactly_the_ticks_it_lost_and_goes_on(
    workers: Workers, ring_file: str
) -> None:
    capacity = 1024
    writer = workers.start("commanded_writer", path=ring_file, capacity=capacity)
    writer.expect("ready")
    reader = workers.start("checking_reader", path=ring_file, max_n=256, progress=True)
    assert reader.expect("attached")["cursor"] == 0
    cursor = write(writer, 1000)
    reader.expect("caught_up", where=lambda e: e["cursor"] == cursor)

    os.kill(reader.pid, signal.SIGSTOP)
    wait_until(lambda: process_state(reader.pid) == "T", timeout=10, what="reader stopped")
    lapped_to = write(writer, 10 * capacity + 37)
    os.kill(reader.pid, signal.SIGCONT)
    reader.expect("caught_up", where=lambda e: e["cursor"] == lapped_to)

    total = write(writer, 500, "single")
    reader.send("total", total=total)
    result = reader.expect("result")
    oldest = lapped_to - capacity + 1  # the reader docstring's "oldest still intact"
    assert result["events"] == [{"cursor_before": cursor, "lost": oldest - cursor, "next": oldest}]
    assert result["lost"] == lapped_to - capacity + 1 - cursor
    assert result["returned"] == cursor + (capacity - 1) + 500
    assert_accounted(result, total)


def test_reader_that_stops_reading_is_lapped_then_reads_on_in_order(
    workers: Workers, ring_file: str
) -> None:
    capacity = 256
    writer = workers.start("commanded_writer", path=ring_file, capacity=capacity)
    writer.expect("ready")
    with RingReader(ring_file) as reader:
        write(writer, 100, "single")
        first = [reader.read() for _ in range(40)]
        assert [t.n for t in first if t is not None] == list(range(40))
        written = write(writer, 5 * capacity + 3)  # while this reader does nothing

        rest = read_all(reader)
        oldest = written - capacity + 1
        assert reader.lost == written - capacity + 1 - 40
        assert [t.n for t in rest] == list(range(oldest, written))
        assert all(tick_matches(t) for t in first + rest if t is not None)

        more = write(writer, 10, "single")
        assert [t.n for t in read_all(reader)] == list(range(written, more))
        assert reader.lost == oldest - 40, "no more losses once it reads again"


# --- 3. no torn records ---------------------------------------------------------------------------


def test_readers_never_return_a_torn_record_while_a_writer_laps_them(
    workers: Workers, ring_file: str
) -> None:
    capacity = 64  # the writer laps the readers all the time, often while they copy a slot
    writer = workers.start(
        "hammer_writer", path=ring_file, capacity=capacity, seconds=3.0, at_least=1_500_000, seed=7
    )
    writer.expect("ready")
    readers = [
        workers.start("checking_reader", path=ring_file, single=True),
        workers.start("checking_reader", path=ring_file, max_n=4096),
    ]
    for reader in readers:
        reader.expect("attached")
    writer.send("go")
    done = writer.expect("done", timeout=60)
    for reader in readers:
        reader.send("total", total=done["written"])
    results = [reader.expect("result", timeout=60) for reader in readers]
    print("writer:", done, "returned, lost:", [(r["returned"], r["lost"]) for r in results])
    for result in results:
        assert_accounted(result, done["written"])
        assert result["returned"] >= 20_000, "too few records checked to mean anything"
        assert result["lapped"] > 0, "the writer never overwrote this reader: not a test"


# --- 4. attaching mid-stream ----------------------------------------------------------------------


def test_reader_attaching_mid_stream_starts_at_latest_or_oldest_intact(
    workers: Workers, ring_file: str
) -> None:
    capacity = 1024
    writer = workers.start("commanded_writer", path=ring_file, capacity=capacity)
    writer.expect("ready")
    written = write(writer, 5000)
    with (
        RingReader(ring_file, start="latest") as latest,
        RingReader(ring_file, start="oldest") as oldest,
    ):
        assert latest.cursor == written
        assert latest.read() is None and len(latest.read_batch()) == 0
        assert not latest.wait(timeout=0.05)

        assert oldest.cursor == written - capacity + 1
        old = oldest.read_batch(4096)
        assert list(old["seq"]) == [2 * n + 2 for n in range(written - capacity + 1, written)]
        assert batch_mismatches(old, oldest.symbols()) == 0 and oldest.lost == 0

        more = write(writer, 10, "single")
        assert latest.wait(timeout=10)
        new = read_all(latest)
        assert [t.n for t in new] == list(range(written, more))
        assert all(tick_matches(t) for t in new) and latest.lost == 0
        assert list(oldest.read_batch()["seq"]) == [2 * n + 2 for n in range(written, more)]


def test_reader_starting_at_oldest_of_a_ring_not_yet_full_starts_at_zero(ring_file: str) -> None:
    with RingWriter(ring_file, capacity=64) as writer:
        for _ in range(10):
            write_single(writer)
        with RingReader(ring_file, start="oldest") as reader:
            assert [t.n for t in read_all(reader)] == list(range(10))


# --- 5. one writer --------------------------------------------------------------------------------


def test_second_writer_is_refused_naming_the_first_writers_pid(
    workers: Workers, ring_file: str
) -> None:
    with RingWriter(ring_file, capacity=64) as first, RingReader(ring_file) as reader:
        with pytest.raises(RingError, match=rf"already has a writer \(pid {os.getpid()}\)"):
            RingWriter(ring_file, capacity=64)
        other = workers.start("commanded_writer", path=ring_file, capacity=64)
        refused = other.expect("refused")["error"]
        assert f"already has a writer (pid {os.getpid()})" in refused
        assert reader.epoch() == first.epoch == 1, "a refused writer changes nothing"
        assert writer_alive(Path(ring_file))
    assert not writer_alive(Path(ring_file))

    holder = workers.start("commanded_writer", path=ring_file, capacity=64)
    assert holder.expect("ready")["pid"] == holder.pid
    with pytest.raises(RingError, match=rf"already has a writer \(pid {holder.pid}\)") as exc:
        RingWriter(ring_file, capacity=64)
    assert str(holder.pid) in exc.value.reason
    holder.send("exit")
    holder.expect("closed")
    with RingWriter(ring_file) as after:  # free again once the holder closed it
        assert after.epoch == 3


# --- 6. a writer killed with SIGKILL -------------------------------------------------------------


def test_writer_restarted_after_sigkill_continues_the_numbering(
    workers: Workers, ring_file: str
) -> None:
    capacity = 1 << 14
    dead = workers.start("endless_writer", path=ring_file, capacity=capacity, seed=3)
    dead.expect("ready")
    numbers: list[np.ndarray] = []
    with RingReader(ring_file) as reader:

        def drain() -> int:
            ticks = reader.read_batch()
            assert batch_mismatches(ticks, reader.symbols()) == 0
            numbers.append((ticks["seq"].astype(np.int64) - 2) // 2)
            return len(ticks)

        granted = capacity // 2
        dead.send("credit", upto=granted)  # never more than half a ring ahead of us
        while reader.cursor < 50_000:
            if not drain():
                assert reader.wait(timeout=10), "the writer stopped writing"
            if reader.cursor + capacity // 2 - granted >= capacity // 8:
                granted = reader.cursor + capacity // 2
                dead.send("credit", upto=granted)
        assert dead.kill() == -signal.SIGKILL
        published = reader.written()
        while drain():
            pass

        got = np.concatenate(numbers)
        assert reader.cursor == published and reader.lost == 0
        assert np.array_equal(got, np.arange(published)), "every tick published before the kill"
        assert not writer_alive(Path(ring_file)), "the kernel dropped the dead writer's lock"
        with RingReader(ring_file, start="oldest") as late:  # the ring stays readable
            assert late.written() == published
            # A writer killed half-way through a batch has already marked the
            # slots of that batch, i.e. the oldest ticks, as being rewritten.
            survivors = late.read_batch(capacity)
            assert len(survivors) + late.lost == capacity - 1
            assert batch_mismatches(survivors, late.symbols()) == 0
        assert reader.writer_restarts == 0

        new = workers.start("commanded_writer", path=ring_file, capacity=capacity)
        ready = new.expect("ready")  # not refused
        assert ready["written"] == published and ready["epoch"] == 2
        write(new, 300, "single")
        total = write(new, 700)
        numbers.clear()
        while drain():
            pass
        assert np.array_equal(np.concatenate(numbers), np.arange(published, total))
        assert reader.writer_restarts == 1
        assert reader.writer_pid() == new.pid
        assert reader.lost == 0


# --- 7. layout checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"hello, I am a text file\n" * 400, id="text"),
        pytest.param(os.urandom(3 * 4096), id="random"),
        pytest.param(b"TBUS", id="short"),
    ],
)
def test_a_file_that_is_not_a_ring_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not-a-ring"
    path.write_bytes(content)
    with pytest.raises(RingError, match="is not a tick ring"):
        RingReader(str(path))
    with pytest.raises(RingError, match="is not a tick ring"):
        RingWriter(str(path), capacity=64)
    assert path.read_bytes() == content, "the writer left the file alone"


@pytest.mark.parametrize(
    ("offset", "value", "words"),
    [
        pytest.param(VERSION_OFFSET, 2, "layout version 2 with 64-byte records", id="version"),
        pytest.param(RECORD_SIZE_OFFSET, 128, "version 1 with 128-byte records", id="record-size"),
    ],
)
def test_a_ring_of_another_layout_is_refused(
    ring_file: str, offset: int, value: int, words: str
) -> None:
    with RingWriter(ring_file, capacity=64):
        pass
    with open(ring_file, "r+b") as file:
        file.seek(offset)
        file.write(struct.pack("<I", value))
    for open_ring in (RingReader, RingWriter):
        with pytest.raises(RingError, match=words) as exc:
            open_ring(ring_file)
        assert "this tickbus reads version 1 with 64-byte records" in exc.value.reason


def test_a_truncated_ring_is_refused_by_a_writer(ring_file: str) -> None:
    with RingWriter(ring_file, capacity=64):
        pass
    os.truncate(ring_file, 2 * 4096)
    with pytest.raises(RingError, match="is truncated"):
        RingWriter(ring_file)


@pytest.mark.parametrize("size", [0, 2 * 4096], ids=["empty", "truncated"])
def test_an_empty_or_truncated_file_is_refused_by_a_reader(ring_file: str, size: int) -> None:
    # An empty file is what a reader finds if it opens the ring while its
    # writer is creating it (between open(O_CREAT) and ftruncate).
    if size:
        with RingWriter(ring_file, capacity=64):
            pass
    Path(ring_file).touch()
    os.truncate(ring_file, size)
    with pytest.raises(RingError):
        RingReader(ring_file)


def test_a_missing_ring_is_refused_by_a_reader(ring_file: str) -> None:
    with pytest.raises(RingError, match=r"no ring at .* start its writer first"):
        RingReader(ring_file)


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "ppc64le", "riscv64"])
def test_processors_without_total_store_order_are_refused(machine: str) -> None:
    with pytest.raises(RingError, match="total store order") as exc:
        check_processor(machine)
    assert machine in exc.value.reason and "torn" in exc.value.reason


def test_x86_64_is_accepted() -> None:
    check_processor("x86_64")


@pytest.mark.parametrize("capacity", [0, 1, 3, 1000, 1 << 20 | 1, -8])
def test_a_capacity_that_is_not_a_power_of_two_is_a_config_error(
    ring_file: str, capacity: int
) -> None:
    with pytest.raises(ConfigError, match=f"power of two >= 2, got {capacity}"):
        RingWriter(ring_file, capacity=capacity)
    assert not Path(ring_file).exists(), "nothing created for a refused capacity"


def test_an_existing_ring_keeps_its_own_capacity(ring_file: str) -> None:
    with RingWriter(ring_file, capacity=64):
        pass
    with RingWriter(ring_file, capacity=4096) as writer, RingReader(ring_file) as reader:
        assert writer.layout.capacity == reader.capacity == 64


# --- 8. the symbol table --------------------------------------------------------------------------


def test_symbol_ids_are_stable_across_writers(workers: Workers, ring_file: str) -> None:
    first = workers.start("commanded_writer", path=ring_file, capacity=64)
    first.expect("ready")  # it adds S0, S1, S2 in that order
    write(first, 1, "single", sid="AAPL")
    first.send("exit")
    first.expect("closed")
    with RingWriter(ring_file) as writer, RingReader(ring_file, start="oldest") as reader:
        assert [writer.symbol_id(s) for s in (*SYMBOLS, "AAPL")] == [0, 1, 2, 3]
        assert writer.symbol_id("MSFT") == 4 and writer.symbol_id("AAPL") == 3
        assert reader.symbols() == [*SYMBOLS, "AAPL", "MSFT"]
        tick = reader.read()
        assert tick is not None and tick.sid == "AAPL" and reader.symbol(3) == "AAPL"


def test_readers_resolve_symbols_added_after_they_attached(
    workers: Workers, ring_file: str
) -> None:
    writer = workers.start("commanded_writer", path=ring_file, capacity=64)
    writer.expect("ready")
    with RingReader(ring_file) as reader, RingReader(ring_file) as batch_reader:
        assert reader.symbols() == list(SYMBOLS)
        write(writer, 1, "single", sid="NEW.ONE")
        write(writer, 1, "single", sid="NEW:TWO")
        assert [t.sid for t in read_all(reader)] == ["NEW.ONE", "NEW:TWO"]
        quotes = batch_reader.to_quotes(batch_reader.read_batch())
        assert [q["sid"] for q in quotes] == ["NEW.ONE", "NEW:TWO"]


def test_a_full_symbol_table_raises_ring_error(ring_file: str) -> None:
    with RingWriter(ring_file, capacity=8, symbol_capacity=2) as writer:
        assert (writer.symbol_id("A"), writer.symbol_id("B")) == (0, 1)
        with pytest.raises(RingError, match=r"symbol table .* is full \(2 symbols\)"):
            writer.symbol_id("C")
        with pytest.raises(RingError, match="full"):
            writer.write("C", 1.0, 1.0)
        assert writer.written == 0, "no tick for a symbol that did not fit"
        assert writer.write("B", 1.0, 1.0) == 0, "known symbols still work"
        with RingReader(ring_file, start="oldest") as reader:
            assert reader.symbols() == ["A", "B"]


@pytest.mark.parametrize("sid", ["ÄPFEL", "X" * 33])
def test_a_symbol_that_does_not_fit_raises_ring_error(ring_file: str, sid: str) -> None:
    with RingWriter(ring_file, capacity=8) as writer:
        with pytest.raises(RingError, match=r"ASCII|longer than 32 bytes"):
            writer.symbol_id(sid)
        assert writer.symbol_id("X" * 32) == 0


# --- 9. quotes out -------------------------------------------------------------------------------

TS_CASES = [1_700_000_000.123456, 1_799_999_999.999999, 1.5, 0.000001, 4_102_444_800.0]


def test_to_quotes_leaves_nan_fields_out_and_keeps_ts_within_a_microsecond(
    ring_file: str,
) -> None:
    sent: list[dict[str, Any]] = [
        {"sid": "A", "price": 1.5, "ts": time.time()},
        {"sid": "B", "price": 2.0, "ts": TS_CASES[0], "bid": 1.9},
        {"sid": "A", "price": 3.0, "ts": TS_CASES[1], "ask": 3.1},
        {"sid": "C", "price": 4.0, "ts": TS_CASES[2], "size": 0.0},
        {"sid": "B", "price": 5.0, "ts": TS_CASES[3], "bid": 4.9, "ask": 5.1, "size": 7.0},
        {"sid": "A", "price": 6.0, "ts": TS_CASES[4], "bid": 5.9, "ask": 6.1},
    ]
    with RingWriter(ring_file, capacity=16) as writer, RingReader(ring_file) as reader:
        for quote in sent:
            writer.write_quote(quote)
        ticks = reader.read_batch()
        quotes = reader.to_quotes(ticks)
    assert len(quotes) == len(sent)
    for got, want in zip(quotes, sent, strict=True):
        assert set(got) == set(want)
        assert {k: v for k, v in got.items() if k != "ts"} == {
            k: v for k, v in want.items() if k != "ts"
        }
        assert abs(got["ts"] - want["ts"]) < 1e-6, (got["ts"], want["ts"])
    assert math.isnan(ticks["bid"][0]) and math.isnan(ticks["size"][1])


def test_read_returns_nan_for_absent_fields_and_ts_within_a_microsecond(ring_file: str) -> None:
    with RingWriter(ring_file, capacity=16) as writer, RingReader(ring_file) as reader:
        for ts in TS_CASES:
            writer.write("A", 1.0, ts, bid=0.5)
        ticks = read_all(reader)
    assert [abs(t.ts - ts) < 1e-6 for t, ts in zip(ticks, TS_CASES, strict=True)] == [True] * 5
    assert all(t.bid == 0.5 and math.isnan(t.ask) and math.isnan(t.size) for t in ticks)


def test_write_batch_keeps_given_recv_ns_and_stamps_missing_ones(ring_file: str) -> None:
    with RingWriter(ring_file, capacity=16) as writer, RingReader(ring_file) as reader:
        ids = np.array([writer.symbol_id(s) for s in SYMBOLS], dtype=np.uint32)
        ticks = tick_array(0, 4, ids)
        ticks["recv_ns"][2:] = 0
        before = time.time_ns()
        assert writer.write_batch(ticks) == 4
        got = reader.read_batch()
        with pytest.raises(ConfigError, match="TICK_DTYPE"):
            writer.write_batch(np.zeros(3))
        assert writer.written == 4
    assert list(got["recv_ns"][:2]) == [1, 6]
    assert all(before <= ns <= time.time_ns() for ns in got["recv_ns"][2:])


def test_a_quote_the_codec_accepts_is_written_or_refused_with_ring_error(ring_file: str) -> None:
    from broker import parse_quote

    quote = parse_quote({"sid": "FAR", "price": 1.0, "ts": 1e12})  # the codec's upper bound
    with RingWriter(ring_file, capacity=16) as writer:
        try:
            writer.write_quote(quote)
        except RingError:
            return
        with RingReader(ring_file, start="oldest") as reader:
            assert reader.to_quotes(reader.read_batch())[0]["ts"] == pytest.approx(1e12)
