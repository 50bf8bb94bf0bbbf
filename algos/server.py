"""The zerorpc server exposing one algorithm (the RPC contract, nothing else); `tickbus algo`.

zerorpc has no authentication, so the server binds to loopback unless
``--allow-remote`` (`ServeConfig.allow_remote`) says otherwise, answers the
six contract methods and nothing else (not zerorpc's ``_zerorpc_*``
built-ins), drops requests over ``--max-message-mb``, and checks that
``state()`` and ``finalize()`` return JSON data (see `algos._exposure` and
`algos._json_safe`).

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

import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import gevent
import zmq
from gevent.threadpool import ThreadPool

from algos._base import Algorithm
from algos._exposure import ContractServer, require_loopback
from algos._json_safe import require_json_safe
from algos._loading import AlgorithmFactory, load_algorithm, parse_params
from portfolio import Portfolio, SnapshotFile
from tickbus.errors import ConfigError
from tickbus.logs import LogThrottle, quiet_zerorpc

log = logging.getLogger(__name__)

__all__ = [
    "CARRY_PARAM",
    "DEFAULT_HEARTBEAT_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
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

_MIB = 1024 * 1024

DEFAULT_MAX_MESSAGE_BYTES = 64 * _MIB
"""Largest request an algorithm server reads (64 MiB); zmq drops bigger ones.

A bridge's biggest call, a full batch of 5,000 quotes, is well under 1 MiB."""


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
        allow_remote: Allow an `addr` that is not loopback (False by default:
            zerorpc has no authentication, so such a server takes calls from
            anyone who can reach it).
        max_message_bytes: Largest request read, in bytes
            (`DEFAULT_MAX_MESSAGE_BYTES`); zmq drops bigger ones and closes
            that client's connection, and its call fails with ``LostRemote``.
    """

    spec: str
    addr: str
    params: Mapping[str, Any] = field(default_factory=dict)
    heartbeat: float = DEFAULT_HEARTBEAT_S
    state_dir: Path | None = None
    allow_remote: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


class AlgorithmService:
    """The RPC face of one algorithm, calling it on a single worker thread.

    RPC ``initialize`` is `Algorithm.start`: the framework prepares the
    portfolio, then the algorithm's own ``initialize`` runs. Before that,
    ``state`` and ``finalize`` answer ``{"initialized": false, "algorithm"}``
    and the other methods raise `NotInitialized`.

    An exception the algorithm raises goes back to the caller as zerorpc's
    remote error and is logged here in one line (the first of each method
    with its traceback, then at most one line per 10 s), never once per call.

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
        self._failures = {name: _FailureLog(name) for name in RPC_METHODS}

    def methods(self) -> dict[str, Callable[..., Any]]:
        """The RPC table: exactly `RPC_METHODS`, bound to this service."""
        return {name: getattr(self, name) for name in RPC_METHODS}

    def initialize(self, params: Mapping[str, Any] | None) -> list[str]:
        """Start the algorithm with the defaults overridden by `params`; returns the channels.

        The portfolio then starts from the ``portfolio`` param if given, else
        from the saved snapshot if there is one.

        Raises:
            PortfolioError: The ``portfolio`` param or the saved snapshot is not a
                valid snapshot; the algorithm is unchanged.
        """
        merged = {**self._defaults, **(params or {})}
        carried = merged.pop(CARRY_PARAM, None)
        return self._call("initialize", self._initialize, merged, carried)

    def event(self, quote: Mapping[str, Any]) -> list[Any]:
        """Handle one quote; the same path as a batch of one."""
        return self.events([quote])

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Handle a batch of quotes in order; returns every order they caused.

        Raises:
            TypeError: The orders are not JSON data (`require_json_safe`), which
                only an `events` override can cause; the bridge dead-letters the batch.
        """
        return self._call("events", self._saving, self._json_safe_orders, quotes)

    def fill(self, fill: Mapping[str, Any]) -> None:
        """Apply a fill, or a rejection, of one of the algorithm's orders (`Algorithm.fill`)."""
        self._call("fill", self._saving, self._algorithm.fill, fill)

    def state(self) -> dict[str, Any]:
        """The algorithm's JSON-safe state (portfolio summary and counters).

        Raises:
            TypeError: The algorithm's state is not JSON data (`require_json_safe`).
        """
        return self._call("state", self._json_safe, "state()", self._algorithm.state)

    def finalize(self) -> dict[str, Any]:
        """Let the algorithm wrap up; returns its final state.

        Raises:
            TypeError: The final state is not JSON data (`require_json_safe`).
        """
        return self._call("finalize", self._json_safe, "finalize()", self._algorithm.finalize)

    def _call(self, method: str, function: Callable[..., T], *args: Any) -> T:
        """Run `function` on the worker thread; re-raise here what it raised, logged once.

        The worker returns the exception instead of raising it: gevent prints
        a traceback for every task that raises in a thread pool.
        """
        outcome = self._pool.apply(_outcome, (function, *args))
        if isinstance(outcome, _Raised):
            self._failures[method].note(outcome.error)
            raise outcome.error
        result: T = outcome
        return result

    # -- on the worker thread ----------------------------------------------------

    def _initialize(self, params: dict[str, Any], carried: Any) -> list[str]:
        snapshot = carried if carried is not None else self._load()
        if snapshot is not None:
            Portfolio.restore(snapshot)  # refuse a bad snapshot before changing anything
        channels = self._algorithm.start(params, snapshot=snapshot)
        self._save_if_changed()
        return channels

    def _json_safe_orders(self, quotes: Sequence[Mapping[str, Any]]) -> list[Any]:
        orders = self._algorithm.events(quotes)
        require_json_safe(orders, what="events()")
        return orders

    def _json_safe(self, what: str, function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        # Before start, a subclass's own state() may use attributes its
        # initialize has not made yet: the base's answer is the whole truth.
        result = function() if self._algorithm.started else Algorithm.state(self._algorithm)
        require_json_safe(result, what=what)
        return result

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
        if self._store is None or not self._algorithm.started:
            return
        portfolio = self._algorithm.portfolio
        version = (id(portfolio), portfolio.changes)
        if version != self._saved:
            self._store.save(portfolio.snapshot())
            self._saved = version


class _Raised:
    """What the worker thread hands back instead of raising."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _outcome(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:
        return _Raised(exc)


class _FailureLog:
    """Logs one RPC method's failures: the first with its traceback, then throttled lines."""

    def __init__(self, method: str) -> None:
        self._method = method
        self._count = 0
        self._throttle = LogThrottle(log)

    def note(self, error: Exception) -> None:
        self._count += 1
        self._throttle.log(
            "%s() raised (%d so far): %s: %s",
            self._method,
            self._count,
            type(error).__name__,
            error,
            exc_info=error if self._count == 1 else None,
        )


def serve(config: ServeConfig, *, on_ready: Callable[[str], None] = lambda _addr: None) -> None:
    """Serve `config.spec` on `config.addr` until SIGTERM or SIGINT.

    Raises:
        ConfigError: `config.addr` is not loopback and `config.allow_remote`
            is False; `config.max_message_bytes` is below 1; the algorithm
            cannot be loaded or constructed; or the address cannot be bound
            (in use, malformed).
    """
    require_loopback(config.addr, allow_remote=config.allow_remote)
    if config.max_message_bytes < 1:
        raise ConfigError(f"max_message_bytes must be at least 1, got {config.max_message_bytes}")
    quiet_zerorpc()
    algorithm = _instantiate(config.spec, load_algorithm(config.spec))
    store = None if config.state_dir is None else SnapshotFile(config.state_dir)
    if store is not None:
        store.load()  # a snapshot that cannot be read stops the server now, not later
    pool = ThreadPool(1)
    service = AlgorithmService(algorithm, defaults=config.params, pool=pool, store=store)
    server = ContractServer(
        service.methods(), heartbeat=config.heartbeat, max_message_bytes=config.max_message_bytes
    )
    try:
        _bind(server, config.addr)
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, server.stop)
        on_ready(config.addr)
        server.run()
    finally:
        server.close()
        pool.kill()


def _instantiate(spec: str, factory: AlgorithmFactory) -> Algorithm:
    try:
        return factory()
    except TypeError as exc:
        raise ConfigError(
            f"{spec} cannot be constructed without arguments ({exc}); take settings "
            "in initialize(params) instead"
        ) from exc


def _bind(server: ContractServer, addr: str) -> None:
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
    help="zerorpc address to bind. Anything but loopback (127.0.0.0/8, localhost, ipc://) "
    "is refused unless --allow-remote is given.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow an --addr reachable from the network (0.0.0.0, *, a LAN IP, a host name). "
    "zerorpc has no authentication: anyone who can reach the port can initialise the "
    "algorithm, send it quotes and read its portfolio. Use it only behind a trusted "
    "network, e.g. inside a container whose port is not published.",
)
@click.option(
    "--max-message-mb",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGE_BYTES // _MIB,
    show_default=True,
    help="Largest request the server reads, in MiB; zmq drops bigger ones (the caller's "
    "call fails with LostRemote) and the server goes on serving.",
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
    allow_remote: bool,
    max_message_mb: int,
    params: dict[str, Any],
    app_dir: Path,
    heartbeat: float,
    state_dir: Path | None,
) -> None:
    """Serve the algorithm class MODULE:CLASS (e.g. algos.examples:RandomAlgo).

    The server answers exactly initialize, event, events, fill, state and
    finalize, and stops cleanly on SIGTERM or Ctrl-C. It binds to loopback
    only, unless --allow-remote: zerorpc has no authentication.
    """
    sys.path.insert(0, str(app_dir.resolve()))
    try:
        config = ServeConfig(
            spec=spec,
            addr=addr,
            params=params,
            heartbeat=heartbeat,
            state_dir=state_dir,
            allow_remote=allow_remote,
            max_message_bytes=max_message_mb * _MIB,
        )
        serve(config, on_ready=lambda bound: click.echo(f"serving {spec} on {bound}"))
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
