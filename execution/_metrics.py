"""The paper execution service's Prometheus metrics, read from its status fields at scrape time.

Every metric carries the label ``execution="<name>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric

from tickbus.metrics import counter, gauge

_COUNTERS = (
    ("tickbus_execution_orders_received", "Order messages read on orders/+.", "orders_in"),
    ("tickbus_execution_fills", "Fills published on fills/ALGO.", "fills"),
    ("tickbus_execution_orders_rejected", "Orders rejected, with a reason.", "rejected"),
    ("tickbus_execution_duplicate_orders", "Order ids seen again, not filled twice.", "duplicates"),
    ("tickbus_execution_quotes_received", "Quotes read on quotes and quotes/#.", "quotes_in"),
    ("tickbus_execution_bad_quotes", "Quote payloads sent to deadletter/execution.", "bad_quotes"),
    (
        "tickbus_execution_suspect_quotes",
        "Quotes beyond the price band, sent to deadletter/execution.",
        "suspect",
    ),
)


class ExecutionMetrics:
    """A prometheus_client collector for one execution service.

    Args:
        name: The service's name: the ``execution`` label.
        stats: Its status fields, read at every scrape from the metrics server's thread.
    """

    def __init__(self, name: str, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._labels = {"execution": name}
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        """The metric families, from one reading of the status fields."""
        stats = self._stats()
        for name, doc, field in _COUNTERS:
            yield counter(name, doc, self._labels, stats[field])
        yield gauge(
            "tickbus_execution_waiting_orders",
            "Orders waiting for a quote or for their limit price.",
            self._labels,
            stats["waiting"],
        )
