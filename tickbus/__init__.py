"""tickbus: the umbrella CLI, the local stack runner and the shared exceptions."""

from tickbus.errors import (
    AlgorithmError,
    AlgorithmUnavailable,
    ConfigError,
    PortfolioError,
    QuoteRejected,
    RingError,
    TickbusError,
)

__all__ = [
    "AlgorithmError",
    "AlgorithmUnavailable",
    "ConfigError",
    "PortfolioError",
    "QuoteRejected",
    "RingError",
    "TickbusError",
]
