"""Reading and validating `initialize` params: numbers and channels.

Each reader raises `ConfigError` naming the param, the rule and the value
given, so a typo on the command line reads as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tickbus.errors import ConfigError


def require_mapping(params: object) -> Mapping[str, Any]:
    """`params` itself when it is a mapping.

    Raises:
        ConfigError: It is not.
    """
    if not isinstance(params, Mapping):
        raise ConfigError(f"params must be a mapping, got {type(params).__name__}")
    return params


def param_float(
    params: Mapping[str, Any],
    name: str,
    default: float,
    *,
    low: float = -math.inf,
    high: float = math.inf,
) -> float:
    """``params[name]`` (or `default`) as a finite float in ``[low, high]``.

    Raises:
        ConfigError: It is not a number, not finite, or out of range.
    """
    raw = require_mapping(params).get(name, default)
    value = math.nan
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except OverflowError:
            value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{name} must be {_range_text(low, high)}, got {raw!r}")
    return value


def _range_text(low: float, high: float) -> str:
    if math.isinf(low) and math.isinf(high):
        return "a finite number"
    if math.isinf(high):
        return f"a number >= {low:g}"
    if math.isinf(low):
        return f"a number <= {high:g}"
    return f"a number in [{low:g}, {high:g}]"


def param_int(params: Mapping[str, Any], name: str, default: int, *, low: int) -> int:
    """``params[name]`` (or `default`) as an int >= `low`.

    Raises:
        ConfigError: It is not an int (a float such as 5.0 is refused too) or is below `low`.
    """
    raw = require_mapping(params).get(name, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {raw!r}")
    return raw


def optional_int(params: Mapping[str, Any], name: str) -> int | None:
    """``params[name]`` as an int, or None when it is absent or None.

    Raises:
        ConfigError: It is present and not an int.
    """
    raw = require_mapping(params).get(name)
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise ConfigError(f"{name} must be an integer, got {raw!r}")
    return raw


def parse_channels(value: object) -> list[str]:
    """MQTT topic filters from a list of strings or a comma-separated string.

    Raises:
        ConfigError: No filter is given, or one is not a valid MQTT topic filter
            (empty, contains NUL, ``#`` not alone in the last level, ``+`` not
            alone in its level).
    """
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(
            "channels must be a list of MQTT topic filters or a comma-separated string, "
            f"got {type(value).__name__}"
        )
    if not items:
        raise ConfigError("channels must name at least one MQTT topic filter")
    return [_topic_filter(item) for item in items]


def _topic_filter(item: object) -> str:
    if not isinstance(item, str) or not item:
        raise ConfigError(f"each channel must be a non-empty string, got {item!r}")
    levels = item.split("/")
    wildcard_ok = all(
        ("#" not in level or (level == "#" and i == len(levels) - 1))
        and ("+" not in level or level == "+")
        for i, level in enumerate(levels)
    )
    if "\0" in item or not wildcard_ok:
        raise ConfigError(
            f"channel {item!r} is not a valid MQTT topic filter: '#' may only be the whole "
            "last level, '+' a whole level, and NUL is not allowed"
        )
    return item
