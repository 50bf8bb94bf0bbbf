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


@dataclass(frozen=True, kw_only=True)
class KillCommand:
    """Refuse every new order of the bridge's algorithm until a `LiftCommand`.

    Attributes:
        reason: Why; every refused order carries it.
    """

    reason: str


@dataclass(frozen=True, kw_only=True)
class LiftCommand:
    """Let the algorithm's orders through again (each still checked against the limits)."""


ControlCommand = SwapCommand | KillCommand | LiftCommand

MAX_KILL_REASON = 200
"""Longest accepted kill reason, in characters."""


def parse_control(payload: bytes) -> ControlCommand:
    """Decode one command: a swap, a kill or a lift.

    * ``{"rpc": "tcp://host:port", "id": "...", "carry_portfolio": true}``: swap
      (``id`` and ``carry_portfolio``, default false, are optional);
    * ``{"kill": "reason"}``: stop new orders at once;
    * ``{"lift": true}``: let them through again.

    Raises:
        ConfigError: Not a JSON object, not exactly one of ``rpc``, ``kill``
            and ``lift``, or a bad value; the reason says which.
    """
    try:
        command = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"control command is not JSON: {exc!r}") from exc
    if not isinstance(command, dict):
        raise ConfigError(f"control command must be a JSON object, got {type(command).__name__}")
    kinds = [key for key in ("rpc", "kill", "lift") if key in command]
    if len(kinds) != 1:
        raise ConfigError(
            'control command needs exactly one of "rpc" (swap), "kill" or "lift", '
            f"got {sorted(map(str, command))}"
        )
    if kinds == ["kill"]:
        return _parse_kill(command)
    if kinds == ["lift"]:
        _only(command, {"lift"})
        if command["lift"] is not True:
            raise ConfigError(f'control command "lift" must be true, got {command["lift"]!r}')
        return LiftCommand()
    return _parse_swap(command)


def _parse_kill(command: dict[str, Any]) -> KillCommand:
    _only(command, {"kill"})
    reason = command["kill"]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_KILL_REASON:
        raise ConfigError(
            f'control command "kill" must be a reason of 1 to {MAX_KILL_REASON} characters, '
            f"got {reason!r:.80}"
        )
    return KillCommand(reason=reason.strip())


def _parse_swap(command: dict[str, Any]) -> SwapCommand:
    rpc = command["rpc"]
    if not isinstance(rpc, str) or "://" not in rpc:
        raise ConfigError(f'control command needs "rpc": "tcp://host:port", got {rpc!r}')
    _only(command, {"rpc", "id", "carry_portfolio"})
    carry = command.get("carry_portfolio", False)
    if not isinstance(carry, bool):
        raise ConfigError(f'control command "carry_portfolio" must be true or false, got {carry!r}')
    return SwapCommand(rpc=rpc, id=str(command.get("id", "")), carry_portfolio=carry)


def _only(command: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(map(str, set(command) - allowed))
    if unknown:
        raise ConfigError(f"control command has unknown fields: {', '.join(unknown)}")


def set_kill_switch(
    settings: MqttSettings, *, bridge: str, reason: str | None, timeout: float
) -> dict[str, Any]:
    """Turn bridge `bridge`'s kill switch on (a `reason`) or off (None); wait until it reports it.

    The command is retained on ``control/bridge/<bridge>``: a bridge that
    restarts reads it again, so a killed algorithm stays stopped until lifted.

    Returns:
        The bridge's status that shows the switch in the new position.

    Raises:
        ConfigError: The bridge did not report the change within `timeout`
            seconds (it may be down or named differently; the command stays
            retained and applies when it starts), or the broker is unreachable.
    """
    command: dict[str, Any] = {"lift": True} if reason is None else {"kill": reason}
    expected = None if reason is None else reason.strip()
    seen: dict[str, Any] = {}
    done = threading.Event()

    def on_status(_topic: str, payload: bytes) -> None:
        status = json.loads(payload)
        if status.get("state") != "offline" and "killed" in status and status["killed"] == expected:
            seen.update(status)
            done.set()

    with BusClient(
        settings, component="cli", name="risk", on_message=on_status, announce=False
    ) as bus:
        bus.publish_json(control_topic("bridge", bridge), command, qos=1, retain=True)
        bus.subscribe([status_topic("bridge", bridge)], qos=1)
        if not done.wait(timeout):
            raise ConfigError(
                f"bridge {bridge!r} did not report the kill switch within {timeout:g} s; "
                "the command is retained and applies when the bridge (re)starts"
            )
    return seen


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
