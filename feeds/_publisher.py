"""Publishing quotes: to MQTT, to a host-local ring, or both; pacing, status, clean stopping."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import ExitStack
from types import FrameType, TracebackType

from paho.mqtt.enums import MQTTErrorCode

from broker import (
    BusClient,
    MqttSettings,
    Quote,
    encode_quote_json,
    encode_quotes_msgpack,
    quote_topic,
)
from feeds._config import WireFormat
from feeds._metrics import FeedMetrics
from feeds._packer import Packer
from ring import RingWriter
from tickbus.errors import ConfigError
from tickbus.metrics import MetricsEndpoint, serve_metrics

STATS_INTERVAL_S = 1.0
COMPONENT = "feed"


class QuotePublisher:
    """A feed's outputs: MQTT topics ``quotes/<SID>`` and/or a ring, plus its status.

    A context manager. With MQTT, entering connects and announces ``online``
    on ``status/feed/<name>``; leaving flushes what was published, announces
    ``offline`` (with the final counters) and disconnects. Quotes go out with
    QoS 0 (a newer quote supersedes an older one); while the broker is
    unreachable they cannot be sent: they are counted as ``dropped`` on the
    status topic, not as published; paho reconnects in the background and
    ``mqtt_reconnects`` on the status counts it. With a ring, the
    feed is the ring's one writer for as long as it runs.

    SIGTERM and SIGINT set `stopping` instead of killing the process, so the
    feed's loop can end cleanly.

    Args:
        settings: The broker, or None to publish to the ring only.
        name: The feed's name on its status topic.
        wire_format: Encoding of MQTT payloads.
        ring: Name or path of a ring to write every quote into as well.
        pack_size: Above 1, MQTT messages are msgpack arrays of up to this many
            quotes of one symbol (see `Packer`); the ring gets every quote at once.
        pack_wait: Seconds a quote may wait for its pack to fill (None: no limit).
        metrics: Serve the counters as Prometheus metrics there while the feed runs.

    Raises:
        ConfigError: Neither MQTT nor a ring was given; entering: the broker
            cannot be reached or the metrics address cannot be bound.
    """

    def __init__(
        self,
        settings: MqttSettings | None,
        *,
        name: str,
        wire_format: WireFormat,
        ring: str | None = None,
        pack_size: int = 1,
        pack_wait: float | None = None,
        metrics: MetricsEndpoint | None = None,
    ) -> None:
        if settings is None and ring is None:
            raise ConfigError("a feed needs somewhere to publish: MQTT, a ring, or both")
        self.published = 0
        self.rejected = 0
        self.dropped = 0
        self.stopping = False
        self._settings, self._name, self._ring_name = settings, name, ring
        self._metrics = metrics
        self._bus: BusClient | None = None
        self._ring: RingWriter | None = None
        self._stack = ExitStack()
        self._encode: Callable[[Quote], bytes] = (
            encode_quote_json if wire_format == "json" else lambda q: encode_quotes_msgpack([q])
        )
        self._pack_wait = 0.1 if pack_wait is None else pack_wait
        self._packer = None if pack_size <= 1 else Packer(size=pack_size, max_wait=pack_wait)
        self._started = time.monotonic()
        self._next_stats = 0.0

    def __enter__(self) -> QuotePublisher:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        with ExitStack() as stack:
            stack.enter_context(serve_metrics(self._metrics, FeedMetrics(self._name, self)))
            if self._ring_name is not None:
                self._ring = stack.enter_context(RingWriter(self._ring_name))
            if self._settings is not None:
                bus = BusClient(self._settings, component=COMPONENT, name=self._name)
                self._bus = stack.enter_context(bus)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._packer is not None:
            self._send_packs(self._packer.drain())
        self._publish_stats()
        self._stack.close()

    def publish(self, quote: Quote) -> None:
        """Publish one quote (stamping ``ts`` now when it is 0) to every output."""
        if not quote["ts"]:
            quote["ts"] = time.time()
        if self._ring is not None:
            self._ring.write_quote(quote)
        if self._bus is None:
            self.published += 1
        elif self._packer is not None:
            self._send_packs(self._packer.add(quote))
        else:
            self._send(quote["sid"], self._encode(quote), 1)
        if time.monotonic() >= self._next_stats:
            self._publish_stats()

    def _send_packs(self, packs: list[list[Quote]]) -> None:
        for pack in packs:
            self._send(pack[0]["sid"], encode_quotes_msgpack(pack), len(pack))

    def _send(self, sid: str, payload: bytes, quotes: int) -> None:
        assert self._bus is not None
        info = self._bus.publish(quote_topic(sid), payload)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.published += quotes
        else:
            self.dropped += quotes

    def reject(self, reason: str, payload: bytes) -> None:
        """Count an input record the feed could not turn into a quote; dead-letter it on MQTT."""
        self.rejected += 1
        if self._bus is not None:
            self._bus.publish_dead_letter(COMPONENT, reason=reason, payload=payload)

    def sleep_until(self, deadline: float) -> None:
        """Sleep until `time.monotonic()` reaches `deadline`, waking early when stopping.

        The status goes out every `STATS_INTERVAL_S` meanwhile, so a slow feed
        (a low --rate, a gap in a CSV replay) keeps reporting its counters.
        """
        while not self.stopping:
            if time.monotonic() >= self._next_stats:
                self._publish_stats()
            if self._packer is not None:
                self._send_packs(self._packer.due())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.1, self._pack_wait))

    def _publish_stats(self) -> None:
        self._next_stats = time.monotonic() + STATS_INTERVAL_S
        if self._bus is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bus.publish_status(
            "online",
            published=self.published,
            rejected=self.rejected,
            dropped=self.dropped,
            rate=round(self.published / elapsed, 1),
            ring=self._ring_name,
            mqtt_reconnects=self._bus.reconnects,
        )

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
