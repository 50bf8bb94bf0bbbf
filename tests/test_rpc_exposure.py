"""What an algorithm server exposes: loopback by default, the RPC contract only, a size limit.

Real `tickbus algo serve` processes and real zerorpc clients; the bind
address checks also run in-process through `serve()`, which refuses before
it loads or binds anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zerorpc

from algos.server import DEFAULT_HEARTBEAT_S, RPC_METHODS, ServeConfig, serve
from tests.algos_for_tests import UNSAFE_STATES
from tests.support import (
    REPO_ROOT,
    Proc,
    Processes,
    free_port,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)
from tickbus.errors import ConfigError

RECORDING = "tests.algos_for_tests:RecordingAlgo"
MIB = 1024 * 1024
Connect = Callable[[str], zerorpc.Client]


def serve_with(
    procs: Processes, *flags: str, spec: str = RECORDING, addr: str | None = None
) -> tuple[Proc, str]:
    """`tickbus algo serve SPEC --addr ADDR FLAGS...`; returns it and ADDR once it serves."""
    addr = addr or f"tcp://127.0.0.1:{free_port()}"
    proc = procs.tickbus("algo", "serve", spec, "--addr", addr, *flags, name="algo")
    wait_until(
        lambda: "serving" in proc.log() or not proc.alive(), timeout=15, what=f"{spec} on {addr}"
    )
    assert proc.alive(), proc.log()
    return proc, addr


@pytest.fixture
def connect() -> Iterator[Connect]:
    """zerorpc clients with the servers' heartbeat, closed at teardown."""
    clients: list[zerorpc.Client] = []

    def connect(addr: str) -> zerorpc.Client:
        client = zerorpc.Client(heartbeat=DEFAULT_HEARTBEAT_S, timeout=10)
        client.connect(addr)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def quote(ts: float, sid: str = "A") -> dict[str, Any]:
    return {"sid": sid, "price": 1.0, "ts": ts}


# --- the contract and nothing else ------------------------------------------------------


NOT_IN_THE_CONTRACT: list[tuple[Any, tuple[Any, ...]]] = [
    ("_zerorpc_inspect", ()),
    ("_zerorpc_list", ()),
    ("_zerorpc_name", ()),
    ("_zerorpc_ping", ()),
    ("_zerorpc_help", ("state",)),
    ("_zerorpc_args", ("state",)),
    ("_private", ()),
    ("_call", ("state",)),
    ("_initialize", ({}, None)),
    ("_save_if_changed", ()),
    ("methods", ()),
    ("__init__", ()),
    ("__class__", ()),
    ("buy", ({}, 1)),
    ("portfolio", ()),
    ("nope", ()),
    ("", ()),
    ("STATE", ()),
    ("state ", ()),
    (5, ()),
    ([1], ()),
]


def test_every_name_outside_the_contract_is_refused_and_the_server_keeps_serving(
    procs: Processes, connect: Connect
) -> None:
    proc, addr = serve_with(procs)
    client = connect(addr)
    assert client.initialize({}) == ["quotes", "quotes/#"]
    allowed = ", ".join(RPC_METHODS)
    for name, args in NOT_IN_THE_CONTRACT:
        with pytest.raises(zerorpc.RemoteError) as info:
            client(name, *args)
        assert info.value.name == "NameError", name
        assert info.value.msg == f"no method {name!r}: this server answers only {allowed}"
    assert client.events([quote(1.0)]) == []
    assert client.event(quote(2.0)) == []
    assert client.state()["received"] == [["A", 1.0, 1.0], ["A", 2.0, 1.0]]
    assert client.finalize()["quotes"] == 2
    assert proc.alive()


def test_heartbeats_keep_a_call_longer_than_two_heartbeats_alive(
    procs: Processes, connect: Connect
) -> None:
    """Heartbeats are channel events, not the removed `_zerorpc_ping`: a 2.5 s call survives."""
    _, addr = serve_with(procs, spec="tests.algos_for_tests:SlowAlgo")
    client = connect(addr)
    client.initialize({"delay_s": 2.5 * DEFAULT_HEARTBEAT_S})
    assert client.events([quote(1.0)]) == []
    assert client.state()["received"] == [["A", 1.0, 1.0]]


# --- the size limit -----------------------------------------------------------------------


def test_an_oversized_request_is_dropped_and_the_server_keeps_serving(
    procs: Processes, connect: Connect
) -> None:
    proc, addr = serve_with(procs, "--max-message-mb", "1")
    bystander = connect(addr)
    bystander.initialize({})
    caller = connect(addr)
    started = time.monotonic()
    with pytest.raises(zerorpc.LostRemote):  # no answer and no heartbeat, not a timeout
        caller.events([quote(1.0, sid="A" * 2 * MIB)])
    assert time.monotonic() - started < 3 * DEFAULT_HEARTBEAT_S + 2
    assert caller.events([quote(2.0)]) == [], "the caller's next call goes through"
    assert bystander.state()["received"] == [["A", 2.0, 1.0]], "the big call never ran"
    assert proc.alive()


def test_the_default_limit_admits_a_request_far_larger_than_a_batch(
    procs: Processes, connect: Connect
) -> None:
    _, addr = serve_with(procs)
    client = connect(addr)
    client.initialize({})
    assert client.events([quote(1.0, sid="B" * 2 * MIB)]) == []


def test_the_limit_must_be_positive() -> None:
    config = ServeConfig(spec=RECORDING, addr="tcp://127.0.0.1:1", max_message_bytes=0)
    with pytest.raises(ConfigError, match="max_message_bytes must be at least 1, got 0"):
        serve(config, on_ready=_fail_if_served)


# --- loopback unless --allow-remote ---------------------------------------------------------


def _fail_if_served(addr: str) -> None:
    raise AssertionError(f"the server bound {addr}")


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "*", "10.1.2.3", "192.168.1.20", "[::]", "algo.example.com", "eth0", "lo"],
)
def test_a_non_loopback_address_is_refused_without_allow_remote(host: str) -> None:
    addr = f"tcp://{host}:{free_port()}"
    with pytest.raises(ConfigError) as info:
        serve(ServeConfig(spec=RECORDING, addr=addr), on_ready=_fail_if_served)
    reason = info.value.reason
    assert reason.startswith(
        f"refusing to bind the algorithm server to {addr}: it is not a loopback"
    )
    assert "zerorpc has no authentication" in reason and "--allow-remote" in reason


def test_the_cli_refuses_a_non_loopback_address_with_the_reason() -> None:
    addr = f"tcp://0.0.0.0:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "tickbus", "algo", "serve", RECORDING, "--addr", addr],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1
    assert f"Error: refusing to bind the algorithm server to {addr}" in result.stderr
    assert "--allow-remote" in result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.2"])
def test_loopback_addresses_serve(procs: Processes, connect: Connect, host: str) -> None:
    _, addr = serve_with(procs, addr=f"tcp://{host}:{free_port()}")
    assert connect(addr).initialize({}) == ["quotes", "quotes/#"]


def test_an_ipc_address_is_host_local_and_serves(
    procs: Processes, connect: Connect, tmp_path: Path
) -> None:
    _, addr = serve_with(procs, addr=f"ipc://{tmp_path}/algo.sock")
    assert connect(addr).initialize({}) == ["quotes", "quotes/#"]


def test_allow_remote_binds_every_interface(procs: Processes, connect: Connect) -> None:
    port = free_port()
    proc, _ = serve_with(procs, "--allow-remote", addr=f"tcp://0.0.0.0:{port}")
    assert connect(f"tcp://127.0.0.1:{port}").initialize({}) == ["quotes", "quotes/#"]
    assert f"serving {RECORDING} on tcp://0.0.0.0:{port}" in proc.log()


# --- state() must be JSON data ---------------------------------------------------------------


UNSAFE_REASONS = {
    "int_keys": "at ['by_id']: key 1 is not a string",
    "nan": "at ['pnl'][0]: nan is not a finite number",
    "bytes": "at ['raw']: bytes is not a JSON type",
    "set": "at ['ids']: set is not a JSON type",
}


def test_a_state_that_is_not_json_safe_is_refused_with_where_and_why(
    procs: Processes, connect: Connect
) -> None:
    """A clear remote TypeError; an int key would otherwise break the caller's decoder."""
    assert set(UNSAFE_REASONS) == set(UNSAFE_STATES) - {"none"}
    _, addr = serve_with(procs, spec="tests.algos_for_tests:UnsafeStateAlgo")
    client = connect(addr)
    for unsafe, where in UNSAFE_REASONS.items():
        client.initialize({"unsafe": unsafe})
        for method in ("state", "finalize"):
            with pytest.raises(zerorpc.RemoteError) as info:
                client(method)
            assert (info.value.name, info.value.msg) == (
                "TypeError",
                f"{method}() is not JSON-safe: {where}",
            )
    client.initialize({"unsafe": "none"})
    assert client.state()["received"] == []


def test_the_bridge_keeps_forwarding_to_an_algorithm_whose_state_is_not_json_safe(
    procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name, sid = unique("unsafe"), unique("U").upper()
    topic = f"quotes/{sid}"
    status_topic = f"status/bridge/{name}"
    with recorder(mosquitto_port, status_topic) as rec:
        rpc = serve_algorithm(procs, "tests.algos_for_tests:UnsafeStateAlgo")
        bridge = start_bridge(procs, mqtt_url, rpc, name, f"channels={topic}")
        wait_online(rec, name)
        for i in range(5):
            rec.publish(topic, json.dumps({"sid": sid, "price": 1.0 + i / 100, "ts": i + 1}))

        def forwarded_since(seconds: float) -> dict[str, Any] | None:
            done = [s for s in rec.json_on(status_topic) if s.get("forwarded") == 5]
            return done[-1] if done and done[-1]["ts"] - done[0]["ts"] >= seconds else None

        # Two more state() refreshes after the quotes: the link must survive them.
        last = wait_until(lambda: forwarded_since(2.0), timeout=20, what="5 quotes, then 2 s")
        assert bridge.alive()
    statuses = rec.json_on(status_topic)
    first = next(i for i, s in enumerate(statuses) if s["state"] == "online" and s.get("channels"))
    assert {s["state"] for s in statuses[first:]} == {"online"}, "never degraded once forwarding"
    assert last["reconnects"] == 0 and last["algo_errors"] == 0
    assert last["algo"] == {
        "error": "state raised TypeError: state() is not JSON-safe: " + UNSAFE_REASONS["int_keys"]
    }


def test_orders_that_are_not_json_safe_are_refused_and_the_server_goes_on(
    procs: Processes, connect: Connect
) -> None:
    _, addr = serve_with(procs, spec="tests.algos_for_tests:UnsafeOrdersAlgo")
    client = connect(addr)
    client.initialize({})
    with pytest.raises(zerorpc.RemoteError) as info:
        client.events([{"sid": "GOOG", "price": 1.0, "ts": 1.0}])
    assert (info.value.name, info.value.msg) == (
        "TypeError",
        "events() is not JSON-safe: at [0]: key 1 is not a string",
    )
    assert client.state()["received"] == [["GOOG", 1.0, 1.0]]
