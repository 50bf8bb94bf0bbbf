"""The bridge's zerorpc connection to one algorithm server.

zerorpc failures are translated into two exceptions the bridge acts on:
`AlgorithmUnavailable` (no answer: the server is down, unreachable or lost;
the bridge keeps the quotes and reconnects), its subclass
`AlgorithmNotInitialized` (the server answers, but has lost its
initialisation: the bridge initialises it again) and `AlgorithmError` (the
algorithm's own code raised or answered nonsense; the batch is dead-lettered
and the bridge goes on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import zerorpc
import zmq

from broker import Quote
from tickbus.errors import (
    AlgorithmError,
    AlgorithmNotInitialized,
    AlgorithmUnavailable,
    NotInitialized,
)

_NO_ANSWER = (zerorpc.LostRemote, zerorpc.TimeoutExpired, zmq.ZMQError)


class _NoLingerContext(zerorpc.Context):  # type: ignore[misc]
    """A zerorpc context whose sockets drop unsent messages when closed.

    zerorpc's context ignores ``Context.setsockopt`` defaults, so linger is set
    on each socket here. With zmq's default (linger forever), a request written
    while the server was down stays queued after `close` and reaches the next
    server on that address: a stale batch delivered twice.
    """

    def socket(self, socket_type: int) -> Any:
        sock = super().socket(socket_type)
        sock.setsockopt(zmq.LINGER, 0)
        return sock


_context: _NoLingerContext | None = None


def _shared_context() -> _NoLingerContext:
    """One context (one zmq I/O thread) for every link this process opens."""
    global _context
    if _context is None:
        _context = _NoLingerContext()
    return _context


class AlgorithmLink:
    """A zerorpc client bound to one algorithm server address.

    Args:
        endpoint: The server address, e.g. ``"tcp://127.0.0.1:4242"``.
        heartbeat: zerorpc heartbeat period; must equal the server's.
        timeout: Seconds one call may take before it counts as unanswered.

    Not thread-safe: use it from the hub's greenlets only. `close` discards
    anything still queued for the server (linger 0), so a request written
    while the server was down is never delivered to its successor later.
    """

    def __init__(self, endpoint: str, *, heartbeat: float, timeout: float) -> None:
        self.endpoint = endpoint
        self._client = zerorpc.Client(
            context=_shared_context(), heartbeat=heartbeat, timeout=timeout
        )
        try:
            self._client.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise AlgorithmUnavailable(endpoint, f"bad address: {exc}") from exc

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        """Call `initialize(params)`; returns the channels (a list of strings).

        Raises:
            AlgorithmError: The algorithm raised, or did not return a list of strings.
            AlgorithmUnavailable: No answer.
        """
        channels = self._call("initialize", dict(params))
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise AlgorithmError(
                self.endpoint, f"initialize returned {channels!r}, not a list of topic filters"
            )
        return channels

    def events(self, quotes: Sequence[Quote]) -> list[Any]:
        """Call `events(quotes)`; returns what the algorithm returned (a list)."""
        orders = self._call("events", list(quotes))
        if not isinstance(orders, list):
            raise AlgorithmError(
                self.endpoint, f"events returned {type(orders).__name__}, not a list"
            )
        return orders

    def fill(self, report: Mapping[str, Any]) -> None:
        """Call `fill(report)`: a fill or a rejection of one of the algorithm's orders."""
        self._call("fill", dict(report))

    def state(self) -> dict[str, Any]:
        """Call `state()`; the algorithm's JSON-safe state."""
        return self._mapping("state")

    def finalize(self) -> dict[str, Any]:
        """Call `finalize()`; the algorithm's final state."""
        return self._mapping("finalize")

    def close(self) -> None:
        """Close the client and drop anything not yet sent."""
        self._client.close()

    def _mapping(self, method: str) -> dict[str, Any]:
        result = self._call(method)
        if not isinstance(result, dict):
            raise AlgorithmError(self.endpoint, f"{method} returned {result!r}, not a dict")
        return result

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return self._client(method, *args)
        except zerorpc.RemoteError as exc:
            if exc.name == NotInitialized.__name__:
                raise AlgorithmNotInitialized(self.endpoint, f"{method}: {exc.msg}") from exc
            raise AlgorithmError(self.endpoint, f"{method} raised {exc.name}: {exc.msg}") from exc
        except _NO_ANSWER as exc:
            raise AlgorithmUnavailable(self.endpoint, f"{method}: {exc!r}") from exc
