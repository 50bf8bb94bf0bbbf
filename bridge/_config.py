"""The bridge's one configuration object, built at the entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from algos.server import DEFAULT_HEARTBEAT_S
from bridge._overflow import Overflow
from broker import DEFAULT_MAX_PRICE_JUMP_PCT, MqttSettings
from risk import RiskLimits
from tickbus.metrics import MetricsEndpoint


@dataclass(frozen=True, kw_only=True)
class BridgeConfig:
    """Everything one bridge needs.

    Attributes:
        mqtt: The broker to subscribe to and publish on.
        rpc: The algorithm server's zerorpc address, e.g. ``"tcp://127.0.0.1:4242"``.
        ring: Read quotes from this host-local ring (name or path) instead of
            MQTT; None (the default) subscribes to the algorithm's channels.
        name: The bridge's name: its topics are ``orders/<name>``,
            ``status/bridge/<name>`` and ``control/bridge/<name>``.
        params: Sent with every ``initialize`` call (also after a reconnect or swap).
        heartbeat: zerorpc heartbeat period in seconds; must equal the server's (1.0).
        rpc_timeout: Seconds one call may take before the algorithm counts as
            unavailable (30.0).
        max_pending: Quotes kept while the algorithm is busy or down (10,000);
            beyond that the `overflow` policy applies.
        overflow: What a full queue does (`Overflow`): conflate to the newest
            quote per symbol (the default), drop the oldest, or block the source.
        max_batch: Most quotes sent in one ``events`` call (5,000), so one call
            stays well inside `rpc_timeout` even with a backlog.
        coalesce: Under load (the last call carried at least
            `bridge._bridge.COALESCE_FROM` quotes), the least time from the
            start of one ``events`` call to the next (0.002): quotes gather
            into fewer, larger calls. A lone quote never waits.
        risk: The pre-trade limits every order must pass (none by default).
        max_price_jump_pct: A quote further than this (percent) from its
            symbol's recent price is suspect: dead-lettered, never delivered
            (`broker.PriceBand`; default `DEFAULT_MAX_PRICE_JUMP_PCT`). None
            or 0 turns the filter off.
        stats_interval: Seconds between status messages with counters (1.0).
        retry_interval: Seconds between attempts to reach a lost algorithm (0.5).
        metrics: Serve Prometheus metrics there; None (the default) serves none.
    """

    mqtt: MqttSettings
    rpc: str
    name: str
    ring: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    heartbeat: float = DEFAULT_HEARTBEAT_S
    rpc_timeout: float = 30.0
    max_pending: int = 10_000
    overflow: Overflow = Overflow.CONFLATE
    max_batch: int = 5_000
    coalesce: float = 0.002
    risk: RiskLimits = field(default_factory=RiskLimits)
    max_price_jump_pct: float | None = DEFAULT_MAX_PRICE_JUMP_PCT
    stats_interval: float = 1.0
    retry_interval: float = 0.5
    metrics: MetricsEndpoint | None = None
