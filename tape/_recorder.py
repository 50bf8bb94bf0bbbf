"""The recorder: quotes from the bus (or a ring) into a Parquet dataset, crash-safe.

Topics:

* in: quotes on `RecorderConfig.topics` (QoS 0), unless it records a ring;
* out: payloads that are not quotes on ``deadletter/recorder``, status with
  counters every `STATS_INTERVAL_S` on ``status/recorder/<name>``.

Data path: paho's network thread (or the ring's reader thread) decodes each
message and puts its quotes, with their arrival time and topic, into the
`_Inbox`. The main thread, every `RecorderConfig.flush_s`, takes what the
inbox holds and appends it to the journal (`Journal`, fsync'd), and when the
journal is larger than `RecorderConfig.roll_bytes` or older than
`RecorderConfig.roll_s`, finishes it into Parquet files (`finish_journal`).
A crash loses at most the rows of the last flush interval: a restart with the
same name and directory finishes the journal it left first.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

import pyarrow as pa

from broker import (
    BusClient,
    Quote,
    decode_quotes,
    quote_topic,
    subscription_filters,
    topic_matches,
)
from ring import RingReader
from tape._config import RecorderConfig
from tape._journal import FinishedJournal, Journal, JournalLock, finish_journal, journal_path
from tape._metrics import RecorderMetrics
from tape._schema import table_from_quotes
from tickbus.errors import QuoteRejected
from tickbus.metrics import serve_metrics

log = logging.getLogger(__name__)

COMPONENT = "recorder"
STATS_INTERVAL_S = 1.0
TICK_S = 0.05
RING_BATCH = 4096
RING_POLL_S = 0.1


@dataclass
class _Counters:
    rows_written: int = 0
    bytes: int = 0
    files: int = 0
    journal_rows: int = 0
    last_flush: float | None = None
    recovered_rows: int = 0
    torn: int = 0
    write_errors: int = 0


def run_recorder(config: RecorderConfig) -> dict[str, Any]:
    """Record until SIGTERM or SIGINT; returns the final counters.

    On start it finishes a journal this recorder's name left behind (a crash),
    so the dataset goes on where it stopped. On a signal it stops reading,
    flushes, finishes the journal into Parquet files, publishes its last
    counters (with the ``offline`` status) and returns.

    Raises:
        ConfigError: The broker cannot be reached, a recorder of this name is
            live on the bus or holds this dataset's journal lock, or the
            metrics address cannot be bound.
        RingError: The ring to record cannot be opened.
    """
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    recorder = _Recorder(config)
    metrics = RecorderMetrics(config.name, recorder.stats)
    with serve_metrics(config.metrics, metrics), recorder.bus, JournalLock(config.out, config.name):
        recorder.recover()
        with recorder.inputs():
            log.info("recorder %s recording into %s", config.name, config.out)
            while not stopping.is_set():
                recorder.tick(time.monotonic())
                stopping.wait(TICK_S)
        recorder.stop()
    log.info("recorder %s offline", config.name)
    return recorder.stats()


class _Inbox:
    """Rows waiting for the next flush; filled from any thread, emptied by the main one.

    After `close`, additions are dropped (not counted): the final counters
    describe exactly what was recorded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quotes: list[Quote] = []
        self._arrivals: list[int] = []
        self._topics: list[str] = []
        self._closed = False
        self.quotes = 0
        self.dead_letters = 0

    def add(self, arrival_ns: int, topics: list[str], quotes: list[Quote]) -> None:
        """Keep `quotes`, which arrived at `arrival_ns` on `topics` (one per quote)."""
        with self._lock:
            if self._closed:
                return
            self._quotes += quotes
            self._topics += topics
            self._arrivals += [arrival_ns] * len(quotes)
            self.quotes += len(quotes)

    def count_dead_letter(self) -> bool:
        """Count a rejected payload; False (not counted) once closed."""
        with self._lock:
            if not self._closed:
                self.dead_letters += 1
            return not self._closed

    @property
    def pending(self) -> int:
        """Rows waiting for the next flush."""
        return len(self._quotes)

    def take(self) -> pa.Table | None:
        """Every row kept so far, as a table of `SCHEMA`; None when there is none."""
        with self._lock:
            quotes, arrivals, topics = self._quotes, self._arrivals, self._topics
            self._quotes, self._arrivals, self._topics = [], [], []
        if not quotes:
            return None
        return table_from_quotes(quotes, arrival_ns=arrivals, topics=topics)

    def close(self) -> None:
        """Take no more rows."""
        with self._lock:
            self._closed = True


class _Recorder:
    """Inputs, inbox, journal and counters of one recorder. See the module docstring."""

    def __init__(self, config: RecorderConfig) -> None:
        self._config = config
        self._inbox = _Inbox()
        self._counters = _Counters()
        self._journal: Journal | None = None
        self._journal_started = 0.0
        self._broken = False
        self._backlog: list[pa.Table] = []  # rows a failed append could not journal
        self._next_flush = 0.0
        self._next_stats = 0.0
        self._ring: _RingInput | None = None
        self._path = journal_path(config.out, config.name)
        self.bus = BusClient(
            config.mqtt,
            component=COMPONENT,
            name=config.name,
            on_message=None if config.ring else self._on_message,
        )

    def recover(self) -> None:
        """Finish the journal a crash left behind, if any, before recording anything new."""
        if self._path.exists():
            log.warning("finishing the journal %s left by an earlier run", self._path)
            finished = finish_journal(self._path, self._config.out, writer=self._name)
            self._count_finished(finished)
            # Rows an interrupted roll had already finished are recovered too.
            self._counters.recovered_rows = finished.rows + finished.skipped_rows

    def inputs(self) -> ExitStack:
        """Start reading (subscribe, or start the ring's thread); leaving the stack stops it."""
        stack = ExitStack()
        if self._config.ring is None:
            filters = subscription_filters(list(self._config.topics))
            self.bus.subscribe(filters)
            stack.callback(self.bus.unsubscribe, filters)
        else:
            self._ring = _RingInput(self._config.ring, self._config.topics, self._inbox)
            stack.callback(self._ring.close)
        stack.callback(self._inbox.close)
        return stack

    def tick(self, now: float) -> None:
        """Flush, roll and publish the status when each is due (main thread)."""
        if now >= self._next_flush:
            self._next_flush = now + self._config.flush_s
            self.flush()
        journal = self._journal
        if journal is not None and (
            journal.bytes >= self._config.roll_bytes
            or now - self._journal_started >= self._config.roll_s
        ):
            self.roll()
        if now >= self._next_stats:
            self._next_stats = now + STATS_INTERVAL_S
            self.publish_stats()

    def flush(self) -> None:
        """Append the inbox's rows to the journal (created on the first rows) and fsync it.

        A failed write is logged and counted; its rows stay in memory and go
        into the next journal, after the broken one is finished.
        """
        table = self._inbox.take()
        if table is not None:
            self._backlog.append(table)
        if not self._backlog:
            return
        if self._broken:
            return  # nothing goes after a torn record: the journal is finished first
        try:
            if self._journal is None:
                self._journal = Journal(self._path)
                self._journal_started = time.monotonic()
            while self._backlog:
                self._journal.append(self._backlog[0])
                self._backlog.pop(0)
                self._counters.journal_rows = self._journal.rows
        except OSError:
            self._counters.write_errors += 1
            log.exception("appending to the journal %s failed; retrying", self._path)
            self._broken = self._journal is not None
            self._journal_started = -float("inf")  # rolled at this tick, or retried at the next
            return
        self._counters.last_flush = time.time()

    def roll(self) -> None:
        """Finish the journal into Parquet files; on failure, keep it and retry later."""
        if self._journal is None:
            return
        self._journal.close()
        try:
            self._count_finished(finish_journal(self._path, self._config.out, writer=self._name))
        except OSError:
            self._counters.write_errors += 1
            log.exception("finishing the journal %s failed; retrying", self._path)
            return
        self._journal = None
        self._broken = False
        self._counters.journal_rows = 0

    def stop(self) -> None:
        """Flush and roll what is left; publish the final counters (inputs already stopped)."""
        self.flush()
        self.roll()
        self.publish_stats()

    def publish_stats(self) -> None:
        """Publish the counters: ``degraded`` while rows wait for a failed write to succeed.

        ``online`` otherwise; the bus client ends with ``offline`` and the counters.
        """
        state = "degraded" if self._backlog or self._broken else "online"
        self.bus.publish_status(state, **self.stats())

    def stats(self) -> dict[str, Any]:
        """The counters; any thread may read them (the metrics server does)."""
        ring = self._ring
        return {
            **asdict(self._counters),
            "quotes": self._inbox.quotes,
            "pending": self._inbox.pending,
            "dead_letters": self._inbox.dead_letters,
            "mqtt_reconnects": self.bus.reconnects,
            "handler_errors": self.bus.handler_errors,
            "source": "mqtt" if self._config.ring is None else f"ring://{self._config.ring}",
            "ring_lost": None if ring is None else ring.lost,
        }

    @property
    def _name(self) -> str:
        return self._config.name

    def _count_finished(self, finished: FinishedJournal) -> None:
        counters = self._counters
        counters.rows_written += finished.rows
        counters.bytes += finished.bytes
        counters.files += len(finished.files)
        counters.torn += int(finished.torn)

    def _on_message(self, topic: str, payload: bytes) -> None:
        """Decode and keep, in paho's thread; a bad payload goes to the dead letters."""
        arrival = time.time_ns()
        try:
            quotes = decode_quotes(payload)
        except QuoteRejected as exc:
            if self._inbox.count_dead_letter():
                self.bus.publish_dead_letter(
                    COMPONENT, reason=exc.reason, topic=topic, payload=payload
                )
            return
        self._inbox.add(arrival, [topic] * len(quotes), quotes)


class _RingInput:
    """Reads every new tick of a ring in a thread of its own, as quotes on ``quotes/<SID>``.

    It starts at the ring's newest tick. Ticks the ring's writer overwrote
    before they were read are counted in `lost`. Ticks whose topic matches
    none of `topics` are not recorded.

    Raises:
        RingError: No such ring, or not a ring of this layout.
    """

    def __init__(self, name: str, topics: tuple[str, ...], inbox: _Inbox) -> None:
        self._reader = RingReader(name)
        self._filters = topics
        self._inbox = inbox
        self._matching: dict[str, str | None] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder-ring", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> int:
        """Ticks overwritten before this input could read them."""
        return self._reader.lost

    def close(self) -> None:
        """Stop reading and unmap the ring."""
        self._stopping.set()
        self._thread.join()
        self._reader.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._pass()
            except Exception:  # a bug here must not silently stop the recording
                log.exception("reading the ring failed; retrying")
                self._stopping.wait(RING_POLL_S)

    def _pass(self) -> None:
        reader = self._reader
        if not reader.wait(RING_POLL_S):
            return
        arrival = time.time_ns()
        topics, quotes = [], []
        for quote in reader.to_quotes(reader.read_batch(RING_BATCH)):
            topic = self._topic(quote["sid"])
            if topic is not None:
                topics.append(topic)
                quotes.append(quote)
        self._inbox.add(arrival, topics, quotes)

    def _topic(self, sid: str) -> str | None:
        """The topic of `sid`'s ticks, or None when the filters do not take it."""
        if sid not in self._matching:
            topic = quote_topic(sid)
            wanted = any(topic_matches(f, topic) for f in self._filters)
            self._matching[sid] = topic if wanted else None
        return self._matching[sid]
