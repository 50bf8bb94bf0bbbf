"""`tickbus record`: quotes from a real mosquitto (or a ring) into a Parquet dataset, crash-safe.

The recorder runs as the real CLI in a subprocess; the dataset is read back with
pyarrow.dataset and DuckDB, as a user would. The journal is also tested on its
own: appends, a torn tail, and a crash between the finished files and the removal.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from broker import encode_quotes_msgpack
from tape import (
    SCHEMA,
    Journal,
    finish_journal,
    journal_path,
    ns_from_seconds,
    read_journal,
    seconds_from_ns,
    table_from_quotes,
)
from tape._journal import JournalLock
from tests.support import (
    MqttRecorder,
    Proc,
    Processes,
    free_port,
    recorder,
    unique,
    wait_until,
)
from tickbus.errors import ConfigError

EXIT_WITHIN_S = 5.0


# --- helpers ------------------------------------------------------------------------


def start_recorder(
    procs: Processes, mqtt_url: str, out: Path, name: str, topics: list[str], *flags: str
) -> Proc:
    args = ["record", "--mqtt", mqtt_url, "--out", str(out), "--name", name]
    return procs.tickbus(*args, "--topics", ",".join(topics), *flags, name=f"record-{name}")


def statuses(rec: MqttRecorder, name: str) -> list[dict[str, Any]]:
    return rec.json_on(f"status/recorder/{name}")


def wait_status(rec: MqttRecorder, name: str, what: str, **want: Any) -> dict[str, Any]:
    """The latest status of recorder `name` whose fields pass `want` (values or callables)."""

    def matches(status: dict[str, Any]) -> bool:
        for key, value in want.items():
            if key not in status:
                return False
            if not (value(status[key]) if callable(value) else status[key] == value):
                return False
        return True

    def found() -> dict[str, Any] | None:
        return next((s for s in reversed(statuses(rec, name)) if matches(s)), None)

    return wait_until(found, timeout=30, what=what)  # type: ignore[no-any-return]


def exits_within(proc: Proc, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not proc.alive(), f"still running {seconds} s after SIGTERM:\n{proc.log()[-2000:]}"
    return proc.wait(timeout=1)


def read_dataset(out: Path) -> pa.Table:
    """Every row of the dataset, as pyarrow.dataset reads it (hive partitioning)."""
    return ds.dataset(out, format="parquet", partitioning="hive").to_table()


def rows_by_key(table: pa.Table) -> dict[tuple[str, int], dict[str, Any]]:
    """Rows keyed by (sid, ts in ns); fails on a duplicate key."""
    for column in ("ts", "arrival"):
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column, table.column(column).cast(pa.int64()))
    rows = {}
    for row in table.to_pylist():
        key = (row["sid"], row["ts"])
        assert key not in rows, f"row {key} recorded twice"
        rows[key] = row
    return rows


def data_files(out: Path) -> list[Path]:
    return sorted(out.glob("date=*/*.parquet"))


def digests(files: list[Path]) -> dict[Path, str]:
    return {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


# --- the journal on its own ----------------------------------------------------------


def some_rows(sid: str, n: int, start: float = 1_764_770_000.0) -> pa.Table:
    quotes = [{"sid": sid, "price": 10.0 + i, "ts": start + i / 7} for i in range(n)]
    return table_from_quotes(quotes, arrival_ns=[time.time_ns()] * n, topics=[f"quotes/{sid}"] * n)  # type: ignore[misc]


def test_journal_appends_reads_back_and_finishes_into_parquet(tmp_path: Path) -> None:
    path = journal_path(tmp_path, "j")
    with Journal(path) as journal:
        journal.append(some_rows("A", 5))
        journal.append(some_rows("B", 0))  # nothing
        journal.append(some_rows("B", 3))
        assert journal.rows == 8
        assert journal.bytes == path.stat().st_size
    contents = read_journal(path)
    assert contents.table.num_rows == 8 and not contents.torn
    assert contents.table.schema.equals(SCHEMA)
    with pytest.raises(FileExistsError):
        Journal(path)  # a leftover journal is finished first, never overwritten
    finished = finish_journal(path, tmp_path, writer="j")
    assert not path.exists()
    assert finished.rows == 8 and finished.skipped_rows == 0 and not finished.torn
    assert read_dataset(tmp_path).num_rows == 8
    assert finished.bytes == sum(f.stat().st_size for f in data_files(tmp_path))


def test_a_torn_journal_reads_as_its_whole_batches(tmp_path: Path) -> None:
    path = journal_path(tmp_path, "t")
    with Journal(path) as journal:
        journal.append(some_rows("A", 4))
        whole = journal.bytes
        journal.append(some_rows("B", 6))
    data = path.read_bytes()
    # Cut inside the second batch's header, inside its body, and inside the schema.
    for cut, rows, torn in ((whole + 5, 4, True), (len(data) - 30, 4, True), (10, 0, True)):
        path.write_bytes(data[:cut])
        contents = read_journal(path)
        assert (contents.table.num_rows, contents.torn) == (rows, torn), cut
    path.write_bytes(data[: whole + 5])
    finished = finish_journal(path, tmp_path, writer="t")
    assert finished.torn and finished.rows == 4
    assert read_dataset(tmp_path).column("sid").to_pylist() == ["A"] * 4
    # A new journal after the recovery: appends go on, nothing of the torn one stays.
    with Journal(path) as journal:
        journal.append(some_rows("C", 2))
    assert read_journal(path).table.num_rows == 2


def test_a_journal_finished_twice_writes_its_rows_once(tmp_path: Path) -> None:
    """A crash after the Parquet files and before the journal's removal duplicates nothing."""
    path = journal_path(tmp_path, "d")
    with Journal(path) as journal:
        journal.append(some_rows("A", 3))
        journal.append(some_rows("A", 3, start=1_764_900_000.0))  # the next day: 2 partitions
    saved = tmp_path / "saved.arrows"
    shutil.copy(path, saved)
    first = finish_journal(path, tmp_path, writer="d")
    assert len(first.files) == 2
    before = digests(data_files(tmp_path))
    shutil.copy(saved, path)  # as if the removal never happened
    again = finish_journal(path, tmp_path, writer="d")
    assert (again.rows, again.skipped_rows, again.files) == (0, 6, [])
    assert digests(data_files(tmp_path)) == before
    assert not path.exists()


def test_one_recorder_per_name_and_dataset(tmp_path: Path) -> None:
    with JournalLock(tmp_path, "x"), pytest.raises(ConfigError, match="another recorder"):
        JournalLock(tmp_path, "x").__enter__()
    with JournalLock(tmp_path, "x"), JournalLock(tmp_path, "y"):
        pass  # free again, and other names are independent


# --- the recorder, end to end -------------------------------------------------------


def test_every_kind_of_quote_is_recorded_field_by_field(
    mosquitto_port: int, mqtt_url: str, procs: Processes, tmp_path: Path
) -> None:
    name = unique("rec")
    sa, sb, sc, sd = (unique(p).upper() for p in ("RA", "RB", "RC", "RD"))
    topics = [f"quotes/{s}" for s in (sa, sb, sc, sd)]
    out = tmp_path / "data"
    full = {
        "sid": sa,
        "price": 345.1,
        "ts": 1764770000.123456,
        "bid": 345.0,
        "ask": 345.2,
        "size": 100.0,
    }
    plain = {"sid": sb, "price": 12.5, "ts": 1764770001.5}
    array = [
        {"sid": sd, "price": 7.25, "ts": 1764770002.25, "size": 3.0},
        {"sid": sd, "price": 7.5, "ts": 1764856403.000001, "ask": 7.6},  # the next UTC day
    ]
    packed = {"sid": sa, "price": 346.0, "ts": 1764770003.987654321, "bid": 345.9}
    with recorder(mosquitto_port, f"status/recorder/{name}", "deadletter/recorder") as rec:
        proc = start_recorder(procs, mqtt_url, out, name, topics, "--flush-s", "0.2")
        wait_status(rec, name, "the recorder subscribed", quotes=0)
        before = time.time()
        rec.publish(topics[0], json.dumps(full))
        rec.publish(topics[1], json.dumps(plain))
        rec.publish(topics[2], json.dumps({sc.lower(): 3.45}))  # short form, no ts
        after = time.time()
        rec.publish(topics[3], json.dumps(array))
        rec.publish(topics[0], encode_quotes_msgpack([packed]))  # type: ignore[list-item]
        rec.publish(topics[1], b'{"sid": "X", "price": -1}')
        wait_status(rec, name, "every quote received", quotes=6, dead_letters=1)
        proc.signal(signal.SIGTERM)
        assert exits_within(proc, EXIT_WITHIN_S) == 0
        final = wait_status(rec, name, "the final status", state="offline")
        letters = [m for m in rec.json_on("deadletter/recorder") if m.get("by") == name]
    assert final["quotes"] == final["rows_written"] == 6
    assert (final["dead_letters"], final["journal_rows"], final["pending"]) == (1, 0, 0)
    assert final["files"] >= 2 and final["bytes"] == sum(f.stat().st_size for f in data_files(out))
    assert len(letters) == 1 and letters[0]["topic"] == topics[1] and letters[0]["reason"]
    assert not journal_path(out, name).exists()

    rows = rows_by_key(read_dataset(out))
    assert len(rows) == 6
    expected = [(full, topics[0]), (plain, topics[1]), (packed, topics[0])]
    expected += [(q, topics[3]) for q in array]
    for quote, topic in expected:
        row = next(
            r
            for (sid, _), r in rows.items()
            if sid == quote["sid"] and r["price"] == quote["price"]
        )
        assert seconds_from_ns(row["ts"]) == quote["ts"]
        for key in ("bid", "ask", "size"):
            assert row[key] == quote.get(key), key
        assert row["topic"] == topic
        assert before <= seconds_from_ns(row["arrival"]) <= time.time()
    short = next(r for (sid, _), r in rows.items() if sid == sc)
    assert short["price"] == 3.45 and before <= seconds_from_ns(short["ts"]) <= after + 1
    assert {str(r["date"]) for r in rows.values()} >= {"2025-12-03", "2025-12-04"}

    query = f"""
        SELECT sid, price, epoch_ns(ts) AS ts_ns, bid, ask, size, topic, date
        FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) ORDER BY sid, ts_ns
    """
    duck = duckdb.sql(query).fetchall()
    assert len(duck) == 6
    for sid, price, ts_ns, bid, ask, size, topic, _date in duck:
        row = rows[(sid, ts_ns)]
        assert (price, bid, ask, size, topic) == (
            row["price"],
            row["bid"],
            row["ask"],
            row["size"],
            row["topic"],
        )


def test_kill_9_loses_at_most_a_flush_and_the_restart_continues_the_dataset(
    mosquitto_port: int, mqtt_url: str, procs: Processes, tmp_path: Path
) -> None:
    name, sid = unique("reck"), unique("K").upper()
    out, topic, rate, flush_s = tmp_path / "data", f"quotes/{sid}", 200, 0.2
    with (
        recorder(mosquitto_port, f"status/recorder/{name}") as rec,
        recorder(mosquitto_port, topic) as reference,
    ):
        # A first run rolls files and stops cleanly; the second, which never rolls (so it
        # surely has a journal), is killed; the third recovers its journal and goes on.
        flags = ("--flush-s", str(flush_s))
        first = start_recorder(procs, mqtt_url, out, name, [topic], *flags, "--roll-s", "0.5")
        wait_status(rec, name, "the recorder subscribed", quotes=0)
        feed = procs.tickbus(
            "feed", "synthetic", "--mqtt", mqtt_url, "--symbols", sid, "--rate", str(rate),
            "--name", unique("feedk"), name="feed",
        )  # fmt: skip
        wait_status(rec, name, "rolled files", files=lambda n: n >= 2)
        first.signal(signal.SIGTERM)
        assert exits_within(first, EXIT_WITHIN_S) == 0

        doomed = start_recorder(procs, mqtt_url, out, name, [topic], *flags)
        started = wait_status(rec, name, "the second run", pid=doomed.popen.pid, quotes=0)["ts"]
        wait_status(rec, name, "a journal", pid=doomed.popen.pid, journal_rows=lambda n: n >= rate)
        killed_at = time.time()
        doomed.signal(signal.SIGKILL)
        doomed.wait(timeout=5)

        finished = data_files(out)
        before = digests(finished)
        for file in finished:
            assert pq.read_table(file).num_rows > 0  # every finished file is whole
        journal = read_journal(journal_path(out, name))
        assert journal.table.num_rows >= rate and not journal.torn

        second = start_recorder(procs, mqtt_url, out, name, [topic], *flags, "--roll-s", "0.5")
        online = wait_status(
            rec, name, "the restarted recorder", pid=second.popen.pid, recovered_rows=bool
        )
        restarted_at = online["ts"]
        wait_until(
            lambda: reference_count(reference, after=restarted_at + 0.5) >= rate,
            timeout=20,
            what="a second of quotes after the restart",
        )
        feed.signal(signal.SIGTERM)
        assert exits_within(feed, EXIT_WITHIN_S) == 0
        sent = len(reference.on(topic))
        wait_status(
            rec,
            name,
            "the last quotes",
            pid=second.popen.pid,
            quotes=lambda n: n >= reference_count(reference, after=restarted_at + 0.5),
        )
        second.signal(signal.SIGTERM)
        assert exits_within(second, EXIT_WITHIN_S) == 0
        final = wait_status(rec, name, "the final status", pid=second.popen.pid, state="offline")

    assert final["recovered_rows"] == journal.table.num_rows
    assert digests(finished) == before  # nothing finished was rewritten
    assert set(data_files(out)) > set(finished)  # the restart added files to the same dataset
    assert not journal_path(out, name).exists()
    recorded = {ts for (_, ts) in rows_by_key(read_dataset(out))}
    assert set(journal.table.column("ts").cast(pa.int64()).to_pylist()) <= recorded
    seen = reference_ts(reference)
    assert len(seen) == sent
    lost_to_crash = [ts for ts in seen if started < ts < killed_at and ns(ts) not in recorded]
    assert len(lost_to_crash) <= rate * (flush_s + 0.3), len(lost_to_crash)
    after_restart = [ts for ts in seen if ts > restarted_at + 0.5]
    assert after_restart and all(ns(ts) in recorded for ts in after_restart)


def reference_ts(reference: MqttRecorder) -> list[float]:
    return [json.loads(p)["ts"] for _, p in reference.messages]


def reference_count(reference: MqttRecorder, *, after: float) -> int:
    return sum(1 for ts in reference_ts(reference) if ts > after)


def ns(seconds: float) -> int:
    return ns_from_seconds(seconds)


@pytest.mark.parametrize(
    "roll", [("--roll-mb", "0.004"), ("--roll-s", "0.3")], ids=["size", "time"]
)
def test_a_rolling_recorder_writes_several_files_that_do_not_overlap(
    mosquitto_port: int, mqtt_url: str, procs: Processes, tmp_path: Path, roll: tuple[str, str]
) -> None:
    name, sid = unique("recr"), unique("R").upper()
    out, topic, count = tmp_path / "data", f"quotes/{sid}", 400
    with recorder(mosquitto_port, f"status/recorder/{name}") as rec:
        proc = start_recorder(procs, mqtt_url, out, name, [topic], "--flush-s", "0.1", *roll)
        wait_status(rec, name, "the recorder subscribed", quotes=0)
        feed = procs.tickbus(
            "feed", "synthetic", "--mqtt", mqtt_url, "--symbols", sid, "--rate", "200",
            "--count", str(count), "--name", unique("feedr"), name="feed",
        )  # fmt: skip
        assert feed.wait(timeout=30) == 0
        wait_status(rec, name, "every quote", quotes=count)
        proc.signal(signal.SIGTERM)
        assert exits_within(proc, EXIT_WITHIN_S) == 0
        final = wait_status(rec, name, "the final status", state="offline")
    files = data_files(out)
    assert len(files) >= 3 and final["files"] == len(files)
    seen: set[int] = set()
    for file in files:
        ts = set(pq.read_table(file).column("ts").cast(pa.int64()).to_pylist())
        assert ts and not ts & seen, f"{file} overlaps an earlier file"
        seen |= ts
    assert len(seen) == count == final["rows_written"]


def test_a_ring_is_recorded_with_its_topics_and_metrics(
    mosquitto_port: int, mqtt_url: str, procs: Processes, tmp_path: Path
) -> None:
    name, sid, other = unique("recg"), unique("G").upper(), unique("O").upper()
    ring, out, port = tmp_path / "ticks.ring", tmp_path / "data", free_port()
    feed = procs.tickbus(
        "feed", "synthetic", "--no-mqtt", "--ring", str(ring), "--symbols", f"{sid},{other}",
        "--rate", "400", "--name", unique("feedg"), name="feed",
    )  # fmt: skip
    wait_until(lambda: ring.exists(), timeout=15, what="the feed's ring")
    with recorder(mosquitto_port, f"status/recorder/{name}") as rec:
        flags = ("--source", f"ring://{ring}", "--flush-s", "0.1", "--metrics-port", str(port))
        proc = start_recorder(procs, mqtt_url, out, name, [f"quotes/{sid}"], *flags)
        wait_status(rec, name, "quotes from the ring", quotes=lambda n: n >= 100)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            scraped = reply.read()
        assert f'tickbus_recorder_quotes_received_total{{recorder="{name}"}}' in scraped.decode()
        feed.signal(signal.SIGTERM)
        assert exits_within(feed, EXIT_WITHIN_S) == 0
        proc.signal(signal.SIGTERM)
        assert exits_within(proc, EXIT_WITHIN_S) == 0
        final = wait_status(rec, name, "the final status", state="offline")
    assert final["source"] == f"ring://{ring}" and final["ring_lost"] == 0
    rows = rows_by_key(read_dataset(out))
    assert len(rows) == final["quotes"] == final["rows_written"] >= 100
    assert {(r["sid"], r["topic"]) for r in rows.values()} == {(sid, f"quotes/{sid}")}


def test_a_failing_journal_write_degrades_the_recorder_and_loses_nothing(
    mosquitto_port: int, mqtt_url: str, procs: Processes, tmp_path: Path
) -> None:
    name, sid = unique("recfail"), unique("RF").upper()
    out = tmp_path / "data"
    quotes = [{"sid": sid, "price": 10.0 + i, "ts": 1764770000.0 + i} for i in range(20)]
    with recorder(mosquitto_port, f"status/recorder/{name}") as rec:
        proc = start_recorder(procs, mqtt_url, out, name, [f"quotes/{sid}"], "--flush-s", "0.2")
        wait_status(rec, name, "the recorder subscribed", quotes=0)
        blocker = journal_path(out, name)
        blocker.mkdir()  # a directory where the journal file must go: every append fails
        rec.publish(f"quotes/{sid}", encode_quotes_msgpack(quotes[:10]))  # type: ignore[arg-type]
        wait_status(
            rec, name, "degraded by the failed writes", state="degraded", pending=0,
            write_errors=lambda n: n >= 1,
        )  # fmt: skip
        blocker.rmdir()
        rec.publish(f"quotes/{sid}", encode_quotes_msgpack(quotes[10:]))  # type: ignore[arg-type]
        wait_status(
            rec, name, "online again, every row journalled", state="online", journal_rows=20
        )
        proc.signal(signal.SIGTERM)
        assert exits_within(proc, EXIT_WITHIN_S) == 0
        final = wait_status(rec, name, "the final status", state="offline")
    assert final["rows_written"] == 20 and final["write_errors"] >= 1
    table = read_dataset(out).sort_by("ts")
    assert table.column("price").to_pylist() == [q["price"] for q in quotes]
