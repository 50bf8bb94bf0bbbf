"""`tickbus data sample|import|info`: the real CLI in subprocesses, and the estimates in process."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

import tape
from broker import encode_quote_json, parse_quote
from tests.support import REPO_ROOT
from tickbus.errors import TapeError

OPEN_S = 14 * 3600 + 30 * 60
CLOSE_S = 21 * 3600


def tickbus(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tickbus", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        assert done.returncode != 0, done.stdout + done.stderr
    return done


def info_json(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(tickbus("data", "info", str(directory), "--json").stdout)
    return result


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def read_all(directory: Path) -> pa.Table:
    table = ds.dataset(directory, format="parquet", partitioning="hive").to_table()
    return table.sort_by([("sid", "ascending"), ("ts", "ascending")])


# --- data sample + data info ------------------------------------------------------------------


def test_sample_is_realistic_and_info_describes_it(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    # 2026-01-09 is a Friday: the 3 trading days are Fri, Mon and Tue.
    done = tickbus(
        "data", "sample", "--out", str(out), "--symbols", "goog,AAPL,XYZ",
        "--days", "3", "--start", "2026-01-09", "--rate", "0.5", "--seed", "7",
    )  # fmt: skip
    assert "wrote 105,300 quotes of 3 symbols" in done.stdout
    info = info_json(out)
    per_symbol = int(23_400 * 0.5) * 3
    assert info["symbols"] == {"AAPL": per_symbol, "GOOG": per_symbol, "XYZ": per_symbol}
    assert info["rows"] == 3 * per_symbol
    assert info["partitions"] == ["2026-01-09", "2026-01-12", "2026-01-13"]
    assert info["files"] == 3
    assert info["first"].startswith("2026-01-09T14:30:")
    assert info["last"].startswith("2026-01-13T20:")

    table = read_all(out)
    assert table.num_rows == info["rows"]
    seconds = tape.seconds_array(table.column("ts").cast(pa.int64()).to_numpy())
    days = {datetime.fromtimestamp(s, tz=UTC).date() for s in seconds[::1000]}
    assert all(day.weekday() < 5 for day in days)
    time_of_day = seconds % 86_400
    assert time_of_day.min() >= OPEN_S and time_of_day.max() < CLOSE_S
    assert pc.all(pc.equal(table.column("ts"), table.column("arrival"))).as_py()

    price, bid, ask, size = (table.column(c).to_numpy() for c in ("price", "bid", "ask", "size"))
    for column in (price, bid, ask, size):
        assert np.isfinite(column).all() and (column > 0).all()
    assert (bid <= price).all() and (price <= ask).all()
    assert (bid < price).all() and (price < ask).all()  # the sample promises a strict inside
    assert (size % 100 == 0).all()

    for sid in ("AAPL", "GOOG", "XYZ"):
        prices = table.filter(pc.equal(table.column("sid"), sid)).column("price").to_numpy()
        jumps = np.abs(np.diff(prices)) / prices[:-1]
        assert jumps.max() < 0.10, f"{sid}: a quote {jumps.max():.1%} from the last one"
        assert len(np.unique(prices)) > 30  # it moves
    levels = {
        sid: float(np.median(table.filter(pc.equal(table.column("sid"), sid))["price"]))
        for sid in ("AAPL", "GOOG", "XYZ")
    }
    assert len({round(level) for level in levels.values()}) == 3  # different price levels

    goog = pc.equal(table.column("sid"), "GOOG").to_numpy(zero_copy_only=False)
    spread = ((ask - bid) / price)[goog]
    minute = (time_of_day[goog] - OPEN_S) // 60
    assert spread[minute < 5].mean() > 1.5 * spread[(minute >= 180) & (minute < 190)].mean()

    assert 5 < info["bytes_per_quote"] < 40
    assert info["json_exact"] is True and info["json_sampled"] == info["rows"]
    assert 0.05 < info["json_ratio"] < 0.3


def test_sample_is_deterministic_and_readable_as_is(tmp_path: Path) -> None:
    args = ["--days", "2", "--rate", "0.2", "--symbols", "MSFT,TSLA"]
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    tickbus("data", "sample", "--out", str(first), "--seed", "1", *args)
    tickbus("data", "sample", "--out", str(again), "--seed", "1", *args)
    tickbus("data", "sample", "--out", str(other), "--seed", "2", *args)
    assert file_bytes(first) == file_bytes(again)
    assert len(file_bytes(first)) == len(file_bytes(other)) == 2
    assert file_bytes(first) != file_bytes(other)
    assert read_all(first).column("price") != read_all(other).column("price")

    rows = duckdb.sql(
        f"SELECT sid, count(*) AS n, min(bid <= price AND price <= ask) AS inside, "
        f"count(DISTINCT date) AS days "
        f"FROM read_parquet('{first}/**/*.parquet', hive_partitioning = true) "
        f"GROUP BY sid ORDER BY sid"
    ).fetchall()
    assert rows == [("MSFT", 9360, True, 2), ("TSLA", 9360, True, 2)]

    bad_symbol = tickbus(
        "data", "sample", "--out", str(tmp_path / "d"), "--symbols", "A B", ok=False
    )
    assert "--symbols: " in bad_symbol.stderr and "'A B'" in bad_symbol.stderr
    refused = tickbus("data", "sample", "--out", str(first), ok=False)
    assert f"{first} already holds a dataset" in refused.stderr
    assert file_bytes(first) == file_bytes(again)


def test_sample_default_is_quick_and_about_a_third_of_a_million_rows(tmp_path: Path) -> None:
    out = tmp_path / "default"
    done = tickbus("data", "sample", "--out", str(out))
    assert "wrote 351,000 quotes of 3 symbols (GOOG, AAPL, MSFT) over 5 trading days" in done.stdout
    info = info_json(out)
    assert info["partitions"] == [f"2026-01-{day:02d}" for day in range(5, 10)]
    assert info["json_ratio"] < 0.25


# --- data import ------------------------------------------------------------------------------

CSV = """ts,sid,price,bid,ask,size
1767623400.123456,GOOG,170.25,170.2,170.3,100
1767623400.5,aapl,190.1,,,
1767623401.000001,GOOG,170.3,170.25,170.35,250
1767709800.25,AAPL,190.4,190.35,190.45,7
"""


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_import_equals_the_csv_and_info_sees_it(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "quotes.csv", CSV)
    out = tmp_path / "data"
    done = tickbus("data", "import", str(source), "--out", str(out))
    assert "imported 4 quotes" in done.stdout and "AAPL, GOOG" in done.stdout
    assert "2026-01-05T14:30:00.123456Z .. 2026-01-06T14:30:00.250000Z" in done.stdout

    expected = [parse_quote(_fields(line)) for line in CSV.splitlines()[1:]]
    table = read_all(out)
    ns = table.column("ts").cast(pa.int64()).to_pylist()
    rows = table.drop_columns(["ts", "arrival"]).to_pylist()
    got = [tape.quote_from_row({**row, "ts": n}) for row, n in zip(rows, ns, strict=True)]
    key = lambda q: (q["sid"], q["ts"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert sorted(tape.seconds_from_ns(n) for n in ns) == sorted(
        float(line.split(",")[0]) for line in CSV.splitlines()[1:]
    )
    assert set(table.column("topic").to_pylist()) == {"quotes/GOOG", "quotes/AAPL"}

    info = info_json(out)
    assert info["symbols"] == {"AAPL": 2, "GOOG": 2}
    assert info["partitions"] == ["2026-01-05", "2026-01-06"]
    assert info["json_bytes"] == sum(len(encode_quote_json(q)) for q in expected)


def _fields(line: str) -> dict[str, Any]:
    cells = dict(zip(["ts", "sid", "price", "bid", "ask", "size"], line.split(","), strict=True))
    return {k: (v if k == "sid" else float(v)) for k, v in cells.items() if v}


def test_import_refuses_a_bad_row_and_writes_nothing(tmp_path: Path) -> None:
    bad = CSV.replace("1767623401.000001,GOOG,170.3", "1767623401.000001,GOOG,-3")
    source = write_csv(tmp_path / "bad.csv", bad)
    out = tmp_path / "data"
    refused = tickbus("data", "import", str(source), "--out", str(out), ok=False)
    assert f"{source}: 1 bad row: line 4: price" in refused.stderr
    assert "nothing was written" in refused.stderr and "--skip-bad" in refused.stderr
    assert not list(out.rglob("*.parquet"))

    done = tickbus("data", "import", str(source), "--out", str(out), "--skip-bad")
    assert "imported 3 quotes" in done.stdout
    assert "skipped  1 bad rows: line 4: price" in done.stdout
    table = read_all(out)
    assert table.num_rows == 3 and -3.0 not in table.column("price").to_pylist()


def test_import_needs_each_rows_ts(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "no-ts.csv", CSV + ",MSFT,400.0,,,\n")
    refused = tickbus("data", "import", str(source), "--out", str(tmp_path / "d"), ok=False)
    assert "line 6: ts is missing" in refused.stderr


def test_import_of_a_file_with_a_wrong_header_says_so(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "header.csv", "time,sid,price\n1767623400,GOOG,1\n")
    refused = tickbus("data", "import", str(source), "--out", str(tmp_path / "d"), ok=False)
    assert "missing: ['ts']" in refused.stderr and str(source) in refused.stderr


def test_import_in_chunks_validates_everything_before_writing(tmp_path: Path) -> None:
    lines = ["ts,sid,price"] + [f"{1767623400 + i}.25,S{i % 3},{10 + i}" for i in range(20)]
    good = write_csv(tmp_path / "good.csv", "\n".join(lines) + "\n")
    out = tmp_path / "chunked"
    report = tape.import_csv(tape.ImportConfig(csv_path=good, directory=out, chunk_rows=7))
    assert report.rows == 20 and len(report.files) == 3  # two passes, three chunks
    assert read_all(out).num_rows == 20

    late_bad = write_csv(tmp_path / "late.csv", "\n".join([*lines, "1767623500,S1,nan"]) + "\n")
    empty = tmp_path / "empty"
    with pytest.raises(TapeError, match=r"line 22: .*nothing was written"):
        tape.import_csv(tape.ImportConfig(csv_path=late_bad, directory=empty, chunk_rows=7))
    assert not empty.exists()

    skipped = tape.import_csv(
        tape.ImportConfig(csv_path=late_bad, directory=empty, chunk_rows=7, skip_bad=True)
    )
    assert (skipped.rows, skipped.bad_rows, skipped.bad_reasons[0][:8]) == (20, 1, "line 22:")


# --- data info: errors and the JSON estimate --------------------------------------------------


def test_info_on_an_empty_directory_or_a_missing_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "date=2026-01-05").mkdir(parents=True)
    (empty / "date=2026-01-05" / ".part-x-1-0.parquet.tmp").write_bytes(b"half")
    (empty / "_journal.parquet").write_bytes(b"not data")
    refused = tickbus("data", "info", str(empty), ok=False)
    assert f"{empty} holds no data files" in refused.stderr
    missing = tmp_path / "missing"
    assert f"{missing} does not exist" in tickbus("data", "info", str(missing), ok=False).stderr


def test_info_on_a_corrupt_file_names_it(tmp_path: Path) -> None:
    out = tmp_path / "data"
    tickbus("data", "import", str(write_csv(tmp_path / "q.csv", CSV)), "--out", str(out))
    corrupt = out / "date=2026-01-05" / "part-broken-1-0.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    refused = tickbus("data", "info", str(out), ok=False)
    assert f"cannot read {corrupt}" in refused.stderr


def test_info_text_and_sampled_json_estimate(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    tape.write_sample(tape.SampleConfig(directory=out, days=2, rate=0.5))
    exact = tape.dataset_info(out)
    estimate = tape.dataset_info(out, exact_rows=1000, sample_rows=2000)
    assert exact.json_exact and not estimate.json_exact
    assert 1900 <= estimate.json_sampled <= 2000
    assert estimate.json_bytes == pytest.approx(exact.json_bytes, rel=0.01)
    assert estimate == tape.dataset_info(out, exact_rows=1000, sample_rows=2000)

    text = tickbus("data", "info", str(out)).stdout
    assert "rows      70,200" in text
    assert "symbols   3: AAPL 23,400  GOOG 23,400  MSFT 23,400" in text
    assert "dates     2: 2026-01-05 .. 2026-01-06" in text
    assert f"(exact, all {exact.rows:,} quotes)" in text and "of the JSON size" in text


def test_help_explains_each_command() -> None:
    for command in ("info", "import", "sample"):
        text = tickbus("data", command, "--help").stdout
        assert "Usage: python -m tickbus data " + command in text
    assert "14:30-21:00 UTC" in tickbus("data", "sample", "--help").stdout
