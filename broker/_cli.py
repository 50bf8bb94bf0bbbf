"""`tickbus broker`: run a local MQTT broker in the foreground."""

from __future__ import annotations

from pathlib import Path

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
        "address (e.g. 0.0.0.0) exposes it to the network, where without --auth "
        "anyone can connect."
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
@click.option(
    "--auth",
    "auth_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help=(
        "Require a login. At start-up, each role (feed, bridge, execution, relay, "
        "operator, viewer) becomes an MQTT user with a new random password, written "
        "to DIR/ROLE.password (mode 0600; DIR is made if missing), and the shipped "
        "ACL (broker/acl) confines each to its topics. Components connect with "
        "--mqtt mqtt://ROLE@HOST:PORT --mqtt-password-file DIR/ROLE.password. "
        "Needs mosquitto and its mosquitto_passwd."
    ),
)
@click.pass_context
def broker_command(
    ctx: click.Context, port: int, bind: str, engine: Engine, auth_dir: Path | None
) -> None:
    """Run a local MQTT broker until Ctrl-C (SIGINT) or SIGTERM.

    Fails if something already listens on the address. Retained messages and
    sessions are not kept after the broker stops; with --auth, neither are the
    passwords: every start makes new ones.
    """
    try:
        config = LocalBrokerConfig(port=port, bind=bind, engine=engine, auth_dir=auth_dir)
        code = run_local_broker(config)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    ctx.exit(code)
