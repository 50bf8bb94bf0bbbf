"""The bus end to end: MQTT's ceiling, the classic one-RPC-per-message design, and the bridge.

Run ``.venv/bin/python bench/bus.py --json`` (about 3 minutes on 2 cores;
``--quick``: a ~45 s smoke run; ``--only NAME...``: some of `MEASUREMENTS`).
It prints one JSON object on stdout (without ``--json``, the headline
figures); progress goes to stderr. Everything runs against one mosquitto it
starts on a free port (``tickbus broker --engine mosquitto``), with the real
CLI for servers and bridges and the counting algorithms of ``_bus_algos.py``.

What is measured (quotes/s unless said otherwise):

* ``raw``: a bare paho subscriber whose ``on_message`` only counts, its
  publisher going as fast as it can: the ceiling for a Python MQTT consumer.
* ``naive``: one synchronous zerorpc ``event(quote)`` per MQTT message, under a
  backlog: the classic design the bridge replaces.
* ``bridge_json``: ``tickbus bridge`` forwarding one JSON quote per message
  (publisher as fast as it can) to a counting algorithm.
* ``bridge_packed``: the same with msgpack messages of `Settings.packed_batch`
  quotes of one symbol, from a pre-encoded pool, offered at
  `Settings.packed_rate`: enough to keep the bridge busy (mosquitto drops the
  excess) without the publisher taking the CPU the bridge needs.
* ``bridge_ring``: the bridge reading a ring (``--source ring://NAME``) that
  this process writes with ``write_batch``, a quarter ring at a time whenever
  less than half a ring is on its way to the algorithm: the bridge always has
  ticks waiting and is never lapped (``ring_lost`` says so).
* ``latency``: JSON quotes paced at 1,000/s and 10,000/s (absolute
  deadlines), ``ts`` = ``time.time()`` at publish; the algorithm takes
  ``time.time()`` at the entry of ``events`` minus ``ts``; the first
  `Settings.latency_warmup_s` are left out.
* ``overload``: the bridge with its default overflow policy and
  ``--max-pending``, fed twice what its `SlowAlgo` takes: its RSS growth
  (VmRSS) from after a warm-up to the end, and its status counters.

Methodology, on a shared and noisy 2-core machine:

* Throughput measurements run in rounds, one repeat of each per round, so a
  slow spell hits all alike; a headline figure is the median over the rounds,
  every round is kept under ``runs``. Latency and overload run once, after.
* Rates are taken where the quotes end up (the subscriber, or the algorithm:
  from the entry of its first ``events`` call to that of its last, without
  the first call's quotes); a run ends after `Settings.quiet_s` without one.
  The sender's own rate is reported too (``sender_per_s``): a receiver that
  kept up with it measured the sender, not itself (see ``notes``).
* Each measurement has its own symbols, so a bridge never sees another's
  traffic. Before any timing, servers serve, bridges are ``online`` with their
  channels and have had one untimed run, subscribers are subscribed.
* Every client speaks the bus's MQTT version (5, like the bridges, or
  ``--protocol 3.1.1`` for all): paho's MQTT 5 parsing costs everyone alike.
* ``cpu_*``: CPU seconds of a process per second of delivery; near 1.0, it
  kept a core busy. A publisher at full speed takes about one of the 2 cores.
* mosquitto keeps at most ``max_queued_messages`` for a client (100,000 in
  the config ``tickbus broker`` generates) and drops QoS 0 messages beyond,
  so a consumer slower than its publisher may receive fewer than were sent.

Every child process is stopped at the end, also on error, SIGTERM or Ctrl-C,
and the ring file is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

# Run as a script, this file's folder is sys.path[0] and `import ring` would
# import bench/ring.py instead of the ring package: import the packages first,
# then put the folder back at the end of the path for the bench's own modules.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]

from ring import DEFAULT_CAPACITY, TICK_DTYPE, RingWriter, ring_path  # noqa: E402

sys.path.append(str(_BENCH_DIR))

from _bus_harness import (  # noqa: E402
    AlgoClient,
    Child,
    Children,
    Stack,
    StackSpec,
    StatusWatcher,
    child_pids,
    cpu_s,
    free_port,
    log,
    machine_busy_s,
    machine_info,
    medians,
    rounded,
    rss_mb,
    run_role,
    start_broker,
)

Figures = dict[str, Any]
NAN = float("nan")


@dataclass(frozen=True)
class Settings:
    """What one run measures, and for how long (defaults: the full run).

    Attributes:
        rounds: Rounds of the throughput measurements.
        seconds: Feeding time of each throughput run (raw, bridge_*), and the naive
            client's counting window.
        symbols: Symbols per measurement (topics ``quotes/<SID>``).
        packed_batch: Quotes per packed message.
        packed_rate: Quotes/s offered to the packed bridge.
        naive_messages: Messages published at once for the naive client's backlog.
        latency_seconds: Publishing time of each latency run.
        latency_warmup_s: Seconds at the start of a latency run left out.
        overload_seconds: Overload window, from the first RSS sample to the last.
        overload_warmup_s: Overload feed time before the first RSS sample.
        overload_symbols: Symbols of the overload feed.
        overload_capacity: Quotes/s the slow algorithm takes (it is fed twice that).
        max_pending: The throughput bridges' ``--max-pending``.
        quiet_s: A run is over once no quote arrived for this long.
        protocol: The MQTT version of every client, bridges included (``"5"``,
            the bus's default, or ``"3.1.1"``).
        only: The measurements to run (default: all of `MEASUREMENTS`).
    """

    rounds: int = 3
    seconds: float = 4.0
    symbols: int = 10
    packed_batch: int = 100
    packed_rate: float = 600_000.0
    naive_messages: int = 20_000
    latency_seconds: float = 5.0
    latency_warmup_s: float = 0.5
    overload_seconds: float = 60.0
    overload_warmup_s: float = 5.0
    overload_symbols: int = 100
    overload_capacity: float = 5_000.0
    max_pending: int = 1_000_000
    quiet_s: float = 1.0
    protocol: str = "5"
    only: tuple[str, ...] = ()


QUICK = Settings(
    rounds=1,
    seconds=1.5,
    naive_messages=6_000,
    latency_seconds=2.0,
    overload_seconds=10.0,
    overload_warmup_s=2.0,
    quiet_s=0.5,
)

LATENCY_RATES = (1_000, 10_000)
RESULT_TIMEOUT_S = 120.0
"""Longest wait for a child's result or for a run to drain."""
RING_CHUNK = DEFAULT_CAPACITY // 4
"""Ticks per top-up of the ring (`Bench.feed_ring`)."""
WARM_UP_QUOTES = 1 << 14
"""Quotes of the untimed run through a new stack (`StackSpec.warm_up`)."""


# --- the processes under test -------------------------------------------------------------


STACKS = {
    "naive": StackSpec("NV", bridge=False, warm_up=False),
    "json": StackSpec("JS"),
    "packed": StackSpec("PK"),
    "ring": StackSpec("RG", ring=True),
    "overload": StackSpec("OV", algo="SlowAlgo", tuned=False, warm_up=False),
}


class Bench:
    """One run: settings, the broker, the stacks (started on first use) and the ring."""

    def __init__(self, settings: Settings, children: Children) -> None:
        self.settings = settings
        self.children = children
        self.tag = uuid.uuid4().hex[:6]
        self.broker, self.port = start_broker(children)
        query = "" if settings.protocol == "5" else f"?protocol={settings.protocol}"
        self.url = f"mqtt://127.0.0.1:{self.port}{query}"
        self.watcher = StatusWatcher(self.port, settings.protocol)
        self.stacks: dict[str, Stack] = {}
        self.ring_name = f"bench-bus-{self.tag}"
        self.ring: RingWriter | None = None

    def symbols(self, prefix: str, count: int | None = None) -> list[str]:
        """``PREFIX0 .. PREFIX<count-1>`` (default `Settings.symbols`)."""
        return [f"{prefix}{i}" for i in range(count or self.settings.symbols)]

    def stack(self, kind: str) -> Stack:
        """The stack `kind` of `STACKS`, started and warmed up on first use."""
        if kind not in self.stacks:
            log(f"starting the {kind} stack")
            self.stacks[kind] = self._start_stack(kind, STACKS[kind])
        return self.stacks[kind]

    def stop_stack(self, kind: str) -> None:
        """Stop a stack's bridge, then its server."""
        stack = self.stacks.pop(kind)
        stack.algo.close()
        if stack.bridge is not None:
            stack.bridge.stop()
        stack.server.stop()

    def _start_stack(self, kind: str, spec: StackSpec) -> Stack:
        count = self.settings.overload_symbols if kind == "overload" else None
        symbols = self.symbols(spec.prefix, count)
        if spec.ring:
            self._create_ring(symbols)
        addr, name = f"tcp://127.0.0.1:{free_port()}", f"bench-{self.tag}-{kind}"
        serve = ["serve", f"_bus_algos:{spec.algo}", "--addr", addr, "--app-dir", "bench"]
        server = self.children.tickbus(f"algo-{kind}", "algo", *serve)
        bridge = None
        if spec.bridge:
            options = ["--mqtt", self.url, "--rpc", addr, "--name", name]
            options += self._bridge_options(kind, spec, symbols)
            bridge = self.children.tickbus(f"bridge-{kind}", "bridge", *options)
        server.wait_ready("serving")
        stack = Stack(kind, name, symbols, server, bridge, AlgoClient(addr))
        if bridge is not None:
            self.watcher.wait_online(bridge, name)
        if spec.warm_up:
            self._warm_up(stack)
        return stack

    def _bridge_options(self, kind: str, spec: StackSpec, symbols: list[str]) -> list[str]:
        settings = self.settings
        options = ["--param", f"warmup_s={settings.latency_warmup_s}"]
        if spec.tuned:
            channels = json.dumps([f"quotes/{sid}" for sid in symbols])
            options += ["--param", f"channels={channels}"]
            options += ["--max-pending", str(settings.max_pending)]
        if spec.ring:
            options += ["--source", f"ring://{self.ring_name}"]
        if kind == "overload":
            options += ["--param", f"per_quote_s={1 / settings.overload_capacity}"]
        return options

    def _warm_up(self, stack: Stack) -> None:
        """An untimed first run through the stack: every process on its hot path once."""
        if STACKS[stack.kind].ring:
            self._write_ticks(self._ring_ticks(stack.symbols, WARM_UP_QUOTES))
        else:
            feed = ("--count", str(WARM_UP_QUOTES), "--seconds", str(RESULT_TIMEOUT_S))
            self.role("publish", stack.symbols, *feed).result(RESULT_TIMEOUT_S)
        stack.algo.wait_idle(self.settings.quiet_s, RESULT_TIMEOUT_S)
        stack.algo.finish_run()

    def feed_ring(self, stack: Stack, seconds: float) -> Figures:
        """Write ticks for `seconds`, a quarter of the ring at a time, whenever less than half
        a ring is still on its way to the algorithm: the bridge always has ticks waiting, and
        the writer never laps it. ``quotes_per_s`` is the writer's own speed."""
        ticks = self._ring_ticks(stack.symbols, RING_CHUNK)
        written, writing, cpu0 = 0, 0.0, time.process_time()
        start = time.perf_counter()
        while time.perf_counter() < start + seconds:
            if written - stack.algo.figures()["quotes"] > 2 * RING_CHUNK:
                time.sleep(0.02)
                continue
            writing += self._write_ticks(ticks)
            written += len(ticks)
        return {
            "quotes": written,
            "quotes_per_s": written / writing,
            "cpu": (time.process_time() - cpu0) / (time.perf_counter() - start),
        }

    def _ring_ticks(self, symbols: list[str], count: int) -> np.ndarray:
        """`count` ticks cycling over `symbols`, for `_write_ticks`."""
        assert self.ring is not None
        ticks = np.zeros(count, TICK_DTYPE)
        ids = np.array([self.ring.symbol_id(sid) for sid in symbols], np.uint32)
        ticks["sid"] = ids[np.arange(count) % len(ids)]
        ticks["price"] = 100.0 + np.arange(count) % 8 * 0.01
        ticks[["bid", "ask", "size"]] = (NAN, NAN, NAN)
        return ticks

    def _write_ticks(self, ticks: np.ndarray) -> float:
        """Write `ticks` (``ts`` = now), 4096 per write_batch; returns the seconds it took."""
        assert self.ring is not None
        start = time.perf_counter()
        ticks["src_ns"] = time.time_ns()
        for first in range(0, len(ticks), 4096):
            self.ring.write_batch(ticks[first : first + 4096])
        return time.perf_counter() - start

    def _create_ring(self, symbols: list[str]) -> None:
        """The ring (default capacity) that bridge_ring reads; this process is its writer."""
        self.ring = RingWriter(self.ring_name)
        for sid in symbols:
            self.ring.symbol_id(sid)

    def role(self, role: str, symbols: list[str], *options: str) -> Child:
        """A bench child (``--role ROLE``) on this broker and the topics of `symbols`."""
        common = ["--port", str(self.port), "--protocol", self.settings.protocol]
        common += ["--symbols", ",".join(symbols)]
        return self.children.role(role, *common, *options)

    def cpu(self, stack: Stack) -> dict[str, float]:
        """CPU seconds so far of the stack's processes and of mosquitto, by role."""
        pids = stack.pids() | {"broker": child_pids(self.broker.pid)[0]}
        return {role: cpu_s(pid) for role, pid in pids.items()}

    def close(self) -> None:
        """Close the RPC clients, the status watcher and the ring; remove the ring file."""
        for stack in self.stacks.values():
            stack.algo.close()
        self.watcher.close()
        if self.ring is not None:
            self.ring.close()
        ring_path(self.ring_name).unlink(missing_ok=True)


# --- throughput ------------------------------------------------------------------------


def raw(bench: Bench) -> Figures:
    """Messages/s a bare paho subscriber counts, its publisher going as fast as it can."""
    symbols = bench.symbols("RW")
    subscriber = bench.role("subscribe", symbols, "--idle", str(bench.settings.quiet_s))
    subscriber.wait_ready()
    sent = bench.role("publish", symbols, "--seconds", str(bench.settings.seconds))
    sent_figures = sent.result(RESULT_TIMEOUT_S)
    got = subscriber.result(RESULT_TIMEOUT_S)
    return {
        "per_s": got["per_s"],
        "received": got["received"],
        "sent": sent_figures["messages"],
        "sender_per_s": sent_figures["messages_per_s"],
        "cpu_receiver": got["cpu"],
        "cpu_sender": sent_figures["cpu_s"] / sent_figures["elapsed_s"],
    }


def naive(bench: Bench) -> Figures:
    """Synchronous ``event(quote)`` calls/s, one per MQTT message, with a backlog waiting."""
    stack = bench.stack("naive")
    options = ("--rpc", stack.algo.addr, "--seconds", str(bench.settings.seconds))
    client = bench.role("naive", stack.symbols, *options)
    client.wait_ready()
    sent = bench.role(
        "publish", stack.symbols, "--count", str(bench.settings.naive_messages), "--seconds", "60"
    )
    got = client.result(RESULT_TIMEOUT_S)
    sent_figures = sent.result(RESULT_TIMEOUT_S)
    return {
        "per_s": got["per_s"],
        "calls": got["calls"],
        "backlog_left": got["backlog_left"],
        "sender_per_s": sent_figures["messages_per_s"],
    }


def _bridge_run(bench: Bench, kind: str, feed: Callable[[Stack], Figures]) -> Figures:
    """Quotes/s at the algorithm of stack `kind` while `feed` sends; `feed` returns
    the sender's ``quotes``, ``quotes_per_s`` (and ``cpu``: its CPU share)."""
    stack = bench.stack(kind)
    stack.algo.finish_run()  # a clean start: nothing from earlier runs
    cpu_before = bench.cpu(stack)
    sent = feed(stack)
    stack.algo.wait_idle(bench.settings.quiet_s, RESULT_TIMEOUT_S)
    cpu_after = bench.cpu(stack)
    run = stack.algo.finish_run()
    span = run["last_t"] - run["first_t"]
    cpu = {f"cpu_{role}": (cpu_after[role] - cpu_before[role]) / span for role in cpu_after}
    return {
        "per_s": run["per_s"],
        "received": run["quotes"],
        "sent": sent["quotes"],
        "sender_per_s": sent["quotes_per_s"],
        "mean_batch": run["quotes"] / run["batches"],
        **cpu,
        "cpu_sender": sent["cpu"],
    }


def _publish(bench: Bench, stack: Stack, *options: str) -> Figures:
    """Run a publisher on the stack's symbols to the end; its figures (`_bridge_run` feed)."""
    figures = bench.role("publish", stack.symbols, *options).result(RESULT_TIMEOUT_S)
    return figures | {"cpu": figures["cpu_s"] / figures["elapsed_s"]}


def bridge_json(bench: Bench) -> Figures:
    """The bridge, one JSON quote per message, publisher as fast as it can."""
    seconds = str(bench.settings.seconds)
    return _bridge_run(bench, "json", lambda stack: _publish(bench, stack, "--seconds", seconds))


def bridge_packed(bench: Bench) -> Figures:
    """The bridge, msgpack messages of `Settings.packed_batch` quotes of one symbol each."""
    settings = bench.settings
    options = ["--format", "packed", "--batch", str(settings.packed_batch)]
    options += ["--rate", str(settings.packed_rate), "--seconds", str(settings.seconds)]
    return _bridge_run(bench, "packed", lambda stack: _publish(bench, stack, *options))


def bridge_ring(bench: Bench) -> Figures:
    """The bridge reading a ring that this process keeps filled (`Bench.feed_ring`)."""
    seconds = bench.settings.seconds
    figures = _bridge_run(bench, "ring", lambda stack: bench.feed_ring(stack, seconds))
    status = bench.watcher.wait_fresh(bench.stacks["ring"].name, time.time())
    return figures | {"ring_lost": status.get("ring_lost")}


# --- latency and overload -------------------------------------------------------------------


def latency(bench: Bench) -> Figures:
    """Delay from publish to the algorithm's ``events``, paced at each of `LATENCY_RATES`."""
    settings, stack = bench.settings, bench.stack("json")
    figures: Figures = {}
    for rate in LATENCY_RATES:
        log(f"latency at {rate}/s")
        stack.algo.finish_run()
        options = ("--rate", str(rate), "--seconds", str(settings.latency_seconds), "--fresh-ts")
        sent = bench.role("publish", stack.symbols, *options).result(RESULT_TIMEOUT_S)
        stack.algo.wait_idle(settings.quiet_s, RESULT_TIMEOUT_S)
        run = stack.algo.finish_run()
        key = f"{rate // 1000}k"
        figures |= {
            f"{key}_p50_ms": run["p50_ms"],
            f"{key}_p99_ms": run["p99_ms"],
            f"{key}_max_ms": run["max_ms"],
            f"{key}_samples": run["samples"],
            f"{key}_received": run["quotes"],
            f"{key}_sent": sent["quotes"],
            f"{key}_mean_batch": run["quotes"] / run["batches"],
            f"{key}_publisher_late_max_ms": sent["max_late_ms"],
        }
    return figures


def overload(bench: Bench) -> Figures:
    """The bridge's RSS growth and counters, fed twice what its slow algorithm takes."""
    settings, stack = bench.settings, bench.stack("overload")
    assert stack.bridge is not None
    rate = 2 * settings.overload_capacity
    seconds = settings.overload_warmup_s + settings.overload_seconds
    options = ("--rate", str(rate), "--seconds", str(seconds), "--fresh-ts")
    publisher = bench.role("publish", stack.symbols, *options)
    publisher.wait_ready()
    time.sleep(settings.overload_warmup_s)
    rss_before = rss_mb(stack.bridge.pid)
    log(f"overload: {settings.overload_seconds:g} s at {rate:g} quotes/s")
    time.sleep(settings.overload_seconds)
    rss_after = rss_mb(stack.bridge.pid)
    sent = publisher.result(RESULT_TIMEOUT_S)
    status = bench.watcher.wait_fresh(stack.name, time.time())
    run = stack.algo.figures()
    bench.stop_stack("overload")
    return {
        "rss_growth_mb": rss_after - rss_before,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "quotes_in": status.get("quotes_in"),
        "delivered": status.get("forwarded"),
        "dropped": status.get("dropped"),
        "conflated": status.get("conflated"),
        "pending": status.get("pending"),
        "sent": sent["quotes"],
        "sender_per_s": sent["quotes_per_s"],
        "algo_per_s": run["per_s"],
    }


# --- the run ----------------------------------------------------------------------------------

MEASUREMENTS: dict[str, Callable[[Bench], Figures]] = {
    "raw": raw,
    "naive": naive,
    "bridge_json": bridge_json,
    "bridge_packed": bridge_packed,
    "bridge_ring": bridge_ring,
    "latency": latency,
    "overload": overload,
}
ONCE = ("latency", "overload")
"""Measurements run once, after the rounds of the others."""

HEADLINE = {
    "raw_mqtt_per_s": ("raw", "per_s"),
    "raw_mqtt_received": ("raw", "received"),
    "raw_mqtt_published": ("raw", "sent"),
    "naive_rpc_per_s": ("naive", "per_s"),
    "bridge_json_per_s": ("bridge_json", "per_s"),
    "bridge_packed_per_s": ("bridge_packed", "per_s"),
    "bridge_ring_per_s": ("bridge_ring", "per_s"),
    "ring_lost": ("bridge_ring", "ring_lost"),
    "latency_1k_p50_ms": ("latency", "1k_p50_ms"),
    "latency_1k_p99_ms": ("latency", "1k_p99_ms"),
    "latency_10k_p50_ms": ("latency", "10k_p50_ms"),
    "latency_10k_p99_ms": ("latency", "10k_p99_ms"),
    "overload_rss_growth_mb": ("overload", "rss_growth_mb"),
    "overload_conflated": ("overload", "conflated"),
    "overload_dropped": ("overload", "dropped"),
    "overload_quotes_in": ("overload", "quotes_in"),
    "overload_delivered": ("overload", "delivered"),
}
"""Top-level key: (measurement, figure in its details)."""

RATIOS = {
    "bridge_json_vs_raw": ("bridge_json_per_s", "raw_mqtt_per_s"),
    "bridge_json_vs_naive": ("bridge_json_per_s", "naive_rpc_per_s"),
}

TARGETS = (
    ("bridge_json_vs_raw", ">=", 0.8),
    ("bridge_json_vs_naive", ">=", 20.0),
    ("bridge_packed_per_s", ">=", 300_000.0),
    ("bridge_ring_per_s", ">=", 500_000.0),
    ("latency_1k_p50_ms", "<=", 2.0),
    ("latency_1k_p99_ms", "<=", 10.0),
    ("overload_rss_growth_mb", "<=", 50.0),
)


def run(settings: Settings) -> dict[str, Any]:
    """Every chosen measurement (rounds, then `ONCE`); the report."""
    chosen = [name for name in MEASUREMENTS if name in (settings.only or MEASUREMENTS)]
    runs: dict[str, list[Figures]] = {name: [] for name in chosen}
    load_before, started = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tickbus-bench-bus-") as workdir:
        children, bench = Children(Path(workdir)), None
        try:
            bench = Bench(settings, children)
            _measure_all(bench, chosen, runs)
        except Exception:
            if not _STOP_SIGNAL:
                children.report_failures()
            raise
        finally:
            children.stop_all()
            if bench is not None:
                bench.close()
    details = {name: medians(figures) for name, figures in runs.items()}
    report = _headline(details)
    report["targets"] = _targets(report)
    report["notes"] = _notes(details)
    report["machine"] = machine_info(load_before)
    report["parameters"] = _parameters(settings)
    report["details"] = details
    report["runs"] = {name: [rounded(f) for f in figures] for name, figures in runs.items()}
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def _measure_all(bench: Bench, chosen: list[str], runs: dict[str, list[Figures]]) -> None:
    rounds = [name for name in chosen if name not in ONCE]
    for round_index in range(bench.settings.rounds if rounds else 0):
        for name in rounds:
            log(f"round {round_index + 1}/{bench.settings.rounds}: {name}")
            runs[name].append(_measure(bench, name))
            log(f"  {rounded(runs[name][-1])}")
    for name in chosen:
        if name in ONCE:
            log(name)
            runs[name].append(_measure(bench, name))


def _measure(bench: Bench, name: str) -> Figures:
    """Measurement `name`, plus ``others_cpus``: the CPUs that processes outside this run
    kept busy meanwhile (/proc/stat less this run's CPU time)."""
    wall, busy, own = time.perf_counter(), machine_busy_s(), bench.children.cpu_s()
    figures = MEASUREMENTS[name](bench)
    others = (machine_busy_s() - busy) - (bench.children.cpu_s() - own)
    return figures | {"others_cpus": max(0.0, others) / (time.perf_counter() - wall)}


def _headline(details: dict[str, Figures]) -> dict[str, Any]:
    """The top-level figures of the measurements that ran, and their ratios."""
    report: dict[str, Any] = {
        key: details[name][figure] for key, (name, figure) in HEADLINE.items() if name in details
    }
    for key, (over, under) in RATIOS.items():
        if report.get(over) and report.get(under):
            report[key] = round(report[over] / report[under], 3)
    return report


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for key, op, bound in TARGETS:
        if report.get(key) is not None:
            value = report[key]
            met = value >= bound if op == ">=" else value <= bound
            targets[key] = {"need": f"{op} {bound:g}", "value": value, "met": met}
    targets["all_met"] = all(t["met"] for t in targets.values())
    return targets


def _notes(details: dict[str, Figures]) -> list[str]:
    """What a reader needs to judge the figures: sender-bound runs, losses."""
    notes = []
    for name, figures in details.items():
        if "per_s" in figures and figures["per_s"] >= 0.9 * figures["sender_per_s"]:
            notes.append(
                f"{name}: the receiver kept up with its sender ({figures['sender_per_s']:g}/s); "
                "its figure is the sender's rate, a lower bound of its own"
            )
        if "sent" in figures and "received" in figures and figures["received"] < figures["sent"]:
            notes.append(
                f"{name}: {figures['received']:g} of {figures['sent']:g} arrived (median); "
                "mosquitto dropped the rest: more than max_queued_messages waited for it"
            )
    busy = [name for name, figures in details.items() if figures["others_cpus"] > 0.25]
    if busy:
        notes.append(f"other processes competed for the CPUs during: {', '.join(busy)}")
    if details.get("naive", {}).get("backlog_left") == 0:
        notes.append("naive: the backlog ran out within the window; raise naive_messages")
    return notes


def _parameters(settings: Settings) -> dict[str, Any]:
    return asdict(settings) | {
        "ring_capacity": DEFAULT_CAPACITY,
        "latency_rates": LATENCY_RATES,
        "overload_feed_per_s": 2 * settings.overload_capacity,
        "bridge_overflow": "the bridge's default (no --overflow passed)",
        "broker": "tickbus broker --engine mosquitto (generated config, defaults otherwise)",
    }


_STOP_SIGNAL: list[int] = []
"""The signal that stopped the run, if one did: then an error is its echo, not news
(Ctrl-C also reaches the children, and a server gone mid-call raises in this process)."""


def _stop(signum: int, frame: FrameType | None) -> None:
    _STOP_SIGNAL.append(signum)
    raise SystemExit(128 + signum)  # so every child is stopped


def _parse_args(argv: list[str]) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a ~40 s smoke run")
    parser.add_argument("--rounds", type=int, help="rounds of the throughput measurements")
    parser.add_argument("--seconds", type=float, help="each throughput window")
    parser.add_argument("--overload-seconds", type=float, help="the overload window (60)")
    parser.add_argument("--protocol", choices=("5", "3.1.1"), help="MQTT version (default 5)")
    parser.add_argument(
        "--only", nargs="+", choices=list(MEASUREMENTS), default=[], help="run only these"
    )
    args = parser.parse_args(argv)
    settings = replace(QUICK if args.quick else Settings(), only=tuple(args.only))
    for name in ("rounds", "seconds", "overload_seconds", "protocol"):
        if getattr(args, name) is not None:
            settings = replace(settings, **{name: getattr(args, name)})
    return settings, args.json


def main(argv: list[str]) -> None:
    """``bus.py [options]``: the bench; ``bus.py --role ROLE ...``: one of its children."""
    if argv[:1] == ["--role"]:
        run_role(argv[1:])
        return
    settings, as_json = _parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    try:
        report = run(settings)
    except Exception:
        if _STOP_SIGNAL:
            raise SystemExit(128 + _STOP_SIGNAL[0]) from None
        raise
    if as_json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        if not isinstance(value, dict | list):
            print(f"{key:28} {value}")
    print(f"{'targets met':28} {report['targets']['all_met']}")


if __name__ == "__main__":
    main(sys.argv[1:])
