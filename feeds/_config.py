"""One frozen configuration per feed, built at the entry point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from broker import MqttSettings
from tickbus.metrics import MetricsEndpoint

WireFormat = Literal["json", "msgpack"]


@dataclass(frozen=True, kw_only=True)
class SyntheticFeedConfig:
    """A random-walk feed.

    Attributes:
        mqtt: The broker to publish to; None publishes to the ring only.
        symbols: Upper-case symbols; quotes go round-robin to ``quotes/<SYMBOL>``.
        rate: Quotes per second over all symbols; 0 publishes as fast as possible.
        count: Stop after this many quotes; None runs until SIGTERM/Ctrl-C.
        seed: Seed of the random generator, for reproducible prices.
        name: The feed's name on ``status/feed/<name>``.
        wire_format: ``json`` (readable) or ``msgpack`` (compact).
        ring: A ring (name or path) to write every quote into as well.
        batch: Quotes of one symbol packed per MQTT message (a msgpack array);
            1 (the default) sends one quote per message in `wire_format`.
        batch_ms: Milliseconds a quote may wait for its pack to fill (default 10).
        metrics: Serve Prometheus metrics there; None (the default) serves none.
    """

    mqtt: MqttSettings | None
    symbols: tuple[str, ...]
    rate: float = 200.0
    count: int | None = None
    seed: int | None = None
    name: str = "synthetic"
    wire_format: WireFormat = "json"
    ring: str | None = None
    batch: int = 1
    batch_ms: float = 10.0
    metrics: MetricsEndpoint | None = None


@dataclass(frozen=True, kw_only=True)
class CsvFeedConfig:
    """A CSV replay.

    Attributes:
        mqtt: The broker to publish to.
        path: CSV with a header and columns ``ts,sid,price``, optionally
            ``bid,ask,size``; ``ts`` in epoch seconds.
        speed: Replay at this multiple of the recorded pace; 0 replays as fast
            as possible.
        name: The feed's name on ``status/feed/<name>``.
        wire_format: ``json`` or ``msgpack``.
        batch: Quotes of one symbol packed per MQTT message (a msgpack array);
            1 (the default) sends one quote per message in `wire_format`.
        batch_ms: Milliseconds a quote may wait for its pack to fill (default 10).
        metrics: Serve Prometheus metrics there; None (the default) serves none.
    """

    mqtt: MqttSettings
    path: Path
    speed: float = 1.0
    name: str = "csv"
    wire_format: WireFormat = "json"
    batch: int = 1
    batch_ms: float = 10.0
    metrics: MetricsEndpoint | None = None
