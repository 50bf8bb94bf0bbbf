"""The `--mqtt` option every command that talks to the broker shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from broker._url import DEFAULT_MQTT_URL, MQTT_URL_ENV, MqttSettings
from tickbus.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _to_settings(_ctx: click.Context, _param: click.Parameter, url: str) -> MqttSettings:
    try:
        return MqttSettings.from_url(url)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason) from exc


def mqtt_option(function: F) -> F:
    """Add ``--mqtt URL`` (env TICKBUS_MQTT_URL), passed to the command as `MqttSettings`."""
    return click.option(
        "--mqtt",
        "mqtt",
        default=DEFAULT_MQTT_URL,
        envvar=MQTT_URL_ENV,
        show_default=True,
        show_envvar=True,
        metavar="URL",
        callback=_to_settings,
        help="The broker: mqtt://[user:pass@]host:port.",
    )(function)
