"""The bridge's Prometheus metrics: its status counters read at scrape time, and RPC latency.

Every counter and gauge is read, at each scrape, from the same fields the
bridge publishes on ``status/bridge/<name>`` (so a scrape and a status agree);
nothing is counted twice in the hot path. The one exception is the latency of
``events`` calls, a histogram the bridge observes around each call.

Every metric carries the label ``bridge="<name>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import Histogram
from prometheus_client.metrics_core import Metric

from tickbus.metrics import counter, counters_by, gauge

StatsSource = Callable[[], Mapping[str, Any]]
"""Returns the bridge's status fields; called in the metrics server's thread."""

EVENTS_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Seconds: one call costs about a millisecond; the default --rpc-timeout is 30 s."""

_COUNTERS = (
    (
        "tickbus_bridge_quotes_received",
        "Quotes decoded from MQTT or read from the ring.",
        "quotes_in",
    ),
    ("tickbus_bridge_quotes_forwarded", "Quotes the algorithm took in events calls.", "forwarded"),
    (
        "tickbus_bridge_quotes_conflated",
        "Quotes replaced by a newer one of their symbol.",
        "conflated",
    ),
    ("tickbus_bridge_quotes_dropped", "Quotes dropped by the overflow policy.", "dropped"),
    ("tickbus_bridge_batches", "events calls the algorithm answered.", "batches"),
    ("tickbus_bridge_orders_published", "Orders published on orders/NAME.", "orders"),
    (
        "tickbus_bridge_orders_rejected",
        "Orders the bridge refused (schema, risk limits, kill switch).",
        "orders_rejected",
    ),
    (
        "tickbus_bridge_bad_orders",
        "Orders the algorithm returned that are not valid orders.",
        "bad_orders",
    ),
    (
        "tickbus_bridge_execution_rejections",
        "Orders execution rejected, passed back to the algorithm.",
        "execution_rejections",
    ),
    ("tickbus_bridge_fills", "Fills the algorithm booked.", "fills"),
    ("tickbus_bridge_swaps", "Swaps to another algorithm server.", "swaps"),
)

_DEAD_LETTERS = {
    "bad_message": "rejected",  # a quote, control or report payload that does not decode
    "suspect_price": "suspect",  # a quote beyond the price band
    "algorithm_error": "algo_errors",  # a batch the algorithm raised on
    "refused_report": "fill_errors",  # a fill or rejection the algorithm raised on
}

_RECONNECTS = {"mqtt": "mqtt_reconnects", "algorithm": "reconnects"}


class BridgeMetrics:
    """A prometheus_client collector for one bridge, plus its ``events`` latency histogram.

    Args:
        name: The bridge's name: the ``bridge`` label.
        stats: The bridge's status fields, read at every scrape from the
            metrics server's thread.

    Attributes:
        events_latency: Observe each ``events`` call with
            ``with metrics.events_latency.time():`` (failed calls included);
            exported as ``tickbus_bridge_events_rpc_seconds``.
    """

    def __init__(self, name: str, stats: StatsSource) -> None:
        self._labels = {"bridge": name}
        self._stats = stats
        self._latency = Histogram(
            "tickbus_bridge_events_rpc_seconds",
            "Seconds each events call to the algorithm took, failed calls included.",
            labelnames=list(self._labels),
            buckets=EVENTS_BUCKETS,
            registry=None,
        )
        self.events_latency = self._latency.labels(**self._labels)

    def collect(self) -> Iterator[Metric]:
        """The metric families, from one reading of the status fields."""
        stats = self._stats()
        labels = self._labels
        for name, doc, field in _COUNTERS:
            yield counter(name, doc, labels, stats[field])
        yield counters_by(
            "tickbus_bridge_dead_letters",
            "Payloads sent to deadletter/bridge, by cause (bad orders are counted apart).",
            labels,
            "cause",
            {cause: stats[field] for cause, field in _DEAD_LETTERS.items()},
        )
        yield counters_by(
            "tickbus_bridge_reconnects",
            "Connections re-established, to the broker (mqtt) and to the algorithm server.",
            labels,
            "link",
            {link: stats[field] for link, field in _RECONNECTS.items()},
        )
        yield gauge(
            "tickbus_bridge_pending_quotes",
            "Quotes waiting for the algorithm.",
            labels,
            stats["pending"],
        )
        yield gauge(
            "tickbus_bridge_pending_reports",
            "Fills and rejections waiting for the algorithm.",
            labels,
            stats["reports_pending"],
        )
        yield gauge(
            "tickbus_bridge_online",
            "1 while the bridge is online, 0 while degraded (the algorithm is unreachable).",
            labels,
            stats["state"] == "online",
        )
        yield gauge(
            "tickbus_bridge_killed",
            "1 while the kill switch is on.",
            labels,
            stats["killed"] is not None,
        )
        yield from self._latency.collect()
