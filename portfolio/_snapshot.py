"""The portfolio's snapshot format: building it and validating it back.

A snapshot is a JSON-safe dict::

    {"version": 1, "cash": 9000.0, "realised_pnl": -1.0,
     "positions": {"GOOG": {"qty": 10, "avg_cost": 100.0}},
     "last_prices": {"GOOG": 101.5}}

Every position has a last price (a fill marks its symbol). Restoring checks all
of that and rejects anything else, unknown keys included, so a snapshot from a
newer format or a hand-edited file fails loudly instead of half-loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portfolio._checks import finite_float, positive_int, symbol
from portfolio._position import Position
from tickbus.errors import PortfolioError

SNAPSHOT_VERSION = 1
_KEYS = frozenset({"version", "cash", "realised_pnl", "positions", "last_prices"})


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotState:
    """The portfolio state a snapshot carries, validated."""

    cash: float
    realised_pnl: float
    positions: dict[str, Position]
    last_prices: dict[str, float]


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
    }


def parse_snapshot(snapshot: object) -> SnapshotState:
    """Validate `snapshot` and return the state it describes.

    Raises:
        PortfolioError: The snapshot is malformed; the reason names the field.
    """
    if not isinstance(snapshot, Mapping):
        raise PortfolioError(f"snapshot must be a mapping, got {type(snapshot).__name__}")
    keys = set(snapshot)
    if keys != _KEYS:
        raise PortfolioError(
            f"snapshot keys must be {sorted(_KEYS)}; missing {sorted(_KEYS - keys)}, "
            f"unknown {sorted(map(str, keys - _KEYS))}"
        )
    version = snapshot["version"]
    if isinstance(version, bool) or version != SNAPSHOT_VERSION:
        raise PortfolioError(f"snapshot version must be {SNAPSHOT_VERSION}, got {version!r}")
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
    return SnapshotState(
        cash=cash, realised_pnl=realised, positions=positions, last_prices=last_prices
    )


def _checked_symbol(where: str, value: object) -> str:
    sid = symbol(value)
    if sid is None or sid != value:
        raise PortfolioError(f"snapshot {where} keys must be upper-case symbols, got {value!r}")
    return sid


def _parse_last_prices(raw: object) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise PortfolioError(f"snapshot last_prices must be a mapping, got {type(raw).__name__}")
    prices: dict[str, float] = {}
    for key, value in raw.items():
        sid = _checked_symbol("last_prices", key)
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
        sid = _checked_symbol("positions", key)
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
