"""The tape end to end: recording a packed feed from the broker, and reading a dataset back.

Run ``.venv/bin/python bench/record.py --json`` (about 10 minutes on 2 cores;
``--quick``: a 1-2 minute smoke run with a 1,000,000-quote read dataset). It
prints one JSON object on stdout (without ``--json``, the headline figures);
progress goes to stderr. Everything runs against one mosquitto it starts on a
free port (``tickbus broker --engine mosquitto``), with the real ``tickbus
record`` CLI, in a temporary directory removed at the end.

What is measured:

* ``record``: packed quotes (msgpack arrays of `Settings.batch` quotes of one
  symbol, `Settings.symbols` symbols round robin, from the ``publish`` role of
  ``_record_harness.py``: cent prices, bid < price < ask, fresh ``ts``) paced
  at each of `Settings.rates` for `Settings.seconds`, each into a fresh
  ``tickbus record --topics 'quotes/#'`` (default flush and roll). The sender
  sends whole messages only, so the quotes sent are counted exactly. A rate
  passes when the recording lost nothing (the recorder's final
  ``rows_written``, and the rows of its dataset, equal the quotes sent) and
  kept up: its ``quotes`` counter (status every second) reached the quotes
  sent within `Settings.drain_limit_s` of the last send (mosquitto queues up
  to 100,000 messages, 10 M packed quotes, for a slow subscriber: without
  that bound a recorder at half the rate would still lose nothing). The
  rates rise until one fails. ``record_quotes_per_s`` is the highest rate
  achieved (quotes sent / send time) that passed, the median over
  `Settings.rounds` sweeps. Sizes come from `tape.dataset_info` on what the
  recorders wrote (JSON size from an evenly spaced sample).
* ``raw``, the baseline: a bare paho subscriber that only counts (the
  ``subscribe`` role of ``bench/bus.py``) under the same packed feed sent as
  fast as the sender can: what MQTT carries to a Python client, once per
  round.
* ``feed_cli``: the real ``tickbus feed synthetic --format msgpack --batch``
  at `Settings.feed_cli_rate` (``--count`` quotes: an exact count) into a
  recorder, once: the CLI feed's own quotes (full-precision floats, hence
  larger on disk) and its CPU share on the same 2 cores.
* ``read``: a `tape.write_sample` dataset of `Settings.read_quotes` quotes
  (`Settings.read_symbols` symbols over `Settings.read_days` days, one file a
  day; untimed to build) read in a child process per pass, so the peak RSS
  (VmHWM) is the reader's alone (each child imports pyarrow, pandas, which
  pyarrow imports on its first conversion to numpy, and tape before its
  timer): ``tape.read_batches`` (the headline, ts order, lists of quote
  dicts), ``tape.read_quotes`` (one dict at a time) and, as baselines
  without order, ``pyarrow.dataset``'s ``to_table`` (the whole dataset in
  memory) and ``to_batches`` (streaming Arrow batches), and the plain way
  to quote dicts with pyarrow: ``to_batches`` with one quote dict built per
  row, as the tape's reader hands them out (``pyarrow_dicts_quotes_per_s``:
  the same per-row work, without time order). `Settings.read_rounds`
  passes each, rounds alternating the readers; medians. Also
  ``read_batches`` once on the same quotes written by two writers (half the
  symbols each), whose files interleave in time: the merge path of a
  dataset that two recorders share.

Every child process is stopped at the end, also on error, SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

# Run as a script, this file's folder is sys.path[0], and `import ring` (which
# tape's recorder does) would import bench/ring.py: import the packages first,
# then put the folder back at the end of the path for the bench's own modules.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]

import ring  # noqa: E402, F401
import tape  # noqa: E402

sys.path.append(str(_BENCH_DIR))

from _bus_harness import (  # noqa: E402
    Child,
    Children,
    child_pids,
    cpu_s,
    machine_info,
    medians,
    rounded,
    start_broker,
)
from _record_harness import (  # noqa: E402
    StatusWatcher,
    build_dataset,
    log,
    run_role,
    vm_hwm_mb,
)

Figures = dict[str, Any]
RECORD_SCRIPT = Path(__file__).resolve()
RESULT_TIMEOUT_S = 120.0
STOP_GRACE_S = 120.0
"""How long a recorder may take to finish its journal into Parquet after SIGTERM."""


@dataclass(frozen=True)
class Settings:
    """What one run measures, and for how long (defaults: the full run).

    Attributes:
        rates: Quotes/s offered to the recorder, rising; a sweep stops at the first failure.
        seconds: Sending time at each rate.
        rounds: Sweeps (and raw baseline runs).
        symbols: Symbols of the packed feed (topics ``quotes/<SID>``).
        batch: Quotes per packed message.
        drain_limit_s: A recorder kept up when it had every quote this long after
            the last send (its status comes every second).
        raw_seconds: Sending time of the raw baseline (as fast as the sender can).
        feed_cli_rate: Quotes/s of the ``tickbus feed synthetic`` check (0: skip it).
        read_quotes: Quotes of the read dataset.
        read_symbols: Its symbols.
        read_days: Its trading days.
        read_rounds: Passes of each reader.
        info_sample_rows: Quotes `tape.dataset_info` encodes as JSON for the size ratio.
    """

    rates: tuple[int, ...] = (20_000, 40_000, 60_000, 80_000, 100_000, 140_000, 180_000)
    seconds: float = 8.0
    rounds: int = 3
    symbols: int = 8
    batch: int = 100
    drain_limit_s: float = 1.5
    raw_seconds: float = 5.0
    feed_cli_rate: int = 50_000
    read_quotes: int = 10_000_000
    read_symbols: int = 10
    read_days: int = 5
    read_rounds: int = 3
    info_sample_rows: int = 100_000


QUICK = Settings(
    rates=(20_000, 50_000, 80_000, 120_000),
    seconds=4.0,
    rounds=1,
    raw_seconds=3.0,
    feed_cli_rate=50_000,
    read_quotes=1_000_000,
    read_rounds=1,
)

READERS = ("read_batches", "read_quotes", "pyarrow_to_table", "pyarrow_to_batches", "pyarrow_dicts")


class Bench:
    """One run: settings, the work directory, the broker and the status watcher."""

    def __init__(self, settings: Settings, children: Children, workdir: Path) -> None:
        self.settings = settings
        self.children = children
        self.workdir = workdir
        self.tag = uuid.uuid4().hex[:6]
        self.broker, self.port = start_broker(children)
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.watcher = StatusWatcher(self.port)
        self.symbols = [f"S{i}" for i in range(settings.symbols)]

    def broker_pid(self) -> int:
        """The mosquitto process that ``tickbus broker`` runs."""
        return child_pids(self.broker.pid)[0]

    def publisher(self, rate: float, seconds: float, *extra: str) -> Child:
        """The ``publish`` role on this broker, started and connected."""
        options = ["--port", str(self.port), "--symbols", ",".join(self.symbols)]
        options += ["--batch", str(self.settings.batch), "--rate", str(rate)]
        options += ["--seconds", str(seconds), *extra]
        child = self.children.start(
            "publish", sys.executable, str(RECORD_SCRIPT), "--role", "publish", *options
        )
        child.wait_ready()
        return child

    def recorder(self, label: str) -> tuple[Child, str, Path]:
        """A new ``tickbus record`` into its own directory, online; (child, name, directory)."""
        name = f"bench-{self.tag}-{label}"
        out = self.workdir / name
        child = self.children.tickbus(
            f"record-{label}", "record", "--mqtt", self.url, "--topics", "quotes/#",
            "--out", str(out), "--name", name,
        )  # fmt: skip
        online = self.watcher.wait_for(
            status_topic(name), lambda s: s.get("state") == "online" and "quotes" in s, 30.0
        )
        if online is None:
            child.check_alive()
            raise RuntimeError(f"recorder {name} did not come online")
        return child, name, out

    def close(self) -> None:
        """Disconnect the status watcher."""
        self.watcher.close()


def status_topic(name: str) -> str:
    """A recorder's retained status topic."""
    return f"status/recorder/{name}"


# --- recording --------------------------------------------------------------------------------


def record_at(bench: Bench, rate: int, label: str) -> Figures:
    """Packed quotes at `rate` for `Settings.seconds` into a fresh recorder; its figures."""
    settings = bench.settings
    recorder, name, out = bench.recorder(label)
    cpu0 = {"recorder": cpu_s(recorder.pid), "broker": cpu_s(bench.broker_pid())}
    wall0 = time.perf_counter()
    sent = bench.publisher(rate, settings.seconds).result(RESULT_TIMEOUT_S)
    drain = _drain(bench, name, sent, timeout=3 * settings.seconds + 10)
    wall = time.perf_counter() - wall0
    cpu = {
        "recorder_cpu": (cpu_s(recorder.pid) - cpu0["recorder"]) / wall,
        "broker_cpu": (cpu_s(bench.broker_pid()) - cpu0["broker"]) / wall,
    }
    peak_rss = vm_hwm_mb(recorder.pid)
    final = _stop_recorder(recorder)
    figures = {
        "rate": rate,
        "sent": sent["quotes"],
        "sent_per_s": sent["quotes_per_s"],
        "sender_cpu": sent["cpu"],
        "sender_max_late_ms": sent["max_late_ms"],
        **drain,
        **_written(final, out, sent["quotes"], settings),
        **cpu,
        "recorder_peak_rss_mb": peak_rss,
    }
    figures["kept_up"] = figures["drain_s"] is not None and (
        figures["drain_s"] <= settings.drain_limit_s
    )
    figures["passed"] = figures["zero_loss"] and figures["kept_up"]
    return figures


def _drain(bench: Bench, name: str, sent: Figures, timeout: float) -> Figures:
    """When the recorder had every quote sent (its status), and its intake while sending."""
    topic, total = status_topic(name), sent["quotes"]
    done = bench.watcher.wait_for(topic, lambda s: s.get("quotes", 0) >= total, timeout)
    during = [
        s
        for s in bench.watcher.history(topic)
        if "quotes" in s and sent["start_wall"] + 1.0 <= s["ts"] <= sent["end_wall"]
    ]
    intake = None
    if len(during) >= 2 and during[-1]["ts"] > during[0]["ts"]:
        span = during[-1]["ts"] - during[0]["ts"]
        intake = (during[-1]["quotes"] - during[0]["quotes"]) / span
    return {
        "drain_s": None if done is None else max(0.0, done["ts"] - sent["end_wall"]),
        "intake_per_s": intake,
    }


def _stop_recorder(recorder: Child) -> Figures:
    """SIGTERM (it flushes and finishes its journal), then its final counters from its log."""
    recorder.stop(grace=STOP_GRACE_S)
    if recorder.popen.returncode != 0:
        raise RuntimeError(f"{recorder.name} exited with {recorder.popen.returncode}")
    for line in reversed(recorder.log_path.read_text(errors="replace").splitlines()):
        if line.startswith("recorded "):
            return dict(json.loads(line.removeprefix("recorded ")))
    raise RuntimeError(f"{recorder.name} left no final counters:\n{recorder.tail()}")


def _written(final: Figures, out: Path, sent: int, settings: Settings) -> Figures:
    """What the recorder says it wrote, what its dataset holds, and the sizes."""
    sample = settings.info_sample_rows
    info = tape.dataset_info(out, exact_rows=sample, sample_rows=sample)
    return {
        "received": final["quotes"],
        "rows_written": final["rows_written"],
        "dataset_rows": info.rows,
        "lost": sent - info.rows,
        "zero_loss": final["rows_written"] == sent == info.rows,
        "dead_letters": final["dead_letters"],
        "files": info.files,
        "bytes": info.bytes,
        "json_bytes": info.json_bytes,
        "bytes_per_quote": info.bytes_per_quote,
        "json_bytes_per_quote": info.json_bytes / info.rows,
        "json_ratio": info.json_ratio,
    }


def record_sweep(bench: Bench, round_index: int) -> list[Figures]:
    """`Settings.rates` in turn until one fails."""
    steps = []
    for rate in bench.settings.rates:
        log(f"round {round_index + 1}: recording at {rate:,} quotes/s")
        figures = record_at(bench, rate, f"r{round_index}-{rate // 1000}k")
        steps.append(figures)
        log(f"  {_brief(figures)}")
        if not figures["passed"]:
            break
    return steps


def _brief(figures: Figures) -> str:
    keys = ("sent_per_s", "lost", "drain_s", "intake_per_s", "recorder_cpu", "bytes_per_quote")
    return ", ".join(f"{key}={rounded({key: figures[key]})[key]}" for key in keys)


def raw_subscriber(bench: Bench) -> Figures:
    """The same packed feed, flat out, to a bare paho subscriber that only counts."""
    options = ["--port", str(bench.port), "--symbols", ",".join(bench.symbols), "--idle", "1.0"]
    subscriber = bench.children.role("subscribe", *options)
    subscriber.wait_ready()
    sent = bench.publisher(0, bench.settings.raw_seconds).result(RESULT_TIMEOUT_S)
    got = subscriber.result(RESULT_TIMEOUT_S)
    batch = bench.settings.batch
    return {
        "quotes_per_s": got["per_s"] * batch,
        "received": got["received"] * batch,
        "sent": sent["quotes"],
        "sender_per_s": sent["quotes_per_s"],
        "cpu_subscriber": got["cpu"],
        "cpu_sender": sent["cpu"],
    }


def feed_cli(bench: Bench) -> Figures:
    """``tickbus feed synthetic`` (msgpack, packed) at `Settings.feed_cli_rate` into a recorder."""
    settings = bench.settings
    count = int(settings.feed_cli_rate * settings.seconds)
    recorder, name, out = bench.recorder("feed-cli")
    feed_name = f"bench-{bench.tag}-feed"
    cpu0 = cpu_s(recorder.pid)
    wall0, start_wall = time.perf_counter(), time.time()
    feed = bench.children.tickbus(
        "feed", "feed", "synthetic", "--mqtt", bench.url, "--symbols", ",".join(bench.symbols),
        "--rate", str(settings.feed_cli_rate), "--count", str(count), "--format", "msgpack",
        "--batch", str(settings.batch), "--name", feed_name,
    )  # fmt: skip
    feed.popen.wait(RESULT_TIMEOUT_S + settings.seconds)
    end_wall = time.time()
    last = bench.watcher.wait_for(
        f"status/feed/{feed_name}", lambda s: s.get("state") == "offline", 10.0
    )
    status = bench.watcher.history(f"status/feed/{feed_name}")
    published = (last or status[-1])["published"] if status else 0
    fake_sent = {"quotes": published, "start_wall": start_wall, "end_wall": end_wall}
    drain = _drain(bench, name, fake_sent, timeout=3 * settings.seconds + 10)
    cpu = (cpu_s(recorder.pid) - cpu0) / (time.perf_counter() - wall0)
    final = _stop_recorder(recorder)
    figures = {
        "rate": settings.feed_cli_rate,
        "sent": published,
        "feed_exit": feed.popen.returncode,
        "feed_rate": (last or status[-1]).get("rate") if status else None,
        **drain,
        **_written(final, out, published, settings),
        "recorder_cpu": cpu,
    }
    figures["passed"] = (
        published == count
        and figures["zero_loss"]
        and figures["drain_s"] is not None
        and figures["drain_s"] <= settings.drain_limit_s
    )
    return figures


# --- reading ------------------------------------------------------------------------------------


def build_read_datasets(bench: Bench) -> dict[str, Path]:
    """The read dataset (one `write_sample` writer) and its two-writer twin."""
    settings = bench.settings
    single = bench.workdir / "read-single"
    log(f"building the {settings.read_quotes:,}-quote read dataset (untimed)")
    tape.write_sample(
        tape.SampleConfig(
            directory=single,
            symbols=tuple(f"S{i:02d}" for i in range(settings.read_symbols)),
            days=settings.read_days,
            rate=_sample_rate(settings),
            seed=1,
        )
    )
    interleaved = bench.workdir / "read-two-writers"
    log("building its two-writer twin (untimed)")
    build_dataset(interleaved, settings.read_quotes, settings.read_symbols, settings.read_days)
    return {"single": single, "two_writers": interleaved}


def _sample_rate(settings: Settings) -> float:
    """The `tape.SampleConfig.rate` that gives exactly `Settings.read_quotes` quotes."""
    from tape._sample import SESSION_S

    per_symbol_day, rest = divmod(settings.read_quotes, settings.read_symbols * settings.read_days)
    if rest:
        raise ValueError("read_quotes must split evenly over symbols x days")
    return (per_symbol_day + 0.5) / SESSION_S


def read_pass(bench: Bench, directory: Path, api: str) -> Figures:
    """One pass of reader `api` over `directory`, in a child of its own."""
    child = bench.children.start(
        f"read-{api}", sys.executable, str(RECORD_SCRIPT), "--role", "read",
        "--dir", str(directory), "--api", api,
    )  # fmt: skip
    figures = child.result(RESULT_TIMEOUT_S * 5)
    if figures["quotes"] != bench.settings.read_quotes:
        raise RuntimeError(f"{api} read {figures['quotes']} quotes")
    return figures


def read_all(bench: Bench, datasets: dict[str, Path]) -> dict[str, list[Figures]]:
    """`Settings.read_rounds` rounds of every reader over the single-writer dataset."""
    runs: dict[str, list[Figures]] = {api: [] for api in READERS}
    for round_index in range(bench.settings.read_rounds):
        for api in READERS:
            log(f"read round {round_index + 1}/{bench.settings.read_rounds}: {api}")
            runs[api].append(read_pass(bench, datasets["single"], api))
            log(f"  {rounded(runs[api][-1])}")
    log("read_batches over the two-writer dataset")
    runs["read_batches_two_writers"] = [read_pass(bench, datasets["two_writers"], "read_batches")]
    return runs


def dataset_figures(directory: Path, settings: Settings) -> Figures:
    """`tape.dataset_info` of a read dataset."""
    sample = settings.info_sample_rows
    info = tape.dataset_info(directory, exact_rows=sample, sample_rows=sample)
    return {
        "rows": info.rows,
        "files": info.files,
        "partitions": len(info.partitions),
        "symbols": len(info.symbols),
        "bytes": info.bytes,
        "bytes_per_quote": info.bytes_per_quote,
        "json_bytes_per_quote": info.json_bytes / info.rows,
        "json_ratio": info.json_ratio,
        "json_exact": info.json_exact,
        "json_sampled": info.json_sampled,
    }


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Results:
    """Every measurement's runs."""

    sweeps: list[list[Figures]]
    raw: list[Figures]
    feed_cli: Figures | None
    reads: dict[str, list[Figures]]
    datasets: dict[str, Figures]


def measure(bench: Bench) -> Results:
    """Recording sweeps and raw baselines (alternating), the CLI feed check, then reading."""
    settings = bench.settings
    sweeps, raw = [], []
    for round_index in range(settings.rounds):
        sweeps.append(record_sweep(bench, round_index))
        log(f"round {round_index + 1}: raw subscriber, sender flat out")
        raw.append(raw_subscriber(bench))
        log(f"  {rounded(raw[-1])}")
    feed = None
    if settings.feed_cli_rate:
        log(f"tickbus feed synthetic at {settings.feed_cli_rate:,} quotes/s into a recorder")
        feed = feed_cli(bench)
        log(f"  {_brief(feed | {'sent_per_s': feed['feed_rate']})}")
    paths = build_read_datasets(bench)
    datasets = {name: dataset_figures(path, settings) for name, path in paths.items()}
    reads = read_all(bench, paths)
    return Results(sweeps, raw, feed, reads, datasets)


def report(results: Results, settings: Settings) -> dict[str, Any]:
    """The headline figures, targets, then the details."""
    out = _record_headline(results) | _read_headline(results)
    out["targets"] = _targets(out)
    out["notes"] = _notes(results, settings)
    out["details"] = {
        "record_sweeps": [[rounded(step) for step in sweep] for sweep in results.sweeps],
        "raw": [rounded(run) for run in results.raw],
        "feed_cli": None if results.feed_cli is None else rounded(results.feed_cli),
        "read_datasets": {name: rounded(figures) for name, figures in results.datasets.items()},
        "reads": {api: [rounded(run) for run in runs] for api, runs in results.reads.items()},
    }
    return out


def _record_headline(results: Results) -> Figures:
    best = [
        max((s["sent_per_s"] for s in sweep if s["passed"]), default=0.0)
        for sweep in results.sweeps
    ]
    first_failed = [
        next((s["rate"] for s in sweep if not s["passed"]), None) for sweep in results.sweeps
    ]
    passing = [step for sweep in results.sweeps for step in sweep if step["passed"]]
    rows = sum(step["dataset_rows"] for step in passing)
    raw = medians(results.raw)
    out: Figures = {
        "record_quotes_per_s": round(statistics.median(best)),
        "record_quotes_per_s_by_round": [round(b) for b in best],
        "record_first_failed_rate_by_round": first_failed,
        "record_bytes_per_quote": _ratio(sum(s["bytes"] for s in passing), rows),
        "json_bytes_per_quote": _ratio(sum(s["json_bytes"] for s in passing), rows),
        "record_recorder_cpu_at_best": _at_best(results.sweeps, best, "recorder_cpu"),
        "record_recorder_peak_rss_mb_at_best": _at_best(
            results.sweeps, best, "recorder_peak_rss_mb"
        ),
        "raw_mqtt_subscriber_quotes_per_s": raw["quotes_per_s"],
        "raw_mqtt_sender_quotes_per_s": raw["sender_per_s"],
    }
    out["record_json_ratio"] = _ratio(out["record_bytes_per_quote"], out["json_bytes_per_quote"])
    out["record_vs_raw_mqtt"] = _ratio(out["record_quotes_per_s"], raw["quotes_per_s"])
    if results.feed_cli is not None:
        feed = results.feed_cli
        out["feed_cli_rate"] = feed["rate"]
        out["feed_cli_passed"] = feed["passed"]
        out["feed_cli_bytes_per_quote"] = round(feed["bytes_per_quote"], 3)
        out["feed_cli_json_ratio"] = round(feed["json_ratio"], 4)
    return out


def _at_best(sweeps: list[list[Figures]], best: list[float], key: str) -> float | None:
    """Median of `key` over the rounds' best passing steps."""
    values = [
        s[key] for sweep, b in zip(sweeps, best, strict=True) for s in sweep if s["sent_per_s"] == b
    ]
    return round(statistics.median(values), 3) if values else None


def _read_headline(results: Results) -> Figures:
    runs = {api: medians(figures) for api, figures in results.reads.items()}
    peaks = {api: max(f["peak_rss_mb"] for f in figures) for api, figures in results.reads.items()}
    data = results.datasets["single"]
    out: Figures = {
        "read_dataset_quotes": data["rows"],
        "read_quotes_per_s": runs["read_batches"]["quotes_per_s"],
        "read_peak_rss_mb": round(peaks["read_batches"], 1),
        "read_rss_after_imports_mb": runs["read_batches"]["rss_after_imports_mb"],
        "read_quotes_iter_quotes_per_s": runs["read_quotes"]["quotes_per_s"],
        "read_quotes_iter_peak_rss_mb": round(peaks["read_quotes"], 1),
        "read_two_writers_quotes_per_s": runs["read_batches_two_writers"]["quotes_per_s"],
        "read_two_writers_peak_rss_mb": round(peaks["read_batches_two_writers"], 1),
        "pyarrow_dataset_to_table_quotes_per_s": runs["pyarrow_to_table"]["quotes_per_s"],
        "pyarrow_dataset_to_table_peak_rss_mb": round(peaks["pyarrow_to_table"], 1),
        "pyarrow_dataset_to_batches_quotes_per_s": runs["pyarrow_to_batches"]["quotes_per_s"],
        "pyarrow_dataset_to_batches_peak_rss_mb": round(peaks["pyarrow_to_batches"], 1),
        "pyarrow_dicts_quotes_per_s": runs["pyarrow_dicts"]["quotes_per_s"],
        "read_dataset_bytes_per_quote": round(data["bytes_per_quote"], 3),
        "read_dataset_json_bytes_per_quote": round(data["json_bytes_per_quote"], 3),
        "read_dataset_json_ratio": round(data["json_ratio"], 4),
    }
    out["read_vs_pyarrow_to_table"] = _ratio(
        out["read_quotes_per_s"], out["pyarrow_dataset_to_table_quotes_per_s"]
    )
    out["read_vs_pyarrow_dicts"] = _ratio(
        out["read_quotes_per_s"], out["pyarrow_dicts_quotes_per_s"]
    )
    return out


def _ratio(over: float | None, under: float | None) -> float | None:
    return round(over / under, 4) if over is not None and under else None


TARGETS = (
    ("record_quotes_per_s", ">=", 50_000.0),
    ("record_json_ratio", "<=", 0.25),
    ("read_dataset_json_ratio", "<=", 0.25),
    ("read_quotes_per_s", ">=", 2_000_000.0),
    ("read_peak_rss_mb", "<=", 300.0),
)


def _targets(out: Figures) -> Figures:
    targets: Figures = {}
    for key, op, bound in TARGETS:
        value = out.get(key)
        met = value is not None and (value >= bound if op == ">=" else value <= bound)
        targets[key] = {"need": f"{op} {bound:g}", "value": value, "met": met}
    targets["all_met"] = all(t["met"] for t in targets.values())
    return targets


def _notes(results: Results, settings: Settings) -> list[str]:
    notes = []
    for index, sweep in enumerate(results.sweeps):
        if sweep and sweep[-1]["passed"]:
            notes.append(
                f"round {index + 1}: every rate passed; {settings.rates[-1]:,}/s is a lower bound"
            )
        for step in sweep:
            if step["sent_per_s"] < 0.97 * step["rate"]:
                notes.append(
                    f"round {index + 1}: the sender reached {step['sent_per_s']:,.0f} of "
                    f"{step['rate']:,} quotes/s"
                )
    raw = medians(results.raw)
    if raw["quotes_per_s"] >= 0.9 * raw["sender_per_s"] or (
        raw["received"] == raw["sent"] and raw["cpu_subscriber"] < 0.9
    ):
        notes.append(
            "raw: the subscriber kept up with its sender; its figure is the sender's rate, "
            "a lower bound of its own"
        )
    return notes


def _parameters(settings: Settings, workdir: str) -> Figures:
    return asdict(settings) | {
        "recorder": "tickbus record --topics 'quotes/#' (default --flush-s 1, --roll-mb 64)",
        "broker": "tickbus broker --engine mosquitto (generated config: max_queued_messages "
        "100000)",
        "feed": "bench/_record_harness.py publish role: msgpack packs, cent prices, fresh ts",
        "read_dataset": "tape.write_sample, one file per day; twin: two writers, half the "
        "symbols each",
        "workdir": workdir,
    }


def run(settings: Settings) -> dict[str, Any]:
    """Every measurement; the report."""
    load_before, started = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tickbus-bench-record-") as workdir:
        children, bench = Children(Path(workdir)), None
        try:
            bench = Bench(settings, children, Path(workdir))
            results = measure(bench)
        except Exception:
            if not _STOP_SIGNAL:
                children.report_failures()
            raise
        finally:
            children.stop_all()
            if bench is not None:
                bench.close()
    out = report(results, settings)
    out["parameters"] = _parameters(settings, workdir)
    out["machine"] = machine_info(load_before)
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    return out


_STOP_SIGNAL: list[int] = []


def _stop(signum: int, frame: FrameType | None) -> None:
    _STOP_SIGNAL.append(signum)
    raise SystemExit(128 + signum)  # so every child is stopped


def _parse_args(argv: list[str]) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a 1-2 minute smoke run")
    parser.add_argument("--rounds", type=int, help="recording sweeps (3)")
    parser.add_argument("--seconds", type=float, help="sending time at each rate (8)")
    parser.add_argument("--rates", type=_rates, help="comma-separated quotes/s, rising")
    parser.add_argument("--read-quotes", type=int, help="quotes of the read dataset (10M)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    for name in ("rounds", "seconds", "rates", "read_quotes"):
        if getattr(args, name) is not None:
            settings = replace(settings, **{name: getattr(args, name)})
    return settings, args.json


def _rates(text: str) -> tuple[int, ...]:
    return tuple(int(float(r)) for r in text.split(",") if r.strip())


def main(argv: list[str]) -> None:
    """``record.py [options]``: the bench; ``record.py --role ROLE ...``: one of its children."""
    if argv[:1] == ["--role"]:
        run_role(argv[1:])
        return
    settings, as_json = _parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    try:
        out = run(settings)
    except Exception:
        if _STOP_SIGNAL:
            raise SystemExit(128 + _STOP_SIGNAL[0]) from None
        raise
    if as_json:
        print(json.dumps(out))
        return
    for key, value in out.items():
        if not isinstance(value, dict | list):
            print(f"{key:40} {value}")
    print(f"{'targets met':40} {out['targets']['all_met']}")


if __name__ == "__main__":
    main(sys.argv[1:])
