"""`PriceBand`: a bad-tick filter; a quote far from its symbol's recent price is suspect.

A person testing with ``mosquitto_pub -t quotes -m '{"goog": 3.45}'`` while a
feed quotes GOOG near 130 must not move the market: every consumer that acts
on prices (the bridge, before the algorithm; paper execution, before it fills)
checks each quote against the last price it accepted for that symbol and
rejects a jump wider than the band, as real systems filter bad ticks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from tickbus.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_PRICE_JUMP_PCT = 10.0
"""The band's default half-width, in percent of the symbol's recent price."""

CONFIRMATIONS = 3
"""Out-of-band quotes in a row, within the band of each other, that move the reference.

A real gap (a halt, an overnight move) is then accepted at its third quote
instead of rejecting every later quote of the symbol forever; a stray tick
amid normal quotes never gets there.
"""


@dataclass
class _Symbol:
    reference: float
    streak: int = 0
    candidate: float = math.nan


class PriceBand:
    """Accepts a quote only within ``max_jump_pct`` percent of its symbol's recent price.

    The first quote of a symbol has no reference and passes. A quote that
    passes becomes the reference. A quote outside the band is suspect and
    does not move the reference, unless it is the `CONFIRMATIONS`-th such
    quote in a row of that symbol and they all lie within the band of each
    other: then the market has moved, and it passes.

    Not thread-safe: one thread of the component checks every quote.

    Args:
        max_jump_pct: Half-width of the band, percent, > 0; None or 0 turns the
            filter off (every quote passes).

    Raises:
        ConfigError: `max_jump_pct` is negative or not finite.
    """

    def __init__(self, max_jump_pct: float | None = DEFAULT_MAX_PRICE_JUMP_PCT) -> None:
        if max_jump_pct is not None and not (math.isfinite(max_jump_pct) and max_jump_pct >= 0):
            raise ConfigError(f"max_jump_pct must be a number >= 0, got {max_jump_pct!r}")
        self.max_jump_pct = max_jump_pct or None
        self._symbols: dict[str, _Symbol] = {}

    def check(self, sid: str, price: float) -> str | None:
        """Judge one quote of `sid` at `price` (> 0); None when it passes, else the reason."""
        pct = self.max_jump_pct
        if pct is None:
            return None
        known = self._symbols.get(sid)
        if known is None:
            self._symbols[sid] = _Symbol(reference=price)
            return None
        if abs(price / known.reference - 1) * 100 <= pct:  # `_within`, inline: every quote
            known.reference, known.streak = price, 0
            return None
        if known.streak and self._within(price, known.candidate):
            known.streak += 1
        else:
            known.streak = 1
        known.candidate = price
        if known.streak >= CONFIRMATIONS:
            known.reference, known.streak = price, 0
            return None
        jump = abs(price / known.reference - 1) * 100
        return (
            f"suspect price: {sid} at {price:g} is {jump:.1f}% away from its recent price "
            f"{known.reference:g}, beyond the {self.max_jump_pct:g}% band "
            "(--max-price-jump-pct; 0 turns the filter off)"
        )

    def _within(self, price: float, reference: float) -> bool:
        assert self.max_jump_pct is not None
        return abs(price / reference - 1) * 100 <= self.max_jump_pct


def price_band_option(consumer: str) -> Callable[[F], F]:
    """``--max-price-jump-pct PCT`` for a command whose `consumer` acts on prices."""
    return click.option(
        "--max-price-jump-pct",
        type=click.FloatRange(min=0),
        default=DEFAULT_MAX_PRICE_JUMP_PCT,
        show_default=True,
        help=f"A quote further than this (percent) from its symbol's recent price is "
        f"suspect: {consumer} dead-letters it with the reason instead of using it. The "
        f"first quote of a symbol always passes; {CONFIRMATIONS} out-of-band quotes in a "
        "row that agree with each other move the reference (a real gap). 0 turns the "
        "filter off.",
    )
