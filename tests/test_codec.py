"""The quote codec: every accepted form in JSON and msgpack, and every rejection with its reason."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest

from broker import (
    MAX_PAYLOAD_BYTES,
    MAX_QUOTES_PER_PAYLOAD,
    Quote,
    decode_quotes,
    encode_quote_json,
    encode_quotes_msgpack,
    parse_quote,
    parse_symbols,
)
from tickbus.errors import ConfigError, QuoteRejected

NOW = 1_700_000_000.5


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def as_msgpack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


ENCODINGS = [pytest.param(as_json, id="json"), pytest.param(as_msgpack, id="msgpack")]
Encode = Callable[[Any], bytes]


class CountingClock:
    def __init__(self, value: float = NOW) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


def decode(payload: bytes) -> list[Quote]:
    return decode_quotes(payload, now=lambda: NOW)


def rejected(payload: bytes) -> str:
    with pytest.raises(QuoteRejected) as info:
        decode(payload)
    assert str(info.value) == info.value.reason
    return info.value.reason


# --- accepted forms -----------------------------------------------------------------


@pytest.mark.parametrize("encode", ENCODINGS)
class TestAcceptedForms:
    def test_full_quote(self, encode: Encode) -> None:
        payload = encode({"sid": "GOOG", "price": 345.1, "ts": 1732300000.12})
        assert decode(payload) == [{"sid": "GOOG", "price": 345.1, "ts": 1732300000.12}]

    def test_full_quote_with_optional_fields(self, encode: Encode) -> None:
        fields = {"sid": "GOOG", "price": 345.1, "ts": 5.0, "bid": 345.0, "ask": 345.2, "size": 100}
        assert decode(encode(fields)) == [{**fields, "size": 100.0}]

    def test_ints_become_floats(self, encode: Encode) -> None:
        [quote] = decode(encode({"sid": "A", "price": 3, "ts": 7, "bid": 2, "ask": 4, "size": 0}))
        assert quote == {"sid": "A", "price": 3.0, "ts": 7.0, "bid": 2.0, "ask": 4.0, "size": 0.0}
        assert all(type(quote[k]) is float for k in ("price", "ts", "bid", "ask", "size"))

    def test_full_quote_without_ts_is_stamped(self, encode: Encode) -> None:
        clock = CountingClock()
        assert decode_quotes(encode({"sid": "goog", "price": 1.5}), now=clock) == [
            {"sid": "GOOG", "price": 1.5, "ts": NOW}
        ]
        assert clock.calls == 1

    def test_ts_present_means_clock_unused(self, encode: Encode) -> None:
        clock = CountingClock()
        decode_quotes(
            encode([{"sid": "A", "price": 1, "ts": 2}, {"sid": "B", "price": 1, "ts": 3}]),
            now=clock,
        )
        assert clock.calls == 0

    def test_lower_case_symbol_is_upper_cased(self, encode: Encode) -> None:
        assert decode(encode({"sid": "brk.b", "price": 1, "ts": 1}))[0]["sid"] == "BRK.B"

    @pytest.mark.parametrize(
        "sid", ["BRK.B", "ES=F", "^GSPC", "EUR:USD", "BF-B", "A_B", "7203", "X" * 32]
    )
    def test_symbol_characters(self, encode: Encode, sid: str) -> None:
        assert decode(encode({"sid": sid, "price": 1, "ts": 1}))[0]["sid"] == sid

    def test_array_of_full_quotes(self, encode: Encode) -> None:
        clock = CountingClock()
        items = [
            {"sid": "a", "price": 1.0, "ts": 10.0},
            {"sid": "b", "price": 2.0},
            {"sid": "c", "price": 3.0, "bid": 2.5, "ask": 3.5},
        ]
        assert decode_quotes(encode(items), now=clock) == [
            {"sid": "A", "price": 1.0, "ts": 10.0},
            {"sid": "B", "price": 2.0, "ts": NOW},
            {"sid": "C", "price": 3.0, "ts": NOW, "bid": 2.5, "ask": 3.5},
        ]
        assert clock.calls == 1, "one stamp per payload"

    def test_short_form_one_symbol(self, encode: Encode) -> None:
        clock = CountingClock()
        assert decode_quotes(encode({"goog": 3.45}), now=clock) == [
            {"sid": "GOOG", "price": 3.45, "ts": NOW}
        ]
        assert clock.calls == 1

    def test_short_form_several_symbols_keep_order(self, encode: Encode) -> None:
        clock = CountingClock()
        quotes = decode_quotes(encode({"msft": 410, "GOOG": 345.1, "Aapl": 190.5}), now=clock)
        assert quotes == [
            {"sid": "MSFT", "price": 410.0, "ts": NOW},
            {"sid": "GOOG", "price": 345.1, "ts": NOW},
            {"sid": "AAPL", "price": 190.5, "ts": NOW},
        ]
        assert clock.calls == 1

    def test_short_form_upper_case_field_name_is_a_symbol(self, encode: Encode) -> None:
        assert decode(encode({"BID": 3}))[0] == {"sid": "BID", "price": 3.0, "ts": NOW}

    def test_bounds_are_inclusive_where_documented(self, encode: Encode) -> None:
        fields = {"sid": "A", "price": 1e12, "ts": 1e12, "bid": 2.0, "ask": 2.0, "size": 0}
        assert decode(encode(fields)) == [{**fields, "size": 0.0}]


def test_msgpack_map_not_in_array() -> None:
    assert decode(as_msgpack({"sid": "A", "price": 1})) == [{"sid": "A", "price": 1.0, "ts": NOW}]


def test_msgpack_float32() -> None:
    payload = msgpack.packb({"sid": "A", "price": 1.5, "ts": 2.0}, use_single_float=True)
    assert decode(payload) == [{"sid": "A", "price": 1.5, "ts": 2.0}]


@pytest.mark.parametrize(
    "payload",
    [b' {"GOOG": 1}', b'\n{"GOOG": 1}\n', b'{"GOOG": 1}\r\n', b'\t[{"sid":"goog","price":1}] '],
)
def test_json_with_surrounding_whitespace(payload: bytes) -> None:
    assert decode(payload) == [{"sid": "GOOG", "price": 1.0, "ts": NOW}]


def test_what_mqtt_pub_sends() -> None:
    assert decode(b'{"goog": 3.45}') == [{"sid": "GOOG", "price": 3.45, "ts": NOW}]


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_bytes_like_payloads(wrap: Callable[[bytes], Any]) -> None:
    assert decode_quotes(wrap(b'{"A": 1}'), now=lambda: NOW) == [
        {"sid": "A", "price": 1.0, "ts": NOW}
    ]


def test_result_is_fresh_and_typed() -> None:
    [quote] = decode(b'{"sid":"A","price":1,"ts":2}')
    assert type(quote) is dict and type(quote["price"]) is float and type(quote["ts"]) is float


# --- rejections -----------------------------------------------------------------------


def test_empty_payload() -> None:
    assert rejected(b"") == "empty payload"


def test_payload_over_the_limit() -> None:
    payload = b"[" + b" " * MAX_PAYLOAD_BYTES
    assert rejected(payload) == (
        f"payload is {MAX_PAYLOAD_BYTES + 1} bytes, "
        f"larger than the limit of {MAX_PAYLOAD_BYTES} bytes"
    )


def test_payload_at_the_limit_is_read() -> None:
    body = b'{"GOOG": 1}'
    assert decode(body + b" " * (MAX_PAYLOAD_BYTES - len(body)))[0]["sid"] == "GOOG"


def test_not_utf8() -> None:
    reason = rejected(b'{"sid": "GO\xffOG", "price": 1}')
    assert reason.startswith("payload is not valid UTF-8: invalid start byte at byte 11")


def test_invalid_json_includes_the_json_error() -> None:
    reason = rejected(b'{"sid": "A", "price": 1')
    assert reason.startswith("invalid JSON: Expecting ',' delimiter: line 1 column 24")


def test_json_extra_data() -> None:
    assert rejected(b'{"A": 1} {"B": 2}').startswith("invalid JSON: Extra data")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite_literals_are_refused(literal: str) -> None:
    reason = rejected(f'{{"sid": "A", "price": {literal}}}'.encode())
    assert reason == f"invalid JSON: {literal} is not allowed (numbers must be finite)"


def test_json_literal_inside_short_form() -> None:
    assert rejected(b'{"GOOG": NaN}').startswith("invalid JSON: NaN is not allowed")


def test_json_overflowing_float() -> None:
    assert rejected(b'{"sid": "A", "price": 1e400}') == "price must be a finite number, got inf"


def test_json_integer_with_too_many_digits() -> None:
    reason = rejected(b'{"sid": "A", "price": ' + b"9" * 5000 + b"}")
    assert reason.startswith("invalid JSON: a number is too long")


@pytest.mark.parametrize(
    ("value", "shown"), [(math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "-inf")]
)
@pytest.mark.parametrize("field", ["price", "ts", "bid", "ask", "size"])
def test_msgpack_non_finite_floats(field: str, value: float, shown: str) -> None:
    fields: dict[str, Any] = {"sid": "A", "price": 1.0, field: value}
    assert rejected(as_msgpack(fields)) == f"{field} must be a finite number, got {shown}"


def test_msgpack_non_finite_in_short_form() -> None:
    assert rejected(as_msgpack({"A": math.nan})) == "A: price must be a finite number, got NaN"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\xc1", "invalid msgpack: reserved format byte"),
        (b"\x82\xa3sid", "invalid msgpack: Unpack failed: incomplete input"),
        (as_msgpack({"A": 1}) + b"\x01", "invalid msgpack: extra bytes after the first value"),
        (b"\x91" * 100_000, "invalid msgpack: nested too deeply"),
        (b"\x81\x01\x01", "invalid msgpack: int is not allowed for map key"),
        (b"\x81\xa2\xff\xfe\x01", "invalid msgpack: a string is not valid UTF-8"),
    ],
)
def test_invalid_msgpack(payload: bytes, expected: str) -> None:
    assert rejected(payload).startswith(expected)


@pytest.mark.parametrize("payload", [b"345.1", b'"GOOG"', b"GOOG 345.1"])
def test_text_that_is_not_json_gets_a_hint(payload: bytes) -> None:
    reason = rejected(payload)
    assert reason.startswith("invalid msgpack:")
    assert f"starts with {chr(payload[0])!r}, so it was read as msgpack" in reason


def test_utf8_bom() -> None:
    assert rejected(b'\xef\xbb\xbf{"A": 1}') == (
        "payload starts with a UTF-8 byte order mark; send JSON without it"
    )


@pytest.mark.parametrize("payload", [b"[" * 200_000, b'{"a":' * 150_000, b"[" * 1000 + b"]" * 1000])
def test_deep_json_nesting_is_rejected_cleanly(payload: bytes) -> None:
    reason = rejected(payload)
    assert reason in ("invalid JSON: nested too deeply", "item 0 is not an object (got array)")


def test_deep_json_after_a_rejection_still_works() -> None:
    rejected(b"[" * 200_000)
    assert decode(b'{"A": 1}')[0]["sid"] == "A"


@pytest.mark.parametrize("encode", ENCODINGS)
class TestFieldRejections:
    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            (
                {"price": 1},
                'a full quote needs "sid" (got price); the short form is {"SYMBOL": price}',
            ),
            ({"sid": "A"}, 'missing "price"'),
            ({"sid": "A", "price": 0}, "price must be > 0, got 0"),
            ({"sid": "A", "price": -1.5}, "price must be > 0, got -1.5"),
            (
                {"sid": "A", "price": 1e13},
                "price 10000000000000.0 is too large, the limit is 1e+12",
            ),
            ({"sid": "A", "price": -1e13}, "price must be > 0, got -10000000000000.0"),
            (
                {"sid": "A", "price": 10**15},
                "price 1000000000000000 is too large, the limit is 1e+12",
            ),
            ({"sid": "A", "price": 1, "bid": 0}, "bid must be > 0, got 0"),
            ({"sid": "A", "price": 1, "ask": -2.0}, "ask must be > 0, got -2.0"),
            ({"sid": "A", "price": 1, "bid": 3, "ask": 2}, "bid 3.0 is above ask 2.0"),
            ({"sid": "A", "price": 1, "size": -1}, "size must be >= 0, got -1"),
            (
                {"sid": "A", "price": 1, "size": 2e12},
                "size 2000000000000.0 is too large, the limit is 1e+12",
            ),
            ({"sid": "A", "price": 1, "ts": 0}, "ts must be > 0, got 0"),
            ({"sid": "A", "price": 1, "ts": -5.0}, "ts must be > 0, got -5.0"),
            (
                {"sid": "A", "price": 1, "ts": 1732300000120},
                "ts 1732300000120 is too large, the limit is 1e+12 "
                "(ts is in seconds since the epoch, not milliseconds)",
            ),
            ({"sid": 7, "price": 1}, "sid must be a string, got number"),
            ({"sid": None, "price": 1}, "sid must be a string, got null"),
            ({"sid": ["A"], "price": 1}, "sid must be a string, got array"),
            ({"sid": "", "price": 1}, "sid is empty"),
            ({"sid": "X" * 33, "price": 1}, "sid is 33 characters long, the limit is 32"),
            (
                {"sid": "GO OG", "price": 1},
                "sid 'GO OG' has characters outside A-Z 0-9 . - _ : ^ =",
            ),
            ({"sid": "A/B", "price": 1}, "sid 'A/B' has characters outside A-Z 0-9 . - _ : ^ ="),
            ({"sid": "A+", "price": 1}, "sid 'A+' has characters outside A-Z 0-9 . - _ : ^ ="),
            (
                {"sid": "\ufb01", "price": 1},
                "sid '\ufb01' has characters outside A-Z 0-9 . - _ : ^ =",
            ),
            (
                {"sid": "\u0131", "price": 1},
                "sid '\u0131' has characters outside A-Z 0-9 . - _ : ^ =",
            ),
            ({"sid": "A", "price": "3"}, "price must be a number, got string"),
            ({"sid": "A", "price": [3]}, "price must be a number, got array"),
            ({"sid": "A", "price": {"v": 3}}, "price must be a number, got object"),
            ({"sid": "A", "price": None}, "price must be a number, got null"),
            ({"sid": "A", "price": True}, "price must be a number, got boolean"),
            ({"sid": "A", "price": 1, "ts": "now"}, "ts must be a number, got string"),
            ({"sid": "A", "price": 1, "ts": None}, "ts must be a number, got null"),
            ({"sid": "A", "price": 1, "size": False}, "size must be a number, got boolean"),
            (
                {"sid": "A", "price": 1, "venue": "X"},
                "unknown field 'venue' (allowed: sid, price, ts, bid, ask, size)",
            ),
            (
                {"sid": "A", "price": 1, "b": 1, "a": 2},
                "unknown fields 'b', 'a' (allowed: sid, price, ts, bid, ask, size)",
            ),
            (
                {"sid": "A", "price": 1, **{f"f{i}": i for i in range(7)}},
                "unknown fields 'f0', 'f1', 'f2', 'f3', 'f4' and 2 more "
                "(allowed: sid, price, ts, bid, ask, size)",
            ),
            (
                {"sid": "A", "PRICE": 1},
                "unknown field 'PRICE' (allowed: sid, price, ts, bid, ask, size)",
            ),
        ],
    )
    def test_full_quote(self, encode: Encode, fields: dict[str, Any], reason: str) -> None:
        assert rejected(encode(fields)) == reason

    @pytest.mark.parametrize(
        ("pairs", "reason"),
        [
            (
                {"ts": 1, "price": 2},
                'a full quote needs "sid" (got price, ts); the short form is {"SYMBOL": price}',
            ),
            (
                {"GOOG": 1, "size": 2},
                'a full quote needs "sid" (got size); the short form is {"SYMBOL": price}',
            ),
            ({"GOOG": "3"}, "GOOG: price must be a number, got string"),
            ({"GOOG": None}, "GOOG: price must be a number, got null"),
            ({"goog": 0}, "GOOG: price must be > 0, got 0"),
            ({"GOOG": 2e12}, "GOOG: price 2000000000000.0 is too large, the limit is 1e+12"),
            ({"A": 1, "GO OG": 2}, "symbol 'GO OG' has characters outside A-Z 0-9 . - _ : ^ ="),
            ({"": 2}, "symbol is empty"),
            ({"Y" * 40: 2}, "symbol is 40 characters long, the limit is 32"),
            ({}, 'empty object: expected {"sid": ..., "price": ...} or {"SYMBOL": price}'),
        ],
    )
    def test_short_form(self, encode: Encode, pairs: dict[str, Any], reason: str) -> None:
        assert rejected(encode(pairs)) == reason

    @pytest.mark.parametrize(
        ("items", "reason"),
        [
            ([], "empty array: expected at least one quote"),
            ([1], "item 0 is not an object (got number)"),
            ([{"sid": "A", "price": 1}, "B"], "item 1 is not an object (got string)"),
            (
                [{"sid": "A", "price": 1}, [{"sid": "B", "price": 1}]],
                "item 1 is not an object (got array)",
            ),
            ([{"sid": "A", "price": 1}, None], "item 1 is not an object (got null)"),
            ([{"GOOG": 1}], 'item 0: missing "sid" (array items must be full quotes)'),
            (
                [{"sid": "A", "price": 1}, {"sid": "B", "price": -1}],
                "item 1: price must be > 0, got -1",
            ),
            ([{"sid": "A", "price": 1}, {"sid": "B"}], 'item 1: missing "price"'),
            (
                [{"sid": "A", "price": 1}, {"sid": "B", "price": 1, "x": 1}],
                "item 1: unknown field 'x' (allowed: sid, price, ts, bid, ask, size)",
            ),
            (
                [{"sid": "A", "price": 1, "bid": 5, "ask": 4}, {"sid": "B"}],
                "item 0: bid 5.0 is above ask 4.0",
            ),
        ],
    )
    def test_array(self, encode: Encode, items: list[Any], reason: str) -> None:
        assert rejected(encode(items)) == reason

    @pytest.mark.parametrize(
        ("value", "kind"), [(3, "number"), ("GOOG", "string"), (None, "null"), (True, "boolean")]
    )
    def test_top_level_scalar(self, encode: Encode, value: Any, kind: str) -> None:
        payload = b" " + encode(value) if encode is as_json else encode(value)
        assert rejected(payload) == f"expected a quote object or an array of quotes, got {kind}"


def test_one_bad_item_rejects_the_whole_array() -> None:
    good = [{"sid": f"S{i}", "price": 1.0 + i, "ts": 1.0} for i in range(50)]
    payload = as_json([*good, {"sid": "BAD", "price": 0}, *good])
    assert rejected(payload) == "item 50: price must be > 0, got 0"


def test_too_many_quotes_in_an_array() -> None:
    payload = b"[" + b",".join([b"{}"] * (MAX_QUOTES_PER_PAYLOAD + 1)) + b"]"
    assert rejected(payload) == (
        f"too many quotes: {MAX_QUOTES_PER_PAYLOAD + 1} in one payload, "
        f"the limit is {MAX_QUOTES_PER_PAYLOAD}"
    )


def test_too_many_quotes_in_a_short_form() -> None:
    payload = as_msgpack({f"S{i}": 1 for i in range(MAX_QUOTES_PER_PAYLOAD + 1)})
    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert rejected(payload) == (
        f"too many quotes: {MAX_QUOTES_PER_PAYLOAD + 1} in one payload, "
        f"the limit is {MAX_QUOTES_PER_PAYLOAD}"
    )


def test_the_quote_limit_itself_is_accepted() -> None:
    payload = as_msgpack({f"S{i}": 1 for i in range(MAX_QUOTES_PER_PAYLOAD)})
    assert len(decode(payload)) == MAX_QUOTES_PER_PAYLOAD


def test_msgpack_bytes_values_and_keys() -> None:
    assert rejected(as_msgpack({"sid": b"GOOG", "price": 1})) == "sid must be a string, got bytes"
    assert rejected(as_msgpack({b"GOOG": 1})) == "symbol must be a string, got bytes"


def test_msgpack_ext_and_timestamp_values() -> None:
    ext = as_msgpack({"sid": "A", "price": msgpack.ExtType(5, b"x")})
    assert rejected(ext) == "price must be a number, got ExtType"
    stamp = as_msgpack({"sid": "A", "price": 1, "ts": msgpack.Timestamp(1, 0)})
    assert rejected(stamp) == "ts must be a number, got Timestamp"


def test_payload_must_be_bytes() -> None:
    with pytest.raises(QuoteRejected, match="payload must be bytes, got str"):
        decode_quotes('{"A": 1}', now=lambda: NOW)  # type: ignore[arg-type]


def test_huge_values_are_not_echoed_in_full() -> None:
    reason = rejected(as_json({"sid": "A", "price": 1, "x" * 10_000: 1}))
    assert len(reason) < 200
    reason = rejected(b'{"sid": "A", "price": 1' + b"0" * 4000 + b"}")
    assert "is too large" in reason and len(reason) < 200


# --- nothing but QuoteRejected escapes -----------------------------------------------------


def _check_valid(quotes: list[Quote]) -> None:
    assert quotes
    for quote in quotes:
        assert set(quote) <= {"sid", "price", "ts", "bid", "ask", "size"}
        assert quote["sid"].isupper() or not quote["sid"].isalpha()
        for key in ("price", "ts", "bid", "ask", "size"):
            if key in quote:
                value = quote[key]
                assert type(value) is float and math.isfinite(value)


SEEDS = [
    as_json([{"sid": "goog", "price": 345.1, "ts": 1732300000.12, "bid": 1, "ask": 2, "size": 3}]),
    as_json({"GOOG": 3.45, "AAPL": 190}),
    as_msgpack([{"sid": "goog", "price": 345.1, "ts": 1732300000.12, "bid": 1, "ask": 2}]),
    as_msgpack({"GOOG": 3.45, "AAPL": 190}),
    as_msgpack({"sid": "A", "price": 2.5}),
]


def test_fuzz_mutations_only_ever_raise_quote_rejected() -> None:
    rng = random.Random(20241123)
    outcomes = {"accepted": 0, "rejected": 0}
    for _ in range(30_000):
        data = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and pos < len(data):
                data[pos] = rng.randrange(256)
            elif op == 1:
                data.insert(pos, rng.randrange(256))
            elif pos < len(data):
                del data[pos]
        try:
            _check_valid(decode(bytes(data)))
            outcomes["accepted"] += 1
        except QuoteRejected:
            outcomes["rejected"] += 1
    assert outcomes["accepted"] > 100 and outcomes["rejected"] > 10_000


def test_fuzz_random_bytes_only_ever_raise_quote_rejected() -> None:
    rng = random.Random(7)
    rejections = 0
    for _ in range(20_000):
        payload = rng.randbytes(rng.randint(1, 40))
        try:
            _check_valid(decode(payload))
        except QuoteRejected:
            rejections += 1
    assert rejections > 19_000


@pytest.mark.parametrize(
    "value",
    [
        {"sid": {"nested": [1, 2]}, "price": 1},
        {"sid": "A", "price": {"a": [[[]]]}},
        [[[[[]]]]],
        {"A": [1]},
        {"A": {"B": 1}},
        [{"sid": "A", "price": 1, "ts": 1, "bid": [], "ask": {}}],
        {"sid": "A", "price": 1, "bid": 2.0},
        {"sid": "A", "price": 1, "ask": 2.0},
    ],
)
@pytest.mark.parametrize("encode", ENCODINGS)
def test_odd_shapes(encode: Encode, value: Any) -> None:
    try:
        _check_valid(decode(encode(value)))
    except QuoteRejected as exc:
        assert exc.reason


# --- parse_quote -----------------------------------------------------------------------


def test_parse_quote_full_form() -> None:
    fields = {"sid": "goog", "price": 1, "ts": 2, "bid": 0.5, "ask": 1.5, "size": 10}
    assert parse_quote(fields) == {
        "sid": "GOOG",
        "price": 1.0,
        "ts": 2.0,
        "bid": 0.5,
        "ask": 1.5,
        "size": 10.0,
    }


def test_parse_quote_stamps_once() -> None:
    clock = CountingClock(42.0)
    assert parse_quote({"sid": "A", "price": 1}, now=clock) == {
        "sid": "A",
        "price": 1.0,
        "ts": 42.0,
    }
    assert clock.calls == 1


def test_parse_quote_accepts_numpy_scalars() -> None:
    quote = parse_quote({"sid": np.str_("msft"), "price": np.float64(2.5), "ts": np.float32(3.0)})
    assert quote == {"sid": "MSFT", "price": 2.5, "ts": 3.0}
    assert (
        type(quote["sid"]) is str and type(quote["price"]) is float and type(quote["ts"]) is float
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"sid": "A", "price": "1.5"}, "price must be a number, got string"),
        ({"sid": "A", "price": np.float64("nan")}, "price must be a finite number, got NaN"),
        ({"sid": "A", "price": np.bool_(True)}, "price must be a number, got bool"),
        ({"sid": "A"}, 'missing "price"'),
        ({"price": 1}, 'missing "sid"'),
        ({"sid": "A", "price": 1, "bid": ""}, "bid must be a number, got string"),
        (
            {"sid": "A", "price": 1, "note": ""},
            "unknown field 'note' (allowed: sid, price, ts, bid, ask, size)",
        ),
    ],
)
def test_parse_quote_rejections(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(QuoteRejected) as info:
        parse_quote(fields)
    assert info.value.reason == reason


def test_parse_quote_needs_a_mapping() -> None:
    with pytest.raises(QuoteRejected, match="a quote must be a mapping, got array"):
        parse_quote([("sid", "A")])  # type: ignore[arg-type]


# --- encoders --------------------------------------------------------------------------


def random_quote(rng: random.Random) -> Quote:
    quote: Quote = {
        "sid": rng.choice(["GOOG", "BRK.B", "ES=F", "^GSPC", "X" * 32]),
        "price": rng.choice([rng.uniform(1e-9, 1e12), 0.1, 345.1, 1e12, 5e-324]),
        "ts": rng.uniform(1.0, 2e9),
    }
    if rng.random() < 0.5:
        quote["bid"] = quote["price"]
        quote["ask"] = quote["price"] * 1.0001 if quote["price"] < 9e11 else quote["price"]
    if rng.random() < 0.5:
        quote["size"] = rng.choice([0.0, 1.0, rng.uniform(0, 1e6)])
    return quote


def test_json_round_trip_is_exact() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        quote = random_quote(rng)
        assert decode(encode_quote_json(quote)) == [quote]


def test_msgpack_round_trip_is_exact() -> None:
    rng = random.Random(2)
    for _ in range(300):
        quotes = [random_quote(rng) for _ in range(rng.randint(1, 20))]
        assert decode(encode_quotes_msgpack(quotes)) == quotes
        assert decode(encode_quotes_msgpack(tuple(quotes))) == quotes


def test_json_encoding_is_compact() -> None:
    quote: Quote = {"sid": "GOOG", "price": 345.1, "ts": 1732300000.12}
    assert encode_quote_json(quote) == b'{"sid":"GOOG","price":345.1,"ts":1732300000.12}'


def test_msgpack_encoding_is_an_array_of_maps() -> None:
    quote: Quote = {"sid": "A", "price": 1.0, "ts": 2.0}
    assert msgpack.unpackb(encode_quotes_msgpack([quote])) == [quote]
    assert encode_quotes_msgpack([quote])[0] == 0x91


def test_encoders_refuse_what_would_not_decode() -> None:
    with pytest.raises(ValueError):
        encode_quote_json({"sid": "A", "price": math.nan, "ts": 1.0})
    with pytest.raises(ValueError, match="empty"):
        encode_quotes_msgpack([])


def test_parse_quote_numbers_beyond_float_range() -> None:
    from fractions import Fraction

    with pytest.raises(QuoteRejected) as info:
        parse_quote({"sid": "A", "price": Fraction(10**400)})
    assert info.value.reason.endswith("is too large, the limit is 1e+12")
    assert parse_quote({"sid": "A", "price": Fraction(1, 4), "ts": np.int64(5)})["price"] == 0.25


def test_parse_symbols_upper_cases_and_keeps_order() -> None:
    assert parse_symbols(" goog, AAPL ,brk.b,") == ("GOOG", "AAPL", "BRK.B")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (" , ", "--symbols needs at least one symbol"),
        ("GOOG,go/og", "--symbols: "),
        ("GOOG,AAPL,goog", "--symbols names a symbol twice: GOOG,AAPL,goog"),
        ("X" * 33, "--symbols: "),
    ],
)
def test_parse_symbols_refuses_what_no_quote_could_carry(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_symbols(text)
    assert refused.value.reason.startswith(reason)
