"""Packed quotes: many per MQTT message from feeds, decoded by bridges alongside single ones."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack

from broker import Quote, encode_quotes_msgpack
from feeds._packer import Packer
from tests.support import (
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)


def quote(sid: str, ts: float) -> Quote:
    return Quote(sid=sid, price=1.0, ts=ts)


def test_packer_releases_full_packs_per_symbol_in_order() -> None:
    packer = Packer(size=3, max_wait=None)
    released = []
    for i in range(7):
        released += packer.add(quote("A" if i % 2 else "B", float(i)))
    assert [[q["ts"] for q in pack] for pack in released] == [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]
    assert [[q["ts"] for q in pack] for pack in packer.drain()] == [[6.0]]
    assert packer.drain() == []


def test_packer_releases_a_pack_that_waited_too_long() -> None:
    now = [0.0]
    packer = Packer(size=100, max_wait=0.01, clock=lambda: now[0])
    assert packer.add(quote("A", 1.0)) == []
    now[0] = 0.005
    assert packer.add(quote("B", 2.0)) == []
    now[0] = 0.011
    assert [[q["sid"] for q in p] for p in packer.due()] == [["A"]]
    now[0] = 0.02
    assert [[q["sid"] for q in p] for p in packer.add(quote("B", 3.0))] == [["B", "B"]]


def test_packed_and_single_messages_mixed_on_one_topic_arrive_in_order(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("mix"), unique("M").upper()
    topic = f"quotes/{sid}"
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, rpc, name, f"channels={topic}")
        wait_online(rec, name)
        ts = 1
        for round_ in range(20):
            if round_ % 2:
                rec.publish(topic, json.dumps({"sid": sid, "price": 1.0, "ts": ts}))
                ts += 1
            else:
                pack = [quote(sid, float(t)) for t in range(ts, ts + 5)]
                rec.publish(topic, encode_quotes_msgpack(pack))
                ts += 5
        received = wait_until(
            lambda: len(algo_state(rpc)["received"]) >= ts - 1 and algo_state(rpc)["received"],
            timeout=15,
            what=f"{ts - 1} quotes",
        )
    assert [r[1] for r in received] == [float(t) for t in range(1, ts)]


def test_csv_feed_with_batch_packs_quotes_per_symbol(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path
) -> None:
    a, b = unique("PA").upper(), unique("PB").upper()
    path = tmp_path / "q.csv"
    path.write_text(
        "ts,sid,price\n" + "".join(f"{1 + i},{(a, b)[i % 2]},{10 + i}\n" for i in range(50))
    )
    with recorder(mosquitto_port, f"quotes/{a}", f"quotes/{b}") as rec:
        feed = procs.tickbus(
            "feed",
            "csv",
            str(path),
            "--mqtt",
            mqtt_url,
            "--speed",
            "0",
            "--batch",
            "7",
            name="feed",
        )
        assert feed.wait(timeout=30) == 0
        wait_until(
            lambda: sum(len(msgpack.unpackb(p)) for p in rec.on("quotes/+")) == 50,
            timeout=10,
            what="50 packed quotes",
        )
    for sid, first in ((a, 0), (b, 1)):
        messages = [msgpack.unpackb(p) for p in rec.on(f"quotes/{sid}")]
        assert [len(m) for m in messages] == [7, 7, 7, 4]
        assert [q["ts"] for m in messages for q in m] == [1.0 + i for i in range(first, 50, 2)]
    assert "published 50 quotes" in feed.log()
