"""The operator's actions from the page: a bridge's kill switch, its lift, and a swap.

They are sent with the operator's MQTT login, which the server holds (never
the browser), through the same calls as ``tickbus risk kill|lift`` and
``tickbus swap`` (`bridge.set_kill_switch`, `bridge.request_swap`), so they
are refused, confirmed and retained exactly as from the command line. Every
action is logged (who, when, what, the outcome) and kept for the page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from bridge import request_swap, set_kill_switch
from broker import MqttSettings
from tickbus.errors import ConfigError, SwapFailed

log = logging.getLogger(__name__)

ACTION_TIMEOUT_S = 5.0
"""How long an action waits for the bridge to report it."""

LOGGED_ACTIONS = 100
"""Actions kept for the page."""


class Operator:
    """Sends actions with `settings` (the operator's login) and remembers them.

    Args:
        settings: The broker and the operator's login.
        timeout: Seconds an action waits for the bridge's report.
    """

    def __init__(self, settings: MqttSettings, *, timeout: float = ACTION_TIMEOUT_S) -> None:
        self._settings = settings
        self._timeout = timeout
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=LOGGED_ACTIONS)

    def kill(self, bridge: str, reason: str, *, who: str) -> dict[str, Any]:
        """Turn `bridge`'s kill switch on; the logged entry (``ok``, ``outcome``)."""
        return self._act(
            who, "kill", bridge, reason,
            lambda: set_kill_switch(self._settings, bridge=bridge, reason=reason,
                                    timeout=self._timeout),
        )  # fmt: skip

    def lift(self, bridge: str, *, who: str) -> dict[str, Any]:
        """Lift `bridge`'s kill switch; the logged entry."""
        return self._act(
            who, "lift", bridge, "",
            lambda: set_kill_switch(self._settings, bridge=bridge, reason=None,
                                    timeout=self._timeout),
        )  # fmt: skip

    def swap(self, bridge: str, rpc: str, *, carry: bool, who: str) -> dict[str, Any]:
        """Point `bridge` at the algorithm server `rpc` (carrying the portfolio or not)."""
        detail = f"{rpc}{' carrying the portfolio' if carry else ''}"
        return self._act(
            who, "swap", bridge, detail,
            lambda: request_swap(self._settings, bridge=bridge, rpc=rpc, timeout=self._timeout,
                                 carry_portfolio=carry),
        )  # fmt: skip

    def history(self) -> list[dict[str, Any]]:
        """The logged actions, newest first."""
        with self._lock:
            return list(reversed(self._log))

    def _act(self, who: str, action: str, bridge: str, detail: str, send: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "at": time.time(), "who": who, "action": action, "bridge": bridge, "detail": detail,
        }  # fmt: skip
        try:
            answer = send()
        except (ConfigError, SwapFailed) as exc:
            entry.update(ok=False, outcome=str(exc))
        else:
            entry.update(ok=True, outcome=_outcome(action, answer))
        log.info(
            "%s by %s on bridge %s (%s): %s", action, who, bridge, detail or "-", entry["outcome"]
        )
        with self._lock:
            self._log.append(entry)
        return entry


def _outcome(action: str, answer: Any) -> str:
    if answer is None:
        return "sent; the bridge is offline and applies it when it starts"
    if action == "swap":
        return "swapped"
    return "the bridge reports the kill switch on" if action == "kill" else "orders flow again"
