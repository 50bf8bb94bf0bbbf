"""Reading the fields of a quote the portfolio needs, rejecting bad ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portfolio._checks import finite_float, symbol
from tickbus.errors import QuoteRejected


def quote_symbol(quote: Mapping[str, Any]) -> str:
    """The quote's ``sid``, upper-cased.

    Raises:
        QuoteRejected: `quote` is not a mapping or has no usable ``sid``.
    """
    if type(quote) is not dict and not isinstance(quote, Mapping):
        raise QuoteRejected(f"a quote must be a mapping, got {type(quote).__name__}")
    sid = symbol(quote.get("sid"))
    if sid is None:
        raise QuoteRejected(f"quote needs a non-empty string 'sid', got {quote.get('sid')!r}")
    return sid


def quote_price(quote: Mapping[str, Any], key: str = "price") -> float:
    """The quote's `key` field (default ``price``) as a float > 0.

    Raises:
        QuoteRejected: The field is missing, not a finite number, or not > 0.
    """
    raw = quote.get(key)
    price = finite_float(raw)
    if price is None or price <= 0:
        raise QuoteRejected(f"quote {key!r} must be a finite number > 0, got {raw!r}")
    return price


def buy_price(quote: Mapping[str, Any]) -> float:
    """What buying now pays: the ``ask`` when the quote has one, else its ``price``.

    Raises:
        QuoteRejected: The field used is not a finite number > 0.
    """
    quote_symbol(quote)
    if quote.get("ask") is not None:
        return quote_price(quote, "ask")
    return quote_price(quote)
