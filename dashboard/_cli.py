"""`tickbus dashboard`: the web page to watch and steer a running stack."""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import sys
from pathlib import Path

import click

from broker import BusClient, MqttSettings, mqtt_option, with_password_file
from dashboard._actions import Operator
from dashboard._app import create_app
from dashboard._state import FILTERS, BusState
from tickbus.errors import ConfigError

DEFAULT_PORT = 8080
OPERATOR = "operator"
"""The MQTT user (role) the dashboard's actions are sent as."""


@click.command(name="dashboard")
@mqtt_option
@click.option(
    "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
    help="The page's HTTP port.",
)  # fmt: skip
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on. Beyond the loopback (0.0.0.0, a LAN address), actions "
    "need the token: from --token-file, or one made and printed at start.",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file holding the token that actions need (the whole file, less a trailing "
    "line break). Without a token, only this machine's own clients may act.",
)
@click.option(
    "--operator-password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The password of the broker's operator user: actions are sent with it (the "
    "browser never sees it). Without it, actions use the --mqtt login.",
)
@click.option(
    "--reports",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A directory whose backtest and sweep results (their report.html) the page lists "
    "and opens, e.g. the directory holding backtests/ and sweeps/.",
)
def dashboard_command(
    mqtt: MqttSettings,
    port: int,
    bind: str,
    token_file: Path | None,
    operator_password_file: Path | None,
    reports: Path | None,
) -> None:
    """Serve a live web page of the stack: components, algorithms, orders, fills, actions.

    It subscribes to the bus (retained statuses, orders, fills, rejections and
    dead letters; give the viewer's login with --mqtt and
    --mqtt-password-file when the broker requires one), keeps a bounded
    history in memory, and pushes it to every open page at most twice a
    second. The page shows each component's state and counters (stale and
    offline ones marked), each algorithm's live equity curve, cash, PnL,
    positions and kill switch, the latest orders, fills, rejections and dead
    letters, quotes/s, and the backtest and sweep reports under --reports.

    An operator can kill and lift a bridge's kill switch and swap it to
    another algorithm server from the page; the dashboard sends these with
    the operator's login (--operator-password-file), and logs who did what.
    Bound to the loopback (the default), only this machine may act; bound
    beyond it, actions need the token and the page is read-only without it.

    For example: tickbus dashboard --mqtt mqtt://localhost:1883 --reports .
    """
    token = _token(token_file, bind)
    operator = _operator_settings(mqtt, operator_password_file)
    state = BusState()
    app = create_app(state, Operator(operator), token=token, reports=reports)
    import uvicorn  # only when serving

    host = "localhost" if bind in ("127.0.0.1", "::1") else bind
    link = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    with BusClient(
        mqtt, component="dashboard", name="dashboard", on_message=state.on_message, announce=False
    ) as bus:
        bus.subscribe(list(FILTERS), qos=1)
        click.echo(f"dashboard on {link}", err=True)
        config = uvicorn.Config(app, host=bind, port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        server.run()
    if not server.started:
        sys.exit(1)


def _token(path: Path | None, bind: str) -> str | None:
    """The actions' token: the file's, a new one beyond the loopback, else None."""
    if path is not None:
        token = path.read_text().rstrip("\r\n")
        if not token:
            raise click.BadParameter(f"{path} is empty", param_hint="'--token-file'")
        return token
    return None if _is_loopback(bind) else secrets.token_urlsafe(24)


def _is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def _operator_settings(mqtt: MqttSettings, password_file: Path | None) -> MqttSettings:
    if password_file is None:
        return mqtt
    try:
        login = dataclasses.replace(mqtt, username=OPERATOR, password=None)
        return with_password_file(login, password_file)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason, param_hint="'--operator-password-file'") from None
