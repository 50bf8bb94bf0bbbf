"""`algos.columns_pass`, the vectorised test of the quote contract, never vouches for a bad row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algos import checked_quote, columns_pass
from tickbus.errors import QuoteRejected

NUMBERS = ("price", "ts", "bid", "ask", "size")
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1e-300, 5e-324, 100.0, math.inf, -math.inf, math.nan]),
)
SIDS = st.one_of(st.sampled_from(["GOOG", "BRK.B", "123", "goog", "Goog", "", " ", " GOOG"]),
                 st.text(max_size=5))  # fmt: skip


def rows_of(sids: list[str], numbers: dict[str, list[float]]) -> list[dict[str, Any]]:
    return [
        {"sid": sid, **{key: values[i] for key, values in numbers.items()}}
        for i, sid in enumerate(sids)
    ]


def passes_unchanged(row: dict[str, Any]) -> bool:
    try:
        return checked_quote(row, 0) == row
    except QuoteRejected:
        return False


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    count=st.integers(min_value=1, max_value=6),
    keys=st.sets(st.sampled_from(("bid", "ask", "size"))),
)
def test_columns_pass_only_when_every_row_passes_checked_quote_unchanged(
    data: st.DataObject, count: int, keys: set[str]
) -> None:
    sids = data.draw(st.lists(SIDS, min_size=count, max_size=count))
    numbers = {
        key: data.draw(st.lists(FLOATS, min_size=count, max_size=count))
        for key in ("price", "ts", *sorted(keys))
    }
    arrays = {key: np.array(values, dtype=np.float64) for key, values in numbers.items()}
    verdict = columns_pass(set(sids), arrays)
    rows = rows_of(sids, numbers)
    every_row_passes = all(passes_unchanged(row) for row in rows)
    if verdict:
        assert every_row_passes, rows
    elif all(sid.isascii() for sid in sids):  # beyond ASCII, case rules may make it cautious
        assert not every_row_passes, rows


def test_clean_columns_pass_and_one_bad_value_anywhere_fails() -> None:
    count = 1000
    clean = {
        "price": np.linspace(1.0, 2.0, count),
        "ts": np.linspace(1.8e9, 1.8e9 + 100, count),
        "bid": np.linspace(0.99, 1.99, count),
        "ask": np.linspace(1.01, 2.01, count),
        "size": np.zeros(count),
    }
    assert columns_pass(["GOOG", "MSFT"], clean)
    for key, bad in [("price", 0.0), ("bid", -1.0), ("ask", math.nan), ("size", -0.5),
                     ("ts", math.inf), ("price", math.inf)]:  # fmt: skip
        spoiled = {name: values.copy() for name, values in clean.items()}
        spoiled[key][777] = bad
        assert not columns_pass(["GOOG"], spoiled), (key, bad)
    assert not columns_pass(["GOOG", "msft"], clean), "a lower-case sid changes when checked"
    assert not columns_pass([""], clean)
    assert not columns_pass(["GOOG"], {k: v for k, v in clean.items() if k != "ts"}), "no ts"
    assert not columns_pass(["GOOG"], {**clean, "price": clean["price"].astype(np.float32)})
    assert not columns_pass(["GOOG"], {**clean, "volume": clean["size"]}), "an unknown field"


@pytest.mark.parametrize("sid", [None, 7, b"GOOG"])
def test_a_symbol_that_is_not_text_fails(sid: object) -> None:
    numbers = {"price": np.array([1.0]), "ts": np.array([1.0])}
    assert not columns_pass([sid], numbers)
