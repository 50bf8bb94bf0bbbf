"""The per-algorithm bridge: MQTT quotes in, zerorpc calls out, orders back, swap control.

Public API: `Bridge` and its `BridgeConfig` (with the `Overflow` policies);
`request_swap` (what `tickbus swap` does; it raises `tickbus.errors.SwapFailed`);
the click commands for the umbrella CLI.
"""

from bridge._bridge import Bridge
from bridge._cli import bridge_command, risk_group, swap_command
from bridge._config import BridgeConfig
from bridge._control import request_swap
from bridge._overflow import Overflow

__all__ = [
    "Bridge",
    "BridgeConfig",
    "Overflow",
    "bridge_command",
    "request_swap",
    "risk_group",
    "swap_command",
]
