"""Commands on ``control/bridge/<name>`` and the client side that sends them.

The senders (`request_swap`, `set_kill_switch`) first read the retained
statuses of the bridges on the bus, so a command for a bridge that never
reported is refused at once, naming the bridges that did, instead of waiting
for an answer that cannot come.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker import BusClient, MqttSettings, control_topic, decode_status
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

RPC_FORMS = "tcp://HOST:PORT or ipc://PATH"
"""The zerorpc addresses a bridge connects to, as error messages spell them."""

LOOKUP_TIMEOUT_S = 2.0
"""How long a command waits for the broker to hand over the bridges' retained statuses."""

BRIDGE_STATUS_FILTER = "status/bridge/+"

_PORT = re.compile(r"[0-9]{1,5}")
_HOST = re.compile(r"[\w.-]+|\[[0-9A-Fa-f:.]+\]")  # a name, an IPv4 address, or [IPv6]


def validate_rpc_address(address: str) -> str:
    """Check a zerorpc address that a bridge connects to; return it unchanged.

    Accepted: ``tcp://HOST:PORT`` (a host name, an IPv4 address or an IPv6
    address in brackets; a port 1-65535) and ``ipc://PATH``. This checks the
    form only: whether a server answers there is the bridge's business.

    Raises:
        ConfigError: Any other form. The reason names the expected forms and,
            when the scheme is missing (``127.0.0.1:4300``, ``4300``, ``/tmp/algo``),
            suggests the address meant (``tcp://127.0.0.1:4300``, ``ipc:///tmp/algo``).
    """
    scheme, sep, rest = address.partition("://")
    if not sep:
        raise ConfigError(f"expected {RPC_FORMS}, got {address!r}{_suggestion(address)}")
    if scheme == "ipc":
        if not rest or any(char.isspace() for char in rest):
            raise ConfigError(f"expected ipc://PATH, got {address!r}")
        return address
    if scheme != "tcp":
        raise ConfigError(f"expected {RPC_FORMS}, got {address!r}: a bridge speaks tcp or ipc")
    problem = _tcp_problem(rest)
    if problem is not None:
        raise ConfigError(f"expected tcp://HOST:PORT, got {address!r}: {problem}")
    return address


def _tcp_problem(hostport: str) -> str | None:
    """What is wrong with the ``HOST:PORT`` of a tcp address, or None."""
    host, colon, port = hostport.rpartition(":")
    if not colon or not _PORT.fullmatch(port):
        return "it needs a port, e.g. tcp://127.0.0.1:4300"
    if not 1 <= int(port) <= 65535:
        return f"the port must be 1-65535, got {port}"
    if host == "*":
        return "* is for a server to listen on; connect to its host, e.g. tcp://127.0.0.1:" + port
    if not _HOST.fullmatch(host):
        return f"bad host {host!r} (an IPv6 address goes in brackets: tcp://[::1]:{port})"
    return None


def _suggestion(text: str) -> str:
    """``; did you mean tcp://...?`` for an address without a scheme, when one fits."""
    if _PORT.fullmatch(text):
        return f"; did you mean tcp://127.0.0.1:{text}?"
    if _tcp_problem(text) is None:
        return f"; did you mean tcp://{text}?"
    if text.startswith(("/", "./")):
        return f"; did you mean ipc://{text}?"
    return ""


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
    if not isinstance(rpc, str):
        raise ConfigError(f'control command needs "rpc": "tcp://host:port", got {rpc!r}')
    try:
        validate_rpc_address(rpc)
    except ConfigError as exc:
        raise ConfigError(
            f'control command needs "rpc": "tcp://host:port" or "ipc://path" ({exc.reason})'
        ) from None
    _only(command, {"rpc", "id", "carry_portfolio"})
    carry = command.get("carry_portfolio", False)
    if not isinstance(carry, bool):
        raise ConfigError(f'control command "carry_portfolio" must be true or false, got {carry!r}')
    return SwapCommand(rpc=rpc, id=str(command.get("id", "")), carry_portfolio=carry)


def _only(command: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(map(str, set(command) - allowed))
    if unknown:
        raise ConfigError(f"control command has unknown fields: {', '.join(unknown)}")


class _BridgeStatuses:
    """The newest status of every bridge on the bus, kept by a `BusClient` handler.

    `on_message` runs in paho's thread; `watch` (set by the caller, once
    its command is out) is called there with each status of one bridge.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[str, dict[str, Any]] = {}
        self._watched: tuple[str, Callable[[dict[str, Any]], None]] | None = None

    def on_message(self, topic: str, payload: bytes) -> None:
        """Keep the status on ``status/bridge/<name>``; a payload that is not one is ignored."""
        status = decode_status(payload)
        if status is None:
            return
        name = topic.rpartition("/")[2]
        with self._lock:
            self._statuses[name] = status
            watched = self._watched
        if watched is not None and watched[0] == name:
            watched[1](status)

    def watch(self, bridge: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call `handler` with every status of `bridge` that arrives from now on."""
        with self._lock:
            self._watched = (bridge, handler)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Bridge name -> its newest status."""
        with self._lock:
            return dict(self._statuses)


def _look_up(bus: BusClient, statuses: _BridgeStatuses, bridge: str) -> dict[str, Any]:
    """The retained status of `bridge`, read through `bus` (whose handler feeds `statuses`).

    Raises:
        ConfigError: No bridge of that name has ever reported: the reason lists
            the bridges that have, with their states; or the broker did not
            answer within `LOOKUP_TIMEOUT_S`.
    """
    bus.subscribe([BRIDGE_STATUS_FILTER])
    if not bus.round_trip(LOOKUP_TIMEOUT_S):
        raise ConfigError(
            f"the broker at {bus.settings.url} did not answer within {LOOKUP_TIMEOUT_S:g} s"
        )
    known = statuses.snapshot()
    if bridge in known:
        return known[bridge]
    where = bus.settings.url
    if not known:
        raise ConfigError(
            f"no bridge named {bridge!r} on {where}: no bridge has ever reported there "
            "(is --mqtt the broker your bridges use?)"
        )
    listed = ", ".join(
        f"{name} ({status.get('state', '?')})" for name, status in sorted(known.items())
    )
    raise ConfigError(
        f"no bridge named {bridge!r} has reported on {where}; the bridges there: {listed}"
    )


def _offline_for(status: dict[str, Any]) -> str:
    """`` (offline for 12 s)``, from the status's ``ts``; empty when it has none."""
    ts = status.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return ""
    return f" (offline for {max(0.0, time.time() - ts):.0f} s)"


def set_kill_switch(
    settings: MqttSettings, *, bridge: str, reason: str | None, timeout: float
) -> dict[str, Any] | None:
    """Turn bridge `bridge`'s kill switch on (a `reason`) or off (None); wait until it reports it.

    The bridge's retained status is read first. The command is retained on
    ``control/bridge/<bridge>``: a bridge that restarts reads it again, so a
    killed algorithm stays stopped until lifted. For a bridge whose status is
    ``offline`` the command is retained and nothing is awaited.

    Returns:
        The bridge's status that shows the switch in the new position, or None
        when the bridge is offline (the command waits for its restart).

    Raises:
        ConfigError: No bridge named `bridge` has ever reported (nothing is
            published; the reason lists the bridges on the bus); the bridge did
            not report the change within `timeout` seconds (the command stays
            retained and applies when it (re)starts); or the broker is unreachable.
    """
    command: dict[str, Any] = {"lift": True} if reason is None else {"kill": reason}
    expected = None if reason is None else reason.strip()
    seen: dict[str, Any] = {}
    done = threading.Event()

    def on_status(status: dict[str, Any]) -> None:
        if status.get("state") != "offline" and "killed" in status and status["killed"] == expected:
            seen.update(status)
            done.set()

    statuses = _BridgeStatuses()
    with BusClient(
        settings, component="cli", name="risk", on_message=statuses.on_message, announce=False
    ) as bus:
        offline = _look_up(bus, statuses, bridge).get("state") == "offline"
        statuses.watch(bridge, on_status)
        info = bus.publish_json(control_topic("bridge", bridge), command, qos=1, retain=True)
        if offline:
            info.wait_for_publish(timeout)
            return None
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

    The bridge's retained status is read first: a bridge that never reported,
    or is offline, would never answer.

    Returns:
        The bridge's ``last_swap`` report (``rpc``, ``ok``, ``finalize``: the old
        algorithm's final state).

    Raises:
        SwapFailed: The bridge reported that the swap failed.
        ConfigError: `rpc` is not a zerorpc address (`validate_rpc_address`);
            no bridge named `bridge` has ever reported (the reason lists those
            that have); its status is ``offline``; no report within `timeout`
            seconds; or the broker is unreachable. Nothing is sent in the first
            three cases.
    """
    validate_rpc_address(rpc)
    command_id = uuid.uuid4().hex
    report: dict[str, Any] = {}
    done = threading.Event()

    def on_status(status: dict[str, Any]) -> None:
        swap = status.get("last_swap") or {}
        if isinstance(swap, dict) and swap.get("id") == command_id:
            report.update(swap)
            done.set()

    statuses = _BridgeStatuses()
    with BusClient(
        settings, component="cli", name="swap", on_message=statuses.on_message, announce=False
    ) as bus:
        status = _look_up(bus, statuses, bridge)
        if status.get("state") == "offline":
            raise ConfigError(
                f"bridge {bridge!r} is offline{_offline_for(status)}: nothing would answer the "
                f"swap; start it with the new server instead: tickbus bridge --name {bridge} "
                f"--rpc {rpc}"
            )
        statuses.watch(bridge, on_status)
        command = {"rpc": rpc, "id": command_id, "carry_portfolio": carry_portfolio}
        bus.publish_json(control_topic("bridge", bridge), command, qos=1)
        if not done.wait(timeout):
            raise ConfigError(f"bridge {bridge!r} did not report the swap within {timeout:g} s")
    if not report.get("ok"):
        raise SwapFailed(str(report.get("reason", "unknown reason")))
    return report
