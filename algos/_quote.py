"""Checking the quotes an algorithm receives against DESIGN.md's quote contract."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tickbus.errors import QuoteRejected

_BOUNDS: dict[str, tuple[float, bool, str]] = {
    "price": (0.0, False, "a finite number > 0"),
    "bid": (0.0, False, "a finite number > 0"),
    "ask": (0.0, False, "a finite number > 0"),
    "size": (0.0, True, "a finite number >= 0"),
    "ts": (-math.inf, False, "a finite number (epoch seconds)"),
}
"""Per numeric field: its lower bound, whether the bound itself is allowed, and the rule in words.

Every field must also be finite; ``sid`` and ``price`` are required, the rest optional.
"""

_INF = math.inf


def checked_quote(quote: object, where: str | int) -> dict[str, Any]:
    """A normalised copy of `quote`: ``sid`` upper-cased, numbers as floats.

    A quote has ``sid`` (non-empty string) and ``price`` (> 0), and optionally
    ``ts`` (epoch seconds), ``bid``/``ask`` (> 0) and ``size`` (>= 0); an
    optional field set to None counts as absent. A quote without ``ts`` is
    stamped with the current time, as the bus stamps one on arrival. Other
    keys are kept as they are.

    Args:
        quote: The quote to check.
        where: Which quote this is, for the error message: a label such as
            ``"buy() quote"``, or its index in a batch (``3`` reads ``quote #3``;
            the text is made only when there is an error).

    Raises:
        QuoteRejected: The quote breaks the contract; the reason says which
            quote and which field.
    """
    if type(quote) is not dict and not isinstance(quote, Mapping):
        raise QuoteRejected(f"{_label(where)} must be a mapping, got {type(quote).__name__}")
    sid = quote.get("sid")
    if not isinstance(sid, str) or not sid.strip():
        raise QuoteRejected(f"{_label(where)} needs a non-empty string 'sid', got {sid!r}")
    copy: dict[str, Any] = quote.copy() if type(quote) is dict else dict(quote)
    if not sid.isupper():
        copy["sid"] = sid.upper()
    # Fast paths first (a float already in range: NaN and infinities fail the
    # comparisons); anything else goes through `_number`, which converts or raises.
    price = quote.get("price")
    if not (type(price) is float and 0.0 < price < _INF):
        copy["price"] = _number(where, "price", price)
    ts = quote.get("ts")
    if ts is None:
        copy["ts"] = time.time()
    elif not (type(ts) is float and -_INF < ts < _INF):
        copy["ts"] = _number(where, "ts", ts)
    for key in ("bid", "ask"):
        value = quote.get(key)
        if value is not None and not (type(value) is float and 0.0 < value < _INF):
            copy[key] = _number(where, key, value)
    size = quote.get("size")
    if size is not None and not (type(size) is float and 0.0 <= size < _INF):
        copy["size"] = _number(where, "size", size)
    return copy


def _label(where: str | int) -> str:
    return f"quote #{where}" if isinstance(where, int) else where


def _number(where: str | int, key: str, raw: object) -> float:
    low, inclusive, wanted = _BOUNDS[key]
    value = math.nan
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except OverflowError:  # an int too large for a float
            value = math.nan
    if not math.isfinite(value) or not (value >= low if inclusive else value > low):
        raise QuoteRejected(f"{_label(where)} {key!r} must be {wanted}, got {raw!r}")
    return value


def columns_pass(symbols: Iterable[object], numbers: Mapping[str, npt.NDArray[Any]]) -> bool:
    """Whether quotes built from these columns all pass `checked_quote` unchanged; vectorised.

    For a reader that builds quotes column by column (the tape): True means
    each row, as a dict of its ``sid`` and its values of `numbers` as Python
    floats (nulls left out), is a quote that `checked_quote` would return as
    an equal copy, so it may go to `Algorithm.handle_checked` as it is. False
    proves nothing about any one row: check them one by one with
    `checked_quote`, which says which row breaks which rule.

    Args:
        symbols: The distinct ``sid`` values of the rows (no null among the rows).
        numbers: float64 arrays with the non-null values of each numeric
            field of the rows (``price`` and ``ts`` required, ``bid``,
            ``ask`` and ``size`` optional; no other key).
    """
    if "price" not in numbers or "ts" not in numbers:
        return False
    if not all(type(sid) is str and sid.strip() and sid.upper() == sid for sid in symbols):
        return False
    for key, values in numbers.items():
        if key not in _BOUNDS or values.dtype != np.float64:
            return False
        low, inclusive, _ = _BOUNDS[key]
        above = values >= low if inclusive else values > low
        if not bool(np.all(above & (values < math.inf))):  # NaN fails both comparisons
            return False
    return True
