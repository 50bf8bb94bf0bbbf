"""Prometheus metrics over HTTP for the long-running components (``--metrics-port``).

Every process that serves metrics keeps its own `CollectorRegistry` (never
prometheus_client's global default, so nothing is registered twice and several
components can live in one test process) holding the component's collector
and the standard ``process_*`` metrics (CPU, memory, open files).

prometheus_client's HTTP server runs in a daemon OS thread of its own, so a
scrape never waits for the component's main loop, and the main loop (a plain
thread, or the gevent hub in a bridge, which is not monkey-patched) never
waits for a scrape. Collectors therefore run in that thread: they read the
component's counters at scrape time and must only read values that the
component replaces or increments, or take the component's own lock.

This module is shared by every component, like `tickbus.errors`; it imports
nothing from the other tickbus packages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tickbus.errors import ConfigError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_METRICS_ADDR = "127.0.0.1"


@dataclass(frozen=True, kw_only=True)
class MetricsEndpoint:
    """Where a component serves ``/metrics``.

    Attributes:
        port: TCP port, 1-65535.
        addr: Address to bind; the default, the loopback, keeps the metrics on
            this machine (``0.0.0.0`` serves every interface, e.g. in a container).
    """

    port: int
    addr: str = DEFAULT_METRICS_ADDR

    @property
    def url(self) -> str:
        """``http://ADDR:PORT/metrics`` (an IPv6 address in brackets)."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"


def metrics_endpoint(port: int | None, addr: str | None) -> MetricsEndpoint | None:
    """The endpoint ``--metrics-port``/``--metrics-addr`` ask for; None when metrics are off.

    Raises:
        ConfigError: ``--metrics-addr`` without ``--metrics-port``.
    """
    if port is None:
        if addr is not None:
            raise ConfigError("--metrics-addr needs --metrics-port")
        return None
    return MetricsEndpoint(port=port, addr=addr or DEFAULT_METRICS_ADDR)


def metrics_options(function: F) -> F:
    """Add ``--metrics-port`` and ``--metrics-addr`` (passed as `metrics_port`, `metrics_addr`)."""
    function = click.option(
        "--metrics-addr",
        default=None,
        metavar="ADDR",
        help=f"Address the metrics are served on [default: {DEFAULT_METRICS_ADDR}, this "
        "machine only; 0.0.0.0 for every interface].",
    )(function)
    return click.option(
        "--metrics-port",
        type=click.IntRange(1, 65535),
        default=None,
        metavar="PORT",
        help="Serve Prometheus metrics on http://ADDR:PORT/metrics [default: off].",
    )(function)


@contextmanager
def serve_metrics(endpoint: MetricsEndpoint | None, collector: Collector) -> Iterator[None]:
    """Serve `collector` (and ``process_*``) on `endpoint` for the duration of the ``with``.

    Does nothing when `endpoint` is None. Leaving the ``with`` stops the server
    and closes its socket (this can take up to half a second: the server's poll).

    Raises:
        ConfigError: The address cannot be bound (in use, not an address of this host).
    """
    if endpoint is None:
        yield
        return
    registry = CollectorRegistry(auto_describe=True)  # refuses two families of one name
    registry.register(collector)
    ProcessCollector(registry=registry)
    try:
        server, thread = start_http_server(endpoint.port, addr=endpoint.addr, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {endpoint.url}: {exc}") from exc
    log.info("metrics on %s", endpoint.url)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def counter(name: str, doc: str, labels: Mapping[str, str], value: float) -> CounterMetricFamily:
    """A counter family with one sample; `name` without ``_total`` (it is appended)."""
    family = CounterMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def counters_by(
    name: str, doc: str, labels: Mapping[str, str], by: str, values: Mapping[str, float]
) -> CounterMetricFamily:
    """A counter family with one sample per value of the label `by` (e.g. per cause)."""
    family = CounterMetricFamily(name, doc, labels=[*labels, by])
    for key, value in values.items():
        family.add_metric([*labels.values(), key], value)
    return family


def gauge(name: str, doc: str, labels: Mapping[str, str], value: float) -> GaugeMetricFamily:
    """A gauge family with one sample."""
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family
