"""Jobs on Ray: connecting (embedded or to a cluster), shipping the code, retrying lost workers.

`connect` starts Ray on this machine when no address is given (every core,
no dashboard, a small object store: a job's inputs and result are a few
kilobytes) and stops it on exit; with an address it joins that cluster, and
leaves it running. The algorithm's module goes to the workers with Ray's
``runtime_env`` (``py_modules``) unless it belongs to tickbus itself, so the
user's code need not be installed on the cluster; tickbus must be.

`JobRunner` keeps a bounded number of jobs in flight (each one Ray task,
one CPU) and gives back each one's outcome as it finishes. Ray's own task
retries are off: a job whose worker died (the process, its node, or its
result's owner) is submitted again by the runner, up to ``max_retries``
times, so every job's attempts are counted and shown.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sweep._jobs import LOST, Job
from sweep.task import run_job
from tickbus.errors import ConfigError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
"""How long `check_address` waits for a cluster's port before calling it unreachable."""

OBJECT_STORE_BYTES = 256 * 1024 * 1024
"""The embedded Ray's object store: jobs pass kilobytes, not data."""

TICKBUS_PACKAGES = frozenset(
    {"algos", "backtest", "bridge", "broker", "dashboard", "execution", "feeds", "portfolio",
     "risk", "ring", "sweep", "tape", "tickbus"}
)  # fmt: skip
"""Top-level packages of tickbus (pyproject's ``packages``), which the cluster has installed."""


def check_address(address: str) -> None:
    """Fail at once when `address` (``HOST:PORT`` or ``ray://HOST:PORT``) does not answer.

    ``auto`` is not checked here: Ray finds the local cluster itself and
    fails at once when there is none.

    Raises:
        ConfigError: The address is malformed, or nothing listens there.
    """
    if address == "auto":
        return
    split = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = split.hostname, split.port
    except ValueError:
        host = port = None
    if split.scheme != "ray" or not host or port is None:
        raise ConfigError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach Ray at {address}: {exc}") from exc


def modules_to_ship(spec: str) -> list[str]:
    """The local path of `spec`'s top-level package or module, unless tickbus ships it.

    Raises:
        ConfigError: The module cannot be found.
    """
    top = spec.partition(":")[0].split(".")[0]
    if top in TICKBUS_PACKAGES:
        return []
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot find the module of {spec}: {exc}") from exc
    if found is None or found.origin is None:
        raise ConfigError(f"cannot find the module of {spec} ({top} is not importable here)")
    origin = Path(found.origin)
    if "site-packages" in origin.parts:
        return []  # installed: the cluster installs it the same way
    return [str(origin.parent if origin.name == "__init__.py" else origin)]


@contextlib.contextmanager
def connect(address: str | None, spec: str, *, num_cpus: int | None = None) -> Iterator[int]:
    """Connect to Ray (start it here when `address` is None) for the duration; yields its CPUs.

    Raises:
        ConfigError: The cluster cannot be reached or Ray cannot start.
    """
    import ray

    if address is not None:
        check_address(address)
    runtime_env = {"py_modules": modules} if (modules := modules_to_ship(spec)) else None
    options: dict[str, Any] = {
        "runtime_env": runtime_env,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
    }
    if address is None:
        options.update(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
        )
    try:  # "local": a Ray of our own, even when another runs on this machine
        ray.init(address=address or "local", **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "on this machine" if address is None else f"at {address}"
        raise ConfigError(f"cannot start Ray {where}: {exc}") from exc
    try:
        yield int(_cluster_resources().get("CPU", 1))
    finally:
        ray.shutdown()


def check_resources(jobs: Sequence[Job]) -> None:
    """Every custom resource a job needs is advertised by some node of the cluster.

    Raises:
        ConfigError: One is not: its jobs could never be scheduled.
    """
    have = _cluster_resources()
    missing = sorted({name for job in jobs for name in job.resources if name not in have})
    if missing:
        raise ConfigError(
            f"no node of the cluster has the resource {', '.join(missing)}: start the node "
            f"holding that data with ray start --resources '{{\"{missing[0]}\": 1}}'"
        )


@dataclass(frozen=True)
class Finished:
    """One job's end: its result (`sweep._task.run_job`'s, with ``attempts`` and ``node``)."""

    job: Job
    result: dict[str, Any]


@dataclass(frozen=True)
class Retrying:
    """A job whose worker died; it was submitted again."""

    job: Job
    attempt: int
    error: str


class JobRunner:
    """Runs jobs as Ray tasks, at most `in_flight` at a time, retrying lost workers.

    Args:
        jobs_dir: Where each job writes its backtest (``<id>/``).
        max_retries: Times a job whose worker died is submitted again.
        in_flight: Jobs submitted and not yet finished, at most.
    """

    def __init__(self, jobs_dir: Path, *, max_retries: int, in_flight: int) -> None:
        import ray

        self._ray = ray
        self._task = ray.remote(num_cpus=1, max_retries=0)(_run_on_worker)
        self._jobs_dir = jobs_dir
        self._max_retries = max_retries
        self._in_flight = max(1, in_flight)
        self._pending: dict[Any, tuple[Job, int]] = {}

    def run(
        self, jobs: Sequence[Job], *, stop: threading.Event | None = None
    ) -> Iterator[Finished | Retrying]:
        """Run `jobs`; yields each one's `Finished` as it ends, and a `Retrying` per retry.

        A job whose algorithm raised is finished (``failed``); one that ran
        out of retries, or hit an error outside the backtest, is finished as
        ``lost`` with the error. Once `stop` is set, it returns within half a
        second, leaving the jobs in flight to Ray: they end with the driver
        (Ray stops a job's tasks when its driver disconnects).
        """
        waiting = list(reversed(jobs))
        while (waiting or self._pending) and not (stop is not None and stop.is_set()):
            while waiting and len(self._pending) < self._in_flight:
                self._submit(waiting.pop(), attempt=1)
            ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=0.5)
            for ref in ready:
                yield self._collect(ref)

    def _submit(self, job: Job, *, attempt: int) -> None:
        task = self._task.options(resources=dict(job.resources)) if job.resources else self._task
        self._pending[task.remote(job, self._jobs_dir, attempt)] = (job, attempt)

    def _collect(self, ref: Any) -> Finished | Retrying:
        from ray import exceptions

        job, attempt = self._pending.pop(ref)
        try:
            result: dict[str, Any] = self._ray.get(ref)
        except _worker_losses(exceptions) as exc:
            error = f"{type(exc).__name__}: {_last_line(exc)}"
            if attempt <= self._max_retries:
                log.warning("job %s lost its worker (%s); attempt %d", job.id, error, attempt + 1)
                self._submit(job, attempt=attempt + 1)
                return Retrying(job, attempt + 1, error)
            return Finished(job, _lost(error, attempt))
        except exceptions.RayTaskError as exc:  # tickbus or the machine, not the algorithm
            return Finished(job, _lost(_last_line(exc.cause or exc), attempt))
        except exceptions.RayError as exc:
            return Finished(job, _lost(f"{type(exc).__name__}: {_last_line(exc)}", attempt))
        return Finished(job, result)


def _cluster_resources() -> dict[str, float]:
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return resources


def _run_on_worker(job: Job, jobs_dir: Path, attempt: int) -> dict[str, Any]:
    """The Ray task: `run_job`, with the attempt and the node it ran on."""
    import ray

    result = run_job(job, jobs_dir)
    result["attempts"] = attempt
    result["node"] = ray.get_runtime_context().get_node_id()
    return result


def _worker_losses(exceptions: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for a job that did not fail but lost the process, node or object running it."""
    return (
        exceptions.WorkerCrashedError,
        exceptions.NodeDiedError,
        exceptions.LocalRayletDiedError,
        exceptions.ObjectLostError,
        exceptions.OutOfMemoryError,
    )


def _lost(error: str, attempts: int) -> dict[str, Any]:
    return {"status": LOST, "error": error, "attempts": attempts, "metrics": {}}


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
