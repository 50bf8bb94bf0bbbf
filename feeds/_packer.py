"""Packing quotes: many quotes of one symbol per MQTT message, for high rates."""

from __future__ import annotations

import time
from collections.abc import Callable

from broker import Quote


class Packer:
    """Per-symbol buffers that are released as packs of at most `size` quotes.

    A symbol's pack is released when it holds `size` quotes, or when its
    oldest quote has waited `max_wait` seconds (checked on every `add` and
    `due` call), so order per symbol is kept and no quote waits long when the
    rate is low. `drain` releases everything, for a clean stop.

    Args:
        size: Quotes per pack, >= 1.
        max_wait: Seconds a quote may wait for its pack to fill; None: no limit.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        size: int,
        max_wait: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = size
        self._max_wait = max_wait
        self._clock = clock
        self._packs: dict[str, list[Quote]] = {}
        self._since: dict[str, float] = {}

    def add(self, quote: Quote) -> list[list[Quote]]:
        """Buffer `quote`; returns the packs now ready (its own when full, and any overdue)."""
        sid = quote["sid"]
        pack = self._packs.get(sid)
        if pack is None:
            pack = self._packs[sid] = []
            self._since[sid] = self._clock()
        pack.append(quote)
        ready = [self._release(sid)] if len(pack) >= self._size else []
        return ready + self.due()

    def due(self) -> list[list[Quote]]:
        """Packs whose oldest quote has waited `max_wait` or longer."""
        if self._max_wait is None:
            return []
        limit = self._clock() - self._max_wait
        return [self._release(sid) for sid, since in list(self._since.items()) if since <= limit]

    def drain(self) -> list[list[Quote]]:
        """Every pack, full or not."""
        return [self._release(sid) for sid in list(self._packs)]

    def _release(self, sid: str) -> list[Quote]:
        del self._since[sid]
        return self._packs.pop(sid)
