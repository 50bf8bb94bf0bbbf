"""Value checks shared by the portfolio modules.

They return `None` instead of raising, so each caller raises the error that
fits its contract (`PortfolioError`, `ConfigError`, `QuoteRejected`) with its
own reason.
"""

from __future__ import annotations

import math


def finite_float(value: object) -> float | None:
    """`value` as a float when it is a finite int or float, else None.

    `bool` is rejected although it is an `int`: ``True`` is never a price.
    """
    if type(value) is float:
        return value if -math.inf < value < math.inf else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def positive_int(value: object) -> int | None:
    """`value` when it is an int > 0 (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def symbol(value: object) -> str | None:
    """`value` upper-cased when it is a non-blank string, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.upper()
