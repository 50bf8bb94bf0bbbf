"""A sweep's jobs: one backtest each, named by a stable id.

A job is a `BacktestConfig`: the sweep's shared settings (algorithm, data,
time range, execution and risk rules) with one param set and, with
``--per-symbol``, one symbol. Its id is a hash of everything that decides its
results: the algorithm, params, symbols, time range, rules and the data's
identity (its files' paths and sizes under the dataset's root). The same
command on the same data gives the same ids, which is what lets an
interrupted sweep resume; a dataset that grew gives new ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtest import BacktestConfig
from tape import data_files, iso_from_ns, ns_from_time
from tickbus.errors import ConfigError

DONE = "done"
"""The backtest ran to the end of its data."""
FAILED = "failed"
"""The algorithm raised (or refused its params), or the data broke the quote contract."""
LOST = "lost"
"""The job's worker died more often than ``--max-retries`` allows, or the job hit a
fault of the machine rather than of the algorithm; a resumed sweep runs it again."""

ID_LENGTH = 16
"""Hex digits of a job id (64 bits: no collision in any sweep a person runs)."""


@dataclass(frozen=True)
class Job:
    """One backtest of a sweep.

    Attributes:
        id: Its stable id (see the module docstring).
        config: The backtest it runs.
        resources: Ray custom resources it needs (``--data-resource``), or empty.
    """

    id: str
    config: BacktestConfig
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def params(self) -> Mapping[str, Any]:
        """Its algorithm params."""
        return self.config.params

    @property
    def symbols(self) -> tuple[str, ...] | None:
        """Its symbols; None for every symbol of the dataset."""
        return self.config.symbols


def data_identity(directory: Path) -> str:
    """What identifies a dataset's contents cheaply: a hash of its files' relative paths and sizes.

    Raises:
        TapeError: `directory` is not a dataset.
    """
    files, _ = data_files(directory)
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(directory).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def plan_jobs(
    base: BacktestConfig,
    param_sets: Sequence[Mapping[str, Any]],
    symbol_groups: Sequence[tuple[str, ...] | None],
    *,
    data_id: str,
    resource: str | None = None,
) -> list[Job]:
    """Every param set times every symbol group, as jobs in that order.

    Args:
        base: The shared settings; its params and symbols are replaced.
        param_sets: The grid's cross product (with the fixed params).
        symbol_groups: The symbols of each job: one symbol each with
            ``--per-symbol``, else one group (None: all symbols).
        data_id: `data_identity` of the dataset.
        resource: A Ray custom resource name each job needs; ``{symbol}`` in
            it is replaced by the job's symbol (``--per-symbol``).

    Raises:
        ConfigError: ``{symbol}`` is in `resource` but a job has not one symbol.
    """
    jobs = []
    for params in param_sets:
        for symbols in symbol_groups:
            config = dataclasses.replace(base, params=dict(params), symbols=symbols)
            needs = {} if resource is None else {_resource_name(resource, symbols): 0.001}
            jobs.append(Job(job_id(config, data_id), config, needs))
    return jobs


def job_id(config: BacktestConfig, data_id: str) -> str:
    """The stable id of `config` on the dataset `data_id` (see the module docstring)."""
    identity = {
        "algorithm": config.spec,
        "params": config.params,
        "symbols": config.symbols,
        "start": _bound(config.start),
        "end": _bound(config.end),
        "slippage_bps": config.slippage_bps,
        "fee_bps": config.fee_bps,
        "quote_timeout": config.quote_timeout,
        "risk": dataclasses.asdict(config.risk),
        "max_price_jump_pct": config.max_price_jump_pct,
        "equity_every_s": config.equity_every_s,
        "skip_bad": config.skip_bad,
        "data": data_id,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def _bound(value: Any) -> str | None:
    return None if value is None else iso_from_ns(ns_from_time(value))


def _resource_name(template: str, symbols: tuple[str, ...] | None) -> str:
    if "{symbol}" not in template:
        return template
    if symbols is None or len(symbols) != 1:
        raise ConfigError(f"--data-resource {template}: {{symbol}} needs --per-symbol")
    return template.replace("{symbol}", symbols[0])
