"""Commands on ``control/bridge/<name>`` and the client side that sends them."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from broker import BusClient, MqttSettings, control_topic, status_topic
from tickbus.errors import ConfigError, SwapFailed


@dataclass(frozen=True, kw_only=True)
class SwapCommand:
    """Point the bridge at another algorithm server.

    Attributes:
        rpc: The new server's zerorpc address.
        id: Chosen by the sender; the bridge echoes it in ``last_swap`` on its
            status so the sender can tell its swap's outcome from others.
        carry_portfolio: Hand the old algorithm's portfolio (cash, positions,
            PnL) to the new one, so the swap changes the strategy, not the book.
    """

    rpc: str
    id: str
    carry_portfolio: bool = False


def parse_control(payload: bytes) -> SwapCommand:
    """Decode ``{"rpc": "tcp://host:port", "id": "...", "carry_portfolio": true}``.

    ``id`` and ``carry_portfolio`` (default false) are optional.

    Raises:
        ConfigError: Not a JSON object, or no usable ``rpc`` address.
    """
    try:
        command = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"control command is not JSON: {exc!r}") from exc
    if not isinstance(command, dict):
        raise ConfigError(f"control command must be a JSON object, got {type(command).__name__}")
    rpc = command.get("rpc")
    if not isinstance(rpc, str) or "://" not in rpc:
        raise ConfigError(f'control command needs "rpc": "tcp://host:port", got {rpc!r}')
    unknown = sorted(set(command) - {"rpc", "id", "carry_portfolio"})
    if unknown:
        raise ConfigError(f"control command has unknown fields: {', '.join(unknown)}")
    carry = command.get("carry_portfolio", False)
    if not isinstance(carry, bool):
        raise ConfigError(f'control command "carry_portfolio" must be true or false, got {carry!r}')
    return SwapCommand(rpc=rpc, id=str(command.get("id", "")), carry_portfolio=carry)


def request_swap(
    settings: MqttSettings,
    *,
    bridge: str,
    rpc: str,
    timeout: float,
    carry_portfolio: bool = False,
) -> dict[str, Any]:
    """Ask bridge `bridge` to swap to `rpc` and wait for its report.

    Returns:
        The bridge's ``last_swap`` report (``rpc``, ``ok``, ``finalize``: the old
        algorithm's final state).

    Raises:
        SwapFailed: The bridge reported that the swap failed.
        ConfigError: No report within `timeout` seconds (the bridge may be down
            or named differently), or the broker is unreachable.
    """
    command_id = uuid.uuid4().hex
    report: dict[str, Any] = {}
    done = threading.Event()

    def on_status(_topic: str, payload: bytes) -> None:
        swap = json.loads(payload).get("last_swap") or {}
        if swap.get("id") == command_id:
            report.update(swap)
            done.set()

    with BusClient(
        settings, component="cli", name="swap", on_message=on_status, announce=False
    ) as bus:
        bus.subscribe([status_topic("bridge", bridge)], qos=1)
        command = {"rpc": rpc, "id": command_id, "carry_portfolio": carry_portfolio}
        bus.publish_json(control_topic("bridge", bridge), command, qos=1)
        if not done.wait(timeout):
            raise ConfigError(f"bridge {bridge!r} did not report the swap within {timeout:g} s")
    if not report.get("ok"):
        raise SwapFailed(str(report.get("reason", "unknown reason")))
    return report
