"""What a bridge does with quotes that arrive faster than its algorithm takes them."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable

from broker import Quote

Entry = tuple[str, Quote]
"""A quote and the topic it arrived on."""


class Overflow(enum.Enum):
    """The policy for a full quote queue (``--overflow``).

    ``conflate`` (the default): the queue is compacted to the newest quote of
    each symbol (per topic), so a slow algorithm always ends up with the latest
    price of everything, and memory stays bounded; the older quotes are
    counted as ``conflated``.
    ``drop-oldest``: the oldest quotes are dropped and counted as ``dropped``.
    ``block``: the source waits until the algorithm has taken quotes. With
    MQTT that pushes back onto the broker, which queues messages for the
    bridge only up to its own limit (mosquitto's ``max_queued_messages``) and
    drops QoS 0 messages beyond it, where the bridge cannot count them; with
    a ring, the ring overruns and the loss is counted as ``ring_lost``. While
    the algorithm is unreachable nothing drains the queue, and waiting would
    stall the MQTT connection itself (no keepalive, no status), so the oldest
    quotes are then dropped and counted, as with ``drop-oldest``.

    In every policy nothing is lost while the queue has room.
    """

    CONFLATE = "conflate"
    DROP_OLDEST = "drop-oldest"
    BLOCK = "block"


def newest_per_symbol(entries: Iterable[Entry]) -> list[Entry]:
    """The newest entry of each (topic, symbol), in the order those newest entries arrived."""
    newest: dict[tuple[str, str], Entry] = {}
    for entry in reversed(list(entries)):
        newest.setdefault((entry[0], entry[1]["sid"]), entry)
    return list(reversed(newest.values()))


def drop_oldest(queue: deque[Entry], keep: int) -> int:
    """Drop the oldest entries of `queue` until at most `keep` remain; returns how many."""
    excess = max(0, len(queue) - keep)
    for _ in range(excess):
        queue.popleft()
    return excess
