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

A component that was stopped keeps its retained ``offline`` status on the
broker. Once that status is older than ``--forget-after`` seconds (or has no
``ts``), the component is *long offline*: the table, the JSON and the exit
code leave it out (``--all`` puts it back), and so does the live view. The
age is the status's own ``ts``, which a clean stop stamps.

A component that died without a clean stop (killed, crashed, its host or
network gone) gets the broker's will instead: ``offline`` with ``"lost":
true``. A lost component is never left out, however old: a crash stays in
the table and in the exit code until the component runs again or someone
clears it with ``--forget`` (the will's ``ts`` is when the component
connected, which paho fixes at connect, so its age would say nothing about
when it died).

Exit codes: 0 when every component left is ``online``; 1 when any is not; 2
when none is left (none has reported, or all are long offline), or the
broker cannot be reached.

``--forget NAME`` clears retained statuses instead (an empty retained
payload, as ``mosquitto_pub -r -n -t status/feed/NAME`` sends): see
`forget_statuses`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from broker import BusClient, MqttSettings, mqtt_option, validate_name
from tickbus.errors import ConfigError

STATUS_FILTER = "status/#"
ONLINE = "online"
DEGRADED = "degraded"
OFFLINE = "offline"
STALE = "stale"
INVALID = "invalid"

DEFAULT_STALE_AFTER = 5.0
"""Seconds after which an online component's status is called stale."""

DEFAULT_FORGET_AFTER = 60.0
"""Seconds after which an offline component drops out of `tickbus status` and the view."""

KEY_COUNTERS: Mapping[str, tuple[str, ...]] = {
    "feed": ("published", "dropped", "rejected", "rate"),
    "bridge": (
        "quotes_in",
        "forwarded",
        "pending",
        "conflated",
        "dropped",
        "suspect",
        "orders",
        "orders_rejected",
        "fills",
        "algo_errors",
        "killed",
    ),
    "execution": ("orders_in", "fills", "rejected", "duplicates", "waiting", "suspect"),
    "relay": ("relayed", "rejected", "written"),
    "recorder": ("quotes", "rows_written", "files", "pending", "dead_letters", "write_errors"),
}
"""The counters the table shows per component kind; other kinds show every number."""

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_NOTHING = 0, 1, 2


def status_age(status: Mapping[str, Any], *, now: float) -> float | None:
    """Seconds from the status's numeric ``ts`` to `now`; None without one."""
    ts = status.get("ts")
    return now - ts if isinstance(ts, int | float) and not isinstance(ts, bool) else None


def long_offline(status: Mapping[str, Any], age: float | None, *, forget_after: float) -> bool:
    """Whether a component whose last status is `status`, `age` seconds old, is long offline.

    True when it stopped cleanly (``state`` ``offline``, not ``lost``) and
    `age` is None (no ``ts``) or more than `forget_after`. A will (``"lost":
    true``) is never long offline: see the module docstring.
    """
    stopped = status.get("state") == OFFLINE and status.get("lost") is not True
    return stopped and (age is None or age > forget_after)


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

    @property
    def key(self) -> str:
        """``component/name``, as `--forget` takes it and the messages print it."""
        return f"{self.component}/{self.name}"

    @property
    def topic(self) -> str:
        """The status topic: ``status/<component>/<name>``."""
        return f"status/{self.component}/{self.name}"

    def is_long_offline(self, forget_after: float) -> bool:
        """Whether it stopped cleanly more than `forget_after` s ago (or without a time)."""
        return self.health == OFFLINE and long_offline(
            self.status, self.age, forget_after=forget_after
        )

    def is_running(self, stale_after: float) -> bool:
        """Whether it reports right now: online or degraded, at most `stale_after` s ago."""
        fresh = self.age is not None and self.age <= stale_after
        return self.health in (ONLINE, DEGRADED) and fresh

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


def collect_statuses(
    settings: MqttSettings, *, timeout: float, filters: Sequence[str] = (STATUS_FILTER,)
) -> dict[str, bytes]:
    """The newest payload on each topic matching `filters`, listening for `timeout` seconds.

    An empty payload (a status being cleared while it listens) removes its topic.

    Raises:
        ConfigError: The broker cannot be reached.
    """
    latest: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            if payload:
                latest[topic] = payload
            else:
                latest.pop(topic, None)

    with BusClient(
        settings, component="status", name="cli", on_message=on_message, announce=False
    ) as bus:
        bus.subscribe(filters)
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
    age = status_age(status, now=now)
    health = status["state"]
    if health == ONLINE and (age is None or age > stale_after):
        health = STALE
    return ComponentStatus(component=component, name=name, health=health, age=age, status=status)


def split_long_offline(
    statuses: Iterable[ComponentStatus], *, forget_after: float
) -> tuple[list[ComponentStatus], list[ComponentStatus]]:
    """(the statuses that count, the long offline ones), each in the given order."""
    kept: list[ComponentStatus] = []
    gone: list[ComponentStatus] = []
    for status in statuses:
        (gone if status.is_long_offline(forget_after) else kept).append(status)
    return kept, gone


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


def long_offline_note(count: int, *, forget_after: float, listed: bool) -> str:
    """The line under the table about `count` long offline components ("" for none).

    Args:
        count: How many components are long offline.
        forget_after: The ``--forget-after`` they are older than.
        listed: Whether the table lists them (``--all``).
    """
    if not count:
        return ""
    which = f"{count} offline for more than {forget_after:g}s"
    if listed:
        return f"{which} (included above; tickbus status --forget NAME clears one)"
    return f"{which} not shown (--all lists them)"


def _age(age: float | None) -> str:
    if age is None:
        return "?"
    if abs(age) < 100:
        return f"{age:.1f}s"
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(age) >= 2 * seconds:
            return f"{age / seconds:.0f}{unit}"
    return f"{age:.0f}s"


def key_counters(component: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """The counters worth showing for a component: its kind's `KEY_COUNTERS`, or every number."""
    keys = KEY_COUNTERS.get(component) or [
        key
        for key, value in status.items()
        if key not in ("pid", "ts") and isinstance(value, int | float)
    ]
    return {key: status[key] for key in keys if key in status}


def _counters(component: str, status: Mapping[str, Any]) -> str:
    return " ".join(
        f"{key}={'-' if value is None else value}"
        for key, value in key_counters(component, status).items()
    )


# -- forgetting ---------------------------------------------------------------------------


def parse_forget_name(name: str) -> tuple[str | None, str]:
    """``component/name`` -> (component, name); a bare ``name`` -> (None, name).

    Raises:
        ConfigError: `name` has more than one ``/``, an empty part, or a wildcard.
    """
    component, slash, bare = name.rpartition("/")
    if not slash:
        return None, validate_name(bare)
    return validate_name(component), validate_name(bare)


def forget_command_targets(
    statuses: Iterable[ComponentStatus],
    names: Sequence[tuple[str | None, str]],
    *,
    stale_after: float,
    force: bool,
) -> list[ComponentStatus]:
    """The statuses `names` select, once it is safe to clear them.

    Args:
        statuses: Every status on the broker, judged.
        names: (component or None for every kind, name) pairs, from `parse_forget_name`.
        stale_after: A component that reported at most this long ago is running.
        force: Clear running components too.

    Raises:
        ConfigError: A name matches no status, or (without `force`) a matched
            component is running: it would publish its status again within a second.
    """
    statuses = list(statuses)
    targets: dict[str, ComponentStatus] = {}
    for component, name in names:
        found = [s for s in statuses if s.name == name and component in (None, s.component)]
        if not found:
            shown = name if component is None else f"{component}/{name}"
            raise ConfigError(
                f"nothing named {shown!r} has reported on {STATUS_FILTER}; "
                "tickbus status --all lists every component"
            )
        targets.update((s.key, s) for s in found)
    running = [s for s in targets.values() if s.is_running(stale_after)]
    if running and not force:
        which = ", ".join(f"{s.key} ({s.health} {_age(s.age)} ago)" for s in running)
        raise ConfigError(
            f"not forgetting {which}: a running component publishes its status again "
            "within a second; stop it first, or pass --force"
        )
    return sorted(targets.values(), key=lambda s: (s.component, s.name))


def clear_statuses(settings: MqttSettings, topics: Collection[str], *, timeout: float) -> None:
    """Clear the retained status on each of `topics`: an empty retained QoS 1 payload.

    Raises:
        ConfigError: The broker cannot be reached, or does not acknowledge
            every clearing within `timeout` seconds.
    """
    with BusClient(settings, component="status", name="cli", announce=False) as bus:
        infos = [bus.publish(topic, b"", qos=1, retain=True) for topic in topics]
        deadline = time.monotonic() + timeout
        for info in infos:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                raise ConfigError(f"could not clear a status on {settings.url}: {exc}") from exc
            if not info.is_published():
                raise ConfigError(
                    f"the broker at {settings.url} did not acknowledge clearing "
                    f"{len(infos)} status(es) within {timeout:g} s"
                )


def check_cleared(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> list[str]:
    """Compare the statuses read before clearing them with those read after.

    A topic with the same payload after clearing is one the broker kept; one
    with a *different* payload was published again by its (running) component.

    Returns:
        The topics published again since they were cleared.

    Raises:
        ConfigError: Some status is unchanged: the login may not write that
            topic (the broker dropped the empty payload).
    """
    kept = sorted(topic for topic, payload in after.items() if before.get(topic) == payload)
    if kept:
        raise ConfigError(
            f"the broker kept {', '.join(kept)}: this login may not write it "
            "(with a broker that requires logins, only the component's own role may "
            "write status/<component>/+)"
        )
    return sorted(after)


def forget_statuses(
    mqtt: MqttSettings,
    payloads: Mapping[str, bytes],
    names: Sequence[tuple[str | None, str]],
    *,
    stale_after: float,
    force: bool,
    timeout: float,
) -> list[tuple[ComponentStatus, bool]]:
    """Clear the statuses `names` select among `payloads` (what `collect_statuses` read).

    Clears them, then listens `timeout` seconds on their topics to check that
    the broker did.

    Returns:
        Each cleared status with whether its (running, hence ``force``) component
        has published again since.

    Raises:
        ConfigError: See `forget_command_targets`, `clear_statuses`, `check_cleared`.
    """
    statuses = judge(payloads, now=time.time(), stale_after=stale_after)
    targets = forget_command_targets(statuses, names, stale_after=stale_after, force=force)
    topics = [s.topic for s in targets]
    clear_statuses(mqtt, topics, timeout=max(timeout, 5.0))
    after = collect_statuses(mqtt, timeout=timeout, filters=topics)
    again = set(check_cleared(payloads, after))
    return [(s, s.topic in again) for s in targets]


def _echo_forgotten(forgotten: list[tuple[ComponentStatus, bool]], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([s.to_json() for s, _ in forgotten], indent=2))
        return
    for status, again in forgotten:
        note = "; it is running and has published again" if again else ""
        click.echo(f"forgot {status.key} ({status.health}, {_age(status.age)} old){note}")


def _echo_statuses(
    statuses: list[ComponentStatus], *, hidden: int, forget_after: float, show_all: bool, url: str
) -> None:
    note = long_offline_note(hidden, forget_after=forget_after, listed=show_all)
    if statuses:
        lines = render_table(statuses)
        click.echo("\n".join([*lines, note] if note else lines))
    elif note:
        click.echo(f"no component left on {STATUS_FILTER} at {url}: {note}", err=True)
    else:
        click.echo(f"no component has reported on {STATUS_FILTER} at {url}", err=True)


class _NothingReported(click.ClickException):
    """The broker cannot be reached: exit code 2, like a broker nobody reported to."""

    exit_code = EXIT_NOTHING


def _names(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> list[tuple[str | None, str]]:
    try:
        return [parse_forget_name(value) for value in values]
    except ConfigError as exc:
        raise click.BadParameter(exc.reason) from exc


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
    default=DEFAULT_STALE_AFTER,
    show_default=True,
    help="An online component whose last status is older than this (seconds) is stale.",
)
@click.option(
    "--forget-after",
    type=click.FloatRange(min=0),
    default=DEFAULT_FORGET_AFTER,
    show_default=True,
    help="Leave out components that stopped cleanly more than this many seconds ago "
    "(or whose offline status has no time). A component lost without a clean stop "
    "(killed, crashed: the broker's will, marked lost) is never left out: it stays "
    "until it runs again or --forget clears it.",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List and count every component, also those offline for longer than --forget-after.",
)
@click.option(
    "--forget",
    "names",
    multiple=True,
    metavar="NAME",
    callback=_names,
    help="Clear the retained status of component NAME (component/name, or a bare name "
    "for every kind with that name) and print what was forgotten, instead of the table. "
    "Repeatable.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --forget: clear a component that reports right now too; if it runs, "
    "it publishes its status again within a second.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as one JSON array.")
def status_command(
    mqtt: MqttSettings,
    timeout: float,
    stale_after: float,
    forget_after: float,
    show_all: bool,
    names: list[tuple[str | None, str]],
    force: bool,
    as_json: bool,
) -> None:
    """Print every component's last status: state, age and key counters.

    Reads the retained statuses on status/#. A component is online, stale
    (online, but its last status is older than --stale-after), degraded,
    offline, or invalid (an unreadable status).

    A stopped component keeps its offline status on the broker. Once that is
    older than --forget-after seconds (or has no time), the table, the JSON
    and the exit code leave it out; --all lists and counts it, with its age.
    A component lost without a clean stop (killed, crashed: the broker
    publishes its will, marked lost) is never left out: a crash stays until
    the component runs again or --forget clears it.

    Exit code: 0 when every component left is online; 1 when any is stale,
    degraded, offline or invalid; 2 when none is left (none has reported, or
    all are offline for longer than --forget-after), or the broker cannot be
    reached.

    --forget NAME clears a component's retained status (what mosquitto_pub -r
    -n -t status/COMPONENT/NAME does) and prints what it forgot. It refuses,
    with exit code 1, a NAME that has not reported, and a component that
    reports right now (online or degraded within --stale-after) unless
    --force; exit code 2 when the broker cannot be reached.
    """
    if force and not names:
        raise click.UsageError("--force only goes with --forget NAME")
    try:
        payloads = collect_statuses(mqtt, timeout=timeout)
    except ConfigError as exc:
        raise _NothingReported(exc.reason) from exc
    if names:
        try:
            forgotten = forget_statuses(
                mqtt, payloads, names, stale_after=stale_after, force=force, timeout=timeout
            )
        except ConfigError as exc:
            raise click.ClickException(exc.reason) from exc
        _echo_forgotten(forgotten, as_json=as_json)
        return
    statuses = judge(payloads, now=time.time(), stale_after=stale_after)
    kept, gone = split_long_offline(statuses, forget_after=forget_after)
    shown = statuses if show_all else kept
    if as_json:
        click.echo(json.dumps([s.to_json() for s in shown], indent=2))
    else:
        _echo_statuses(
            shown, hidden=len(gone), forget_after=forget_after, show_all=show_all, url=mqtt.url
        )
    raise SystemExit(exit_code(shown))
