"""``--risk-limits FILE`` and the ``--max-*`` flags, for every command that runs a risk gate."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from risk._gate import RiskLimits
from tickbus.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option(
        "--risk-limits",
        "risk_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help='Read the limits from a JSON object such as {"max_order_qty": 100, '
        '"max_position": 1000}; the --max-* flags override it.',
    ),
    click.option("--max-order-qty", type=click.IntRange(min=1), help="Most shares in one order."),
    click.option(
        "--max-order-notional",
        type=click.FloatRange(min=0, min_open=True),
        help="Most qty * price in one order (the limit price, else the last quote's price).",
    ),
    click.option(
        "--max-position",
        type=click.IntRange(min=1),
        help="Most shares in one symbol, counting every order let through as filled.",
    ),
    click.option(
        "--max-orders-per-s",
        type=click.FloatRange(min=0, min_open=True),
        help="Most orders let through in any one-second window.",
    ),
)


def risk_limit_options(command: F) -> F:
    """Add ``--risk-limits`` and the ``--max-*`` flags; `command` receives ``risk: RiskLimits``.

    The file's limits come first, the flags over them. A file that cannot be
    used is a usage error naming the file.
    """

    @functools.wraps(command)
    def with_limits(
        *args: Any,
        risk_file: Path | None,
        max_order_qty: int | None,
        max_order_notional: float | None,
        max_position: int | None,
        max_orders_per_s: float | None,
        **kwargs: Any,
    ) -> Any:
        try:
            limits = RiskLimits() if risk_file is None else RiskLimits.from_file(risk_file)
            limits = limits.merged(
                {
                    "max_order_qty": max_order_qty,
                    "max_order_notional": max_order_notional,
                    "max_position": max_position,
                    "max_orders_per_s": max_orders_per_s,
                }
            )
        except ConfigError as exc:
            raise click.BadParameter(exc.reason, param_hint="--risk-limits") from exc
        return command(*args, risk=limits, **kwargs)

    decorated: Any = with_limits
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]
