"""The exceptions every tickbus package raises.

This module lives in the umbrella package, not in one of the components,
because every component raises these and `algos`/`portfolio` must not import
the transport packages. It imports nothing from tickbus itself.
"""

from __future__ import annotations

from pathlib import Path


class TickbusError(Exception):
    """Base class of every error tickbus raises on purpose.

    Attributes:
        reason: What is wrong, in words a user can act on.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(TickbusError):
    """A setting, URL, flag or parameter is not usable.

    Attributes:
        reason: What is wrong, in words a user can act on.
    """


class TapeError(ConfigError):
    """A tape dataset cannot be read as asked: nothing in it matches, or a file is unreadable.

    A `ConfigError`, because what fixes it is a different path, symbol or time
    range on the command line.

    Attributes:
        path: The dataset's directory, or the file at fault.
        reason: What was asked and what the dataset holds (its symbols and time
            range), or why the file cannot be read; it names `path`.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(reason)
        self.path = path


class NotInitialized(ConfigError):
    """An algorithm was called before `initialize(params)`.

    Over RPC it arrives as a remote error of this name: the bridge reads it as
    "this server restarted" and initialises it again.
    """


class SwapFailed(TickbusError):
    """A bridge tried a swap and kept its old algorithm.

    Attributes:
        reason: Why the new algorithm could not take over.
    """


class QuoteRejected(TickbusError):
    """A payload is not a valid quote (or array of quotes).

    Attributes:
        reason: Why it was rejected, e.g. ``"price must be > 0, got -1.0"``.
    """


class OrderRejected(TickbusError):
    """A payload or mapping is not a valid order.

    Attributes:
        reason: Why it was rejected, naming the field, e.g. ``"qty must be > 0, got 0"``.
    """


class PortfolioError(TickbusError):
    """A portfolio operation would break an invariant (negative cash, short sale).

    Attributes:
        reason: Which invariant, with the figures involved.
    """


class AlgorithmUnavailable(TickbusError):
    """An algorithm server did not answer: down, unreachable, or lost mid-call.

    Attributes:
        endpoint: The zerorpc address, e.g. ``"tcp://127.0.0.1:4242"``.
        reason: What happened (timeout, lost remote, the remote exception).
    """

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(reason)
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"algorithm at {self.endpoint}: {self.reason}"


class AlgorithmNotInitialized(AlgorithmUnavailable):
    """An algorithm server answered that it has not been initialised.

    A new server process on the same address lost its state, or an
    ``initialize`` did not take: the bridge initialises it again.
    """


class AlgorithmError(TickbusError):
    """An algorithm server answered, but its code raised or broke the RPC contract.

    Attributes:
        endpoint: The zerorpc address of the server.
        reason: The remote exception's name and message, or the contract breach.
    """

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(reason)
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"algorithm at {self.endpoint}: {self.reason}"


class RingError(TickbusError):
    """A tick ring cannot be used as asked: another layout, a second writer, a full table.

    Attributes:
        reason: What is wrong, with the path and the figures involved.
    """
