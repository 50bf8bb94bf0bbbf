"""`tickbus ring relay`: one MQTT subscription per host, every decoded quote into the ring."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from broker import (
    BusClient,
    MqttSettings,
    decode_quotes,
    subscription_filters,
    topic_matches,
)
from ring._writer import DEFAULT_CAPACITY, RingWriter
from tickbus.errors import QuoteRejected, RingError

log = logging.getLogger(__name__)

COMPONENT = "relay"
STATS_INTERVAL_S = 1.0


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    """A relay from MQTT into a ring.

    Attributes:
        mqtt: The broker to subscribe to.
        topics: MQTT topic filters whose quotes go into the ring (``quotes/#``).
        ring: Name or path of the ring; the relay is its one writer.
        capacity: Ring capacity if the relay creates it (a power of two).
    """

    mqtt: MqttSettings
    topics: tuple[str, ...]
    ring: str
    capacity: int = DEFAULT_CAPACITY


class Relay:
    """Decodes each MQTT message in paho's thread and writes its quotes into the ring.

    paho's network thread is the only thread that writes, so the ring keeps
    exactly one writer. A payload that is not a quote, or a symbol the ring's
    table has no room for, goes to ``deadletter/relay`` with the reason.

    `stop` waits for the message being written, if any; messages paho delivers
    after it are neither written nor counted, so the final counters describe
    the ring exactly (``relayed`` equals the ticks this relay wrote).
    """

    def __init__(self, writer: RingWriter, topics: tuple[str, ...]) -> None:
        self._writer = writer
        self._topics = topics
        self._lock = threading.Lock()
        self._stopped = False
        self.bus: BusClient | None = None
        self.relayed = 0
        self.rejected = 0
        self.skipped = 0

    def stop(self) -> None:
        """Finish the message being written and take no more (any thread)."""
        with self._lock:
            self._stopped = True

    def on_message(self, topic: str, payload: bytes) -> None:
        """Write every quote of one message into the ring (paho's thread)."""
        with self._lock:
            if not self._stopped:
                self._relay(topic, payload)

    def _relay(self, topic: str, payload: bytes) -> None:
        if not any(topic_matches(f, topic) for f in self._topics):
            self.skipped += 1  # only there because a wider filter was subscribed
            return
        try:
            for quote in decode_quotes(payload):
                self._writer.write_quote(quote)
                self.relayed += 1
        except (QuoteRejected, RingError) as exc:
            self.rejected += 1
            log.warning("rejected a message on %s: %s", topic, exc.reason)
            if self.bus is not None:
                self.bus.publish_dead_letter(
                    COMPONENT, reason=exc.reason, topic=topic, payload=payload
                )


def run_relay(config: RelayConfig) -> None:
    """Relay until SIGTERM or SIGINT, publishing counters on ``status/relay/<ring>``.

    Counters go out every `STATS_INTERVAL_S` and once more at the end, so the
    ``offline`` status carries the final ones. A lost broker is reconnected to
    in the background (``mqtt_reconnects`` counts it); quotes published
    meanwhile never reach the relay.

    Raises:
        RingError: The ring already has a writer, or is not a ring.
        ConfigError: The broker is unreachable, or a topic filter is not valid.
    """
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    subscriptions = subscription_filters(config.topics)
    with RingWriter(config.ring, capacity=config.capacity) as writer:
        relay = Relay(writer, config.topics)
        name = Path(config.ring).name
        with BusClient(
            config.mqtt, component=COMPONENT, name=name, on_message=relay.on_message
        ) as bus:
            relay.bus = bus
            bus.subscribe(subscriptions)
            while not stopping.wait(STATS_INTERVAL_S):
                _publish_stats(bus, relay, writer, config.topics)
            bus.unsubscribe(subscriptions)
            relay.stop()
            _publish_stats(bus, relay, writer, config.topics)


def _publish_stats(
    bus: BusClient, relay: Relay, writer: RingWriter, topics: tuple[str, ...]
) -> None:
    bus.publish_status(
        "online",
        ring=str(writer.path),
        topics=list(topics),
        relayed=relay.relayed,
        rejected=relay.rejected,
        written=writer.written,
        mqtt_reconnects=bus.reconnects,
    )
