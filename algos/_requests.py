"""Order requests: the plain dicts an algorithm may return instead of calling `buy`/`sell`.

A request ``{"sid": "GOOG", "side": "buy", "qty": 10}`` (plus
``"limit_price"`` for a limit order) is placed exactly as `Algorithm.buy` or
`Algorithm.sell` would place it. This is how a plain class, one that does not
inherit from `Algorithm`, orders; a subclass may do the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tickbus.errors import PortfolioError

REQUEST_KEYS = frozenset({"sid", "side", "qty", "limit_price"})
"""The keys an order request may have."""


@dataclass(frozen=True)
class OrderRequest:
    """An order an algorithm asked for, not yet placed.

    Attributes:
        sid: Symbol, upper-case.
        side: ``"buy"`` or ``"sell"``.
        qty: Shares, an int >= 0 (0 places nothing, as with `buy`/`sell`).
        limit_price: The worst acceptable price of a limit order; None for a market order.
    """

    sid: str
    side: Literal["buy", "sell"]
    qty: int
    limit_price: float | None


def is_order_request(item: object) -> bool:
    """Whether `item` asks for an order rather than being one: a mapping without an ``id``."""
    return isinstance(item, Mapping) and "id" not in item


def parse_order_request(item: Mapping[str, Any]) -> OrderRequest:
    """Read one order request; `side` may be in any case, `sid` is upper-cased.

    Raises:
        PortfolioError: A key is unknown or missing, or a value is unusable;
            the reason names the key and shows the request.
    """
    unknown = sorted(map(str, set(item) - REQUEST_KEYS))
    if unknown:
        hint = " (a market order takes no price; use limit_price)" if "price" in unknown else ""
        raise PortfolioError(
            f"order {dict(item)!r} has unknown keys {unknown}{hint}; an order is "
            '{"sid": "GOOG", "side": "buy" or "sell", "qty": 10[, "limit_price": 345.0]}'
        )
    sid, side, qty = item.get("sid"), item.get("side"), item.get("qty")
    if not isinstance(sid, str) or not sid.strip():
        raise PortfolioError(f"order {dict(item)!r} needs a non-empty string 'sid'")
    if not isinstance(side, str) or side.lower() not in ("buy", "sell"):
        raise PortfolioError(f'order {dict(item)!r} needs \'side\' "buy" or "sell"')
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
        raise PortfolioError(f"order {dict(item)!r} needs 'qty', an int >= 0")
    return OrderRequest(
        sid=sid.strip().upper(),
        side="buy" if side.lower() == "buy" else "sell",
        qty=qty,
        limit_price=_limit_price(item),
    )


def _limit_price(item: Mapping[str, Any]) -> float | None:
    raw = item.get("limit_price")
    if raw is None:
        return None
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or not math.isfinite(raw)
        or raw <= 0
    ):
        raise PortfolioError(f"order {dict(item)!r}: limit_price must be a finite number > 0")
    return float(raw)
