"""Quotes from a host-local ring instead of MQTT, read in a thread of the bridge's own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bridge._overflow import Entry
from broker import quote_topic
from ring import RingReader

log = logging.getLogger(__name__)

BATCH = 4096
POLL_TIMEOUT_S = 0.1


class RingSource:
    """Reads every new tick of a ring and hands it on as a quote on ``quotes/<SID>``.

    The reader starts at the ring's newest tick when the source is made (so
    quotes that arrive while the bridge connects to its algorithm are kept in
    the inbox, not lost). Ticks the writer overwrote before they were read are
    counted in `lost`; the bridge reports them on its status topic. The bridge
    then routes quotes by its algorithm's channels, with the same MQTT
    wildcard rules as for quotes from the broker.

    Args:
        name: The ring's name or path.
        deliver: Called in the source's thread with each batch of entries
            read (the bridge filters them, then puts them in its inbox).

    Raises:
        RingError: No such ring, or not a ring of this layout.
    """

    def __init__(self, name: str, deliver: Callable[[list[Entry]], None]) -> None:
        self._reader = RingReader(name)
        self._deliver = deliver
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ring-source", daemon=True)
        self._topics: dict[str, str] = {}
        self.received = 0
        self.errors = 0

    @property
    def lost(self) -> int:
        """Ticks overwritten by the writer before this source could read them."""
        return self._reader.lost

    def start(self) -> None:
        """Start reading in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop reading and unmap the ring."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._reader.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._pass()
            except Exception:  # a bug here must not silently stop every quote
                self.errors += 1
                log.exception("reading the ring failed; retrying")
                self._stopping.wait(POLL_TIMEOUT_S)

    def _pass(self) -> None:
        reader = self._reader
        if not reader.wait(POLL_TIMEOUT_S):
            return
        quotes = reader.to_quotes(reader.read_batch(BATCH))
        entries: list[Entry] = [(self._topic(quote["sid"]), quote) for quote in quotes]
        if entries:
            self.received += len(entries)
            self._deliver(entries)

    def _topic(self, sid: str) -> str:
        topic = self._topics.get(sid)
        if topic is None:
            topic = self._topics[sid] = quote_topic(sid)
        return topic
