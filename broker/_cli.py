"""`tickbus broker`: run a local MQTT broker in the foreground."""

from __future__ import annotations

import click

from broker._launcher import ENGINES, Engine, LocalBrokerConfig, run_local_broker
from tickbus.errors import ConfigError


@click.command(name="broker")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=1883,
    show_default=True,
    help="TCP port of the MQTT listener.",
)
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    help=(
        "Address to listen on. The default keeps the bus on this machine; any other "
        "address (e.g. 0.0.0.0) exposes it to the network, and the broker lets anyone "
        "connect without a password."
    ),
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help=(
        "mosquitto, the embedded pure-Python amqtt (for trying things out), or auto: "
        "mosquitto when installed, else amqtt."
    ),
)
@click.pass_context
def broker_command(ctx: click.Context, port: int, bind: str, engine: Engine) -> None:
    """Run a local MQTT broker until Ctrl-C (SIGINT) or SIGTERM.

    Fails if something already listens on the address. Retained messages and
    sessions are not kept after the broker stops.
    """
    try:
        code = run_local_broker(LocalBrokerConfig(port=port, bind=bind, engine=engine))
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    ctx.exit(code)
