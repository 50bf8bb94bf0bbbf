"""`tickbus new algo`: the files it writes run, pass their own test, serve and trade.

Everything goes through the real CLI in a subprocess, as a newcomer types it;
the generated test runs under its own pytest, and the generated algorithm is
served with the commands `tickbus new` printed, bridged and fed quotes over a
real mosquitto.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker import decode_order
from tests.support import (
    REPO_ROOT,
    Processes,
    free_port,
    recorder,
    unique,
    wait_online,
    wait_until,
)

AlgoState = Callable[[str], dict[str, Any]]
PRINTED_ADDR = "tcp://127.0.0.1:4300"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (at most 120 s) and capture its output."""
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def new_algo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`tickbus new algo ARGS`, run from `cwd` as a user would."""
    return run(sys.executable, "-m", "tickbus", "new", "algo", *args, cwd=cwd)


def printed(stdout: str, prefix: str) -> list[str]:
    """The one printed command line that starts with `prefix`, split as a shell would."""
    [line] = [line.strip() for line in stdout.splitlines() if line.strip().startswith(prefix)]
    return shlex.split(line)


def test_it_writes_an_algorithm_and_a_test_that_passes(tmp_path: Path) -> None:
    result = new_algo("my_algo", "--dir", "newcomer", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "newcomer"
    assert "class MyAlgo(Algorithm):" in (written / "my_algo.py").read_text()
    assert "from my_algo import MyAlgo" in (written / "test_my_algo.py").read_text()
    lines = result.stdout.splitlines()
    assert lines[:2] == ["wrote newcomer/my_algo.py", "wrote newcomer/test_my_algo.py"]
    serve = printed(result.stdout, "tickbus algo serve")
    assert serve[:6] == ["tickbus", "algo", "serve", "my_algo:MyAlgo", "--app-dir", "newcomer"]
    bridge = printed(result.stdout, "tickbus bridge")
    assert bridge[2:] == ["--rpc", PRINTED_ADDR, "--name", "my_algo"]
    assert serve[6:8] == ["--addr", PRINTED_ADDR]
    # The printed test command, run from where `tickbus new` ran; warnings are errors.
    pytest_command = printed(result.stdout, "python -m pytest")
    assert pytest_command[3:] == ["newcomer/test_my_algo.py"]
    tested = run(
        sys.executable, *pytest_command[1:], "-W", "error", "-p", "no:cacheprovider", cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " passed" in tested.stdout and "failed" not in tested.stdout


def test_the_generated_code_is_clean_under_ruff_and_strict_mypy(tmp_path: Path) -> None:
    assert new_algo("clean_algo", cwd=tmp_path).returncode == 0
    files = ["clean_algo.py", "test_clean_algo.py"]
    # --isolated: ruff's own defaults, as in a newcomer's fresh directory.
    for ruff in (["check"], ["format", "--check"]):
        linted = run(sys.executable, "-m", "ruff", *ruff, "--isolated", *files, cwd=tmp_path)
        assert linted.returncode == 0, linted.stdout + linted.stderr
    mypy = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"]
    mypy += ["--cache-dir", str(tmp_path / ".mypy_cache"), *files]
    typed = run(*mypy, cwd=tmp_path, env={"MYPYPATH": str(REPO_ROOT)})
    assert typed.returncode == 0, typed.stdout + typed.stderr


def test_the_generated_algorithm_serves_bridges_and_trades(
    procs: Processes, mqtt_url: str, mosquitto_port: int, algo_state: AlgoState, tmp_path: Path
) -> None:
    name, sid = unique("algo_"), unique("S").upper()
    directory = tmp_path / "mine"
    result = new_algo(name, "--dir", str(directory), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    addr = f"tcp://127.0.0.1:{free_port()}"
    # The printed commands, on a free port and this test's broker and symbol.
    serve = [addr if arg == PRINTED_ADDR else arg for arg in printed(result.stdout, "tickbus algo")]
    bridge = [
        addr if arg == PRINTED_ADDR else arg for arg in printed(result.stdout, "tickbus bridge")
    ]
    suffix = name.removeprefix("algo_")
    class_name = "Algo" + suffix[0].upper() + suffix[1:]  # algo_3fe1... is Algo3fe1...
    assert serve[3:6] == [f"{name}:{class_name}", "--app-dir", str(directory)]
    server = procs.tickbus(*serve[1:], name="algo")
    wait_until(
        lambda: "serving" in server.log(), timeout=15, what="the generated algorithm serving"
    )
    with recorder(mosquitto_port, f"status/bridge/{name}", f"orders/{name}/#") as rec:
        procs.tickbus(
            *bridge[1:], "--mqtt", mqtt_url, "--param", f"channels=quotes/{sid}",
            "--param", "starting_cash=10000", name=f"bridge-{name}",
        )  # fmt: skip
        wait_online(rec, name)
        rec.publish(f"quotes/{sid}", json.dumps({sid: 100.0}))  # the short form a person types
        rec.publish(f"quotes/{sid}", json.dumps({sid: 98.5}))  # 1.5 % under: drop_pct=1 buys
        [order] = wait_until(lambda: rec.on(f"orders/{name}"), timeout=15, what="the buy order")
        state = wait_until(
            lambda: (s := algo_state(addr))["quotes"] == 2 and s,
            timeout=10,
            what="both quotes handled by the algorithm",
        )
    decoded = decode_order(order)
    assert (decoded["algo"], decoded["sid"], decoded["side"]) == (name, sid, "buy")
    assert decoded["qty"] > 0
    assert (state["orders"], state["errors"]) == (1, 0)
    assert rec.on(f"orders/{name}/rejected") == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("my-algo", "'my-algo' is not a valid Python module name"),
        ("2fast", "'2fast' is not a valid Python module name"),
        ("class", "'class' is not a valid Python module name"),
        ("json", "'json' is already a module in the standard library"),
        ("algos", "'algos' is already a module in an installed package"),
        ("order", "gives the class 'Order', which would shadow"),
    ],
)
def test_a_name_that_is_not_a_usable_module_is_refused(
    tmp_path: Path, name: str, reason: str
) -> None:
    result = new_algo(name, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert reason in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_a_name_with_dashes_gets_a_suggestion(tmp_path: Path) -> None:
    result = new_algo("My-Algo", cwd=tmp_path)
    assert result.returncode == 2
    assert "(e.g. 'my_algo')" in result.stderr


def test_existing_files_are_not_overwritten_unless_forced(tmp_path: Path) -> None:
    test_file = tmp_path / "test_dip.py"
    test_file.write_text("# mine\n")
    refused = new_algo("dip", cwd=tmp_path)
    assert refused.returncode == 1
    assert f"{test_file.name} already exists: nothing written" in refused.stderr
    assert "--force" in refused.stderr
    assert test_file.read_text() == "# mine\n"
    assert not (tmp_path / "dip.py").exists(), "not even the file that was free"
    forced = new_algo("dip", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "def test_" in test_file.read_text()
    again = new_algo("dip", cwd=tmp_path)
    assert again.returncode == 1
    assert "dip.py and test_dip.py already exist" in again.stderr
