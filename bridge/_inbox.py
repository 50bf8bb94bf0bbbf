"""The hand-off from paho's network thread to the bridge's gevent hub.

paho calls `on_message` in its own OS thread; zerorpc may only be used from
greenlets of the hub's thread. The inbox is the one place the two meet: the
network thread appends under a lock and wakes the hub through
`loop.run_callback_threadsafe`, at most once per drain (so a burst of a
thousand messages costs one wake-up, not a thousand).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

import gevent
from gevent.event import Event

from bridge._overflow import Entry, Overflow, drop_oldest, newest_per_symbol
from broker import Quote

Command = TypeVar("Command")

_RECHECK_S = 0.25
"""How often a blocked producer looks again, besides being notified."""


class Inbox(Generic[Command]):
    """A bounded queue of quotes plus a queue of control commands.

    At most `capacity` quotes are kept (with `Overflow.BLOCK`, at most
    `capacity` plus the quotes of one message). What happens to quotes beyond
    that is the `overflow` policy; every quote it removes is counted in
    `conflated` or `dropped`, and the time producers spent waiting in
    `blocked_s`. Nothing is removed while there is room.

    The hub says with `set_draining` whether it is taking quotes (the algorithm
    is reachable); only then does `Overflow.BLOCK` make producers wait.

    `put_*`, `wake` and `close` may be called from any thread; `wait`, `take`,
    `requeue` and `set_draining` only from the hub's thread (the thread that
    created the inbox).
    """

    def __init__(self, *, capacity: int, overflow: Overflow = Overflow.CONFLATE) -> None:
        self.capacity = capacity
        self.overflow = overflow
        self.dropped = 0
        self.conflated = 0
        self.blocked_s = 0.0
        self._quotes: deque[Entry] = deque()
        self._controls: deque[Command] = deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._draining = False
        self._closed = False
        self._signalled = False
        self._ready = Event()
        self._loop = gevent.get_hub().loop

    def put_quotes(self, topic: str, quotes: list[Quote]) -> None:
        """Append quotes that arrived on `topic`, applying the overflow policy."""
        self.put_entries([(topic, quote) for quote in quotes])

    def put_entries(self, entries: list[Entry]) -> None:
        """Append quotes, each with its own topic, applying the overflow policy."""
        with self._lock:
            if self.overflow is Overflow.BLOCK:
                self._wait_for_room()
            self._quotes.extend(entries)
            self._make_room()
        self._signal()

    def put_control(self, command: Command) -> None:
        """Queue a control command for the hub."""
        with self._lock:
            self._controls.append(command)
        self._signal()

    def requeue(self, entries: Sequence[Entry]) -> None:
        """Put entries that could not be delivered back at the front, in order."""
        with self._lock:
            self._quotes.extendleft(reversed(entries))
            self._make_room()

    def set_draining(self, draining: bool) -> None:
        """Whether the hub is taking quotes; a blocked producer stops waiting when it is not."""
        with self._lock:
            self._draining = draining and not self._closed
            self._room.notify_all()

    def close(self) -> None:
        """Release blocked producers for good (at shutdown): from now on, full means drop."""
        with self._lock:
            self._closed = True
            self._draining = False
            self._room.notify_all()

    def wake(self) -> None:
        """Make a pending or the next `wait` return at once."""
        self._signal()

    def wait(self, timeout: float | None) -> None:
        """Block this greenlet until something was put or woken, or `timeout` passes."""
        self._ready.wait(timeout)

    def take(self, *, max_quotes: int | None = None) -> tuple[list[Command], list[Entry]]:
        """Every queued command, and up to `max_quotes` quotes (all when None), oldest first.

        Resets the wake-up: anything put after this call wakes the next `wait`.
        Both queues are read under one lock, so a concurrent `put_*` is either
        returned now or wakes the next `wait`.
        """
        self._ready.clear()
        with self._lock:
            self._signalled = False
            commands = list(self._controls)
            self._controls.clear()
            if max_quotes is None or max_quotes >= len(self._quotes):
                entries = list(self._quotes)
                self._quotes.clear()
            else:
                entries = [self._quotes.popleft() for _ in range(max_quotes)]
            if entries:
                self._room.notify_all()
        return commands, entries

    def __len__(self) -> int:
        return len(self._quotes)

    def _wait_for_room(self) -> None:
        """With the lock held: wait while the queue is full and the hub drains it."""
        started = None
        while self._draining and len(self._quotes) >= self.capacity:
            started = started or time.monotonic()
            self._room.wait(_RECHECK_S)
        if started is not None:
            self.blocked_s += time.monotonic() - started

    def _make_room(self) -> None:
        """With the lock held: bring the queue back within `capacity` by the overflow policy."""
        if len(self._quotes) <= self.capacity:
            return
        if self.overflow is Overflow.CONFLATE:
            self._conflate()
        elif self.overflow is Overflow.DROP_OLDEST or not self._draining:
            self.dropped += drop_oldest(self._quotes, self.capacity)

    def _conflate(self) -> None:
        kept = newest_per_symbol(self._quotes)
        self.conflated += len(self._quotes) - len(kept)
        self._quotes = deque(kept)
        # With nearly as many symbols as room, conflating again at every put
        # would cost O(capacity) each time: drop the oldest to keep a quarter free.
        keep = max(1, self.capacity * 3 // 4)
        if len(self._quotes) > keep:
            self.dropped += drop_oldest(self._quotes, keep)

    def _signal(self) -> None:
        with self._lock:
            if self._signalled:
                return
            self._signalled = True
        self._loop.run_callback_threadsafe(self._ready.set)
