"""The benchmark's workload in NautilusTrader: QuoteTicks into a Python `Strategy`.

Set up as its users set it up for speed: ``LoggingConfig(bypass_logging=True)``
and ``run_analysis=False`` (its post-run analysis costs seconds), equities
from ``TestInstrumentProvider.equity`` (cent prices) on one simulated venue
with a cash account, ticks built by ``QuoteTickDataWrangler`` before the
clock starts. Only ``engine.run()`` is timed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money, Quantity
from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

from bench._ma_cross import Crossing

VENUE = "XNAS"


class _Cross(Strategy):
    def __init__(self, instrument_ids: list[Any], fast: int, slow: int, lot: int) -> None:
        super().__init__(StrategyConfig())
        self.instrument_ids = instrument_ids
        self.crossings = {i: Crossing(fast, slow) for i in instrument_ids}
        self.lot = Quantity.from_int(lot)
        self.orders = self.fills = 0

    def on_start(self) -> None:
        for instrument_id in self.instrument_ids:
            self.subscribe_quote_ticks(instrument_id)

    def on_quote_tick(self, tick: Any) -> None:
        instrument_id = tick.instrument_id
        mid = round((tick.bid_price.as_double() + tick.ask_price.as_double()) / 2, 2)
        signal = self.crossings[instrument_id].update(mid)
        if signal == "up" and self.portfolio.is_flat(instrument_id):
            self.submit_order(self.order_factory.market(instrument_id, OrderSide.BUY, self.lot))
            self.orders += 1
        elif signal == "down" and self.portfolio.is_net_long(instrument_id):
            self.close_all_positions(instrument_id)
            self.orders += 1

    def on_order_filled(self, _event: Any) -> None:
        self.fills += 1


def run(
    sids: Sequence[str], mids: Sequence[float], ts: Sequence[int], *, fast: int, slow: int, lot: int
) -> tuple[float, int, int]:
    """Backtest the cross on these quotes; returns (seconds in engine.run, orders, fills)."""
    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False)
    )
    engine.add_venue(
        venue=Venue(VENUE),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=USD,
        starting_balances=[Money(1_000_000_000, USD)],
    )
    frame = pd.DataFrame({"sid": sids, "mid": mids}, index=pd.to_datetime(ts, utc=True))
    instrument_ids = []
    for sid, rows in frame.groupby("sid", sort=True):
        instrument = TestInstrumentProvider.equity(symbol=str(sid), venue=VENUE)
        engine.add_instrument(instrument)
        instrument_ids.append(instrument.id)
        quotes = pd.DataFrame(
            {"bid_price": rows["mid"] - 0.01, "ask_price": rows["mid"] + 0.01}, index=rows.index
        ).round(2)
        quotes.index.name = "timestamp"
        engine.add_data(QuoteTickDataWrangler(instrument).process(quotes))
    strategy = _Cross(instrument_ids, fast, slow, lot)
    engine.add_strategy(strategy)
    began = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - began
    orders, fills = strategy.orders, strategy.fills
    engine.dispose()
    return elapsed, orders, fills
