"""How a sweep's jobs are ranked: by one metric, best first."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from backtest import METRIC_KEYS
from sweep._jobs import DONE

LOWER_IS_BETTER = frozenset({"annual_volatility", "max_drawdown_duration_s", "fees"})
"""Metrics ranked ascending; every other is ranked descending (``max_drawdown`` is
negative: nearer zero is better)."""

RANKABLE = tuple(k for k in METRIC_KEYS if k not in ("start", "end"))
"""The metrics `--rank-by` takes."""


def ranked(table: pa.Table, metric: str) -> list[dict[str, Any]]:
    """The finished jobs with a value of `metric`, best first, then the others in table order."""
    rows = table.to_pylist()
    scored = [r for r in rows if r["status"] == DONE and number(r.get(metric)) is not None]
    scored.sort(key=lambda r: float(r[metric]), reverse=metric not in LOWER_IS_BETTER)
    first = {r["job"] for r in scored}
    return scored + [r for r in rows if r["job"] not in first]


def number(value: Any) -> float | None:
    """`value` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
