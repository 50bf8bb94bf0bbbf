"""The order schema: what an algorithm's order must look like on ``orders/<algo>``.

Orders are validated where they enter execution, with the same rules and the
same field helpers as quotes (`broker._codec`): a symbol is checked exactly as
a quote's ``sid`` is, numbers the same way. Orders are JSON only: people and
bridges write them, and they are rare next to quotes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

from broker._codec import MAX_NUMBER, _kind, _load_json, _positive, _show, _symbol
from broker._topics import validate_name
from tickbus.errors import ConfigError, OrderRejected, QuoteRejected

MAX_ORDER_BYTES = 4096
"""Largest order payload `decode_order` reads; a valid order is a few hundred bytes."""

MAX_ORDER_ID_LENGTH = 64
"""Longest accepted order ``id`` (a uuid4 hex is 32)."""

MAX_ORDER_QTY = int(MAX_NUMBER)
"""Largest accepted ``qty``."""

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
SIDES: tuple[Side, ...] = ("buy", "sell")
ORDER_TYPES: tuple[OrderType, ...] = ("market", "limit")


class Order(TypedDict):
    """One order as it travels on the bus, after validation.

    Attributes:
        id: Unique per order: 1-64 printable characters (a uuid4 hex, typically).
        algo: The algorithm that sent it, a valid topic level (`validate_name`).
        sid: The symbol, upper-case, with the rules of a quote's ``sid``.
        side: ``"buy"`` or ``"sell"``.
        qty: Shares, an ``int`` with ``0 < qty <= 1e12``.
        type: ``"market"`` or ``"limit"``.
        ts: When the algorithm sent it, seconds since the epoch, a finite
            float with ``0 < ts <= 1e12``.
        limit_price: For limit orders only, and required for them: the worst
            acceptable price, a finite float with ``0 < limit_price <= 1e12``.
    """

    id: str
    algo: str
    sid: str
    side: Side
    qty: int
    type: OrderType
    ts: float
    limit_price: NotRequired[float]


_REQUIRED = ("id", "algo", "sid", "side", "qty", "type", "ts")
_FIELDS = (*_REQUIRED, "limit_price")
_FIELD_SET = frozenset(_FIELDS)
_FIELD_LIST = ", ".join(_FIELDS)


def parse_order(fields: Mapping[str, Any]) -> Order:
    """Validate one order given as a mapping (e.g. what `json.loads` returned).

    Every field of `Order` is checked; nothing is converted from strings. Ints
    are accepted for ``ts`` and ``limit_price`` and returned as floats; ``qty``
    must be an ``int`` (not a bool, not a float such as ``10.0``). Fields
    other than those of `Order` are rejected.

    Args:
        fields: The order's fields.

    Returns:
        A new, validated order: upper-case ``sid``, float ``ts`` and ``limit_price``.

    Raises:
        OrderRejected: `fields` is not a mapping or breaks a rule; the reason
            names the first field at fault (unknown fields first, then missing
            ones, then values in the order of `Order`'s attributes).
    """
    if type(fields) is not dict and not isinstance(fields, Mapping):
        raise OrderRejected(f"an order must be an object, got {_kind(fields)}")
    _check_keys(fields)
    order: Order = {
        "id": _order_id(fields["id"]),
        "algo": _algo(fields["algo"]),
        "sid": _quote_rule(_symbol, fields["sid"], "sid"),
        "side": cast(Side, _choice(fields["side"], "side", SIDES)),
        "qty": _qty(fields["qty"]),
        "type": cast(OrderType, _choice(fields["type"], "type", ORDER_TYPES)),
        "ts": _quote_rule(_positive, fields["ts"], "ts"),
    }
    if order["type"] == "limit":
        if "limit_price" not in fields:
            raise OrderRejected('a limit order needs "limit_price"')
        order["limit_price"] = _quote_rule(_positive, fields["limit_price"], "limit_price")
    elif "limit_price" in fields:
        raise OrderRejected('"limit_price" is only for limit orders (this is a market order)')
    return order


def decode_order(payload: bytes) -> Order:
    """Decode and validate one JSON order (UTF-8, an object: see `parse_order`).

    Args:
        payload: The message body.

    Returns:
        The validated order.

    Raises:
        OrderRejected: For anything else, with a reason: an empty payload, one
            larger than `MAX_ORDER_BYTES`, malformed UTF-8, invalid JSON
            (``NaN`` and ``Infinity`` included), deep nesting, a value that is
            not an object, or a bad field. No other exception escapes,
            whatever the bytes.
    """
    return parse_order(_load_object(payload, "an order object"))


def _load_object(payload: bytes, what: str) -> dict[str, Any]:
    """One JSON object of at most `MAX_ORDER_BYTES`, or `OrderRejected` with the reason."""
    if not isinstance(payload, bytes):
        raise OrderRejected(f"payload must be bytes, got {type(payload).__name__}")
    size = len(payload)
    if size == 0:
        raise OrderRejected("empty payload")
    if size > MAX_ORDER_BYTES:
        raise OrderRejected(
            f"payload is {size} bytes, larger than the limit of {MAX_ORDER_BYTES} bytes"
        )
    try:
        data = _load_json(payload)
    except QuoteRejected as exc:
        raise OrderRejected(exc.reason) from None
    if type(data) is not dict:
        raise OrderRejected(f"expected {what}, got {_kind(data)}")
    return data


def encode_order(order: Order) -> bytes:
    """Encode one order as compact UTF-8 JSON; ``decode_order`` reads it back equal.

    The order is not validated: pass one from `parse_order`/`decode_order`.

    Raises:
        ValueError: A number is NaN or infinite (never written as invalid JSON).
        TypeError: A value is not JSON-serialisable.
    """
    return json.dumps(order, separators=(",", ":"), allow_nan=False).encode()


def _check_keys(fields: Mapping[Any, Any]) -> None:
    if not _FIELD_SET.issuperset(fields):
        unknown = [key for key in fields if key not in _FIELD_SET]
        names = ", ".join(_show(key) for key in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        plural = "s" if len(unknown) > 1 else ""
        raise OrderRejected(f"unknown field{plural} {names}{more} (allowed: {_FIELD_LIST})")
    for name in _REQUIRED:
        if name not in fields:
            raise OrderRejected(f'missing "{name}"')


def _quote_rule(rule: Any, value: object, name: str) -> Any:
    """Apply a quote-field helper of `broker._codec`, turning its rejection into ours."""
    try:
        return rule(value, name)
    except QuoteRejected as exc:
        raise OrderRejected(exc.reason) from None


def _order_id(value: object) -> str:
    if not isinstance(value, str):
        raise OrderRejected(f"id must be a string, got {_kind(value)}")
    if not value:
        raise OrderRejected("id is empty")
    if len(value) > MAX_ORDER_ID_LENGTH:
        raise OrderRejected(
            f"id is {len(value)} characters long, the limit is {MAX_ORDER_ID_LENGTH}"
        )
    if not value.isprintable():
        raise OrderRejected(f"id {_show(value)} has characters that are not printable")
    return str(value)


def _algo(value: object) -> str:
    if not isinstance(value, str):
        raise OrderRejected(f"algo must be a string, got {_kind(value)}")
    try:
        return validate_name(str(value))
    except ConfigError as exc:
        raise OrderRejected(f"algo is not a valid name: {exc.reason}") from None


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if type(value) is str and value in allowed:
        return value
    spelled = " or ".join(f'"{choice}"' for choice in allowed)
    raise OrderRejected(f"{name} must be {spelled}, got {_show(value)}")


def _qty(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OrderRejected(f"qty must be an integer, got {_kind(value)} {_show(value)}")
    if value <= 0:
        raise OrderRejected(f"qty must be > 0, got {_show(value)}")
    if value > MAX_ORDER_QTY:
        raise OrderRejected(f"qty {_show(value)} is too large, the limit is {MAX_ORDER_QTY:.0e}")
    return int(value)


REJECTED_BY_BRIDGE = "bridge"
REJECTED_BY_EXECUTION = "execution"


def rejection_notice(order: Mapping[str, Any] | str, reason: str, *, by: str) -> dict[str, Any]:
    """The message published on ``orders/<algo>/rejected`` for a refused order.

    Args:
        order: The order as it was refused: a mapping, or the payload as text
            when it was not even an object.
        reason: Why it was refused.
        by: Who refused it: `REJECTED_BY_BRIDGE` (schema or risk) or
            `REJECTED_BY_EXECUTION`.
    """
    return {"reason": reason, "by": by, "order": order}


def decode_report(payload: bytes) -> dict[str, Any]:
    """One JSON object of at most `MAX_ORDER_BYTES`: a fill or a rejection notice.

    Only the framing is checked here; the algorithm's portfolio checks the
    fields of a fill, and `rejected_order_id` those of a notice.

    Raises:
        OrderRejected: Empty, too large, not UTF-8 JSON (NaN included), too
            deeply nested, or not an object; with the reason.
    """
    return _load_object(payload, "an object")


def rejected_order_id(notice: Mapping[str, Any]) -> str:
    """The ``id`` of the order a rejection notice is about.

    Raises:
        OrderRejected: The notice carries no order with a string ``id`` (it
            rejected a payload that was not an order: nobody holds it open).
    """
    order = notice.get("order")
    order_id = order.get("id") if isinstance(order, Mapping) else None
    if not isinstance(order_id, str) or not order_id:
        raise OrderRejected("the rejection names no order id")
    return order_id
