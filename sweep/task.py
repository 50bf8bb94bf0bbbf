"""One job on a worker: its backtest, written into the job's directory, and the row it adds.

A public module of its own, not imported by `sweep` (it brings pandas and
matplotlib, through `backtest.summary`). Plain Python: Ray calls `run_job` in
a worker (`sweep._ray`), and the serial baseline of ``bench/sweep.py`` calls
it in one process. The backtest is `backtest.summary.run_backtest`, exactly as
``tickbus backtest`` runs it, so a job's figures are that single backtest's.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from backtest.summary import REPORT_FILE, run_backtest
from sweep._jobs import DONE, FAILED, Job
from tickbus.errors import ConfigError, TapeError


def run_job(job: Job, jobs_dir: Path) -> dict[str, Any]:
    """Run `job`'s backtest into ``jobs_dir/<id>/`` and return its result.

    The backtest is written into a hidden ``.<id>.partial`` directory and
    renamed when finished, so ``<id>/`` only ever holds a whole backtest
    (an attempt killed part-way leaves a partial directory the next
    attempt clears).

    Returns:
        ``status`` (`DONE` or `FAILED`), ``error`` (the reason of a failure,
        else None), ``quotes``, ``orders``, ``fills``, ``metrics`` (the
        backtest's tearsheet, {} when it did not run), ``elapsed_s`` (wall
        time of the whole job) and ``report`` (the job's ``report.html``
        relative to `jobs_dir`, None when it did not run).
    """
    began = time.perf_counter()
    final, partial = jobs_dir / job.id, jobs_dir / f".{job.id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        finished = run_backtest(job.config, partial)
    except (ConfigError, TapeError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return {
            "status": FAILED,
            "error": exc.reason,
            "quotes": 0,
            "orders": 0,
            "fills": 0,
            "metrics": {},
            "elapsed_s": time.perf_counter() - began,
            "report": None,
        }
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    summary = finished.summary
    return {
        "status": DONE if summary["complete"] else FAILED,
        "error": summary["incomplete"],
        "quotes": summary["quotes"],
        "orders": summary["orders"],
        "fills": summary["fills"],
        "metrics": summary["metrics"],
        "elapsed_s": time.perf_counter() - began,
        "report": f"{job.id}/{REPORT_FILE}",
    }
