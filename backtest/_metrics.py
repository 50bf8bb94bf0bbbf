"""The tearsheet: what a backtest's equity curve and fills say, as numbers a quant expects.

Returns-based figures (CAGR, volatility, Sharpe, Sortino) come from
empyrical-reloaded on DAILY returns: the last equity of each UTC date that
has samples, the first return taken against the starting cash, annualised
with 252 periods a year. With fewer than two daily returns they are None: one
day says nothing about a year. Max drawdown and its duration are measured on
every equity sample, not only daily ones. Trade figures come from the fills
as the engine wrote them: ``realised_pnl`` is what the live `Portfolio` booked
for each fill (fees included), never recomputed here.

Every value is JSON-safe: a finite float, an int, a string, or None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import empyrical
import numpy as np
import pandas as pd
import pyarrow as pa

from backtest._metric_keys import METRIC_KEYS

TRADING_DAYS = 252
"""Periods a year for the daily returns."""

_LABELS = {
    "start": "Start",
    "end": "End",
    "days": "Trading days",
    "starting_cash": "Starting cash",
    "final_equity": "Final equity",
    "total_return": "Total return",
    "cagr": "CAGR",
    "annual_volatility": "Annual volatility",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration_s": "Max drawdown duration",
    "trades": "Trades (fills)",
    "round_trips": "Closing fills",
    "win_rate": "Win rate",
    "avg_win": "Average win",
    "avg_loss": "Average loss",
    "turnover": "Turnover",
    "fees": "Fees",
    "exposure": "Exposure (time in market)",
}
_PERCENT = {"total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate", "exposure"}
_MONEY = {"starting_cash", "final_equity", "avg_win", "avg_loss", "fees"}
_RATIO = {"sharpe", "sortino", "turnover"}


def tearsheet(equity: pa.Table, fills: pa.Table, *, starting_cash: float) -> dict[str, Any]:
    """The metrics of `METRIC_KEYS` (see the module docstring).

    Args:
        equity: ``ts`` (timestamp ns UTC), ``equity``, ``cash``, ``exposure``,
            in ts order.
        fills: ``ts``, ``side``, ``qty``, ``price``, ``fee``,
            ``realised_pnl`` and ``closes`` per fill.
        starting_cash: The cash before the first quote.
    """
    ns = equity.column("ts").cast(pa.int64()).to_numpy()
    values = equity.column("equity").to_numpy()
    exposure = equity.column("exposure").to_numpy()
    daily = _daily_returns(ns, values, starting_cash)
    annualised = len(daily) >= 2
    final = float(values[-1]) if len(values) else None
    qty = fills.column("qty").to_numpy().astype(np.float64)
    traded = float(np.abs(qty * fills.column("price").to_numpy()).sum())
    metrics: dict[str, Any] = {
        "start": _iso(ns[0]) if len(ns) else None,
        "end": _iso(ns[-1]) if len(ns) else None,
        "days": len(daily),
        "starting_cash": starting_cash,
        "final_equity": final,
        "total_return": None if final is None or not starting_cash else final / starting_cash - 1,
        "cagr": empyrical.cagr(daily, annualization=TRADING_DAYS) if annualised else None,
        "annual_volatility": (
            empyrical.annual_volatility(daily, annualization=TRADING_DAYS) if annualised else None
        ),
        "sharpe": empyrical.sharpe_ratio(daily, annualization=TRADING_DAYS) if annualised else None,
        "sortino": (
            empyrical.sortino_ratio(daily, annualization=TRADING_DAYS) if annualised else None
        ),
        **_drawdown(ns, values, starting_cash),
        **_trades(fills),
        "turnover": traded / float(values.mean()) if len(values) and values.mean() else None,
        "fees": float(fills.column("fee").to_numpy().sum()),
        "exposure": float((exposure > 0).mean()) if len(exposure) else None,
    }
    return {key: _json_safe(metrics[key]) for key in METRIC_KEYS}


def format_summary(metrics: Mapping[str, Any]) -> str:
    """The metrics as an aligned two-column table for a terminal."""
    width = max(len(label) for label in _LABELS.values())
    return "\n".join(
        f"{_LABELS[key]:<{width}}  {_format(key, metrics.get(key))}" for key in METRIC_KEYS
    )


def _daily_returns(ns: np.ndarray[Any, Any], values: np.ndarray[Any, Any], start: float) -> Any:
    """Returns of the last equity of each UTC date, the first against `start`."""
    if not len(ns):
        return pd.Series([], dtype=np.float64)
    days = pd.to_datetime(ns, utc=True).floor("D")
    closes = pd.Series(values, index=days).groupby(level=0).last()
    previous = np.concatenate(([start], closes.to_numpy()[:-1]))
    return pd.Series(closes.to_numpy() / previous - 1, index=closes.index)


def _drawdown(
    ns: np.ndarray[Any, Any], values: np.ndarray[Any, Any], start: float
) -> dict[str, Any]:
    """Max drawdown (a fraction <= 0) and the longest time under a previous peak, in seconds.

    The starting cash is the first peak. A drawdown not recovered by the last
    sample lasts until it.
    """
    if not len(values):
        return {"max_drawdown": None, "max_drawdown_duration_s": None}
    peaks = np.maximum.accumulate(np.concatenate(([start], values)))[1:]
    drawdown = float((values / peaks - 1).min())
    below = values < peaks
    longest, began = 0, None
    for index in range(len(values)):
        if below[index] and began is None:
            began = int(ns[index - 1]) if index else int(ns[0])
        elif not below[index] and began is not None:
            longest, began = max(longest, int(ns[index]) - began), None
    if began is not None:
        longest = max(longest, int(ns[-1]) - began)
    return {"max_drawdown": min(drawdown, 0.0), "max_drawdown_duration_s": longest / 1e9}


def _trades(fills: pa.Table) -> dict[str, Any]:
    closing = fills.column("closes").to_numpy(zero_copy_only=False).astype(bool)
    pnl = fills.column("realised_pnl").to_numpy()[closing]
    wins, losses = pnl[pnl > 0], pnl[pnl <= 0]
    return {
        "trades": fills.num_rows,
        "round_trips": int(closing.sum()),
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else None,
        "avg_win": float(wins.mean()) if len(wins) else None,
        "avg_loss": float(losses.mean()) if len(losses) else None,
    }


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(int(ns) / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _format(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key in _PERCENT:
        return f"{value * 100:.2f} %"
    if key in _MONEY:
        return f"{value:,.2f}"
    if key in _RATIO:
        return f"{value:.3f}"
    if key == "max_drawdown_duration_s":
        whole = int(value)
        days, rest = divmod(whole, 86_400)
        hours, rest = divmod(rest, 3600)
        return f"{days}d {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{value:,}" if isinstance(value, int) else str(value)
