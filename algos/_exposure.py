"""What an algorithm server exposes, and to whom.

zerorpc has no authentication and no access control: whoever can open a TCP
connection to the server can call every method it answers, with any
arguments (initialise the algorithm afresh, feed it invented quotes, read its
portfolio). So the server binds to loopback unless told otherwise
(`require_loopback`), answers the RPC contract and nothing else, and refuses
requests above a size limit (`ContractServer`).

Imports zerorpc, so it makes its process a gevent program; only
`algos.server` imports it.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import zerorpc
import zmq

from tickbus.errors import ConfigError

__all__ = ["ContractServer", "is_loopback", "require_loopback"]

_LOCAL_TRANSPORTS = frozenset({"ipc", "inproc"})
"""zmq transports that never leave the host (ipc is guarded by file permissions)."""

_SHOWN_NAME_CHARS = 60


def is_loopback(addr: str) -> bool:
    """Whether binding to zmq address `addr` keeps the server off the network.

    True for ``tcp://`` on a loopback IP (``127.0.0.0/8``, ``[::1]``) or on
    ``localhost``, and for the host-local transports ``ipc://`` and
    ``inproc://``. False for everything else: ``*``, ``0.0.0.0``, a LAN IP,
    any other host or interface name (even one that resolves to loopback: the
    name is not looked up), and other network transports.
    """
    transport, _, rest = addr.partition("://")
    if transport in _LOCAL_TRANSPORTS:
        return True
    if transport != "tcp":
        return False
    host = rest.rpartition(":")[0] or rest  # no port: the bind will say so
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name
        return False


def require_loopback(addr: str, *, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless `allow_remote` says it is meant.

    An address without ``://`` is left to the bind, which reports it as malformed.

    Raises:
        ConfigError: `addr` is reachable from the network (see `is_loopback`)
            and `allow_remote` is False.
    """
    if allow_remote or "://" not in addr or is_loopback(addr):
        return
    raise ConfigError(
        f"refusing to bind the algorithm server to {addr}: it is not a loopback address, "
        "and zerorpc has no authentication, so anyone who can reach it could initialise "
        "the algorithm, send it quotes and read its portfolio. Bind to tcp://127.0.0.1:PORT, "
        "or pass --allow-remote if the network in front of it is trusted "
        "(e.g. a container network)"
    )


class ContractServer(zerorpc.Server):  # type: ignore[misc]
    """A zerorpc server that answers `methods` and nothing else, with a request size limit.

    zerorpc gives every server built-in methods (``_zerorpc_inspect``,
    ``_zerorpc_list``, ``_zerorpc_name``, ``_zerorpc_ping``, ``_zerorpc_help``,
    ``_zerorpc_args``) that list the methods with their docstrings and
    arguments. This server has none of them. A call to any name outside
    `methods` fails on the caller's side with a remote ``NameError`` that
    names the methods the server has; the server goes on serving.
    Heartbeats are not methods (zerorpc sends them as ``_zpc_hb`` events on a
    call's own channel), so they work as before.

    A request larger than `max_message_bytes` is dropped by zmq
    (``ZMQ_MAXMSGSIZE``) before zerorpc reads it: zmq closes that client's
    connection, and the server neither runs nor answers the call. The
    caller's zmq socket reconnects by itself; its call gets no answer and no
    heartbeat, so it fails with ``LostRemote`` about three heartbeat periods
    later (or ``TimeoutExpired``, if its timeout is shorter). Other clients
    and the caller's next calls are unaffected.

    Args:
        methods: The method table, name to callable.
        heartbeat: zerorpc heartbeat period in seconds.
        max_message_bytes: The largest request accepted, in bytes (at least 1).
    """

    def __init__(
        self,
        methods: Mapping[str, Callable[..., Any]],
        *,
        heartbeat: float,
        max_message_bytes: int,
    ) -> None:
        super().__init__(_MethodTable(methods), heartbeat=heartbeat)
        # Before any bind: the option applies to connections accepted afterwards.
        self._events.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)

    def _inject_builtins(self) -> None:
        """Add no built-in methods (zerorpc's constructor calls this to add them)."""


class _MethodTable(dict[str, Any]):
    """zerorpc's table of a server's methods, answering unknown names with a refusal.

    zerorpc looks up each call's name with ``get`` and, when it finds nothing,
    raises a bare ``NameError(name)``. Here ``get`` hands back a method that
    raises a ``NameError`` listing the methods there are instead.
    """

    def __init__(self, methods: Mapping[str, Callable[..., Any]]) -> None:
        super().__init__(methods)
        self._names = ", ".join(methods)

    def get(self, name: object, default: object = None) -> Any:
        """The method called `name`, or one that refuses the call (never `default`)."""
        if isinstance(name, str) and name in self:
            return self[name]
        return zerorpc.rep(functools.partial(_refuse, name, self._names))


def _refuse(name: object, names: str, *_args: object) -> NoReturn:
    shown = repr(name)
    if len(shown) > _SHOWN_NAME_CHARS:
        shown = shown[: _SHOWN_NAME_CHARS - 3] + "..."
    raise NameError(f"no method {shown}: this server answers only {names}")
