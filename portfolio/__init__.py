"""Portfolio: cash, positions, bet sizing, PnL and snapshot/restore for one algorithm.

`SnapshotFile` keeps a snapshot on disk across crashes (``tickbus algo serve --state-dir``).

Plain Python: it never imports the transport (`broker`, `bridge`, `ring`).
"""

from portfolio._open_order import OpenOrder
from portfolio._portfolio import DEFAULT_BUFFER_BPS, Portfolio
from portfolio._position import Position
from portfolio._sizing import FractionOfCash, SizingPolicy
from portfolio._store import SnapshotFile

__all__ = [
    "DEFAULT_BUFFER_BPS",
    "FractionOfCash",
    "OpenOrder",
    "Portfolio",
    "Position",
    "SizingPolicy",
    "SnapshotFile",
]
