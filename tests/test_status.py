"""`tickbus status`: judging statuses, the table, and the real command against a running stack.

The command reports every component on its broker, and the session's shared
broker keeps the retained statuses of every other test's components, so the
end-to-end test runs a broker of its own (`tickbus broker`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest

from broker import broker_listening
from tests.support import (
    REPO_ROOT,
    Processes,
    free_port,
    recorder,
    serve_algorithm,
    start_bridge,
    start_execution,
    unique,
    wait_online,
    wait_until,
)
from tickbus._status import ComponentStatus, exit_code, judge, render_table

NOW = 1_000_000.0


def payload(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def judged(**payloads: bytes) -> dict[str, ComponentStatus]:
    """Judge payloads given as ``component__name=payload``; keyed by ``component/name``."""
    topics = {f"status/{key.replace('__', '/')}": value for key, value in payloads.items()}
    return {f"{s.component}/{s.name}": s for s in judge(topics, now=NOW, stale_after=5.0)}


def test_each_component_is_judged_by_its_state_and_the_age_of_its_last_status() -> None:
    statuses = judged(
        feed__fresh=payload(state="online", ts=NOW - 1, published=5),
        feed__old=payload(state="online", ts=NOW - 6),
        feed__timeless=payload(state="online"),
        bridge__sick=payload(state="degraded", ts=NOW - 1, reason="algorithm lost"),
        execution__gone=payload(state="offline", ts=NOW - 600),
        relay__garbage=b"not json",
        relay__nostate=payload(ts=NOW),
    )
    assert {key: s.health for key, s in statuses.items()} == {
        "feed/fresh": "online",
        "feed/old": "stale",
        "feed/timeless": "stale",
        "bridge/sick": "degraded",
        "execution/gone": "offline",
        "relay/garbage": "invalid",
        "relay/nostate": "invalid",
    }
    assert statuses["feed/fresh"].age == pytest.approx(1.0)
    assert statuses["feed/timeless"].age is None
    assert statuses["relay/garbage"].status == {"payload": "not json"}


def test_topics_that_are_not_component_statuses_are_ignored() -> None:
    topics = {
        "status/feed": payload(state="online", ts=NOW),
        "status/feed/a/b": payload(state="online", ts=NOW),
        "other/feed/a": payload(state="online", ts=NOW),
    }
    assert judge(topics, now=NOW, stale_after=5.0) == []


def test_exit_code_is_0_when_all_are_online_1_when_any_is_not_2_when_none_reported() -> None:
    online = judged(feed__a=payload(state="online", ts=NOW))
    assert exit_code(online.values()) == 0
    for state, ts in (("online", NOW - 60), ("degraded", NOW), ("offline", NOW)):
        mixed = judged(feed__a=payload(state="online", ts=NOW), feed__b=payload(state=state, ts=ts))
        assert exit_code(mixed.values()) == 1, state
    assert exit_code(judged(feed__a=b"[]").values()) == 1
    assert exit_code([]) == 2


def test_the_table_shows_key_counters_per_kind_reasons_and_a_summary() -> None:
    statuses = judge(
        {
            "status/bridge/b": payload(
                state="degraded",
                ts=NOW - 2,
                reason="algorithm lost",
                quotes_in=10,
                forwarded=8,
                pending=2,
                conflated=0,
                dropped=0,
                orders=3,
                orders_rejected=1,
                fills=2,
                killed=None,
                batches=4,
                rpc="tcp://x:1",
            ),
            "status/feed/f": payload(state="online", ts=NOW, published=7, dropped=0, ring=None),
            "status/robot/r": payload(state="online", ts=NOW, pid=42, moves=3, label="x"),
        },
        now=NOW,
        stale_after=5.0,
    )
    lines = render_table(statuses)
    assert lines[0].split() == ["COMPONENT", "NAME", "STATE", "AGE", "COUNTERS"]
    assert lines[1].split() == [
        "bridge",
        "b",
        "degraded",
        "2.0s",
        "quotes_in=10",
        "forwarded=8",
        "pending=2",
        "conflated=0",
        "dropped=0",
        "orders=3",
        "orders_rejected=1",
        "fills=2",
        "killed=-",
    ]
    assert lines[2].split() == ["!", "algorithm", "lost"]
    assert lines[3].split() == ["feed", "f", "online", "0.0s", "published=7", "dropped=0"]
    assert lines[4].split() == ["robot", "r", "online", "0.0s", "moves=3"], "unknown kinds: numbers"
    assert lines[-1] == "3 components: 1 degraded, 2 online"


# -- the real components and command ---------------------------------------------------


def test_a_slow_feed_reports_its_counters_every_second_between_quotes(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    sid, name = unique("Q").upper(), unique("slow")
    with recorder(mosquitto_port, f"status/feed/{name}") as rec:
        procs.tickbus(
            "feed", "synthetic", "--mqtt", mqtt_url, "--symbols", sid, "--rate", "0.2",
            "--name", name, name="feed",
        )  # fmt: skip
        reports = wait_until(
            lambda: (
                len(r := [s for s in rec.json_on(f"status/feed/{name}") if "published" in s]) >= 3
                and r
            ),
            timeout=30,
            what="three status reports with counters",
        )
    # A quote goes out every 5 s: reports between quotes come from the clock, not the quotes.
    assert reports[-1]["published"] < len(reports)
    assert all(r["state"] == "online" for r in reports)


def tickbus_status(mqtt_url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickbus", "status", "--mqtt", mqtt_url, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


def table(stdout: str) -> dict[str, tuple[str, dict[str, str]]]:
    """``component/name`` -> (state, counters) from the printed table."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        if not line.strip():
            break
        if line.startswith(" "):  # a reason, under its row
            continue
        component, name, state, _age, *counters = line.split()
        rows[f"{component}/{name}"] = (state, dict(c.split("=", 1) for c in counters))
    return rows


@pytest.fixture
def own_broker(procs: Processes) -> tuple[str, int]:
    """A broker only this test uses: (URL, port)."""
    port = free_port()
    procs.tickbus("broker", "--port", str(port), name="broker")
    wait_until(lambda: broker_listening("127.0.0.1", port), timeout=15, what="the test's broker")
    return f"mqtt://127.0.0.1:{port}", port


def test_status_shows_every_component_online_then_a_stopped_feed_offline(
    procs: Processes, own_broker: tuple[str, int]
) -> None:
    mqtt_url, port = own_broker
    nothing = tickbus_status(mqtt_url)
    assert nothing.returncode == 2, nothing.stderr
    assert "no component has reported" in nothing.stderr

    sid, feed_name, bridge_name = unique("S").upper(), unique("feed"), unique("bridge")
    paper = start_execution(procs, mqtt_url)
    rpc = serve_algorithm(procs, "tests.algos_for_tests:OrderEveryQuote", "starting_cash=1e9")
    with recorder(port, "status/#") as rec:
        start_bridge(procs, mqtt_url, rpc, bridge_name, f"channels=quotes/{sid}")
        wait_online(rec, bridge_name)
        feed = procs.tickbus(
            "feed",
            "synthetic",
            "--mqtt",
            mqtt_url,
            "--symbols",
            sid,
            "--rate",
            "50",
            "--name",
            feed_name,
            name="feed",
        )
        wait_until(
            lambda: any(s.get("fills") for s in rec.json_on(f"status/bridge/{bridge_name}")),
            timeout=30,
            what="quotes traded and filled",
        )

    # The stack runs on a CPU shared with other tests: be patient about "stale".
    running = tickbus_status(mqtt_url, "--stale-after", "30")
    assert running.returncode == 0, running.stdout + running.stderr
    rows = table(running.stdout)
    assert set(rows) == {f"feed/{feed_name}", f"bridge/{bridge_name}", f"execution/{paper}"}
    assert all(state == "online" for state, _ in rows.values()), running.stdout
    assert int(rows[f"feed/{feed_name}"][1]["published"]) > 0
    bridge = rows[f"bridge/{bridge_name}"][1]
    assert int(bridge["quotes_in"]) >= int(bridge["forwarded"]) > 0
    assert int(bridge["orders"]) > 0 and int(bridge["fills"]) > 0
    assert int(rows[f"execution/{paper}"][1]["fills"]) > 0
    assert running.stdout.rstrip().endswith("3 components: 3 online")

    feed.signal(signal.SIGTERM)
    assert feed.wait(timeout=30) == 0
    stopped = tickbus_status(mqtt_url, "--stale-after", "30")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    rows = table(stopped.stdout)
    assert rows[f"feed/{feed_name}"][0] == "offline"
    assert rows[f"bridge/{bridge_name}"][0] == rows[f"execution/{paper}"][0] == "online"

    as_json = tickbus_status(mqtt_url, "--stale-after", "30", "--json")
    assert as_json.returncode == 1
    statuses = {f"{s['component']}/{s['name']}": s for s in json.loads(as_json.stdout)}
    assert statuses[f"feed/{feed_name}"]["health"] == "offline"
    assert statuses[f"feed/{feed_name}"]["status"]["published"] > 0
    assert statuses[f"bridge/{bridge_name}"]["status"]["channels"] == [f"quotes/{sid}"]
    assert all(isinstance(s["age_s"], float) for s in statuses.values())
