"""``--symbols``, ``--start`` and ``--end``: the selection of every command that reads a dataset."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from broker import parse_symbols
from tape._time import parse_time
from tickbus.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

_TIME_HELP = (
    "ISO 8601 (2026-12-03, 2026-12-03T14:30:00; UTC unless an offset is given) or epoch seconds."
)


def _symbols(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        return parse_symbols(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason, ctx=ctx, param=param) from exc


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason, ctx=ctx, param=param) from exc


def selection_options(verb: str) -> Callable[[F], F]:
    """Add ``--symbols`` (a tuple, or None for all), ``--start`` and ``--end`` (times or None).

    Args:
        verb: What the command does with the quotes, for the help ("replay").
    """
    options = (
        click.option(
            "--symbols",
            default=None,
            callback=_symbols,
            help=f"Comma-separated symbols to {verb}, case-insensitive [default: every symbol].",
        ),
        click.option(
            "--start",
            default=None,
            metavar="TIME",
            callback=_time,
            help=f"{verb.capitalize()} quotes from this time on (inclusive): {_TIME_HELP}",
        ),
        click.option(
            "--end",
            default=None,
            metavar="TIME",
            callback=_time,
            help=f"{verb.capitalize()} quotes before this time (exclusive): {_TIME_HELP}",
        ),
    )

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
