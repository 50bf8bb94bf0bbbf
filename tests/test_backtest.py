"""`tickbus backtest`, the real CLI: results, determinism, and every bad input's error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import tape
from broker import Quote
from tests.support import REPO_ROOT, run_on_terminal

DAY1 = 1_796_083_200.0  # 2026-12-01T00:00:00Z
RESULT_FILES = ("summary.json", "orders.parquet", "fills.parquet", "equity.parquet")


def tickbus(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickbus", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trading day of three symbols from `tickbus data sample` (35,100 quotes)."""
    root = tmp_path_factory.mktemp("sample") / "data"
    made = tickbus("data", "sample", "--out", str(root), "--days", "1",
                   "--symbols", "GOOG,AAPL,MSFT", "--rate", "0.5", "--seed", "3")  # fmt: skip
    assert made.returncode == 0, made.stderr
    return root


def backtest(spec: str, data: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return tickbus("backtest", spec, "--data", str(data), "--out", str(out), *args)


def test_a_backtest_writes_its_tables_summary_report_and_plot(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "sma"
    run = backtest("algos.examples:MovingAverageCross", sample, out,
                   "--param", "fast=10", "--param", "slow=30", "--fee-bps", "1")  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    orders = pq.read_table(out / "orders.parquet")
    fills = pq.read_table(out / "fills.parquet")
    equity = pq.read_table(out / "equity.parquet")
    assert summary["complete"] and summary["incomplete"] is None
    assert summary["quotes"] == tape.dataset_info(sample).rows
    assert summary["orders"] == orders.num_rows > 20
    assert summary["fills"] == fills.num_rows == orders.num_rows, "market orders all fill"
    traded = zip(fills["qty"].to_pylist(), fills["price"].to_pylist(), strict=True)
    assert fills["fee"].to_pylist() == pytest.approx([abs(q * p) * 1e-4 for q, p in traded])
    last = equity.to_pylist()[-1]
    assert last["equity"] == pytest.approx(summary["portfolio"]["equity"])
    assert summary["metrics"]["trades"] == fills.num_rows
    assert summary["metrics"]["fees"] == pytest.approx(sum(fills["fee"].to_pylist()))
    assert (out / "equity.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "http" not in report.replace("http-equiv", "")
    assert "total_return" in run.stdout or "Total return" in run.stdout
    assert f"{summary['quotes']:,} quotes" in run.stdout
    assert "\r" not in run.stderr, "no progress bar when stderr is not a terminal"


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        ("algos.examples:RandomAlgo", ("threshold=0.9", "seed=4")),
        ("algos.examples:MovingAverageCross", ("fast=5", "slow=20")),
    ],
)
def test_the_same_inputs_give_byte_identical_results(
    sample: Path, tmp_path: Path, spec: str, params: tuple[str, ...]
) -> None:
    flags = [arg for param in params for arg in ("--param", param)]
    flags += ["--slippage-bps", "2", "--fee-bps", "1", "--max-position", "400"]
    first = backtest(spec, sample, tmp_path / "one", *flags)
    second = backtest(spec, sample, tmp_path / "two", *flags)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for name in RESULT_FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), (
            name
        )
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["fills"] > 0


def test_seed_style_and_plain_algorithms_backtest_too(sample: Path, tmp_path: Path) -> None:
    for spec in ("tests.newcomer_algos:Counter", "tests.newcomer_algos:PlainRandomAlgo"):
        out = tmp_path / spec.rpartition(":")[2]
        run = backtest(spec, sample, out, "--param", "threshold=0.999")
        assert run.returncode == 0, run.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["quotes"] == tape.dataset_info(sample).rows, spec
    assert json.loads((tmp_path / "PlainRandomAlgo" / "summary.json").read_text())["fills"] > 0


def test_an_algorithm_that_raises_stops_the_run_with_its_quote_time_and_error(
    sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fails"
    run = backtest("tests.newcomer_algos:ThirdQuoteFails", sample, out)
    assert run.returncode == 1, run.stderr
    first = tape.read_quotes(sample)
    third = [next(first) for _ in range(3)][-1]
    when = tape.iso_from_ns(tape.ns_from_seconds(third["ts"]))
    expected = f"the algorithm failed on quote #3 ({third['sid']} at {when}): ValueError"
    assert expected in run.stderr and "quote 3 is cursed" in run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["complete"] and expected in summary["incomplete"]
    assert summary["quotes"] == 3
    assert "incomplete" in (out / "report.html").read_text().lower()


def test_an_algorithm_whose_events_raises_stops_at_the_first_quote(
    sample: Path, tmp_path: Path
) -> None:
    run = backtest("tests.newcomer_algos:EventsAlwaysRaises", sample, tmp_path / "events")
    assert run.returncode == 1
    assert "failed on quote #1" in run.stderr and "RuntimeError: cannot take 1 quotes" in run.stderr


def test_an_algorithm_writing_into_its_quote_moves_no_fill(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "scribbles"
    run = backtest("tests.newcomer_algos:ScribblesOnQuotes", sample, out)
    assert run.returncode == 0, run.stderr
    fills = pq.read_table(out / "fills.parquet")
    highest_ask = pc.max(pq.read_table(sample, columns=["ask"]).column("ask")).as_py()
    assert fills.num_rows > 100
    assert max(fills.column("price").to_pylist()) <= highest_ask, "filled at the scribbled ask"


def write_quotes(root: Path, quotes: list[Quote], writer: str) -> Path:
    table = tape.table_from_quotes(
        quotes,
        arrival_ns=[tape.ns_from_seconds(q["ts"]) for q in quotes],
        topics=[f"quotes/{q['sid']}" for q in quotes],
    )
    [path] = tape.write_rows(table, root, writer=writer)
    return path


def test_a_row_breaking_the_quote_contract_is_named_or_skipped_and_counted(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    quotes: list[Quote] = [
        {"sid": "BAD", "price": 10.0 + i / 100, "ts": DAY1 + 50_000 + i} for i in range(40)
    ]
    path = write_quotes(root, quotes, "w")
    table = pq.read_table(path)
    prices = table.column("price").to_pylist()
    prices[17] = -1.0  # a negative price: no quote may carry one
    pq.write_table(table.set_column(3, "price", pa.array(prices)), path)

    stopped = backtest("algos.examples:RandomAlgo", root, tmp_path / "stop")
    assert stopped.returncode == 1
    assert f"{path} row 17 breaks the quote contract" in stopped.stderr
    assert "'price' must be a finite number > 0, got -1.0" in stopped.stderr
    assert "--skip-bad" in stopped.stderr

    skipped = backtest("algos.examples:RandomAlgo", root, tmp_path / "skip", "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    summary = json.loads((tmp_path / "skip" / "summary.json").read_text())
    assert summary["bad_rows_skipped"] == 1 and summary["quotes"] == 39
    assert f"{path} row 17" in summary["first_bad_row"]


def test_a_corrupt_file_is_named(sample: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_quotes(root, [{"sid": "OK", "price": 1.0, "ts": DAY1 + 1.0}], "w")
    corrupt = root / "date=2026-12-01" / "part-zz-corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet at all")
    run = backtest("algos.examples:RandomAlgo", root, tmp_path / "out")
    assert run.returncode == 1
    assert str(corrupt) in run.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--symbols", "NOPE"), "the dataset holds 3 symbols"),
        (("--start", "2030-01-01"), "the dataset holds"),
    ],
)
def test_an_empty_selection_is_an_error_not_an_empty_report(
    sample: Path, tmp_path: Path, flags: tuple[str, ...], says: str
) -> None:
    out = tmp_path / "empty"
    run = backtest("algos.examples:RandomAlgo", sample, out, *flags)
    assert run.returncode == 1
    assert says in run.stderr
    assert not (out / "summary.json").exists() and not (out / "report.html").exists()


def test_results_are_never_overwritten(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "once"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    run = backtest("algos.examples:RandomAlgo", sample, out)
    assert run.returncode == 2 and "is not empty" in run.stderr
    assert (out / "summary.json").read_text() == "{}"


def test_a_bad_algorithm_or_param_is_a_clear_error(sample: Path, tmp_path: Path) -> None:
    missing = backtest("algos.examples:NoSuchAlgo", sample, tmp_path / "a")
    assert missing.returncode == 1 and "has no attribute 'NoSuchAlgo'" in missing.stderr
    bad = backtest(
        "algos.examples:MovingAverageCross", sample, tmp_path / "b", "--param", "fast=40"
    )
    assert bad.returncode == 1 and "fast must be less than slow" in bad.stderr


def test_a_terminal_gets_a_progress_bar_with_rate_and_eta(sample: Path, tmp_path: Path) -> None:
    returncode, text = run_on_terminal(
        [
            "backtest",
            "algos.examples:RandomAlgo",
            "--data",
            str(sample),
            "--out",
            str(tmp_path / "tty"),
        ]
    )
    assert returncode == 0
    assert "100%" in text and "quotes/s" in text and "35.1k/35.1k" in text, text[-500:]
