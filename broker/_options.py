"""The connection options every command that talks to the broker shares.

``--mqtt URL``, ``--mqtt-password-file FILE`` and ``--mqtt-ca FILE`` describe
one connection together; `mqtt_option` adds all three and hands the command a
single `MqttSettings`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from broker._secret_file import read_password_file
from broker._url import DEFAULT_MQTT_URL, MQTT_URL_ENV, MqttSettings
from tickbus.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

MQTT_PASSWORD_FILE_ENV = "TICKBUS_MQTT_PASSWORD_FILE"
"""The environment variable for ``--mqtt-password-file``; nothing in `broker` reads it."""

MQTT_CA_ENV = "TICKBUS_MQTT_CA"
"""The environment variable for ``--mqtt-ca``; nothing in `broker` reads it."""

_PASSWORD_FILE_HINT = "'--mqtt-password-file'"


def mqtt_option(function: F) -> F:
    """Add the broker connection options to a click command.

    The options: ``--mqtt URL`` (env TICKBUS_MQTT_URL), ``--mqtt-password-file
    FILE`` (env TICKBUS_MQTT_PASSWORD_FILE) and ``--mqtt-ca FILE`` (env
    TICKBUS_MQTT_CA). The command receives them as one keyword argument,
    ``mqtt``: the `MqttSettings` of the URL, with the password read from the
    file and the CA file attached. The password file is read only when the
    command runs, so ``--help`` works without it; the CA file is read when the
    command connects (`BusClient`).

    A bad URL, a password file that cannot be used, a password file with a URL
    that names no user or has a password of its own, and a CA file with an
    ``mqtt://`` (not ``mqtts://``) URL are usage errors naming the option;
    none of them quotes a password.
    """

    @functools.wraps(function)
    def command(
        *args: Any,
        mqtt: MqttSettings,
        mqtt_password_file: Path | None,
        mqtt_ca: Path | None,
        **kwargs: Any,
    ) -> Any:
        if mqtt_password_file is not None:
            mqtt = _with_password_from(mqtt, mqtt_password_file)
        if mqtt_ca is not None:
            try:
                mqtt = dataclasses.replace(mqtt, ca_file=mqtt_ca)
            except ConfigError as exc:
                raise click.BadParameter(exc.reason, param_hint="'--mqtt-ca'") from None
        return function(*args, mqtt=mqtt, **kwargs)

    options = (
        click.option(
            "--mqtt",
            "mqtt",
            default=DEFAULT_MQTT_URL,
            envvar=MQTT_URL_ENV,
            show_default=True,
            show_envvar=True,
            metavar="URL",
            callback=_to_settings,
            help=(
                "The broker: mqtt://[USER[:PASS]@]HOST[:PORT], or mqtts:// for TLS "
                "(port 8883). Keep the password out of the URL (a command line is "
                "visible to other users): use --mqtt-password-file."
            ),
        ),
        click.option(
            "--mqtt-password-file",
            "mqtt_password_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            envvar=MQTT_PASSWORD_FILE_ENV,
            show_envvar=True,
            metavar="FILE",
            help=(
                "Read the password of the URL's user from FILE (the whole file, "
                "less one trailing line break), e.g. one that `tickbus broker --auth` wrote."
            ),
        ),
        click.option(
            "--mqtt-ca",
            "mqtt_ca",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            envvar=MQTT_CA_ENV,
            show_envvar=True,
            metavar="FILE",
            help=(
                "For an mqtts:// URL: trust the CA certificates in this PEM file, "
                "instead of the system's, to verify the broker."
            ),
        ),
    )
    for option in reversed(options):
        command = option(command)
    return cast(F, command)


def _to_settings(_ctx: click.Context, _param: click.Parameter, url: str) -> MqttSettings:
    try:
        return MqttSettings.from_url(url)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason) from exc


def with_password_file(settings: MqttSettings, path: Path) -> MqttSettings:
    """`settings` with the password of its user read from `path` (`read_password_file`).

    Raises:
        ConfigError: The URL names no user, or has a password of its own, or the
            file cannot be used; the reason never quotes a password.
    """
    if settings.username is None:
        raise ConfigError("a password needs a user: name it in the URL, mqtt://USER@host:port")
    if settings.password is not None:
        raise ConfigError("the --mqtt URL holds a password too; give it in one place only")
    return dataclasses.replace(settings, password=read_password_file(path))


def _with_password_from(settings: MqttSettings, path: Path) -> MqttSettings:
    try:
        return with_password_file(settings, path)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason, param_hint=_PASSWORD_FILE_HINT) from None
