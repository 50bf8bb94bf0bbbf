"""A generated, realistic-looking dataset, so a newcomer can backtest before owning data.

`write_sample` writes quotes for a few symbols over a few trading days into a
dataset made by `write_rows`, exactly as an import or a recording would be:

* Trading hours only: 14:30-21:00 UTC (the New York session in winter),
  Monday to Friday (no holiday calendar), so a dataset has gaps over nights
  and weekends.
* Per symbol a price level, a volatility and a typical spread: known
  symbols (AAPL, GOOG, MSFT, ...) get figures close to their real ones, any
  other symbol gets figures drawn from its name, so it is the same in every
  sample.
* Prices follow a geometric random walk (numpy, vectorised) whose volatility
  is U-shaped over the session (higher at the open and the close); the
  overnight gap is a random move clipped to 5 %, well inside the 10 % price
  band the bridge and paper execution apply.
* Bid and ask in cents around the walk, the spread proportional to the price
  and wider at the open, at least 2 cents; the last price is strictly inside:
  ``0 < bid < price < ask``. Sizes are round lots, larger at the open and close.
* Deterministic: the same configuration and seed give byte-identical files.
  Each symbol has its own random stream (seeded by the seed and the symbol),
  so adding a symbol leaves the others' quotes unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from broker import quote_topic
from tape._files import write_rows
from tape._schema import DATA_SUFFIX, NS_PER_S, SCHEMA
from tickbus.errors import TapeError

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

SESSION_OPEN_S = 14 * 3600 + 30 * 60
"""The session opens at 14:30 UTC."""

SESSION_S = 6 * 3600 + 30 * 60
"""The session lasts 6.5 hours, to 21:00 UTC."""

DEFAULT_START = date(2026, 1, 5)
"""A Monday in winter, when 14:30-21:00 UTC is New York's session."""

DEFAULT_SYMBOLS = ("GOOG", "AAPL", "MSFT")

MAX_RATE = 100.0
"""Quotes per second per symbol, at most."""

MAX_GAP = 0.05
"""The largest overnight move (a log return), well inside the 10 % price band."""

_ROWS_PER_WRITE = 2_000_000
"""At most this many rows are generated before they are written: bounds memory."""

_TRADING_S_PER_YEAR = 252 * SESSION_S
_MS = 1_000_000


@dataclass(frozen=True)
class _Profile:
    """A symbol's character: price level, annual volatility, typical spread (bps of price)."""

    price: float
    volatility: float
    spread_bps: float


_KNOWN = {
    "AAPL": _Profile(190.0, 0.25, 1.0),
    "AMZN": _Profile(185.0, 0.32, 1.5),
    "GOOG": _Profile(170.0, 0.30, 1.5),
    "META": _Profile(500.0, 0.35, 1.5),
    "MSFT": _Profile(420.0, 0.22, 1.0),
    "NVDA": _Profile(120.0, 0.50, 2.0),
    "TSLA": _Profile(250.0, 0.60, 2.5),
}


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    """What `write_sample` generates.

    Attributes:
        directory: The dataset's root; it must not hold data files yet.
        symbols: Upper-case symbols (default GOOG, AAPL, MSFT).
        days: Trading days (Monday to Friday), at least 1 (default 5).
        start: The first day; a Saturday or Sunday starts on the next Monday
            (default 2026-01-05, a Monday).
        seed: Seed of the random streams (default 0).
        rate: Quotes per second per symbol, in (0, 100] (default 1.0): the
            default sample has 3 x 5 x 23,400 = 351,000 rows.
        writer: The writer's word in the file names (default ``sample``).
    """

    directory: Path
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    days: int = 5
    start: date = DEFAULT_START
    seed: int = 0
    rate: float = 1.0
    writer: str = "sample"

    def __post_init__(self) -> None:
        if not self.symbols:
            raise TapeError(self.directory, "a sample needs at least one symbol")
        if self.days < 1:
            raise TapeError(self.directory, f"days must be at least 1, got {self.days}")
        if not 0 < self.rate <= MAX_RATE or int(SESSION_S * self.rate) < 1:
            raise TapeError(
                self.directory,
                f"rate must be in (0, {MAX_RATE:g}] quotes per second and give at least "
                f"one quote a day, got {self.rate}",
            )


@dataclass(frozen=True, kw_only=True)
class SampleReport:
    """What `write_sample` wrote.

    Attributes:
        directory: The dataset's root.
        rows: Quotes written.
        files: The new files, sorted.
        symbols: The symbols, as configured.
        days: The trading days (UTC dates), in order.
        first_ns: The first quote's ``ts`` (ns since the epoch, UTC).
        last_ns: The last quote's ``ts``.
    """

    directory: Path
    rows: int
    files: tuple[Path, ...]
    symbols: tuple[str, ...]
    days: tuple[date, ...]
    first_ns: int
    last_ns: int


@dataclass
class _Walk:
    """One symbol's random stream and where its price stands."""

    sid: str
    profile: _Profile
    rng: np.random.Generator
    log_price: float = field(init=False)

    def __post_init__(self) -> None:
        self.log_price = float(np.log(self.profile.price))


def write_sample(config: SampleConfig) -> SampleReport:
    """Generate the quotes `config` describes and write them as a dataset.

    Each trading day is generated and written on its own (and, above 2
    million rows a day, a few symbols at a time), so memory stays bounded
    whatever the number of days.

    Raises:
        TapeError: `config.directory` already holds data files (a second
            sample would mix into it), or is not a directory.
        OSError: A file cannot be written; the files written before stay.
    """
    _check_empty(config.directory)
    days = trading_days(config.start, config.days)
    walks = [_walk(sid, config.seed) for sid in config.symbols]
    per_symbol_day = int(SESSION_S * config.rate)
    group = max(1, _ROWS_PER_WRITE // per_symbol_day)
    files: list[Path] = []
    rows = 0
    first_ns, last_ns = 2**63 - 1, 0
    for number, day in enumerate(days):
        for start in range(0, len(walks), group):
            table = _day_table(walks[start : start + group], day, config.rate, first=number == 0)
            files.extend(write_rows(table, config.directory, writer=config.writer))
            rows += table.num_rows
            bounds = pc.min_max(table.column("ts").cast(pa.int64()))
            first_ns = min(first_ns, bounds["min"].as_py())
            last_ns = max(last_ns, bounds["max"].as_py())
    return SampleReport(
        directory=config.directory,
        rows=rows,
        files=tuple(sorted(files)),
        symbols=config.symbols,
        days=tuple(days),
        first_ns=first_ns,
        last_ns=last_ns,
    )


def trading_days(start: date, count: int) -> list[date]:
    """The first `count` weekdays (Monday to Friday) from `start` on, `start` included."""
    days: list[date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _check_empty(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise TapeError(directory, f"{directory} is not a directory")
    if directory.is_dir() and next(_parquet_files(directory), None) is not None:
        raise TapeError(
            directory,
            f"{directory} already holds a dataset; a sample goes into a new directory "
            "(choose another --out, or remove this one)",
        )


def _parquet_files(directory: Path) -> Iterator[Path]:
    for path in directory.rglob(f"*{DATA_SUFFIX}"):
        if not any(p.startswith(("_", ".")) for p in path.relative_to(directory).parts):
            yield path


def _walk(sid: str, seed: int) -> _Walk:
    key = zlib.crc32(sid.encode())
    return _Walk(sid, _profile(sid, key), np.random.default_rng([seed, key]))


def _profile(sid: str, key: int) -> _Profile:
    """Known symbols' figures, or figures drawn from the symbol's name (never from the seed)."""
    if sid in _KNOWN:
        return _KNOWN[sid]
    rng = np.random.default_rng(key)
    return _Profile(
        price=float(np.exp(rng.uniform(np.log(10.0), np.log(600.0)))),
        volatility=float(rng.uniform(0.2, 0.7)),
        spread_bps=float(rng.uniform(2.0, 8.0)),
    )


def _open_ns(day: date) -> int:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (int(midnight.timestamp()) + SESSION_OPEN_S) * NS_PER_S


def _day_table(walks: Sequence[_Walk], day: date, rate: float, *, first: bool) -> pa.Table:
    """One day's quotes of `walks`, advancing each walk to the day's close."""
    count = int(SESSION_S * rate)
    parts = [_symbol_day(walk, count, rate, first=first) for walk in walks]
    open_ns = _open_ns(day)
    ts = open_ns + np.concatenate([p["offset_ms"] for p in parts]) * _MS
    which = np.repeat(np.arange(len(walks)), count)
    sids = pc.take(pa.array([w.sid for w in walks]), pa.array(which))
    topics = pc.take(pa.array([quote_topic(w.sid) for w in walks]), pa.array(which))
    stamps = pa.array(ts, type=SCHEMA.field("ts").type)
    columns = {
        name: pa.array(np.concatenate([p[name] for p in parts]))
        for name in ("price", "bid", "ask", "size")
    }
    arrays = [stamps, stamps, sids, *(columns[n] for n in ("price", "bid", "ask", "size")), topics]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _symbol_day(walk: _Walk, count: int, rate: float, *, first: bool) -> dict[str, Any]:
    """One symbol's quotes over one session: times (ms after the open), prices, sizes."""
    rng = walk.rng
    offsets = (np.arange(count) + rng.uniform(0.0, 1.0, count)) / rate
    offset_ms = np.minimum((offsets * 1000).astype(np.int64), SESSION_S * 1000 - 1)
    phase = offsets / SESSION_S
    mid = _walk_day(walk, phase, rate, first=first)
    bid, price, ask = _book(rng, mid, phase, walk.profile.spread_bps)
    heat = _u_shape(phase)
    size = 100.0 * rng.geometric(0.5 / heat)
    return {"offset_ms": offset_ms, "price": price, "bid": bid, "ask": ask, "size": size}


def _u_shape(phase: FloatArray) -> FloatArray:
    """1 at midday, 3 at the open and the close: the session's activity profile."""
    return 1.0 + 2.0 * (2.0 * phase - 1.0) ** 2


_U_RMS = float(np.sqrt(1.0 + 4.0 / 3.0 + 4.0 / 5.0))
"""The root mean square of `_u_shape` over a session, so the daily volatility is kept."""


def _walk_day(walk: _Walk, phase: FloatArray, rate: float, *, first: bool) -> FloatArray:
    """The day's mid prices: an overnight gap, then a geometric walk with U-shaped volatility."""
    rng = walk.rng
    volatility = walk.profile.volatility
    step = volatility * np.sqrt(1.0 / rate / _TRADING_S_PER_YEAR) * _u_shape(phase) / _U_RMS
    shocks = rng.normal(0.0, 1.0, phase.size) * step - step**2 / 2
    gap = 0.0 if first else rng.normal(0.0, 0.5 * volatility / np.sqrt(252.0))
    start = walk.log_price + float(np.clip(gap, -MAX_GAP, MAX_GAP))
    path = start + np.cumsum(shocks)
    walk.log_price = float(path[-1])
    return np.exp(path)


def _book(
    rng: np.random.Generator, mid: FloatArray, phase: FloatArray, spread_bps: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bid, last and ask in whole cents around `mid`: ``0 < bid < last < ask``.

    Bid and ask are 2 cents apart at least. The half spread is proportional
    to the price, wider just after the open (and a little before the close),
    with some noise.
    """
    widen = 1.0 + 2.5 * np.exp(-phase / 0.04) + 0.6 * np.exp(-(1.0 - phase) / 0.04)
    half = spread_bps / 2e4 * widen * rng.lognormal(0.0, 0.25, mid.size)
    cents = mid * 100.0
    bid = np.maximum(np.floor(cents * (1.0 - half)).astype(np.int64), 1)
    ask = np.maximum(np.ceil(cents * (1.0 + half)).astype(np.int64), bid + 2)
    last = bid + 1 + np.floor(rng.uniform(0.0, 1.0, mid.size) * (ask - bid - 1)).astype(np.int64)
    return bid / 100.0, last / 100.0, ask / 100.0
