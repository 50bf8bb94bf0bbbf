"""`OpenOrder`: an order the portfolio has sent and not yet seen filled or rejected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["buy", "sell"]


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenOrder:
    """What one open order holds back until its fill or its rejection.

    Attributes:
        sid: Symbol, upper-case.
        side: ``"buy"`` or ``"sell"``.
        qty: Shares ordered, > 0. A sell holds back that many shares of the position.
        reserved_cash: Cash a buy holds back (its reference price times `qty`,
            plus the portfolio's buffer for slippage and fees); 0 for a sell.
    """

    sid: str
    side: Side
    qty: int
    reserved_cash: float
