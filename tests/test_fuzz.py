"""Hostile input: the quote codec under hypothesis, and a real bridge fed 10,000 bad payloads.

Whatever the bytes, `decode_quotes` returns quotes that keep the `Quote`
contract or raises `QuoteRejected` with a reason, and nothing else. On
JSON and msgpack values it agrees with `expected_quotes`: the contract of
DESIGN.md written out plainly, independently of the codec's own code.

Unknown fields: DESIGN.md lists the fields of a full quote (``sid``,
``price``, ``ts``, ``bid``, ``ask``, ``size``) and says anything else is
rejected. The codec reads that strictly: a full quote with any other key
(``venue``, a typo such as ``prcie``, another case such as ``Price``) is
rejected with a reason naming the key, never dropped silently.
`test_an_unknown_field_is_rejected_by_name` pins that down.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from broker import MAX_PAYLOAD_BYTES, Quote, decode_quotes
from tests.support import Processes, free_port, recorder, start_bridge, unique, wait_until
from tickbus.errors import QuoteRejected

NOW = 1_700_000_000.5
FIELDS = ("sid", "price", "ts", "bid", "ask", "size")
NUMBER_FIELDS = FIELDS[1:]
MAX_NUMBER = 1e12
SYMBOL = re.compile(r"[A-Z0-9._:^=-]{1,32}")


def decode(payload: bytes) -> list[Quote]:
    return decode_quotes(payload, now=lambda: NOW)


def outcome(payload: bytes) -> list[Quote] | None:
    """The payload's quotes, checked against the contract; None if it was rejected.

    Any exception but `QuoteRejected` fails the test where it is raised.
    """
    try:
        quotes = decode(payload)
    except QuoteRejected as exc:
        assert type(exc.reason) is str and exc.reason and str(exc) == exc.reason
        return None
    assert_valid(quotes)
    return quotes


def assert_valid(quotes: list[Quote]) -> None:
    """Every quote keeps the `Quote` contract (broker/_codec.py)."""
    assert type(quotes) is list and quotes
    for quote in quotes:
        assert type(quote) is dict
        assert {"sid", "price", "ts"} <= quote.keys() <= set(FIELDS), quote
        assert type(quote["sid"]) is str and SYMBOL.fullmatch(quote["sid"]), quote
        for name in NUMBER_FIELDS:
            if name in quote:
                value = quote[name]  # type: ignore[literal-required]
                assert type(value) is float and math.isfinite(value), quote
                low_ok = value >= 0 if name == "size" else value > 0
                assert low_ok and value <= MAX_NUMBER, quote
        if "bid" in quote and "ask" in quote:
            assert quote["bid"] <= quote["ask"], quote


# --- the contract, written out plainly -------------------------------------------------------


def expected_quotes(value: Any) -> list[Quote] | None:
    """What DESIGN.md's contract says a decoded JSON/msgpack `value` gives; None: rejected."""
    if isinstance(value, dict) and "sid" in value:
        quote = expected_full(value)
        return None if quote is None else [quote]
    if isinstance(value, dict):  # the short form {"SYMBOL": price, ...}
        if not value or any(key in FIELDS for key in value):
            return None
        quotes = [expected_full({"sid": key, "price": price}) for key, price in value.items()]
    elif isinstance(value, list | tuple) and value:
        quotes = [
            expected_full(item) if isinstance(item, dict) and "sid" in item else None
            for item in value
        ]
    else:
        return None
    return None if any(quote is None for quote in quotes) else quotes  # type: ignore[return-value]


def expected_full(fields: dict[Any, Any]) -> Quote | None:
    """One full quote: known keys only, an ASCII symbol, numbers in range, bid <= ask."""
    if not fields.keys() <= set(FIELDS) or "price" not in fields:
        return None
    sid = fields["sid"]
    if not (isinstance(sid, str) and sid.isascii() and SYMBOL.fullmatch(sid.upper())):
        return None
    quote: dict[str, Any] = {"sid": sid.upper(), "ts": NOW}
    for name in NUMBER_FIELDS:
        if name not in fields:
            continue
        number = fields[name]
        if isinstance(number, bool) or not isinstance(number, int | float):
            return None
        in_range = 0 <= number <= MAX_NUMBER if name == "size" else 0 < number <= MAX_NUMBER
        if not in_range:  # also NaN and infinities
            return None
        quote[name] = float(number)
    if "bid" in quote and "ask" in quote and quote["bid"] > quote["ask"]:
        return None
    return quote  # type: ignore[return-value]


# --- strategies ----------------------------------------------------------------------------

TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=12)
"""Any string, lone surrogates included."""

GOOD_SYMBOLS = st.from_regex(r"[A-Za-z0-9._:^=-]{1,32}", fullmatch=True)
SYMBOLS = st.one_of(
    GOOD_SYMBOLS,
    GOOD_SYMBOLS,
    GOOD_SYMBOLS,
    st.sampled_from(["", "GO OG", "A/B", "\ufb01", "\u0131", "\u212a", "\ud800", "X" * 33]),
    TEXT,
)
"""Mostly valid symbols (any case); else empty, too long, or with characters outside the set."""
VALID_NUMBERS = st.floats(min_value=1e-9, max_value=MAX_NUMBER) | st.integers(1, 10**12)
EDGE_NUMBERS = st.sampled_from(
    [0, 0.0, -0.0, -1, 5e-324, 1e12, 10**12, 10**12 + 1, 1e12 + 1e-3, 2**63 - 1, 2**64 - 1]
)
"""Numbers at and just past the bounds; the non-finite ones and bools come from `ODD_NUMBERS`."""
ODD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, True, False, 1732300000120])
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), TEXT, st.integers(-(10**600), 10**600)
)
MSGPACK_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    TEXT,
    st.binary(max_size=12),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    st.builds(msgpack.Timestamp, st.integers(0, 2**34 - 1), st.integers(0, 999_999_999)),
)
MSGPACK_KEYS = TEXT | st.binary(max_size=6) | st.integers(-5, 5) | st.none() | st.floats()


def nested(scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Arbitrary lists and dicts of `scalars`."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=16,
    )


def number_like(other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid numbers, else edge cases and values of other types."""
    return st.one_of(*[VALID_NUMBERS] * 6, EDGE_NUMBERS, ODD_NUMBERS, other)


@st.composite
def full_quotes(draw: st.DrawFn, other: st.SearchStrategy[Any]) -> dict[Any, Any]:
    """A full quote, mostly well-formed: fields may be missing, wrong, or unknown."""
    fields: dict[Any, Any] = {}
    if draw(st.integers(0, 15)):
        fields["sid"] = draw(st.one_of(SYMBOLS, SYMBOLS, SYMBOLS, other))
    if draw(st.integers(0, 15)):
        fields["price"] = draw(number_like(other))
    for name in ("ts", "bid", "ask", "size"):
        if not draw(st.integers(0, 2)):
            fields[name] = draw(number_like(other))
    if not draw(st.integers(0, 7)):
        fields[draw(st.sampled_from(["venue", "Price", "prcie", "sid "]) | TEXT)] = draw(other)
    return fields


def quote_shaped(other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The three forms of DESIGN.md, with `other` where a wrong value goes."""
    one = full_quotes(other)
    return st.one_of(
        one,
        st.lists(st.one_of(one, one, one, other), max_size=4),
        st.dictionaries(SYMBOLS, number_like(other), max_size=4),
    )


def values(scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly quote-shaped values (a fair share valid), else anything nested."""
    anything = nested(scalars, keys)
    shaped = quote_shaped(anything)
    return st.one_of(shaped, shaped, shaped, anything)


@st.composite
def valid_quotes(draw: st.DrawFn) -> dict[str, Any]:
    """A full quote that keeps every rule; numbers as ints or floats."""
    quote: dict[str, Any] = {"sid": draw(GOOD_SYMBOLS), "price": draw(VALID_NUMBERS)}
    if draw(st.booleans()):
        quote["ts"] = draw(VALID_NUMBERS)
    if draw(st.booleans()):
        quote["bid"], quote["ask"] = sorted([draw(VALID_NUMBERS), draw(VALID_NUMBERS)])
    if draw(st.booleans()):
        quote["size"] = draw(VALID_NUMBERS | st.sampled_from([0, 0.0]))
    return quote


VALID_VALUES = st.one_of(
    valid_quotes(),
    st.lists(valid_quotes(), min_size=1, max_size=5),
    st.dictionaries(GOOD_SYMBOLS.filter(lambda s: s not in FIELDS), VALID_NUMBERS, min_size=1),
)
"""Payload values that must be accepted, in each of the three forms."""
JSON_VALUES = values(JSON_SCALARS, TEXT)
MSGPACK_VALUES = values(MSGPACK_SCALARS, MSGPACK_KEYS)


def as_json(value: Any, *, ascii_only: bool = True, indent: str = "") -> bytes:
    """JSON as a person or a library writes it: NaN/Infinity literals for non-finite
    floats, and lone surrogates either escaped or raw (which is not valid UTF-8)."""
    text = indent + json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def as_msgpack(value: Any, **options: Any) -> bytes:
    """msgpack; strings with lone surrogates become invalid UTF-8."""
    return msgpack.packb(value, unicode_errors="surrogatepass", **options)


def packable(value: Any, **options: Any) -> bytes:
    """`as_msgpack`, skipping the example if msgpack has no encoding for it.

    msgpack has no encoding for ints outside int64/uint64, and with
    ``use_single_float`` none for floats beyond float32's range.
    """
    try:
        return as_msgpack(value, **options)
    except OverflowError:
        assume(False)
        raise  # not reached: assume(False) raises


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=1500, deadline=None)
@given(
    st.tuples(
        st.sampled_from([b"", b"{", b"[", b" ", b"\x91", b"\x81", b"\x92\x81"]),
        st.binary(max_size=200),
    ).map(b"".join)
)
def test_arbitrary_bytes(payload: bytes) -> None:
    outcome(payload)


@settings(max_examples=400, deadline=None)
@given(VALID_VALUES, st.booleans())
def test_valid_payloads_decode_to_exactly_their_quotes(value: Any, binary: bool) -> None:
    quotes = outcome(as_msgpack(value) if binary else as_json(value))
    assert quotes is not None and quotes == expected_quotes(value)


@settings(max_examples=800, deadline=None)
@given(JSON_VALUES, st.booleans(), st.sampled_from(["", " ", "\n\t"]))
def test_json_decodes_as_the_contract_says(value: Any, ascii_only: bool, indent: str) -> None:
    payload = as_json(value, ascii_only=ascii_only, indent=indent)
    assert outcome(payload) == expected_quotes(value)


@settings(max_examples=800, deadline=None)
@given(MSGPACK_VALUES)
def test_msgpack_decodes_as_the_contract_says(value: Any) -> None:
    assert outcome(as_msgpack(value, use_bin_type=True)) == expected_quotes(value)


@settings(max_examples=400, deadline=None)
@given(MSGPACK_VALUES, st.booleans(), st.booleans())
def test_msgpack_in_any_encoding_gives_valid_quotes_or_a_reason(
    value: Any, single_float: bool, bin_type: bool
) -> None:
    """float32 numbers, and bytes sent as (possibly non-UTF-8) strings by old packers."""
    outcome(packable(value, use_single_float=single_float, use_bin_type=bin_type))


@settings(max_examples=600, deadline=None)
@given(
    st.lists(full_quotes(JSON_SCALARS), min_size=1, max_size=3),
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
)
def test_mutated_payloads_give_valid_quotes_or_a_reason(
    items: list[dict[Any, Any]], binary: bool, edits: list[tuple[int, int, int]]
) -> None:
    data = bytearray(packable(items) if binary else as_json(items))
    for op, where, byte in edits:
        pos = where % (len(data) + 1)
        if op == 0 and pos < len(data):
            data[pos] = byte
        elif op == 1:
            data.insert(pos, byte)
        elif pos < len(data):
            del data[pos]
    outcome(bytes(data))


@settings(max_examples=300, deadline=None)
@given(
    full_quotes(JSON_SCALARS),
    st.text(max_size=12).filter(lambda key: key not in FIELDS),
    st.integers(0, 2),
    st.booleans(),
)
def test_an_unknown_field_is_rejected_by_name(
    fields: dict[Any, Any], key: str, index: int, binary: bool
) -> None:
    item = {"sid": "A", "price": 1.0, **fields, key: 1}
    items = [{"sid": "OK", "price": 1.0}] * index + [item]
    try:
        payload = msgpack.packb(items) if binary else json.dumps(items, allow_nan=False).encode()
    except (ValueError, OverflowError):  # no JSON for NaN, no msgpack for 10**600 or "\ud800"
        assume(False)
    first = next(k for k in item if k not in FIELDS)
    shown = repr(first) if len(repr(first)) <= 40 else repr(first)[:37] + "..."
    reason = rejection_reason(payload)
    assert re.match(rf"item {index}: unknown fields? {re.escape(shown)}", reason), reason
    assert reason.endswith("(allowed: sid, price, ts, bid, ask, size)")


# --- each kind of hostile input, with its reason ------------------------------------------------

DEEP = 100_000

OVERSIZED = as_msgpack({"sid": "A", "price": 1, "pad": b"x" * (MAX_PAYLOAD_BYTES - 22)})

HOSTILE: list[tuple[str, bytes, str]] = [
    (
        "oversized",
        b"[" + b" " * MAX_PAYLOAD_BYTES,
        f"payload is {MAX_PAYLOAD_BYTES + 1} bytes, larger than the limit of "
        f"{MAX_PAYLOAD_BYTES} bytes",
    ),
    (
        "oversized msgpack",
        OVERSIZED,
        f"payload is {len(OVERSIZED)} bytes, larger than the limit of {MAX_PAYLOAD_BYTES} bytes",
    ),
    ("deep JSON", b'{"sid": "A", "price": ' + b"[" * DEEP, "invalid JSON: nested too deeply"),
    (
        "deep msgpack",
        b"\x82\xa3sid\xa1A\xa5price" + b"\x91" * DEEP + b"\x01",
        "invalid msgpack: nested too deeply",
    ),
    (
        "nested JSON in a field",
        as_json({"sid": "A", "price": 1, "bid": json.loads("[" * 500 + "]" * 500)}),
        "bid must be a number, got array",
    ),
    (
        "NaN literal",
        b'{"sid": "A", "price": NaN}',
        "invalid JSON: NaN is not allowed (numbers must be finite)",
    ),
    (
        "-Infinity literal",
        b'[{"sid": "A", "price": 1, "ts": -Infinity}]',
        "invalid JSON: -Infinity is not allowed (numbers must be finite)",
    ),
    (
        "JSON overflow to inf",
        b'{"sid": "A", "price": 1e999}',
        "price must be a finite number, got inf",
    ),
    (
        "msgpack NaN",
        as_msgpack({"sid": "A", "price": 1, "ask": math.nan}),
        "ask must be a finite number, got NaN",
    ),
    (
        "float32 inf",
        as_msgpack({"sid": "A", "price": math.inf}, use_single_float=True),
        "price must be a finite number, got inf",
    ),
    (
        "huge JSON int",
        b'{"sid": "A", "price": 1' + b"0" * 400 + b"}",
        "price <1329-bit integer> is too large, the limit is 1e+12",
    ),
    (
        "JSON int beyond Python's digit limit",
        b'{"sid": "A", "price": ' + b"9" * 5000 + b"}",
        "invalid JSON: a number is too long (Exceeds the limit (4300 digits)",
    ),
    (
        "uint64 max",
        as_msgpack({"sid": "A", "price": 2**64 - 1}),
        "price 18446744073709551615 is too large, the limit is 1e+12",
    ),
    (
        "milliseconds",
        as_json({"sid": "A", "price": 1, "ts": 1732300000120}),
        "ts 1732300000120 is too large, the limit is 1e+12 "
        "(ts is in seconds since the epoch, not milliseconds)",
    ),
    (
        "unknown field",
        as_json({"sid": "A", "price": 1, "prcie": 2}),
        "unknown field 'prcie' (allowed: sid, price, ts, bid, ask, size)",
    ),
    (
        "unknown field, other case",
        as_json([{"sid": "A", "price": 1}, {"sid": "B", "Price": 2}]),
        "item 1: unknown field 'Price' (allowed: sid, price, ts, bid, ask, size)",
    ),
    (
        "unknown binary key",
        as_msgpack({"sid": "A", "price": 1, b"venue": 2}, use_bin_type=True),
        "unknown field b'venue' (allowed: sid, price, ts, bid, ask, size)",
    ),
    (
        "unknown escaped surrogate key",
        b'{"sid": "A", "price": 1, "\\udc80": 2}',
        "unknown field '\\udc80' (allowed: sid, price, ts, bid, ask, size)",
    ),
    (
        "int map key",
        b"\x83\xa3sid\xa1A\xa5price\x01\x07\x01",
        "invalid msgpack: int is not allowed",
    ),
    ("price as text", as_json({"sid": "A", "price": "1.5"}), "price must be a number, got string"),
    (
        "price as bool",
        as_msgpack({"sid": "A", "price": True}),
        "price must be a number, got boolean",
    ),
    (
        "size as bytes",
        as_msgpack({"sid": "A", "price": 1, "size": b"\x01"}, use_bin_type=True),
        "size must be a number, got bytes",
    ),
    (
        "ts as a msgpack timestamp",
        as_msgpack({"sid": "A", "price": 1, "ts": msgpack.Timestamp(5)}),
        "ts must be a number, got Timestamp",
    ),
    ("sid as a number", as_msgpack({"sid": 7, "price": 1}), "sid must be a string, got number"),
    ("short form of lists", as_json({"A": [1]}), "A: price must be a number, got array"),
    (
        "non-UTF-8 JSON",
        b'{"sid": "\xc3\x28", "price": 1}',
        "payload is not valid UTF-8: invalid continuation byte at byte 9",
    ),
    (
        "UTF-8-encoded surrogate",
        b'{"sid": "\xed\xa0\x80", "price": 1}',
        "payload is not valid UTF-8: invalid continuation byte at byte 9",
    ),
    (
        "escaped lone surrogate",
        b'{"sid": "\\ud800", "price": 1}',
        "sid '\\ud800' has characters outside A-Z 0-9 . - _ : ^ =",
    ),
    (
        "non-UTF-8 msgpack string",
        b"\x82\xa3sid\xa2\xff\xfe\xa5price\x01",
        "invalid msgpack: a string is not valid UTF-8: invalid start byte at byte 0",
    ),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [pytest.param(p, r, id=name) for name, p, r in HOSTILE]
)
def test_hostile_input_is_rejected_with_a_specific_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(QuoteRejected) as info:
        decode(payload)
    assert info.value.reason.startswith(reason)


# --- a real bridge under fire ------------------------------------------------------------


GOOD_EVERY = 10
"""One good quote after every this many bad payloads."""


def bad_payloads(count: int, *, seed: int) -> list[bytes]:
    """`count` payloads `decode_quotes` rejects, of many kinds, the same for the same seed."""
    rng = random.Random(seed)
    kinds = [_random_bytes, _mutated, _broken_field, _broken_msgpack, _nested, _not_utf8]
    extras = [b"", b" \n", b"[" + b"0" * MAX_PAYLOAD_BYTES, b"\x91" * (MAX_PAYLOAD_BYTES + 1)]
    payloads = list(extras)
    while len(payloads) < count:
        payload = rng.choice(kinds)(rng)
        if outcome(payload) is None:
            payloads.append(payload)
    rng.shuffle(payloads)
    return payloads


_SEEDS = [
    as_json({"sid": "GOOG", "price": 345.1, "ts": 1732300000.12, "bid": 345, "ask": 346}),
    as_json({"GOOG": 3.45, "AAPL": 190}),
    as_msgpack([{"sid": "GOOG", "price": 345.1, "ts": 1732300000.12, "size": 10}]),
    as_msgpack({"GOOG": 3.45}),
]
_BAD_VALUES: list[Any] = [0, -1.5, "3", None, True, [1], {"a": 1}, 10**13, math.nan, math.inf]
_BAD_VALUES += [-math.inf, "", "GO OG", 1732300000120, "\ud800"]
_BAD_JSON_VALUES = [*_BAD_VALUES, 10**40, 10**400]
_BAD_MSGPACK_VALUES = [*_BAD_VALUES, 2**64 - 1, b"\xff", msgpack.ExtType(1, b"x")]


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 64))


def _mutated(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(_SEEDS))
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(data))
        data[pos] = rng.randrange(256)
    return bytes(data)


def _broken_quote(rng: random.Random, values: list[Any]) -> dict[Any, Any]:
    quote: dict[Any, Any] = {"sid": f"S{rng.randrange(1000)}", "price": 1.0 + rng.random()}
    field = rng.choice([*FIELDS, "venue", f"x{rng.randrange(100)}"])
    quote[field] = rng.choice(values)
    if rng.random() < 0.1:
        del quote["price"]
    return quote


def _broken_field(rng: random.Random) -> bytes:
    quote = _broken_quote(rng, _BAD_JSON_VALUES)
    form: Any = quote if rng.random() < 0.5 else [{"sid": "OK", "price": 1}, quote]
    return as_json(form, ascii_only=rng.random() < 0.5)


def _broken_msgpack(rng: random.Random) -> bytes:
    quote = _broken_quote(rng, _BAD_MSGPACK_VALUES)
    if rng.random() < 0.3:
        quote[rng.choice([1, b"sid", None])] = 1
    return as_msgpack([quote], use_bin_type=True)


def _nested(rng: random.Random) -> bytes:
    # JSON fails on nesting at the interpreter's recursion limit, counted from the caller's
    # stack; skipping 500-5,000 keeps each payload's reason the same here and in the bridge.
    depth = rng.choice([rng.randint(1, 500), rng.randint(5_000, 20_000)])
    return rng.choice([b"[" * depth, b"\x91" * depth + b"\x01", b'{"A": ' + b"[" * depth])


def _not_utf8(rng: random.Random) -> bytes:
    return b'{"sid": "A' + bytes([rng.randint(0x80, 0xFF)]) + b'", "price": 1}'


def letter_payload(letter: dict[str, Any]) -> bytes:
    """The rejected payload a dead letter carries (text, or base64 when not UTF-8)."""
    if "payload_b64" in letter:
        return base64.b64decode(letter["payload_b64"])
    return str(letter["payload"]).encode()


def rejection_reason(payload: bytes) -> str:
    with pytest.raises(QuoteRejected) as info:
        decode(payload)
    return info.value.reason


def test_a_bridge_under_10000_bad_payloads_delivers_every_good_quote(
    procs: Processes,
    mqtt_url: str,
    mosquitto_port: int,
    algo_state: Callable[[str], dict[str, Any]],
) -> None:
    name, prefix = unique("fuzz"), unique("FZ").upper()
    topic = f"quotes/{prefix}"
    bad = bad_payloads(10_000, seed=20241123)
    good = [[f"{prefix}.{i}", 1000.0 + i, 1.0 + i / 100] for i in range(len(bad) // GOOD_EVERY)]
    stream: list[bytes] = []
    for i, payload in enumerate(bad):
        stream.append(payload)
        if i % GOOD_EVERY == GOOD_EVERY - 1:
            sid, ts, price = good[i // GOOD_EVERY]
            stream.append(json.dumps({"sid": sid, "price": price, "ts": ts}).encode())
    accepted = [quote["ts"] for payload in stream for quote in outcome(payload) or []]
    assert accepted == [ts for _sid, ts, _price in good]

    status_topic = f"status/bridge/{name}"
    with recorder(mosquitto_port, "deadletter/bridge", status_topic) as rec:
        rpc = f"tcp://127.0.0.1:{free_port()}"
        spec = "tests.algos_for_tests:RecordingAlgo"
        algo = procs.tickbus("algo", "serve", spec, "--addr", rpc, name="algo")
        wait_until(lambda: "serving" in algo.log(), timeout=15, what="the algorithm serving")
        bridge = start_bridge(procs, mqtt_url, rpc, name, f"channels={topic}")
        wait_until(
            lambda: any(s.get("channels") for s in rec.json_on(status_topic)),
            timeout=20,
            what="the bridge online",
        )
        sent = [rec.client.publish(topic, payload, qos=1) for payload in stream]
        for info in sent:
            info.wait_for_publish(timeout=30)

        def letters() -> list[dict[str, Any]]:
            return [d for d in rec.json_on("deadletter/bridge") if d["topic"] == topic]

        # Count the raw messages while waiting: parsing 10,000 letters per poll costs CPU.
        wait_until(
            lambda: len(rec.on("deadletter/bridge")) >= len(bad) and len(letters()) >= len(bad),
            timeout=30,
            what="10,000 dead letters",
        )
        received = wait_until(
            lambda: (got := algo_state(rpc)["received"]) and len(got) >= len(good) and got,
            timeout=30,
            what=f"{len(good)} good quotes at the algorithm",
        )
        counted = {"rejected": len(bad), "quotes_in": len(good)}
        status = wait_until(
            lambda: next(
                (s for s in rec.json_on(status_topic) if counted.items() <= s.items()), None
            ),
            timeout=10,
            what=f"the bridge's status counting {counted}",
        )
        assert algo.alive() and bridge.alive()
        assert len(letters()) == len(bad), "nothing dead-lettered twice"

    assert received == good
    assert status["state"] == "online" and status["handler_errors"] == 0
    assert Counter((letter_payload(d), d["reason"]) for d in letters()) == Counter(
        (payload, rejection_reason(payload)) for payload in bad
    )
