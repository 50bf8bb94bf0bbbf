"""Faults and clean shutdown, with real processes: SIGTERM on every component, a broker
restarted under a running stack, an algorithm server killed under its bridge, and a bridge
killed and restarted while orders flow.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import paho.mqtt.client as mqtt
import pytest
import zerorpc

from algos import Order
from ring import RingReader, writer_alive
from tests.algos_for_tests import RecordingAlgo
from tests.support import (
    Mosquitto,
    MqttRecorder,
    Proc,
    Processes,
    free_port,
    port_open,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)

AlgoState = Callable[[str], dict[str, Any]]
EXIT_WITHIN_S = 5.0


class MarkingSlowAlgo(RecordingAlgo):
    """Writes its batch size to the file ``mark`` (param) on entering `events`, then takes
    ``delay_s`` (param) before handling the batch: a call the test knows is in flight."""

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        self._mark = Path(str(params["mark"]))
        self._delay = float(params.get("delay_s", 1.0))
        return super().initialize(params)

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        self._mark.write_text(str(len(quotes)))
        time.sleep(self._delay)
        return super().events(quotes)


# --- helpers ------------------------------------------------------------------------


class QosRecorder(MqttRecorder):
    """An `MqttRecorder` that also keeps the QoS each message was delivered with."""

    def __init__(self, port: int, filters: Sequence[str]) -> None:
        self.qos: list[tuple[str, int]] = []
        super().__init__(port, filters)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.qos.append((msg.topic, msg.qos))
        super()._on_message(client, userdata, msg)


def retained(port: int, topic: str) -> dict[str, Any]:
    """The retained message on `topic`, as a subscriber arriving now reads it."""
    with recorder(port, topic) as rec:
        payloads = wait_until(lambda: rec.json_on(topic), timeout=5, what=f"retained {topic}")
    return dict(payloads[-1])


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, grandchildren, ...), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += children - found
            found |= children
    return found


def running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def exits_within(proc: Proc, seconds: float, *, poll: Callable[[float], None] = time.sleep) -> int:
    """The exit code of `proc`, failing if it is still running after `seconds`."""
    deadline = time.monotonic() + seconds
    while proc.alive() and time.monotonic() < deadline:
        poll(0.02)
    assert not proc.alive(), f"still running {seconds} s after SIGTERM:\n{proc.log()[-2000:]}"
    return proc.wait(timeout=1)


def last_status(rec: MqttRecorder, topic: str, **where: Any) -> dict[str, Any] | None:
    """The latest status on `topic` whose fields match `where`: equal to a value, or
    present and passing a callable."""

    def matches(status: dict[str, Any], key: str, want: Any) -> bool:
        if callable(want):
            return status.get(key) is not None and bool(want(status[key]))
        return bool(status.get(key) == want)

    for status in reversed(rec.json_on(topic)):
        if all(matches(status, key, want) for key, want in where.items()):
            return dict(status)
    return None


def quote_json(sid: str, price: float, ts: float) -> str:
    return json.dumps({"sid": sid, "price": price, "ts": ts})


def serve(procs: Processes, spec: str, addr: str | None = None) -> tuple[Proc, str]:
    """`tickbus algo serve SPEC` on `addr` (default: a free port), once it serves."""
    addr = addr or f"tcp://127.0.0.1:{free_port()}"
    proc = procs.tickbus("algo", "serve", spec, "--addr", addr, name="algo")
    wait_until(lambda: "serving" in proc.log(), timeout=15, what=f"{spec} serving on {addr}")
    return proc, addr


def start_paper(procs: Processes, mqtt_url: str, port: int) -> tuple[Proc, str]:
    """`tickbus execution paper` under a unique name, once it has subscribed."""
    name = unique("paper")
    with recorder(port, f"status/execution/{name}") as rec:
        proc = procs.tickbus("execution", "paper", "--mqtt", mqtt_url, "--name", name, name=name)
        wait_until(
            lambda: last_status(rec, f"status/execution/{name}", waiting=lambda _: True),
            timeout=15,
            what=f"execution {name} online",
        )
    return proc, name


def start_feed(procs: Processes, mqtt_url: str, name: str, sids: Sequence[str], rate: int) -> Proc:
    """`tickbus feed synthetic` on `sids` at `rate` quotes/s until stopped."""
    args = ["feed", "synthetic", "--mqtt", mqtt_url, "--symbols", ",".join(sids)]
    args += ["--rate", str(rate), "--name", name, "--seed", "7"]
    return procs.tickbus(*args, name=f"feed-{name}")


# --- SIGTERM on each component ------------------------------------------------------


@dataclass
class Context:
    procs: Processes
    url: str
    port: int
    tmp_path: Path
    algo_state: AlgoState
    stack: ExitStack

    def recorder(self, *filters: str) -> MqttRecorder:
        return self.stack.enter_context(recorder(self.port, *filters))


@dataclass
class Running:
    """A component with work in flight, ready for SIGTERM.

    `finish` runs after SIGTERM and yields to the event loop while it waits (the algorithm
    server's call is a greenlet); `check` runs after the exit with the retained status.
    """

    proc: Proc
    status_topic: str | None
    check: Callable[[dict[str, Any] | None], None]
    finish: Callable[[], None] = lambda: None
    poll: Callable[[float], None] = time.sleep
    port: int | None = None


def feed_synthetic(ctx: Context) -> Running:
    name, sid = unique("fterm"), unique("FS").upper()
    rec = ctx.recorder(f"quotes/{sid}")
    proc = start_feed(ctx.procs, ctx.url, name, [sid], 200)
    wait_until(lambda: len(rec.on(f"quotes/{sid}")) >= 20, timeout=15, what="quotes")
    return Running(proc, f"status/feed/{name}", lambda s: _all_published(rec, sid, s))


def feed_csv(ctx: Context) -> Running:
    name, sid = unique("cterm"), unique("FC").upper()
    csv = ctx.tmp_path / "ticks.csv"
    rows = "".join(f"{1 + n * 0.01},{sid},{100 + n % 7}\n" for n in range(3000))  # 30 s
    csv.write_text("ts,sid,price\n" + rows)
    rec = ctx.recorder(f"quotes/{sid}")
    proc = ctx.procs.tickbus("feed", "csv", str(csv), "--mqtt", ctx.url, "--name", name, name="c")
    wait_until(lambda: len(rec.on(f"quotes/{sid}")) >= 20, timeout=15, what="quotes")
    return Running(proc, f"status/feed/{name}", lambda s: _all_published(rec, sid, s))


def _all_published(rec: MqttRecorder, sid: str, status: dict[str, Any] | None) -> None:
    """The final count is exact: every quote counted as published reached the broker."""
    assert status is not None
    assert status["dropped"] == 0 and status["published"] >= 20
    wait_until(
        lambda: len(rec.on(f"quotes/{sid}")) == status["published"],
        timeout=5,
        what=f"{status['published']} quotes at the subscriber",
    )


def algo_server(ctx: Context) -> Running:
    """A call in flight from the test's own zerorpc client; its answer must still come."""
    mark, quote = ctx.tmp_path / "mark", {"sid": "SRV", "price": 2.0, "ts": 1.0}
    proc, addr = serve(ctx.procs, "tests.test_faults:MarkingSlowAlgo")
    client = zerorpc.Client(timeout=15)
    client.connect(addr)
    client.initialize({"mark": str(mark), "delay_s": 1.5})
    call = gevent.spawn(client.events, [quote])
    deadline = time.monotonic() + 10
    while not mark.exists() and time.monotonic() < deadline:
        gevent.sleep(0.02)
    assert mark.exists(), "the events call never started"
    answer: list[Any] = []

    def finish() -> None:
        answer.append(call.get(timeout=EXIT_WITHIN_S))
        client.close()

    def check(_status: dict[str, Any] | None) -> None:
        assert answer == [[]], "the call in flight was answered"

    port = int(addr.rsplit(":", 1)[1])
    return Running(proc, None, check, finish=finish, poll=gevent.sleep, port=port)


def bridge(ctx: Context) -> Running:
    name, sid, mark = unique("bterm"), unique("BT").upper(), ctx.tmp_path / "mark"
    rec = ctx.recorder(f"status/bridge/{name}")
    rpc = serve_algorithm(ctx.procs, "tests.test_faults:MarkingSlowAlgo")
    params = (f"channels=quotes/{sid}", f"mark={mark}", "delay_s=1.5")
    proc = start_bridge(ctx.procs, ctx.url, rpc, name, *params)
    wait_online(rec, name)
    rec.publish(f"quotes/{sid}", quote_json(sid, 3.0, 1.0))
    wait_until(mark.exists, timeout=10, what="the events call in flight")

    def check(status: dict[str, Any] | None) -> None:
        assert status is not None
        assert ctx.algo_state(rpc)["received"] == [[sid, 1.0, 3.0]], "the call was finished"
        # Its final counters: see test_the_bridges_offline_status_carries_its_final_counters.

    return Running(proc, f"status/bridge/{name}", check)


def execution(ctx: Context) -> Running:
    """Orders still arriving at SIGTERM: every order it took is answered before it leaves."""
    algo, sid = unique("algo"), unique("EX").upper()
    rec = ctx.recorder(f"fills/{algo}", f"orders/{algo}/rejected")
    proc, name = start_paper(ctx.procs, ctx.url, ctx.port)
    rec.publish(f"quotes/{sid}", quote_json(sid, 10.0, 1.0))
    order = {"algo": algo, "sid": sid, "side": "buy", "qty": 1, "type": "market", "ts": 1.0}
    rec.publish(f"orders/{algo}", json.dumps({**order, "id": unique("o")}))
    wait_until(lambda: rec.on(f"fills/{algo}"), timeout=10, what="the first fill")
    for _ in range(30):  # QoS 0 so that SIGTERM follows while they are still arriving
        rec.publish(f"orders/{algo}", json.dumps({**order, "id": unique("o")}), qos=0)

    def check(status: dict[str, Any] | None) -> None:
        assert status is not None
        assert status["orders_in"] == status["fills"] + status["rejected"] >= 1

        def answered() -> bool:
            answers = len(rec.on(f"fills/{algo}")) + len(rec.on(f"orders/{algo}/rejected"))
            return answers == status["orders_in"]

        wait_until(answered, timeout=5, what="every order answered on the bus")

    return Running(proc, f"status/execution/{name}", check)


def relay(ctx: Context) -> Running:
    sid, ring = unique("RL").upper(), ctx.tmp_path / f"{unique('relay')}.ring"
    rec = ctx.recorder(f"status/relay/{ring.name}")
    args = ["ring", "relay", "--mqtt", ctx.url, "--topics", f"quotes/{sid}", "--ring", str(ring)]
    proc = ctx.procs.tickbus(*args, name="relay")
    wait_until(  # counters come after the subscription; the bare "online" of the connect before
        lambda: last_status(rec, f"status/relay/{ring.name}", relayed=0),
        timeout=15,
        what="relay subscribed",
    )
    for n in range(200):  # QoS 0: still arriving at SIGTERM
        rec.publish(f"quotes/{sid}", quote_json(sid, 5.0, n + 1), qos=0)

    def check(status: dict[str, Any] | None) -> None:
        assert status is not None
        assert not writer_alive(ring)
        with RingReader(str(ring)) as reader:
            assert status["relayed"] == status["written"] == reader.written() > 0

    return Running(proc, f"status/relay/{ring.name}", check)


COMPONENTS: dict[str, Callable[[Context], Running]] = {
    "feed-synthetic": feed_synthetic,
    "feed-csv": feed_csv,
    "algo-server": algo_server,
    "bridge": bridge,
    "execution": execution,
    "ring-relay": relay,
}


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_sigterm_finishes_the_work_in_flight_goes_offline_and_exits_0(
    component: str,
    procs: Processes,
    mqtt_url: str,
    mosquitto_port: int,
    tmp_path: Path,
    algo_state: AlgoState,
) -> None:
    with ExitStack() as stack:
        ctx = Context(procs, mqtt_url, mosquitto_port, tmp_path, algo_state, stack)
        running_one = COMPONENTS[component](ctx)
        running_one.check(terminate(running_one, mosquitto_port))


def test_the_bridges_offline_status_carries_its_final_counters(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state: AlgoState
) -> None:
    with ExitStack() as stack:
        ctx = Context(procs, mqtt_url, mosquitto_port, tmp_path, algo_state, stack)
        status = terminate(bridge(ctx), mosquitto_port)
    assert status is not None
    assert (status["forwarded"], status["batches"], status["pending"]) == (1, 1, 0)


def terminate(component: Running, port: int) -> dict[str, Any] | None:
    """SIGTERM `component`; check the exit (0, in time, no child left, port closed) and its
    retained status (offline, from this process); returns that status (None: it has none)."""
    proc = component.proc
    family = descendants(proc.popen.pid)
    proc.signal(signal.SIGTERM)
    component.finish()
    assert exits_within(proc, EXIT_WITHIN_S, poll=component.poll) == 0
    assert "Traceback" not in proc.log()
    assert not [pid for pid in family if running(pid)], "a child outlived it"
    if component.port is not None:
        assert not port_open(component.port), "its port is still open"
    if component.status_topic is None:
        return None
    status = retained(port, component.status_topic)
    assert (status["state"], status["pid"]) == ("offline", proc.popen.pid)
    return status


# --- a broker restarted under a running stack ---------------------------------------


def test_every_component_comes_back_after_a_broker_restart(
    own_broker: Mosquitto, procs: Processes, tmp_path: Path, algo_state: AlgoState
) -> None:
    url, port = own_broker.url, own_broker.port
    name, sid, ring = unique("brk"), unique("BR").upper(), tmp_path / f"{unique('brk')}.ring"
    feed = unique("brkfeed")
    statuses = {
        "feed": f"status/feed/{feed}",
        "bridge": f"status/bridge/{name}",
        "relay": f"status/relay/{ring.name}",
    }
    server, rpc = serve(procs, "tests.algos_for_tests:OrderEveryQuote")
    paper, paper_name = start_paper(procs, url, port)
    statuses["execution"] = f"status/execution/{paper_name}"
    relay_args = ["ring", "relay", "--mqtt", url, "--topics", f"quotes/{sid}", "--ring", str(ring)]
    everyone = [server, paper, procs.tickbus(*relay_args, name="relay")]
    with recorder(port, "status/#", f"orders/{name}", f"fills/{name}") as rec:
        everyone.append(start_bridge(procs, url, rpc, name, f"channels=quotes/{sid}"))
        wait_online(rec, name)
        everyone.append(start_feed(procs, url, feed, [sid], 50))
        before = wait_until(
            lambda: (s := algo_state(rpc))["fills"] >= 5 and s, timeout=20, what="fills"
        )
        own_broker.stop()
        assert all(proc.alive() for proc in everyone)
        rec.messages.clear()
        own_broker.start()
        restarted = time.monotonic()

        def back() -> bool:
            fresh = [
                last_status(rec, t, mqtt_reconnects=lambda v: v >= 1) for t in statuses.values()
            ]
            state = algo_state(rpc)
            return (
                all(s is not None and s["state"] == "online" for s in fresh)
                and state["quotes"] > before["quotes"]
                and state["fills"] > before["fills"]
                and bool(rec.on(f"orders/{name}"))
                and bool(rec.on(f"fills/{name}"))
            )

        wait_until(back, timeout=10, what="every component back, quotes, orders and fills again")
        took = time.monotonic() - restarted
        latest = {component: last_status(rec, topic) for component, topic in statuses.items()}
    assert all(proc.alive() for proc in everyone), "nobody restarted"
    assert took < 10
    pids = {proc.popen.pid for proc in everyone}
    assert all(status is not None and status["pid"] in pids for status in latest.values())
    assert latest["feed"] is not None and latest["feed"]["dropped"] > 0, "the outage is counted"


# --- an algorithm server killed under its bridge ------------------------------------

MAX_PENDING = 50


def test_a_bridge_keeps_a_bounded_backlog_while_its_server_is_dead_and_counts_every_loss(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState
) -> None:
    name, feed = unique("dead"), unique("deadfeed")
    sids = [unique(f"K{n}").upper() for n in range(3)]
    topic = f"status/bridge/{name}"
    channels = json.dumps([f"quotes/{sid}" for sid in sids])
    quote_topics = [f"quotes/{sid}" for sid in sids]
    with recorder(mosquitto_port, topic, f"status/feed/{feed}", *quote_topics) as rec:
        server, addr = serve(procs, "tests.algos_for_tests:RecordingAlgo")
        flags = ["--max-pending", str(MAX_PENDING)]  # --overflow conflate, the default
        start_bridge(procs, mqtt_url, addr, name, f"channels={channels}", flags=flags)
        wait_online(rec, name)
        feeder = start_feed(procs, mqtt_url, feed, sids, 300)
        wait_until(
            lambda: last_status(rec, topic, forwarded=lambda v: v >= 30),
            timeout=15,
            what="quotes forwarded",
        )
        server.signal(signal.SIGKILL)
        server.wait(timeout=5)
        wait_until(
            lambda: last_status(rec, topic, state="degraded", conflated=lambda v: v > 0),
            timeout=15,
            what="the bridge degraded, conflating its backlog",
        )
        serve(procs, "tests.algos_for_tests:RecordingAlgo", addr)
        wait_until(
            lambda: last_status(rec, topic, state="online", reconnects=lambda v: v >= 1),
            timeout=15,
            what="the bridge reconnected",
        )
        wait_until(lambda: algo_state(addr)["received"], timeout=10, what="quotes at the new one")
        feeder.signal(signal.SIGTERM)
        assert feeder.wait(timeout=EXIT_WITHIN_S) == 0
        sent = wait_until(
            lambda: last_status(rec, f"status/feed/{feed}", state="offline"),
            timeout=5,
            what="the feed's final count",
        )["published"]

        def settled() -> dict[str, Any] | None:
            last = last_status(rec, topic)
            return last if last and last["quotes_in"] == sent and last["pending"] == 0 else None

        final = wait_until(settled, timeout=15, what=f"the bridge to take all {sent} quotes")
        received = algo_state(addr)["received"]
    assert final["state"] == "online" and final["algo_errors"] == 0
    accounted = final["forwarded"] + final["conflated"] + final["dropped"] + final["unrouted"]
    assert final["quotes_in"] == accounted + final["pending"]
    assert final["conflated"] > 0
    assert max(s["pending"] for s in rec.json_on(topic) if "pending" in s) <= MAX_PENDING
    for sid in sids:  # the new server: in order, none twice, and the newest quote last
        ts = [r[1] for r in received if r[0] == sid]
        assert ts == sorted(set(ts)), sid
        assert ts[-1] == json.loads(rec.on(f"quotes/{sid}")[-1])["ts"], sid


# --- a bridge killed and restarted while orders flow ---------------------------------


def test_orders_go_out_with_qos_1_and_a_restarted_bridge_publishes_none_twice(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state: AlgoState
) -> None:
    name, sid, feed = unique("dup"), unique("DU").upper(), unique("dupfeed")
    spec, state_dir = "tests.algos_for_tests:OrderEveryQuote", tmp_path / "book"
    addr = f"tcp://127.0.0.1:{free_port()}"
    serve_args = ["algo", "serve", spec, "--addr", addr, "--state-dir", str(state_dir)]
    server = procs.tickbus(*serve_args, name="algo")
    _paper, paper = start_paper(procs, mqtt_url, mosquitto_port)
    execution_topic = f"status/execution/{paper}"
    topics = [f"orders/{name}", f"fills/{name}", execution_topic, f"status/bridge/{name}"]
    rec = QosRecorder(mosquitto_port, topics)
    try:
        wait_until(lambda: "serving" in server.log(), timeout=15, what="server")
        bridge_args = (procs, mqtt_url, addr, name, f"channels=quotes/{sid}")
        first = start_bridge(*bridge_args)
        wait_online(rec, name)
        feeder = start_feed(procs, mqtt_url, feed, [sid], 50)
        wait_until(lambda: len(rec.on(f"orders/{name}")) >= 15, timeout=15, what="15 orders")
        first.signal(signal.SIGKILL)
        first.wait(timeout=5)
        killed_at = len(rec.on(f"orders/{name}"))
        start_bridge(*bridge_args)
        wait_until(
            lambda: len(rec.on(f"orders/{name}")) >= killed_at + 15,
            timeout=20,
            what="15 orders from the restarted bridge",
        )
        feeder.signal(signal.SIGTERM)
        assert feeder.wait(timeout=EXIT_WITHIN_S) == 0

        def settled() -> tuple[dict[str, Any], list[Any]] | None:
            """Execution's counters once they cover every order and fill seen on the bus."""
            orders, fills = rec.json_on(f"orders/{name}"), rec.on(f"fills/{name}")
            status = last_status(rec, execution_topic, orders_in=len(orders), fills=len(fills))
            return (status, orders) if status else None

        status, orders = wait_until(settled, timeout=10, what="execution to take every order")
        qos = {q for topic, q in rec.qos if topic == f"orders/{name}"}
    finally:
        rec.close()
    ids = [order["id"] for order in orders]
    assert len(ids) == len(set(ids)), "an order id published twice"
    assert qos == {1}
    assert status["duplicates"] == 0


def test_a_fill_published_while_the_bridge_is_down_reaches_the_algorithm(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path, algo_state: AlgoState
) -> None:
    name, sid = unique("gap"), unique("GP").upper()
    addr = f"tcp://127.0.0.1:{free_port()}"
    serve_args = ["algo", "serve", "tests.algos_for_tests:OrderEveryQuote", "--addr", addr]
    server = procs.tickbus(*serve_args, "--state-dir", str(tmp_path / "book"), name="algo")
    wait_until(lambda: "serving" in server.log(), timeout=15, what="server")
    bridge_args = (procs, mqtt_url, addr, name, f"channels=quotes/{sid}")
    with recorder(mosquitto_port, f"status/bridge/{name}", f"orders/{name}") as rec:
        first = start_bridge(*bridge_args)
        wait_online(rec, name)
        rec.publish(f"quotes/{sid}", quote_json(sid, 20.0, 1.0))
        [order] = wait_until(lambda: rec.json_on(f"orders/{name}"), timeout=10, what="an order")
        first.signal(signal.SIGKILL)
        first.wait(timeout=5)
        fill = {"id": unique("f"), "order_id": order["id"], "algo": name, "sid": sid,
                "side": "buy", "qty": 1, "price": 20.0, "fee": 0.0, "ts": 2.0}  # fmt: skip
        rec.publish(f"fills/{name}", json.dumps(fill))
        rec.messages.clear()
        start_bridge(*bridge_args)
        wait_online(rec, name)
        # A kept fill would come first, at the reconnect: once the next quote's order is out,
        # the bridge has delivered whatever it had.
        rec.publish(f"quotes/{sid}", quote_json(sid, 20.0, 3.0))
        wait_until(lambda: rec.on(f"orders/{name}"), timeout=10, what="the next order")
        state = algo_state(addr)
    assert state["portfolio"]["positions"].get(sid, {}).get("qty") == 1
    assert state["portfolio"]["open_orders"] == 1, "only the second order is still open"
