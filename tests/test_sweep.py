"""`tickbus sweep`, the real CLI on a real local Ray: parity with single backtests, faults,
resume, data locality on a two-node cluster, and every bad input's error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tests.support import REPO_ROOT, free_port, run_on_terminal, wait_until

SYMBOLS = ("GOOG", "AAPL")
MA = "algos.examples:MovingAverageCross"
QUICK_ERROR_S = 15.0
"""A bad command's answer, Python's and pyarrow's start included, on a loaded machine."""


def tickbus(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickbus", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two trading days of GOOG and AAPL (46,800 quotes)."""
    root = tmp_path_factory.mktemp("sample") / "data"
    made = tickbus("data", "sample", "--out", str(root), "--days", "2",
                   "--symbols", ",".join(SYMBOLS), "--rate", "0.5", "--seed", "5")  # fmt: skip
    assert made.returncode == 0, made.stderr
    return root


def sweep_args(data: Path, out: Path, *args: str) -> list[str]:
    return ["sweep", MA, "--data", str(data), "--out", str(out), *args]


def rows(out: Path) -> list[dict[str, Any]]:
    return pq.read_table(out / "results.parquet").to_pylist()


def test_every_job_of_a_sweep_has_exactly_its_single_backtests_results(
    sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    grid = ("--grid", "fast=5:15:5", "--grid", "slow=30,60", "--per-symbol")
    rules = ("--fee-bps", "1", "--slippage-bps", "2", "--max-position", "300")
    run = tickbus(*sweep_args(sample, out, *grid, *rules, "--rank-by", "total_return"))
    assert run.returncode == 0, run.stderr
    assert "12 jobs (6 param sets x 2 symbol groups): 0 already finished, 12 to run" in run.stderr
    table = rows(out)
    assert len(table) == 12 and {r["status"] for r in table} == {"done"}
    assert {(r["param.fast"], r["param.slow"], r["symbols"]) for r in table} == {
        (fast, slow, sid) for fast in (5, 10, 15) for slow in (30, 60) for sid in SYMBOLS
    }
    singles = {}
    for row in table:  # each job alone, as tickbus backtest, four at a time
        args = ["backtest", MA, "--data", str(sample), "--symbols", row["symbols"],
                "--param", f"fast={row['param.fast']}", "--param", f"slow={row['param.slow']}",
                *rules, "--out", str(tmp_path / "single" / row["job"])]  # fmt: skip
        singles[row["job"]] = args
    for batch in _batches(list(singles.items()), 4):
        procs = [
            (job, subprocess.Popen([sys.executable, "-m", "tickbus", *args], cwd=REPO_ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            for job, args in batch
        ]  # fmt: skip
        for _job, proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    for row in table:
        single = tmp_path / "single" / row["job"]
        in_sweep = out / "jobs" / row["job"]
        for name in ("summary.json", "orders.parquet", "fills.parquet", "equity.parquet"):
            assert (in_sweep / name).read_bytes() == (single / name).read_bytes(), name
        summary = json.loads((single / "summary.json").read_text())
        for key, value in summary["metrics"].items():
            assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), key
        assert (row["quotes"], row["orders"], row["fills"]) == (
            summary["quotes"], summary["orders"], summary["fills"],
        )  # fmt: skip
        assert row["attempts"] == 1 and row["report"] == f"{row['job']}/report.html"
    csv = pa_csv.read_csv(out / "results.csv")
    assert csv.num_rows == 12 and "total_return" in csv.column_names
    best = max(table, key=lambda r: r["total_return"])
    assert run.stdout.splitlines()[1].startswith(best["job"]), run.stdout
    report = (out / "report.html").read_text()
    assert all(f'href="jobs/{r["job"]}/report.html"' in report for r in table)
    assert "data:image/png;base64," in report
    assert (out / "heatmap.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_dead_worker_is_retried_and_a_raising_algorithm_fails_alone(
    sample: Path, tmp_path: Path
) -> None:
    out, marker = tmp_path / "sweep", tmp_path / "died"
    run = tickbus("sweep", "tests.sweep_algos:Faulty", "--data", str(sample), "--out", str(out),
                  "--symbols", "GOOG", "--grid", "mode=ok,die,raise", "--param", "fast=5",
                  "--param", "slow=20", "--param", f"marker={marker}")  # fmt: skip
    assert run.returncode == 0, run.stderr
    by_mode = {r["param.mode"]: r for r in rows(out)}
    assert Path(f"{marker}-GOOG").exists(), "the die job's first attempt ran and died"
    assert by_mode["ok"]["status"] == by_mode["die"]["status"] == "done"
    assert (by_mode["ok"]["attempts"], by_mode["die"]["attempts"]) == (1, 2)
    assert by_mode["die"]["quotes"] == by_mode["ok"]["quotes"] > 0
    assert by_mode["die"]["total_return"] == by_mode["ok"]["total_return"]
    failed = by_mode["raise"]
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert "the algorithm failed on quote #50" in failed["error"]
    assert "ValueError on GOOG: quote 50 is cursed" in failed["error"]
    assert "1 jobs failed" in run.stderr


def test_an_interrupted_sweep_resumes_with_the_same_command(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = sweep_args(sample, out, "--grid", "fast=4:14:2", "--grid", "slow=30,40",
                      "--symbols", "GOOG", "--workers", "1")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickbus", *args], cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: len(_results(out)) >= 3, timeout=120, what="three finished jobs")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    first = {path: path.stat().st_mtime_ns for path in _results(out)}
    assert 3 <= len(first) < 12
    assert len(rows(out)) == len(first), "the table holds what finished"
    again = tickbus(*args)
    assert again.returncode == 0, again.stderr
    assert f"{len(first)} already finished, {12 - len(first)} to run" in again.stderr
    assert {path: path.stat().st_mtime_ns for path in first} == first, "finished jobs not rerun"
    table = rows(out)
    assert len(table) == 12 and {r["status"] for r in table} == {"done"}
    assert {r["attempts"] for r in table} == {1}
    other = tickbus(*sweep_args(sample, out, "--grid", "fast=5,15", "--symbols", "GOOG"))
    assert other.returncode == 2 and "holds another sweep" in other.stderr


def _results(out: Path) -> list[Path]:
    return sorted((out / "jobs").glob("*/result.json"))


@pytest.fixture
def two_nodes() -> Iterator[tuple[Any, dict[str, str]]]:
    """A local Ray cluster of two nodes, GOOG's data on the head, AAPL's on the other."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"tickdata:GOOG": 1}},
    )
    try:
        other = cluster.add_node(num_cpus=1, resources={"tickdata:AAPL": 1})
        cluster.wait_for_nodes()
        yield cluster, {"GOOG": cluster.head_node.node_id, "AAPL": other.node_id}
    finally:
        cluster.shutdown()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_each_job_runs_on_the_node_that_holds_its_data(
    sample: Path, tmp_path: Path, two_nodes: tuple[Any, dict[str, str]]
) -> None:
    cluster, holder = two_nodes
    out = tmp_path / "sweep"
    flags = ("--grid", "fast=5,10", "--grid", "slow=30,60", "--per-symbol",
             "--address", cluster.address, "--data-resource", "tickdata:{symbol}")  # fmt: skip
    run = tickbus(*sweep_args(sample, out, *flags))
    assert run.returncode == 0, run.stderr
    table = rows(out)
    assert len(table) == 8 and {r["status"] for r in table} == {"done"}
    for row in table:
        assert row["node"] == holder[row["symbols"]], row
    assert {r["node"] for r in table} == set(holder.values())
    started = time.monotonic()
    missing = tickbus(*sweep_args(sample, tmp_path / "nowhere", *flags[:-1],
                                  "tickdata-elsewhere:{symbol}"))  # fmt: skip
    assert missing.returncode != 0 and time.monotonic() - started < 60
    assert "no node of the cluster has the resource tickdata-elsewhere:AAPL" in missing.stderr


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--grid", "fsat=5,10"), "unknown param fsat: algos.examples:MovingAverageCross's "
                                  "initialize never reads it (it reads: fast, slow)"),
        (("--grid", "fast=10:5"), "--grid fast=10:5: an empty range (STOP is below START)"),
        (("--grid", "fast=5:x:5"), "a range's START, STOP and STEP must be numbers"),
        (("--grid", "fast=5,ten"), "refuses 1 of the 2 param sets, e.g. fast=ten: fast must be"),
        (("--grid", "fast=5", "--grid", "fast=6"), "param fast is swept twice"),
        (("--param", "fast=5"), "nothing to sweep: give --grid"),
        (("--grid", "fast=5,10", "--per-symbol", "--symbols", "TSLA"), "holds no quotes of TSLA"),
    ],
    ids=["unknown", "empty-range", "range-not-numeric", "value-refused", "twice", "no-grid",
         "absent-symbol"],
)  # fmt: skip
def test_a_bad_grid_is_refused_at_once(
    sample: Path, tmp_path: Path, flags: Sequence[str], said: str
) -> None:
    started = time.monotonic()
    run = tickbus(*sweep_args(sample, tmp_path / "out", *flags))
    assert run.returncode == 2, run.stderr
    assert said in " ".join(run.stderr.split()), run.stderr
    assert "Traceback" not in run.stderr and time.monotonic() - started < QUICK_ERROR_S
    assert not (tmp_path / "out").exists(), "nothing is written for a refused sweep"


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_address_is_refused_at_once(
    sample: Path, tmp_path: Path, scheme: str
) -> None:
    address = f"{scheme}127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = tickbus(*sweep_args(sample, tmp_path / "out", "--grid", "fast=5,10",
                              "--address", address))  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert f"cannot reach Ray at {address}" in run.stderr and "Traceback" not in run.stderr
    assert time.monotonic() - started < QUICK_ERROR_S


def test_a_grid_file_gives_the_same_jobs_as_the_flags(sample: Path, tmp_path: Path) -> None:
    toml, json_file = tmp_path / "grid.toml", tmp_path / "grid.json"
    toml.write_text('fast = [5, 10]\nslow = "30:60:30"\n')
    json_file.write_text('{"fast": "5,10", "slow": [30, 60]}')
    listed = []
    for grid in (("--grid", "fast=5,10", "--grid", "slow=30,60"), ("--grid-file", str(toml)),
                 ("--grid-file", str(json_file))):  # fmt: skip
        run = tickbus(*sweep_args(sample, tmp_path / "out", *grid, "--symbols", "GOOG",
                                  "--dry-run"))  # fmt: skip
        assert run.returncode == 0, run.stderr
        listed.append(run.stdout)
    assert listed[0] == listed[1] == listed[2]
    lines = listed[0].splitlines()
    assert len(lines) == 4 and lines[0].endswith("fast=5 slow=30  GOOG"), lines
    assert "4 jobs; results would go to" in run.stderr and not (tmp_path / "out").exists()


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def test_a_terminal_gets_a_progress_bar_with_jobs_failures_retries_and_rate(
    sample: Path, tmp_path: Path
) -> None:
    returncode, text = run_on_terminal(
        sweep_args(sample, tmp_path / "tty", "--grid", "fast=5,10", "--symbols", "GOOG")
    )
    assert returncode == 0, text
    assert "2/2" in text and "100%" in text and "jobs/s" in text, text[-800:]
    assert "failed 0, retried 0, lost 0" in text and "quotes/s" in text, text[-800:]


def test_the_sweep_help_explains_resume_and_the_cluster() -> None:
    run = tickbus("sweep", "--help")
    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    for phrase in ("the same command runs only the jobs that are missing", "--max-retries",
                   "ray://HOST:PORT", "--data-resource", "--rank-by"):  # fmt: skip
        assert phrase in text, phrase


def test_ranges_include_their_stop_and_keep_ints_and_decimals_exact() -> None:
    from sweep import param_sets, parse_grid_option

    grid = parse_grid_option(["fast=5:20:5", "band=0.1:0.3:0.1", "mode=a,b", "slow=7"])
    assert grid == {"fast": [5, 10, 15, 20], "band": [0.1, 0.2, 0.3], "mode": ["a", "b"],
                    "slow": [7]}  # fmt: skip
    sets = param_sets(grid, {"seed": 1})
    assert len(sets) == 4 * 3 * 2 and sets[0] == {"seed": 1, "band": 0.1, "fast": 5,
                                                  "mode": "a", "slow": 7}  # fmt: skip


def test_tickbus_own_packages_are_never_shipped_and_user_modules_are() -> None:
    from sweep._ray import TICKBUS_PACKAGES, modules_to_ship

    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(packages["packages"]) == TICKBUS_PACKAGES
    assert modules_to_ship("dashboard._app:create_app") == []
    assert modules_to_ship("tests.sweep_algos:Faulty") == [str(REPO_ROOT / "tests")]
