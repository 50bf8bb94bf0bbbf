"""Finding an algorithm class by name, and parsing ``key=value`` params from a CLI."""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from algos._base import Algorithm
from algos._plain import PlainAlgorithm
from tickbus.errors import ConfigError

AlgorithmFactory = Callable[[], Algorithm]
"""Makes a fresh, not yet started algorithm: what `load_algorithm` returns."""


def load_algorithm(spec: str) -> AlgorithmFactory:
    """Import the algorithm class that `spec` names; returns what makes one.

    The class is either a concrete `Algorithm` subclass, or a plain class
    with ``initialize(params)`` and ``event(quote)`` methods, which is
    adapted to the full contract (`PlainAlgorithm`, a `Portfolio` composed
    alongside). Either is constructed without arguments.

    Args:
        spec: ``"package.module:ClassName"``, e.g. ``"algos.examples:RandomAlgo"``.

    Returns:
        A callable that constructs one instance per call (the class itself
        for an `Algorithm` subclass). Constructing it may raise whatever the
        class's ``__init__`` raises (a `TypeError` when it needs arguments).

    Raises:
        ConfigError: `spec` is malformed, the module cannot be imported (the
            reason carries the import error), it has no such attribute, or the
            attribute is neither a concrete `Algorithm` subclass nor a class
            with ``initialize`` and ``event`` methods.
    """
    module_name, class_name = _split_spec(spec)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error while importing user code is a config problem
        raise ConfigError(
            f"cannot import module {module_name!r} for {spec!r}: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        found = getattr(module, class_name)
    except AttributeError as exc:
        raise ConfigError(f"module {module_name!r} has no attribute {class_name!r}") from exc
    if not isinstance(found, type):
        raise ConfigError(f"{spec!r} is {found!r}, not a class")
    if issubclass(found, Algorithm):
        if inspect.isabstract(found):
            missing = ", ".join(sorted(getattr(found, "__abstractmethods__", ())))
            raise ConfigError(f"{spec!r} is abstract: it does not implement {missing}")
        return found
    lacking = [name for name in ("initialize", "event") if not callable(getattr(found, name, None))]
    if lacking:
        raise ConfigError(
            f"{spec!r} is neither a subclass of algos.Algorithm nor a class with "
            f"initialize(params) and event(quote) methods: it has no {' and no '.join(lacking)}"
        )
    plain: type[Any] = found
    return lambda: PlainAlgorithm(plain())


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """Params from ``key=value`` strings, as a CLI's ``--param`` gives them.

    The value is parsed as JSON when it is valid JSON (``seed=7`` gives 7,
    ``x=true`` gives True, ``w=[1,2]`` a list), else kept as the string
    (``channels=quotes/GOOG,quotes/MSFT``). Non-finite numbers (``NaN``,
    ``Infinity``, ``1e999``) stay strings. The key is split at the first ``=`` and stripped.

    Raises:
        ConfigError: An item has no ``=``, its key is empty, or a key repeats.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"param {item!r} must look like key=value")
        if not key:
            raise ConfigError(f"param {item!r} has an empty key")
        if key in params:
            raise ConfigError(f"param {key!r} is given more than once")
        params[key] = _json_or_string(value)
    return params


def _split_spec(spec: str) -> tuple[str, str]:
    module_name, sep, class_name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    parts_ok = all(part.isidentifier() for part in module_name.split("."))
    if not sep or not parts_ok or not class_name.isidentifier():
        raise ConfigError(f"algorithm spec must look like 'package.module:ClassName', got {spec!r}")
    return module_name, class_name


def _json_or_string(value: str) -> Any:
    try:
        return json.loads(value, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError:  # json.JSONDecodeError is a ValueError
        return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a param can hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise ValueError(f"{text} is out of range")
    return value
