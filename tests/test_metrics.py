"""--metrics-port: Prometheus metrics scraped over HTTP from real processes while quotes flow.

The bridge is a gevent program (zerorpc) that is not monkey-patched; its
metrics server runs in an OS thread of its own. These tests scrape it while
the hub is busy forwarding, and compare what they scrape with what the
component publishes on its status topic.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

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

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

QUOTES = 600
RATE = 200


def scrape(port: int) -> Samples:
    """Every sample on http://127.0.0.1:PORT/metrics, parsed by prometheus_client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_when_up(port: int) -> Samples | None:
    """A scrape, or None while nothing listens yet."""
    try:
        return scrape(port)
    except (urllib.error.URLError, ConnectionError):
        return None


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def last_status(rec: Any, topic: str) -> dict[str, Any]:
    statuses = rec.json_on(topic)
    return statuses[-1] if statuses else {}


def bridge_disagreements(samples: Samples, status: dict[str, Any], name: str) -> list[str]:
    """The metrics that differ from the status counters they are read from."""
    pairs = {
        "tickbus_bridge_quotes_received_total": status["quotes_in"],
        "tickbus_bridge_quotes_forwarded_total": status["forwarded"],
        "tickbus_bridge_quotes_conflated_total": status["conflated"],
        "tickbus_bridge_quotes_dropped_total": status["dropped"],
        "tickbus_bridge_batches_total": status["batches"],
        "tickbus_bridge_orders_published_total": status["orders"],
        "tickbus_bridge_orders_rejected_total": status["orders_rejected"],
        "tickbus_bridge_fills_total": status["fills"],
        "tickbus_bridge_pending_quotes": status["pending"],
        "tickbus_bridge_online": 1,
        "tickbus_bridge_killed": 0,
    }
    wrong = [n for n, expected in pairs.items() if value(samples, n, bridge=name) != expected]
    split = {
        ("tickbus_bridge_dead_letters_total", "cause", "bad_message"): status["rejected"],
        ("tickbus_bridge_dead_letters_total", "cause", "algorithm_error"): status["algo_errors"],
        ("tickbus_bridge_dead_letters_total", "cause", "suspect_price"): status["suspect"],
        ("tickbus_bridge_reconnects_total", "link", "mqtt"): status["mqtt_reconnects"],
        ("tickbus_bridge_reconnects_total", "link", "algorithm"): status["reconnects"],
    }
    for (metric, label, label_value), expected in split.items():
        if value(samples, metric, bridge=name, **{label: label_value}) != expected:
            wrong.append(f"{metric}{{{label}={label_value}}}")
    return wrong


def test_bridge_metrics_rise_while_quotes_flow_and_match_its_status(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    sid, name, port = unique("M").upper(), unique("metrics"), free_port()
    received = "tickbus_bridge_quotes_received_total"
    start_execution(procs, mqtt_url)
    rpc = serve_algorithm(procs, "tests.algos_for_tests:OrderEveryQuote", "starting_cash=1e9")
    topic = f"status/bridge/{name}"
    with recorder(mosquitto_port, topic) as rec:
        start_bridge(
            procs,
            mqtt_url,
            rpc,
            name,
            f"channels=quotes/{sid}",
            flags=["--metrics-port", str(port)],
        )
        wait_online(rec, name)
        feed = procs.tickbus(
            "feed", "synthetic", "--mqtt", mqtt_url, "--symbols", sid,
            "--rate", str(RATE), "--count", str(QUOTES), "--name", unique("feed"), name="feed",
        )  # fmt: skip
        first = wait_until(
            lambda: (s := scrape(port)) and value(s, received, bridge=name) > 0 and s,
            timeout=30,
            what="a scrape with quotes received",
        )
        rising = wait_until(
            lambda: (
                (s := scrape(port))
                and value(s, received, bridge=name) > value(first, received, bridge=name)
                and s
            ),
            timeout=30,
            what="a later scrape with more quotes received",
        )
        assert feed.alive(), "both scrapes were taken while quotes flowed"
        assert value(rising, "tickbus_bridge_events_rpc_seconds_count", bridge=name) > 0

        assert feed.wait(timeout=60) == 0
        wait_until(
            lambda: (
                (s := last_status(rec, topic)).get("forwarded") == QUOTES
                and s["fills"] == s["orders"] > 0
                and s["reports_pending"] == 0
            ),
            timeout=60,
            what=f"{QUOTES} quotes forwarded and every order filled",
        )
        samples, status = wait_until(
            lambda: (
                not bridge_disagreements(s := scrape(port), t := last_status(rec, topic), name)
                and (s, t)
            ),
            timeout=20,
            what="a scrape that matches the status",
        )
    assert value(samples, "tickbus_bridge_quotes_forwarded_total", bridge=name) == QUOTES
    calls = value(samples, "tickbus_bridge_events_rpc_seconds_count", bridge=name)
    assert calls >= status["batches"] > 0
    assert value(samples, "tickbus_bridge_events_rpc_seconds_sum", bridge=name) > 0
    buckets = {
        dict(labels)["le"]: v
        for (metric, labels), v in samples.items()
        if metric == "tickbus_bridge_events_rpc_seconds_bucket"
    }
    assert buckets["+Inf"] == calls
    assert value(samples, "process_resident_memory_bytes") > 0


EXECUTION_FIELDS = {
    "tickbus_execution_orders_received_total": "orders_in",
    "tickbus_execution_fills_total": "fills",
    "tickbus_execution_orders_rejected_total": "rejected",
    "tickbus_execution_duplicate_orders_total": "duplicates",
    "tickbus_execution_quotes_received_total": "quotes_in",
    "tickbus_execution_bad_quotes_total": "bad_quotes",
    "tickbus_execution_suspect_quotes_total": "suspect",
    "tickbus_execution_waiting_orders": "waiting",
}


def test_feed_and_execution_serve_their_counters(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    sid, feed_name, algo = unique("E").upper(), unique("feed"), unique("algo")
    feed_port, execution_port = free_port(), free_port()
    paper = start_execution(procs, mqtt_url, "--metrics-port", str(execution_port))
    feed_topic, execution_topic = f"status/feed/{feed_name}", f"status/execution/{paper}"
    with recorder(mosquitto_port, feed_topic, execution_topic) as rec:
        feed = procs.tickbus(
            "feed", "synthetic", "--mqtt", mqtt_url, "--symbols", sid, "--rate", "100",
            "--name", feed_name, "--metrics-port", str(feed_port), name="feed",
        )  # fmt: skip
        scraped = wait_until(
            lambda: (
                (s := scrape_when_up(feed_port))
                and value(s, "tickbus_feed_quotes_published_total", feed=feed_name) > 0
                and s
            ),
            timeout=30,
            what="the feed's metrics",
        )
        order = {"id": "o1", "algo": algo, "sid": sid, "side": "buy", "qty": 1, "type": "market"}
        rec.publish(f"orders/{algo}", json.dumps({**order, "ts": time.time()}))
        feed.signal(signal.SIGTERM)
        assert feed.wait(timeout=30) == 0
        final = wait_until(
            lambda: (s := last_status(rec, feed_topic)).get("state") == "offline" and s,
            timeout=10,
            what="the feed's last status",
        )

        def execution_agrees() -> tuple[Samples, dict[str, Any]] | None:
            status = last_status(rec, execution_topic)
            if status.get("fills") != 1:
                return None
            samples = scrape(execution_port)
            for metric, field in EXECUTION_FIELDS.items():
                if value(samples, metric, execution=paper) != status[field]:
                    return None
            return samples, status

        samples, status = wait_until(
            execution_agrees,
            timeout=20,
            what="the execution's metrics to match its status after one fill",
        )
    published = value(scraped, "tickbus_feed_quotes_published_total", feed=feed_name)
    assert 0 < published <= final["published"]
    assert value(scraped, "tickbus_feed_quotes_dropped_total", feed=feed_name) == 0
    assert value(samples, "tickbus_execution_fills_total", execution=paper) == 1
    assert status["quotes_in"] > 0


def test_a_metrics_address_that_cannot_be_served_fails_clearly(mqtt_url: str) -> None:
    def tickbus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tickbus", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = tickbus(
            "bridge", "--mqtt", mqtt_url, "--rpc", "tcp://127.0.0.1:1", "--name", unique("b"),
            "--metrics-port", str(port),
        )  # fmt: skip
    assert in_use.returncode == 1
    assert f"cannot serve metrics on http://127.0.0.1:{port}/metrics" in in_use.stderr
    no_port = tickbus("execution", "paper", "--mqtt", mqtt_url, "--metrics-addr", "0.0.0.0")
    assert no_port.returncode == 1
    assert "--metrics-addr needs --metrics-port" in no_port.stderr
