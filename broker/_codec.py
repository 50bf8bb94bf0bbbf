"""The quote codec: JSON or msgpack payloads in, validated `Quote` dicts out.

This runs once per MQTT message (and per ring slot), so validation is
straight-line code over the decoders' plain Python objects: no schema library,
no per-call regex compilation, no per-call object construction beyond the
output dicts.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import msgpack

from tickbus.errors import ConfigError, QuoteRejected

MAX_PAYLOAD_BYTES = 1_048_576
"""Largest payload `decode_quotes` reads; bigger ones are rejected unread."""

MAX_QUOTES_PER_PAYLOAD = 100_000
"""Most quotes one payload may carry (array items or short-form pairs)."""

MAX_NUMBER = 1e12
"""Largest accepted magnitude of price, bid, ask, size and ts (seconds)."""

MAX_SYMBOL_LENGTH = 32
"""Longest accepted symbol (``sid``)."""


class Quote(TypedDict):
    """One quote as it travels on the bus, after validation.

    Every number is a finite ``float``; ``sid`` is upper-case.

    Attributes:
        sid: The symbol, 1-32 characters from ``A-Z 0-9 . - _ : ^ =``.
        price: Last price, ``0 < price <= 1e12``.
        ts: Seconds since the Unix epoch, ``0 < ts <= 1e12``; stamped on
            arrival when the sender left it out.
        bid: Optional best bid, ``0 < bid <= 1e12`` and ``bid <= ask``.
        ask: Optional best ask, ``0 < ask <= 1e12``.
        size: Optional size, ``0 <= size <= 1e12``.
    """

    sid: str
    price: float
    ts: float
    bid: NotRequired[float]
    ask: NotRequired[float]
    size: NotRequired[float]


_FIELDS = ("sid", "price", "ts", "bid", "ask", "size")
_FIELD_SET = frozenset(_FIELDS)
_FIELD_LIST = ", ".join(_FIELDS)
# Bytes that start a JSON payload: an object, an array, or JSON whitespace.
_JSON_FIRST_BYTES = frozenset(b"{[ \t\n\r")
_UTF8_BOM = b"\xef\xbb\xbf"
_SYMBOL = re.compile(r"[A-Z0-9._:^=-]+")
_SYMBOL_CHARS = "A-Z 0-9 . - _ : ^ ="
_SHOW_LIMIT = 40
_SHOW_NAMES = 5


class _NonFiniteConstant(Exception):
    """Raised by the JSON decoder on ``NaN``/``Infinity`` literals, which JSON does not have."""

    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _refuse_constant(literal: str) -> Any:
    raise _NonFiniteConstant(literal)


# One decoder for the process: `json.loads(..., parse_constant=...)` would build
# a new decoder per call. The C scanner honours `parse_constant`.
_JSON = json.JSONDecoder(parse_constant=_refuse_constant)


def decode_quotes(payload: bytes, *, now: Callable[[], float] = time.time) -> list[Quote]:
    """Decode and validate one payload into quotes.

    The encoding is told by the first byte: ``{``, ``[`` or JSON whitespace
    means JSON (UTF-8), anything else msgpack. Both encodings accept the same
    three forms:

    * a full quote ``{"sid": "GOOG", "price": 345.1, "ts": 1732300000.12}``
      with optional ``bid``, ``ask`` and ``size``;
    * a non-empty array of full quotes (each item must have ``sid``);
    * the short form ``{"GOOG": 345.1, "AAPL": 190}``: one quote per pair, in
      the payload's order. Its keys must not be the lower-case field names
      (``{"price": 3}`` is a full quote without ``sid`` and is rejected), but
      upper-case ``{"BID": 3}`` is the symbol BID.

    Symbols are upper-cased. Ints are accepted and returned as floats; bools
    are not numbers. A quote without ``ts`` gets ``now()``; `now` is called at
    most once per payload, so every stamped quote of one payload shares a
    time. `now` is trusted, not validated. When a key repeats, the decoder
    keeps the last value (both JSON and msgpack behave so); two short-form
    keys that upper-case to the same symbol give two quotes.

    The result is all-or-nothing: one bad array item rejects the whole payload.

    Nesting is bounded by the decoders: msgpack deeper than 1,024 levels, and
    JSON deeper than the interpreter's recursion limit leaves room for, are
    rejected as "nested too deeply". For JSON that room is counted from the
    caller's stack (about 900 levels from a shallow one), so a payload a few
    hundred levels deep may get that reason in one caller and its next
    error in another. Valid payloads are three levels deep at most.

    Args:
        payload: The message body. ``bytearray`` and ``memoryview`` are read too.
        now: The clock for stamping, in seconds since the epoch; tests inject one.

    Returns:
        The quotes, at least one, in payload order; fresh dicts the caller owns.

    Raises:
        QuoteRejected: For every payload that is not exactly one of the forms
            above with valid values, with a reason naming the problem (and the
            array index of the first bad item). No other exception escapes,
            whatever the bytes: malformed UTF-8, deep nesting and huge numbers
            included.
    """
    if type(payload) is not bytes:
        payload = _as_bytes(payload)
    size = len(payload)
    if size == 0:
        raise QuoteRejected("empty payload")
    if size > MAX_PAYLOAD_BYTES:
        raise QuoteRejected(
            f"payload is {size} bytes, larger than the limit of {MAX_PAYLOAD_BYTES} bytes"
        )
    data = _load_json(payload) if payload[0] in _JSON_FIRST_BYTES else _load_msgpack(payload)
    if type(data) is dict:
        if "sid" in data:
            return [_full_quote(data, now)]
        return _short_form(data, now)
    if type(data) is list:
        return _quote_array(data, now)
    raise QuoteRejected(f"expected a quote object or an array of quotes, got {_kind(data)}")


def parse_quote(fields: Mapping[str, Any], *, now: Callable[[], float] = time.time) -> Quote:
    """Validate one full-form quote given as a mapping (e.g. a CSV row).

    The rules are those of a full quote in `decode_quotes`: ``sid`` and
    ``price`` required, ``ts``, ``bid``, ``ask``, ``size`` optional, no other
    keys. Numbers may be ``int``/``float``, their subclasses (``numpy.float64``)
    and any other `numbers.Real` such as ``numpy.float32``; strings are not
    converted, so a CSV reader converts first and drops empty optional columns.

    Args:
        fields: The quote's fields.
        now: Called once when ``ts`` is missing.

    Returns:
        A new, validated quote with float numbers and an upper-case ``sid``.

    Raises:
        QuoteRejected: `fields` is not a mapping or breaks a rule; the reason
            says which.
    """
    if not isinstance(fields, Mapping):
        raise QuoteRejected(f"a quote must be a mapping, got {_kind(fields)}")
    return _full_quote(fields, now)


def parse_symbols(text: str, *, option: str = "--symbols") -> tuple[str, ...]:
    """A comma-separated list of symbols as typed after `option`, upper-cased, in order.

    Each symbol must be one a quote may carry (``sid``); empty items are skipped.

    Raises:
        ConfigError: No symbol is given, one is not a valid symbol, or one is
            given twice; the reason names `option`.
    """
    symbols = tuple(s.strip() for s in text.split(",") if s.strip())
    if not symbols:
        raise ConfigError(f"{option} needs at least one symbol, e.g. GOOG,AAPL")
    try:
        upper = tuple(_symbol(sid, "a symbol") for sid in symbols)
    except QuoteRejected as exc:
        raise ConfigError(f"{option}: {exc.reason}") from None
    if len(set(upper)) != len(upper):
        raise ConfigError(f"{option} names a symbol twice: {text}")
    return upper


def encode_quote_json(quote: Quote) -> bytes:
    """Encode one quote as compact UTF-8 JSON.

    The quote is not validated: pass one from `parse_quote`/`decode_quotes`,
    or one built to the `Quote` contract. Floats are written in their shortest
    round-trip form, so ``decode_quotes(encode_quote_json(q)) == [q]``.

    Raises:
        ValueError: A number is NaN or infinite (never written as invalid JSON).
        TypeError: A value is not JSON-serialisable.
    """
    return json.dumps(quote, separators=(",", ":"), allow_nan=False).encode()


def encode_quotes_msgpack(quotes: Sequence[Quote]) -> bytes:
    """Encode quotes as one msgpack array of maps (float64 numbers, str keys).

    The quotes are not validated (see `encode_quote_json`); for valid quotes
    ``decode_quotes(encode_quotes_msgpack(qs)) == list(qs)``.

    Raises:
        ValueError: `quotes` is empty (the decoder rejects an empty array).
        TypeError: A value is not msgpack-serialisable.
    """
    if not quotes:
        raise ValueError("cannot encode an empty sequence of quotes")
    if not isinstance(quotes, list | tuple):
        quotes = list(quotes)
    return msgpack.packb(quotes, use_bin_type=True)


# --- decoding the bytes -----------------------------------------------------------


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        try:
            return bytes(payload)
        except (ValueError, TypeError) as exc:  # e.g. a released memoryview
            raise QuoteRejected(f"unreadable payload buffer: {exc}") from exc
    raise QuoteRejected(f"payload must be bytes, got {type(payload).__name__}")


def _load_json(payload: bytes) -> Any:
    try:
        text = payload.decode()
    except UnicodeDecodeError as exc:
        raise QuoteRejected(
            f"payload is not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from exc
    try:
        return _JSON.decode(text)
    except _NonFiniteConstant as exc:
        raise QuoteRejected(
            f"invalid JSON: {exc.literal} is not allowed (numbers must be finite)"
        ) from None
    except RecursionError:
        raise QuoteRejected("invalid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise QuoteRejected(f"invalid JSON: {exc}") from exc
    except ValueError as exc:  # int() refuses integers longer than 4300 digits
        raise QuoteRejected(f"invalid JSON: a number is too long ({exc})") from exc


def _load_msgpack(payload: bytes) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except msgpack.StackError:
        reason = "nested too deeply"
    except msgpack.FormatError:
        reason = "reserved format byte"
    except msgpack.ExtraData:
        reason = "extra bytes after the first value"
    except UnicodeDecodeError as exc:
        reason = f"a string is not valid UTF-8: {exc.reason} at byte {exc.start}"
    except Exception as exc:  # the C unpacker raises plain ValueError, TypeError, ...
        reason = str(exc) or type(exc).__name__
    if payload.startswith(_UTF8_BOM):
        raise QuoteRejected("payload starts with a UTF-8 byte order mark; send JSON without it")
    first = payload[0]
    hint = ""
    if 0x20 <= first < 0x7F:
        hint = (
            f" (the payload starts with {chr(first)!r}, so it was read as msgpack;"
            " a JSON quote is an object or an array)"
        )
    raise QuoteRejected(f"invalid msgpack: {reason}{hint}")


# --- the three forms -------------------------------------------------------------


def _quote_array(items: list[Any], now: Callable[[], float]) -> list[Quote]:
    count = len(items)
    if count == 0:
        raise QuoteRejected("empty array: expected at least one quote")
    if count > MAX_QUOTES_PER_PAYLOAD:
        raise QuoteRejected(
            f"too many quotes: {count} in one payload, the limit is {MAX_QUOTES_PER_PAYLOAD}"
        )
    clock = _Clock(now)
    quotes: list[Quote] = []
    append = quotes.append
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise QuoteRejected(f"item {index} is not an object (got {_kind(item)})")
        try:
            if "sid" not in item:
                _reject_missing_sid(item, array_item=True)
            append(_full_quote(item, clock.stamp))
        except QuoteRejected as exc:
            raise QuoteRejected(f"item {index}: {exc.reason}") from None
    return quotes


def _short_form(pairs: dict[Any, Any], now: Callable[[], float]) -> list[Quote]:
    count = len(pairs)
    if count == 0:
        raise QuoteRejected(
            'empty object: expected {"sid": ..., "price": ...} or {"SYMBOL": price}'
        )
    if count > MAX_QUOTES_PER_PAYLOAD:
        raise QuoteRejected(
            f"too many quotes: {count} in one payload, the limit is {MAX_QUOTES_PER_PAYLOAD}"
        )
    if not _FIELD_SET.isdisjoint(pairs):
        _reject_missing_sid(pairs, array_item=False)
    ts = float(now())
    quotes: list[Quote] = []
    append = quotes.append
    for key, value in pairs.items():
        sid = _symbol(key, "symbol")
        try:
            price = _positive(value, "price")
        except QuoteRejected as exc:
            raise QuoteRejected(f"{sid}: {exc.reason}") from None
        append({"sid": sid, "price": price, "ts": ts})
    return quotes


def _full_quote(fields: Mapping[Any, Any], now: Callable[[], float]) -> Quote:
    if not _FIELD_SET.issuperset(fields):
        _reject_unknown(fields)
    try:
        sid = fields["sid"]
        price = fields["price"]
    except KeyError as exc:
        raise QuoteRejected(f'missing "{exc.args[0]}"') from None
    quote: Quote = {
        "sid": _symbol(sid, "sid"),
        "price": _positive(price, "price"),
        "ts": _positive(fields["ts"], "ts") if "ts" in fields else float(now()),
    }
    if len(fields) == 3 and "ts" in fields:
        return quote  # the common case: nothing optional
    if "bid" in fields:
        quote["bid"] = _positive(fields["bid"], "bid")
    if "ask" in fields:
        quote["ask"] = _positive(fields["ask"], "ask")
        if "bid" in quote and quote["bid"] > quote["ask"]:
            raise QuoteRejected(f"bid {quote['bid']!r} is above ask {quote['ask']!r}")
    if "size" in fields:
        quote["size"] = _non_negative(fields["size"], "size")
    return quote


class _Clock:
    """Calls `now` at most once, on first use: one stamp per payload."""

    __slots__ = ("_now", "_stamp")

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._stamp: float | None = None

    def stamp(self) -> float:
        if self._stamp is None:
            self._stamp = float(self._now())
        return self._stamp


# --- fields ----------------------------------------------------------------------


def _symbol(value: object, name: str) -> str:
    # isascii first: str.upper() maps some non-ASCII letters onto ASCII ("ﬁ" -> "FI").
    if type(value) is str and len(value) <= MAX_SYMBOL_LENGTH and value.isascii():
        if value.isalnum():  # the common case, and False for ""
            return value.upper()
        upper = value.upper()
        if _SYMBOL.fullmatch(upper) is not None:
            return upper
    return _odd_symbol(value, name)


def _odd_symbol(value: object, name: str) -> str:
    """The slow path of `_symbol`: str subclasses, and every rejection."""
    if not isinstance(value, str):
        raise QuoteRejected(f"{name} must be a string, got {_kind(value)}")
    if type(value) is not str:
        return _symbol(str(value), name)  # e.g. numpy.str_
    if not value:
        raise QuoteRejected(f"{name} is empty")
    if len(value) > MAX_SYMBOL_LENGTH:
        raise QuoteRejected(
            f"{name} is {len(value)} characters long, the limit is {MAX_SYMBOL_LENGTH}"
        )
    raise QuoteRejected(f"{name} {_show(value)} has characters outside {_SYMBOL_CHARS}")


def _positive(value: object, name: str) -> float:
    """A finite number in (0, MAX_NUMBER], as a float."""
    # Exact-type fast paths: json and msgpack only ever produce plain int/float.
    number = value if type(value) is float or type(value) is int else _number_like(value, name)
    if 0 < number <= MAX_NUMBER:
        return float(number)
    raise QuoteRejected(_range_reason(name, number, "> 0"))


def _non_negative(value: object, name: str) -> float:
    """A finite number in [0, MAX_NUMBER], as a float."""
    number = value if type(value) is float or type(value) is int else _number_like(value, name)
    if 0 <= number <= MAX_NUMBER:
        return float(number)
    raise QuoteRejected(_range_reason(name, number, ">= 0"))


def _number_like(value: object, name: str) -> float:
    """The slow path for numbers that are not exactly int or float.

    Accepts every `numbers.Real` (float subclasses such as numpy.float64, and
    numpy.float32, numpy.int64, Fraction), never bools; returns a plain float.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise QuoteRejected(f"{name} must be a number, got {_kind(value)}")
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. Fraction(10**400)
        raise QuoteRejected(
            f"{name} {_show(value)} is too large, the limit is {MAX_NUMBER:.0e}"
        ) from exc


def _range_reason(name: str, number: float, bound: str) -> str:
    if number != number:
        return f"{name} must be a finite number, got NaN"
    if isinstance(number, float) and math.isinf(number):
        return f"{name} must be a finite number, got {number!r}"
    if number > MAX_NUMBER:
        hint = " (ts is in seconds since the epoch, not milliseconds)" if name == "ts" else ""
        return f"{name} {_show(number)} is too large, the limit is {MAX_NUMBER:.0e}{hint}"
    return f"{name} must be {bound}, got {_show(number)}"


# --- rejections that need a closer look at the mapping -------------------------


def _reject_unknown(fields: Mapping[Any, Any]) -> None:
    unknown = [key for key in fields if key not in _FIELD_SET]
    names = ", ".join(_show(key) for key in unknown[:_SHOW_NAMES])
    more = f" and {len(unknown) - _SHOW_NAMES} more" if len(unknown) > _SHOW_NAMES else ""
    plural = "s" if len(unknown) > 1 else ""
    raise QuoteRejected(f"unknown field{plural} {names}{more} (allowed: {_FIELD_LIST})")


def _reject_missing_sid(fields: Mapping[Any, Any], *, array_item: bool) -> None:
    if array_item:
        raise QuoteRejected('missing "sid" (array items must be full quotes)')
    present = [key for key in _FIELDS if key in fields]
    raise QuoteRejected(
        f'a full quote needs "sid" (got {", ".join(present)}); '
        'the short form is {"SYMBOL": price}'
    )


def _kind(value: object) -> str:
    """The JSON-ish name of a value's type, for reasons people read."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if type(value) is list or type(value) is tuple:  # not namedtuples such as ExtType
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _show(value: object) -> str:
    """A repr short enough for a log line, whatever the sender put in the payload."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<{value.bit_length()}-bit integer>"  # repr of a huge int is slow and long
    text = repr(value)
    if len(text) > _SHOW_LIMIT:
        return text[: _SHOW_LIMIT - 3] + "..."
    return text
