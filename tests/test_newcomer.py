"""Algorithms written as users write them, served, bridged and fed by the real CLI.

`tests.newcomer_algos` holds the classes: the issue's ``Counter`` (no
``super()``), a seed-style ``RandomAlgo(Algorithm)``, a plain
``PlainRandomAlgo(object)``, and two that fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import (
    MqttRecorder,
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    start_execution,
    swap,
    unique,
    wait_online,
    wait_until,
)

AlgoState = Callable[[str], dict[str, Any]]
QUOTES = 1_000


def feed(procs: Processes, mqtt_url: str, sid: str, *, count: int, rate: int) -> None:
    """`tickbus feed synthetic` quoting `sid` only, `count` quotes at `rate` per second."""
    name = unique("feed")
    procs.tickbus(
        "feed", "synthetic", "--mqtt", mqtt_url, "--name", name, "--symbols", sid,
        "--rate", str(rate), "--count", str(count), "--seed", "7", name=name,
    )  # fmt: skip


def feed_done(rec: MqttRecorder, count: int) -> bool:
    return any(
        s.get("state") == "offline" and s.get("published") == count
        for s in rec.json_on("status/feed/#")
    )


def bridge_status(rec: MqttRecorder, name: str) -> dict[str, Any]:
    return dict(rec.json_on(f"status/bridge/{name}")[-1])


@pytest.mark.parametrize(
    ("spec", "orders"),
    [
        ("tests.newcomer_algos:Counter", False),
        ("tests.newcomer_algos:RandomAlgo", True),
        ("tests.newcomer_algos:PlainRandomAlgo", True),
    ],
)
def test_a_newcomers_algorithm_gets_every_quote_once_and_its_orders_fill(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState,
    spec: str, orders: bool,
) -> None:  # fmt: skip
    name, sid = unique("new"), unique("N").upper()
    start_execution(procs, mqtt_url)
    rpc = serve_algorithm(procs, spec, "threshold=0.9", "starting_cash=1000000")
    filters = (f"status/bridge/{name}", "status/feed/#", f"orders/{name}", f"fills/{name}")
    with recorder(mosquitto_port, *filters) as rec:
        # Its channels are quotes/# (or quotes): the bridge narrows them to this test's symbol.
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        feed(procs, mqtt_url, sid, count=QUOTES, rate=1_000)
        wait_until(lambda: feed_done(rec, QUOTES), timeout=30, what="the feed done")
        state = wait_until(
            lambda: (
                (s := algo_state(rpc))["quotes"] == QUOTES
                and s["portfolio"]["open_orders"] == 0
                and s
            ),
            timeout=30,
            what=f"{QUOTES} quotes handled and every order filled",
        )
        status = wait_until(
            lambda: (
                (s := bridge_status(rec, name))["fills"] == state["orders"]
                and s["forwarded"] == QUOTES
                and s
            ),
            timeout=10,
            what="the bridge's status counting every quote and fill",
        )
    assert state["initialized"] and state["errors"] == 0
    assert state["algorithm"] == spec
    assert status["algo_errors"] == 0
    if "ts" in state:
        assert len(set(state["ts"])) == QUOTES == len(state["ts"]), "each quote exactly once"
    if "seen" in state:
        assert state["seen"] == QUOTES
    if orders:
        assert state["orders"] > 0
        assert state["fills"] == state["orders"] == len(rec.on(f"fills/{name}"))
        positions = state["portfolio"]["positions"][sid]
        assert positions["qty"] == sum(f["qty"] for f in rec.json_on(f"fills/{name}"))
    else:
        assert state["orders"] == 0 and not rec.on(f"orders/{name}")


def test_a_swap_between_two_seed_style_algorithms_delivers_each_quote_once(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState
) -> None:
    name, sid = unique("seedswap"), unique("Z").upper()
    start_execution(procs, mqtt_url)
    old = serve_algorithm(procs, "tests.newcomer_algos:RandomAlgo", "threshold=0.95")
    new = serve_algorithm(procs, "tests.newcomer_algos:RandomAlgo", "threshold=0.95")
    with recorder(mosquitto_port, f"status/bridge/{name}", "status/feed/#") as rec:
        start_bridge(procs, mqtt_url, old, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        feed(procs, mqtt_url, sid, count=600, rate=200)
        wait_until(lambda: algo_state(old)["ts"], timeout=10, what="quotes at the old algorithm")
        swapped = swap(mqtt_url, name, new)
        assert swapped.returncode == 0, swapped.stderr
        wait_until(lambda: feed_done(rec, 600), timeout=30, what="the feed done")
        got = lambda: algo_state(old)["ts"] + algo_state(new).get("ts", [])  # noqa: E731
        wait_until(lambda: len(got()) >= 600, timeout=15, what="600 quotes delivered")
    old_ts, new_ts = algo_state(old)["ts"], algo_state(new)["ts"]
    assert old_ts and new_ts, "the swap happened while quotes were flowing"
    assert len(old_ts) + len(new_ts) == 600
    assert old_ts + new_ts == sorted(set(old_ts + new_ts)), "each quote once, in order"


def test_an_event_that_raises_on_every_third_quote_never_stops_the_bridge(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState
) -> None:
    name, sid = unique("third"), unique("T").upper()
    rpc = serve_algorithm(procs, "tests.newcomer_algos:ThirdQuoteFails")
    with recorder(mosquitto_port, f"status/bridge/{name}", "status/feed/#") as rec:
        bridge = start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        feed(procs, mqtt_url, sid, count=300, rate=300)
        wait_until(lambda: feed_done(rec, 300), timeout=30, what="the feed done")
        state = wait_until(
            lambda: (s := algo_state(rpc))["quotes"] == 300 and s, timeout=15, what="300 quotes"
        )
    assert state["errors"] == 100
    assert state["last_error"] == "ValueError on " + sid + ": quote 300 is cursed"
    assert procs.logs().count("event() failed") == 1, "one line, not one per quote"
    assert "Traceback" not in bridge.log()


def test_an_algorithm_whose_events_always_raises_gets_its_batches_dead_lettered(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, sid = unique("raises"), unique("R").upper()
    rpc = serve_algorithm(procs, "tests.newcomer_algos:EventsAlwaysRaises")
    filters = (f"status/bridge/{name}", "status/feed/#", "deadletter/bridge")
    with recorder(mosquitto_port, *filters) as rec:
        bridge = start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        feed(procs, mqtt_url, sid, count=200, rate=200)
        wait_until(lambda: feed_done(rec, 200), timeout=30, what="the feed done")
        status = wait_until(
            lambda: (s := bridge_status(rec, name))["quotes_failed"] == 200 and s,
            timeout=15,
            what="every quote dead-lettered",
        )
        letters = [d for d in rec.json_on("deadletter/bridge") if d["by"] == name]
    assert status["state"] == "online", "a failing algorithm never wedges its bridge"
    assert status["algo_errors"] == len(letters) >= 1
    assert "RuntimeError: cannot take" in status["last_algo_error"]
    assert all("the algorithm failed on this batch" in d["reason"] for d in letters)
    dead = [q for d in letters for q in json.loads(d["payload"])]
    assert len(dead) == 200 and {q["sid"] for q in dead} == {sid}
    log = bridge.log()
    assert log.count("the algorithm failed on a batch") <= 2, "one line, not one per batch"
    assert "Traceback" not in log and "gevent_zeromq BUG" not in log


def test_a_server_that_forgets_its_initialize_is_initialised_once_more_then_dead_lettered(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState
) -> None:
    """A server that answers NotInitialized for good: the bridge goes on, it does not loop."""
    name, sid = unique("forget"), unique("F").upper()
    rpc = serve_algorithm(procs, "tests.algos_for_tests:ForgetfulAlgo")
    with recorder(mosquitto_port, f"status/bridge/{name}", "deadletter/bridge") as rec:
        bridge = start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        for n in range(1, 4):
            rec.publish(f"quotes/{sid}", json.dumps({"sid": sid, "price": 10.0, "ts": n}))
            wait_until(
                lambda n=n: bridge_status(rec, name)["quotes_failed"] == n,  # type: ignore[misc]
                timeout=10,
                what=f"quote {n} dead-lettered",
            )
        status = bridge_status(rec, name)
    assert "ForgetfulAlgo forgot its initialize" in status["last_algo_error"]
    assert status["algo_errors"] == 3 and status["state"] == "online"
    assert bridge.log().count("initialising it again") == 1, "once, not once per quote"
