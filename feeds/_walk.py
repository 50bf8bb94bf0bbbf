"""Random-walk quotes: geometric Brownian motion per symbol, so prices stay positive."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from broker import Quote

SPREAD = 0.0002
"""Bid-ask spread as a fraction of the mid price (2 basis points)."""

CHUNK = 1024
"""Steps drawn per numpy call; keeps per-quote cost low at high rates."""


class RandomWalk:
    """An endless stream of quotes, one symbol after another (round robin).

    Each symbol starts between 20 and 500 and moves by a lognormal step with
    0.1 % volatility; bid < price < ask always holds, every price is > 0.
    ``ts`` is 0.0: the publisher stamps each quote when it sends it.

    Args:
        symbols: The symbols to quote, in order.
        seed: Seed for numpy's generator (None: unpredictable).
    """

    def __init__(self, symbols: Sequence[str], *, seed: int | None = None) -> None:
        if not symbols:
            raise ValueError("a random walk needs at least one symbol")
        self._symbols = list(symbols)
        self._rng = np.random.default_rng(seed)
        self._mids = self._rng.uniform(20.0, 500.0, size=len(symbols))

    def __iter__(self) -> Iterator[Quote]:
        n = len(self._symbols)
        volatility = 0.001
        while True:
            shocks = self._rng.normal(-(volatility**2) / 2, volatility, size=(CHUNK, n))
            paths = self._mids * np.exp(np.cumsum(shocks, axis=0))
            sizes = self._rng.integers(1, 1000, size=(CHUNK, n))
            self._mids = paths[-1]
            for step, size_row in zip(paths.tolist(), sizes.tolist(), strict=True):
                for sid, mid, size in zip(self._symbols, step, size_row, strict=True):
                    half = mid * SPREAD / 2
                    yield Quote(
                        sid=sid, price=mid, ts=0.0, bid=mid - half, ask=mid + half, size=float(size)
                    )
