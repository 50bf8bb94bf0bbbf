"""A feed's Prometheus metrics, read from its publisher's counters at scrape time.

Every metric carries the label ``feed="<name>"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.metrics_core import Metric

from tickbus.metrics import counter


class FeedCounts(Protocol):
    """The counters a feed keeps (`QuotePublisher` has them)."""

    published: int
    dropped: int
    rejected: int


class FeedMetrics:
    """A prometheus_client collector for one feed.

    Args:
        name: The feed's name: the ``feed`` label.
        counts: Read at every scrape, from the metrics server's thread.
    """

    def __init__(self, name: str, counts: FeedCounts) -> None:
        self._labels = {"feed": name}
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        """The metric families."""
        counts, labels = self._counts, self._labels
        yield counter(
            "tickbus_feed_quotes_published",
            "Quotes handed to the broker (or written to the ring).",
            labels,
            counts.published,
        )
        yield counter(
            "tickbus_feed_quotes_dropped",
            "Quotes that could not be sent: the broker was unreachable.",
            labels,
            counts.dropped,
        )
        yield counter(
            "tickbus_feed_records_rejected",
            "Input records that are not valid quotes, sent to deadletter/feed.",
            labels,
            counts.rejected,
        )
