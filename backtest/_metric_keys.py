"""The names of the tearsheet's metrics, without what computes them (pandas, empyrical)."""

from __future__ import annotations

METRIC_KEYS: tuple[str, ...] = (
    "start",
    "end",
    "days",
    "starting_cash",
    "final_equity",
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration_s",
    "trades",
    "round_trips",
    "win_rate",
    "avg_win",
    "avg_loss",
    "turnover",
    "fees",
    "exposure",
)
"""The tearsheet's keys, in the order it is printed."""
