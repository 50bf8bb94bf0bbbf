"""Publishing quotes: encoding, topics, pacing, status and clean stopping."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType, TracebackType

from broker import (
    BusClient,
    MqttSettings,
    Quote,
    encode_quote_json,
    encode_quotes_msgpack,
    quote_topic,
)
from feeds._config import WireFormat

STATS_INTERVAL_S = 1.0
COMPONENT = "feed"


class QuotePublisher:
    """A feed's connection: publishes quotes to ``quotes/<SID>`` and reports on its status.

    A context manager: entering connects and announces ``online`` on
    ``status/feed/<name>``; leaving flushes what was published, announces
    ``offline`` and disconnects. Quotes go out with QoS 0 (a newer quote
    supersedes an older one); while the broker is unreachable paho queues them
    and sends them on reconnect.

    SIGTERM and SIGINT set `stopping` instead of killing the process, so the
    feed's loop can end cleanly.
    """

    def __init__(self, settings: MqttSettings, *, name: str, wire_format: WireFormat) -> None:
        self.published = 0
        self.rejected = 0
        self.stopping = False
        self._bus = BusClient(settings, component=COMPONENT, name=name)
        self._encode: Callable[[Quote], bytes] = (
            encode_quote_json if wire_format == "json" else lambda q: encode_quotes_msgpack([q])
        )
        self._started = time.monotonic()
        self._next_stats = 0.0

    def __enter__(self) -> QuotePublisher:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self._bus.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._publish_stats()
        self._bus.__exit__(exc_type, exc, tb)

    def publish(self, quote: Quote) -> None:
        """Publish one quote (stamping ``ts`` now when it is 0)."""
        if not quote["ts"]:
            quote["ts"] = time.time()
        self._bus.publish(quote_topic(quote["sid"]), self._encode(quote))
        self.published += 1
        if time.monotonic() >= self._next_stats:
            self._publish_stats()

    def reject(self, reason: str, payload: bytes) -> None:
        """Send an input record the feed could not turn into a quote to ``deadletter/feed``."""
        self.rejected += 1
        self._bus.publish_dead_letter(COMPONENT, reason=reason, payload=payload)

    def sleep_until(self, deadline: float) -> None:
        """Sleep until `time.monotonic()` reaches `deadline`, waking early when stopping."""
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.1))

    def _publish_stats(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bus.publish_status(
            "online",
            published=self.published,
            rejected=self.rejected,
            rate=round(self.published / elapsed, 1),
        )
        self._next_stats = time.monotonic() + STATS_INTERVAL_S

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
