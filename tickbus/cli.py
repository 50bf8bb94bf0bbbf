"""The umbrella command `tickbus`: every component's commands under one name."""

from __future__ import annotations

import dataclasses
import logging
import signal
from pathlib import Path
from types import FrameType

import click

from algos.scaffold import new_group
from algos.server import algo_group
from backtest import backtest_command
from bridge import bridge_command, risk_group, swap_command
from broker import (
    MQTT_CA_ENV,
    MQTT_PASSWORD_FILE_ENV,
    MQTT_URL_ENV,
    MqttSettings,
    broker_command,
    mqtt_option,
    with_password_file,
)
from dashboard import dashboard_command
from execution import execution_group
from feeds import feed_group
from ring import ring_group
from sweep import sweep_command
from tape import data_group, record_command
from tickbus._stack import StackConfig, run_stack
from tickbus._status import status_command
from tickbus._view import ViewConfig, run_view
from tickbus.errors import ConfigError


@click.group()
@click.version_option(package_name="tickbus")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much each process logs to stderr.",
)
def main(log_level: str) -> None:
    """tickbus: an event bus for algorithmic trading.

    Feeds publish quotes to MQTT; a bridge per algorithm forwards the quotes
    the algorithm asked for to its zerorpc server and publishes its orders.
    Start everything on this machine with `tickbus up`.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


@main.command(name="view")
@mqtt_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds [default: run until Ctrl-C].",
)
@click.option(
    "--forget-after",
    type=click.FloatRange(min=0),
    default=ViewConfig.forget_after,
    show_default=True,
    help="Leave out components that stopped cleanly more than this many seconds ago. "
    "A component lost without a clean stop (killed, crashed: the broker's will) stays "
    "until it runs again or `tickbus status --forget` clears it.",
)
def view_command(
    mqtt: MqttSettings, interval: float, duration: float | None, forget_after: float
) -> None:
    """Show quotes/s, orders and equity of every algorithm, live, from status/#.

    Each bridge's row names its algorithm's class; the line below gives the
    algorithm's address and the portfolio's positions. Components stopped
    cleanly more than --forget-after seconds ago are left out (the header
    counts them); `tickbus status --all` lists them.
    """
    stopping = _stop_on_signals()
    try:
        run_view(
            ViewConfig(mqtt=mqtt, interval=interval, duration=duration, forget_after=forget_after),
            keep_going=lambda: not stopping,
        )
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc


@main.command(name="up")
@click.option(
    "--mqtt",
    "mqtt_url",
    default=None,
    envvar=MQTT_URL_ENV,
    show_envvar=True,
    metavar="URL",
    help="Use this broker instead of a local one (mqtt[s]://[user@]host:port).",
)
@click.option(
    "--mqtt-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=MQTT_PASSWORD_FILE_ENV,
    show_envvar=True,
    metavar="FILE",
    help="With --mqtt: the password of the URL's user, read from FILE; every child "
    "process gets it through a 0600 file in the log directory, never on its command line.",
)
@click.option(
    "--mqtt-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=MQTT_CA_ENV,
    show_envvar=True,
    metavar="FILE",
    help="With an mqtts:// --mqtt: the CA certificates (PEM) that verify the broker.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=1883,
    show_default=True,
    help="Port of the local broker; if an MQTT broker already listens there, it is used "
    "(unless a stack already runs on it). A second stack next to a running one needs "
    "its own port.",
)
@click.option(
    "--symbols", default="GOOG,AAPL,MSFT", show_default=True, help="Symbols of the synthetic feed."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=50.0,
    show_default=True,
    help="Quotes per second of the synthetic feed.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds [default: run until Ctrl-C].",
)
@click.option(
    "--auth",
    is_flag=True,
    help="Start the broker with a login per role (tickbus broker --auth; passwords in "
    "LOG_DIR/credentials) and log every process in as its role. Needs a broker of "
    "its own: not with --mqtt, nor with a broker already on --port.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where each process's log goes [default: a new temporary directory].",
)
@click.option(
    "--dashboard-port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="The web dashboard's port on 127.0.0.1 (another free one when it is taken).",
)
@click.option("--no-dashboard", is_flag=True, help="Start no web dashboard.")
def up_command(
    mqtt_url: str | None,
    mqtt_password_file: Path | None,
    mqtt_ca: Path | None,
    port: int,
    symbols: str,
    rate: float,
    duration: float | None,
    auth: bool,
    log_dir: Path | None,
    dashboard_port: int,
    no_dashboard: bool,
) -> None:
    """Run the whole stack here: broker, feed, two algorithms with their bridges, live view.

    It also serves the web dashboard (tickbus dashboard) on
    http://localhost:DASHBOARD_PORT/ and prints its address.

    Ctrl-C or SIGTERM stops every process it started. Without --mqtt it starts
    a broker on 127.0.0.1:PORT, or uses the MQTT broker already listening
    there; something else listening there (Redis on 6379, say) is refused.

    One stack per broker: the stack's components have fixed names (execution
    paper, bridges random and sma, feed synthetic), and on a broker where any
    of them is already running, up refuses before starting anything and names
    them. To run a second stack next to a running one, give it a broker of
    its own: tickbus up --port 1884.
    """
    try:
        config = StackConfig(
            mqtt=_up_settings(mqtt_url, mqtt_password_file, mqtt_ca),
            port=port,
            symbols=symbols,
            rate=rate,
            duration=duration,
            log_dir=log_dir,
            auth=auth,
            dashboard_port=None if no_dashboard else dashboard_port,
        )
        code = run_stack(config)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    raise SystemExit(code)


def _up_settings(
    url: str | None, password_file: Path | None, ca_file: Path | None
) -> MqttSettings | None:
    """The broker `up` was told to use, or None (start or find a local one).

    Raises:
        ConfigError: A bad URL or file, or a file option without --mqtt.
    """
    if url is None:
        if password_file is not None or ca_file is not None:
            raise ConfigError("--mqtt-password-file and --mqtt-ca need --mqtt URL")
        return None
    settings = MqttSettings.from_url(url)
    if password_file is not None:
        settings = with_password_file(settings, password_file)
    if ca_file is not None:
        settings = dataclasses.replace(settings, ca_file=ca_file)
    return settings


def _stop_on_signals() -> list[bool]:
    """Make SIGTERM and SIGINT set a flag (a list, so closures see it change)."""
    stopping: list[bool] = []

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stopping.append(True)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
    return stopping


main.add_command(broker_command)
main.add_command(feed_group)
main.add_command(algo_group)
main.add_command(bridge_command)
main.add_command(swap_command)
main.add_command(risk_group)
main.add_command(ring_group)
main.add_command(execution_group)
main.add_command(status_command)
main.add_command(new_group)
main.add_command(data_group)
main.add_command(record_command)
main.add_command(backtest_command)
main.add_command(sweep_command)
main.add_command(dashboard_command)
