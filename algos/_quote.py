"""Checking the quotes an algorithm receives against DESIGN.md's quote contract."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from tickbus.errors import QuoteRejected

_REQUIRED = ("price",)
_OPTIONAL = ("ts", "bid", "ask", "size")
_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "price": (lambda v: v > 0, "a finite number > 0"),
    "bid": (lambda v: v > 0, "a finite number > 0"),
    "ask": (lambda v: v > 0, "a finite number > 0"),
    "size": (lambda v: v >= 0, "a finite number >= 0"),
    "ts": (lambda v: True, "a finite number (epoch seconds)"),
}


def checked_quote(quote: object, where: str) -> dict[str, Any]:
    """A normalised copy of `quote`: ``sid`` upper-cased, numbers as floats.

    A quote has ``sid`` (non-empty string) and ``price`` (> 0), and optionally
    ``ts`` (epoch seconds), ``bid``/``ask`` (> 0) and ``size`` (>= 0); an
    optional field set to None counts as absent. A quote without ``ts`` is
    stamped with the current time, as the bus stamps one on arrival. Other
    keys are kept as they are.

    Args:
        quote: The quote to check.
        where: Which quote this is, for the error message (e.g. ``"quote #3"``).

    Raises:
        QuoteRejected: The quote breaks the contract; the reason says which
            quote and which field.
    """
    if not isinstance(quote, Mapping):
        raise QuoteRejected(f"{where} must be a mapping, got {type(quote).__name__}")
    sid = quote.get("sid")
    if not isinstance(sid, str) or not sid.strip():
        raise QuoteRejected(f"{where} needs a non-empty string 'sid', got {sid!r}")
    copy: dict[str, Any] = {**quote, "sid": sid.upper()}
    for key in _REQUIRED + _OPTIONAL:
        if key in _REQUIRED or quote.get(key) is not None:
            copy[key] = _number(where, key, quote.get(key))
    if copy.get("ts") is None:
        copy["ts"] = time.time()
    return copy


def _number(where: str, key: str, raw: object) -> float:
    accept, wanted = _RULES[key]
    value = math.nan
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except OverflowError:  # an int too large for a float
            value = math.nan
    if not math.isfinite(value) or not accept(value):
        raise QuoteRejected(f"{where} {key!r} must be {wanted}, got {raw!r}")
    return value
