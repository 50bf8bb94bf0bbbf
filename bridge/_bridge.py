"""The per-algorithm forwarder: MQTT quotes in, batched zerorpc calls out, orders back.

One job per thread. paho's network thread decodes every message and appends
it to the `Inbox` (bad payloads go to ``deadletter/bridge`` at once); with a
ring source, a reader thread appends the ring's ticks instead. With
``--metrics-port``, prometheus_client's server thread reads the status fields
at each scrape (`BridgeMetrics`); only the ``events`` latency is observed here.
The gevent hub's main greenlet runs `Bridge.run`: it takes whatever has
arrived, forwards it in one ``events`` call (so exactly one call is in flight:
a lone quote goes out at once, and under load everything that arrived during a
call goes in the next), publishes the orders, and applies control commands
between calls. Because commands are applied only between calls, a swap splits
the quote stream cleanly: each quote goes to the old or to the new algorithm,
exactly once.

A zerorpc call costs the bridge about 0.4 ms of CPU whatever it carries, so
under load (a call carried at least `COALESCE_FROM` quotes) the next call
starts no sooner than `BridgeConfig.coalesce` after it: fewer, larger calls,
and the CPU goes to reading quotes. At 1,000 quotes/s batches hold one to
three quotes and never wait; at 10,000/s they hold dozens.

A feed faster than the algorithm fills the inbox up to ``--max-pending``;
beyond that the ``--overflow`` policy conflates, drops or blocks (`Overflow`),
and counts every quote it removes.

When the algorithm stops answering, the undelivered batch is put back, quotes
keep queueing (bounded by the same policy), the status says
``degraded``, and the bridge retries until the server is back, then calls
``initialize`` again and delivers what it kept.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent

from algos.server import CARRY_PARAM
from bridge._config import BridgeConfig
from bridge._control import ControlCommand, KillCommand, LiftCommand, SwapCommand, parse_control
from bridge._desk import OrderDesk, Report
from bridge._inbox import Inbox
from bridge._link import AlgorithmLink
from bridge._metrics import BridgeMetrics
from bridge._overflow import Entry
from bridge._ring_source import RingSource
from broker import (
    BusClient,
    PriceBand,
    Quote,
    control_topic,
    decode_quotes,
    encode_quote_json,
    fills_topic,
    rejected_orders_topic,
    subscription_filters,
    topic_matches,
    validate_filter,
)
from risk import RiskGate
from tickbus.errors import (
    AlgorithmError,
    AlgorithmNotInitialized,
    AlgorithmUnavailable,
    ConfigError,
    OrderRejected,
    QuoteRejected,
)
from tickbus.logs import LogThrottle, quiet_zerorpc
from tickbus.metrics import serve_metrics

log = logging.getLogger(__name__)

COMPONENT = "bridge"

SESSION_EXPIRY_S = 3600
"""How long the broker keeps a stopped bridge's session and queues its fills and commands."""

COALESCE_FROM = 16
"""Quotes in one call from which the next call waits out `BridgeConfig.coalesce`."""

REINITIALIZE_EVERY_S = 5.0
"""Least time between two re-initialisations of a server that says it is not initialized."""


@dataclass
class BridgeCounters:
    """What the hub's greenlet counts; published on the status topic."""

    forwarded: int = 0
    batches: int = 0
    algo_errors: int = 0
    quotes_failed: int = 0
    last_algo_error: str | None = None
    unrouted: int = 0
    reconnects: int = 0
    swaps: int = 0
    last_swap: dict[str, Any] = field(default_factory=dict)


class Bridge:
    """Connects one algorithm server to the bus. Run it with `run()`; stop with `stop()`.

    Not thread-safe, apart from `stop`, which a signal handler may call.
    """

    def __init__(self, config: BridgeConfig) -> None:
        self._config = config
        self._inbox: Inbox[ControlCommand | Report] = Inbox(
            capacity=config.max_pending, overflow=config.overflow
        )
        self._control_topic = control_topic(COMPONENT, config.name)
        self._report_topics = (fills_topic(config.name), rejected_orders_topic(config.name))
        self._counters = BridgeCounters()
        # Written only by paho's thread:
        self._received = 0
        self._rejected = 0
        self._ignored = 0
        # Written only by the thread of the quote source (paho's, or the ring's):
        self._band = PriceBand(config.max_price_jump_pct)
        self._suspect = 0
        # Read by paho's thread, replaced (never mutated) by the hub: the channels
        # whose messages are decoded. Others arrive only through a wider
        # subscription (`subscription_filters`) and are ignored, never dead-lettered.
        self._accepted: tuple[str, ...] = ()
        # Owned by the hub's greenlet:
        self._endpoint = config.rpc
        self._link: AlgorithmLink | None = None
        self._channels: list[str] = []
        self._subscriptions: list[str] = []
        self._routes: dict[str, bool] = {}
        self._problem: str | None = "connecting to the algorithm"
        self._algo_state: dict[str, Any] | None = None
        self._stopping = False
        # A session that outlives the process: fills published while the bridge
        # restarts are queued by the broker (QoS 1), not lost.
        self._bus = BusClient(
            config.mqtt,
            component=COMPONENT,
            name=config.name,
            on_message=self._on_message,
            session_expiry=SESSION_EXPIRY_S,
        )
        self._desk = OrderDesk(
            config.name,
            RiskGate(config.risk),
            self._bus,
            dead_letter=self._dead_letter,
        )
        self._letter_log = LogThrottle(log)
        self._failure_log = LogThrottle(log)
        self._reinitialize_log = LogThrottle(log)
        self._next_reinitialize = 0.0
        self._ring = None if config.ring is None else RingSource(config.ring, self._from_ring)
        self._metrics = BridgeMetrics(config.name, self._stats)

    def run(self) -> None:
        """Serve until `stop()` (or SIGTERM/SIGINT): connect, forward, reconnect, swap.

        Raises:
            ConfigError: The broker cannot be reached at start, or the metrics
                address (`BridgeConfig.metrics`) cannot be bound.
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self.stop)
        quiet_zerorpc()
        try:
            with serve_metrics(self._config.metrics, self._metrics), self._bus as bus:
                try:
                    bus.subscribe([self._control_topic, *self._report_topics], qos=1)
                    if self._ring is not None:
                        self._ring.start()
                    self._serve()
                    self._publish_stats()  # the offline status then carries the final counters
                finally:
                    self._inbox.close()  # a producer blocked on a full inbox must not hang us
        finally:
            if self._ring is not None:
                self._ring.close()
            if self._link is not None:
                self._link.close()

    def stop(self) -> None:
        """Finish the call in flight, then leave `run` (publishing ``offline``)."""
        self._stopping = True
        self._inbox.wake()

    def _serve(self) -> None:
        next_stats = 0.0
        next_attempt = 0.0
        while not self._stopping:
            now = time.monotonic()
            if self._link is None and now >= next_attempt:
                self._connect()
                next_attempt = now + self._config.retry_interval
            max_quotes = 0 if self._link is None else self._config.max_batch
            commands, entries = self._inbox.take(max_quotes=max_quotes)
            for command in commands:
                self._apply(command)
            if self._link is not None and self._desk.pending:
                self._deliver_reports()
            if entries:
                started = time.monotonic()
                self._forward(entries)
                if len(entries) >= COALESCE_FROM:  # quotes outpace calls: let them gather
                    gevent.sleep(max(0.0, started + self._config.coalesce - time.monotonic()))
            if now >= next_stats:
                if self._link is not None:
                    self._refresh_algo_state()
                self._publish_stats()
                next_stats = now + self._config.stats_interval
            if not entries:
                self._inbox.wait(self._wait_time(next_stats, next_attempt))

    def _wait_time(self, next_stats: float, next_attempt: float) -> float:
        until = next_stats if self._link is not None else min(next_stats, next_attempt)
        return max(0.0, until - time.monotonic())

    # -- paho's thread ---------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self._control_topic:
            self._on_control(payload)
            return
        if topic in self._report_topics:
            self._on_report(topic, payload)
            return
        if not any(topic_matches(channel, topic) for channel in self._accepted):
            self._ignored += 1
            return
        try:
            quotes = decode_quotes(payload)
        except QuoteRejected as exc:
            self._rejected += 1
            self._dead_letter(exc.reason, topic, payload)
            return
        self._received += len(quotes)
        passed = self._within_band(topic, quotes)
        if passed:
            self._inbox.put_quotes(topic, passed)

    def _from_ring(self, entries: list[Entry]) -> None:
        """Queue a batch from the ring (in the ring's thread): what passes the price band."""
        passed = [entry for entry in entries if self._in_band(*entry)]
        if passed:
            self._inbox.put_entries(passed)

    def _within_band(self, topic: str, quotes: list[Quote]) -> list[Quote]:
        """The quotes whose price is within the band (`_in_band`)."""
        return [quote for quote in quotes if self._in_band(topic, quote)]

    def _in_band(self, topic: str, quote: Quote) -> bool:
        """Whether `quote` passes the price band; a suspect one is dead-lettered and counted."""
        reason = self._band.check(quote["sid"], quote["price"])
        if reason is None:
            return True
        self._suspect += 1
        self._dead_letter(reason, topic, encode_quote_json(quote))
        return False

    def _on_control(self, payload: bytes) -> None:
        try:
            command = parse_control(payload)
        except ConfigError as exc:
            self._rejected += 1
            self._dead_letter(exc.reason, self._control_topic, payload)
            return
        # The switch moves here, not between calls: orders the call in flight
        # returns are already checked against it.
        if isinstance(command, KillCommand):
            self._desk.gate.kill(command.reason)
        elif isinstance(command, LiftCommand):
            self._desk.gate.lift()
        self._inbox.put_control(command)

    def _on_report(self, topic: str, payload: bytes) -> None:
        try:
            report = self._desk.report_from(topic, payload)
        except OrderRejected as exc:
            self._rejected += 1
            self._dead_letter(exc.reason, topic, payload)
            return
        if report is not None:
            self._inbox.put_control(report)

    def _dead_letter(self, reason: str, topic: str, payload: bytes) -> None:
        """Publish `payload` on ``deadletter/bridge``; log it (at most a line per 10 s)."""
        self._letter_log.log("dead-lettered a message on %s: %s", topic, reason)
        self._bus.publish_dead_letter(COMPONENT, reason=reason, topic=topic, payload=payload)

    # -- the hub's greenlet ----------------------------------------------------------

    def _apply(self, command: ControlCommand | Report) -> None:
        if isinstance(command, Report):
            self._desk.queue(command)
        elif isinstance(command, SwapCommand):
            self._swap(command)
        else:  # the switch already moved on paho's thread; report it
            log.warning(
                "kill switch %s",
                f"on: {self._desk.gate.killed}" if self._desk.gate.killed else "lifted",
            )
            self._publish_stats()

    def _deliver_reports(self) -> None:
        assert self._link is not None
        try:
            self._desk.deliver(self._link)
        except AlgorithmUnavailable as exc:
            self._lose_link(exc.reason)

    def _connect(self) -> None:
        """One attempt to reach the current endpoint and initialise it."""
        try:
            link, channels = self._open(self._endpoint)
        except (AlgorithmUnavailable, AlgorithmError) as exc:
            self._set_problem(exc.reason)
            return
        if self._counters.batches or self._channels:
            self._counters.reconnects += 1
        log.info("forwarding %s to %s", channels, link.endpoint)
        self._adopt(link, channels)

    def _open(
        self, endpoint: str, carried: dict[str, Any] | None = None
    ) -> tuple[AlgorithmLink, list[str]]:
        """Connect to `endpoint` and initialise it; returns the link and its channels.

        `carried` is a portfolio snapshot the new algorithm starts from.
        """
        link = AlgorithmLink(
            endpoint, heartbeat=self._config.heartbeat, timeout=self._config.rpc_timeout
        )
        params = dict(self._config.params)
        if carried is not None:
            params[CARRY_PARAM] = carried
        try:
            return link, [validate_filter(c) for c in link.initialize(params)]
        except ConfigError as exc:
            link.close()
            raise AlgorithmError(
                endpoint, f"initialize returned bad channels: {exc.reason}"
            ) from exc
        except BaseException:
            link.close()
            raise

    def _adopt(self, link: AlgorithmLink, channels: list[str]) -> None:
        """Make `link` the algorithm; subscribe to new filters before dropping old ones.

        The subscriptions (`subscription_filters`) deliver each message once even
        when channels overlap; quotes are then routed by the channels themselves.
        """
        # Quotes from a ring are already here; only MQTT needs subscriptions.
        subscriptions = subscription_filters(channels) if self._ring is None else []
        self._accepted = (*self._channels, *channels)  # old and new, while switching
        self._bus.subscribe([f for f in subscriptions if f not in self._subscriptions])
        self._bus.unsubscribe([f for f in self._subscriptions if f not in subscriptions])
        self._accepted = tuple(channels)
        self._subscriptions = subscriptions
        self._link, self._endpoint, self._channels = link, link.endpoint, channels
        self._routes.clear()
        self._problem = None
        self._inbox.set_draining(True)
        self._deliver_reports()
        if self._link is not None:
            self._refresh_algo_state()
        if self._algo_state is not None and self._link is not None:
            self._desk.seed(self._algo_state)
        self._publish_stats()

    def _forward(self, entries: list[Entry]) -> None:
        if self._link is None:  # a swap just failed over a lost link: keep them
            self._inbox.requeue(entries)
            return
        routed = [entry for entry in entries if self._is_routed(entry[0])]
        self._counters.unrouted += len(entries) - len(routed)
        if not routed:
            return
        quotes = [quote for _topic, quote in routed]
        self._desk.note_prices(quotes)
        try:
            orders = self._call_events(quotes)
        except AlgorithmUnavailable as exc:
            self._lose_link(exc.reason, undelivered=routed)
            return
        except AlgorithmError as exc:
            self._batch_failed(routed, exc.reason)
            return
        self._counters.forwarded += len(quotes)
        self._counters.batches += 1
        self._desk.submit(orders)
        if self._desk.pending:  # orders the desk refused: the algorithm frees their holds
            self._deliver_reports()

    def _call_events(self, quotes: list[Quote]) -> list[Any]:
        """One ``events`` call; a server that lost its initialisation gets one more chance.

        Such a server (a new process on the same address, typically) is
        initialised again and asked once more.

        Raises:
            AlgorithmUnavailable: No answer (the batch is to be kept).
            AlgorithmError: The algorithm raised or answered nonsense, or it was
                still not initialised after one re-initialise (the batch is to
                be dead-lettered).
        """
        assert self._link is not None
        try:
            with self._metrics.events_latency.time():
                return self._link.events(quotes)
        except AlgorithmNotInitialized as exc:
            self._reinitialize(exc.reason)
        assert self._link is not None
        try:
            with self._metrics.events_latency.time():
                return self._link.events(quotes)
        except AlgorithmNotInitialized as exc:
            raise AlgorithmError(
                self._endpoint, f"still not initialized after initialize(): {exc.reason}"
            ) from exc

    def _reinitialize(self, why: str) -> None:
        """Open the current endpoint again and initialise it, as after a reconnect.

        At most once per `REINITIALIZE_EVERY_S`: a server that keeps forgetting
        its initialisation costs one attempt, not one per batch.

        Raises:
            AlgorithmUnavailable: No answer; the bridge is then without a link.
            AlgorithmError: Initialised again too recently, or ``initialize``
                raised or returned bad channels (the bridge is then without a link).
        """
        now = time.monotonic()
        if now < self._next_reinitialize:
            raise AlgorithmError(
                self._endpoint,
                f"{why} (it was initialised again less than {REINITIALIZE_EVERY_S:g} s ago)",
            )
        self._next_reinitialize = now + REINITIALIZE_EVERY_S
        self._reinitialize_log.log(
            "the algorithm at %s is not initialized (%s): initialising it again",
            self._endpoint,
            why,
        )
        assert self._link is not None
        self._link.close()
        self._link = None
        try:
            link, channels = self._open(self._endpoint)
        except (AlgorithmUnavailable, AlgorithmError) as exc:
            self._set_problem(exc.reason)
            raise
        self._counters.reconnects += 1
        self._adopt(link, channels)
        if self._link is None:  # lost again while adopting
            raise AlgorithmUnavailable(self._endpoint, self._problem or "lost while adopting")

    def _batch_failed(self, routed: list[Entry], reason: str) -> None:
        """Dead-letter a batch the algorithm failed on, count it, and go on with the next."""
        quotes = [quote for _topic, quote in routed]
        self._counters.algo_errors += 1
        self._counters.quotes_failed += len(quotes)
        self._counters.last_algo_error = reason
        self._failure_log.log(
            "the algorithm failed on a batch of %d quotes (%d batches so far), "
            "dead-lettered on deadletter/bridge: %s",
            len(quotes),
            self._counters.algo_errors,
            reason,
        )
        topic = routed[0][0] if len({topic for topic, _quote in routed}) == 1 else None
        self._bus.publish_dead_letter(
            COMPONENT,
            reason=f"the algorithm failed on this batch: {reason}",
            topic=topic,
            payload=json.dumps(quotes).encode(),
        )

    def _is_routed(self, topic: str) -> bool:
        routed = self._routes.get(topic)
        if routed is None:
            routed = any(topic_matches(channel, topic) for channel in self._channels)
            self._routes[topic] = routed
        return routed

    def _lose_link(self, reason: str, *, undelivered: Sequence[Entry] = ()) -> None:
        self._inbox.set_draining(False)  # before the requeue: nobody will make room now
        self._inbox.requeue(undelivered)
        if self._link is not None:
            self._link.close()
            self._link = None
        self._set_problem(reason)

    def _set_problem(self, reason: str) -> None:
        """Report `reason` as why the bridge is degraded (once per change, not per retry)."""
        if reason != self._problem:
            log.warning("degraded: %s", reason)
            self._problem = reason
            self._publish_stats()

    def _swap(self, command: SwapCommand) -> None:
        report: dict[str, Any] = {
            "id": command.id,
            "rpc": command.rpc,
            "from": self._endpoint,
            "carry_portfolio": command.carry_portfolio,
        }
        try:
            carried = self._carried_portfolio() if command.carry_portfolio else None
            link, channels = self._open(command.rpc, carried)
        except (AlgorithmUnavailable, AlgorithmError) as exc:
            log.warning("swap to %s failed: %s", command.rpc, exc.reason)
            self._counters.last_swap = {**report, "ok": False, "reason": exc.reason}
            self._publish_stats()
            return
        old = self._link
        log.info("swapped to %s: forwarding %s", link.endpoint, channels)
        self._adopt(link, channels)
        self._counters.swaps += 1
        report.update(ok=True, finalize=self._finalize(old) if old is not None else None)
        self._counters.last_swap = report
        self._publish_stats()

    def _carried_portfolio(self) -> dict[str, Any]:
        """The current algorithm's portfolio snapshot, for its successor.

        Raises:
            AlgorithmUnavailable: There is no current algorithm, or it does not answer.
            AlgorithmError: Its state has no ``portfolio_snapshot``.
        """
        if self._link is None:
            raise AlgorithmUnavailable(self._endpoint, "no algorithm to carry the portfolio from")
        snapshot = self._link.state().get("portfolio_snapshot")
        if not isinstance(snapshot, dict):
            raise AlgorithmError(self._endpoint, "its state() has no portfolio_snapshot to carry")
        return snapshot

    def _finalize(self, old: AlgorithmLink) -> dict[str, Any] | str:
        """Call finalize on a replaced algorithm; its final state, or why there is none."""
        try:
            return old.finalize()
        except (AlgorithmUnavailable, AlgorithmError) as exc:
            return f"finalize failed: {exc.reason}"
        finally:
            old.close()

    def _publish_stats(self) -> None:
        self._bus.publish_status(**self._stats())

    def _stats(self) -> dict[str, Any]:
        """The status fields; the metrics collector reads them too, from its own thread."""
        counters = self._counters
        return dict(
            state="online" if self._problem is None else "degraded",
            reason=self._problem,
            rpc=self._endpoint,
            channels=self._channels,
            quotes_in=self._received + (0 if self._ring is None else self._ring.received),
            ignored=self._ignored,
            rejected=self._rejected,
            suspect=self._suspect,
            max_price_jump_pct=self._band.max_jump_pct,
            pending=len(self._inbox),
            overflow=self._inbox.overflow.value,
            max_pending=self._inbox.capacity,
            conflated=self._inbox.conflated,
            dropped=self._inbox.dropped,
            blocked_s=round(self._inbox.blocked_s, 3),
            handler_errors=self._bus.handler_errors,
            mqtt_reconnects=self._bus.reconnects,
            source="mqtt" if self._config.ring is None else f"ring://{self._config.ring}",
            ring_lost=None if self._ring is None else self._ring.lost,
            **vars(counters),
            **vars(self._desk.counters),
            reports_pending=self._desk.pending,
            killed=self._desk.gate.killed,
            risk_limits={k: v for k, v in vars(self._desk.gate.limits).items() if v is not None},
            algo=self._algo_state,
        )

    def _refresh_algo_state(self) -> None:
        assert self._link is not None
        try:
            state = self._link.state()
            json.dumps(state, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self._algo_state = {"error": f"state() is not JSON-safe: {exc}"}
            return
        except AlgorithmUnavailable as exc:
            self._lose_link(exc.reason)
            return
        except AlgorithmError as exc:
            self._algo_state = {"error": exc.reason}
            return
        if state.get("initialized") is False:  # a new server process: initialise it again
            self._lose_link("the algorithm is not initialized (a new server process?)")
            return
        self._algo_state = state
