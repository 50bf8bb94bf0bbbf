"""Bounds of a time range, as people and programs give them: epoch seconds, datetimes, ISO 8601.

A reader of the tape compares int nanoseconds (the tape's ``ts``), so every
form ends up as `ns_from_time`. A time without a UTC offset is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tape._schema import NS_PER_S, ns_from_seconds
from tickbus.errors import ConfigError

TimeLike = float | int | datetime | str
"""A point in time: epoch seconds, a `datetime`, or text that `parse_time` reads."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime | float:
    """Read a time as typed on a command line.

    Accepts epoch seconds (``1764772200``, ``1764772200.25``) and ISO 8601
    dates or date-times (``2026-12-03``, ``2026-12-03T14:30:00``,
    ``2026-12-03 14:30:00.5+01:00``, a trailing ``Z``). A date is its
    midnight; a time without an offset is UTC.

    Returns:
        The epoch seconds as a float, or an aware `datetime`.

    Raises:
        ConfigError: `text` is neither.
    """
    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a time: give ISO 8601 (2026-12-03, 2026-12-03T14:30:00, "
            "UTC unless an offset is given) or epoch seconds"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def ns_from_time(value: TimeLike) -> int:
    """`value` as int nanoseconds since the epoch, UTC, exactly for datetimes.

    Numbers are epoch seconds (as a quote's ``ts``); a naive `datetime` is
    UTC; text goes through `parse_time`.

    Raises:
        ConfigError: Text that is not a time, or a number that is not finite.
    """
    if isinstance(value, str):
        value = parse_time(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{value!r} is not a time")
    return ns_from_seconds(value)


def iso_from_ns(ns: int) -> str:
    """A time in ns since the epoch as ISO 8601 UTC (``Z``), to the µs when it has a fraction.

    The nanoseconds are cut off: a ``ts`` that was float seconds on the bus is
    not more precise than about a quarter of a microsecond anyway.
    """
    whole, rest = divmod(ns, NS_PER_S)
    moment = datetime.fromtimestamp(whole, tz=UTC) + timedelta(microseconds=rest // 1_000)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
