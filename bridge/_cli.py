"""`tickbus bridge` and `tickbus swap`."""

from __future__ import annotations

import json
from typing import Any

import click

from algos.server import heartbeat_option, params_option
from bridge._bridge import Bridge
from bridge._config import BridgeConfig
from bridge._control import RPC_FORMS, request_swap, set_kill_switch, validate_rpc_address
from bridge._overflow import Overflow
from broker import MqttSettings, mqtt_option, price_band_option, validate_name
from risk import RiskLimits, risk_limit_options
from tickbus.errors import ConfigError, RingError, SwapFailed
from tickbus.metrics import metrics_endpoint, metrics_options


@click.command(name="bridge")
@mqtt_option
@click.option(
    "--rpc",
    required=True,
    metavar="tcp://HOST:PORT",
    callback=lambda _ctx, _param, value: _rpc_address(value),
    help=f"The algorithm server's zerorpc address: {RPC_FORMS}, as `tickbus algo serve "
    "--addr` printed it.",
)
@click.option(
    "--name",
    required=True,
    help="The bridge's name: it publishes orders/NAME and status/bridge/NAME, "
    "and takes commands on control/bridge/NAME.",
)
@params_option("Sent to the algorithm's initialize(params), also after a reconnect.")
@heartbeat_option(peer="server")
@click.option(
    "--rpc-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds one call may take before the algorithm counts as unavailable.",
)
@click.option(
    "--source",
    default="mqtt",
    show_default=True,
    metavar="mqtt|ring://NAME",
    callback=lambda _ctx, _param, value: _parse_source(value),
    help="Where quotes come from: the broker (subscribing to the algorithm's channels), "
    "or a host-local ring fed by `tickbus feed --ring` or `tickbus ring relay`; quotes "
    "from a ring are filtered by the channels with the same MQTT wildcard rules.",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=5_000,
    show_default=True,
    help="Most quotes sent in one events() call.",
)
@click.option(
    "--coalesce-ms",
    type=click.FloatRange(min=0.0),
    default=2.0,
    show_default=True,
    help="Under load (a call carried 16 quotes or more), the least time between the "
    "starts of two events() calls, so quotes gather into fewer, larger calls (each "
    "call costs the bridge CPU); a lone quote never waits. 0 calls again as soon "
    "as a call returns.",
)
@click.option(
    "--max-pending",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Quotes kept while the algorithm is busy or down; beyond that --overflow "
    "applies. With conflate, keep it well above the number of symbols.",
)
@click.option(
    "--overflow",
    type=click.Choice([policy.value for policy in Overflow]),
    default=Overflow.CONFLATE.value,
    show_default=True,
    callback=lambda _ctx, _param, value: Overflow(value),
    help="When --max-pending quotes wait: conflate keeps only the newest quote of each "
    "symbol, drop-oldest drops the oldest, block makes the source wait for the "
    "algorithm (while the algorithm is down, block drops the oldest). Every quote "
    "conflated or dropped is counted on status/bridge/NAME.",
)
@risk_limit_options
@price_band_option("the bridge")
@metrics_options
def bridge_command(
    mqtt: MqttSettings,
    rpc: str,
    name: str,
    params: dict[str, Any],
    heartbeat: float,
    rpc_timeout: float,
    source: str | None,
    max_batch: int,
    coalesce_ms: float,
    max_pending: int,
    overflow: Overflow,
    risk: RiskLimits,
    max_price_jump_pct: float,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Forward the quotes an algorithm asks for to it, and publish its orders.

    Calls initialize(params) on the algorithm at --rpc, subscribes to the
    channels it returns, sends quotes in batches with events(quotes) (one call
    in flight), and publishes each order as JSON on orders/NAME once it passes
    the order schema and the risk limits (--max-*, --risk-limits) and the kill
    switch (`tickbus risk kill`); a refused order goes to orders/NAME/rejected
    with its reason. Fills on fills/NAME, and execution's rejections, go back
    to the algorithm with fill(). Bad payloads, and quotes beyond the price
    band (--max-price-jump-pct), go to deadletter/bridge with the reason.

    If the algorithm dies, the bridge keeps the quotes (up to --max-pending,
    then --overflow applies) and the fills, reports "degraded" on
    status/bridge/NAME, and re-initialises the server when it is back. If the
    algorithm raises instead, or answers nonsense, the batch goes to
    deadletter/bridge with the algorithm's error (counted as algo_errors,
    last_algo_error) and the next quotes go on. `tickbus swap` points it at
    another server while quotes keep flowing.

    With --metrics-port it serves Prometheus metrics: the status counters,
    and the latency of each events call.
    """
    try:
        config = BridgeConfig(
            mqtt=mqtt,
            rpc=rpc,
            name=validate_name(name),
            ring=source,
            params=params,
            heartbeat=heartbeat,
            rpc_timeout=rpc_timeout,
            max_pending=max_pending,
            overflow=overflow,
            max_batch=max_batch,
            coalesce=coalesce_ms / 1000,
            risk=risk,
            max_price_jump_pct=max_price_jump_pct,
            metrics=metrics_endpoint(metrics_port, metrics_addr),
        )
        Bridge(config).run()
    except (ConfigError, RingError) as exc:
        raise click.ClickException(exc.reason) from exc


@click.command(name="swap")
@mqtt_option
@click.option("--bridge", "bridge_name", required=True, help="The bridge's --name.")
@click.option(
    "--rpc",
    required=True,
    metavar="tcp://HOST:PORT",
    callback=lambda _ctx, _param, value: _rpc_address(value),
    help=f"The new algorithm server's zerorpc address: {RPC_FORMS}.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the bridge to report the swap.",
)
@click.option(
    "--carry-portfolio",
    is_flag=True,
    help="Hand the old algorithm's portfolio to the new one: the swap changes the "
    "strategy and keeps the book.",
)
def swap_command(
    mqtt: MqttSettings, bridge_name: str, rpc: str, timeout: float, carry_portfolio: bool
) -> None:
    """Point a running bridge at another algorithm server, with no quote lost.

    The bridge initialises the new server, moves its subscriptions to the new
    algorithm's channels, calls finalize on the old one and goes on; quotes that
    arrive meanwhile go to the new algorithm. With --carry-portfolio the new
    algorithm starts from the old one's portfolio (cash, positions, PnL) instead
    of fresh cash. Prints the old algorithm's final state; exits non-zero if the
    bridge kept its old algorithm (and says why).

    Refused at once, with nothing sent, when no bridge named --bridge has
    ever reported on the broker (the message lists those that have) or when
    its status is offline (start it with the new --rpc instead).
    """
    try:
        report = request_swap(
            mqtt,
            bridge=validate_name(bridge_name),
            rpc=rpc,
            timeout=timeout,
            carry_portfolio=carry_portfolio,
        )
    except SwapFailed as exc:
        raise click.ClickException(
            f"swap failed, the bridge kept its algorithm: {exc.reason}"
        ) from exc
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    click.echo(f"bridge {bridge_name} now forwards to {rpc}")
    click.echo(json.dumps({"finalize": report.get("finalize")}, indent=2))


_confirm_timeout = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the bridge to confirm.",
)


@click.group(name="risk")
def risk_group() -> None:
    """Operate a bridge's kill switch: stop an algorithm's orders at once, or let them go."""


@risk_group.command(name="kill")
@mqtt_option
@click.option("--bridge", "bridge_name", required=True, help="The bridge's --name.")
@click.option("--reason", required=True, help="Why; every refused order carries it.")
@_confirm_timeout
def kill_command(mqtt: MqttSettings, bridge_name: str, reason: str, timeout: float) -> None:
    """Refuse every new order of the bridge's algorithm, from the next order on.

    Quotes keep flowing to the algorithm; its orders go to orders/NAME/rejected
    with the reason. The switch is retained on control/bridge/NAME, so it holds
    across a bridge restart, until `tickbus risk lift`. A bridge that never
    reported on the broker is refused (the message lists those that did); for
    an offline one the switch is retained and applies when it restarts.
    """
    if _set_switch(mqtt, bridge_name, reason, timeout):
        click.echo(f"bridge {bridge_name}: kill switch on ({reason})")


@risk_group.command(name="lift")
@mqtt_option
@click.option("--bridge", "bridge_name", required=True, help="The bridge's --name.")
@_confirm_timeout
def lift_command(mqtt: MqttSettings, bridge_name: str, timeout: float) -> None:
    """Let the bridge's algorithm trade again (every order still checked against the limits).

    Like kill: refused for a bridge that never reported; retained for an offline one.
    """
    if _set_switch(mqtt, bridge_name, None, timeout):
        click.echo(f"bridge {bridge_name}: kill switch lifted")


def _set_switch(mqtt: MqttSettings, bridge_name: str, reason: str | None, timeout: float) -> bool:
    """Send the switch; True once the bridge confirmed it, False when it is offline (said here)."""
    name = _bridge_name(bridge_name)
    try:
        confirmed = set_kill_switch(mqtt, bridge=name, reason=reason, timeout=timeout)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    if confirmed is None:
        what = "kill switch" if reason is not None else "lift of the kill switch"
        click.echo(
            f"bridge {name} is offline: the {what} is retained on control/bridge/{name} "
            "and applies when it restarts"
        )
        return False
    return True


def _bridge_name(name: str) -> str:
    """`name` as a valid topic level, or a usage error naming --bridge."""
    try:
        return validate_name(name)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason, param_hint="'--bridge'") from None


def _rpc_address(value: str) -> str:
    """--rpc, checked by `validate_rpc_address`; a usage error before anything starts."""
    try:
        return validate_rpc_address(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason) from None


def _parse_source(value: str) -> str | None:
    """None for ``mqtt``, the ring name for ``ring://NAME``."""
    if value == "mqtt":
        return None
    if value.startswith("ring://") and len(value) > len("ring://"):
        return value[len("ring://") :]
    raise click.BadParameter(f"expected mqtt or ring://NAME, got {value!r}")
