"""backtest: an algorithm over a recorded dataset, in one process, by the live rules.

The same algorithm class the live server serves, the same `Portfolio`, the
same risk gate (`risk.OrderScreen`) and the same paper matching
(`execution.PaperBook`); quotes from the tape's time-ordered reader. No
broker and no RPC.

Public API: `BacktestConfig`, `Backtest` (checked at once, then `Backtest.run`
into a `ResultWriter`), `Outcome`, the result files' names and schemas, the
metrics' names (`METRIC_KEYS`), and the click command `backtest_command`
(``tickbus backtest``) with its options (`backtest_options`,
`config_from_options`, which sweeps share). The metrics, the report and
``summary.json`` are in the public module `backtest.summary`, not imported
here: it brings pandas and matplotlib.
"""

from backtest._cli import backtest_command, backtest_options, config_from_options
from backtest._engine import BACKTEST_NAME, Backtest, BacktestConfig, Outcome
from backtest._metric_keys import METRIC_KEYS
from backtest._results import (
    EQUITY_FILE,
    EQUITY_SCHEMA,
    FILLS_FILE,
    FILLS_SCHEMA,
    ORDERS_FILE,
    ORDERS_SCHEMA,
    ResultWriter,
)

__all__ = [
    "BACKTEST_NAME",
    "EQUITY_FILE",
    "EQUITY_SCHEMA",
    "FILLS_FILE",
    "FILLS_SCHEMA",
    "METRIC_KEYS",
    "ORDERS_FILE",
    "ORDERS_SCHEMA",
    "Backtest",
    "BacktestConfig",
    "Outcome",
    "ResultWriter",
    "backtest_command",
    "backtest_options",
    "config_from_options",
]
