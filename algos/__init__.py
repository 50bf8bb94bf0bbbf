"""Algorithms: the `Algorithm` base class, the `Order` it emits, and how to load one.

`checked_quote` is the quote contract every quote an algorithm receives is
checked against (`columns_pass`: a vectorised test of the same, for readers
of columns); `run_of` gives the framework an algorithm's portfolio and
counters.

A user writes ``initialize(params) -> channels`` and ``event(quote) ->
orders``, in an `Algorithm` subclass or in a plain class (`PlainAlgorithm`
adapts it); the framework calls `Algorithm.start`, which prepares the
portfolio and then the user's ``initialize``.

Plain Python: it never imports the transport (`broker`, `bridge`, `ring`), so
an algorithm can be unit tested and back-tested without a broker. Example
algorithms live in the public module `algos.examples`.
"""

from algos._base import DEFAULT_CHANNELS, REJECTED_KEY, Algorithm
from algos._loading import AlgorithmFactory, load_algorithm, parse_params
from algos._plain import PlainAlgorithm
from algos._quote import checked_quote, columns_pass
from algos._run import Order, Run, run_of

__all__ = [
    "DEFAULT_CHANNELS",
    "REJECTED_KEY",
    "Algorithm",
    "AlgorithmFactory",
    "Order",
    "PlainAlgorithm",
    "Run",
    "checked_quote",
    "columns_pass",
    "load_algorithm",
    "parse_params",
    "run_of",
]
