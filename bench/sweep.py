"""A sweep on local Ray against the same jobs run serially in one process, side by side.

Run ``.venv/bin/python bench/sweep.py --json`` (``--quick`` for a smaller
run). It prints one JSON object on stdout; progress goes to stderr.

The jobs: a moving-average cross (`algos.examples.MovingAverageCross`) over
the grid fast = 5, 10, 20 x slow = 30, 60, one job per symbol of a generated
dataset of 4 symbols (``tickbus data sample``, not timed): 24 jobs, each one
whole ``tickbus backtest`` (`sweep.task.run_job`: the loop, ``summary.json``,
the report and the plot).

* ``serial``: the jobs one after the other in this process (imports paid
  before the clock starts);
* ``ray``: the same jobs as ``tickbus sweep`` runs them (`sweep._ray`: a Ray
  of its own on every core, the job runner), timed from the first job
  submitted to the last result; Ray's start is timed apart (``ray_start_s``)
  and included in ``speedup_vs_serial_with_start``. Each round starts a new
  Ray, so its workers pay their imports in every round, as a new sweep does;
  the same jobs then run again on the same Ray (``ray_warm_*``: workers
  started and imports done, as in the long run of a large sweep).

``ray_overhead_ms_per_job`` is the CPU time the Ray run spent on anything but
the jobs' own work (scheduling, shipping, worker start and imports, the idle
tail), per job: (wall x CPUs - sum of the jobs' own times) / jobs.
`Settings.rounds` rounds, alternating; medians.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from backtest import BacktestConfig  # noqa: E402
from bench._main import package_versions, run_bench  # noqa: E402
from sweep import Job, data_identity, param_sets, parse_grid_option, plan_jobs  # noqa: E402
from sweep._ray import Finished, JobRunner, connect  # noqa: E402
from sweep.task import run_job  # noqa: E402
from tape import SampleConfig, write_sample  # noqa: E402

SPEC = "algos.examples:MovingAverageCross"
GRID = ("fast=5,10,20", "slow=30,60")
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


@dataclass(frozen=True)
class Settings:
    """What to run."""

    days: int = 10
    rate: float = 0.5
    rounds: int = 3


QUICK = Settings(days=2, rate=0.5, rounds=1)


def log(message: str) -> None:
    print(f"bench/sweep.py: {message}", file=sys.stderr, flush=True)


def build_jobs(data: Path) -> list[Job]:
    base = BacktestConfig(spec=SPEC, data=data, max_price_jump_pct=None)
    sets = param_sets(parse_grid_option(GRID), {})
    groups: list[tuple[str, ...] | None] = [(symbol,) for symbol in SYMBOLS]
    return plan_jobs(base, sets, groups, data_id=data_identity(data))


def run_serial(jobs: list[Job], out: Path) -> dict[str, Any]:
    began = time.perf_counter()
    results = [run_job(job, out) for job in jobs]
    return _figures(results, time.perf_counter() - began, cpus=1)


def run_ray(jobs: list[Job], out: Path) -> dict[str, Any]:
    began = time.perf_counter()
    with connect(None, SPEC) as cpus:
        started = time.perf_counter()
        runner = JobRunner(out, max_retries=3, in_flight=2 * cpus)
        results = [e.result for e in runner.run(jobs) if isinstance(e, Finished)]
        finished = time.perf_counter()
        again = [e.result for e in runner.run(jobs) if isinstance(e, Finished)]
        warm = _figures(again, time.perf_counter() - finished, cpus=cpus)
    figures = _figures(results, finished - started, cpus=cpus)
    figures["ray_start_s"] = round(started - began, 3)
    figures["wall_with_start_s"] = round(finished - began, 3)
    figures["warm"] = warm
    return figures


def _figures(results: list[dict[str, Any]], wall: float, *, cpus: int) -> dict[str, Any]:
    bad = [r for r in results if r["status"] != "done"]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs did not finish: {bad[0]}")
    quotes = sum(r["quotes"] for r in results)
    own = sum(r["elapsed_s"] for r in results)
    return {
        "jobs": len(results),
        "wall_s": round(wall, 3),
        "jobs_per_s": round(len(results) / wall, 3),
        "quotes_per_s": round(quotes / wall),
        "cpus": cpus,
        "jobs_own_s": round(own, 3),
        "overhead_ms_per_job": round((wall * cpus - own) / len(results) * 1000, 1),
    }


def measure(settings: Settings, work: Path) -> dict[str, Any]:
    data = work / "data"
    log(f"building {len(SYMBOLS)} symbols x {settings.days} days at {settings.rate}/s (not timed)")
    write_sample(SampleConfig(directory=data, symbols=SYMBOLS, days=settings.days,
                              rate=settings.rate, seed=11))  # fmt: skip
    jobs = build_jobs(data)
    runs: dict[str, list[dict[str, Any]]] = {"serial": [], "ray": []}
    for index in range(settings.rounds):
        for mode, run in (("serial", run_serial), ("ray", run_ray)):
            out = work / f"{mode}-{index}"
            log(f"round {index + 1}/{settings.rounds}: {len(jobs)} jobs, {mode}")
            figures = run(jobs, out)
            log(f"  {mode}: {figures}")
            runs[mode].append(figures)
            shutil.rmtree(out, ignore_errors=True)
    return {mode: _median(found) for mode, found in runs.items()}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(runs, key=lambda run: run["jobs_per_s"])
    middle = dict(ranked[len(ranked) // 2])
    middle["jobs_per_s_runs"] = [run["jobs_per_s"] for run in runs]
    middle["jobs_per_s"] = statistics.median(run["jobs_per_s"] for run in runs)
    return middle


def report(results: dict[str, Any], settings: Settings) -> dict[str, Any]:
    serial, ray = results["serial"], results["ray"]
    out: dict[str, Any] = {
        "jobs": serial["jobs"],
        "serial_jobs_per_s": serial["jobs_per_s"],
        "ray_jobs_per_s": ray["jobs_per_s"],
        "speedup_vs_serial": round(ray["jobs_per_s"] / serial["jobs_per_s"], 2),
        "speedup_vs_serial_with_start": round(serial["wall_s"] / ray["wall_with_start_s"], 2),
        "serial_quotes_per_s": serial["quotes_per_s"],
        "ray_quotes_per_s": ray["quotes_per_s"],
        "ray_overhead_ms_per_job": ray["overhead_ms_per_job"],
        "serial_overhead_ms_per_job": serial["overhead_ms_per_job"],
        "ray_warm_jobs_per_s": ray["warm"]["jobs_per_s"],
        "ray_warm_overhead_ms_per_job": ray["warm"]["overhead_ms_per_job"],
        "job_s": round(serial["jobs_own_s"] / serial["jobs"], 3),
        "ray_start_s": ray["ray_start_s"],
        "cpus": ray["cpus"],
    }
    out["targets"] = {"speedup_vs_serial >= 1.6": out["speedup_vs_serial"] >= 1.6}
    out["settings"] = {
        "jobs": f"{SPEC} over {' x '.join(GRID)}, one job per symbol of {len(SYMBOLS)}",
        **asdict(settings),
    }
    out["runs"] = results
    out["machine"] = {"python": sys.version.split()[0], "cores": os.cpu_count(),
                      "versions": package_versions("tickbus", "ray", "pyarrow")}  # fmt: skip
    return out


def main() -> None:
    def run(quick: bool, work: Path) -> dict[str, Any]:
        settings = QUICK if quick else Settings()
        return report(measure(settings, work), settings)

    run_bench("sweep", __doc__, run)


if __name__ == "__main__":
    main()
