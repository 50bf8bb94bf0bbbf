"""Fixtures that own real processes: a mosquitto per test session, CLI subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zerorpc

from tests.support import MOSQUITTO, Mosquitto, Processes


@pytest.fixture(scope="session")
def mosquitto_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real mosquitto on a free port, for the whole session; tests use unique topics."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed; .ci/run installs it with apt-get")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker.port
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto of this test's own, for a test that needs a broker no other test uses.

    Request it before `procs`, so it outlives the processes the test starts.
    """
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


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
