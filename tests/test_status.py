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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import broker_listening
from tests.support import (
    REPO_ROOT,
    Mosquitto,
    Processes,
    free_port,
    publish_retained,
    recorder,
    serve_algorithm,
    start_bridge,
    start_execution,
    unique,
    wait_online,
    wait_until,
)
from tickbus._status import (
    ComponentStatus,
    check_cleared,
    exit_code,
    forget_command_targets,
    judge,
    long_offline_note,
    parse_forget_name,
    render_table,
    split_long_offline,
)
from tickbus.errors import ConfigError

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
            "status/recorder/t": payload(
                state="online",
                ts=NOW,
                quotes=9,
                rows_written=5,
                files=1,
                pending=4,
                dead_letters=0,
                write_errors=0,
                bytes=512,
                torn=0,
            ),
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
    assert lines[4].split() == [
        "recorder", "t", "online", "0.0s", "quotes=9", "rows_written=5", "files=1", "pending=4",
        "dead_letters=0", "write_errors=0",
    ]  # fmt: skip
    assert lines[5].split() == ["robot", "r", "online", "0.0s", "moves=3"], "unknown kinds: numbers"
    assert lines[-1] == "4 components: 1 degraded, 3 online"


def test_offline_components_older_than_forget_after_are_split_off() -> None:
    statuses = judge(
        {
            "status/feed/old": payload(state="offline", ts=NOW - 61),
            "status/feed/timeless": payload(state="offline"),
            "status/feed/recent": payload(state="offline", ts=NOW - 59),
            "status/feed/ahead": payload(state="offline", ts=NOW + 600),  # a clock ahead
            "status/feed/hung": payload(state="online", ts=NOW - 600),
            "status/feed/crashed": payload(state="offline", lost=True, ts=NOW - 86_400),
            "status/bridge/sick": payload(state="degraded", ts=NOW - 600),
            "status/relay/garbage": b"not json",
        },
        now=NOW,
        stale_after=5.0,
    )
    kept, gone = split_long_offline(statuses, forget_after=60.0)
    assert [s.key for s in gone] == ["feed/old", "feed/timeless"]
    assert [s.key for s in kept] == [
        "bridge/sick",
        "feed/ahead",
        "feed/crashed",
        "feed/hung",
        "feed/recent",
        "relay/garbage",
    ], "only clean stops are forgotten: lost, stale, degraded and invalid ones still count"
    assert exit_code(split_long_offline(gone, forget_after=60.0)[0]) == 2, "nothing left"
    assert [s.key for s in split_long_offline(statuses, forget_after=0)[1]] == [
        "feed/old",
        "feed/recent",
        "feed/timeless",
    ]


def test_the_note_under_the_table_counts_long_offline_components() -> None:
    assert long_offline_note(0, forget_after=60.0, listed=False) == ""
    assert long_offline_note(2, forget_after=60.0, listed=False) == (
        "2 offline for more than 60s not shown (--all lists them)"
    )
    assert long_offline_note(1, forget_after=1.5, listed=True).startswith(
        "1 offline for more than 1.5s (included above"
    )


def test_forget_names_are_component_slash_name_or_a_bare_name() -> None:
    assert parse_forget_name("feed/synthetic") == ("feed", "synthetic")
    assert parse_forget_name("synthetic") == (None, "synthetic")
    for bad in ("", "feed/", "/x", "a/b/c", "feed/#", "+"):
        with pytest.raises(ConfigError):
            parse_forget_name(bad)


def test_forget_selects_every_kind_by_a_bare_name_and_refuses_unknown_or_running() -> None:
    statuses = judge(
        {
            "status/feed/x": payload(state="offline", ts=NOW - 1),
            "status/bridge/x": payload(state="online", ts=NOW - 100),  # stale: not running
            "status/bridge/y": payload(state="online", ts=NOW - 1),
            "status/execution/y": payload(state="degraded", ts=NOW - 1),
            "status/relay/z": b"garbage",
        },
        now=NOW,
        stale_after=5.0,
    )

    def keys(*names: str, force: bool = False) -> list[str]:
        parsed = [parse_forget_name(n) for n in names]
        targets = forget_command_targets(statuses, parsed, stale_after=5.0, force=force)
        return [s.key for s in targets]

    assert keys("x") == ["bridge/x", "feed/x"]
    assert keys("feed/x", "x") == ["bridge/x", "feed/x"], "each once"
    assert keys("z") == ["relay/z"], "an invalid status can be forgotten"
    with pytest.raises(ConfigError, match="nothing named 'feed/y' has reported"):
        keys("feed/y")
    with pytest.raises(ConfigError, match="nothing named 'w'"):
        keys("x", "w")
    with pytest.raises(ConfigError, match=r"bridge/y \(online .*execution/y \(degraded"):
        keys("y")
    assert keys("y", force=True) == ["bridge/y", "execution/y"]


def test_a_status_the_broker_kept_is_a_refusal_and_a_new_one_was_published_again() -> None:
    before = {"status/feed/a": b"1", "status/feed/b": b"2"}
    assert check_cleared(before, {}) == []
    assert check_cleared(before, {"status/feed/b": b"3"}) == ["status/feed/b"]
    with pytest.raises(ConfigError, match="the broker kept status/feed/a: this login may not"):
        check_cleared(before, {"status/feed/a": b"1", "status/feed/b": b"3"})


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


# -- forgetting stopped components ------------------------------------------------------


def retained(port: int, *filters: str) -> dict[str, bytes]:
    """What the broker retains on `filters`, as a fresh subscriber receives it.

    The broker queues a subscription's retained messages before anything the
    same client publishes afterwards, so the subscriber's own message coming
    back marks the end of them: no waiting for something that should not come.
    """
    sentinel = f"tests/sentinel/{unique('end')}"
    with recorder(port, *filters, sentinel) as rec:
        rec.publish(sentinel, b"end")
        wait_until(lambda: rec.on(sentinel), timeout=10, what="the subscriber's own message")
        return {topic: body for topic, body in rec.messages if topic != sentinel}


def ages(stdout: str) -> dict[str, str]:
    """``component/name`` -> the AGE column, from the printed table."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        if not line.strip():
            break
        if not line.startswith(" "):
            component, name, _state, age, *_ = line.split()
            rows[f"{component}/{name}"] = age
    return rows


def by_key(stdout: str) -> dict[str, dict[str, Any]]:
    return {f"{s['component']}/{s['name']}": s for s in json.loads(stdout)}


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto only this test uses: the exit code judges every component on its broker."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_components_offline_for_longer_than_forget_after_leave_the_table_and_exit_code(
    private_mosquitto: Mosquitto,
) -> None:
    url, port = private_mosquitto.url, private_mosquitto.port
    now = time.time()
    publish_retained(
        port,
        {
            "feed/live": payload(state="online", ts=now, published=7),
            "feed/old": payload(state="offline", ts=now - 600, published=5),
            "bridge/timeless": payload(state="offline"),
        },
    )
    fast = ("--timeout", "0.5", "--stale-after", "60")  # a slow CI must not make "live" stale

    healthy = tickbus_status(url, *fast)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert set(table(healthy.stdout)) == {"feed/live"}
    assert "1 components: 1 online" in healthy.stdout
    assert healthy.stdout.rstrip().endswith(
        "2 offline for more than 60s not shown (--all lists them)"
    )

    everything = tickbus_status(url, *fast, "--all")
    assert everything.returncode == 1, "--all counts them"
    assert {key: row[0] for key, row in table(everything.stdout).items()} == {
        "bridge/timeless": "offline",
        "feed/live": "online",
        "feed/old": "offline",
    }
    assert ages(everything.stdout)["feed/old"] == "10m"
    assert ages(everything.stdout)["bridge/timeless"] == "?"
    assert "3 components: 2 offline, 1 online" in everything.stdout

    publish_retained(port, {"execution/recent": payload(state="offline", ts=time.time() - 5)})
    one_down = tickbus_status(url, *fast)
    assert one_down.returncode == 1, "a component stopped 5 s ago still counts"
    assert table(one_down.stdout)["execution/recent"][0] == "offline"
    shorter = tickbus_status(url, *fast, "--forget-after", "1")
    assert shorter.returncode == 0, shorter.stdout
    assert "3 offline for more than 1s not shown" in shorter.stdout

    forgot = tickbus_status(url, *fast, "--forget", "feed/live", "--force")
    assert forgot.returncode == 0, forgot.stderr
    nothing = tickbus_status(url, *fast, "--forget-after", "1")
    assert nothing.returncode == 2, "every component left is long offline: none is left"
    assert nothing.stderr.strip() == (
        f"no component left on status/# at {url}: "
        "3 offline for more than 1s not shown (--all lists them)"
    )


def test_status_and_its_json_list_recent_offline_components_and_all_lists_old_ones(
    mqtt_url: str, mosquitto_port: int
) -> None:
    old, recent = unique("old"), unique("recent")
    now = time.time()
    publish_retained(
        mosquitto_port,
        {
            f"feed/{old}": payload(state="offline", ts=now - 7200, published=9),
            f"feed/{recent}": payload(state="offline", ts=now - 2, published=4),
        },
    )
    mine = {f"feed/{old}", f"feed/{recent}"}

    plain = tickbus_status(mqtt_url, "--timeout", "0.5")
    assert plain.returncode == 1, "a component stopped 2 s ago is not online"
    assert mine & set(table(plain.stdout)) == {f"feed/{recent}"}
    listed = tickbus_status(mqtt_url, "--timeout", "0.5", "--all")
    assert mine <= set(table(listed.stdout))
    assert table(listed.stdout)[f"feed/{old}"][0] == "offline"
    assert ages(listed.stdout)[f"feed/{old}"] == "2h"

    as_json = by_key(tickbus_status(mqtt_url, "--timeout", "0.5", "--json").stdout)
    assert mine & set(as_json) == {f"feed/{recent}"}
    all_json = by_key(tickbus_status(mqtt_url, "--timeout", "0.5", "--json", "--all").stdout)
    assert all_json[f"feed/{old}"]["health"] == "offline"
    assert all_json[f"feed/{old}"]["age_s"] >= 7200
    assert all_json[f"feed/{old}"]["status"]["published"] == 9


def test_forget_clears_the_retained_status_of_every_kind_with_that_name(
    mqtt_url: str, mosquitto_port: int
) -> None:
    name, other = unique("gone"), unique("kept")
    now = time.time()
    publish_retained(
        mosquitto_port,
        {
            f"feed/{name}": payload(state="offline", ts=now - 600),
            f"bridge/{name}": payload(state="offline", ts=now - 2),
            f"feed/{other}": payload(state="offline", ts=now - 600),
        },
    )
    assert set(retained(mosquitto_port, f"status/+/{name}")) == {
        f"status/feed/{name}",
        f"status/bridge/{name}",
    }

    forgot = tickbus_status(mqtt_url, "--timeout", "0.5", "--forget", name)
    assert forgot.returncode == 0, forgot.stderr
    lines = forgot.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"forgot bridge/{name}",
        f"forgot feed/{name}",
    ]
    assert lines[1] == f"forgot feed/{name} (offline, 10m old)"
    assert retained(mosquitto_port, f"status/+/{name}", f"status/+/{other}") == {
        f"status/feed/{other}": payload(state="offline", ts=now - 600)
    }, "the named ones are gone, nothing else"

    as_json = tickbus_status(mqtt_url, "--timeout", "0.5", "--forget", f"feed/{other}", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [s["name"] for s in json.loads(as_json.stdout)] == [other]
    assert retained(mosquitto_port, f"status/+/{other}") == {}


def test_forget_refuses_names_that_never_reported_and_components_online_now(
    mqtt_url: str, mosquitto_port: int
) -> None:
    never = unique("never")
    unknown = tickbus_status(mqtt_url, "--timeout", "0.5", "--forget", never)
    assert unknown.returncode == 1
    assert f"nothing named {never!r} has reported" in unknown.stderr

    name = unique("busy")
    online = payload(state="online", ts=time.time(), published=3)
    publish_retained(mosquitto_port, {f"feed/{name}": online})
    patient = ("--timeout", "0.5", "--stale-after", "60")  # online, however slow the CI
    refused = tickbus_status(mqtt_url, *patient, "--forget", f"feed/{name}")
    assert refused.returncode == 1
    assert f"not forgetting feed/{name} (online" in refused.stderr
    assert "stop it first, or pass --force" in refused.stderr
    assert retained(mosquitto_port, f"status/feed/{name}") == {f"status/feed/{name}": online}

    forced = tickbus_status(mqtt_url, *patient, "--forget", f"feed/{name}", "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith(f"forgot feed/{name} (online, ")
    assert retained(mosquitto_port, f"status/feed/{name}") == {}

    alone = tickbus_status(mqtt_url, "--force")
    assert alone.returncode == 2 and "--force only goes with --forget NAME" in alone.stderr
