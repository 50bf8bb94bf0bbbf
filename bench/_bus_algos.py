"""Algorithms for bench/bus.py, served with ``tickbus algo serve _bus_algos:NAME --app-dir bench``.

They do the least an algorithm can: `CountingAlgo.events` stamps its entry
time, counts and keeps a bounded sample of per-quote delays; it orders
nothing and skips the base class's per-quote checks, so the figures measure
the transport, not the algorithm. `SlowAlgo` also sleeps in proportion to its
batch, a deliberately slow consumer with a known capacity.

The figures of the current run come back through the RPCs (JSON-safe):
``state()["bench"]`` reads its counts, ``finalize()`` returns them with the
delay percentiles and starts a new run, so one long-lived server serves every
round of a measurement.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from algos import Algorithm, Order

MAX_SAMPLES = 200_000
"""Most per-quote delays one run keeps (the first ones after its warm-up)."""


@dataclass
class Run:
    """What one run delivered: counts, arrival stamps (``time.time()``) and delay samples.

    Attributes:
        quotes: Quotes received.
        batches: ``events`` calls.
        first_batch: Quotes in the first call; they arrived before `first_t`.
        first_t: Entry time of the first call.
        last_t: Entry time of the latest call.
        delays: Seconds from a quote's ``ts`` to the entry of its call, for
            quotes that arrived `warmup_s` or more after `first_t`.
    """

    quotes: int = 0
    batches: int = 0
    first_batch: int = 0
    first_t: float = 0.0
    last_t: float = 0.0
    delays: list[float] = field(default_factory=list)

    def counts(self, now: float) -> dict[str, Any]:
        """JSON-safe counts, arrival stamps and ``per_s``: cheap, for every `state` call."""
        span = self.last_t - self.first_t
        return {
            "quotes": self.quotes,
            "batches": self.batches,
            "first_batch": self.first_batch,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "idle_s": now - self.last_t if self.batches else None,
            "per_s": (self.quotes - self.first_batch) / span if span > 0 else 0.0,
        }

    def delay_figures(self) -> dict[str, Any]:
        """Percentiles of `delays` in ms (sorting them: only once, when the run ends)."""
        ordered = sorted(self.delays)
        return {
            "samples": len(ordered),
            "p50_ms": _percentile(ordered, 0.50) * 1e3,
            "p99_ms": _percentile(ordered, 0.99) * 1e3,
            "max_ms": (ordered[-1] if ordered else 0.0) * 1e3,
        }


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list; 0.0 when empty."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class CountingAlgo(Algorithm):
    """Counts quotes and stamps arrivals; orders nothing.

    Params (besides ``channels``): ``warmup_s`` (default 0.5), the seconds after
    a run's first call whose quotes are left out of the delay samples.
    """

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        """Reads ``warmup_s``, then the base class's params; starts a new run."""
        warmup_s = float(params.get("warmup_s", 0.5))
        channels = super().initialize(params)
        self._warmup_s = warmup_s
        self._run = Run()
        return channels

    def event(self, quote: Mapping[str, Any]) -> list[Order]:
        """Not called: `events` handles every quote itself."""
        return []

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        """Stamp the entry time, count, keep delay samples; no checks, no orders."""
        now = time.time()
        run = self._run
        if not run.batches:
            run.first_t, run.first_batch = now, len(quotes)
        run.last_t = now
        run.batches += 1
        run.quotes += len(quotes)
        room = MAX_SAMPLES - len(run.delays)
        if room > 0 and now - run.first_t >= self._warmup_s:
            run.delays.extend([now - quote["ts"] for quote in quotes[:room]])
        return []

    def state(self) -> dict[str, Any]:
        """The base state plus ``bench``: the current run's `Run.counts`.

        The bridge calls this every second while quotes flow, on the same
        worker thread as ``events``: it must stay cheap, so no percentiles here.
        """
        return {**super().state(), "bench": self._run.counts(time.time())}

    def finalize(self) -> dict[str, Any]:
        """`state` with the run's delay percentiles added; then a new run starts (the bench
        calls this between runs)."""
        final = self.state()
        final["bench"].update(self._run.delay_figures())
        self._run = Run()
        return final


class SlowAlgo(CountingAlgo):
    """A `CountingAlgo` whose ``events`` then sleeps ``per_quote_s`` (param) per quote.

    Its capacity is about ``1 / per_quote_s`` quotes/s (default 0.0002: 5,000/s).
    The sleep runs on the server's worker thread, so heartbeats go on.
    """

    def initialize(self, params: Mapping[str, Any]) -> list[str]:
        """Reads ``per_quote_s``, then `CountingAlgo`'s params."""
        per_quote_s = float(params.get("per_quote_s", 0.0002))
        channels = super().initialize(params)
        self._per_quote_s = per_quote_s
        return channels

    def events(self, quotes: Sequence[Mapping[str, Any]]) -> list[Order]:
        """Count as `CountingAlgo` does, then take ``len(quotes) * per_quote_s`` seconds."""
        orders = super().events(quotes)
        time.sleep(len(quotes) * self._per_quote_s)
        return orders
