"""The whole path, real processes: feed -> mosquitto -> bridge -> zerorpc algorithm -> orders."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from broker import decode_order
from tests.support import (
    Processes,
    free_port,
    recorder,
    serve_algorithm,
    start_bridge,
    swap,
    unique,
    wait_online,
    wait_until,
)


def test_feed_to_orders(procs: Processes, mqtt_url: str, mosquitto_port: int) -> None:
    name, sid = unique("e2e"), unique("S").upper()
    with recorder(mosquitto_port, f"orders/{name}", f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0", "seed=1")
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        procs.tickbus(
            "feed",
            "synthetic",
            "--mqtt",
            mqtt_url,
            "--symbols",
            sid,
            "--rate",
            "200",
            "--count",
            "50",
            "--seed",
            "3",
            name="feed",
        )
        orders = wait_until(lambda: rec.json_on(f"orders/{name}"), timeout=15, what="orders")
    order = orders[0]
    assert order["algo"] == name
    assert order["sid"] == sid
    assert order["side"] == "buy"
    assert order["qty"] > 0 and order["type"] == "market"
    assert decode_order(json.dumps(order).encode()) == order, "valid on the bus's order schema"


def test_mosquitto_pub_reaches_random_algo(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    """A person's path: mosquitto_pub -t quotes -m '{"goog": 3.45}' makes RandomAlgo buy GOOG."""
    name = unique("person")
    with recorder(mosquitto_port, f"orders/{name}", f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0")
        start_bridge(procs, mqtt_url, rpc, name)
        wait_online(rec, name)
        subprocess.run(
            ["mosquitto_pub", "-p", str(mosquitto_port), "-t", "quotes", "-m", '{"goog": 3.45}'],
            check=True,
            timeout=10,
        )
        orders = wait_until(lambda: rec.json_on(f"orders/{name}"), timeout=10, what="an order")
    assert [(o["sid"], o["side"], o["type"]) for o in orders] == [("GOOG", "buy", "market")]
    assert orders[0]["qty"] > 0


def test_bad_payloads_are_dead_lettered_and_good_ones_delivered(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("bad"), unique("B").upper()
    topic = f"quotes/{sid}"
    bad = [
        b"not json",
        b'{"price": 3}',
        b'{"sid": "X", "price": -1}',
        b"[]",
        b'{"sid": "X", "price": NaN}',
        b"\xff\xfe",
        b'{"' + sid.encode() + b'": "abc"}',
    ]
    with recorder(mosquitto_port, "deadletter/bridge", f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, rpc, name, f'channels=["{topic}"]')
        wait_online(rec, name)
        for i in range(50):
            rec.publish(topic, json.dumps({"sid": sid, "price": 100.0 + i / 10, "ts": i + 1}))
            rec.publish(topic, bad[i % len(bad)])
        letters = wait_until(
            lambda: (
                [d for d in rec.json_on("deadletter/bridge") if d["topic"] == topic][-50:]
                if len([d for d in rec.json_on("deadletter/bridge") if d["topic"] == topic]) >= 50
                else None
            ),
            timeout=15,
            what="50 dead letters",
        )
        received = wait_until(
            lambda: len(algo_state(rpc)["received"]) >= 50 and algo_state(rpc)["received"],
            timeout=15,
            what="50 good quotes delivered",
        )
    assert [r[1] for r in received] == [float(i + 1) for i in range(50)]
    assert all(letter["reason"] for letter in letters)
    assert {letter.get("payload", letter.get("payload_b64")) for letter in letters} >= {"not json"}


def test_swap_while_feed_runs_delivers_each_quote_once(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("swap"), unique("W").upper()
    csv = tmp_path / "ticks.csv"
    count = 400
    csv.write_text(
        "ts,sid,price\n" + "".join(f"{1 + i * 0.005},{sid},{100 + i}\n" for i in range(count))
    )
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        old = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        new = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, old, name, f"channels=quotes/{sid}")
        wait_online(rec, name)
        feed = procs.tickbus(
            "feed", "csv", str(csv), "--mqtt", mqtt_url, name="feed"
        )  # 2 s at 200/s
        wait_until(
            lambda: algo_state(old)["received"], timeout=10, what="first quotes at the old algo"
        )
        swapped = swap(mqtt_url, name, new)
        assert swapped.returncode == 0, swapped.stderr
        assert feed.wait(timeout=20) == 0
        got = lambda: algo_state(old)["received"] + algo_state(new)["received"]  # noqa: E731
        wait_until(lambda: len(got()) >= count, timeout=15, what=f"{count} quotes delivered")
    old_ts = [r[1] for r in algo_state(old)["received"]]
    new_ts = [r[1] for r in algo_state(new)["received"]]
    assert old_ts and new_ts, "the swap happened while quotes were flowing"
    assert old_ts + new_ts == [1 + i * 0.005 for i in range(count)]
    finalized = json.loads(swapped.stdout[swapped.stdout.index("{") :])["finalize"]
    assert finalized["quotes"] == len(old_ts)


def test_algorithm_killed_and_restarted(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("kill"), unique("K").upper()
    topic = f"quotes/{sid}"
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    spec = "tests.algos_for_tests:RecordingAlgo"
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        server = procs.tickbus("algo", "serve", spec, "--addr", addr, name="algo1")
        wait_until(lambda: "serving" in server.log(), timeout=15, what="server")
        bridge_proc = procs.tickbus(
            "bridge",
            "--mqtt",
            mqtt_url,
            "--rpc",
            addr,
            "--name",
            name,
            "--param",
            f"channels={topic}",
            name="bridge",
        )
        wait_online(rec, name)
        rec.publish(topic, json.dumps({"sid": sid, "price": 1.0, "ts": 1}))
        wait_until(lambda: algo_state(addr)["received"], timeout=10, what="first quote")
        wait_until(  # the bridge has the answer too: else it rightly sends quote 1 again
            lambda: any(s.get("forwarded") for s in rec.json_on(f"status/bridge/{name}")),
            timeout=10,
            what="the bridge counts the first quote delivered",
        )
        server.signal(signal.SIGKILL)
        server.wait(timeout=5)
        for i in range(2, 12):
            rec.publish(topic, json.dumps({"sid": sid, "price": 1.0, "ts": i}))
        wait_until(
            lambda: any(s["state"] == "degraded" for s in rec.json_on(f"status/bridge/{name}")),
            timeout=15,
            what="bridge reports degraded",
        )
        assert bridge_proc.alive()
        restarted = procs.tickbus("algo", "serve", spec, "--addr", addr, name="algo2")
        wait_until(lambda: "serving" in restarted.log(), timeout=15, what="restarted server")
        wait_until(
            lambda: any(
                s["state"] == "online" and s.get("reconnects")
                for s in rec.json_on(f"status/bridge/{name}")
            ),
            timeout=20,
            what="bridge reconnected and re-initialised the server",
        )
        received = wait_until(
            lambda: len(algo_state(addr)["received"]) >= 10 and algo_state(addr)["received"],
            timeout=20,
            what="quotes kept during the outage delivered",
        )
        rec.publish(topic, json.dumps({"sid": sid, "price": 1.0, "ts": 99}))
        wait_until(lambda: algo_state(addr)["received"][-1][1] == 99, timeout=10, what="new quotes")
    assert [r[1] for r in received][:10] == [float(i) for i in range(2, 12)]
    assert bridge_proc.alive()


def test_bridge_sigterm_publishes_offline_and_exits_0(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name = unique("term")
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        proc = procs.tickbus("bridge", "--mqtt", mqtt_url, "--rpc", rpc, "--name", name, name="b")
        wait_online(rec, name)
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        wait_until(
            lambda: rec.json_on(f"status/bridge/{name}")[-1]["state"] == "offline",
            timeout=5,
            what="offline status",
        )


def test_failed_swap_keeps_the_old_algorithm_and_bad_commands_are_dead_lettered(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("noswap"), unique("N").upper()
    topic = f"quotes/{sid}"
    with recorder(mosquitto_port, f"status/bridge/{name}", "deadletter/bridge") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, rpc, name, f"channels={topic}")
        wait_online(rec, name)
        dead = f"tcp://127.0.0.1:{free_port()}"
        swapped = swap(mqtt_url, name, dead)
        rec.publish(f"control/bridge/{name}", b'{"rpc": 42}')
        rec.publish(topic, json.dumps({"sid": sid, "price": 5.0, "ts": 7}))
        received = wait_until(lambda: algo_state(rpc)["received"], timeout=10, what="a quote")
        letters = wait_until(
            lambda: [
                d
                for d in rec.json_on("deadletter/bridge")
                if d["topic"].startswith("control/") and name in d["topic"]
            ],
            timeout=10,
            what="the bad command dead-lettered",
        )
    assert swapped.returncode != 0
    assert "swap failed, the bridge kept its algorithm" in swapped.stderr
    assert received == [[sid, 7.0, 5.0]]
    assert 'control command needs "rpc"' in letters[0]["reason"]
    assert rec.json_on(f"status/bridge/{name}")[-1]["rpc"] == rpc


def test_overlapping_channels_deliver_each_quote_once(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid, root = unique("overlap"), unique("O").upper(), unique("root")
    channels = json.dumps([f"{root}/+", f"+/{sid}", f"{root}/{sid}"])
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, rpc, name, f"channels={channels}")
        wait_online(rec, name)
        rec.publish(f"{root}/{sid}", json.dumps({"sid": sid, "price": 1.0, "ts": 1}))
        rec.publish(f"{unique('other')}/X", json.dumps({"sid": "X", "price": 1.0, "ts": 2}))
        rec.publish(f"{root}/Y", json.dumps({"sid": "Y", "price": 1.0, "ts": 3}))
        received = wait_until(
            lambda: len(algo_state(rpc)["received"]) >= 2 and algo_state(rpc)["received"],
            timeout=10,
            what="two quotes",
        )
        rec.publish(f"{root}/Z", json.dumps({"sid": "Z", "price": 1.0, "ts": 4}))
        wait_until(lambda: algo_state(rpc)["received"][-1][0] == "Z", timeout=10, what="Z")
    assert [r[0] for r in algo_state(rpc)["received"]] == [sid, "Y", "Z"]
    assert received[:2] == [[sid, 1.0, 1.0], ["Y", 3.0, 1.0]]


def test_a_server_restarted_at_once_on_the_same_address_is_initialised_again(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    name, sid = unique("quick"), unique("Q").upper()
    topic, spec = f"quotes/{sid}", "tests.algos_for_tests:RecordingAlgo"
    addr = f"tcp://127.0.0.1:{free_port()}"
    with recorder(mosquitto_port, f"status/bridge/{name}") as rec:
        server = procs.tickbus("algo", "serve", spec, "--addr", addr, name="algo1")
        wait_until(lambda: "serving" in server.log(), timeout=15, what="server")
        start_bridge(procs, mqtt_url, addr, name, f"channels={topic}")
        wait_online(rec, name)
        server.signal(signal.SIGKILL)
        server.wait(timeout=5)
        again = procs.tickbus("algo", "serve", spec, "--addr", addr, name="algo2")
        wait_until(lambda: "serving" in again.log(), timeout=15, what="restarted server")
        for i in range(5):  # the bridge has not noticed: its first call finds a fresh server
            rec.publish(topic, json.dumps({"sid": sid, "price": 1.0, "ts": i + 1}))
        received = wait_until(
            lambda: _received_or_none(algo_state, addr, 5), timeout=20, what="5 quotes"
        )
    assert [r[1] for r in received] == [1.0, 2.0, 3.0, 4.0, 5.0]


def _received_or_none(algo_state, addr: str, count: int):  # type: ignore[no-untyped-def]
    received = algo_state(addr).get("received", [])  # none before it is initialised again
    return received if len(received) >= count else None


def test_wide_channels_do_not_feed_the_bridge_its_own_messages(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state
) -> None:  # type: ignore[no-untyped-def]
    """Channels that merge into a wide subscription (here +/#) must not loop dead letters."""
    name, sid = unique("wide"), unique("V").upper()
    with recorder(mosquitto_port, "deadletter/bridge", f"status/bridge/{name}") as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
        start_bridge(procs, mqtt_url, rpc, name, f'channels=["quotes/#", "+/{sid}"]')
        wait_online(rec, name)
        rec.publish(f"quotes/{sid}", b"not a quote")
        rec.publish(f"quotes/{sid}", json.dumps({"sid": sid, "price": 2.0, "ts": 1}))
        wait_until(lambda: algo_state(rpc)["received"], timeout=10, what="the good quote")
        wait_until(
            lambda: any(s.get("ignored") for s in rec.json_on(f"status/bridge/{name}")),
            timeout=10,
            what="status/ messages ignored, not decoded",
        )
        mine = [d for d in rec.json_on("deadletter/bridge") if d["by"] == name]
    assert [d["topic"] for d in mine] == [f"quotes/{sid}"], "exactly one letter, no echo"
