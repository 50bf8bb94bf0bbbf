"""Feeds: the random walk as plain Python, and both feed commands against a real broker."""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path

import msgpack
import pytest

from broker import decode_quotes
from feeds import RandomWalk, read_csv_quotes
from tests.support import Processes, recorder, unique, wait_until
from tickbus.errors import ConfigError


def test_random_walk_prices_are_positive_with_bid_below_ask() -> None:
    quotes = list(itertools.islice(RandomWalk(["A", "B", "C"], seed=1), 30_000))
    assert [q["sid"] for q in quotes[:6]] == ["A", "B", "C", "A", "B", "C"]
    assert all(0 < q["bid"] < q["price"] < q["ask"] for q in quotes)
    assert all(q["size"] >= 1 for q in quotes)
    moves = {q["price"] for q in quotes if q["sid"] == "A"}
    assert len(moves) == 10_000, "every step moves the price"


def test_random_walk_is_reproducible_with_a_seed() -> None:
    first = list(itertools.islice(RandomWalk(["A"], seed=7), 100))
    again = list(itertools.islice(RandomWalk(["A"], seed=7), 100))
    other = list(itertools.islice(RandomWalk(["A"], seed=8), 100))
    assert first == again != other


def test_csv_rows_become_quotes_or_reasons(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        "ts,sid,price,bid,ask\n"
        "1.0,goog,10.5,10.4,10.6\n"
        "\n"
        "2.0,GOOG,-1,,\n"
        "3.0,GOOG,abc,,\n"
        "4.0,GOOG\n"
        "5.0,AAPL,7,,\n"
    )
    rows = list(read_csv_quotes(path))
    assert [r.line for r in rows] == [2, 4, 5, 6, 7]
    assert rows[0].quote == {"sid": "GOOG", "price": 10.5, "ts": 1.0, "bid": 10.4, "ask": 10.6}
    assert (
        rows[1].reason is not None
        and rows[1].reason.startswith("line 4: ")
        and "price" in rows[1].reason
    )
    assert rows[2].reason == "line 5: price 'abc' is not a number"
    assert rows[3].reason == "line 6: 2 cells, header has 5"
    assert rows[4].quote == {"sid": "AAPL", "price": 7.0, "ts": 5.0}


@pytest.mark.parametrize(
    ("header", "message"),
    [("ts,price\n", "missing: ['sid']"), ("ts,sid,price,venue\n", "unknown: ['venue']")],
)
def test_csv_header_is_checked_before_anything_is_sent(
    tmp_path: Path, header: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(header)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_csv_quotes(path)


@pytest.mark.parametrize("wire_format", ["json", "msgpack"])
def test_synthetic_feed_publishes_count_quotes_and_announces_itself(
    procs: Processes, mqtt_url: str, mosquitto_port: int, wire_format: str
) -> None:
    sid, name = unique("F").upper(), unique("feed")
    with recorder(mosquitto_port, f"quotes/{sid}", f"status/feed/{name}") as rec:
        feed = procs.tickbus(
            "feed",
            "synthetic",
            "--mqtt",
            mqtt_url,
            "--symbols",
            sid,
            "--rate",
            "0",
            "--count",
            "500",
            "--seed",
            "1",
            "--name",
            name,
            "--format",
            wire_format,
            name="feed",
        )
        assert feed.wait(timeout=30) == 0
        wait_until(lambda: len(rec.on(f"quotes/{sid}")) == 500, timeout=10, what="500 quotes")
        statuses = wait_until(
            lambda: (
                [s["state"] for s in rec.json_on(f"status/feed/{name}")][-1:] == ["offline"]
                and rec.json_on(f"status/feed/{name}")
            ),
            timeout=5,
            what="offline status",
        )
    payloads = rec.on(f"quotes/{sid}")
    if wire_format == "msgpack":
        assert isinstance(msgpack.unpackb(payloads[0]), list)
    else:
        assert json.loads(payloads[0])["sid"] == sid
    quotes = [q for p in payloads for q in decode_quotes(p)]
    assert all(q["sid"] == sid and q["bid"] < q["ask"] for q in quotes)
    assert statuses[0]["state"] == "online"
    assert statuses[-1]["published"] == 500


def test_synthetic_feed_keeps_its_rate(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    sid = unique("R").upper()
    with recorder(mosquitto_port, f"quotes/{sid}") as rec:
        feed = procs.tickbus(
            "feed",
            "synthetic",
            "--mqtt",
            mqtt_url,
            "--symbols",
            sid,
            "--rate",
            "100",
            "--count",
            "150",
            name="feed",
        )
        assert feed.wait(timeout=30) == 0
        wait_until(lambda: len(rec.on(f"quotes/{sid}")) == 150, timeout=10, what="150 quotes")
    stamps = [decode_quotes(p)[0]["ts"] for p in rec.on(f"quotes/{sid}")]
    assert 1.35 < stamps[-1] - stamps[0] < 1.8, "150 quotes at 100/s take about 1.5 s"


def test_csv_feed_replays_good_rows_and_dead_letters_bad_ones(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path
) -> None:
    sid = unique("C").upper()
    path = tmp_path / "day.csv"
    path.write_text(
        "ts,sid,price,size\n"
        + "".join(f"{1000 + i},{sid},{10 + i},5\n" for i in range(20))
        + f"1020,{sid},NaN,5\n1021,{sid},0,5\n"
    )
    with recorder(mosquitto_port, f"quotes/{sid}", "deadletter/feed") as rec:
        feed = procs.tickbus(
            "feed", "csv", str(path), "--mqtt", mqtt_url, "--speed", "0", name="csv"
        )
        assert feed.wait(timeout=30) == 0
        wait_until(lambda: len(rec.on(f"quotes/{sid}")) == 20, timeout=10, what="20 quotes")
        letters = wait_until(
            lambda: [d for d in rec.json_on("deadletter/feed") if sid in d.get("payload", "")],
            timeout=10,
            what="dead letters",
        )
    quotes = [decode_quotes(p)[0] for p in rec.on(f"quotes/{sid}")]
    assert [q["price"] for q in quotes] == [10.0 + i for i in range(20)]
    assert [q["ts"] for q in quotes] == [1000.0 + i for i in range(20)]
    assert sorted(letter["reason"][:8] for letter in letters) == ["line 22:", "line 23:"]
    assert "published 20 quotes, rejected 2 rows" in feed.log()


def test_csv_feed_with_a_bad_header_fails_clearly(
    procs: Processes, mqtt_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("when,symbol,px\n1,A,2\n")
    feed = procs.tickbus("feed", "csv", str(path), "--mqtt", mqtt_url, name="csv")
    assert feed.wait(timeout=30) != 0
    assert "the header must have columns ts,sid,price" in feed.log()
    assert "Traceback" not in feed.log()


def test_feed_stops_cleanly_on_sigterm(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name = unique("feed")
    with recorder(mosquitto_port, f"status/feed/{name}") as rec:
        feed = procs.tickbus(
            "feed",
            "synthetic",
            "--mqtt",
            mqtt_url,
            "--rate",
            "50",
            "--name",
            name,
            "--symbols",
            unique("T").upper(),
            name="feed",
        )
        wait_until(lambda: rec.json_on(f"status/feed/{name}"), timeout=10, what="online")
        feed.signal(signal.SIGTERM)
        assert feed.wait(timeout=5) == 0
        wait_until(
            lambda: rec.json_on(f"status/feed/{name}")[-1]["state"] == "offline",
            timeout=5,
            what="offline",
        )


def test_feed_without_a_broker_fails_clearly(procs: Processes, tmp_path: Path) -> None:
    from tests.support import free_port

    feed = procs.tickbus(
        "feed",
        "synthetic",
        "--mqtt",
        f"mqtt://127.0.0.1:{free_port()}",
        "--count",
        "1",
        name="feed",
        env={},
    )
    assert feed.wait(timeout=30) != 0
    assert "cannot reach the MQTT broker" in feed.log()
