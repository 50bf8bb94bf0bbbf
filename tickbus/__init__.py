"""tickbus: the umbrella CLI, the local stack runner and the shared exceptions."""

from tickbus.errors import (
    AlgorithmUnavailable,
    ConfigError,
    PortfolioError,
    QuoteRejected,
    TickbusError,
)

__all__ = [
    "AlgorithmUnavailable",
    "ConfigError",
    "PortfolioError",
    "QuoteRejected",
    "TickbusError",
]
