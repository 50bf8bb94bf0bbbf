"""`tickbus feed synthetic`, `tickbus feed csv` and `tickbus feed replay`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from broker import MqttSettings, mqtt_option, parse_symbols, validate_name
from feeds._config import CsvFeedConfig, SyntheticFeedConfig, WireFormat
from feeds._replay import ReplayFeedConfig, run_replay
from feeds._run import run_csv, run_synthetic
from tape import selection_options
from tickbus.errors import ConfigError, RingError
from tickbus.metrics import metrics_endpoint, metrics_options

F = TypeVar("F", bound=Callable[..., Any])

_batch_options = (
    click.option(
        "--batch",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Pack up to N quotes of one symbol into each MQTT message (a msgpack array), "
        "for high rates; bridges decode packed and single messages alike.",
    ),
    click.option(
        "--batch-ms",
        type=click.FloatRange(min=0.1),
        default=10.0,
        show_default=True,
        help="Milliseconds a quote may wait for its pack to fill.",
    ),
)


def _with_batch_options(function: F) -> F:
    for option in reversed(_batch_options):
        function = option(function)
    return function


_speed_option = click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Replay at this multiple of the recorded pace; 0 is as fast as possible.",
)

_format_option = click.option(
    "--format",
    "wire_format",
    type=click.Choice(["json", "msgpack"]),
    default="json",
    show_default=True,
    help="Payload encoding: json is readable with mosquitto_sub, msgpack is compact.",
)


@click.group(name="feed")
def feed_group() -> None:
    """Publish quotes to quotes/<SYMBOL>."""


@feed_group.command(name="synthetic")
@mqtt_option
@click.option(
    "--symbols",
    default="GOOG,AAPL",
    show_default=True,
    help="Comma-separated symbols, quoted round-robin.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=200.0,
    show_default=True,
    help="Quotes per second over all symbols; 0 publishes as fast as possible.",
)
@click.option("--count", type=click.IntRange(min=0), default=None, help="Stop after N quotes.")
@click.option("--seed", type=int, default=None, help="Random seed, for reproducible prices.")
@click.option("--name", default="synthetic", show_default=True, help="Name on status/feed/NAME.")
@_format_option
@click.option(
    "--ring",
    default=None,
    metavar="NAME",
    help="Also write every quote into this host-local ring (a name in /dev/shm, or a path).",
)
@click.option(
    "--no-mqtt", is_flag=True, help="Publish to the --ring only, not to MQTT (and no status)."
)
@_with_batch_options
@metrics_options
def synthetic_command(
    mqtt: MqttSettings,
    symbols: str,
    rate: float,
    count: int | None,
    seed: int | None,
    name: str,
    wire_format: WireFormat,
    ring: str | None,
    no_mqtt: bool,
    batch: int,
    batch_ms: float,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Publish a random walk per symbol (positive prices, bid < ask).

    Runs until --count quotes are sent, or until SIGTERM or Ctrl-C; announces
    itself on status/feed/NAME (retained online, offline as its will). With
    --ring it is also the ring's one writer; a second writer is refused.
    """
    if no_mqtt and ring is None:
        raise click.UsageError("--no-mqtt needs --ring: the quotes must go somewhere")
    try:
        config = SyntheticFeedConfig(
            mqtt=None if no_mqtt else mqtt,
            ring=ring,
            batch=batch,
            batch_ms=batch_ms,
            symbols=parse_symbols(symbols),
            rate=rate,
            count=count,
            seed=seed,
            name=validate_name(name),
            wire_format=wire_format,
            metrics=metrics_endpoint(metrics_port, metrics_addr),
        )
        published = run_synthetic(config)
    except (ConfigError, RingError) as exc:
        raise click.ClickException(exc.reason) from exc
    click.echo(f"published {published} quotes", err=True)


@feed_group.command(name="csv")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@mqtt_option
@_speed_option
@click.option("--name", default=None, help="Name on status/feed/NAME [default: csv-FILESTEM].")
@_format_option
@_with_batch_options
@metrics_options
def csv_command(
    path: Path,
    mqtt: MqttSettings,
    speed: float,
    name: str | None,
    wire_format: WireFormat,
    batch: int,
    batch_ms: float,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Replay quotes from a CSV file with columns ts,sid,price (optional bid,ask,size).

    ts is in epoch seconds. Rows that are not valid quotes go to deadletter/feed
    with their line number; the replay goes on.
    """
    try:
        config = CsvFeedConfig(
            mqtt=mqtt,
            path=path,
            speed=speed,
            name=validate_name(name or f"csv-{path.stem}"),
            wire_format=wire_format,
            batch=batch,
            batch_ms=batch_ms,
            metrics=metrics_endpoint(metrics_port, metrics_addr),
        )
        published, rejected = run_csv(config)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    click.echo(f"published {published} quotes, rejected {rejected} rows", err=True)


@feed_group.command(name="replay")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@mqtt_option
@_speed_option
@selection_options("replay")
@click.option("--name", default=None, help="Name on status/feed/NAME [default: replay-DIRNAME].")
@_format_option
@_with_batch_options
@metrics_options
def replay_command(
    directory: Path,
    mqtt: MqttSettings,
    speed: float,
    symbols: tuple[str, ...] | None,
    start: datetime | float | None,
    end: datetime | float | None,
    name: str | None,
    wire_format: WireFormat,
    batch: int,
    batch_ms: float,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Replay a recorded dataset (a tape directory) onto quotes/<SYMBOL>, in time order.

    Quotes of every file and symbol are merged by their recorded ts (ties: by
    file, then row) and sent at --speed times the recorded pace, with the ts
    they were recorded with. --symbols, --start and --end select what to send;
    a selection with nothing in it fails at once and says what the dataset
    holds. Announces itself on status/feed/NAME (retained online, offline as
    its will, counters every second); stops cleanly on SIGTERM or Ctrl-C.
    For example: tickbus feed replay data/ticks --symbols goog --start
    2026-12-03T14:30 --end 2026-12-04 --speed 10
    """
    try:
        config = ReplayFeedConfig(
            mqtt=mqtt,
            path=directory,
            speed=speed,
            symbols=symbols,
            start=start,
            end=end,
            name=validate_name(name or f"replay-{directory.resolve().name}"),
            wire_format=wire_format,
            batch=batch,
            batch_ms=batch_ms,
            metrics=metrics_endpoint(metrics_port, metrics_addr),
        )
        published = run_replay(config)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    click.echo(f"published {published} quotes", err=True)
