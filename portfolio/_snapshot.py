"""The portfolio's snapshot format: building it and validating it back.

A snapshot is a JSON-safe dict::

    {"version": 2, "cash": 9000.0, "realised_pnl": -1.0,
     "positions": {"GOOG": {"qty": 10, "avg_cost": 100.0}},
     "last_prices": {"GOOG": 101.5},
     "open_orders": {"9f2c...": {"sid": "GOOG", "side": "sell", "qty": 5,
                                 "reserved_cash": 0.0}}}

Every position has a last price (a fill marks its symbol). Restoring checks all
of that and rejects anything else, unknown keys included, so a snapshot from a
newer format or a hand-edited file fails loudly instead of half-loading.
Version 1 snapshots (before orders were placed and then filled) have no
``open_orders`` and are read with none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from portfolio._checks import finite_float, positive_int, symbol
from portfolio._open_order import OpenOrder, Side
from portfolio._position import Position
from tickbus.errors import PortfolioError

SNAPSHOT_VERSION = 2
_KEYS_V1 = frozenset({"version", "cash", "realised_pnl", "positions", "last_prices"})
_KEYS = _KEYS_V1 | {"open_orders"}
_OPEN_ORDER_KEYS = frozenset({"sid", "side", "qty", "reserved_cash"})


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotState:
    """The portfolio state a snapshot carries, validated."""

    cash: float
    realised_pnl: float
    positions: dict[str, Position]
    last_prices: dict[str, float]
    open_orders: dict[str, OpenOrder]


def build_snapshot(state: SnapshotState) -> dict[str, Any]:
    """The JSON-safe snapshot dict of `state` (see the module docstring)."""
    return {
        "version": SNAPSHOT_VERSION,
        "cash": state.cash,
        "realised_pnl": state.realised_pnl,
        "positions": {
            sid: {"qty": p.qty, "avg_cost": p.avg_cost} for sid, p in state.positions.items()
        },
        "last_prices": dict(state.last_prices),
        "open_orders": {
            order_id: {
                "sid": o.sid,
                "side": o.side,
                "qty": o.qty,
                "reserved_cash": o.reserved_cash,
            }
            for order_id, o in state.open_orders.items()
        },
    }


def parse_snapshot(snapshot: object) -> SnapshotState:
    """Validate `snapshot` and return the state it describes.

    Raises:
        PortfolioError: The snapshot is malformed; the reason names the field.
    """
    if not isinstance(snapshot, Mapping):
        raise PortfolioError(f"snapshot must be a mapping, got {type(snapshot).__name__}")
    version = snapshot.get("version")
    if isinstance(version, bool) or version not in (1, SNAPSHOT_VERSION):
        raise PortfolioError(f"snapshot version must be 1 or {SNAPSHOT_VERSION}, got {version!r}")
    expected = _KEYS_V1 if version == 1 else _KEYS
    keys = set(snapshot)
    if keys != expected:
        raise PortfolioError(
            f"snapshot keys must be {sorted(expected)}; missing {sorted(expected - keys)}, "
            f"unknown {sorted(map(str, keys - expected))}"
        )
    cash = finite_float(snapshot["cash"])
    if cash is None or cash < 0:
        raise PortfolioError(
            f"snapshot cash must be a finite number >= 0, got {snapshot['cash']!r}"
        )
    realised = finite_float(snapshot["realised_pnl"])
    if realised is None:
        raise PortfolioError(
            f"snapshot realised_pnl must be a finite number, got {snapshot['realised_pnl']!r}"
        )
    last_prices = _parse_last_prices(snapshot["last_prices"])
    positions = _parse_positions(snapshot["positions"])
    unpriced = sorted(set(positions) - set(last_prices))
    if unpriced:
        raise PortfolioError(f"snapshot positions {unpriced} have no entry in last_prices")
    open_orders = _parse_open_orders(snapshot.get("open_orders", {}))
    _check_sells_are_held(open_orders, positions)
    return SnapshotState(
        cash=cash,
        realised_pnl=realised,
        positions=positions,
        last_prices=last_prices,
        open_orders=open_orders,
    )


def _checked_symbol(where: str, value: object) -> str:
    sid = symbol(value)
    if sid is None or sid != value:
        raise PortfolioError(f"snapshot {where} must be upper-case symbols, got {value!r}")
    return sid


def _parse_last_prices(raw: object) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise PortfolioError(f"snapshot last_prices must be a mapping, got {type(raw).__name__}")
    prices: dict[str, float] = {}
    for key, value in raw.items():
        sid = _checked_symbol("last_prices keys", key)
        price = finite_float(value)
        if price is None or price <= 0:
            raise PortfolioError(
                f"snapshot last_prices[{sid!r}] must be a finite number > 0, got {value!r}"
            )
        prices[sid] = price
    return prices


def _parse_positions(raw: object) -> dict[str, Position]:
    if not isinstance(raw, Mapping):
        raise PortfolioError(f"snapshot positions must be a mapping, got {type(raw).__name__}")
    positions: dict[str, Position] = {}
    for key, value in raw.items():
        sid = _checked_symbol("positions keys", key)
        if not isinstance(value, Mapping) or set(value) != {"qty", "avg_cost"}:
            raise PortfolioError(
                f"snapshot positions[{sid!r}] must be {{'qty': int, 'avg_cost': float}}, "
                f"got {value!r}"
            )
        qty = positive_int(value["qty"])
        avg_cost = finite_float(value["avg_cost"])
        if qty is None or avg_cost is None or avg_cost <= 0:
            raise PortfolioError(
                f"snapshot positions[{sid!r}] needs qty an int > 0 and avg_cost a "
                f"finite number > 0, got {dict(value)!r}"
            )
        positions[sid] = Position(qty=qty, avg_cost=avg_cost)
    return positions


def _parse_open_orders(raw: object) -> dict[str, OpenOrder]:
    if not isinstance(raw, Mapping):
        raise PortfolioError(f"snapshot open_orders must be a mapping, got {type(raw).__name__}")
    orders: dict[str, OpenOrder] = {}
    for order_id, value in raw.items():
        if not isinstance(order_id, str) or not order_id:
            raise PortfolioError(f"snapshot open_orders keys must be order ids, got {order_id!r}")
        if not isinstance(value, Mapping) or set(value) != _OPEN_ORDER_KEYS:
            raise PortfolioError(
                f"snapshot open_orders[{order_id!r}] must have exactly "
                f"{sorted(_OPEN_ORDER_KEYS)}, got {value!r}"
            )
        sid = _checked_symbol(f"open_orders[{order_id!r}] sid", value["sid"])
        side = value["side"]
        qty = positive_int(value["qty"])
        reserved = finite_float(value["reserved_cash"])
        if side not in ("buy", "sell") or qty is None or reserved is None or reserved < 0:
            raise PortfolioError(
                f"snapshot open_orders[{order_id!r}] needs side buy or sell, qty an int > 0 "
                f"and reserved_cash a finite number >= 0, got {dict(value)!r}"
            )
        if side == "sell" and reserved != 0:
            raise PortfolioError(
                f"snapshot open_orders[{order_id!r}] is a sell, which holds no cash, "
                f"but has reserved_cash {reserved}"
            )
        orders[order_id] = OpenOrder(
            sid=sid, side=cast(Side, side), qty=qty, reserved_cash=reserved
        )
    return orders


def _check_sells_are_held(orders: dict[str, OpenOrder], positions: dict[str, Position]) -> None:
    selling: dict[str, int] = {}
    for order in orders.values():
        if order.side == "sell":
            selling[order.sid] = selling.get(order.sid, 0) + order.qty
    for sid, qty in sorted(selling.items()):
        held = positions[sid].qty if sid in positions else 0
        if qty > held:
            raise PortfolioError(
                f"snapshot open_orders sell {qty} {sid}, but the position is only {held}"
            )
