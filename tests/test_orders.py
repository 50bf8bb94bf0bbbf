"""The order schema: every accepted form, and every rejection with its reason."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import pytest

from broker import (
    MAX_ORDER_BYTES,
    REJECTED_BY_BRIDGE,
    Order,
    decode_order,
    decode_report,
    encode_order,
    orders_topic,
    parse_order,
    rejected_order_id,
    rejected_orders_topic,
    rejection_notice,
    topic_matches,
)
from tickbus.errors import ConfigError, OrderRejected

MARKET: dict[str, Any] = {
    "id": "0f3c9a",
    "algo": "momentum",
    "sid": "goog",
    "side": "buy",
    "qty": 10,
    "type": "market",
    "ts": 1_700_000_000.5,
}
LIMIT: dict[str, Any] = {**MARKET, "side": "sell", "type": "limit", "limit_price": 101.25}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


def rejected(fields: Any) -> str:
    with pytest.raises(OrderRejected) as info:
        parse_order(fields)
    assert str(info.value) == info.value.reason
    return info.value.reason


def rejected_payload(payload: bytes) -> str:
    with pytest.raises(OrderRejected) as info:
        decode_order(payload)
    return info.value.reason


def test_a_market_order_is_normalised() -> None:
    assert parse_order(MARKET) == {
        "id": "0f3c9a",
        "algo": "momentum",
        "sid": "GOOG",
        "side": "buy",
        "qty": 10,
        "type": "market",
        "ts": 1_700_000_000.5,
    }


def test_a_limit_order_keeps_its_limit_price_as_a_float() -> None:
    order = parse_order(with_(LIMIT, limit_price=101, ts=1_700_000_000))
    assert order["limit_price"] == 101.0 and type(order["limit_price"]) is float
    assert type(order["ts"]) is float
    assert order["side"] == "sell" and order["type"] == "limit"


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"sid": "brk.b"}, "sid", "BRK.B"),
        ({"sid": "^GSPC"}, "sid", "^GSPC"),
        ({"id": "x"}, "id", "x"),
        ({"id": "a" * 64}, "id", "a" * 64),
        ({"id": "order 7 ü"}, "id", "order 7 ü"),
        ({"algo": "bridge-1.eu"}, "algo", "bridge-1.eu"),
        ({"qty": 10**12}, "qty", 10**12),
        ({"side": "sell"}, "side", "sell"),
        ({"ts": 1e12}, "ts", 1e12),
    ],
)
def test_accepted_values(changes: dict[str, Any], field: str, expected: Any) -> None:
    assert parse_order(with_(MARKET, **changes))[field] == expected


def test_any_mapping_is_an_order_not_only_a_dict() -> None:
    assert parse_order(MappingProxyType(MARKET)) == parse_order(dict(MARKET))


def test_parse_order_returns_a_new_dict() -> None:
    fields = dict(MARKET)
    order = parse_order(fields)
    assert order is not fields and fields["sid"] == "goog"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([1, 2], "an order must be an object, got array"),
        (None, "an order must be an object, got null"),
        (
            with_(MARKET, price=3.0),
            "unknown field 'price' (allowed: id, algo, sid, side, qty, type, ts, limit_price)",
        ),
        (
            with_(MARKET, a=1, b=2),
            "unknown fields 'a', 'b' (allowed: id, algo, sid, side, qty, type, ts, limit_price)",
        ),
        (without(MARKET, "id"), 'missing "id"'),
        (without(MARKET, "algo"), 'missing "algo"'),
        (without(MARKET, "sid"), 'missing "sid"'),
        (without(MARKET, "side"), 'missing "side"'),
        (without(MARKET, "qty"), 'missing "qty"'),
        (without(MARKET, "type"), 'missing "type"'),
        (without(MARKET, "ts"), 'missing "ts"'),
        (with_(MARKET, id=7), "id must be a string, got number"),
        (with_(MARKET, id=""), "id is empty"),
        (with_(MARKET, id="a" * 65), "id is 65 characters long, the limit is 64"),
        (with_(MARKET, id="a\nb"), "id 'a\\nb' has characters that are not printable"),
        (with_(MARKET, algo=None), "algo must be a string, got null"),
        (
            with_(MARKET, algo=""),
            "algo is not a valid name: a topic level name must not be empty",
        ),
        (
            with_(MARKET, algo="a/b"),
            "algo is not a valid name: topic level name 'a/b' must not contain '/' "
            "(names must not contain '/', '+', '#' or NUL)",
        ),
        (
            with_(MARKET, algo="a+"),
            "algo is not a valid name: topic level name 'a+' must not contain '+' "
            "(names must not contain '/', '+', '#' or NUL)",
        ),
        (with_(MARKET, sid=""), "sid is empty"),
        (with_(MARKET, sid=5), "sid must be a string, got number"),
        (with_(MARKET, sid="G" * 33), "sid is 33 characters long, the limit is 32"),
        (with_(MARKET, sid="GO OG"), "sid 'GO OG' has characters outside A-Z 0-9 . - _ : ^ ="),
        (with_(MARKET, side="BUY"), 'side must be "buy" or "sell", got \'BUY\''),
        (with_(MARKET, side=None), 'side must be "buy" or "sell", got None'),
        (with_(MARKET, type="stop"), 'type must be "market" or "limit", got \'stop\''),
        (with_(MARKET, qty=0), "qty must be > 0, got 0"),
        (with_(MARKET, qty=-5), "qty must be > 0, got -5"),
        (with_(MARKET, qty=10.0), "qty must be an integer, got number 10.0"),
        (with_(MARKET, qty=True), "qty must be an integer, got boolean True"),
        (with_(MARKET, qty="10"), "qty must be an integer, got string '10'"),
        (with_(MARKET, qty=10**12 + 1), "qty 1000000000001 is too large, the limit is 1e+12"),
        (with_(MARKET, qty=10**400), "qty <1329-bit integer> is too large, the limit is 1e+12"),
        (with_(MARKET, ts=0), "ts must be > 0, got 0"),
        (with_(MARKET, ts="now"), "ts must be a number, got string"),
        (with_(MARKET, ts=True), "ts must be a number, got boolean"),
        (with_(MARKET, ts=float("nan")), "ts must be a finite number, got NaN"),
        (with_(MARKET, ts=float("inf")), "ts must be a finite number, got inf"),
        (
            with_(MARKET, ts=1.7e12),
            "ts 1700000000000.0 is too large, the limit is 1e+12 "
            "(ts is in seconds since the epoch, not milliseconds)",
        ),
        (without(LIMIT, "limit_price"), 'a limit order needs "limit_price"'),
        (
            with_(MARKET, limit_price=5.0),
            '"limit_price" is only for limit orders (this is a market order)',
        ),
        (with_(LIMIT, limit_price=0), "limit_price must be > 0, got 0"),
        (with_(LIMIT, limit_price=-1.5), "limit_price must be > 0, got -1.5"),
        (with_(LIMIT, limit_price=None), "limit_price must be a number, got null"),
        (with_(LIMIT, limit_price=float("-inf")), "limit_price must be a finite number, got -inf"),
        (
            with_(LIMIT, limit_price=2e12),
            "limit_price 2000000000000.0 is too large, the limit is 1e+12",
        ),
    ],
)
def test_rejections_name_the_field(fields: Any, reason: str) -> None:
    assert rejected(fields) == reason


def test_the_first_bad_field_in_schema_order_is_reported() -> None:
    assert rejected(with_(MARKET, qty=0, id="")) == "id is empty"
    assert rejected(with_(MARKET, extra=1, id=None)).startswith("unknown field 'extra'")


def test_decode_reads_a_json_order() -> None:
    payload = json.dumps(LIMIT).encode()
    assert decode_order(payload) == parse_order(LIMIT)
    assert decode_order(b" \n" + payload + b"\n") == parse_order(LIMIT)


def test_encode_is_compact_and_decodes_back_equal() -> None:
    order: Order = parse_order(LIMIT)
    payload = encode_order(order)
    assert b" " not in payload
    assert decode_order(payload) == order


def test_encode_refuses_nan() -> None:
    order = parse_order(MARKET)
    order["ts"] = float("nan")
    with pytest.raises(ValueError):
        encode_order(order)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"\xff{}", "payload is not valid UTF-8: invalid start byte at byte 0"),
        (
            b"{",
            "invalid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (b"hello", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        (b'{"ts": NaN}', "invalid JSON: NaN is not allowed (numbers must be finite)"),
        (b'{"ts": Infinity}', "invalid JSON: Infinity is not allowed (numbers must be finite)"),
        (b'{"ts": -Infinity}', "invalid JSON: -Infinity is not allowed (numbers must be finite)"),
        (b"[1]", "expected an order object, got array"),
        (b'"x"', "expected an order object, got string"),
        (b"null", "expected an order object, got null"),
        (b"{}", 'missing "id"'),
        (b"[" * 2000 + b"]" * 2000, "invalid JSON: nested too deeply"),
    ],
)
def test_decode_rejections(payload: bytes, reason: str) -> None:
    assert rejected_payload(payload) == reason


def test_decode_refuses_huge_payloads_unread() -> None:
    payload = b"{" + b" " * MAX_ORDER_BYTES + b"}"
    assert rejected_payload(payload) == (
        f"payload is {MAX_ORDER_BYTES + 2} bytes, larger than the limit of {MAX_ORDER_BYTES} bytes"
    )


def test_decode_refuses_what_is_not_bytes() -> None:
    assert rejected_payload("{}") == "payload must be bytes, got str"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [bytes([b]) for b in range(256)]
    + [b"{" * 100, b'{"id": "\\ud800"}', b"1e999999", b"[" + b"9" * 4000 + b"]", b"\x00\x01"],
)
def test_no_bytes_raise_anything_but_order_rejected(payload: bytes) -> None:
    with pytest.raises(OrderRejected):
        decode_order(payload)


def test_rejected_orders_have_their_own_topic_below_the_orders() -> None:
    assert rejected_orders_topic("momentum") == "orders/momentum/rejected"
    assert topic_matches("orders/+", orders_topic("momentum"))
    assert not topic_matches("orders/+", rejected_orders_topic("momentum"))
    with pytest.raises(ConfigError):
        rejected_orders_topic("a/b")


# -- fills and rejection notices -------------------------------------------------------


def test_decode_report_frames_one_object_and_nothing_else() -> None:
    assert decode_report(b'{"order_id": "a", "qty": 1}') == {"order_id": "a", "qty": 1}
    for payload, reason in [
        (b"", "empty payload"),
        (b"[1]", "expected an object, got array"),
        (b'{"a": NaN}', "NaN"),
        (b"x" * (MAX_ORDER_BYTES + 1), f"larger than the limit of {MAX_ORDER_BYTES} bytes"),
    ]:
        with pytest.raises(OrderRejected) as caught:
            decode_report(payload)
        assert reason in caught.value.reason


def test_a_rejection_notice_names_its_order() -> None:
    order = {"id": "o1", "sid": "GOOG"}
    notice = rejection_notice(order, "too big", by=REJECTED_BY_BRIDGE)
    assert notice == {"reason": "too big", "by": "bridge", "order": order}
    assert rejected_order_id(notice) == "o1"
    for unnamed in ({"order": "not json"}, {"order": {"id": 3}}, {}):
        with pytest.raises(OrderRejected, match="names no order id"):
            rejected_order_id(unnamed)
