"""The hand-off from paho's network thread to the bridge's gevent hub.

paho calls `on_message` in its own OS thread; zerorpc may only be used from
greenlets of the hub's thread. The inbox is the one place the two meet: the
network thread appends under a lock and wakes the hub through
`loop.run_callback_threadsafe`, at most once per drain (so a burst of a
thousand messages costs one wake-up, not a thousand).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

import gevent
from gevent.event import Event

from broker import Quote

Entry = tuple[str, Quote]
"""A quote and the topic it arrived on."""

Command = TypeVar("Command")


class Inbox(Generic[Command]):
    """A bounded FIFO of quotes plus a queue of control commands.

    When the quote queue is full, the oldest quote is dropped and counted in
    `dropped`: memory stays bounded while an algorithm is down or slow, and
    the loss is reported, never silent.

    `put_*` and `wake` may be called from any thread; `wait` and `take` only
    from the hub's thread (the thread that created the inbox).
    """

    def __init__(self, *, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._quotes: deque[Entry] = deque()
        self._controls: deque[Command] = deque()
        self._lock = threading.Lock()
        self._signalled = False
        self._ready = Event()
        self._loop = gevent.get_hub().loop

    def put_quotes(self, topic: str, quotes: list[Quote]) -> None:
        """Append quotes that arrived on `topic`; drops (and counts) the oldest when full."""
        self.put_entries([(topic, quote) for quote in quotes])

    def put_entries(self, entries: list[Entry]) -> None:
        """Append quotes, each with its own topic; drops (and counts) the oldest when full."""
        with self._lock:
            self._quotes.extend(entries)
            self._trim()
        self._signal()

    def put_control(self, command: Command) -> None:
        """Queue a control command for the hub."""
        with self._lock:
            self._controls.append(command)
        self._signal()

    def requeue(self, entries: list[Entry]) -> None:
        """Put entries that could not be delivered back at the front, in order."""
        with self._lock:
            self._quotes.extendleft(reversed(entries))
            self._trim()

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
        return commands, entries

    def __len__(self) -> int:
        return len(self._quotes)

    def _trim(self) -> None:
        excess = len(self._quotes) - self.capacity
        for _ in range(max(0, excess)):
            self._quotes.popleft()
        self.dropped += max(0, excess)

    def _signal(self) -> None:
        with self._lock:
            if self._signalled:
                return
            self._signalled = True
        self._loop.run_callback_threadsafe(self._ready.set)
