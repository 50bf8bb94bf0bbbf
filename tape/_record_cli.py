"""`tickbus record`: the recorder's command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from broker import MqttSettings, mqtt_option, validate_filter, validate_name
from tape._config import RING_SCHEME, RecorderConfig
from tape._recorder import run_recorder
from tickbus.errors import ConfigError, RingError
from tickbus.metrics import metrics_endpoint, metrics_options

MIB = 1024 * 1024


@click.command(name="record")
@mqtt_option
@click.option(
    "--topics",
    default="quotes/#",
    show_default=True,
    help="Comma-separated MQTT topic filters whose quotes are recorded "
    "(e.g. quotes/GOOG,quotes/AAPL). With a ring, the filters its ticks' "
    "topics quotes/SID must match.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The dataset's directory (created if missing); other recorders may share it.",
)
@click.option(
    "--name",
    default="recorder",
    show_default=True,
    help="Name on status/recorder/NAME, of the journal DIR/_journal/NAME.arrows "
    "and in the files' names (part-NAME-...).",
)
@click.option(
    "--flush-s",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds between appends to the journal (fsync'd): at most this much is lost to a crash.",
)
@click.option(
    "--roll-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=64.0,
    show_default=True,
    help="Turn the journal into Parquet files when it is this large (MiB).",
)
@click.option(
    "--roll-s",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Turn the journal into Parquet files when its first rows are this old (seconds).",
)
@click.option(
    "--source",
    default="mqtt",
    show_default=True,
    metavar="mqtt|ring://NAME",
    help="Record quotes from MQTT, or from the host-local ring NAME (a name or a path).",
)
@metrics_options
def record_command(
    mqtt: MqttSettings,
    topics: str,
    out: Path,
    name: str,
    flush_s: float,
    roll_mb: float,
    roll_s: float,
    source: str,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Record quotes into a Parquet dataset at --out, crash-safe.

    Every decoded quote (JSON or msgpack, single, arrays, short form) becomes
    a row: ts (the quote's, in ns), arrival (ns, when it was received), sid,
    price, bid, ask, size and topic. Files are hive-partitioned by the UTC
    date of ts (DIR/date=YYYY-MM-DD/part-NAME-...parquet, zstd), so pyarrow,
    pandas, polars and DuckDB read the directory as is.

    Rows are appended to a journal (DIR/_journal/NAME.arrows, Arrow IPC,
    fsync'd) every --flush-s seconds: a crash or kill -9 loses at most that
    much. The journal becomes finished Parquet files when it exceeds --roll-mb
    or --roll-s, and at a clean stop; a journal left by a crash is finished
    when a recorder of the same NAME starts again on the same DIR. Finished
    files are never rewritten.

    Payloads that are not quotes go to deadletter/recorder with the reason.
    Announces itself on status/recorder/NAME (counters every second); with
    --metrics-port serves them as Prometheus metrics. SIGTERM or Ctrl-C stops
    it cleanly: everything received is in Parquet files when it exits. For
    example: tickbus record --topics 'quotes/#' --out data/ticks --name main
    """
    try:
        config = RecorderConfig(
            mqtt=mqtt,
            out=out,
            name=validate_name(name),
            topics=_parse_filters(topics),
            ring=_parse_source(source),
            flush_s=flush_s,
            roll_bytes=max(1, round(roll_mb * MIB)),
            roll_s=roll_s,
            metrics=metrics_endpoint(metrics_port, metrics_addr),
        )
        stats = run_recorder(config)
    except (ConfigError, RingError) as exc:
        raise click.ClickException(exc.reason) from exc
    click.echo(f"recorded {json.dumps(stats)}", err=True)


def _parse_filters(text: str) -> tuple[str, ...]:
    filters = tuple(t.strip() for t in text.split(",") if t.strip())
    if not filters:
        raise ConfigError("--topics needs at least one topic filter, e.g. quotes/#")
    for topic_filter in filters:
        validate_filter(topic_filter)
    return filters


def _parse_source(source: str) -> str | None:
    """None for ``mqtt``; the ring's name for ``ring://NAME``."""
    if source == "mqtt":
        return None
    if source.startswith(RING_SCHEME) and source != RING_SCHEME:
        return source.removeprefix(RING_SCHEME)
    raise ConfigError(f"--source must be mqtt or ring://NAME, not {source!r}")
