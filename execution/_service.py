"""The paper execution service: a `PaperBook` wired to MQTT.

Topics:

* in: orders on ``orders/+`` (QoS 1; one level, so ``orders/<algo>/rejected``
  is not read back) and quotes on ``quotes`` and ``quotes/#`` (one
  subscription, ``quotes/#``, which covers both);
* out: fills on ``fills/<algo>`` (QoS 1), rejected orders on
  ``orders/<algo>/rejected`` (QoS 1), bad quotes, suspect ones (beyond the
  price band, `broker.PriceBand`) and unanswerable orders on
  ``deadletter/execution``, status on ``status/execution/<name>``.

Threading: paho's network thread calls `_on_message`; the main thread expires
waiting market orders and publishes stats every `TICK_S`. Both take the one
lock around the book and the counters, so an order and a quote are never
handled at the same time, and fills are published in the order they happen.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import asdict, dataclass
from threading import Lock
from types import FrameType
from typing import Any

from broker import (
    MAX_ORDER_BYTES,
    QUOTES,
    REJECTED_BY_EXECUTION,
    BusClient,
    Order,
    PriceBand,
    decode_order,
    decode_quotes,
    encode_quote_json,
    fills_topic,
    rejected_orders_topic,
    rejection_notice,
    subscription_filters,
    validate_name,
)
from execution._book import Fill, PaperBook, Rejection
from execution._config import PaperConfig
from execution._metrics import ExecutionMetrics
from tickbus.errors import ConfigError, OrderRejected, QuoteRejected
from tickbus.metrics import serve_metrics

log = logging.getLogger(__name__)

COMPONENT = "execution"
ORDERS_FILTER = "orders/+"
SESSION_EXPIRY_S = 3600
"""How long the broker keeps a stopped service's session and queues the orders for it."""
STATS_INTERVAL_S = 1.0
TICK_S = 0.1
STOPPED_REASON = "the execution service stopped before the order filled"


@dataclass
class _Counters:
    orders_in: int = 0
    fills: int = 0
    rejected: int = 0
    quotes_in: int = 0
    bad_quotes: int = 0
    suspect: int = 0


def run_paper(config: PaperConfig) -> None:
    """Fill orders on paper until SIGTERM or SIGINT; see `PaperBook` for the prices.

    On a signal it stops reading quotes, rejects every order still waiting
    and every order that arrives until it disconnects (reason
    `STOPPED_REASON`), publishes its last counters with the ``offline``
    status, and returns. The broker keeps its session (`SESSION_EXPIRY_S`):
    orders published while it is down are handled at its next start.

    Raises:
        ConfigError: The broker cannot be reached, or the metrics address
            (`PaperConfig.metrics`) cannot be bound.
    """
    stopping: list[bool] = []

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.append(True)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    service = _PaperService(config)
    metrics = ExecutionMetrics(config.name, service.stats)
    with serve_metrics(config.metrics, metrics), service.bus:
        service.start()
        log.info("paper execution %s online at %s", config.name, config.mqtt.url)
        next_stats = 0.0
        while not stopping:
            service.expire()
            if time.monotonic() >= next_stats:
                service.publish_stats()
                next_stats = time.monotonic() + STATS_INTERVAL_S
            time.sleep(TICK_S)
        service.stop()
    log.info("paper execution %s offline", config.name)


class _PaperService:
    """Routes messages to the book and publishes what comes out. See the module docstring."""

    def __init__(self, config: PaperConfig) -> None:
        self._book = PaperBook(
            slippage_bps=config.slippage_bps,
            fee_bps=config.fee_bps,
            quote_timeout=config.quote_timeout,
        )
        self._counters = _Counters()
        self._band = PriceBand(config.max_price_jump_pct)
        self._lock = Lock()
        self._stopped = False
        self._quote_filters = subscription_filters([QUOTES, f"{QUOTES}/#"])
        # A session that outlives the process: orders published while the
        # service restarts are queued by the broker (QoS 1) and handled when it is back.
        self.bus = BusClient(
            config.mqtt,
            component=COMPONENT,
            name=config.name,
            on_message=self._on_message,
            session_expiry=SESSION_EXPIRY_S,
        )

    def start(self) -> None:
        """Subscribe to orders (QoS 1) and quotes (QoS 0)."""
        self.bus.subscribe([ORDERS_FILTER], qos=1)
        self.bus.subscribe(self._quote_filters)

    def stop(self) -> None:
        """Stop filling: reject what waits and what still arrives; publish the final counters.

        The orders subscription stays in the broker's session, so orders sent
        while the service is down wait there for its next start.
        """
        self.bus.unsubscribe(self._quote_filters)
        with self._lock:
            self._stopped = True  # from now on, an order that arrives is rejected
            for rejection in self._book.cancel_all(STOPPED_REASON):
                self._reject(rejection)
        self.publish_stats()

    def expire(self) -> None:
        """Reject the market orders that waited too long for a quote."""
        with self._lock:
            for rejection in self._book.expire():
                self._reject(rejection)

    def publish_stats(self) -> None:
        """Publish the counters on the status topic (``online``; `BusClient` ends with offline)."""
        self.bus.publish_status("online", **self.stats())

    def stats(self) -> dict[str, Any]:
        """The counters, read under the lock; any thread may call it (the metrics server does)."""
        with self._lock:
            return {
                **asdict(self._counters),
                "duplicates": self._book.duplicates,
                "waiting": self._book.waiting,
                "handler_errors": self.bus.handler_errors,
                "mqtt_reconnects": self.bus.reconnects,
            }

    def _on_message(self, topic: str, payload: bytes) -> None:
        with self._lock:
            if self._stopped:
                if topic.startswith("orders/"):
                    self._reject_late_order(topic, payload)
                return
            if topic.startswith("orders/"):
                self._on_order(topic, payload)
            else:
                self._on_quotes(topic, payload)

    def _on_order(self, topic: str, payload: bytes) -> None:
        self._counters.orders_in += 1
        algo = topic.removeprefix("orders/")
        try:
            order = decode_order(payload)
            if order["algo"] != algo:
                raise OrderRejected(f"algo {order['algo']!r} does not match the topic {topic!r}")
        except OrderRejected as exc:
            self._reject_payload(algo, topic, payload, exc.reason)
            return
        outcome = self._book.submit(order)
        if isinstance(outcome, Rejection):
            self._reject(outcome)
        elif outcome is not None:
            self._publish_fill(outcome)

    def _reject_late_order(self, topic: str, payload: bytes) -> None:
        """Answer an order that arrived after `stop`: it will not be filled."""
        self._counters.orders_in += 1
        algo = topic.removeprefix("orders/")
        try:
            order = decode_order(payload)
        except OrderRejected as exc:
            self._reject_payload(algo, topic, payload, exc.reason)
            return
        self._reject(Rejection(order, STOPPED_REASON))

    def _on_quotes(self, topic: str, payload: bytes) -> None:
        try:
            quotes = decode_quotes(payload)
        except QuoteRejected as exc:
            self._counters.bad_quotes += 1
            self.bus.publish_dead_letter(COMPONENT, reason=exc.reason, topic=topic, payload=payload)
            return
        self._counters.quotes_in += len(quotes)
        for quote in quotes:
            suspect = self._band.check(quote["sid"], quote["price"])
            if suspect is not None:
                self._counters.suspect += 1
                self.bus.publish_dead_letter(
                    COMPONENT, reason=suspect, topic=topic, payload=encode_quote_json(quote)
                )
                continue
            for fill in self._book.on_quote(quote):
                self._publish_fill(fill)

    def _publish_fill(self, fill: Fill) -> None:
        self.bus.publish_json(fills_topic(fill["algo"]), fill, qos=1)
        self._counters.fills += 1

    def _reject(self, rejection: Rejection) -> None:
        order: Order = rejection.order
        self._send_rejection(order["algo"], rejection.reason, order)

    def _reject_payload(self, algo: str, topic: str, payload: bytes, reason: str) -> None:
        """Answer a bad payload on the rejection topic of the algo its topic names.

        The payload goes back as text: its first `MAX_ORDER_BYTES` bytes, with
        undecodable bytes replaced. A topic level that cannot be an algo name
        (``orders/`` has an empty one) leaves nobody to answer: dead letter.
        """
        try:
            validate_name(algo)
        except ConfigError:
            self._counters.rejected += 1
            self.bus.publish_dead_letter(COMPONENT, reason=reason, topic=topic, payload=payload)
            return
        text = payload[:MAX_ORDER_BYTES].decode(errors="replace")
        self._send_rejection(algo, reason, text)

    def _send_rejection(self, algo: str, reason: str, order: Order | str) -> None:
        log.info("rejected an order of %s: %s", algo, reason)
        message = rejection_notice(order, reason, by=REJECTED_BY_EXECUTION)
        self.bus.publish_json(rejected_orders_topic(algo), message, qos=1)
        self._counters.rejected += 1
