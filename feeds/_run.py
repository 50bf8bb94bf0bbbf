"""The feed loops: synthetic random walk and CSV replay."""

from __future__ import annotations

import itertools
import logging
import time

from feeds._config import CsvFeedConfig, SyntheticFeedConfig
from feeds._csv import read_csv_quotes
from feeds._publisher import QuotePublisher
from feeds._walk import RandomWalk

log = logging.getLogger(__name__)


def run_synthetic(config: SyntheticFeedConfig) -> int:
    """Publish random-walk quotes at `config.rate` until `config.count` or a signal.

    Pacing is by schedule, not by sleeping a fixed interval, so the average
    rate holds even when one publish is slow. Returns the number published.
    """
    walk = RandomWalk(config.symbols, seed=config.seed)
    interval = 1.0 / config.rate if config.rate > 0 else 0.0
    feed = QuotePublisher(
        config.mqtt,
        name=config.name,
        wire_format=config.wire_format,
        ring=config.ring,
        pack_size=config.batch,
        pack_wait=config.batch_ms / 1000,
        metrics=config.metrics,
    )
    with feed:
        start = time.monotonic()
        for i, quote in enumerate(itertools.islice(walk, config.count)):
            if feed.stopping:
                break
            if interval:
                feed.sleep_until(start + i * interval)
            feed.publish(quote)
    return feed.published  # after the with: a pack still open is sent on exit


def run_csv(config: CsvFeedConfig) -> tuple[int, int]:
    """Replay `config.path` at `config.speed` times its recorded pace.

    Rows are sent at their ``ts`` offsets from the first row divided by the
    speed; a row whose ``ts`` is earlier than its predecessor's goes out at
    once. Bad rows go to ``deadletter/feed`` with their line number and are
    counted. Returns (published, rejected).

    Raises:
        ConfigError: The file cannot be read or its header is wrong.
    """
    rows = read_csv_quotes(config.path)
    feed = QuotePublisher(
        config.mqtt,
        name=config.name,
        wire_format=config.wire_format,
        pack_size=config.batch,
        pack_wait=config.batch_ms / 1000,
        metrics=config.metrics,
    )
    with feed:
        start = time.monotonic()
        first_ts: float | None = None
        for row in rows:
            if feed.stopping:
                break
            if row.quote is None:
                log.warning("%s: %s", config.path, row.reason)
                feed.reject(str(row.reason), row.text.encode())
                continue
            if first_ts is None:
                first_ts = row.quote["ts"]
            if config.speed > 0:
                feed.sleep_until(start + (row.quote["ts"] - first_ts) / config.speed)
            feed.publish(row.quote)
    return feed.published, feed.rejected
