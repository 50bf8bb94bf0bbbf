"""Soak: the whole stack under a steady feed while its parts are killed and bad data arrives.

Run ``.venv/bin/python bench/soak.py --minutes 1 --json`` (``--minutes M``: the
faulty phase lasts M minutes; startup, drain and shutdown add about 5 s). It
prints one JSON object on stdout (without ``--json``, the headline figures);
progress goes to stderr.

What runs, against a mosquitto it starts on a free port (tickbus's generated
config, no persistence): ``tickbus feed synthetic`` at ``--rate`` quotes/s
over ``--symbols`` symbols, ``tickbus execution paper``, ``tickbus algo serve``
(`ALGORITHM`, its book in a state directory) and ``tickbus bridge`` in front
of it.

The schedule: every ``--fault-every`` seconds the next of `FAULTS` is
SIGKILLed and started again (the algorithm server and the broker after
`DOWN_S`, on the same address and port; the bridge at once, under the same
name), and the soak waits until quotes reach the algorithm again
(``recoveries``: how long that took). No fault comes in the last
`QUIET_END_S` seconds. All along, `INJECT_PER_S` bad payloads per second go
out (bad quotes, a bad control command, an unreadable order).

At the end the feed is stopped with SIGTERM, the bridge drains, RSS is read
(``/proc/<pid>/status`` VmRSS) and every process is stopped with SIGTERM.

Where the figures come from: each component's own counters on its status
topic, per process (a restarted process starts from zero, so they are summed
over its processes), and a watcher subscribed to ``status/#``,
``orders/NAME``, ``fills/NAME`` and ``deadletter/#`` (QoS 1). A process
killed with SIGKILL loses up to one status interval (1 s) of counts, and
whatever sat in its memory: ``lost_in_killed_bridges`` is the backlog its last
status showed. Quotes published while no bridge was subscribed (a bridge
restarting, a broker going down), and those a killed bridge took in after its
last status, are ``never_reached_a_bridge``; quotes the feed could not send
while the broker was down are ``not_sent_broker_down``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

# Run as a script, this file's folder is sys.path[0] and `import ring` would import
# bench/ring.py instead of the ring package: the packages come first (as in bench/bus.py).
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]

import broker  # noqa: E402, F401  (the package, before the bench's folder is on the path)

sys.path.append(str(_BENCH_DIR))

from _bus_harness import Children, wait_until  # noqa: E402
from _soak_harness import Broker, Stack, Watcher, bad_payload, log, rss_of  # noqa: E402

ALGORITHM = "algos.examples:MovingAverageCross"
"""It buys on up-crosses and sells whole positions on down-crosses: orders all along."""
FAULTS = ("algo", "bridge", "broker")
DOWN_S = 2.0
"""How long the algorithm server or the broker stays down before it is started again."""
QUIET_END_S = 10.0
INJECT_PER_S = 4.0
RECOVERY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Settings:
    """One soak.

    Attributes:
        minutes: Length of the faulty phase.
        rate: Quotes/s the feed publishes.
        symbols: Symbols it quotes, round-robin.
        fault_every: Seconds between faults.
    """

    minutes: float = 1.0
    rate: float = 500.0
    symbols: int = 5
    fault_every: float = 10.0


class Soak:
    """One run: the stack, its faults and the figures (see the module docstring)."""

    def __init__(self, settings: Settings, children: Children) -> None:
        self.settings = settings
        self.broker = Broker(children)
        tag = uuid.uuid4().hex[:6]
        symbols = [f"SK{tag.upper()}{n}" for n in range(settings.symbols)]
        self.stack = Stack(
            children, self.broker.url, tag=tag, symbols=symbols, rate=settings.rate, algo=ALGORITHM
        )
        self.watcher = Watcher(self.broker.port, self.stack.name)
        self.restarts = dict.fromkeys(FAULTS, 0)
        self.recoveries: list[dict[str, Any]] = []
        self.unexpected_exits: list[str] = []
        self._injected = 0
        self._started = time.monotonic()

    # --- phases ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Start, run the faulty phase, drain, stop; the report."""
        self._start_stack()
        rss_start = self._rss()
        self._faulty_phase()
        rss_end = self._rss()
        feed = self._drain()
        exit_codes = {role: self.stack.stop(role) for role in ("bridge", "algo", "execution")}
        exit_codes["feed"] = feed.pop("exit_code")
        return self._report(feed, rss_start, rss_end, exit_codes)

    def _start_stack(self) -> None:
        log(f"mosquitto on port {self.broker.port}; starting the stack")
        self.stack.start("execution")
        self.stack.start("algo")
        bridge = self.stack.start("bridge")
        wait_until(
            lambda: self._online("bridge", bridge.pid),
            timeout=RECOVERY_TIMEOUT_S,
            what="the bridge online",
        )
        wait_until(  # its counters come once it has subscribed
            lambda: "waiting" in self.watcher.status("execution"),
            timeout=RECOVERY_TIMEOUT_S,
            what="execution online",
        )
        self.stack.start("feed")
        self._wait_delivering(after=time.time(), baseline=0)

    def _faulty_phase(self) -> None:
        settings = self.settings
        start = time.monotonic()
        end = start + settings.minutes * 60
        next_fault, faults = start + settings.fault_every, 0
        log(f"faulty phase: {settings.minutes:g} min, a fault every {settings.fault_every:g} s")
        while (now := time.monotonic()) < end:
            if now >= next_fault and now < end - QUIET_END_S:
                self._fault(FAULTS[faults % len(FAULTS)])
                faults += 1
                next_fault = time.monotonic() + settings.fault_every
            self._inject()
            self._check_alive()
            time.sleep(1 / INJECT_PER_S)

    def _drain(self) -> dict[str, Any]:
        """Stop the feed (SIGTERM); its final counters, once the bridge has taken every quote
        it got (a status of the bridge a second after the feed's end, with nothing pending)."""
        feed = self.stack.current["feed"]
        exit_code = self.stack.stop("feed")
        final = wait_until(
            lambda: self._offline("feed", feed.pid), timeout=DRAIN_TIMEOUT_S, what="the feed"
        )
        bridge, stopped = self.stack.current["bridge"].pid, time.time()

        def drained() -> bool:
            status = self.watcher.status("bridge", bridge)
            return status.get("ts", 0) > stopped + 1 and status.get("pending") == 0

        wait_until(drained, timeout=DRAIN_TIMEOUT_S, what="the bridge drained")
        return {**final, "exit_code": exit_code}

    # --- faults ---------------------------------------------------------------------------

    def _fault(self, role: str) -> None:
        """Kill `role` with SIGKILL, start it again, and time how long until quotes flow."""
        at = round(time.monotonic() - self._started, 1)
        log(f"{at:6.1f} s: kill -9 {role}")
        before = self.watcher.status("bridge", self.stack.current["bridge"].pid)
        if role == "broker":
            self.broker.kill()
        else:
            self.stack.kill(role)
        if role != "bridge":  # a bridge comes back at once, as its supervisor would start it
            time.sleep(DOWN_S)
        restarted = time.time()
        if role == "broker":
            self.broker.start()
        else:
            self.stack.start(role)
        self.restarts[role] += 1
        baseline = 0 if role == "bridge" else before.get("forwarded", 0)
        back = self._wait_delivering(after=restarted, baseline=baseline)
        self.recoveries.append({"fault": role, "at_s": at, "back_s": round(back, 1)})

    def _wait_delivering(self, *, after: float, baseline: int) -> float:
        """Seconds from `after` (``time.time``) until the current bridge process reports,
        online, more quotes forwarded than `baseline`."""
        bridge = self.stack.current["bridge"].pid

        def delivering() -> bool:
            status = self.watcher.status("bridge", bridge)
            fresh = status.get("ts", 0) > after and status.get("state") == "online"
            return fresh and status.get("forwarded", 0) > baseline

        wait_until(delivering, timeout=RECOVERY_TIMEOUT_S, what="quotes delivered again")
        return time.time() - after

    def _online(self, component: str, pid: int) -> bool:
        status = self.watcher.status(component, pid)
        return status.get("state") == "online" and bool(status.get("channels"))

    def _offline(self, component: str, pid: int) -> dict[str, Any] | None:
        status = self.watcher.status(component, pid)
        return status if status.get("state") == "offline" else None

    def _inject(self) -> None:
        topic, payload = bad_payload(self._injected, self.stack.name, self.stack.symbols[0])
        self.watcher.inject(topic, payload)
        self._injected += 1

    def _check_alive(self) -> None:
        for role, child in self.stack.current.items():
            if not child.alive() and role not in self.unexpected_exits:
                log(f"{role} (pid {child.pid}) exited by itself with {child.popen.returncode}")
                self.unexpected_exits.append(role)

    def _rss(self) -> dict[str, float | None]:
        return rss_of({**self.stack.current, "broker": self.broker.child})

    # --- the report -----------------------------------------------------------------------

    def _report(
        self,
        feed: dict[str, Any],
        rss_start: dict[str, float | None],
        rss_end: dict[str, float | None],
        exit_codes: dict[str, int | None],
    ) -> dict[str, Any]:
        bridges = self.watcher.every_status("bridge")
        final = bridges[self.stack.current["bridge"].pid]
        execution = self.watcher.status("execution")
        accounted = sum(final[k] for k in ("forwarded", "conflated", "dropped", "unrouted"))
        orders = self._orders(_summed(bridges.values()), execution)
        return {
            "quotes": self._quotes(feed, bridges, final),
            "bad_payloads_injected": self.watcher.injected,
            "dead_lettered": {
                "total": sum(self.watcher.dead_letters.values()),
                **self.watcher.dead_letters,
            },
            "orders": orders,
            "fills": {
                "execution": execution.get("fills"),
                "seen_on_bus": self.watcher.fills,
                "booked_by_algorithm": _summed(bridges.values())["fills"],
            },
            "restarts": {**self.restarts, "total": sum(self.restarts.values())},
            "recoveries": self.recoveries,
            "mqtt_reconnects": {
                "feed": feed.get("mqtt_reconnects"),
                "execution": execution.get("mqtt_reconnects"),
            },
            "unexpected_exits": self.unexpected_exits,
            "exit_codes_on_sigterm": exit_codes,
            "rss_mb": self._rss_figures(rss_start, rss_end),
            "checks": {
                "final_bridge_accounts_for_every_quote": final["quotes_in"]
                == accounted + final["pending"],
                "no_duplicate_order_ids": orders["duplicate_order_ids"] == 0,
                "execution_filled_no_order_twice": execution.get("duplicates") == 0,
                "every_exit_clean": all(code == 0 for code in exit_codes.values()),
            },
            "parameters": {**asdict(self.settings), **PARAMETERS},
            "elapsed_s": round(time.monotonic() - self._started, 1),
        }

    @staticmethod
    def _quotes(
        feed: dict[str, Any], bridges: dict[int, dict[str, Any]], final: dict[str, Any]
    ) -> dict[str, int]:
        total = _summed(bridges.values())
        killed = [status for status in bridges.values() if status is not final]
        return {
            "sent": feed["published"],
            "not_sent_broker_down": feed["dropped"],
            "received_by_bridges": total["quotes_in"],
            "delivered": total["forwarded"],
            "conflated": total["conflated"],
            "dropped": total["dropped"],
            "unrouted": total["unrouted"],
            "lost_in_killed_bridges": sum(status.get("pending", 0) for status in killed),
            "never_reached_a_bridge": feed["published"] - total["quotes_in"],
        }

    def _orders(self, bridges: dict[str, int], execution: dict[str, Any]) -> dict[str, Any]:
        ids = self.watcher.order_ids
        return {
            "published": bridges["orders"],
            "refused_by_risk": bridges["orders_rejected"],
            "seen_on_bus": sum(ids.values()),
            "unique_ids": len(ids),
            "duplicate_order_ids": sum(1 for n in ids.values() if n > 1),
            "execution_orders_in": execution.get("orders_in"),
            "execution_duplicates": execution.get("duplicates"),
            "execution_rejected": execution.get("rejected"),
        }

    def _rss_figures(
        self, start: dict[str, float | None], end: dict[str, float | None]
    ) -> dict[str, dict[str, Any]]:
        """Per role: RSS at the start and at the end, and whether it is the same process."""
        first = {**self.stack.first_pid, "broker": self.broker.first_pid}
        now = {role: child.pid for role, child in self.stack.current.items()}
        now["broker"] = self.broker.child.pid
        figures = {}
        for role in end:
            same = first[role] == now[role]
            figures[role] = {"start": start.get(role), "end": end.get(role), "same_process": same}
        return figures


PARAMETERS = {
    "algorithm": ALGORITHM,
    "faults": FAULTS,
    "down_s": DOWN_S,
    "inject_per_s": INJECT_PER_S,
    "quiet_end_s": QUIET_END_S,
}
"""The fixed parameters, reported with the settings."""


SUMMED = (
    "quotes_in",
    "forwarded",
    "conflated",
    "dropped",
    "unrouted",
    "orders",
    "orders_rejected",
    "fills",
)
"""Bridge counters summed over its processes."""


def _summed(statuses: Any) -> dict[str, int]:
    totals = dict.fromkeys(SUMMED, 0)
    for status in statuses:
        for key in SUMMED:
            totals[key] += int(status.get(key) or 0)
    return totals


def run(settings: Settings) -> dict[str, Any]:
    """One soak in a temporary folder; every child is stopped at the end, also on error."""
    with tempfile.TemporaryDirectory(prefix="tickbus-soak-") as workdir:
        children = Children(Path(workdir))
        soak = None
        try:
            soak = Soak(settings, children)
            return soak.run()
        except Exception:
            if not _STOP_SIGNAL:
                children.report_failures()
            raise
        finally:
            children.stop_all()
            if soak is not None:
                soak.watcher.close()


_STOP_SIGNAL: list[int] = []


def _stop(signum: int, _frame: FrameType | None) -> None:
    _STOP_SIGNAL.append(signum)
    raise SystemExit(128 + signum)  # so every child is stopped


def _parse_args(argv: list[str]) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--minutes", type=float, default=1.0, help="the faulty phase (1)")
    parser.add_argument("--rate", type=float, default=500.0, help="feed quotes/s (500)")
    parser.add_argument("--symbols", type=int, default=5, help="symbols quoted (5)")
    parser.add_argument("--fault-every", type=float, default=10.0, help="seconds (10)")
    args = parser.parse_args(argv)
    settings = Settings(args.minutes, args.rate, args.symbols, args.fault_every)
    return settings, args.json


def main(argv: list[str]) -> None:
    """``soak.py [--minutes M] [--json]``."""
    settings, as_json = _parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    report = run(settings)
    if as_json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:24} {json.dumps(value)}")


if __name__ == "__main__":
    main(sys.argv[1:])
