"""Reading a dataset back: order, exactness, filters, empty selections, bad files, memory."""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import tape
from broker import Quote
from tests.support import REPO_ROOT
from tickbus.errors import ConfigError, TapeError

DAY1 = 1_796_083_200.0  # 2026-12-01T00:00:00Z
HOUR = 3600.0


def write(directory: Path, quotes: Sequence[Quote], writer: str) -> list[Path]:
    table = tape.table_from_quotes(
        quotes,
        arrival_ns=[tape.ns_from_seconds(q["ts"]) + 1000 for q in quotes],
        topics=[f"quotes/{q['sid']}" for q in quotes],
    )
    return tape.write_rows(table, directory, writer=writer)


def series(sid: str, first: float, count: int, step: float, *, full: bool) -> list[Quote]:
    quotes: list[Quote] = []
    for i in range(count):
        quote: Quote = {"sid": sid, "price": 100.0 + i * 0.01 + 1e-9 * i, "ts": first + i * step}
        if full and i % 3:
            quote.update(bid=quote["price"] - 0.005, ask=quote["price"] + 0.005, size=float(i))
        quotes.append(quote)
    return quotes


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[Quote]]:
    """Three symbols over three UTC days, in files whose time ranges overlap, with ts ties."""
    root = tmp_path / "tape"
    goog = series("GOOG", DAY1 + 20 * HOUR + 0.123456789, 400, 420.37, full=True)
    aapl = series("AAPL", DAY1 + 21 * HOUR + 0.5, 300, 660.0, full=False)
    msft = [dict(q, sid="MSFT", price=q["price"] + 1) for q in goog[::5]]  # same ts as GOOG
    written: list[Quote] = []
    for part, writer in ((goog[0::2], "a"), (goog[1::2], "a"), (aapl, "b"), (msft, "c")):
        write(root, part, writer)  # type: ignore[arg-type]
        written += part  # type: ignore[arg-type]
    assert len(list(root.rglob("*.parquet"))) >= 10
    return root, written


def reference(root: Path) -> list[Quote]:
    """Every row of every file, read plainly and sorted by (ts, file path, row)."""
    keyed = []
    for path in sorted(root.rglob("*.parquet")):
        table = pq.read_table(path, columns=["ts", "sid", "price", "bid", "ask", "size"])
        rows = table.set_column(0, "ts", table.column("ts").cast(pa.int64())).to_pylist()
        keyed += [
            ((row["ts"], str(path), n), tape.quote_from_row(row)) for n, row in enumerate(rows)
        ]
    return [quote for _, quote in sorted(keyed, key=lambda item: item[0])]


def by_identity(quotes: Sequence[Quote]) -> list[tuple[Any, ...]]:
    return sorted(tuple(sorted(q.items())) for q in quotes)


def test_every_quote_comes_back_in_ts_order_exactly(dataset: tuple[Path, list[Quote]]) -> None:
    root, written = dataset
    quotes = list(tape.read_quotes(root))
    assert by_identity(quotes) == by_identity(written), "the same quotes, ts and optionals exact"
    assert quotes == reference(root), "ts order; ties by file, then row"
    assert [q["ts"] for q in quotes] == sorted(q["ts"] for q in written)
    assert any("bid" in q for q in quotes) and any("bid" not in q for q in quotes)
    assert list(tape.read_quotes(root)) == quotes, "the same order on every read"


@pytest.mark.parametrize("chunk_rows", [1, 7, 64])
def test_order_holds_across_chunk_and_row_group_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr("tape._files.ROW_GROUP_ROWS", 50)
    monkeypatch.setattr("tape._reader.CHUNK_ROWS", chunk_rows)
    root = tmp_path / "tape"
    for k in range(4):  # 4 files interleaving row by row, with ties between them
        write(root, series(f"S{k}", DAY1 + k % 2, 300, 2.0, full=k % 2 == 0), f"w{k}")
    write(root, series("LATE", DAY1 + 1000, 200, 0.5, full=False), "late")  # overlaps two
    quotes = list(tape.read_quotes(root, start=DAY1 + 3, end=DAY1 + 1090))
    assert quotes == [q for q in reference(root) if DAY1 + 3 <= q["ts"] < DAY1 + 1090]
    assert len(quotes) > 1000


def test_batches_are_the_same_quotes_in_runs(dataset: tuple[Path, list[Quote]]) -> None:
    root, _ = dataset
    batches = list(tape.read_batches(root))
    assert all(1 <= len(b) <= tape.CHUNK_ROWS for b in batches)
    assert [q for b in batches for q in b] == list(tape.read_quotes(root))


def test_each_batch_says_whether_it_passes_the_quote_contract(
    dataset: tuple[Path, list[Quote]],
) -> None:
    root, _ = dataset
    batches = list(tape.read_quote_batches(root))
    assert [b.quotes for b in batches] == list(tape.read_batches(root))
    assert all(b.checked for b in batches), "nulls in bid/ask/size break nothing"
    path = sorted(root.rglob("*.parquet"))[3]
    table = pq.read_table(path)
    prices = table.column("price").to_pylist()
    prices[5] = float("nan")
    pq.write_table(table.set_column(3, "price", pa.array(prices)), path)
    spoiled = list(tape.read_quote_batches(root))
    suspects = [b for b in spoiled if not b.checked]
    assert any(math.isnan(q["price"]) for b in suspects for q in b.quotes)
    assert not any(math.isnan(q["price"]) for b in spoiled if b.checked for q in b.quotes)
    assert len(suspects) < len(spoiled), "only the batches of the spoiled chunk lose the flag"


def test_symbols_are_filtered_case_insensitively(dataset: tuple[Path, list[Quote]]) -> None:
    root, _ = dataset
    quotes = list(tape.read_quotes(root, symbols=["goog", " Msft"]))
    assert quotes == [q for q in reference(root) if q["sid"] in {"GOOG", "MSFT"}]
    assert list(tape.read_quotes(root, symbols="aapl")) == [
        q for q in reference(root) if q["sid"] == "AAPL"
    ]


def test_time_range_is_start_inclusive_end_exclusive_across_days(
    dataset: tuple[Path, list[Quote]],
) -> None:
    root, _ = dataset
    every = reference(root)
    start, end = every[100]["ts"], every[700]["ts"]
    assert every[99]["ts"] < start and every[700]["ts"] > every[699]["ts"]
    assert datetime.fromtimestamp(start, UTC).day != datetime.fromtimestamp(end, UTC).day
    assert list(tape.read_quotes(root, start=start, end=end)) == every[100:700]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3)),
        ("2026-12-02", "2026-12-03T00:00:00Z"),
        ("2026-12-02T01:00:00+01:00", str(DAY1 + 48 * HOUR)),
    ],
)
def test_time_bounds_as_datetimes_iso_text_or_epoch_seconds(
    dataset: tuple[Path, list[Quote]], start: Any, end: Any
) -> None:
    root, _ = dataset
    day2 = [q for q in reference(root) if DAY1 + 24 * HOUR <= q["ts"] < DAY1 + 48 * HOUR]
    assert day2 and list(tape.read_quotes(root, start=start, end=end)) == day2


def test_partitions_outside_the_range_are_not_opened(dataset: tuple[Path, list[Quote]]) -> None:
    root, _ = dataset
    bad = root / "date=2026-11-01" / "part-x-0-0.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"not parquet at all")
    assert list(tape.read_quotes(root, start=DAY1))
    with pytest.raises(TapeError, match=r"part-x-0-0\.parquet"):
        list(tape.read_quotes(root))


def test_a_corrupt_file_is_named(dataset: tuple[Path, list[Quote]]) -> None:
    root, _ = dataset
    bad = root / "date=2026-12-02" / "part-z-1-0.parquet"
    bad.write_bytes(b"PAR1" + bytes(range(256)) * 4)
    with pytest.raises(TapeError) as caught:
        list(tape.read_quotes(root))
    assert str(bad) in str(caught.value) and caught.value.path == bad


def test_a_row_group_corrupt_mid_file_is_named_when_the_stream_reaches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tape._files.ROW_GROUP_ROWS", 100)
    (path,) = write(tmp_path, series("GOOG", DAY1, 1000, 1.0, full=True), "a")
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 10
    price = metadata.row_group(5).column(tape.SCHEMA.get_field_index("price"))
    data = bytearray(path.read_bytes())
    start = price.data_page_offset
    data[start : start + price.total_compressed_size] = b"\xff" * price.total_compressed_size
    path.write_bytes(bytes(data))
    stream, seen = tape.read_quotes(tmp_path), 0
    with pytest.raises(TapeError) as caught:
        for _ in stream:
            seen += 1
    assert caught.value.path == path and str(path) in str(caught.value)
    assert 100 <= seen <= 500  # the good row groups before it came out first


def foreign_file(root: Path, sids: list[str | None], ts: list[int | None]) -> Path:
    """A file another writer made: the tape's columns, every one nullable."""
    nullable = pa.schema([field.with_nullable(True) for field in tape.SCHEMA])
    count = len(sids)
    table = pa.Table.from_pydict(
        {
            "ts": ts,
            "arrival": ts,
            "sid": sids,
            "price": [100.0] * count,
            "bid": [None] * count,
            "ask": [None] * count,
            "size": [None] * count,
            "topic": ["quotes/x"] * count,
        },
        schema=nullable,
    )
    path = root / "date=2026-12-01" / "part-foreign-0-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    return path


def test_a_null_symbol_comes_back_as_none_as_quote_from_row_reads_it(tmp_path: Path) -> None:
    first = int(DAY1 * 1e9)
    foreign_file(tmp_path, ["GOOG", None, "AAPL"], [first, first + 1, first + 2])
    batches = list(tape.read_quote_batches(tmp_path))
    assert [q["sid"] for b in batches for q in b.quotes] == ["GOOG", None, "AAPL"]
    assert not any(b.checked for b in batches)


def test_a_null_ts_is_an_error_naming_the_file(tmp_path: Path) -> None:
    first = int(DAY1 * 1e9)
    path = foreign_file(tmp_path, ["GOOG", "GOOG", "GOOG"], [first, None, first + 2])
    with pytest.raises(TapeError) as caught:
        list(tape.read_quotes(tmp_path))
    assert caught.value.path == path and "null" in str(caught.value)


def test_a_stream_dropped_early_leaves_no_read_running(dataset: tuple[Path, list[Quote]]) -> None:
    root, _ = dataset
    stream = tape.read_quotes(root)
    next(stream)
    assert any(t.name.startswith("tape-read-ahead") for t in threading.enumerate())
    del stream
    gc.collect()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("tape-read-ahead")]


def test_reading_does_not_import_pandas(dataset: tuple[Path, list[Quote]]) -> None:
    """pyarrow's to_numpy imports pandas on first use: 0.2 s and 40 MB a reading process."""
    root, quotes = dataset
    code = (
        "import sys, tape; n = sum(1 for _ in tape.read_quotes(sys.argv[1]));"
        " print(n, 'pandas' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(quotes)), "False"]


def test_hidden_and_underscore_files_are_not_data(dataset: tuple[Path, list[Quote]]) -> None:
    root, written = dataset
    for name in ("_journal.parquet", ".part-a-1-0.parquet.tmp", ".hidden.parquet"):
        (root / "date=2026-12-02" / name).write_bytes(b"garbage")
    (root / "_staging").mkdir()
    (root / "_staging" / "part-q-1-0.parquet").write_bytes(b"garbage")
    assert len(list(tape.read_quotes(root))) == len(written)


def test_an_unknown_symbol_says_what_the_dataset_holds(dataset: tuple[Path, list[Quote]]) -> None:
    root, _ = dataset
    with pytest.raises(ConfigError) as caught:
        tape.read_quotes(root, symbols=["nope"])
    message = str(caught.value)
    assert isinstance(caught.value, TapeError) and caught.value.path == root
    assert "symbols NOPE" in message and str(root) in message
    assert "3 symbols (AAPL, GOOG, MSFT)" in message
    assert "from 2026-12-01T20:00:00.123456Z to 2026-12-04T03:49:00.500000Z in 13 files" in message


def test_a_range_outside_the_data_says_what_the_dataset_holds(
    dataset: tuple[Path, list[Quote]],
) -> None:
    root, _ = dataset
    with pytest.raises(TapeError, match=r"from 2030-01-01T00:00:00Z before 2030-01-02T00:00:00Z"):
        tape.read_quotes(root, start="2030-01-01", end="2030-01-02")
    with pytest.raises(TapeError, match=r"the dataset holds 3 symbols \(AAPL, GOOG, MSFT\)"):
        tape.read_quotes(root, symbols="AAPL", end=DAY1 + 20 * HOUR)


def test_an_empty_or_missing_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TapeError, match=r"empty holds no data files"):
        tape.read_quotes(tmp_path / "empty")
    with pytest.raises(TapeError, match=r"missing does not exist"):
        tape.read_quotes(tmp_path / "missing")


def test_bad_bounds_are_config_errors(dataset: tuple[Path, list[Quote]]) -> None:
    root, _ = dataset
    with pytest.raises(ConfigError, match="must be before the end"):
        tape.read_quotes(root, start=DAY1 + 10, end=DAY1)
    with pytest.raises(ConfigError, match="'yesterday' is not a time"):
        tape.read_quotes(root, start="yesterday")
    with pytest.raises(ConfigError, match="symbols is empty"):
        tape.read_quotes(root, symbols=[])


def test_parse_time_reads_iso_8601_and_epoch_seconds() -> None:
    assert tape.parse_time("2026-12-03") == datetime(2026, 12, 3, tzinfo=UTC)
    assert tape.parse_time("2026-12-03T14:30:00") == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
    assert tape.ns_from_time("2026-12-03T15:30:00+01:00") == tape.ns_from_time(
        datetime(2026, 12, 3, 14, 30)
    )
    assert tape.parse_time("1764772200.25") == 1764772200.25
    assert tape.ns_from_time("2026-12-01T00:00:00.000001Z") == int(DAY1) * 10**9 + 1000


BULK_FILES = 6
BULK_ROWS_PER_FILE = 500_000
SMALL_ROWS_PER_FILE = 20_000


def write_bulk(root: Path, rows_per_file: int) -> int:
    """`BULK_FILES` files of 4 symbols, consecutive ones overlapping by half their range."""
    sids = pa.array(["AAA", "BBB", "CCC", "DDD"])
    step_ns = 1_000_000  # 1 ms
    for k in range(BULK_FILES):
        first = int(DAY1 * 1e9) + k * rows_per_file * step_ns // 2
        ns = first + np.arange(rows_per_file, dtype=np.int64) * step_ns + k  # no ties
        price = 100 + np.arange(rows_per_file) % 1000 / 100
        sid = pc.take(sids, pa.array(np.arange(rows_per_file) % 4))
        table = pa.Table.from_arrays(
            [
                pa.array(ns, tape.SCHEMA.field("ts").type),
                pa.array(ns, tape.SCHEMA.field("arrival").type),
                sid,
                pa.array(price),
                pa.array(price - 0.01),
                pa.array(price + 0.01),
                pa.nulls(rows_per_file, pa.float64()),
                pc.binary_join_element_wise("quotes/", sid, ""),
            ],
            schema=tape.SCHEMA,
        )
        tape.write_rows(table, root, writer=f"bulk{k}")
    return BULK_FILES * rows_per_file


READ_AND_MEASURE = """
import json, resource, sys, tape
peaks = []
for root in sys.argv[1:]:
    count, last = 0, 0.0
    for quote in tape.read_quotes(root):
        assert quote["ts"] >= last
        last = quote["ts"]
        count += 1
    peaks.append([count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024])
print(json.dumps(peaks))
"""


def test_memory_is_bounded_by_row_groups_not_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tape._files.ROW_GROUP_ROWS", 16_384)
    small = write_bulk(tmp_path / "small", SMALL_ROWS_PER_FILE)
    big = write_bulk(tmp_path / "big", BULK_ROWS_PER_FILE)
    assert pq.ParquetFile(next((tmp_path / "big").rglob("*.parquet"))).num_row_groups > 10
    done = subprocess.run(
        [sys.executable, "-c", READ_AND_MEASURE, str(tmp_path / "small"), str(tmp_path / "big")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    (small_count, small_peak), (big_count, big_peak) = json.loads(done.stdout)
    assert (small_count, big_count) == (small, big)
    # Holding the 3M quotes would take over 1 GB as dicts, ~150 MB as Arrow.
    assert big_peak - small_peak < 40 * 2**20, f"peak RSS {small_peak} -> {big_peak} bytes"
