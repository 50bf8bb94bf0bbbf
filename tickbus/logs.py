"""Logging that does not repeat itself: one line for the first failure, then a summary now and then.

A condition a component handles (an algorithm that raises on every third
quote, a batch it dead-letters) must not print a line per quote: the log would
bury everything else. `LogThrottle` logs the first occurrence at once and then
at most one line per interval, saying how many occurrences it left out.

Also `quiet_zerorpc`: zerorpc logs every remote exception with a traceback and
prints a scary ``gevent_zeromq BUG`` line when it recovers a missed socket
event; tickbus reports those conditions itself, in one line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["DEFAULT_SUMMARY_INTERVAL_S", "LogThrottle", "quiet_zerorpc"]

DEFAULT_SUMMARY_INTERVAL_S = 10.0
"""Least time between two lines of one `LogThrottle`."""


class LogThrottle:
    """Logs a recurring condition once, then at most once per `interval` seconds.

    Thread-safe. The first call logs its message; calls within `interval` of
    the last line are only counted; the first call after that logs its
    message with ``(N more since)`` appended.

    Args:
        logger: Where the lines go.
        level: The level of every line (``logging.WARNING`` by default).
        interval: Least seconds between two lines.
        clock: Monotonic seconds; a test may pass its own.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        level: int = logging.WARNING,
        interval: float = DEFAULT_SUMMARY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_line: float | None = None
        self._left_out = 0

    def log(self, message: str, *args: object, exc_info: BaseException | None = None) -> bool:
        """Log ``message % args`` unless a line went out less than `interval` ago.

        Args:
            message: The %-format of the line.
            *args: Its arguments.
            exc_info: An exception whose traceback goes with the line, if it is logged.

        Returns:
            Whether a line was logged.
        """
        now = self._clock()
        with self._lock:
            if self._last_line is not None and now - self._last_line < self._interval:
                self._left_out += 1
                return False
            left_out, self._left_out, self._last_line = self._left_out, 0, now
        if left_out:
            message += f" ({left_out} more since the last line)"
        self._logger.log(self._level, message, *args, exc_info=exc_info)
        return True


class _DropZerorpcBug(logging.Filter):
    """Drops zerorpc's ``gevent_zeromq BUG`` lines: a missed socket event it recovered from."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "gevent_zeromq BUG" not in record.getMessage()


def quiet_zerorpc() -> None:
    """Keep zerorpc's own noise off the user's terminal; tickbus logs what it handles.

    zerorpc's server logs every exception a method raises with a full
    traceback (the caller gets the error anyway, and tickbus logs it in one
    line), and its gevent socket wrapper logs ``gevent_zeromq BUG`` when it
    catches up after a missed event, which it then handles. Idempotent.
    """
    logging.getLogger("zerorpc.core").setLevel(logging.CRITICAL)
    wrapper = logging.getLogger("zerorpc.gevent_zmq")
    if not any(isinstance(f, _DropZerorpcBug) for f in wrapper.filters):
        wrapper.addFilter(_DropZerorpcBug())
