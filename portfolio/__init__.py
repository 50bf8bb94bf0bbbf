"""Portfolio: cash, positions, bet sizing, PnL and snapshot/restore for one algorithm.

Plain Python: it never imports the transport (`broker`, `bridge`, `ring`).
"""

from portfolio._portfolio import Portfolio
from portfolio._position import Position
from portfolio._sizing import FractionOfCash, SizingPolicy

__all__ = ["FractionOfCash", "Portfolio", "Position", "SizingPolicy"]
