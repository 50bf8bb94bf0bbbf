"""`tickbus status`: every component's last status, as a table or JSON, with an exit code.

It reads nothing but the retained statuses on ``status/<component>/<name>``
(plus those that arrive while it listens), so it works against any tickbus
stack, like the live view, and suits scripts and container health checks.

A component is judged by its last status:

* ``online``: it said online at most ``--stale-after`` seconds ago (components
  report every second);
* ``stale``: it said online, but longer ago than that (it hangs, or its host's
  clock is off), or without a time;
* ``degraded`` or ``offline``: what it said (``offline`` is also the will the
  broker publishes when a component dies);
* ``invalid``: its status is not a JSON object with a ``state``.

Exit codes: 0 when every component is ``online``; 1 when any is not; 2 when
none has reported, or the broker cannot be reached. A component that was
stopped stays ``offline`` on the broker (its status is retained) until
someone clears it, e.g. ``mosquitto_pub -r -n -t status/feed/NAME``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from broker import BusClient, MqttSettings, mqtt_option
from tickbus.errors import ConfigError

STATUS_FILTER = "status/#"
ONLINE = "online"
STALE = "stale"
INVALID = "invalid"

KEY_COUNTERS: Mapping[str, tuple[str, ...]] = {
    "feed": ("published", "dropped", "rejected", "rate"),
    "bridge": (
        "quotes_in",
        "forwarded",
        "pending",
        "conflated",
        "dropped",
        "orders",
        "orders_rejected",
        "fills",
        "killed",
    ),
    "execution": ("orders_in", "fills", "rejected", "duplicates", "waiting"),
    "relay": ("relayed", "rejected", "written"),
}
"""The counters the table shows per component kind; other kinds show every number."""

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_NOTHING = 0, 1, 2


@dataclass(frozen=True, kw_only=True)
class ComponentStatus:
    """One component's last status, judged.

    Attributes:
        component: The kind, from the topic: ``feed``, ``bridge``, ``execution``...
        name: The component's name, from the topic.
        health: ``online``, ``stale``, ``degraded``, ``offline`` or ``invalid``
            (see the module docstring).
        age: Seconds from the status's ``ts`` to now; None without a ``ts``.
        status: The status as published; for an invalid one, ``{"payload": text}``.
    """

    component: str
    name: str
    health: str
    age: float | None
    status: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``{component, name, health, age_s, status}``."""
        age = None if self.age is None else round(self.age, 3)
        return {
            "component": self.component,
            "name": self.name,
            "health": self.health,
            "age_s": age,
            "status": dict(self.status),
        }


def collect_statuses(settings: MqttSettings, *, timeout: float) -> dict[str, bytes]:
    """The newest payload on each ``status/...`` topic, listening for `timeout` seconds.

    Raises:
        ConfigError: The broker cannot be reached.
    """
    latest: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            latest[topic] = payload

    with BusClient(
        settings, component="status", name="cli", on_message=on_message, announce=False
    ) as bus:
        bus.subscribe([STATUS_FILTER])
        time.sleep(timeout)
    with lock:
        return dict(latest)


def judge(
    payloads: Mapping[str, bytes], *, now: float, stale_after: float
) -> list[ComponentStatus]:
    """Judge every ``status/<component>/<name>`` payload; other topics are ignored.

    Sorted by component, then name.
    """
    statuses = []
    for topic, payload in payloads.items():
        parts = topic.split("/")
        if len(parts) == 3 and parts[0] == "status":
            statuses.append(_judge_one(parts[1], parts[2], payload, now, stale_after))
    return sorted(statuses, key=lambda s: (s.component, s.name))


def _judge_one(
    component: str, name: str, payload: bytes, now: float, stale_after: float
) -> ComponentStatus:
    try:
        status = json.loads(payload)
    except ValueError:
        status = None
    if not isinstance(status, dict) or not isinstance(status.get("state"), str):
        text = payload.decode(errors="replace")
        return ComponentStatus(
            component=component, name=name, health=INVALID, age=None, status={"payload": text}
        )
    ts = status.get("ts")
    age = now - ts if isinstance(ts, int | float) and not isinstance(ts, bool) else None
    health = status["state"]
    if health == ONLINE and (age is None or age > stale_after):
        health = STALE
    return ComponentStatus(component=component, name=name, health=health, age=age, status=status)


def exit_code(statuses: Iterable[ComponentStatus]) -> int:
    """0 when every component is online, 1 when any is not, 2 when there are none."""
    healths = [s.health for s in statuses]
    if not healths:
        return EXIT_NOTHING
    return EXIT_HEALTHY if all(h == ONLINE for h in healths) else EXIT_UNHEALTHY


def render_table(statuses: list[ComponentStatus]) -> list[str]:
    """A header, one row per component (a reason, when given, on the line below), a summary."""
    rows = [("COMPONENT", "NAME", "STATE", "AGE", "COUNTERS")]
    rows += [
        (s.component, s.name, s.health, _age(s.age), _counters(s.component, s.status))
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row, status in zip(rows, [None, *statuses], strict=True):
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
        if status is not None and status.status.get("reason"):
            lines.append(f"{'':{widths[0]}}  ! {status.status['reason']}")
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.health] = counts.get(status.health, 0) + 1
    summary = ", ".join(f"{n} {health}" for health, n in sorted(counts.items()))
    return [*lines, "", f"{len(statuses)} components: {summary}"]


def _age(age: float | None) -> str:
    if age is None:
        return "?"
    if abs(age) < 100:
        return f"{age:.1f}s"
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(age) >= 2 * seconds:
            return f"{age / seconds:.0f}{unit}"
    return f"{age:.0f}s"


def _counters(component: str, status: Mapping[str, Any]) -> str:
    keys = KEY_COUNTERS.get(component) or [
        key
        for key, value in status.items()
        if key not in ("pid", "ts") and isinstance(value, int | float)
    ]
    return " ".join(
        f"{key}={'-' if status[key] is None else status[key]}" for key in keys if key in status
    )


class _NothingReported(click.ClickException):
    """The broker cannot be reached: exit code 2, like a broker nobody reported to."""

    exit_code = EXIT_NOTHING


@click.command(name="status")
@mqtt_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=1.5,
    show_default=True,
    help="Seconds to listen: retained statuses arrive at once, running components "
    "report every second.",
)
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="An online component whose last status is older than this (seconds) is stale.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as one JSON array.")
def status_command(mqtt: MqttSettings, timeout: float, stale_after: float, as_json: bool) -> None:
    """Print every component's last status: state, age and key counters.

    Reads the retained statuses on status/#. A component is online, stale
    (online, but its last status is older than --stale-after), degraded,
    offline, or invalid (an unreadable status).

    Exit code: 0 when every component is online; 1 when any is stale, degraded,
    offline or invalid; 2 when no component has reported, or the broker
    cannot be reached.
    """
    try:
        payloads = collect_statuses(mqtt, timeout=timeout)
    except ConfigError as exc:
        raise _NothingReported(exc.reason) from exc
    statuses = judge(payloads, now=time.time(), stale_after=stale_after)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in statuses], indent=2))
    elif statuses:
        click.echo("\n".join(render_table(statuses)))
    else:
        click.echo(f"no component has reported on {STATUS_FILTER} at {mqtt.url}", err=True)
    raise SystemExit(exit_code(statuses))
