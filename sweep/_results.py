"""A sweep's results on disk: one ``result.json`` per finished job, and the table of them all.

Layout of a sweep's ``--out`` directory:

* ``jobs/<id>/``: the job's own backtest (``summary.json``, ``report.html``,
  ...), and ``result.json``, written by the driver the moment the job
  finishes (atomically: a temporary file, then a rename). A job with a
  ``result.json`` is finished: a resumed sweep does not run it again.
* ``results.parquet`` and ``results.csv``: one row per job of the sweep
  (`TABLE_COLUMNS`, then ``param.<name>`` per param, then every metric of
  the backtest's tearsheet), rewritten at the end and when interrupted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from backtest.summary import METRIC_KEYS
from sweep._jobs import DONE, FAILED, Job

log = logging.getLogger(__name__)

JOBS_DIR = "jobs"
RESULT_FILE = "result.json"
TABLE_PARQUET = "results.parquet"
TABLE_CSV = "results.csv"

TABLE_COLUMNS = (
    "job",
    "status",
    "error",
    "symbols",
    "quotes",
    "orders",
    "fills",
    "elapsed_s",
    "quotes_per_s",
    "attempts",
    "node",
    "report",
)
"""The columns every results table starts with."""


def write_result(jobs_dir: Path, job: Job, result: Mapping[str, Any]) -> None:
    """Write `result` as ``jobs_dir/<id>/result.json``, atomically."""
    folder = jobs_dir / job.id
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{RESULT_FILE}.tmp"
    temporary.write_text(json.dumps(dict(result), indent=2, default=str) + "\n")
    os.replace(temporary, folder / RESULT_FILE)


def load_results(jobs_dir: Path, jobs: Iterable[Job]) -> dict[str, dict[str, Any]]:
    """The results already written for `jobs`, by job id (done and failed ones).

    A ``result.json`` that cannot be read is logged and left out: its job runs again.
    """
    found: dict[str, dict[str, Any]] = {}
    for job in jobs:
        path = jobs_dir / job.id / RESULT_FILE
        if not path.exists():
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s cannot be read (%s): its job runs again", path, exc)
            continue
        if isinstance(result, dict) and result.get("status") in (DONE, FAILED):
            found[job.id] = result
    return found


def results_table(
    jobs: Sequence[Job], results: Mapping[str, Mapping[str, Any]], params: Sequence[str]
) -> pa.Table:
    """One row per job of `results`, in the jobs' order (see the module docstring)."""
    rows = []
    for job in jobs:
        result = results.get(job.id)
        if result is None:
            continue
        elapsed = float(result.get("elapsed_s") or 0.0)
        quotes = int(result.get("quotes") or 0)
        row: dict[str, Any] = {
            "job": job.id,
            "status": result["status"],
            "error": result.get("error"),
            "symbols": None if job.symbols is None else ",".join(job.symbols),
            "quotes": quotes,
            "orders": int(result.get("orders") or 0),
            "fills": int(result.get("fills") or 0),
            "elapsed_s": round(elapsed, 3),
            "quotes_per_s": round(quotes / elapsed) if elapsed else None,
            "attempts": int(result.get("attempts") or 1),
            "node": result.get("node"),
            "report": result.get("report"),
        }
        row.update({f"param.{name}": job.params.get(name) for name in params})
        metrics = result.get("metrics") or {}
        row.update({key: metrics.get(key) for key in METRIC_KEYS})
        rows.append(row)
    schema = _schema(rows, params)
    for field in schema:
        if field.type == pa.string() and field.name not in TABLE_COLUMNS:
            for row in rows:  # a column of mixed values is kept as their text
                row[field.name] = None if row[field.name] is None else str(row[field.name])
    return pa.Table.from_pylist(rows, schema=schema)


def write_tables(out: Path, table: pa.Table) -> None:
    """Write `table` as ``results.parquet`` and ``results.csv`` in `out`."""
    pq.write_table(table, out / TABLE_PARQUET, compression="zstd")
    pa_csv.write_csv(table, out / TABLE_CSV)


def _schema(rows: Sequence[Mapping[str, Any]], params: Sequence[str]) -> pa.Schema:
    """The table's schema: fixed types for the fixed columns, inferred for params and metrics."""
    fixed = {
        "job": pa.string(),
        "status": pa.string(),
        "error": pa.string(),
        "symbols": pa.string(),
        "quotes": pa.int64(),
        "orders": pa.int64(),
        "fills": pa.int64(),
        "elapsed_s": pa.float64(),
        "quotes_per_s": pa.int64(),
        "attempts": pa.int64(),
        "node": pa.string(),
        "report": pa.string(),
    }
    fields = [pa.field(name, fixed[name]) for name in TABLE_COLUMNS]
    for name in [f"param.{p}" for p in params] + list(METRIC_KEYS):
        values = [row[name] for row in rows if row.get(name) is not None]
        fields.append(pa.field(name, _type_of(values)))
    return pa.schema(fields)


def _type_of(values: Sequence[Any]) -> pa.DataType:
    if not values:
        return pa.float64()
    if all(isinstance(v, bool) for v in values):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()
