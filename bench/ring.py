"""Tick ring throughput and latency, against multiprocessing.Queue and pyzmq ipc:// as baselines.

Run ``.venv/bin/python bench/ring.py --json`` (about 90 s on 2 cores; ``--quick``
is a ~20 s smoke run; ``--only NAME...`` runs some of `MEASUREMENTS`). It prints
one JSON object on stdout (without ``--json``, a short table); progress goes to
stderr.

Why the figures are comparable, on a shared and noisy machine:

* Everything in one output is measured in the same run. The workloads run in
  rounds, one repeat of each per round, so a slow spell hits all of them
  alike; each headline figure is the median over the rounds, and every
  round's value is kept under ``runs``.
* The ring, the queue and zmq carry the same tick (symbol, price, ts,
  bid/ask/size as NaN, a receive stamp from ``time.time_ns``), one per call,
  built from the same prepared list of (symbol, price) pairs.
* Untimed warm-up precedes every timed window: ring pages faulted in,
  processes started and attached, sockets subscribed.

Nothing is left behind: ring files (``/dev/shm/tickbus-bench-*``) and ipc
sockets are removed and every child process is stopped (SIGCONT first, for
one frozen by SIGSTOP), also on error; each child also gives up by itself
after `CHILD_LIMIT_S`, so even a SIGKILLed parent leaves nothing running.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import Any

import msgpack
import numpy as np
import zmq

# Run as a script, this file's folder is sys.path[0] and `import ring` would
# import this very file (bench/ring.py) instead of the ring package.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]

from ring import DEFAULT_CAPACITY, TICK_DTYPE, RingReader, RingWriter  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN")
NAN = math.nan
CHILD_LIMIT_S = 60.0
"""A child process stops by itself after this long, whatever its parent does."""
START_TIMEOUT_S = 30.0
"""How long the parent waits for a child to start and attach."""
SLICE_S = 0.05
"""Turn length when two workloads alternate (`stopped_reader`)."""
SPIN = math.inf
"""`RingReader.wait` spin for busy-polling readers: never sleep."""

Figures = dict[str, float]


@dataclass(frozen=True)
class Settings:
    """What one run measures, and for how long (defaults: the full run).

    Attributes:
        seconds: Each timed throughput window.
        repeats: Rounds; every measurement runs once per round.
        batch: Records per `write_batch` and per `read_batch` call.
        capacity: Ticks per ring of the throughput runs (the ring's default).
        latency_rate: Ticks/s of the paced writer of `latency`.
        latency_warmup: Ticks of each latency run left out: at least
            `latency_capacity`, so every page of its ring is faulted in first.
        latency_ticks: Ticks of each latency run in the figures.
        latency_capacity: Ticks in the latency run's ring.
        paced_rate: Ticks/s of the paced writer of `read_1_reader_paced` (the target).
        queue_messages: Ticks per `mp_queue` run; zmq_messages: per `zmq_ipc` run.
        memcpy_bytes: Size of each array of `memcpy`.
        only: The measurements to run (default: all of `MEASUREMENTS`).
    """

    seconds: float = 1.0
    repeats: int = 5
    batch: int = 4096
    capacity: int = DEFAULT_CAPACITY
    latency_rate: float = 100_000.0
    latency_warmup: int = 50_000
    latency_ticks: int = 200_000
    latency_capacity: int = 1 << 15
    paced_rate: float = 1e7
    queue_messages: int = 200_000
    zmq_messages: int = 400_000
    memcpy_bytes: int = 64 << 20
    only: tuple[str, ...] = ()


QUICK = Settings(
    seconds=0.15,
    repeats=3,
    capacity=1 << 18,
    latency_warmup=1 << 15,
    latency_ticks=20_000,
    queue_messages=30_000,
    zmq_messages=60_000,
    memcpy_bytes=16 << 20,
)


# --- resources ---------------------------------------------------------------


class Scratch:
    """Owns what a run creates: ring files and ipc socket files, removed on exit.

    Child processes belong to a `processes()` block, which stops them on exit;
    both also after an error.
    """

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self._tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._files: list[Path] = []

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for path in self._files:
            path.unlink(missing_ok=True)

    def ring(self, kind: str, capacity: int) -> str:
        """A new ring in /dev/shm with SYMBOLS as ids 0..3 and every page written once."""
        path = Path(f"/dev/shm/tickbus-bench-{self._tag}-{kind}")
        self._files.append(path)
        with RingWriter(str(path), capacity=capacity) as writer:
            for sid in SYMBOLS:
                writer.symbol_id(sid)
            writer.write_batch(np.zeros(capacity, TICK_DTYPE))
        return str(path)

    def ipc_endpoint(self) -> str:
        """A fresh ``ipc://`` endpoint whose socket file is removed at exit."""
        path = Path(f"/tmp/tickbus-bench-{self._tag}-{len(self._files)}.ipc")
        self._files.append(path)
        return f"ipc://{path}"

    @contextmanager
    def processes(self) -> Iterator[Callable[..., SpawnProcess]]:
        """A `spawn(target, *args)` function; the processes it starts are stopped on exit."""
        started: list[SpawnProcess] = []

        def spawn(target: Callable[..., None], *args: Any) -> SpawnProcess:
            proc = self.ctx.Process(target=target, args=args, daemon=True)
            started.append(proc)
            proc.start()
            return proc

        try:
            yield spawn
        finally:
            for proc in started:
                _stop_process(proc)


def _stop_process(proc: SpawnProcess, grace: float = 5.0) -> None:
    """Let `proc` finish within `grace` s, else SIGCONT (it may be frozen), SIGTERM, SIGKILL."""
    if proc.pid is None:
        return
    proc.join(grace)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.join(grace)
        if proc.is_alive():
            proc.kill()
    proc.join()


def _child_setup(cpu: int | None = None) -> None:
    """In a child: leave Ctrl-C to the parent, which stops its children; pin to `cpu` if given."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _wait(events: list[Event], what: str) -> None:
    for event in events:
        if not event.wait(START_TIMEOUT_S):
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT_S} s")


# --- the workload, shared by the ring and its baselines -------------------------


def _pairs() -> list[tuple[str, float]]:
    """The (symbol, price) pairs every single-tick producer cycles through."""
    return [(SYMBOLS[i % len(SYMBOLS)], 100.0 + (i % 8) * 0.01) for i in range(1024)]


def _records(count: int) -> np.ndarray:
    """`count` prebuilt TICK_DTYPE records for write_batch; recv_ns 0, so the ring stamps it."""
    records = np.zeros(count, TICK_DTYPE)
    records["sid"] = np.arange(count) % len(SYMBOLS)
    records["price"] = 100.0 + (np.arange(count) % 8) * 0.01
    records["src_ns"] = time.time_ns()
    records[["bid", "ask", "size"]] = (NAN, NAN, NAN)
    return records


def _write_singles(
    writer: RingWriter, keep_going: Callable[[], bool], rate: float = math.inf
) -> tuple[int, float]:
    """Single `write` calls, 1024 between checks of `keep_going`; returns (ticks, seconds).

    With a finite `rate`, tick i is due at start + i / rate: the loop spins on
    the clock until then, and catches up at once after a delay.
    """
    write, pairs, ts, clock = writer.write, _pairs(), time.time(), time.perf_counter
    count, start = 0, clock()
    while keep_going():
        if rate == math.inf:
            for sid, price in pairs:
                write(sid, price, ts)
        else:
            for i, (sid, price) in enumerate(pairs, count):
                while clock() < start + i / rate:
                    pass
                write(sid, price, ts)
        count += len(pairs)
    return count, clock() - start


def _for_seconds(seconds: float, stop: Event | None = None) -> Callable[[], bool]:
    """A `keep_going` test: true for `seconds`, or until `stop` is set."""
    end = time.perf_counter() + seconds
    if stop is None:
        return lambda: time.perf_counter() < end
    return lambda: not stop.is_set() and time.perf_counter() < end


# --- in-process measurements ----------------------------------------------------


class Bench:
    """One run: its settings, scratch resources, rings, in-process writers and round number."""

    def __init__(self, settings: Settings, scratch: Scratch) -> None:
        self.settings = settings
        self.scratch = scratch
        self.round = 0
        self.records = _records(settings.batch)
        self.rings = {
            "inproc": scratch.ring("inproc", settings.capacity),
            "cross": scratch.ring("cross", settings.capacity),
            "latency": scratch.ring("latency", settings.latency_capacity),
            "watched": scratch.ring("watched", settings.capacity),
        }
        self.writer = RingWriter(self.rings["inproc"])
        self.watched_writer = RingWriter(self.rings["watched"])

    def close(self) -> None:
        self.writer.close()
        self.watched_writer.close()


def single_write(bench: Bench) -> Figures:
    """`RingWriter.write` calls/s, one tick each over four symbols, no reader, in this process.

    This is the writer's own cost per tick: it never waits for a reader, so it
    is also what a writer sustains while readers keep up (`single_write_delivered`
    measures that across processes).
    """
    _write_singles(bench.writer, _for_seconds(0.1))  # warm-up
    count, elapsed = _write_singles(bench.writer, _for_seconds(bench.settings.seconds))
    return {"per_s": count / elapsed}


def batch_write(bench: Bench) -> Figures:
    """Ticks/s through `write_batch` with prebuilt arrays of `Settings.batch` records, no reader."""
    write_batch, records = bench.writer.write_batch, bench.records
    write_batch(records)  # warm-up
    count, start = 0, time.perf_counter()
    keep_going = _for_seconds(bench.settings.seconds)
    while keep_going():
        count += write_batch(records)
    return {"per_s": count / (time.perf_counter() - start)}


def memcpy(bench: Bench) -> Figures:
    """Bytes/s of `numpy.copyto` between two large arrays: the machine's copy ceiling.

    A ring tick is 64 bytes, so ``bytes_per_s / 64`` bounds any ticks/s that
    copies each tick once.
    """
    src = np.ones(bench.settings.memcpy_bytes, np.uint8)
    dst = np.zeros_like(src)
    np.copyto(dst, src)  # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return {"bytes_per_s": src.nbytes / statistics.median(times)}


# --- cross-process ring runs ------------------------------------------------------


@dataclass(frozen=True)
class WriterJob:
    """What a writer process does from `go` until `stop`.

    Attributes:
        mode: ``"single"`` (`write` calls) or ``"batch"`` (`write_batch` calls).
        rate: At most this many ticks/s (inf: as fast as it can).
        batch: Records per `write_batch` call.
        cpu: The CPU to pin the process to, or None.
    """

    mode: str
    rate: float = math.inf
    batch: int = 4096
    cpu: int | None = None


def _writer_child(
    path: str, job: WriterJob, ready: Event, go: Event, stop: Event, results: Any
) -> None:
    """Writer process: does `job` from `go` until `stop`, then reports its rate."""
    _child_setup(job.cpu)
    with RingWriter(path) as writer:
        ready.set()
        go.wait(START_TIMEOUT_S)
        keep_going = _for_seconds(CHILD_LIMIT_S, stop)
        if job.mode == "single":
            count, elapsed = _write_singles(writer, keep_going, job.rate)
        else:
            count, elapsed = _write_batches(writer, _records(job.batch), job.rate, keep_going)
    results.put({"role": "writer", "per_s": count / elapsed})


def _write_batches(
    writer: RingWriter, records: np.ndarray, rate: float, keep_going: Callable[[], bool]
) -> tuple[int, float]:
    """write_batch calls, batch k due at start + k * len(records) / rate; (ticks, seconds)."""
    write_batch, clock, period = writer.write_batch, time.perf_counter, len(records) / rate
    count, start = 0, clock()
    due = start
    while keep_going():
        while clock() < due:
            pass
        count += write_batch(records)
        due += period
    return count, clock() - start


def _reader_child(path: str, settings: Settings, ready: Event, go: Event, results: Any) -> None:
    """Reader process: read_batch, busy-polling; after a ring's worth of ticks, counts for
    `settings.seconds`."""
    _child_setup()
    batch = settings.batch
    with RingReader(path) as reader:
        ready.set()
        go.wait(START_TIMEOUT_S)
        _read(
            reader, ticks=settings.capacity, until=time.perf_counter() + CHILD_LIMIT_S, batch=batch
        )
        lost, start = reader.lost, time.perf_counter()
        count = _read(reader, ticks=sys.maxsize, until=start + settings.seconds, batch=batch)
        elapsed = time.perf_counter() - start
        results.put({"role": "reader", "per_s": count / elapsed, "lost": reader.lost - lost})


def _read(reader: RingReader, *, ticks: int, until: float, batch: int) -> int:
    """read_batch until `ticks` were read or perf_counter reaches `until`; returns ticks read."""
    count = 0
    while count < ticks:
        got = len(reader.read_batch(batch))
        count += got
        now = time.perf_counter()
        if now >= until:
            break
        if not got:
            reader.wait(until - now, spin=SPIN)
    return count


def _cross_process(bench: Bench, readers: int, job: WriterJob) -> list[dict[str, Any]]:
    """One writer process doing `job` and `readers` reader processes on one ring; their reports."""
    ctx, path = bench.scratch.ctx, bench.rings["cross"]
    ready = [ctx.Event() for _ in range(readers + 1)]
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    with bench.scratch.processes() as spawn:
        for event in ready[1:]:
            spawn(_reader_child, path, bench.settings, event, go, results)
        spawn(_writer_child, path, job, ready[0], go, stop, results)
        _wait(ready, "a ring process")
        go.set()
        reports = [results.get(timeout=CHILD_LIMIT_S) for _ in range(readers)]
        stop.set()
        reports.append(results.get(timeout=CHILD_LIMIT_S))
    return reports


def _summarise(reports: list[dict[str, Any]]) -> Figures:
    rates = [r["per_s"] for r in reports if r["role"] == "reader"]
    return {
        "per_reader_per_s": statistics.median(rates),
        "slowest_reader_per_s": min(rates),
        "lost_per_reader": statistics.median(r["lost"] for r in reports if r["role"] == "reader"),
        "writer_per_s": next(r["per_s"] for r in reports if r["role"] == "writer"),
    }


def read_1_reader(bench: Bench) -> Figures:
    """Ticks/s one reader process gets with read_batch while a writer process writes batches.

    The reader busy-polls and counts for `Settings.seconds` after one ring's
    worth of warm-up; it cannot exceed the writer's rate (`writer_per_s`).
    """
    return _summarise(_cross_process(bench, 1, WriterJob("batch", batch=bench.settings.batch)))


def read_1_reader_paced(bench: Bench) -> Figures:
    """As `read_1_reader`, with the writer held to `Settings.paced_rate` ticks/s (batches).

    An unpaced writer that outruns the reader laps it, and a lapped reader
    spends its time where the writer is overwriting; this run asks instead
    whether the reader sustains the target rate: it does if it gets about
    `paced_rate` ticks/s and loses none.
    """
    job = WriterJob("batch", rate=bench.settings.paced_rate, batch=bench.settings.batch)
    return _summarise(_cross_process(bench, 1, job))


def read_4_readers(bench: Bench) -> Figures:
    """Per-reader ticks/s with four busy-polling reader processes and one batch writer process."""
    return _summarise(_cross_process(bench, 4, WriterJob("batch", batch=bench.settings.batch)))


def single_write_delivered(bench: Bench) -> Figures:
    """Ticks/s a reader process gets while a writer process makes single `write` calls.

    The ring's counterpart of the queue and zmq runs, which are measured at
    their consumer: the same single-tick producer, measured where ticks arrive.
    """
    return _summarise(_cross_process(bench, 1, WriterJob("single")))


# --- latency -------------------------------------------------------------------------


def _latency_reader_child(
    path: str, settings: Settings, cpu: int | None, ready: Event, results: Any
) -> None:
    """Reader process: busy-polls `read()`; latency = time.time_ns() at receipt - recv_ns.

    Also reports how often the kernel preempted it while it measured
    (involuntary context switches): each costs up to a scheduler time slice.
    """
    _child_setup(cpu)
    with RingReader(path) as reader:
        first = reader.cursor + settings.latency_warmup
        ready.set()
        _receive(reader, first - 1)
        preempted = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
        samples = _receive(reader, first + settings.latency_ticks - 1)
        preempted = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - preempted
        lost = reader.lost
    micros = np.array(samples, dtype=np.float64) / 1000.0
    p50, p90, p99, p999 = np.percentile(micros, [50, 90, 99, 99.9])
    figures = {"p50_us": p50, "p90_us": p90, "p99_us": p99, "p999_us": p999}
    extra = {"max_us": micros.max(), "samples": len(samples), "lost": lost}
    results.put(figures | extra | {"reader_preempted": preempted})


def _receive(reader: RingReader, last: int) -> list[int]:
    """Busy-poll `read()` up to tick number `last`; each tick's latency in ns."""
    read, now_ns, clock = reader.read, time.time_ns, time.perf_counter
    samples: list[int] = []
    append = samples.append
    give_up = clock() + CHILD_LIMIT_S
    while True:
        tick = read()
        if tick is None:
            if clock() > give_up:
                return samples
            continue
        append(now_ns() - tick.recv_ns)
        if tick.n >= last:
            return samples


def latency(bench: Bench) -> Figures:
    """Writer process to reader process latency at a paced 100k ticks/s, single writes.

    Writer and reader are pinned to different CPUs: unpinned, the scheduler
    sometimes leaves both spinning processes on one CPU for a whole run,
    which measures its time slices (milliseconds), not the ring.
    """
    ctx, settings, path = bench.scratch.ctx, bench.settings, bench.rings["latency"]
    ready = [ctx.Event(), ctx.Event()]
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    cpus = sorted(os.sched_getaffinity(0))[:2]
    writer_cpu, reader_cpu = cpus if len(cpus) == 2 else (None, None)
    job = WriterJob("single", rate=settings.latency_rate, cpu=writer_cpu)
    with bench.scratch.processes() as spawn:
        spawn(_latency_reader_child, path, settings, reader_cpu, ready[0], results)
        spawn(_writer_child, path, job, ready[1], go, stop, results)
        _wait(ready, "a latency process")
        go.set()
        figures: Figures = results.get(timeout=CHILD_LIMIT_S)
        stop.set()
        results.get(timeout=CHILD_LIMIT_S)  # the writer's
    return figures


# --- a stopped reader -------------------------------------------------------------


def _polling_reader_child(path: str, batch: int, ready: Event, stop: Event) -> None:
    """Reader process that busy-polls with read_batch until `stop` (or until frozen)."""
    _child_setup()
    with RingReader(path) as reader:
        ready.set()
        keep_going = _for_seconds(CHILD_LIMIT_S, stop)
        while keep_going():
            if not len(reader.read_batch(batch)):
                reader.wait(0.01, spin=SPIN)


def stopped_reader(bench: Bench) -> Figures:
    """Single-write rate into a ring whose one reader process is frozen by SIGSTOP, and alone.

    Two identical rings, written by this process: ``watched``, whose reader
    was polling (attached, cursor set) when it was frozen, and ``inproc``,
    which has no reader. The writer alternates between them in `SLICE_S`
    slices, so the machine's noise (on a shared VM, the single-write rate
    moves by 20% from one second to the next) falls on both alike; the ratio
    is stopped over alone.
    """
    ready, stop = bench.scratch.ctx.Event(), bench.scratch.ctx.Event()
    with bench.scratch.processes() as spawn:
        args = (bench.rings["watched"], bench.settings.batch, ready, stop)
        proc = spawn(_polling_reader_child, *args)
        _wait([ready], "the reader to freeze")
        _write_singles(bench.watched_writer, _for_seconds(0.05))  # the reader reads these
        assert proc.pid is not None
        _freeze(proc.pid)
        arms = {"alone": bench.writer, "stopped": bench.watched_writer}
        if bench.round % 2:
            arms = dict(reversed(arms.items()))
        rates = _alternate(arms, bench.settings.seconds)
        os.kill(proc.pid, signal.SIGCONT)
        stop.set()
    return rates | {"ratio": rates["stopped"] / rates["alone"]}


def _freeze(pid: int) -> None:
    """SIGSTOP `pid` and wait until the kernel shows it stopped (state T in /proc/<pid>/stat)."""
    os.kill(pid, signal.SIGSTOP)
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "Tt":
        time.sleep(0.001)


def _alternate(writers: dict[str, RingWriter], seconds: float) -> Figures:
    """Single writes/s of each writer, taking turns in `SLICE_S` slices for `seconds` each."""
    for writer in writers.values():  # warm-up
        _write_singles(writer, _for_seconds(SLICE_S))
    totals = dict.fromkeys(writers, (0, 0.0))
    for _ in range(max(1, round(seconds / SLICE_S))):
        for arm, writer in writers.items():
            count, elapsed = _write_singles(writer, _for_seconds(SLICE_S))
            totals[arm] = (totals[arm][0] + count, totals[arm][1] + elapsed)
    return {arm: count / elapsed for arm, (count, elapsed) in totals.items()}


# --- baselines: multiprocessing.Queue and zmq ipc:// ---------------------------------


def _queue_producer_child(queue: Any, count: int) -> None:
    """Producer process: `count` ticks, one tuple per `put`."""
    _child_setup()
    put, pairs, ts, now_ns = queue.put, _pairs(), time.time(), time.time_ns
    for _ in range(count // len(pairs)):
        for sid, price in pairs:
            put((sid, price, ts, NAN, NAN, NAN, now_ns()))


def mp_queue(bench: Bench) -> Figures:
    """Ticks/s a consumer gets from a multiprocessing.Queue that a producer process fills.

    The clock runs from the consumer's first tick to its last, like zmq_ipc's.
    The queue is bounded (100k) so that a producer faster than its consumer
    waits instead of piling up memory; the consumer's rate is the throughput.
    """
    count = bench.settings.queue_messages // 1024 * 1024
    queue = bench.scratch.ctx.Queue(maxsize=100_000)
    # If the producer dies, this None ends the consumer's loop instead of a hang.
    watchdog = threading.Timer(CHILD_LIMIT_S, queue.put, (None,))
    with bench.scratch.processes() as spawn:
        spawn(_queue_producer_child, queue, count)
        watchdog.start()
        try:
            get = queue.get
            received = 1 if get() is not None else 0
            start = time.perf_counter()
            while received < count and get() is not None:
                received += 1
            elapsed = time.perf_counter() - start
        finally:
            watchdog.cancel()
    queue.close()
    return {"per_s": (received - 1) / elapsed, "missing": count - received}


def _zmq_producer_child(
    endpoint: str, count: int, hwm: int, subscribed: Event, done: Event
) -> None:
    """Producer process: PUB bound at `endpoint`; `count` ticks, one msgpack message each.

    Sends empty messages until the consumer reports it is subscribed (ZeroMQ
    drops PUB messages sent before a subscription arrives), then the ticks.
    """
    _child_setup()
    with zmq.Context() as context, context.socket(zmq.PUB) as sock:
        sock.linger, sock.sndhwm = 0, hwm
        sock.bind(endpoint)
        give_up = time.perf_counter() + CHILD_LIMIT_S
        while not subscribed.wait(0.001) and time.perf_counter() < give_up:
            sock.send(b"")
        send, packb, pairs = sock.send, msgpack.packb, _pairs()
        ts, now_ns = time.time(), time.time_ns
        for _ in range(count // len(pairs)):
            for sid, price in pairs:
                send(packb((sid, price, ts, NAN, NAN, NAN, now_ns())))
        done.wait(CHILD_LIMIT_S)


def zmq_ipc(bench: Bench) -> Figures:
    """Ticks/s a SUB consumer unpacks from a PUB producer process over ``ipc://``.

    Both high-water marks are above the message count, so PUB never drops for
    want of room; the consumer counts received messages against the fixed
    count sent, so any drop would show as ``dropped``. The clock runs from the
    first tick received to the last.
    """
    ctx, count = bench.scratch.ctx, bench.settings.zmq_messages // 1024 * 1024
    hwm, endpoint = 2 * count, bench.scratch.ipc_endpoint()
    subscribed, done = ctx.Event(), ctx.Event()
    with zmq.Context() as context, context.socket(zmq.SUB) as sock:
        sock.linger, sock.rcvhwm = 0, hwm
        sock.subscribe(b"")
        sock.connect(endpoint)
        with bench.scratch.processes() as spawn:
            spawn(_zmq_producer_child, endpoint, count, hwm, subscribed, done)
            if not sock.poll(int(START_TIMEOUT_S * 1000)):
                raise RuntimeError("the zmq producer sent nothing")
            received, elapsed = _zmq_consume(sock, count, subscribed)
            done.set()
    return {"per_s": (received - 1) / elapsed, "dropped": count - received}


def _zmq_consume(sock: zmq.Socket[bytes], count: int, subscribed: Event) -> tuple[int, float]:
    """Receive and unpack up to `count` ticks; returns (received, seconds first to last)."""
    subscribed.set()
    while not (message := sock.recv()):
        pass
    msgpack.unpackb(message)
    sock.rcvtimeo = 2000  # silence this long: the rest was dropped
    recv, unpackb, received = sock.recv, msgpack.unpackb, 1
    start = last = time.perf_counter()
    try:
        while received < count:
            unpackb(recv())
            received += 1
        last = time.perf_counter()
    except zmq.Again:
        last = time.perf_counter() - 2.0
    return received, last - start


# --- the run ---------------------------------------------------------------------------

MEASUREMENTS: dict[str, Callable[[Bench], Figures]] = {
    "memcpy": memcpy,
    "single_write": single_write,
    "batch_write": batch_write,
    "read_1_reader": read_1_reader,
    "read_1_reader_paced": read_1_reader_paced,
    "read_4_readers": read_4_readers,
    "single_write_delivered": single_write_delivered,
    "stopped_reader": stopped_reader,
    "mp_queue": mp_queue,
    "zmq_ipc": zmq_ipc,
    "latency": latency,
}

TARGETS = (
    ("single_write_per_s", ">=", 1e6),
    ("single_write_vs_zmq_ipc", ">=", 2.0),
    ("single_write_vs_mp_queue", ">=", 10.0),
    ("batch_write_per_s", ">=", 2e7),
    ("read_1_reader_per_s", ">=", 1e7),
    ("latency_p99_us", "<=", 50.0),
    ("writer_rate_with_stopped_reader_ratio", ">=", 0.9),
)


def run(settings: Settings) -> dict[str, Any]:
    """Every measurement, `settings.repeats` rounds, interleaved; the report."""
    chosen = {name: MEASUREMENTS[name] for name in settings.only or MEASUREMENTS}
    runs: dict[str, list[Figures]] = {name: [] for name in chosen}
    load_before = os.getloadavg()
    started = time.perf_counter()
    with Scratch() as scratch:
        bench = Bench(settings, scratch)
        try:
            for bench.round in range(settings.repeats):
                for name, measure in chosen.items():
                    _log(f"round {bench.round + 1}/{settings.repeats}: {name}")
                    runs[name].append(_measure(measure, bench))
        finally:
            bench.close()
    details = {name: _medians(figures) for name, figures in runs.items()}
    report = _headline(details)
    report["targets"] = _targets(report)
    report["notes"] = _notes(details, settings)
    report["machine"] = _machine(load_before)
    report["settings"] = asdict(settings)
    report["details"] = details
    report["runs"] = {name: [_rounded(f) for f in figures] for name, figures in runs.items()}
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def _measure(measure: Callable[[Bench], Figures], bench: Bench) -> Figures:
    """`measure(bench)`, plus ``others_cpus``: CPUs other processes kept busy meanwhile."""
    wall, busy, own = time.perf_counter(), _busy_cpu_s(), _own_cpu_s()
    figures = measure(bench)
    others = (_busy_cpu_s() - busy) - (_own_cpu_s() - own)
    return figures | {"others_cpus": max(0.0, others) / (time.perf_counter() - wall)}


def _busy_cpu_s() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _medians(figures: list[Figures]) -> Figures:
    return _rounded({key: statistics.median(f[key] for f in figures) for key in figures[0]})


def _rounded(figures: Figures) -> Figures:
    """Plain floats (numpy's do not serialise): 3 decimals below 1000, whole above."""
    return {k: round(float(v), 3 if abs(v) < 1000 else None) * 1.0 for k, v in figures.items()}


HEADLINE = {
    "single_write_per_s": ("single_write", "per_s"),
    "batch_write_per_s": ("batch_write", "per_s"),
    "read_1_reader_per_s": ("read_1_reader", "per_reader_per_s"),
    "read_1_reader_paced_per_s": ("read_1_reader_paced", "per_reader_per_s"),
    "read_1_reader_paced_lost": ("read_1_reader_paced", "lost_per_reader"),
    "read_4_readers_per_s": ("read_4_readers", "per_reader_per_s"),
    "single_write_delivered_per_s": ("single_write_delivered", "per_reader_per_s"),
    "latency_p50_us": ("latency", "p50_us"),
    "latency_p99_us": ("latency", "p99_us"),
    "writer_rate_with_stopped_reader_ratio": ("stopped_reader", "ratio"),
    "mp_queue_per_s": ("mp_queue", "per_s"),
    "zmq_ipc_per_s": ("zmq_ipc", "per_s"),
    "zmq_ipc_dropped": ("zmq_ipc", "dropped"),
    "memcpy_bytes_per_s": ("memcpy", "bytes_per_s"),
}
"""Top-level key: (measurement, figure in its details)."""

RATIOS = {
    "single_write_vs_zmq_ipc": ("single_write_per_s", "zmq_ipc_per_s"),
    "single_write_vs_mp_queue": ("single_write_per_s", "mp_queue_per_s"),
}


def _headline(details: dict[str, Figures]) -> dict[str, Any]:
    """The top-level figures (medians) of the measurements that ran, and their ratios."""
    report: dict[str, Any] = {
        key: details[name][figure] for key, (name, figure) in HEADLINE.items() if name in details
    }
    for key, (over, under) in RATIOS.items():
        if over in report and under in report:
            report[key] = round(report[over] / report[under], 3)
    return report


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for key, op, bound in TARGETS:
        if key in report:
            value = report[key]
            met = value >= bound if op == ">=" else value <= bound
            targets[key] = {"need": f"{op} {bound:g}", "value": value, "met": met}
    targets["all_met"] = all(t["met"] for t in targets.values())
    return targets


def _notes(details: dict[str, Figures], settings: Settings) -> list[str]:
    cpus = len(os.sched_getaffinity(0))
    notes = [
        f"read_4_readers: 4 busy-polling readers + 1 writer share {cpus} cores",
        "read_1_reader: what the reader receives, at most the writer's rate (writer_per_s); "
        "ticks lost to a writer lapping it are in lost_per_reader. read_1_reader_paced: the "
        f"same with the writer held to {settings.paced_rate:g} ticks/s",
        "single_write_per_s: the writer alone, in-process; single_write_delivered_per_s: what "
        "a reader process receives from a single-write writer process, measured at the "
        "consumer like mp_queue and zmq_ipc",
        f"latency: writer ({settings.latency_rate:g} ticks/s) and reader each spin on a CPU "
        f"of {cpus}, pinned; any other load shows in p99 (reader_preempted)",
        "others_cpus: CPUs that processes outside this run kept busy during a measurement "
        "(/proc/stat less this run's CPU time); near 0: nothing else competed",
    ]
    if "zmq_ipc" in details:
        notes.append(
            f"zmq_ipc: HWM above the message count; dropped {details['zmq_ipc']['dropped']:g}"
        )
    busy = [name for name, figures in details.items() if figures["others_cpus"] > 0.25]
    if busy:
        notes.append(f"other processes competed for the CPUs during: {', '.join(busy)}")
    return notes


def _machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": models[0] if models else "",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {"numpy": np.__version__, "pyzmq": zmq.__version__, "msgpack": msgpack.version},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def _log(message: str) -> None:
    print(f"bench/ring.py: {message}", file=sys.stderr, flush=True)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so Scratch cleans up


def _parse_args(argv: list[str] | None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a ~20 s smoke run")
    parser.add_argument("--seconds", type=float, help="each timed window (default 1.0)")
    parser.add_argument("--repeats", type=int, help="rounds (default 5)")
    parser.add_argument(
        "--only", nargs="+", choices=list(MEASUREMENTS), default=[], help="run only these"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    if args.seconds is not None:
        settings = replace(settings, seconds=args.seconds)
    if args.repeats is not None:
        settings = replace(settings, repeats=args.repeats)
    settings = replace(settings, only=tuple(args.only))
    return settings, args.json


def main(argv: list[str] | None = None) -> None:
    settings, as_json = _parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    report = run(settings)
    if as_json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        if isinstance(value, float):
            target = report["targets"].get(key)
            verdict = "" if target is None else f"  {target['need']}: {target['met']}"
            print(f"{key:40} {value:>18,.3f}{verdict}")


if __name__ == "__main__":
    main()
