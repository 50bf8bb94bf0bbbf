"""The umbrella command: `tickbus broker|feed|algo|bridge|swap|risk|execution|ring|view|up`."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import click

from algos.server import algo_group
from bridge import bridge_command, risk_group, swap_command
from broker import MQTT_URL_ENV, MqttSettings, broker_command, mqtt_option
from execution import execution_group
from feeds import feed_group
from ring import ring_group
from tickbus._stack import StackConfig, run_stack
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
def view_command(mqtt: MqttSettings, interval: float, duration: float | None) -> None:
    """Show quotes/s, orders and equity of every algorithm, live, from status/#."""
    stopping = _stop_on_signals()
    try:
        run_view(
            ViewConfig(mqtt=mqtt, interval=interval, duration=duration),
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
    help="Use this broker instead of a local one (mqtt://[user:pass@]host:port).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=1883,
    show_default=True,
    help="Port of the local broker; if one already listens there, it is used.",
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
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where each process's log goes [default: a new temporary directory].",
)
def up_command(
    mqtt_url: str | None,
    port: int,
    symbols: str,
    rate: float,
    duration: float | None,
    log_dir: Path | None,
) -> None:
    """Run the whole stack here: broker, feed, two algorithms with their bridges, live view.

    Ctrl-C or SIGTERM stops every process it started. Without --mqtt it starts
    a broker on 127.0.0.1:PORT, or uses the one already listening there.
    """
    try:
        config = StackConfig(
            mqtt=MqttSettings.from_url(mqtt_url) if mqtt_url else None,
            port=port,
            symbols=symbols,
            rate=rate,
            duration=duration,
            log_dir=log_dir,
        )
        code = run_stack(config)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    raise SystemExit(code)


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
