"""The ring wired into the stack: feed --ring, ring relay, bridge --source ring://, ring stat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import (
    REPO_ROOT,
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)


def ring_stat(ring: Path) -> dict:  # type: ignore[type-arg]
    result = subprocess.run(
        [sys.executable, "-m", "tickbus", "ring", "stat", str(ring), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_feed_into_ring_to_bridge_to_algorithm_to_orders(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path
) -> None:
    ring, name, sid = tmp_path / "ticks.ring", unique("ringb"), unique("R").upper()
    feed = procs.tickbus(
        "feed",
        "synthetic",
        "--mqtt",
        mqtt_url,
        "--symbols",
        f"{sid},OTHER",
        "--rate",
        "500",
        "--ring",
        str(ring),
        "--no-mqtt",
        name="feed",
    )
    wait_until(
        lambda: ring.exists() and ring_stat(ring)["written"] > 0,
        timeout=15,
        what="the feed writing the ring",
    )
    rpc = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0", "seed=2")
    with recorder(mosquitto_port, f"orders/{name}", f"status/bridge/{name}") as rec:
        start_bridge(procs, mqtt_url, rpc, name, f"channels=quotes/{sid}", source=f"ring://{ring}")
        wait_online(rec, name)
        orders = wait_until(lambda: rec.json_on(f"orders/{name}"), timeout=15, what="orders")
        status = wait_until(
            lambda: [s for s in rec.json_on(f"status/bridge/{name}") if s.get("forwarded")],
            timeout=10,
            what="a status with counters",
        )[-1]
    assert {o["sid"] for o in orders} == {sid}, "only the symbol the channels ask for"
    assert status["source"] == f"ring://{ring}"
    assert status["ring_lost"] == 0
    assert status["unrouted"] > 0, "OTHER ticks were read and filtered out"
    stat = ring_stat(ring)
    assert stat["writer_alive"] is True and stat["symbols"] == 2
    feed.stop()
    assert ring_stat(ring)["writer_alive"] is False


def test_relay_feeds_two_bridges_with_different_channels(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state
) -> None:  # type: ignore[no-untyped-def]
    ring, root = tmp_path / "relay.ring", unique("relayq")
    relay = procs.tickbus(
        "ring",
        "relay",
        "--mqtt",
        mqtt_url,
        "--topics",
        f"{root}/#",
        "--ring",
        str(ring),
        "--capacity",
        "1024",
        name="relay",
    )
    wait_until(lambda: ring.exists(), timeout=15, what="the relay's ring")
    first, second = unique("left"), unique("right")
    left = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
    right = serve_algorithm(procs, "tests.algos_for_tests:RecordingAlgo")
    with recorder(
        mosquitto_port, f"status/bridge/{first}", f"status/bridge/{second}", "deadletter/relay"
    ) as rec:
        start_bridge(procs, mqtt_url, left, first, "channels=quotes/AAA", source=f"ring://{ring}")
        start_bridge(
            procs,
            mqtt_url,
            right,
            second,
            'channels=["quotes/BBB","quotes/CCC"]',
            source=f"ring://{ring}",
        )
        wait_online(rec, first)
        wait_online(rec, second)
        for i in range(30):
            sid = ("AAA", "BBB", "CCC")[i % 3]
            rec.publish(
                f"{root}/{sid}", json.dumps({"sid": sid, "price": 10.0 + i / 10, "ts": i + 1})
            )
        rec.publish(f"{root}/AAA", b"not a quote")
        wait_until(lambda: len(algo_state(right)["received"]) == 20, timeout=15, what="20 B/C")
        wait_until(lambda: len(algo_state(left)["received"]) == 10, timeout=15, what="10 A")
        letters = wait_until(lambda: rec.json_on("deadletter/relay"), timeout=10, what="letter")
    assert [r[1] for r in algo_state(left)["received"]] == [float(i + 1) for i in range(0, 30, 3)]
    assert {r[0] for r in algo_state(right)["received"]} == {"BBB", "CCC"}
    assert letters[0]["payload"] == "not a quote"
    assert relay.alive()


def test_a_second_writer_on_a_ring_is_refused(procs: Processes, tmp_path: Path) -> None:
    ring = tmp_path / "one.ring"
    first = procs.tickbus(
        "feed", "synthetic", "--ring", str(ring), "--no-mqtt", "--rate", "50", name="first"
    )
    wait_until(
        lambda: ring.exists() and ring_stat(ring)["written"] > 0, timeout=15, what="first writer"
    )
    second = procs.tickbus("feed", "synthetic", "--ring", str(ring), "--no-mqtt", name="second")
    assert second.wait(timeout=30) != 0
    assert f"ring {ring} already has a writer (pid {first.popen.pid})" in second.log()
    assert "Traceback" not in second.log()


def test_bridge_with_a_missing_ring_fails_clearly(
    procs: Processes, mqtt_url: str, tmp_path: Path
) -> None:
    bridge = start_bridge(
        procs,
        mqtt_url,
        "tcp://127.0.0.1:1",
        unique("nor"),
        source=f"ring://{tmp_path / 'absent'}",
    )
    assert bridge.wait(timeout=30) != 0
    assert "no ring at" in bridge.log() and "Traceback" not in bridge.log()
