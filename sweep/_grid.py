"""A sweep's parameter grid: ``--grid`` values, ranges and grid files, and their cross product.

``--grid NAME=SPEC`` gives one param's values; SPEC is a comma-separated list
(``fast=5,10,20``, ``mode=fast,slow``) or a range ``START:STOP:STEP`` with
STOP included when the steps land on it (``fast=5:50:5`` is 5, 10, ..., 50).
A grid file (``.json`` or ``.toml``) maps names to a list of values or to such
a string. Values are read as ``--param`` values are (`algos.parse_params`):
``10`` is an int, ``0.5`` a float, ``true`` a bool, anything else text.

`param_sets` gives the cross product in a fixed order (names sorted, values
in the order given), so the same grid always makes the same jobs.
`check_params` runs the algorithm's ``initialize`` on every param set in this
process, before any job is sent anywhere: an unknown name or a value the
algorithm refuses is an error at once, not a thousand failed jobs in the
morning.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from algos import load_algorithm, parse_params
from tickbus.errors import ConfigError

Grid = dict[str, list[Any]]
"""Each swept param's values, in the order given."""

MAX_RANGE_VALUES = 100_000
"""More values than this in one range is surely a typo (a step too small)."""

FRAMEWORK_PARAMS = frozenset({"starting_cash", "buffer_bps", "channels"})
"""Params `Algorithm.start` reads for every algorithm."""


def parse_grid_option(texts: Sequence[str]) -> Grid:
    """``--grid`` values (``NAME=SPEC``) as a grid.

    Raises:
        ConfigError: An entry has no ``=``, an empty name or no values, a
            range is not numeric, or a name is given twice.
    """
    grid: Grid = {}
    for text in texts:
        name, sep, spec = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--grid {text!r}: expected NAME=VALUES, e.g. fast=5,10,20")
        _add(grid, name, _values(name, spec.strip()))
    return grid


def load_grid_file(path: Path) -> Grid:
    """A grid from a ``.json`` or ``.toml`` file: each name maps to a list or a SPEC string.

    Raises:
        ConfigError: The file cannot be read or parsed, or an entry is not a
            non-empty list of numbers, bools and strings or a SPEC; names the file.
    """
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the grid file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"the grid file {path} must map param names to values")
    grid: Grid = {}
    for name, entry in raw.items():
        if isinstance(entry, str):
            values = _values(name, entry)
        elif isinstance(entry, list) and entry and all(_scalar(v) for v in entry):
            values = list(entry)
        else:
            raise ConfigError(
                f"{path}: {name} must be a non-empty list of numbers, bools and strings "
                f"or a string such as '5,10,20' or '5:50:5', got {entry!r}"
            )
        _add(grid, name, values)
    return grid


def merge_grids(*grids: Grid) -> Grid:
    """The grids' params together.

    Raises:
        ConfigError: A name is in two of them.
    """
    merged: Grid = {}
    for grid in grids:
        for name, values in grid.items():
            _add(merged, name, values)
    return merged


def param_sets(grid: Grid, fixed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grid's cross product, each set with the `fixed` params (``--param``) too.

    Raises:
        ConfigError: The grid is empty, or a name is both swept and fixed.
    """
    if not grid:
        raise ConfigError("nothing to sweep: give --grid NAME=VALUES (or --grid-file)")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ConfigError(f"{', '.join(both)}: given both by --grid and --param")
    names = sorted(grid)
    return [
        {**fixed, **dict(zip(names, values, strict=True))}
        for values in itertools.product(*(grid[name] for name in names))
    ]


def check_params(spec: str, sets: Sequence[Mapping[str, Any]], swept: Sequence[str]) -> None:
    """Start `spec` on each param set here; every swept name must be read by ``initialize``.

    Raises:
        ConfigError: The algorithm cannot be loaded or constructed; a swept
            name is never read (an unknown param: the message lists the ones
            it read); or ``initialize`` refuses a set (the message gives the
            set and the algorithm's reason, and how many sets are refused).
    """
    factory = load_algorithm(spec)
    read: set[str] = set()
    refused: list[str] = []
    for params in sets:
        watched = _WatchedParams(params)
        try:
            algorithm = factory()
            object.__setattr__(algorithm, "initialize", watched.watching(algorithm.initialize))
            algorithm.start(watched, order_ids=lambda: "check")
        except Exception as exc:  # the user's constructor or initialize
            refused.append(f"{_text(params, swept)}: {exc}")
        read |= watched.read
    if refused:
        raise ConfigError(
            f"{spec} refuses {len(refused)} of the {len(sets)} param sets, e.g. "
            + "; ".join(refused[:3])
        )
    unknown = sorted(set(swept) - read - FRAMEWORK_PARAMS)
    if unknown:
        known = ", ".join(sorted(read - FRAMEWORK_PARAMS)) or "none"
        raise ConfigError(
            f"unknown param {', '.join(unknown)}: {spec}'s initialize never reads it "
            f"(it reads: {known})"
        )


def _text(params: Mapping[str, Any], names: Sequence[str]) -> str:
    return " ".join(f"{name}={params[name]}" for name in names)


class _WatchedParams(Mapping[str, Any]):
    """Params that remember which names the user's ``initialize`` read (iterating reads all).

    Reads count only inside a call `watching` wrapped, so the framework's own
    copy of the params (`Algorithm.start` keeps them all) does not.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = dict(params)
        self._counting = False
        self.read: set[str] = set()

    def watching(self, initialize: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """`initialize`, counting the reads made while it runs."""

        def counted(params: Any) -> Any:
            self._counting = True
            try:
                return initialize(params)
            finally:
                self._counting = False

        return counted

    def _note(self, names: Iterable[str]) -> None:
        if self._counting:
            self.read.update(names)

    def __getitem__(self, name: str) -> Any:
        self._note([name])
        return self._params[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._note([name])
        return name in self._params

    def __iter__(self) -> Iterator[str]:
        self._note(self._params)
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)


def _add(grid: Grid, name: str, values: list[Any]) -> None:
    if name in grid:
        raise ConfigError(f"param {name} is swept twice")
    grid[name] = values


def _scalar(value: object) -> bool:
    return isinstance(value, bool | int | str) or (
        isinstance(value, float) and math.isfinite(value)
    )


def _values(name: str, spec: str) -> list[Any]:
    """The values of one SPEC: a range when it holds ``:``, else a comma-separated list."""
    if ":" in spec:
        return _range(name, spec)
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    values = [parse_params([f"{name}={part}"])[name] for part in parts]
    if not values:
        raise ConfigError(f"--grid {name}: no values given")
    return values


def _range(name: str, spec: str) -> list[Any]:
    """``START:STOP:STEP`` (STEP 1 when left out), STOP included; ints stay ints."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"--grid {name}={spec}: a range is START:STOP:STEP")
    try:
        start, stop, step = (Decimal(p.strip()) for p in [*parts, "1"][:3])
    except InvalidOperation:
        raise ConfigError(
            f"--grid {name}={spec}: a range's START, STOP and STEP must be numbers"
        ) from None
    if not all(v.is_finite() for v in (start, stop, step)) or step <= 0:
        raise ConfigError(f"--grid {name}={spec}: STEP must be a positive number")
    if stop < start:
        raise ConfigError(f"--grid {name}={spec}: an empty range (STOP is below START)")
    count = int((stop - start) / step) + 1
    if count > MAX_RANGE_VALUES:
        raise ConfigError(f"--grid {name}={spec}: {count:,} values; is STEP too small?")
    exact = all(v == v.to_integral_value() for v in (start, step))
    return [int(start + i * step) if exact else float(start + i * step) for i in range(count)]
