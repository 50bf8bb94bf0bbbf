"""A recorder's Prometheus metrics, read from its status fields at scrape time.

Every metric carries the label ``recorder="<name>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric

from tickbus.metrics import counter, gauge

_COUNTERS = (
    ("tickbus_recorder_quotes_received", "Quotes decoded from the bus or the ring.", "quotes"),
    ("tickbus_recorder_rows_written", "Rows in finished Parquet files.", "rows_written"),
    ("tickbus_recorder_bytes_written", "Bytes of finished Parquet files.", "bytes"),
    ("tickbus_recorder_files_written", "Finished Parquet files.", "files"),
    (
        "tickbus_recorder_dead_letters",
        "Payloads that are not quotes, sent to deadletter/recorder.",
        "dead_letters",
    ),
    ("tickbus_recorder_torn_records", "Torn journal records dropped at recovery.", "torn"),
    ("tickbus_recorder_write_errors", "Journal or Parquet writes that failed.", "write_errors"),
    ("tickbus_recorder_mqtt_reconnects", "Reconnections to the broker.", "mqtt_reconnects"),
)

_GAUGES = (
    ("tickbus_recorder_journal_rows", "Rows in the journal, not yet in Parquet.", "journal_rows"),
    ("tickbus_recorder_pending_rows", "Rows in memory, not yet in the journal.", "pending"),
    ("tickbus_recorder_last_flush_seconds", "Epoch time of the last journal flush.", "last_flush"),
)


class RecorderMetrics:
    """A prometheus_client collector for one recorder.

    Args:
        name: The recorder's name: the ``recorder`` label.
        stats: Its status fields, read at every scrape from the metrics server's thread.
    """

    def __init__(self, name: str, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._labels = {"recorder": name}
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        """The metric families, from one reading of the status fields."""
        stats = self._stats()
        for name, doc, field in _COUNTERS:
            yield counter(name, doc, self._labels, stats[field])
        for name, doc, field in _GAUGES:
            yield gauge(name, doc, self._labels, stats[field] or 0)
