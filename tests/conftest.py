"""Fixtures that own real processes: a mosquitto per test session, CLI subprocesses."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zerorpc

from tests.support import Processes, free_port, wait_until


@pytest.fixture(scope="session")
def mosquitto_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real mosquitto on a free port, for the whole session; tests use unique topics."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed; .ci/run installs it with apt-get")
    port = free_port()
    workdir = tmp_path_factory.mktemp("mosquitto")
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
        "persistence false\nmax_queued_messages 100000\n"
    )
    log = open(workdir / "mosquitto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _listening(port), timeout=10, what=f"mosquitto on port {port}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def mqtt_url(mosquitto_port: int) -> str:
    return f"mqtt://127.0.0.1:{mosquitto_port}"


@pytest.fixture
def procs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    """Real subprocesses for one test; all stopped at teardown, logs shown on failure."""
    processes = Processes(tmp_path)
    yield processes
    processes.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(processes.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def algo_state() -> Iterator[Callable[[str], dict[str, Any]]]:
    """Call state() on an algorithm server directly, with the test's own zerorpc client."""
    clients: list[zerorpc.Client] = []

    def state(addr: str) -> dict[str, Any]:
        client = zerorpc.Client(timeout=10)
        client.connect(addr)
        clients.append(client)
        return client.state()  # type: ignore[no-any-return]

    yield state
    for client in clients:
        client.close()
