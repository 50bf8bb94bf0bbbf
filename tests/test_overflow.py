"""Batching and overload: a lone quote goes out at once; a slow algorithm meets each --overflow."""

from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any

import pytest

from bridge import Overflow
from bridge._inbox import Inbox
from broker import Quote, encode_quotes_msgpack
from tests.support import (
    MqttRecorder,
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)


def entry(sid: str, n: int) -> tuple[str, Quote]:
    return f"quotes/{sid}", Quote(sid=sid, price=float(n), ts=float(n))


def prices(inbox: Inbox[Any]) -> list[tuple[str, float]]:
    _commands, entries = inbox.take()
    return [(quote["sid"], quote["price"]) for _topic, quote in entries]


# -- the inbox alone ---------------------------------------------------------------


def test_conflate_keeps_the_newest_quote_of_each_symbol_when_full() -> None:
    inbox: Inbox[Any] = Inbox(capacity=8, overflow=Overflow.CONFLATE)
    inbox.put_entries([entry("A" if n % 3 else "B", n) for n in range(8)])
    assert inbox.conflated == 0, "nothing is conflated while there is room"
    inbox.put_entries([entry("C", 8)])
    assert len(inbox) == 3
    assert inbox.conflated == 6
    assert inbox.dropped == 0
    assert prices(inbox) == [("B", 6.0), ("A", 7.0), ("C", 8.0)]


def test_conflate_with_more_symbols_than_room_drops_the_oldest_and_counts_them() -> None:
    inbox: Inbox[Any] = Inbox(capacity=8, overflow=Overflow.CONFLATE)
    inbox.put_entries([entry(f"S{n}", n) for n in range(9)])
    assert (len(inbox), inbox.conflated, inbox.dropped) == (6, 0, 3)
    assert [sid for sid, _ in prices(inbox)] == [f"S{n}" for n in range(3, 9)]


def test_drop_oldest_keeps_the_newest_quotes() -> None:
    inbox: Inbox[Any] = Inbox(capacity=5, overflow=Overflow.DROP_OLDEST)
    for n in range(12):
        inbox.put_entries([entry("A", n)])
        assert len(inbox) <= 5
    assert (inbox.dropped, inbox.conflated) == (7, 0)
    assert [price for _, price in prices(inbox)] == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_block_waits_for_the_hub_to_take_quotes_and_loses_none() -> None:
    inbox: Inbox[Any] = Inbox(capacity=4, overflow=Overflow.BLOCK)
    inbox.set_draining(True)
    producer = threading.Thread(
        target=lambda: [inbox.put_entries([entry("A", n)]) for n in range(10)]
    )
    producer.start()
    taken: list[tuple[str, float]] = []
    deadline = time.monotonic() + 10
    while len(taken) < 10 and time.monotonic() < deadline:
        assert len(inbox) <= 4
        time.sleep(0.02)  # slower than the producer: it must wait
        taken += prices(inbox)
    producer.join(timeout=5)
    assert [price for _, price in taken] == [float(n) for n in range(10)]
    assert (inbox.dropped, inbox.conflated) == (0, 0)
    assert inbox.blocked_s > 0


def test_block_drops_the_oldest_while_nothing_drains_and_close_releases_a_producer() -> None:
    inbox: Inbox[Any] = Inbox(capacity=2, overflow=Overflow.BLOCK)
    for n in range(5):  # not draining (the algorithm is down): never waits
        inbox.put_entries([entry("A", n)])
    assert (len(inbox), inbox.dropped) == (2, 3)
    inbox.set_draining(True)
    producer = threading.Thread(target=inbox.put_entries, args=([entry("A", 5)],))
    producer.start()
    time.sleep(0.1)
    assert producer.is_alive(), "full and draining: the producer waits"
    inbox.close()
    producer.join(timeout=2)
    assert not producer.is_alive()
    assert inbox.dropped == 4


# -- real processes ----------------------------------------------------------------


def bridge_status(rec: MqttRecorder, name: str) -> list[dict[str, Any]]:
    return rec.json_on(f"status/bridge/{name}")


def test_a_lone_quote_reaches_the_algorithm_within_a_few_milliseconds(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("lone"), unique("L").upper()
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:TimingAlgo")
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        for _ in range(20):
            rec.publish(
                f"quotes/{sid}", json.dumps({"sid": sid, "price": 1.0, "ts": time.time()}), qos=0
            )
            time.sleep(0.05)  # idle in between: every quote is alone
        delays = wait_until(
            lambda: len(d := algo_state(rpc)["delays"]) == 20 and d, timeout=10, what="20 quotes"
        )
    assert statistics.median(delays) < 0.005, f"delays (s): {sorted(delays)}"


SYMBOLS = 5
PER_SYMBOL = 200
MAX_PENDING = 50


@pytest.mark.parametrize("policy", [p.value for p in Overflow])
def test_each_overflow_policy_under_a_slow_algorithm(
    policy: str, procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name = unique(f"slow-{policy}")
    sids = [unique(f"O{n}").upper() for n in range(SYMBOLS)]
    total = SYMBOLS * PER_SYMBOL
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:SlowAlgo", "delay_s=0.02")
        flags = ["--overflow", policy, "--max-pending", str(MAX_PENDING), "--max-batch", "10"]
        flags += ["--max-price-jump-pct", "0"]  # the prices count quotes: 1, 2, 3...
        start_bridge(procs, mqtt_url, rpc, name, "channels=quotes/#", flags=flags)
        wait_online(rec, name)
        for n in range(PER_SYMBOL):  # ~20x faster than the algorithm takes them
            for sid in sids:
                rec.publish(f"quotes/{sid}", json.dumps({"sid": sid, "price": n + 1, "ts": n + 1}))

        def settled() -> dict[str, Any] | None:
            last = bridge_status(rec, name)[-1]
            taken = last["forwarded"] + last["conflated"] + last["dropped"]
            return last if last["pending"] == 0 and taken == total else None

        final = wait_until(settled, timeout=60, what=f"the bridge to account for {total} quotes")
        received = algo_state(rpc)["received"]

    assert final["quotes_in"] == total
    assert final["overflow"] == policy
    assert len(received) == final["forwarded"]
    bound = MAX_PENDING + (1 if policy == "block" else 0)  # block: plus one message
    assert max(s.get("pending", 0) for s in bridge_status(rec, name)) <= bound
    for sid in sids:  # nothing reordered, nothing twice
        ts = [r[1] for r in received if r[0] == sid]
        assert ts == sorted(set(ts)), sid
    newest = {sid: float(PER_SYMBOL) for sid in sids}
    last_seen = {r[0]: r[2] for r in received}
    if policy == "conflate":
        assert final["conflated"] > 0
        assert final["dropped"] == 0
        assert last_seen == newest, "conflate must end with the latest quote of every symbol"
    elif policy == "drop-oldest":
        assert final["dropped"] > 0
        assert final["conflated"] == 0
        assert received[-1][0] == sids[-1] and received[-1][2] == PER_SYMBOL
    else:
        assert (final["conflated"], final["dropped"]) == (0, 0)
        assert len(received) == total
        assert final["blocked_s"] > 0


def test_under_load_calls_start_at_most_every_coalesce_interval(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("coalesce"), unique("C").upper()
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        flags = ["--coalesce-ms", "300", "--max-price-jump-pct", "0"]  # prices count quotes
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}", flags=flags)
        wait_online(rec, name)
        started = time.monotonic()
        for pack in range(15):  # packs of 20: every call carries >= COALESCE_FROM quotes
            quotes = [Quote(sid=sid, price=n, ts=n) for n in range(pack * 20 + 1, pack * 20 + 21)]
            rec.publish(f"quotes/{sid}", encode_quotes_msgpack(quotes))
            time.sleep(0.005)
        published_in = time.monotonic() - started
        wait_until(
            lambda: bridge_status(rec, name)[-1].get("forwarded") == 300,
            timeout=15,
            what="300 quotes forwarded",
        )
        received = algo_state(rpc)["received"]
    assert [r[2] for r in received] == list(range(1, 301))
    batches = bridge_status(rec, name)[-1]["batches"]
    # At most one call per 300 ms (without coalescing: about one per pack).
    assert batches <= 2 + published_in / 0.3, (batches, published_in)
