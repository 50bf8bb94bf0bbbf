"""risk: the pre-trade checks every order passes before execution sees it.

Plain Python, no bus and no RPC, so the live bridge and the backtester run
the very same rules.

Public API: `RiskLimits` and `RiskGate` (the limits and the kill switch),
`OrderScreen` and its `Refusal` (stamp, validate against the order schema,
then the gate), and `risk_limit_options` (the ``--risk-limits`` and
``--max-*`` flags of every command that runs a gate).
"""

from risk._gate import RiskGate, RiskLimits
from risk._options import risk_limit_options
from risk._screen import OrderScreen, Refusal

__all__ = ["OrderScreen", "Refusal", "RiskGate", "RiskLimits", "risk_limit_options"]
