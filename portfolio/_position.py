"""`Position`: what the portfolio holds in one symbol."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Position:
    """An open long position in one symbol.

    Attributes:
        qty: Shares held, always > 0; a position that reaches 0 is removed.
        avg_cost: Average price paid per share held, fees excluded (fees are
            realised when they are paid). Selling does not change it.
    """

    qty: int
    avg_cost: float
