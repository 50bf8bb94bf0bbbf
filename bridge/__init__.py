"""The per-algorithm bridge: MQTT quotes in, zerorpc calls out, orders back, swap control.

Public API: `Bridge` and its `BridgeConfig` (with the `Overflow` policies);
`request_swap` (what `tickbus swap` does; it raises `tickbus.errors.SwapFailed`)
and `set_kill_switch` (what `tickbus risk kill|lift` does);
the click commands for the umbrella CLI.
"""

from bridge._bridge import Bridge
from bridge._cli import bridge_command, risk_group, swap_command
from bridge._config import BridgeConfig
from bridge._control import request_swap, set_kill_switch
from bridge._overflow import Overflow

__all__ = [
    "Bridge",
    "BridgeConfig",
    "Overflow",
    "bridge_command",
    "request_swap",
    "risk_group",
    "set_kill_switch",
    "swap_command",
]
