"""The recorder's frozen configuration, built at the entry point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker import MqttSettings
from tickbus.metrics import MetricsEndpoint

RING_SCHEME = "ring://"


@dataclass(frozen=True, kw_only=True)
class RecorderConfig:
    """A recorder: quotes from the bus (or a ring) into a Parquet dataset.

    Attributes:
        mqtt: The broker: quotes come from it (unless `ring` is set); status
            and dead letters always go to it.
        out: The dataset's directory; created if missing.
        name: The recorder's name: ``status/recorder/<name>``, its journal
            ``<out>/_journal/<name>.arrows`` and its files ``part-<name>-...``.
            Recorders of different names may share `out`.
        topics: MQTT topic filters whose quotes are recorded (default ``quotes/#``);
            with a ring, the filters its ticks' topics (``quotes/<SID>``) must match.
        ring: Record from this host-local ring (name or path) instead of MQTT;
            None (the default) records from MQTT.
        flush_s: Seconds between appends to the journal: at most this much is
            lost to a crash (default 1).
        roll_bytes: A journal this large (bytes) is turned into Parquet files
            (default 64 MiB).
        roll_s: A journal this old (seconds since its first rows) is turned
            into Parquet files (default 3600).
        metrics: Serve Prometheus metrics there; None (the default) serves none.
    """

    mqtt: MqttSettings
    out: Path
    name: str = "recorder"
    topics: tuple[str, ...] = ("quotes/#",)
    ring: str | None = None
    flush_s: float = 1.0
    roll_bytes: int = 64 * 1024 * 1024
    roll_s: float = 3600.0
    metrics: MetricsEndpoint | None = None
