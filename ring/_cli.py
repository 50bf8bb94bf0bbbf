"""`tickbus ring relay` and `tickbus ring stat`."""

from __future__ import annotations

import json

import click

from broker import MqttSettings, mqtt_option
from ring._file import writer_alive
from ring._reader import RingReader
from ring._relay import RelayConfig, run_relay
from ring._writer import DEFAULT_CAPACITY
from tickbus.errors import ConfigError, RingError


@click.group(name="ring")
def ring_group() -> None:
    """Host-local tick rings: relay MQTT quotes into one, inspect one."""


@ring_group.command(name="relay")
@mqtt_option
@click.option(
    "--topics",
    default="quotes/#",
    show_default=True,
    help="Comma-separated MQTT topic filters whose quotes go into the ring.",
)
@click.option("--ring", "ring_name", required=True, metavar="NAME", help="Ring name or path.")
@click.option(
    "--capacity",
    type=click.IntRange(min=2),
    default=DEFAULT_CAPACITY,
    show_default=True,
    help="Ticks the ring holds, a power of two (used only when the ring is created).",
)
def relay_command(mqtt: MqttSettings, topics: str, ring_name: str, capacity: int) -> None:
    """Subscribe once on this host and write every decoded quote into a ring.

    Any number of local bridges then read the ring (`tickbus bridge --source
    ring://NAME`) instead of each subscribing to the broker. The relay is the
    ring's one writer; bad payloads go to deadletter/relay. Stops on SIGTERM
    or Ctrl-C.
    """
    filters = tuple(t.strip() for t in topics.split(",") if t.strip())
    try:
        run_relay(RelayConfig(mqtt=mqtt, topics=filters, ring=ring_name, capacity=capacity))
    except (ConfigError, RingError) as exc:
        raise click.ClickException(exc.reason) from exc


@ring_group.command(name="stat")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stat_command(name: str, as_json: bool) -> None:
    """Print a ring's writer position, capacity and writer liveness."""
    try:
        with RingReader(name) as reader:
            stats = {
                "path": str(reader.path),
                "written": reader.written(),
                "capacity": reader.capacity,
                "symbols": len(reader.symbols()),
                "writer_pid": reader.writer_pid(),
                "writer_alive": writer_alive(reader.path),
                "writer_epoch": reader.epoch(),
            }
    except RingError as exc:
        raise click.ClickException(exc.reason) from exc
    if as_json:
        click.echo(json.dumps(stats))
        return
    for key, value in stats.items():
        click.echo(f"{key:<14}{value}")
