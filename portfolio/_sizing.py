"""How many shares to bet: the `SizingPolicy` protocol and `FractionOfCash`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from portfolio._checks import finite_float
from tickbus.errors import ConfigError, PortfolioError


class SizingPolicy(Protocol):
    """Decides the size of a new bet.

    `Portfolio.optimize` calls it and then caps the answer at what the cash
    affords, so a policy may ask for too much but never makes cash negative.
    """

    def quantity(self, *, cash: float, price: float) -> int:
        """Whole shares to buy now.

        Args:
            cash: Cash available, >= 0.
            price: Price per share the buy would pay, > 0.

        Returns:
            Shares to buy, >= 0; 0 means do not bet.
        """
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class FractionOfCash:
    """Bet a fixed fraction of the cash on each buy.

    Attributes:
        fraction: Share of the cash to spend, 0 < fraction <= 1 (default 0.1).

    Raises:
        ConfigError: `fraction` is not a number in (0, 1].
    """

    fraction: float = 0.1

    def __post_init__(self) -> None:
        fraction = finite_float(self.fraction)
        if fraction is None or not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be a number in (0, 1], got {self.fraction!r}")

    def quantity(self, *, cash: float, price: float) -> int:
        """``floor(cash * fraction / price)`` whole shares.

        Raises:
            PortfolioError: `cash` is negative or `price` is not > 0 (both finite).
        """
        if finite_float(cash) is None or cash < 0:
            raise PortfolioError(f"cash must be a finite number >= 0, got {cash!r}")
        if finite_float(price) is None or price <= 0:
            raise PortfolioError(f"price must be a finite number > 0, got {price!r}")
        return math.floor(cash * self.fraction / price)
