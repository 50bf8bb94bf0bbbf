"""Algorithms: the `Algorithm` base class, the `Order` it emits, and how to load one.

Plain Python: it never imports the transport (`broker`, `bridge`, `ring`), so
an algorithm can be unit tested and back-tested without a broker. Example
algorithms live in the public module `algos.examples`.
"""

from algos._base import DEFAULT_CHANNELS, REJECTED_KEY, Algorithm, Order
from algos._loading import load_algorithm, parse_params

__all__ = [
    "DEFAULT_CHANNELS",
    "REJECTED_KEY",
    "Algorithm",
    "Order",
    "load_algorithm",
    "parse_params",
]
