"""The backtest loop: a dataset's quotes through one algorithm, its orders through the live rules.

Each quote, in ``ts`` order (`tape.read_batches`), is handled as the live
stack handles it when every order is filled before the next quote arrives:

1. the price band (`broker.PriceBand`, the filter of the bridge and of paper
   execution): a suspect quote is counted and goes nowhere;
2. paper matching sees it (`execution.PaperBook.on_quote`): the waiting
   orders it fills go back to the algorithm (`Algorithm.fill`), then market
   orders that waited longer than the quote timeout are rejected;
3. the algorithm handles it (`Algorithm.events`, the server's path; for
   batches the tape proved to pass the quote contract,
   `Algorithm.handle_checked` on a copy, which is what `events` does after
   checking each quote);
4. each order placed passes the bridge's screen (`risk.OrderScreen`: order
   schema, risk limits): a refusal goes back to the algorithm as the bridge
   reports one; an order let through goes to `PaperBook.submit`, and its fill
   or rejection back to the algorithm before the next quote.

The clocks are the data's: fills, the gate's rate window and the timeout of
market orders read the current quote's ``ts``. Orders and fills are
numbered, not given random ids. So the same inputs give the same results.

The run stops at the first quote the algorithm's ``event`` raises on, or the
first row that breaks the quote contract (unless `BacktestConfig.skip_bad`):
what was done so far is kept and the outcome says why it is incomplete.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algos import REJECTED_KEY, Algorithm, checked_quote, load_algorithm, run_of
from backtest._results import ResultWriter
from broker import DEFAULT_MAX_PRICE_JUMP_PCT, PriceBand, Quote
from execution import Fill, PaperBook, Rejection
from risk import OrderScreen, Refusal, RiskGate, RiskLimits
from tape import QuoteBatch, TimeLike, iso_from_ns, locate, ns_from_seconds, read_quote_batches
from tickbus.errors import ConfigError, PortfolioError, QuoteRejected, TapeError

BACKTEST_NAME = "backtest"
"""The ``algo`` every order of a backtest is stamped with."""


@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """One backtest: which algorithm, on which data, under which rules.

    Attributes:
        spec: ``"package.module:ClassName"``: an `Algorithm` subclass or a
            plain class with ``initialize`` and ``event``.
        data: The dataset's root directory.
        symbols: Only these symbols; None for all.
        start: Only quotes with ``ts >= start``; None from the first.
        end: Only quotes with ``ts < end``; None to the last.
        params: The algorithm's params, as ``--param`` gives them live.
        slippage_bps: Paper execution's slippage, in basis points.
        fee_bps: Paper execution's fee, in basis points of a fill's value.
        quote_timeout: Seconds (of data time) a market order waits for a quote.
        risk: The bridge's risk limits.
        max_price_jump_pct: The price band (None or 0: off).
        equity_every_s: One equity sample per this many seconds of data time
            (and one at the last quote).
        skip_bad: Skip and count rows that break the quote contract, instead
            of stopping at the first.
    """

    spec: str
    data: Path
    symbols: tuple[str, ...] | None = None
    start: TimeLike | None = None
    end: TimeLike | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    slippage_bps: float = 0.0
    fee_bps: float = 0.0
    quote_timeout: float = 5.0
    risk: RiskLimits = field(default_factory=RiskLimits)
    max_price_jump_pct: float | None = DEFAULT_MAX_PRICE_JUMP_PCT
    equity_every_s: float = 60.0
    skip_bad: bool = False


@dataclass
class Outcome:
    """What a backtest did; `ResultWriter` has the orders, fills and equity.

    Attributes:
        quotes: Quotes the algorithm handled.
        suspect: Quotes outside the price band, used by no one.
        bad_rows: Rows skipped for breaking the quote contract (`skip_bad`).
        first_bad_row: Where the first of those is, ``"file row N: reason"``.
        orders: Orders the algorithm placed.
        refused: Of those, refused by the screen (schema or risk limits).
        rejected: Of those, rejected by paper execution.
        fills: Fills booked by the algorithm.
        fill_errors: Fills the algorithm's portfolio refused.
        starting_cash: The portfolio's cash when the first quote came.
        incomplete: Why the run stopped before the end, or None.
        elapsed_s: Wall time of the loop.
        state: The algorithm's `finalize` at the end.
    """

    quotes: int = 0
    suspect: int = 0
    bad_rows: int = 0
    first_bad_row: str | None = None
    orders: int = 0
    refused: int = 0
    rejected: int = 0
    fills: int = 0
    fill_errors: int = 0
    starting_cash: float = 0.0
    incomplete: str | None = None
    elapsed_s: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)


class _DataClock:
    """The data's time: the ``ts`` of the quote being handled."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Backtest:
    """One backtest, checked and ready: the algorithm started, the selection found.

    Everything that can be wrong before the first quote is found here, so a
    caller can refuse the run before writing anything.

    Args:
        config: What to run.

    Raises:
        ConfigError: The algorithm cannot be loaded, constructed or started
            with its params.
        TapeError: The dataset holds nothing selected, or a file cannot be
            read; the message names the file, or says what the dataset holds.
    """

    def __init__(self, config: BacktestConfig) -> None:
        self.config = config
        self._algorithm = _start(config)
        self._batches = read_quote_batches(
            config.data, symbols=config.symbols, start=config.start, end=config.end
        )

    def run(
        self, writer: ResultWriter, *, progress: Callable[[int], object] | None = None
    ) -> Outcome:
        """Run it, once (see the module docstring); results go to `writer` as they happen.

        Args:
            writer: Takes every order, fill and equity sample.
            progress: Called with the number of quotes read, batch by batch.

        Returns:
            The outcome; ``incomplete`` says why when the run stopped early
            (the algorithm failed, a row breaks the quote contract, or a file
            could not be read part-way).
        """
        config, clock = self.config, _DataClock()
        fill_ids = itertools.count(1)
        book = PaperBook(
            slippage_bps=config.slippage_bps,
            fee_bps=config.fee_bps,
            quote_timeout=config.quote_timeout,
            clock=clock,
            monotonic=clock,
            new_id=lambda: f"f{next(fill_ids)}",
        )
        screen = OrderScreen(BACKTEST_NAME, RiskGate(config.risk, clock=clock))
        loop = _Loop(config, self._algorithm, book, screen, writer, clock)
        loop.outcome.starting_cash = run_of(self._algorithm).portfolio.cash
        began = time.perf_counter()
        try:
            for batch in self._batches:
                if not loop.handle(batch):
                    break
                if progress is not None:
                    progress(len(batch.quotes))
        except TapeError as exc:
            loop.outcome.incomplete = exc.reason
        loop.finish()
        loop.outcome.elapsed_s = time.perf_counter() - began
        loop.outcome.state = self._algorithm.finalize()
        return loop.outcome


def _start(config: BacktestConfig) -> Algorithm:
    factory = load_algorithm(config.spec)
    try:
        algorithm = factory()
    except Exception as exc:
        raise ConfigError(f"cannot construct {config.spec}: {type(exc).__name__}: {exc}") from exc
    order_ids = itertools.count(1)
    try:
        algorithm.start(dict(config.params), order_ids=lambda: f"o{next(order_ids)}")
    except ConfigError:
        raise
    except Exception as exc:  # the user's initialize failed
        raise ConfigError(f"{config.spec}: initialize failed: {type(exc).__name__}: {exc}") from exc
    return algorithm


class _Loop:
    """The per-quote steps of the module docstring, and what they produce."""

    def __init__(
        self,
        config: BacktestConfig,
        algorithm: Algorithm,
        book: PaperBook,
        screen: OrderScreen,
        writer: ResultWriter,
        clock: _DataClock,
    ) -> None:
        self.outcome = Outcome()
        self._config = config
        self._algorithm = algorithm
        self._run = run_of(algorithm)
        self._book = book
        self._screen = screen
        self._writer = writer
        self._clock = clock
        self._band = PriceBand(config.max_price_jump_pct)
        self._needs_prices = config.risk.max_order_notional is not None
        self._every = config.equity_every_s
        self._next_sample = float("-inf")
        self._last_ts: float | None = None
        self._sampled_ts: float | None = None
        # Checked quotes may skip `events` only when it is the framework's own.
        self._may_skip_events = type(algorithm).events is Algorithm.events

    def handle(self, batch: QuoteBatch) -> bool:
        """Handle every quote of `batch` in order; False once the run must stop."""
        clock, book, run, outcome = self._clock, self._book, self._run, self.outcome
        band = self._band.check if self._band.max_jump_pct is not None else None
        note_prices = self._screen.note_prices if self._needs_prices else None
        checked = batch.checked and self._may_skip_events
        handle_checked, events = self._algorithm.handle_checked, self._algorithm.events
        for quote in batch.quotes:
            ts = quote["ts"]
            clock.now = ts
            if band is not None and band(quote["sid"], quote["price"]) is not None:
                breach = _contract_breach(quote)  # a bad row is no suspect quote
                if breach is None:
                    outcome.suspect += 1
                elif not self._bad_row(quote, breach):
                    return False
                continue
            for fill in book.on_quote(quote):
                self._fill(fill)
            if book.waiting:
                for rejection in book.expire():
                    self._reject(rejection)
            if note_prices is not None:
                note_prices((quote,))
            errors = run.errors
            try:
                # A copy, as the server's: the quote paper matching keeps as the
                # latest is safe from an algorithm that writes into its quote.
                orders = handle_checked(quote.copy()) if checked else events([quote])  # type: ignore[arg-type]
            except QuoteRejected as exc:
                if not self._bad_row(quote, exc.reason):
                    return False
                continue
            except Exception as exc:  # an algorithm's own events() raised: stop there
                self._stop_on_error(quote, outcome.quotes + 1, f"{type(exc).__name__}: {exc}")
                return False
            outcome.quotes += 1
            if orders:
                for order in orders:
                    self._order(order)
            self._last_ts = ts
            if ts >= self._next_sample:
                self._sample(ts)
            if run.errors != errors:
                self._stop_on_error(quote, outcome.quotes, run.last_error)
                return False
        return True

    def _stop_on_error(self, quote: Quote, number: int, error: str | None) -> None:
        """Stop at the algorithm's failure on the `number`-th quote (1-based)."""
        when = iso_from_ns(ns_from_seconds(quote["ts"]))
        self.outcome.incomplete = (
            f"the algorithm failed on quote #{number} ({quote['sid']} at {when}): {error}"
        )

    def finish(self) -> None:
        """Take the equity sample of the last quote handled, unless taken already."""
        if self._last_ts is not None and self._last_ts != self._sampled_ts:
            self._sample(self._last_ts)

    def _order(self, order: Mapping[str, Any]) -> None:
        self.outcome.orders += 1
        checked = self._screen.check(order)
        if isinstance(checked, Refusal):
            self.outcome.refused += 1
            self._writer.order(order, self._clock.now, refused=checked.reason)
            order_id = order.get("id")
            if isinstance(order_id, str) and order_id:
                self._algorithm.fill({"order_id": order_id, REJECTED_KEY: checked.reason})
            return
        self._writer.order(checked, self._clock.now, refused=None)
        result = self._book.submit(checked)
        if isinstance(result, Rejection):
            self._reject(result)
        elif result is not None:
            self._fill(result)

    def _fill(self, fill: Fill) -> None:
        portfolio = self._run.portfolio
        realised, held = portfolio.realised_pnl, portfolio.held_shares(fill["sid"])
        try:
            self._algorithm.fill(fill)
        except PortfolioError:
            self.outcome.fill_errors += 1
            return
        self.outcome.fills += 1
        closes = abs(portfolio.held_shares(fill["sid"])) < abs(held)
        self._writer.fill(fill, realised_pnl=portfolio.realised_pnl - realised, closes=closes)

    def _reject(self, rejection: Rejection) -> None:
        self.outcome.rejected += 1
        self._screen.gate.forget(rejection.order)
        self._algorithm.fill({"order_id": rejection.order["id"], REJECTED_KEY: rejection.reason})

    def _sample(self, ts: float) -> None:
        portfolio = self._run.portfolio
        equity, cash = portfolio.equity, portfolio.cash
        self._writer.equity(ts, equity=equity, cash=cash, exposure=equity - cash)
        self._sampled_ts = ts
        self._next_sample = (ts // self._every + 1) * self._every

    def _bad_row(self, quote: Quote, reason: str) -> bool:
        """Count a row that breaks the quote contract; False when the run must stop there."""
        self.outcome.bad_rows += 1
        if self.outcome.first_bad_row is not None:
            return True  # located once: finding a row costs a read of its file
        found = locate(self._config.data, quote["sid"], quote["ts"])
        where = "an unknown row" if found is None else f"{found[0]} row {found[1]}"
        self.outcome.first_bad_row = f"{where} breaks the quote contract: {reason}"
        if self._config.skip_bad:
            return True
        self.outcome.incomplete = (
            f"{self.outcome.first_bad_row} (--skip-bad skips such rows and counts them)"
        )
        return False


def _contract_breach(quote: Quote) -> str | None:
    """Why `quote` breaks the quote contract (`algos.checked_quote`), or None."""
    try:
        checked_quote(quote, "quote")
    except QuoteRejected as exc:
        return exc.reason
    return None
