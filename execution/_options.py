"""``--slippage-bps``, ``--fee-bps`` and ``--quote-timeout``: paper matching's rules as flags.

Shared by ``tickbus execution paper`` and ``tickbus backtest``, so both fill
by the same settings under the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option(
        "--slippage-bps",
        type=click.FloatRange(min=0, max=10_000, max_open=True),
        default=0.0,
        show_default=True,
        help="Basis points added to the ask of a buy and taken off the bid of a sell.",
    ),
    click.option(
        "--fee-bps",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Fee of each fill, in basis points of its value.",
    ),
    click.option(
        "--quote-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=5.0,
        show_default=True,
        help="Seconds a market order waits for a first quote of its symbol before it is rejected.",
    ),
)


def pricing_options(command: F) -> F:
    """Add the flags; `command` receives ``slippage_bps``, ``fee_bps`` and ``quote_timeout``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
