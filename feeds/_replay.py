"""Replaying a recorded dataset onto the bus, in time order, at a multiple of its recorded pace."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from broker import MqttSettings, Quote
from feeds._config import WireFormat
from feeds._publisher import QuotePublisher
from tape import TimeLike, read_quotes
from tickbus.metrics import MetricsEndpoint


@dataclass(frozen=True, kw_only=True)
class ReplayFeedConfig:
    """A replay of a tape dataset.

    Attributes:
        mqtt: The broker to publish to.
        path: The dataset's root directory (as the recorder writes it).
        speed: Replay at this multiple of the recorded pace; 0 replays as fast
            as possible (default 1).
        symbols: Replay only these upper-case symbols; None (the default) replays all.
        start: Replay quotes with ``ts`` at or after this (epoch seconds, a
            `datetime`, or ISO 8601 text; UTC unless an offset is given); None: from the first.
        end: Replay quotes with ``ts`` before this; None: to the last.
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
    symbols: tuple[str, ...] | None = None
    start: TimeLike | None = None
    end: TimeLike | None = None
    name: str = "replay"
    wire_format: WireFormat = "json"
    batch: int = 1
    batch_ms: float = 10.0
    metrics: MetricsEndpoint | None = None


def run_replay(config: ReplayFeedConfig) -> int:
    """Publish the selected quotes of `config.path` on ``quotes/<SID>``, in ``ts`` order.

    The selection is checked before the feed connects, so an empty one fails
    without announcing anything. Status, will and counters are those of every
    feed (`QuotePublisher`); SIGTERM or Ctrl-C stops it cleanly. Returns the
    number published.

    Raises:
        TapeError: Nothing in the dataset is selected (the message says what it
            holds), or one of its files cannot be read (named).
        ConfigError: A bad bound, or the broker cannot be reached.
    """
    quotes = read_quotes(config.path, symbols=config.symbols, start=config.start, end=config.end)
    feed = QuotePublisher(
        config.mqtt,
        name=config.name,
        wire_format=config.wire_format,
        pack_size=config.batch,
        pack_wait=config.batch_ms / 1000,
        metrics=config.metrics,
    )
    with feed:
        publish_paced(feed, quotes, speed=config.speed)
    return feed.published  # after the with: a pack still open is sent on exit


def publish_paced(feed: QuotePublisher, quotes: Iterable[Quote], *, speed: float) -> None:
    """Publish `quotes` through `feed` at `speed` times the pace their ``ts`` record.

    A quote goes out at its ``ts`` offset from the first quote's, divided by
    `speed`, from the moment the first one goes out; pacing is by that
    schedule, so a slow publish does not stretch the replay. A quote whose
    ``ts`` is earlier than the schedule has reached goes out at once. With
    `speed` 0 every quote goes out as fast as possible. Stops early when
    `feed` is stopping (SIGTERM, Ctrl-C).

    Args:
        feed: An entered publisher.
        quotes: Quotes in the order to send them, usually ``ts`` order.
        speed: A multiple of the recorded pace, >= 0.
    """
    started = time.monotonic()
    first: float | None = None
    for quote in quotes:
        if feed.stopping:
            break
        if speed > 0:
            if first is None:
                first = quote["ts"]
            feed.sleep_until(started + (quote["ts"] - first) / speed)
        feed.publish(quote)
