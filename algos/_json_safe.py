"""Checking that what an algorithm hands back is JSON data, before it goes on the wire.

The RPC contract says ``state()`` and ``finalize()`` return JSON-safe dicts:
the bridge publishes them in its status. zerorpc itself carries more than
JSON (bytes, NaN, maps with int keys), and one case breaks the caller
outright: its msgpack decoder refuses a map key that is not a string, drops
the whole answer, and the call then fails as if the server had died
(``LostRemote``). A server that checks first answers with a clear error
instead.
"""

from __future__ import annotations

import math

__all__ = ["MAX_DEPTH", "require_json_safe"]

MAX_DEPTH = 100
"""Deepest nesting of lists and dicts accepted (it also stops self-references)."""

_SHOW_LIMIT = 40


class _Unsafe(Exception):
    """A part of the value that is not JSON data; `path` is filled in on the way out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


def require_json_safe(value: object, *, what: str) -> None:
    """Check that `value` is JSON data, so every peer can read it.

    JSON data is: dicts with string keys, lists and tuples, strings, bools,
    None, ints, and finite floats (subclasses included, e.g.
    ``numpy.float64``), nested at most `MAX_DEPTH` deep. The check walks the
    whole value: a few milliseconds for ten thousand list items.

    Args:
        value: What was returned.
        what: Names it in the error, e.g. ``"state()"``.

    Raises:
        TypeError: `value` is not JSON data; the message gives the path to the
            first offending part, e.g. ``"state() is not JSON-safe: at
            ['by_id']: key 1 is not a string"``.
    """
    try:
        _check(value, MAX_DEPTH)
    except _Unsafe as exc:
        where = f"at {''.join(reversed(exc.path))}: " if exc.path else ""
        raise TypeError(f"{what} is not JSON-safe: {where}{exc.problem}") from None


def _check(value: object, depth: int) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unsafe(f"{value!r} is not a finite number")
    elif isinstance(value, dict):
        _check_dict(value, _deeper(depth))
    elif isinstance(value, list | tuple):
        _check_items(value, _deeper(depth))
    elif value is not None and not isinstance(value, str | int):  # bool is an int
        raise _Unsafe(f"{type(value).__name__} is not a JSON type")


def _deeper(depth: int) -> int:
    if depth == 0:
        raise _Unsafe(f"nested deeper than {MAX_DEPTH} levels")
    return depth - 1


def _check_dict(mapping: dict[object, object], depth: int) -> None:
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise _Unsafe(f"key {_show(key)} is not a string")
        try:
            _check(item, depth)
        except _Unsafe as exc:
            exc.path.append(f"[{_show(key)}]")
            raise


def _check_items(items: list[object] | tuple[object, ...], depth: int) -> None:
    for index, item in enumerate(items):
        try:
            _check(item, depth)
        except _Unsafe as exc:
            exc.path.append(f"[{index}]")
            raise


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."
