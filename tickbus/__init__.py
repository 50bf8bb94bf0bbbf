"""tickbus: the umbrella CLI, the local stack runner and the shared exceptions."""

from tickbus.errors import (
    AlgorithmError,
    AlgorithmUnavailable,
    ConfigError,
    NotInitialized,
    PortfolioError,
    QuoteRejected,
    RingError,
    SwapFailed,
    TickbusError,
)

__all__ = [
    "AlgorithmError",
    "AlgorithmUnavailable",
    "ConfigError",
    "NotInitialized",
    "PortfolioError",
    "QuoteRejected",
    "RingError",
    "SwapFailed",
    "TickbusError",
]
