"""`tickbus feed replay`: a recorded dataset onto a real bus, into a real bridge and algorithm."""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path

import tape
from broker import Quote, decode_quotes
from tests.support import (
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)

DAY1 = 1_796_083_200.0  # 2026-12-01T00:00:00Z


def write(root: Path, quotes: Sequence[Quote], writer: str) -> None:
    table = tape.table_from_quotes(
        quotes,
        arrival_ns=[tape.ns_from_seconds(q["ts"]) for q in quotes],
        topics=[f"quotes/{q['sid']}" for q in quotes],
    )
    tape.write_rows(table, root, writer=writer)


def series(sid: str, first: float, count: int, step: float) -> list[Quote]:
    quotes: list[Quote] = []
    for i in range(count):
        quote: Quote = {"sid": sid, "price": 50.0 + i * 0.01, "ts": first + i * step}
        if i % 2:
            quote.update(bid=quote["price"] - 0.01, ask=quote["price"] + 0.01, size=100.0)
        quotes.append(quote)
    return quotes


def received_quotes(payloads: list[bytes]) -> list[Quote]:
    return [q for payload in payloads for q in decode_quotes(payload)]


def test_replay_at_speed_0_delivers_the_recording_in_order(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, feed_name = unique("replay"), unique("rfeed")
    a, b = unique("RA").upper(), unique("RB").upper()
    root = tmp_path / "tape"
    quotes_a = series(a, DAY1 + 86_000.25, 150, 3.3)  # crosses midnight into 2026-12-02
    quotes_b = series(b, DAY1 + 86_100.5, 100, 4.1)
    write(root, quotes_a[0::2], "one")
    write(root, quotes_a[1::2], "two")  # overlaps the first file row by row
    write(root, quotes_b, "three")
    expected = sorted(
        ([q["sid"], q["ts"], q["price"]] for q in quotes_a + quotes_b), key=lambda r: r[1]
    )
    with recorder(mosquitto_port, f"status/bridge/{name}", f"status/feed/{feed_name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, rpc, name, f'channels=["quotes/{a}", "quotes/{b}"]')
        wait_online(rec, name)
        feed = procs.tickbus(
            "feed",
            "replay",
            str(root),
            "--mqtt",
            mqtt_url,
            "--speed",
            "0",
            "--name",
            feed_name,
            name="replay",
        )
        assert feed.wait(timeout=30) == 0
        received = wait_until(
            lambda: (
                len(algo_state(rpc)["received"]) >= len(expected) and algo_state(rpc)["received"]
            ),
            timeout=15,
            what=f"{len(expected)} quotes at the algorithm",
        )
        statuses = wait_until(
            lambda: (
                [s["state"] for s in rec.json_on(f"status/feed/{feed_name}")][-1:] == ["offline"]
                and rec.json_on(f"status/feed/{feed_name}")
            ),
            timeout=10,
            what="the replay's offline status",
        )
    assert received == expected, "same sid, ts and price, in recorded order"
    assert statuses[0]["state"] == "online" and statuses[-1]["published"] == len(expected)
    assert f"published {len(expected)} quotes" in feed.log()


def test_a_recording_replays_into_a_bridge_as_it_was_recorded(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state
) -> None:  # type: ignore[no-untyped-def]
    """`feed csv` -> `record` -> `feed replay` -> bridge: the algorithm sees the CSV's quotes."""
    a, b = unique("LA").upper(), unique("LB").upper()
    rec_name, bridge_name = unique("lrec"), unique("lbridge")
    csv = tmp_path / "day.csv"
    rows = [(DAY1 + 50_000 + i * 0.37, (a, b)[i % 3 == 0], 20.0 + i / 8) for i in range(120)]
    csv.write_text("ts,sid,price\n" + "".join(f"{ts!r},{sid},{p!r}\n" for ts, sid, p in rows))
    root = tmp_path / "tape"
    with recorder(
        mosquitto_port, f"status/recorder/{rec_name}", f"status/bridge/{bridge_name}"
    ) as rec:
        recording = procs.tickbus(
            "record", "--mqtt", mqtt_url, "--out", str(root), "--name", rec_name,
            "--topics", f"quotes/{a},quotes/{b}", name="lrec",
        )  # fmt: skip
        wait_until(lambda: rec.json_on(f"status/recorder/{rec_name}"), timeout=20, what="recorder")
        feed = procs.tickbus(
            "feed", "csv", str(csv), "--mqtt", mqtt_url, "--speed", "0", name="lcsv"
        )
        assert feed.wait(timeout=30) == 0
        wait_until(
            lambda: rec.json_on(f"status/recorder/{rec_name}")[-1]["quotes"] == len(rows),
            timeout=20,
            what=f"{len(rows)} quotes recorded",
        )
        recording.signal(signal.SIGTERM)
        assert recording.wait(timeout=5) == 0

        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, rpc, bridge_name, f'channels=["quotes/{a}", "quotes/{b}"]')
        wait_online(rec, bridge_name)
        replay = procs.tickbus(
            "feed", "replay", str(root), "--mqtt", mqtt_url, "--speed", "0", name="lreplay"
        )
        assert replay.wait(timeout=30) == 0
        received = wait_until(
            lambda: len(algo_state(rpc)["received"]) >= len(rows) and algo_state(rpc)["received"],
            timeout=15,
            what=f"{len(rows)} quotes at the algorithm",
        )
    assert received == [[sid, ts, price] for ts, sid, price in rows]


def test_replay_follows_the_recorded_pace(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path
) -> None:
    sid = unique("RP").upper()
    quotes = series(sid, DAY1 + 100.0, 41, 0.1)  # 4 s as recorded
    write(tmp_path / "tape", quotes, "pace")
    with recorder(mosquitto_port, f"quotes/{sid}") as rec:
        feed = procs.tickbus(
            "feed", "replay", str(tmp_path / "tape"), "--mqtt", mqtt_url, "--speed", "4", name="rp"
        )
        wait_until(lambda: rec.on(f"quotes/{sid}"), timeout=20, what="the first quote")
        first_seen = time.monotonic()
        wait_until(lambda: len(rec.on(f"quotes/{sid}")) == 41, timeout=20, what="41 quotes")
        took = time.monotonic() - first_seen
        assert feed.wait(timeout=10) == 0
    assert 0.75 < took < 2.5, f"4 s recorded at --speed 4 took {took:.2f} s"
    assert [q["ts"] for q in received_quotes(rec.on(f"quotes/{sid}"))] == [q["ts"] for q in quotes]


def test_replay_selects_symbols_and_a_time_range(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path
) -> None:
    x, y = unique("RX").upper(), unique("RY").upper()
    root = tmp_path / "tape"
    write(root, series(x, DAY1 + 1800, 36, 7200.0), "x")  # every 2 h over 3 days
    write(root, series(y, DAY1 + 900, 36, 7200.0), "y")
    day2 = [
        q for q in series(x, DAY1 + 1800, 36, 7200.0) if DAY1 + 86_400 <= q["ts"] < DAY1 + 172_800
    ]
    with recorder(mosquitto_port, f"quotes/{x}", f"quotes/{y}") as rec:
        feed = procs.tickbus(
            "feed",
            "replay",
            str(root),
            "--mqtt",
            mqtt_url,
            "--speed",
            "0",
            "--symbols",
            x.lower(),
            "--start",
            "2026-12-02",
            "--end",
            str(DAY1 + 2 * 86_400),
            "--batch",
            "5",
            name="sel",
        )
        assert feed.wait(timeout=30) == 0
        wait_until(
            lambda: len(received_quotes(rec.on(f"quotes/{x}"))) == len(day2),
            timeout=10,
            what=f"{len(day2)} quotes of {x}",
        )
    assert received_quotes(rec.on(f"quotes/{x}")) == day2, "bid/ask/size only where recorded"
    assert rec.on(f"quotes/{y}") == []
    assert f"published {len(day2)} quotes" in feed.log()


def test_an_empty_selection_fails_before_publishing(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path
) -> None:
    sid, feed_name = unique("RE").upper(), unique("rempty")
    write(tmp_path / "tape", series(sid, DAY1, 10, 1.0), "empty")
    with recorder(mosquitto_port, f"status/feed/{feed_name}") as rec:
        feed = procs.tickbus(
            "feed",
            "replay",
            str(tmp_path / "tape"),
            "--mqtt",
            mqtt_url,
            "--start",
            "2027-01-01",
            "--name",
            feed_name,
            name="empty",
        )
        assert feed.wait(timeout=30) != 0
    log = feed.log()
    assert "no quotes for any symbol from 2027-01-01T00:00:00Z" in log
    assert f"the dataset holds 1 symbols ({sid}) from 2026-12-01T00:00:00Z" in log
    assert "Traceback" not in log
    assert rec.on(f"status/feed/{feed_name}") == [], "it never announced itself"
