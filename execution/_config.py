"""The paper execution service's frozen configuration, built at the entry point."""

from __future__ import annotations

from dataclasses import dataclass

from broker import DEFAULT_MAX_PRICE_JUMP_PCT, MqttSettings
from tickbus.metrics import MetricsEndpoint


@dataclass(frozen=True, kw_only=True)
class PaperConfig:
    """Paper execution: fills every algorithm's orders against the latest quotes.

    Attributes:
        mqtt: The broker.
        name: The service's name on ``status/execution/<name>`` (default ``paper``).
        slippage_bps: Basis points added to the ask of a buy, taken off the bid
            of a sell, ``0 <= slippage_bps < 10,000`` (default 0).
        fee_bps: Fee in basis points of each fill's value, ``>= 0`` (default 0).
        quote_timeout: Seconds a market order may wait for the first quote of
            its symbol before it is rejected (default 5).
        max_price_jump_pct: A quote further than this (percent) from its
            symbol's recent price is suspect: dead-lettered, never filled at
            (`broker.PriceBand`; default `DEFAULT_MAX_PRICE_JUMP_PCT`). None
            or 0 turns the filter off.
        metrics: Serve Prometheus metrics there; None (the default) serves none.
    """

    mqtt: MqttSettings
    name: str = "paper"
    slippage_bps: float = 0.0
    fee_bps: float = 0.0
    quote_timeout: float = 5.0
    max_price_jump_pct: float | None = DEFAULT_MAX_PRICE_JUMP_PCT
    metrics: MetricsEndpoint | None = None
