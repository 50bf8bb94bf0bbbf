"""The zerorpc server exposing one algorithm (the RPC contract, nothing else); `tickbus algo`.

With a state directory (``--state-dir``) the server keeps the algorithm's
portfolio on disk: it saves a snapshot after every `initialize` and after
every call that placed an order or booked a fill or a rejection, and
`initialize` starts from the saved book
instead of fresh cash. A book handed over by a swap (the ``portfolio``
param, see `CARRY_PARAM`) wins over both.

A public module of its own, not re-exported by `algos`: importing it makes the
process a gevent program (zerorpc), and `import algos` must stay plain Python.

The algorithm's code runs in a
one-thread pool, not on the gevent hub: a CPU-heavy `events` call would
otherwise stop the hub from sending heartbeats, and the bridge would see
`LostRemote` while the algorithm is merely busy. One thread also means the
algorithm never sees two calls at once, so it needs no locking of its own.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import gevent
import zerorpc
import zmq
from gevent.threadpool import ThreadPool

from algos._base import Algorithm
from algos._loading import load_algorithm, parse_params
from portfolio import Portfolio, SnapshotFile
from tickbus.errors import ConfigError

__all__ = [
    "CARRY_PARAM",
    "DEFAULT_HEARTBEAT_S",
    "RPC_METHODS",
    "AlgorithmService",
    "ServeConfig",
    "algo_group",
    "heartbeat_option",
    "params_option",
    "serve",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

CARRY_PARAM = "portfolio"
"""The `initialize` param with a portfolio snapshot to start from (``swap --carry-portfolio``)."""

RPC_METHODS = ("initialize", "event", "events", "fill", "state", "finalize")
"""The names an algorithm server answers to; DESIGN.md's RPC contract."""

DEFAULT_HEARTBEAT_S = 1.0
"""zerorpc heartbeat period. Bridge and server must use the same one: each side
declares the other lost after two of its own periods without a heartbeat."""


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """How to serve one algorithm.

    Attributes:
        spec: ``"package.module:ClassName"`` of an `Algorithm` subclass.
        addr: zerorpc bind address, e.g. ``"tcp://127.0.0.1:4242"``.
        params: Defaults for `initialize`; the bridge's params override them.
        heartbeat: zerorpc heartbeat period in seconds (default 1.0).
        state_dir: Where the portfolio snapshot is kept across restarts; None
            (the default) keeps nothing.
    """

    spec: str
    addr: str
    params: Mapping[str, Any] = field(default_factory=dict)
    heartbeat: float = DEFAULT_HEARTBEAT_S
    state_dir: Path | None = None


class AlgorithmService:
    """The RPC face of one algorithm, calling it on a single worker thread.

    Args:
        algorithm: The algorithm instance to expose.
        defaults: Params merged under those `initialize` receives.
        pool: The worker pool every call runs in (one thread).
        store: Where to keep the portfolio snapshot, or None.
    """

    def __init__(
        self,
        algorithm: Algorithm,
        *,
        defaults: Mapping[str, Any],
        pool: ThreadPool,
        store: SnapshotFile | None = None,
    ) -> None:
        self._algorithm = algorithm
        self._defaults = dict(defaults)
        self._pool = pool
        self._store = store
        self._saved: tuple[int, int] | None = None  # (id of the portfolio, its changes)

    def methods(self) -> dict[str, Callable[..., Any]]:
        """The RPC table: exactly `RPC_METHODS`, bound to this service."""
        return {name: getattr(self, name) for name in RPC_METHODS}

    def initialize(self, params: Mapping[str, Any] | None) -> list[str]:
        """Initialise with the defaults overridden by `params`; returns the channels.

        The portfolio then starts from the ``portfolio`` param if given, else
        from the saved snapshot if there is one.

        Raises:
            PortfolioError: The ``portfolio`` param or the saved snapshot is not a
                valid snapshot; the algorithm is unchanged.
        """
        merged = {**self._defaults, **(params or {})}
        carried = merged.pop(CARRY_PARAM, None)
        return self._call(self._initialize, merged, carried)

    def event(self, quote: Mapping[str, Any]) -> list[Any]:
        """Handle one quote; the same path as a batch of one."""
        return self.events([quote])

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Handle a batch of quotes in order; returns every order they caused."""
        return self._call(self._saving, self._algorithm.events, quotes)

    def fill(self, fill: Mapping[str, Any]) -> None:
        """Apply a fill, or a rejection, of one of the algorithm's orders (`Algorithm.fill`)."""
        self._call(self._saving, self._algorithm.fill, fill)

    def state(self) -> dict[str, Any]:
        """The algorithm's JSON-safe state (portfolio summary and counters)."""
        return self._call(self._algorithm.state)

    def finalize(self) -> dict[str, Any]:
        """Let the algorithm wrap up; returns its final state."""
        return self._call(self._algorithm.finalize)

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        return cast(T, self._pool.apply(function, args))

    # -- on the worker thread ----------------------------------------------------

    def _initialize(self, params: dict[str, Any], carried: Any) -> list[str]:
        snapshot = carried if carried is not None else self._load()
        if snapshot is not None:
            Portfolio.restore(snapshot)  # refuse a bad snapshot before changing anything
        channels = self._algorithm.initialize(params)
        if snapshot is not None:
            fresh = self._algorithm.portfolio
            self._algorithm.portfolio = Portfolio.restore(
                snapshot, sizing=fresh.sizing, buffer_bps=fresh.buffer_bps
            )
        self._save_if_changed()
        return channels

    def _saving(self, function: Callable[..., T], *args: Any) -> T:
        """Call `function`, then save the portfolio if it changed (even if it raised).

        Placing an order changes it (the hold), and so do a fill and a rejection.
        """
        try:
            return function(*args)
        finally:
            self._save_if_changed()

    def _load(self) -> dict[str, Any] | None:
        return None if self._store is None else self._store.load()

    def _save_if_changed(self) -> None:
        if self._store is None:
            return
        try:
            portfolio = self._algorithm.portfolio
        except ConfigError:  # not initialised: nothing to keep
            return
        version = (id(portfolio), portfolio.changes)
        if version != self._saved:
            self._store.save(portfolio.snapshot())
            self._saved = version


def serve(config: ServeConfig, *, on_ready: Callable[[str], None] = lambda _addr: None) -> None:
    """Serve `config.spec` on `config.addr` until SIGTERM or SIGINT.

    Raises:
        ConfigError: The algorithm cannot be loaded or constructed, or the
            address cannot be bound (in use, malformed).
    """
    algorithm = _instantiate(load_algorithm(config.spec))
    store = None if config.state_dir is None else SnapshotFile(config.state_dir)
    if store is not None:
        store.load()  # a snapshot that cannot be read stops the server now, not later
    pool = ThreadPool(1)
    service = AlgorithmService(algorithm, defaults=config.params, pool=pool, store=store)
    server = zerorpc.Server(service.methods(), heartbeat=config.heartbeat)
    try:
        _bind(server, config.addr)
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, server.stop)
        on_ready(config.addr)
        server.run()
    finally:
        server.close()
        pool.kill()


def _instantiate(cls: type[Algorithm]) -> Algorithm:
    try:
        return cls()
    except TypeError as exc:
        raise ConfigError(
            f"{cls.__module__}:{cls.__qualname__} cannot be constructed without "
            f"arguments ({exc}); take settings in initialize(params) instead"
        ) from exc


def _bind(server: zerorpc.Server, addr: str) -> None:
    try:
        server.bind(addr)
    except zmq.ZMQError as exc:
        raise ConfigError(f"cannot bind the algorithm server to {addr}: {exc}") from exc


def params_option(role: str) -> Callable[[F], F]:
    """``--param KEY=VALUE`` (repeatable), given to the command as a dict; `role` says what for."""

    def to_dict(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> Any:
        try:
            return parse_params(items)
        except ConfigError as exc:
            raise click.BadParameter(exc.reason) from exc

    return click.option(
        "--param",
        "params",
        multiple=True,
        metavar="KEY=VALUE",
        callback=to_dict,
        help=f"{role} Repeatable; VALUE is parsed as JSON when it can be "
        "(threshold=0.2, seed=7, channels='[\"quotes/GOOG\"]'), else kept as a string.",
    )


def heartbeat_option(*, peer: str) -> Callable[[F], F]:
    """``--heartbeat SECONDS``, which must be the same on a server and its bridge."""
    return click.option(
        "--heartbeat",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_HEARTBEAT_S,
        show_default=True,
        help=f"zerorpc heartbeat period in seconds; must equal the {peer}'s.",
    )


@click.group(name="algo")
def algo_group() -> None:
    """Run algorithm servers."""


@algo_group.command(name="serve")
@click.argument("spec", metavar="MODULE:CLASS")
@click.option(
    "--addr",
    default="tcp://127.0.0.1:4242",
    show_default=True,
    help="zerorpc address to bind. Binding to anything but loopback exposes the "
    "algorithm to the network: do it only on purpose (e.g. inside a container).",
)
@params_option("Default for initialize(params); the bridge's --param values win.")
@click.option(
    "--app-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory searched first for MODULE (the current directory by default).",
)
@heartbeat_option(peer="bridge")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the portfolio in DIR/portfolio.json, written atomically after every "
    "fill, and start from it: a server killed and restarted with the same DIR has "
    "the same book. Without it, every initialize starts from fresh cash.",
)
def serve_command(
    spec: str,
    addr: str,
    params: dict[str, Any],
    app_dir: Path,
    heartbeat: float,
    state_dir: Path | None,
) -> None:
    """Serve the algorithm class MODULE:CLASS (e.g. algos.examples:RandomAlgo).

    The server answers exactly initialize, event, events, fill, state and
    finalize, and stops cleanly on SIGTERM or Ctrl-C.
    """
    sys.path.insert(0, str(app_dir.resolve()))
    try:
        config = ServeConfig(
            spec=spec, addr=addr, params=params, heartbeat=heartbeat, state_dir=state_dir
        )
        serve(config, on_ready=lambda bound: click.echo(f"serving {spec} on {bound}"))
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
